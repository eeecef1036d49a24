import Foundation
import MusitTestSupport
import MusitViewModel
import Testing

extension TmuxSession {
    /// musit-tui with `arguments` in a fresh session with a private config directory.
    /// `term`: a TERM other than tmux's (such as `tmux-direct` for 24-bit colour).
    static func musit(_ arguments: [String], width: Int = 100, height: Int = 30, config: String? = nil,
                      after: String = "", term: String? = nil) throws -> TmuxSession {
        try TmuxSession(command: (term.map { ["/usr/bin/env", "TERM=\($0)", "NO_COLOR="] } ?? []) + [Binary.path] + arguments,
                        width: width, height: height,
                        environment: ["ALSA_CONFIG_PATH": Fixtures.alsaConfig,
                                      "XDG_CONFIG_HOME": config ?? NSTemporaryDirectory() + "musit-xdg-\(UUID().uuidString)"],
                        after: after)
    }

    /// Sends `keys`, then waits until the screen shows `text`; records an issue with the screen if it never does.
    @discardableResult
    func press(_ keys: String..., until text: String, _ why: String = "",
               sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        if !keys.isEmpty { try send(keys) }
        let r = try waitFor(text: text)
        #expect(r.ok, "\(why) waiting for \(text): \(r.screen)", sourceLocation: sourceLocation)
        return r.screen
    }

    func send(_ keys: [String]) throws { try tmux(["send-keys", "-t", name] + keys) }

    /// The musit-tui process: the child of the pane's shell.
    func programPID() throws -> pid_t {
        let pid = try paneValue("#{pane_pid}")
        let children = try String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)
        return try #require(children.split(separator: " ").first.flatMap { pid_t(String($0)) })
    }
}

/// The real binary in tmux: keys and mouse bytes in, the screen it drew out.
@Suite("musit-tui in a real terminal (tmux)", .serialized)
struct ScreenTests {
    static func column(of needle: String, in screen: String, row: Int = 0) -> Int? {
        let lines = screen.split(separator: "\n", omittingEmptySubsequences: false)
        guard row < lines.count, let r = lines[row].range(of: needle) else { return nil }
        return lines[row].distance(from: lines[row].startIndex, to: r.lowerBound)
    }

    /// An X10 mouse report, as xterm and tmux send it: ESC [ M, button, column, row (1-based, +32).
    static func mouse(button: UInt8, x: Int, y: Int) -> [UInt8] {
        [0x1B, 0x5B, 0x4D, 32 + button, UInt8(32 + x + 1), UInt8(32 + y + 1)]
    }

    @Test("four panes; plays, pauses, seeks, skips; resizes; a mouse drag; q restores the terminal")
    func fullSession() throws {
        let (device, capture) = Fixtures.captureDevice()
        let config = NSTemporaryDirectory() + "musit-xdg-\(UUID().uuidString)"
        let tmux = try TmuxSession.musit(["--device", device, "--pace", Fixtures.path("tag_v23_utf16.mp3"),
                                          Fixtures.path("sweep.mp3")], width: 120, height: 36, config: config,
                                         after: "stty -a;")
        defer { tmux.kill() }
        var r = try tmux.waitFor { s in ["┌ Queue", "┌ Now Playing", "┌ Friends", "┌ Chat"].allSatisfy { s.contains($0) } }
        #expect(r.ok, "four panes: \(r.screen)")
        // The embedded backend signs the local user in by itself.
        let signedIn = try tmux.waitFor { $0.contains("no friends yet") && $0.contains("pick a friend") && $0.contains("· online") }
        #expect(signedIn.ok, "the social panes are live: \(signedIn.screen)")
        #expect(try tmux.paneValue("#{alternate_on}") == "1")
        r = try tmux.waitFor(text: "Ünïcødé Title – 東京")
        #expect(r.ok, "UTF-16 tags drawn: \(r.screen)")
        r = try tmux.waitFor { $0.contains("▶ playing") && $0.contains("/ 0:06") }
        #expect(r.ok, "the 1 s track ended by itself and the sweep plays: \(r.screen)")
        // The mark follows within a frame or two of the Now Playing pane.
        r = try tmux.waitFor(timeout: 2) { $0.contains("♪ sweep") }
        #expect(r.ok, "the queue marks the playing track: \(r.screen)")

        try tmux.press("Space", until: "⏸ paused")
        let size = try FileManager.default.attributesOfItem(atPath: capture)[.size] as! Int
        Thread.sleep(forTimeInterval: 0.4)
        #expect(try FileManager.default.attributesOfItem(atPath: capture)[.size] as! Int == size, "nothing written while paused")
        try tmux.press("Right", "Right", until: "0:05 / 0:06", "two 5 s seeks, clamped at the end")
        try tmux.press("Left", until: "0:00 / 0:06", "back 5 s")
        try tmux.press("-", until: "vol 95%")
        try tmux.press("Space", until: "▶ playing")
        try tmux.send("p")
        r = try tmux.waitFor { $0.contains("Ünïcødé Title") && $0.contains("/ 0:01") }
        #expect(r.ok, "p: previous track: \(r.screen)")
        try tmux.send("n")
        r = try tmux.waitFor(text: "/ 0:06")
        #expect(r.ok, "n: next track: \(r.screen)")

        for (w, h) in [(80, 24), (200, 60), (30, 8), (120, 36)] {
            let asked = Date()
            try tmux.resize(width: w, height: h)
            if w < 40 {
                r = try tmux.waitFor(text: "Terminal too small")
            } else {
                r = try tmux.waitFor { s in
                    s.split(separator: "\n").first.map { $0.count == w } == true && s.contains("┌ Chat")
                }
            }
            #expect(r.ok, "redrawn at \(w)x\(h): \(r.screen)")
            // The resize signal wakes the input thread at once (the idle wait is a second).
            #expect(Date().timeIntervalSince(asked) < 0.6, "redrawn at \(w)x\(h) after \(Date().timeIntervalSince(asked)) s")
        }

        // Drag the border between the left side and Friends from its column to column 40.
        r = try tmux.waitFor(text: "┌ Friends")
        let border = try #require(Self.column(of: "┌ Friends", in: r.screen))
        try tmux.sendRaw(hex: Self.mouse(button: 0, x: border - 1, y: 15))
        try tmux.sendRaw(hex: Self.mouse(button: 3, x: 40, y: 15))
        r = try tmux.waitFor { Self.column(of: "┌ Friends", in: $0) == 41 }
        #expect(r.ok, "border dragged from \(border) to 41: \(r.screen)")
        let saved = try String(contentsOfFile: config + "/musit/layout.json", encoding: .utf8)
        #expect(saved.contains("percent"), "layout saved: \(saved)")

        try tmux.press("q", until: "Quit while playing?")
        try tmux.press("y", until: "[exited 0]")
        #expect(try tmux.paneValue("#{alternate_on}") == "0", "alternate screen off after q")
        r = try tmux.waitFor(text: "icanon")
        #expect(r.screen.contains(" icanon") && r.screen.contains(" echo ") && !r.screen.contains("-icanon"),
                "stty sane: \(r.screen)")
        #expect(try FileManager.default.attributesOfItem(atPath: capture)[.size] as! Int > 44_100 * 4, "audio reached the device")

        // The saved layout comes back next time.
        let again = try TmuxSession.musit(["--device", "testnull", Fixtures.path("sine440.mp3")], width: 120, height: 36,
                                          config: config)
        defer { again.kill() }
        r = try again.waitFor { Self.column(of: "┌ Friends", in: $0) == 41 }
        #expect(r.ok, "layout restored: \(r.screen)")
    }

    @Test("Ctrl-Z hands the terminal back to the shell; fg draws the whole screen again", arguments: [false, true])
    func suspendAndResume(visualizer: Bool) throws {
        // An interactive shell, for job control: Ctrl-Z stops the player, fg brings it back.
        let config = NSTemporaryDirectory() + "musit-xdg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: config + "/musit", withIntermediateDirectories: true)
        try #"{"look": {"visualizer": \#(visualizer)}}"#.write(toFile: config + "/musit/config.json", atomically: true, encoding: .utf8)
        let tmux = try TmuxSession(command: ["/bin/bash", "--norc", "--noprofile", "-i"], width: 100, height: 30,
                                   environment: ["ALSA_CONFIG_PATH": Fixtures.alsaConfig, "XDG_CONFIG_HOME": config,
                                                 "PS1": "$ "])
        defer { tmux.kill() }
        try tmux.send(["-l", "\(Binary.path) --offline --device testnull --pace \(Fixtures.path("sine440.mp3"))"])
        try tmux.send(["Enter"])
        var r = try tmux.waitFor { s in ["┌ Queue", "┌ Now Playing", "▶ playing"].allSatisfy { s.contains($0) } }
        #expect(r.ok, "plays: \(r.screen)")
        for round in 0..<2 {
            try tmux.send(["C-z"])
            r = try tmux.waitFor { $0.contains("Stopped") && !$0.contains("┌ Queue") }
            #expect(r.ok, "round \(round): Ctrl-Z shows the shell: \(r.screen)")
            #expect(try tmux.paneValue("#{alternate_on}") == "0")
            try tmux.send(["-l", "clear; fg"])
            try tmux.send(["Enter"])
            r = try tmux.waitFor { s in ["┌ Queue", "┌ Now Playing", "┌ Friends", "┌ Chat", "sine440"].allSatisfy { s.contains($0) } }
            #expect(r.ok, "round \(round): fg draws every pane again: \(r.screen)")
        }
        try tmux.send(["q"])
        r = try tmux.waitFor { $0.contains("Quit while playing?") || !$0.contains("┌ Queue") }
        if r.screen.contains("Quit while playing?") { try tmux.send(["y"]) }
        r = try tmux.waitFor { !$0.contains("┌ Queue") }
        let alternate = try tmux.paneValue("#{alternate_on}")
        #expect(r.ok && alternate == "0", "q hands the terminal back: \(r.screen)")
    }

    @Test("a 10x4 window, resize storms and signals: the terminal is always restored", arguments: [SIGTERM, SIGINT, SIGHUP])
    func tinyAndSignals(signal: Int32) throws {
        let tmux = try TmuxSession.musit(["--device", "testnull", "--pace", Fixtures.path("sine440.mp3")], width: 10, height: 4)
        defer { tmux.kill() }
        var r = try tmux.waitFor(text: "Terminal")
        #expect(r.ok, "a 10x4 window says it is too small: \(r.screen)")
        for (w, h) in [(120, 40), (20, 6), (80, 24), (10, 4), (1, 1), (250, 80), (100, 30)] {
            try tmux.resize(width: w, height: h)
        }
        r = try tmux.waitFor { $0.contains("┌ Queue") && $0.split(separator: "\n").first?.count == 100 }
        #expect(r.ok, "redrawn after a resize storm: \(r.screen)")
        try tmux.send("x", "x", "x", "F12", "C-x", "€", "!")
        r = try tmux.waitFor(text: "┌")
        #expect(r.ok)
        kill(try tmux.programPID(), signal)
        r = try tmux.waitFor(text: "[exited 0]")
        #expect(r.ok, "exits on signal \(signal): \(r.screen)")
        #expect(try tmux.paneValue("#{alternate_on}") == "0")
    }
}

@Suite("musit-tui in a real terminal: input floods, :add, colour and ASCII", .serialized)
struct ScreenExtraTests {
    @Test("10,000 keys at once, then :add of a folder; the UI keeps up")
    func floodAndAdd() throws {
        let tmux = try TmuxSession.musit(["--device", "testnull", "--pace", Fixtures.path("sine440.mp3")], width: 120, height: 36)
        defer { tmux.kill() }
        var r = try tmux.waitFor(text: "┌ Queue")
        #expect(r.ok)
        let flood = String((0..<10_000).map { i -> Character in ["j", "k", "J", "Z", "w", "{", "}", "<", ">"][i % 9] })
        try tmux.send("-l", flood)
        try tmux.send("?")
        r = try tmux.waitFor(text: "Help: keys")
        #expect(r.ok, "responsive after 10,000 keys: \(r.screen)")
        try tmux.send("Escape")
        try tmux.send(":")
        try tmux.send("-l", "add \(Fixtures.dir)")
        try tmux.send("Enter")
        // Rows show file names, then titles as the tags are read: either will do here.
        r = try tmux.waitFor { $0.contains("· durations") }
        #expect(r.ok, ":add scanned the folder: \(r.screen)")
        try tmux.send("/")
        try tmux.send("-l", "tag_v2")
        r = try tmux.waitFor { $0.contains("filter: tag_v2") && ($0.contains("tag_v24") || $0.contains("Ωμέγα UTF-8")) && !$0.contains("sweep_b") }
        #expect(r.ok, "filtered: \(r.screen)")
    }

    @Test("--offline plays local files with no backend; the social panes say what they need")
    func offline() throws {
        let tmux = try TmuxSession.musit(["--offline", "--device", "testnull", "--pace", Fixtures.path("sine440.mp3")])
        defer { tmux.kill() }
        let r = try tmux.waitFor { $0.contains("sign in to see friends") && $0.contains("sign in to chat") && $0.contains("▶ playing") }
        #expect(r.ok, "\(r.screen)")
        #expect(!r.screen.contains("online") && !r.screen.contains("connecting"), "no connection state without a backend")
    }

    @Test("a truncated MP3 plays its first part, says once what is missing, then the next track plays")
    func truncatedPlays() throws {
        let tmux = try TmuxSession.musit(["--offline", "--device", "testnull", "--pace", Fixtures.path("truncated.mp3"),
                                          Fixtures.path("sine440.mp3")], width: 120)
        defer { tmux.kill() }
        let said = try tmux.waitFor { $0.contains("truncated.mp3: truncated MP3: audio ends at 2.0 s of 5.0 s; playing what is there") }
        #expect(said.ok, "\(said.screen)")
        #expect(said.screen.contains("▶ playing"), "it plays: \(said.screen)")
        #expect(said.screen.contains("♪ truncated"), "the cut file is the one playing: \(said.screen)")
        // About two seconds later (paced like a sound card), the second track is the current one.
        let next = try tmux.waitFor(timeout: 10) { $0.contains("♪ sine440") }
        #expect(next.ok, "the queue moved on: \(next.screen)")
    }

    @Test("a folder of tagged MP3 and FLAC files: the queue shows titles and artist · album from the tags, and the filter finds them")
    func tagsInQueue() throws {
        let folder = NSTemporaryDirectory() + "musit-tagged-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for t in Fixtures.manifest.tags {
            try FileManager.default.copyItem(atPath: Fixtures.path(t.file), toPath: folder + "/" + t.file)
        }
        try FileManager.default.copyItem(atPath: Fixtures.path("tagged.flac"), toPath: folder + "/tagged.flac")
        let tmux = try TmuxSession.musit(["--offline", "--device", "testnull", folder], width: 120, height: 30)
        defer { tmux.kill() }
        let r = try tmux.waitFor { $0.contains("Café Müller · Señor Latin · Déjà Vu") || $0.contains("Café Müller") && $0.contains("Señor Latin · Déjà Vu") }
        #expect(r.ok, "\(r.screen)")
        #expect(r.screen.contains("Old Title") && r.screen.contains("Old Artist · Old Album"), "ID3v1 too: \(r.screen)")
        #expect(!r.screen.contains("tag_v23_latin1"), "file names give way to titles: \(r.screen)")
        let flac = try tmux.waitFor { $0.contains("Fläc Title") && $0.contains("Vorbis Ärtist · Lossless") }
        #expect(flac.ok, "a FLAC's Vorbis comments too: \(flac.screen)")
        try tmux.send("/")
        try tmux.send("-l", "déjà")
        let f = try tmux.waitFor { $0.contains("Café Müller") && !$0.contains("Old Title") }
        #expect(f.ok, "the filter matches the album: \(f.screen)")
    }

    @Test(":sort album orders the queue by album and track, and the player follows that order; o goes back")
    func sortByAlbum() throws {
        let folder = NSTemporaryDirectory() + "musit-sorted-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for f in ["tag_v1.mp3", "tag_v23_latin1.mp3", "tagged.flac", "tagged.ogg", "tagged.opus"] {
            try FileManager.default.copyItem(atPath: Fixtures.path(f), toPath: folder + "/" + f)
        }
        let tmux = try TmuxSession.musit(["--offline", "--device", "testnull", "--pace", folder], width: 120, height: 30)
        defer { tmux.kill() }
        // Folder order: Old Title, Café Müller, Fläc Title, Ogg ogg, Ogg opus. By album:
        // Déjà Vu, Lossless 🎵, Old Album, Open Formats (two, by path).
        func order(_ screen: String) -> [String] {
            guard let queue = screen.range(of: "┌ Queue") else { return [] }
            let rows = screen[queue.upperBound...]
            let titles = ["Old Title", "Café Müller", "Fläc Title", "Ogg Title – ogg", "Ogg Title – opus"]
            return titles.compactMap { t in rows.range(of: t).map { (t, $0.lowerBound) } }.sorted { $0.1 < $1.1 }.map(\.0)
        }
        let listed = try tmux.waitFor { order($0).count == 5 }
        #expect(order(listed.screen) == ["Old Title", "Café Müller", "Fläc Title", "Ogg Title – ogg", "Ogg Title – opus"])
        try tmux.send("Space")
        try tmux.send(":")
        try tmux.send("-l", "sort album")
        try tmux.send("Enter")
        let sorted = try tmux.waitFor { $0.contains("by album") && order($0).first == "Café Müller" }
        #expect(sorted.ok && order(sorted.screen) == ["Café Müller", "Fläc Title", "Old Title", "Ogg Title – ogg", "Ogg Title – opus"],
                "\(sorted.screen)")
        // Fläc Title is the second row; after it, by album, comes Old Title (by folder it was the Ogg).
        try tmux.send("j")
        try tmux.send("Enter")
        try tmux.press(until: "♪ Fläc Title", "the selected row plays")
        try tmux.send("Space")
        try tmux.send("n")
        let next = try tmux.waitFor { $0.contains("♪ Old Title") }
        #expect(next.ok, "the player follows the album order: \(next.screen)")
        try tmux.send("o")
        let back = try tmux.waitFor { !$0.contains("by album") && order($0).first == "Old Title" }
        #expect(back.ok, "o goes back to folder order: \(back.screen)")
    }

    @Test("? lists every binding of every pane, editor and overlay, read from the screen page by page")
    func helpFromTheTables() throws {
        let tmux = try TmuxSession.musit(["--offline", "--device", "testnull", Fixtures.path("sine440.mp3")], width: 100, height: 24)
        defer { tmux.kill() }
        try tmux.press(until: "┌ Queue")
        var last = try tmux.press("?", until: "Help: keys")
        var seen = last
        // Page down while the title says there is more, each time waiting for the new page
        // (a loaded machine may take a while to draw it).
        for _ in 0..<30 where last.contains("PgDn: more") {
            try tmux.send("PageDown")
            let turned = try tmux.waitFor(timeout: 10) { $0 != last && $0.contains("Help: keys") }
            #expect(turned.ok, "PageDown turned the page: \(turned.screen)")
            guard turned.ok else { break }
            Thread.sleep(forTimeInterval: 0.1)
            last = try tmux.screen()
            seen += last
        }
        #expect(last.contains("PgUp: back"), "the last page says so: \(last)")
        for section in Help.sections {
            #expect(seen.contains(section.title), "section \(section.title) on screen")
            for e in section.entries {
                #expect(seen.contains(e.keys), "\(e.keys) (\(section.title)) on screen")
                #expect(seen.contains(String(e.summary.prefix(12))), "\(e.summary) (\(section.title)) on screen")
            }
        }
        try tmux.press("Escape", until: "┌ Queue")
    }

    @Test("a key rebound in the settings file works and the help shows it; a bad entry is said and keeps its default")
    func reboundKeys() throws {
        let config = NSTemporaryDirectory() + "musit-xdg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: config + "/musit", withIntermediateDirectories: true)
        try #"{"keys": {"global": {"togglePause": ["P"], "next": ["Ctrl-"]}}}"#
            .write(toFile: config + "/musit/config.json", atomically: true, encoding: .utf8)
        let tmux = try TmuxSession.musit(["--offline", "--device", "testnull", "--pace", Fixtures.path("sweep.mp3")], config: config)
        defer { tmux.kill() }
        try tmux.press(until: "keys.global.next: \"Ctrl-\" is not a key", "the bad entry, named, in the status bar")
        try tmux.press(until: "▶ playing")
        try tmux.send("Space")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try tmux.screen().contains("▶ playing"), "Space no longer pauses")
        try tmux.press("P", until: "⏸ paused", "P pauses")
        try tmux.press("P", until: "▶ playing", "and resumes")
        try tmux.press("?", until: "Help: keys")
        // The overlay may be read while it is still being drawn: wait for its line.
        let help = try tmux.waitFor { $0.split(separator: "\n").contains { $0.contains(" P ") && $0.contains("pause / resume") } }
        #expect(help.ok, "the help shows the new key on the line of its action: \(help.screen)")
        try tmux.press("Escape", until: "┌ Queue")
        try tmux.press("n", until: "stopped", "n, whose bad entry kept its default, still skips (past the end of the queue)")
    }

    @Test("the look section of the settings file: its visualizer switch works; a bad theme is said and keeps its default")
    func lookSettings() throws {
        let config = NSTemporaryDirectory() + "musit-xdg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: config + "/musit", withIntermediateDirectories: true)
        try #"{"look": {"theme": "sepia", "visualizer": true}}"#
            .write(toFile: config + "/musit/config.json", atomically: true, encoding: .utf8)
        let tmux = try TmuxSession.musit(["--offline", "--device", "testnull", "--pace", Fixtures.path("sweep.mp3")], config: config)
        defer { tmux.kill() }
        try tmux.press(until: "look.theme: \"sepia\" is not a theme", "the bad entry, named, in the status bar")
        try tmux.press(until: "▶ playing")
        // Eighth blocks below the full one are the visualizer's alone (the progress bar's
        // partial cells are left eighths).
        let bars: (Character) -> Bool = { "▁▂▃▄▅▆▇".contains($0) }
        let on = try tmux.waitFor { $0.contains(where: bars) }
        #expect(on.ok, "the visualizer, on from the settings file, draws bars: \(on.screen)")
        try tmux.send("v")
        let off = try tmux.waitFor { !$0.contains(where: bars) && $0.contains("vol ") }
        #expect(off.ok, "v turns it off: \(off.screen)")
    }

    @Test("ASCII boxes when the locale is not UTF-8")
    func asciiLocale() throws {
        let tmux = try TmuxSession(command: ["/usr/bin/env", "LANG=C", "LC_ALL=C", Binary.path, "--device", "testnull",
                                             Fixtures.path("sine440.mp3")],
                                   width: 100, height: 30,
                                   environment: ["ALSA_CONFIG_PATH": Fixtures.alsaConfig,
                                                 "XDG_CONFIG_HOME": NSTemporaryDirectory() + "musit-xdg-\(UUID().uuidString)"])
        defer { tmux.kill() }
        let r = try tmux.waitFor(text: "+ Queue ")
        #expect(r.ok, "\(r.screen)")
        #expect(!r.screen.contains("┌"))
    }

    @Test("24-bit colour on a direct-colour terminal, 256 colours on tmux-256color, none with NO_COLOR")
    func colours() throws {
        for (term, noColor, marker) in [("tmux-direct", "", "38;2;"), ("tmux-256color", "", "38;5;"), ("tmux-256color", "1", nil)] {
            let tmux = try TmuxSession(command: ["/usr/bin/env", "TERM=\(term)", "NO_COLOR=\(noColor)", Binary.path, "--device", "testnull",
                                                 Fixtures.path("sine440.mp3")],
                                       width: 100, height: 30,
                                       environment: ["ALSA_CONFIG_PATH": Fixtures.alsaConfig,
                                                     "XDG_CONFIG_HOME": NSTemporaryDirectory() + "musit-xdg-\(UUID().uuidString)"])
            defer { tmux.kill() }
            _ = try tmux.waitFor(text: "┌ Queue")
            let coloured = try tmux.tmux(["capture-pane", "-p", "-e", "-t", tmux.name])
            if let marker {
                #expect(coloured.contains(marker), "\(term) draws with \(marker)")
            } else {
                #expect(!coloured.contains("38;"), "NO_COLOR: attributes only")
                #expect(coloured.contains("\u{1B}[1m"), "bold still marks the focus")
            }
        }
    }

    @Test("a fatal signal still restores the terminal")
    func crashRestores() throws {
        let tmux = try TmuxSession.musit(["--device", "testnull", Fixtures.path("sine440.mp3")])
        defer { tmux.kill() }
        var r = try tmux.waitFor(text: "┌ Queue")
        #expect(try tmux.paneValue("#{alternate_on}") == "1")
        kill(try tmux.programPID(), SIGSEGV)
        r = try tmux.waitFor(text: "[exited 139]")
        #expect(r.ok, "died of SIGSEGV: \(r.screen)")
        #expect(try tmux.paneValue("#{alternate_on}") == "0", "alternate screen left")
    }
}
