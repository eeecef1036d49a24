import MusitArt
@testable import MusitRender
import Testing

/// The bytes `FrameEncoder` writes, read back by a small terminal that understands what an
/// xterm-compatible direct-colour terminal does with them: cursor moves, clears, SGR and
/// text. Each frame written over the last must leave on that terminal exactly the frame.
@Suite("Frames encoded for the terminal")
struct FrameEncoderTests {
    struct Shown: Equatable {
        var text = " "
        var pen = Pen()
    }

    struct Pen: Equatable {
        var fg: Int?, bg: Int?
        var bold = false, dim = false, reverse = false, underline = false
    }

    /// A terminal screen, fed bytes.
    struct Terminal {
        let width: Int, height: Int
        var cells: [Shown]
        var x = 0, y = 0
        var pen = Pen()

        init(width: Int, height: Int) {
            self.width = width
            self.height = height
            cells = Array(repeating: Shown(), count: width * height)
        }

        mutating func feed(_ bytes: [UInt8]) {
            var i = 0
            var text: [UInt8] = []
            func flushText() {
                for ch in String(decoding: text, as: UTF8.self) {
                    let w = TextWidth.of(ch)
                    guard w > 0, y < height, x < width else { continue }
                    cells[y * width + x] = Shown(text: String(ch), pen: pen)
                    if w == 2, x + 1 < width { cells[y * width + x + 1] = Shown(text: "", pen: pen) }
                    x += w
                }
                text.removeAll()
            }
            while i < bytes.count {
                guard bytes[i] == 0x1B else { text.append(bytes[i]); i += 1; continue }
                flushText()
                precondition(bytes[i + 1] == UInt8(ascii: "["), "only CSI sequences are expected")
                var j = i + 2
                while !(0x40...0x7E).contains(bytes[j]) { j += 1 }
                let params = String(decoding: bytes[(i + 2)..<j], as: UTF8.self)
                switch bytes[j] {
                case UInt8(ascii: "H"):
                    let p = params.split(separator: ";").map { Int($0)! }
                    (y, x) = p.isEmpty ? (0, 0) : (p[0] - 1, p[1] - 1)
                case UInt8(ascii: "J"):
                    cells = Array(repeating: Shown(text: " ", pen: pen), count: width * height)
                case UInt8(ascii: "m"):
                    sgr(params.isEmpty ? ["0"] : params.split(separator: ";", omittingEmptySubsequences: false).map(String.init))
                default:
                    Issue.record("unexpected sequence \(params)\(Character(Unicode.Scalar(bytes[j])))")
                }
                i = j + 1
            }
            flushText()
        }

        mutating func sgr(_ params: [String]) {
            for p in params {
                if p.hasPrefix("38:2::") || p.hasPrefix("48:2::") {
                    let v = p.dropFirst(6).split(separator: ":").map { Int($0)! }
                    let rgb = v[0] << 16 | v[1] << 8 | v[2]
                    if p.hasPrefix("38") { pen.fg = rgb } else { pen.bg = rgb }
                    continue
                }
                switch Int(p)! {
                case 0: pen = Pen()
                case 1: pen.bold = true
                case 2: pen.dim = true
                case 4: pen.underline = true
                case 7: pen.reverse = true
                case 30...37: pen.fg = Int(p)! - 30
                case 39: pen.fg = nil
                case 40...47: pen.bg = Int(p)! - 40
                case 49: pen.bg = nil
                default: Issue.record("unexpected SGR \(p)")
                }
            }
        }
    }

    static func expected(_ b: ScreenBuffer, _ theme: Theme, x: Int, y: Int) -> Shown {
        let cell = b[x, y]
        // The right half of a wide glyph shows in the glyph's colours.
        let owner = cell.continuation && x > 0 ? b[x - 1, y] : cell
        let s = theme.spec(owner.style, owner.paint)
        let pen = Pen(fg: s.fg, bg: s.bg, bold: s.bold, dim: s.dim, reverse: s.reverse, underline: s.underline)
        if cell.continuation { return Shown(text: "", pen: pen) }
        let glyph = GlyphCodes.character(cell.code)
        if TextWidth.of(glyph) == 2 && x == b.width - 1 { return Shown(text: " ", pen: pen) }
        return Shown(text: String(glyph), pen: pen)
    }

    static let glyphs: [Character] = ["a", "Z", " ", "█", "▀", "▁", "▄", "─", "│", "é", "…", "漢", "字", "🎵", "🇫🇷", "e\u{301}", "👩‍💻"]

    @Test("every frame encoded over the last leaves the terminal showing that frame", arguments: [false, true])
    func roundTrip(albumColours: Bool) {
        var rand = FrameTests.Rand(x: albumColours ? 11 : 5)
        let width = 37, height = 9
        let theme = albumColours
            ? Theme(look: AmbientLook(seeds: Ambient.seeds(fromName: "Red Album")))
            : Theme(depth: .mono)
        var encoder = FrameEncoder(codes: .xtermDirect())
        var terminal = Terminal(width: width, height: height)
        var last: ScreenBuffer?
        var frame = ScreenBuffer(width: width, height: height)
        var bytes = 0, wholeBytes = 0
        var whole = FrameEncoder(codes: .xtermDirect())
        var older: [ScreenBuffer] = []
        for step in 0..<600 {
            // A few cells change, as between frames; now and then many; and now and then the
            // screen goes back to what it was a few frames ago (as bars fall back).
            let changes = step % 50 == 0 ? 300 : 1 + rand.next(12)
            older.append(frame)
            if older.count > 4 { older.removeFirst() }
            if step % 5 == 4 { frame = older[rand.next(older.count)] }
            for _ in 0..<(step % 5 == 4 ? 0 : changes) {
                let x = rand.next(width), y = rand.next(height)
                let style = Style.allCases[rand.next(Style.allCases.count)]
                let paint = rand.next(3) == 0 ? Paint(fg: Int32(rand.next(0x1000000)), bg: Int32(rand.next(0x1000000))) : .none
                let glyph = Self.glyphs[rand.next(Self.glyphs.count)]
                frame.put(String(glyph), x: x, y: y, style: style)
                if paint != .none, !frame[x, y].continuation { frame[x, y].paint = paint }
            }
            var out: [UInt8] = []
            // `last` is kept as the terminal keeps it: only the cells sent are copied in. A
            // cell missed there would be diffed against wrongly, and shown wrong, later.
            encoder.encode(frame, over: &last, theme: theme, into: &out)
            bytes += out.count
            var all: [UInt8] = []
            whole.encode(frame, from: nil, theme: theme, into: &all)
            wholeBytes += all.count
            terminal.feed(out)
            for y in 0..<height {
                for x in 0..<width {
                    let want = Self.expected(frame, theme, x: x, y: y), got = terminal.cells[y * width + x]
                    if want != got {
                        Issue.record("step \(step), cell (\(x), \(y)): shown \(got), want \(want)")
                        return
                    }
                }
            }
        }
        // Only changes are sent: far less than drawing every frame whole.
        #expect(bytes * 4 < wholeBytes)
    }

    @Test("an unchanged frame costs no bytes; a resized one clears first")
    func nothingAndResize() {
        var encoder = FrameEncoder(codes: .xtermDirect())
        var frame = ScreenBuffer(width: 10, height: 3)
        frame.put("hello", x: 0, y: 0)
        var out: [UInt8] = []
        encoder.encode(frame, from: frame, theme: Theme(depth: .trueColor), into: &out)
        #expect(out.isEmpty)
        encoder.encode(frame, from: ScreenBuffer(width: 12, height: 3), theme: Theme(depth: .trueColor), into: &out)
        #expect(out.starts(with: Array("\u{1B}[H\u{1B}[2J".utf8)))
    }

    @Test("without UTF-8 what is not ASCII shows as question marks as wide as the glyph")
    func ascii() {
        var encoder = FrameEncoder(codes: .xtermDirect(utf8: false))
        var frame = ScreenBuffer(width: 10, height: 1)
        frame.put("a漢é", x: 0, y: 0)
        var out: [UInt8] = []
        encoder.encode(frame, from: nil, theme: Theme(depth: .mono), into: &out)
        #expect(out.allSatisfy { $0 < 0x80 })
        var terminal = Terminal(width: 10, height: 1)
        terminal.feed(out)
        #expect(terminal.cells.prefix(4).map(\.text).joined() == "a???")
    }
}
