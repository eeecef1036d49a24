import Foundation
import MusitArt
import MusitAudio
import MusitCodecs
import MusitTestSupport
import Testing

/// A screen read back from `tmux capture-pane -e`: each cell's glyph and colours.
struct ColourScreen {
    enum Colour: Equatable, Hashable {
        case standard
        case index(Int)
        case rgb(RGB)
    }

    struct Cell {
        var glyph: Character
        var fg: Colour
        var bg: Colour
    }

    var rows: [[Cell]] = []

    init(_ text: String) {
        var fg = Colour.standard, bg = Colour.standard
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var row: [Cell] = []
            let chars = Array(line)
            var i = 0
            while i < chars.count {
                if chars[i] == "\u{1B}", i + 1 < chars.count, chars[i + 1] == "[" {
                    var j = i + 2
                    var params = ""
                    while j < chars.count, !chars[j].isLetter { params.append(chars[j]); j += 1 }
                    if j < chars.count, chars[j] == "m" { Self.apply(params, &fg, &bg) }
                    i = j + 1
                    continue
                }
                row.append(Cell(glyph: chars[i], fg: fg, bg: bg))
                i += 1
            }
            rows.append(row)
        }
    }

    static func apply(_ params: String, _ fg: inout Colour, _ bg: inout Colour) {
        let p = params.split(separator: ";", omittingEmptySubsequences: false).map { Int($0) ?? 0 }
        var i = 0
        if p.isEmpty { fg = .standard; bg = .standard }
        while i < p.count {
            switch p[i] {
            case 0: fg = .standard; bg = .standard
            case 39: fg = .standard
            case 49: bg = .standard
            case 30...37: fg = .index(p[i] - 30)
            case 40...47: bg = .index(p[i] - 40)
            case 90...97: fg = .index(p[i] - 90 + 8)
            case 100...107: bg = .index(p[i] - 100 + 8)
            case 38, 48:
                let target = p[i]
                var c = Colour.standard
                if i + 2 < p.count, p[i + 1] == 5 { c = .index(p[i + 2]); i += 2 }
                else if i + 4 < p.count, p[i + 1] == 2 { c = .rgb(RGB(UInt8(p[i + 2]), UInt8(p[i + 3]), UInt8(p[i + 4]))); i += 4 }
                if target == 48 { bg = c } else { fg = c }
            default: break
            }
            i += 1
        }
    }

    /// The cover's cells: every `▀`, as (column, row).
    var coverCells: [(x: Int, y: Int, cell: Cell)] {
        rows.enumerated().flatMap { y, row in row.enumerated().compactMap { x, c in c.glyph == "▀" ? (x, y, c) : nil } }
    }
}

/// The look of the real binary in tmux: cover art, album colours, the visualizer.
@Suite("musit-tui's look: cover art, album colours, motion (tmux)", .serialized)
struct LookTests {
    static func player(_ files: [String], term: String = "tmux-direct", extra: [String] = [], env: [String] = [],
                       width: Int = 100, height: Int = 30, config: String? = nil,
                       device: [String] = ["--device", "testnull", "--pace"]) throws -> TmuxSession {
        try TmuxSession(command: ["/usr/bin/env", "TERM=\(term)", "NO_COLOR="] + env + [Binary.path] + device + ["--offline"]
                            + extra + files.map { Fixtures.path($0) },
                        width: width, height: height,
                        environment: ["ALSA_CONFIG_PATH": Fixtures.alsaConfig,
                                      "XDG_CONFIG_HOME": config ?? NSTemporaryDirectory() + "musit-xdg-\(UUID().uuidString)"])
    }

    static func capture(_ tmux: TmuxSession) throws -> ColourScreen {
        ColourScreen(try tmux.tmux(["capture-pane", "-p", "-e", "-t", tmux.name]))
    }

    /// Waits for the cover, then returns the four corner cells of it.
    static func corners(_ tmux: TmuxSession) throws -> (tl: ColourScreen.Cell, tr: ColourScreen.Cell, bl: ColourScreen.Cell,
                                                         br: ColourScreen.Cell, columns: Int, rows: Int)? {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let screen = try capture(tmux)
            let cells = screen.coverCells
            if cells.count >= 4 {
                let xs = cells.map(\.x), ys = cells.map(\.y)
                let (x0, x1, y0, y1) = (xs.min()!, xs.max()!, ys.min()!, ys.max()!)
                func at(_ x: Int, _ y: Int) -> ColourScreen.Cell { screen.rows[y][x] }
                return (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1), x1 - x0 + 1, y1 - y0 + 1)
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return nil
    }

    static let quadrants = [RGB(230, 40, 40), RGB(40, 200, 60), RGB(40, 80, 230), RGB(240, 220, 40)]

    static func close(_ c: ColourScreen.Colour, _ want: RGB, within: Int) -> Bool {
        guard case .rgb(let got) = c else { return false }
        return abs(Int(got.r) - Int(want.r)) <= within && abs(Int(got.g) - Int(want.g)) <= within
            && abs(Int(got.b) - Int(want.b)) <= within
    }

    @Test("a cover of four quadrants shows them in place: 24-bit from PNG and JPEG, 256 colours, none with NO_COLOR or ASCII")
    func coverQuadrants() throws {
        for (file, tolerance) in [("covers/quadrants.mp3", 2), ("covers/quadrants_jpeg.mp3", 14)] {
            let tmux = try Self.player([file])
            defer { tmux.kill() }
            let screen = try tmux.screen()
            let c = try #require(try Self.corners(tmux), "\(file): no cover drawn: \(screen)")
            // Upper half of a cell is its foreground, lower half its background.
            let q = Self.quadrants
            #expect(Self.close(c.tl.fg, q[0], within: tolerance) && Self.close(c.tl.bg, q[0], within: tolerance), "\(file) top left \(c.tl)")
            #expect(Self.close(c.tr.fg, q[1], within: tolerance) && Self.close(c.tr.bg, q[1], within: tolerance), "\(file) top right \(c.tr)")
            #expect(Self.close(c.bl.fg, q[2], within: tolerance) && Self.close(c.bl.bg, q[2], within: tolerance), "\(file) bottom left \(c.bl)")
            #expect(Self.close(c.br.fg, q[3], within: tolerance) && Self.close(c.br.bg, q[3], within: tolerance), "\(file) bottom right \(c.br)")
            // Square pixels: twice as many columns as rows for a square cover.
            #expect(c.columns == c.rows * 2, "\(file): \(c.columns)×\(c.rows) cells")
        }

        // 256 colours: each quadrant in the palette colour nearest to it.
        do {
            let tmux = try Self.player(["covers/quadrants.mp3"], term: "tmux-256color")
            defer { tmux.kill() }
            let screen = try tmux.screen()
            let c = try #require(try Self.corners(tmux), "256 colours: no cover drawn: \(screen)")
            var seen = Set<Int>()
            for (cell, want) in zip([c.tl, c.tr, c.bl, c.br], Self.quadrants) {
                guard case .index(let n) = cell.fg else { Issue.record("256 colours: \(cell.fg) is not a palette colour"); continue }
                let got = TerminalPalette.rgb256(n)
                func distance(_ a: RGB, _ b: RGB) -> Int { abs(Int(a.r) - Int(b.r)) + abs(Int(a.g) - Int(b.g)) + abs(Int(a.b) - Int(b.b)) }
                // Nearer this quadrant's colour than any other's, and not far from it.
                #expect(distance(got, want) < 120, "palette \(n) (\(got)) for \(want)")
                #expect(Self.quadrants.allSatisfy { $0 == want || distance(got, $0) > distance(got, want) }, "palette \(n) is \(want)'s")
                #expect(cell.bg == cell.fg, "a solid quadrant has both halves alike")
                seen.insert(n)
            }
            #expect(seen.count == 4, "four quadrants, four colours: \(seen)")
        }

        // NO_COLOR, and a terminal without UTF-8: no cover at all.
        for (env, label) in [(["NO_COLOR=1"], "NO_COLOR"), (["LANG=C", "LC_ALL=C"], "ASCII")] {
            let tmux = try Self.player(["covers/quadrants.mp3"], env: env)
            defer { tmux.kill() }
            let r = try tmux.waitFor { $0.contains("Cover quadrants") }
            #expect(r.ok, "\(label): \(r.screen)")
            Thread.sleep(forTimeInterval: 1)
            let raw = try tmux.tmux(["capture-pane", "-p", "-e", "-t", tmux.name])
            #expect(ColourScreen(raw).coverCells.isEmpty, "\(label): no cover")
            if label == "NO_COLOR" { #expect(!raw.contains("38;"), "NO_COLOR: no colour at all") }
        }
    }

    @Test("a streamed song's cover comes from the server: the quadrants, in place")
    func streamedCover() throws {
        let server = ServerProcess()
        try server.start()
        let tmux = try TmuxSession.player("gwen", server: server.url, term: "tmux-direct")
        defer { tmux.kill() }
        try tmux.command("upload \(Fixtures.path("covers/quadrants.mp3"))")
        try tmux.press(until: "Cover quadrants", "uploaded and listed")
        try tmux.send("Enter")
        try tmux.press(until: "▶ playing", "the server's song plays")
        let screen = try tmux.screen()
        let c = try #require(try Self.corners(tmux), "no cover drawn: \(screen)")
        let q = Self.quadrants
        for (cell, want) in zip([c.tl, c.tr, c.bl, c.br], q) {
            #expect(Self.close(cell.fg, want, within: 2) && Self.close(cell.bg, want, within: 2), "\(cell) for \(want)")
        }
    }

    @Test("COLORTERM=truecolor or 24bit on an xterm-256color entry: the cover and the album colour in 24 bits")
    func colorTerm() throws {
        for value in ["truecolor", "24bit"] {
            let tmux = try Self.player(["covers/quadrants.mp3"], term: "xterm-256color", env: ["COLORTERM=\(value)"])
            defer { tmux.kill() }
            let screen = try tmux.screen()
            let c = try #require(try Self.corners(tmux), "COLORTERM=\(value): no cover drawn: \(screen)")
            for (cell, want) in zip([c.tl, c.tr, c.bl, c.br], Self.quadrants) {
                #expect(Self.close(cell.fg, want, within: 2) && Self.close(cell.bg, want, within: 2), "COLORTERM=\(value): \(cell) for \(want)")
            }
            // The album colour: the focused pane's border in 24 bits, not a palette colour.
            let colours = try Self.capture(tmux)
            let corner = colours.rows.first { $0.contains { $0.glyph == "┌" } && String($0.map(\.glyph)).contains("Queue") }?
                .first { $0.glyph == "┌" }
            guard case .rgb = corner?.fg else {
                Issue.record("COLORTERM=\(value): the Queue's border is \(String(describing: corner?.fg)), not an album colour")
                continue
            }
        }
        // Without it, the same entry stays at 256 colours.
        let tmux = try Self.player(["covers/quadrants.mp3"], term: "xterm-256color", env: ["COLORTERM="])
        defer { tmux.kill() }
        let c = try #require(try Self.corners(tmux), "xterm-256color: no cover drawn")
        guard case .index = c.tl.fg else { Issue.record("xterm-256color alone: \(c.tl.fg) is not a palette colour"); return }
    }

    @Test("the border colour cross-fades from one album's colour to the next on a track change")
    func crossFade() throws {
        let tmux = try Self.player(["covers/fade_a.mp3", "covers/fade_b.mp3"])
        defer { tmux.kill() }
        _ = try tmux.waitFor(text: "First Album Track")
        // The focused Queue pane's corner, sampled as fast as tmux answers until the second
        // track has played a second.
        var colours: [RGB] = []
        let deadline = Date().addingTimeInterval(12)
        var sawSecond: Date?
        while Date() < deadline {
            let screen = try Self.capture(tmux)
            if let row = screen.rows.first(where: { $0.contains { $0.glyph == "┌" } && String($0.map(\.glyph)).contains("Queue") }),
               let corner = row.first(where: { $0.glyph == "┌" }), case .rgb(let c) = corner.fg, colours.last != c {
                colours.append(c)
            }
            // The queue lists both titles from the start (their tags): the second is playing
            // when its row has the ♪ mark.
            if sawSecond == nil, screen.rows.contains(where: { row in
                let text = String(row.map(\.glyph))
                return text.contains("♪") && text.contains("Second Album Track")
            }) { sawSecond = Date() }
            if let s = sawSecond, Date().timeIntervalSince(s) > 1 { break }
        }
        #expect(sawSecond != nil, "the second track started")
        let first = try #require(colours.first), last = try #require(colours.last)
        #expect(first.r > first.b, "red album first: \(first)")
        #expect(last.b > last.r, "blue album last: \(last)")
        let between = colours.dropFirst().dropLast()
        #expect(!between.isEmpty, "intermediate colours on the way: \(colours)")
        for c in between {
            // In between means neither end: the fade passes through mixes of the two.
            #expect(c != first && c != last)
        }
    }

    @Test("every text colour keeps a contrast of 4.5 against its background, for extreme covers, help open or not")
    func contrast() throws {
        for cover in ["white", "black", "red", "noise"] {
            let tmux = try Self.player(["covers/\(cover).mp3"])
            defer { tmux.kill() }
            _ = try Self.corners(tmux)
            Thread.sleep(forTimeInterval: 0.5)  // past the first cross-fade
            for step in ["panes", "help"] {
                if step == "help" {
                    try tmux.send("?")
                    _ = try tmux.waitFor(text: "Help: keys")
                    Thread.sleep(forTimeInterval: 0.2)
                }
                let screen = try Self.capture(tmux)
                var checked = 0, failures: [String] = []
                for (y, row) in screen.rows.enumerated() {
                    for (x, cell) in row.enumerated() where cell.glyph != " " && cell.glyph != "▀" {
                        guard case .rgb(let fg) = cell.fg, case .rgb(let bg) = cell.bg else {
                            failures.append("(\(x),\(y)) '\(cell.glyph)' without explicit colours: \(cell.fg) on \(cell.bg)")
                            continue
                        }
                        checked += 1
                        let ratio = RGB.contrast(fg, bg)
                        if ratio < 4.5 { failures.append("(\(x),\(y)) '\(cell.glyph)' \(fg) on \(bg): \(ratio)") }
                    }
                }
                #expect(checked > 300, "\(cover) \(step): \(checked) cells checked")
                #expect(failures.isEmpty, "\(cover) \(step): \(failures.prefix(5)) (\(failures.count) in all)")
            }
        }
    }

    @Test("the visualizer (v) lights the band of a 1 kHz tone, on a device that tells its delay and on one that does not",
          arguments: [["--device", "testnull", "--pace"], ["--device", "testpaced"]])
    func visualizer(device: [String]) throws {
        let tmux = try Self.player(["covers/quadrants.mp3"], device: device)
        defer { tmux.kill() }
        _ = try tmux.waitFor(text: "▶ playing")
        try tmux.send("v")
        let bars: Set<Character> = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
        let barGlyphs: Set<Character> = ["█", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "░"]
        var verdicts: [Bool] = []
        for _ in 0..<5 {
            Thread.sleep(forTimeInterval: 0.4)
            let screen = try Self.capture(tmux)
            let lines = screen.rows.map { String($0.map(\.glyph)) }
            // The visualizer shares the progress bar's columns, in the rows under the state line.
            guard let barRow = lines.firstIndex(where: { $0.contains("░") }),
                  let stateRow = lines.firstIndex(where: { $0.contains("playing  ") }) else { continue }
            let row = screen.rows[barRow]
            // The bar's cells: the run of bar glyphs right of the cover.
            let coverEnd = (row.lastIndex { $0.glyph == "▀" } ?? 0) + 1
            guard let x0 = row.indices.first(where: { $0 >= coverEnd && barGlyphs.contains(row[$0].glyph) }) else { continue }
            var x1 = x0
            while x1 + 1 < row.count, barGlyphs.contains(row[x1 + 1].glyph) { x1 += 1 }
            let width = x1 - x0 + 1
            var heights = [Int](repeating: 0, count: width)
            for y in (stateRow + 1)..<screen.rows.count {
                let r = screen.rows[y]
                guard String(r.map(\.glyph)).contains("│") else { break }
                for x in 0..<width where x0 + x < r.count && bars.contains(r[x0 + x].glyph) {
                    heights[x] += r[x0 + x].glyph == "█" ? 8 : Int(r[x0 + x].glyph.unicodeScalars.first!.value - 0x2580)
                }
            }
            guard let peak = heights.indices.max(by: { heights[$0] < heights[$1] }), heights[peak] > 0 else { continue }
            let band = Spectrum.band(of: 1000, bands: 32)
            // Columns are spread over the bands: the peak's band is the tone's (or its neighbour, by leakage).
            let peakBand = peak * 32 / width
            let far = heights.indices.filter { abs($0 * 32 / width - band) > 4 }
            let farMax = far.map { heights[$0] }.max() ?? 0
            verdicts.append(abs(peakBand - band) <= 1 && farMax * 2 < heights[peak])
        }
        let last = try tmux.screen()
        #expect(verdicts.filter { $0 }.count >= 3, "1 kHz lit its band in \(verdicts): \(last)")
        // The clock goes on with the bars, in real time.
        func time(_ screen: String) -> Int? {
            guard let r = screen.range(of: #"\d:\d\d /"#, options: .regularExpression) else { return nil }
            let t = screen[r].dropLast(2).split(separator: ":")
            return Int(t[0])! * 60 + Int(t[1])!
        }
        let t0 = time(last), start = Date()
        let moved = try tmux.waitFor(timeout: 5) { s in time(s).map { $0 >= (t0 ?? 0) + 2 } ?? false }
        let took = Date().timeIntervalSince(start)
        #expect(t0 != nil && moved.ok && took > 0.9 && took < 3.5, "the time moves on in real time with the visualizer on (\(took) s): \(moved.screen)")
        try tmux.send("v")
        let r = try tmux.waitFor(text: "visualizer off")
        #expect(r.ok, "\(r.screen)")
    }

    @Test("a title longer than the pane scrolls in place, and rests at its start")
    func marquee() throws {
        let title = "A Title Far Too Long For The Now Playing Pane Of This Terminal Window"
        let tmux = try Self.player(["covers/long_title.mp3"])
        defer { tmux.kill() }
        _ = try tmux.waitFor(text: "▶ playing")
        var shown: [String] = []
        let deadline = Date().addingTimeInterval(8)
        while Date() < deadline, Set(shown).count < 4 {
            let lines = try tmux.screen().split(separator: "\n", omittingEmptySubsequences: false)
            let row = String(lines[1]).replacingOccurrences(of: "│", with: "").trimmingCharacters(in: .whitespaces)
            if shown.last != row { shown.append(row) }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let loop = title + "   •   " + title
        #expect(Set(shown).count >= 4, "the title moved: \(shown)")
        for s in shown { #expect(loop.contains(s), "a window of the title: \(s)") }
        #expect(shown.contains { title.hasPrefix($0) }, "it rests at its start: \(shown)")
    }
}
