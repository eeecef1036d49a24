import MusitArt
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a cell means; a theme turns it into colours and attributes for the terminal at hand.
public enum Style: UInt8, CaseIterable, Sendable {
    case normal, dim, bold, border, borderFocused, title, titleFocused
    case selection, selectionInactive, playing, accent, progress, progressTrack
    case warning, error, statusBar, overlay, overlayTitle
}

/// Colours given by the picture rather than the style (cover pixels, gradients): 24-bit
/// RGB as 0xRRGGBB, or -1 for the style's. The terminal maps them to what it can show.
public struct Paint: Equatable, Hashable, Sendable {
    public var fg: Int32
    public var bg: Int32

    public init(fg: Int32 = -1, bg: Int32 = -1) {
        self.fg = fg
        self.bg = bg
    }

    public init(fg: RGB?, bg: RGB?) {
        self.init(fg: fg.map { Int32($0.hex) } ?? -1, bg: bg.map { Int32($0.hex) } ?? -1)
    }

    public static let none = Paint()
}

/// One terminal cell. A wide character occupies its cell and a `continuation` cell after it.
///
/// Plain data, without references: every frame is copied, compared and diffed whole, and
/// cells that held a `Character` cost a retain and a release each time (a tenth of a frame's
/// CPU). A glyph of one Unicode scalar is kept as that scalar; a cluster of several (a flag,
/// a letter with combining marks, an emoji sequence) as its number in `GlyphCodes`.
public struct Cell: Equatable, Sendable {
    /// A Unicode scalar value, or from `GlyphCodes.clusterBase` on, a cluster kept by `GlyphCodes`.
    public var code: UInt32
    public var paint: Paint
    public var style: Style
    /// The right half of a wide character drawn in the cell before.
    public var continuation: Bool

    public var glyph: Character {
        get { GlyphCodes.character(code) }
        set { code = GlyphCodes.code(newValue) }
    }

    public init(_ glyph: Character = " ", _ style: Style = .normal, continuation: Bool = false, paint: Paint = .none) {
        self.init(code: GlyphCodes.code(glyph), style, continuation: continuation, paint: paint)
    }

    public init(code: UInt32, _ style: Style = .normal, continuation: Bool = false, paint: Paint = .none) {
        self.code = code
        self.style = style
        self.continuation = continuation
        self.paint = paint
    }

    public static let blank = Cell()
}

/// Numbers for the grapheme clusters of more than one scalar that cells show; a single
/// scalar is its own number. Interned once per process and never freed; bounded: past
/// `capacity` distinct clusters (a session shows a few dozen) a new one shows as U+FFFD.
public enum GlyphCodes {
    public static let clusterBase: UInt32 = 0x11_0000
    static let capacity = 1 << 16
    private static let table = Mutex<(codes: [String: UInt32], clusters: [Character])>(([:], []))

    public static func code(_ c: Character) -> UInt32 {
        let scalars = c.unicodeScalars
        if let first = scalars.first, scalars.index(after: scalars.startIndex) == scalars.endIndex {
            return first.value
        }
        let key = String(c)
        return table.withLock { t in
            if let code = t.codes[key] { return code }
            guard t.clusters.count < capacity else { return 0xFFFD }
            let code = clusterBase + UInt32(t.clusters.count)
            t.codes[key] = code
            t.clusters.append(c)
            return code
        }
    }

    public static func character(_ code: UInt32) -> Character {
        if code < clusterBase { return Character(Unicode.Scalar(code) ?? "\u{FFFD}") }
        return table.withLock { t in
            let i = Int(code - clusterBase)
            return i < t.clusters.count ? t.clusters[i] : "\u{FFFD}"
        }
    }
}

/// A screen's worth of cells: the renderer draws into it, the terminal backend diffs it.
public struct ScreenBuffer: Equatable, Sendable {
    public static func == (a: ScreenBuffer, b: ScreenBuffer) -> Bool {
        guard a.width == b.width, a.height == b.height, a.look == b.look else { return false }
        return (0..<a.height).allSatisfy { a.sameRow($0, as: b) }
    }

    /// Whether row `y` holds the same cells in `other` (of the same size). Rows are first
    /// compared as bytes: a frame mostly repeats the last one, and cells are plain data, so
    /// equal bytes are equal cells. Unequal bytes (padding may differ) fall back to
    /// comparing cell by cell.
    func sameRow(_ y: Int, as other: ScreenBuffer) -> Bool {
        guard width > 0 else { return true }
        let range = (y * width)..<((y + 1) * width)
        let bytesEqual = cells.withUnsafeBufferPointer { a in
            other.cells.withUnsafeBufferPointer { b in
                memcmp(a.baseAddress! + range.lowerBound, b.baseAddress! + range.lowerBound,
                       range.count * MemoryLayout<Cell>.stride) == 0
            }
        }
        return bytesEqual || cells[range] == other.cells[range]
    }

    /// Puts `run` (cells of a frame of the same size) at `x`, `y`.
    mutating func replace(x: Int, y: Int, with run: ArraySlice<Cell>) {
        guard !run.isEmpty else { return }
        let start = y * width + x
        precondition(x >= 0 && y >= 0 && x + run.count <= width && y < height)
        cells.withUnsafeMutableBufferPointer { mine in
            run.withUnsafeBufferPointer { (mine.baseAddress! + start).update(from: $0.baseAddress!, count: $0.count) }
        }
    }

    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]
    /// The colours styles take in this frame (following the album); nil: the terminal's theme.
    public var look: AmbientLook?

    public init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
        cells = Array(repeating: .blank, count: self.width * self.height)
    }

    public subscript(x: Int, y: Int) -> Cell {
        get { cells[y * width + x] }
        set { cells[y * width + x] = newValue }
    }

    /// Writes `text` at (x, y), clipped to `maxWidth` cells (and the screen) with an ellipsis
    /// when it does not fit; returns the cells used.
    @discardableResult
    public mutating func put(_ text: String, x: Int, y: Int, maxWidth: Int? = nil, style: Style = .normal,
                             ellipsis: String = "…") -> Int {
        guard y >= 0, y < height, x < width else { return 0 }
        let room = min(maxWidth ?? (width - x), width - x)
        guard room > 0 else { return 0 }
        // Printable ASCII that fits, the common case: one cell a byte, nothing to measure.
        if text.utf8.count <= room, text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
            var cx = x
            var first = true
            for byte in text.utf8 {
                if cx >= 0 {
                    let i = y * width + cx
                    // Overwriting the right half of a wide character blanks its left half.
                    if first, cells[i].continuation, cx > 0 { cells[i - 1] = Cell(" ", cells[i - 1].style) }
                    first = false
                    cells[i] = Cell(code: UInt32(byte), style)
                }
                cx += 1
            }
            // ... and its left half, the right.
            if !first, cx < width, cells[y * width + cx].continuation { cells[y * width + cx] = Cell(" ", style) }
            return cx - x
        }
        let fitted = TextWidth.fit(text, width: room, ellipsis: ellipsis)
        var cx = x
        for ch in fitted {
            let w = TextWidth.of(ch)
            if w == 0 { continue }
            if cx < 0 { cx += w; continue }
            if cx + w > x + room { break }
            // Overwriting half of a wide character blanks its other half.
            if cells[y * width + cx].continuation, cx > 0 { self[cx - 1, y] = Cell(" ", self[cx - 1, y].style) }
            self[cx, y] = Cell(ch, style)
            if w == 2 { self[cx + 1, y] = Cell(" ", style, continuation: true) }
            // Overwriting the left half of a wide character blanks its right half.
            if cx + w < width, self[cx + w, y].continuation { self[cx + w, y] = Cell(" ", style) }
            cx += w
        }
        return cx - x
    }

    public mutating func fill(_ rect: (x: Int, y: Int, width: Int, height: Int), glyph: Character = " ", style: Style) {
        for yy in max(0, rect.y)..<min(height, rect.y + rect.height) {
            for xx in max(0, rect.x)..<min(width, rect.x + rect.width) {
                self[xx, yy] = Cell(glyph, style)
            }
        }
    }

    /// Gives the cells of `rect` that have no background of their own the colour `bg`.
    public mutating func paintBackground(_ rect: (x: Int, y: Int, width: Int, height: Int), _ bg: RGB) {
        for yy in max(0, rect.y)..<min(height, rect.y + rect.height) {
            for xx in max(0, rect.x)..<min(width, rect.x + rect.width) where cells[yy * width + xx].paint.bg < 0 {
                cells[yy * width + xx].paint.bg = Int32(bg.hex)
            }
        }
    }

    /// Sets one cell's glyph, style and paint.
    public mutating func set(_ x: Int, _ y: Int, _ cell: Cell) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        cells[y * width + x] = cell
    }

    /// Restyles cells without changing their glyphs.
    public mutating func restyle(x: Int, y: Int, width w: Int, style: Style) {
        guard y >= 0, y < height else { return }
        for xx in max(0, x)..<min(width, x + w) { cells[y * width + xx].style = style }
    }

    /// The screen as text, one line per row, trailing spaces kept.
    public var text: String {
        (0..<height).map { line($0) }.joined(separator: "\n")
    }

    public func line(_ y: Int) -> String {
        var s = ""
        for x in 0..<width where !self[x, y].continuation {
            let code = self[x, y].code
            if code < GlyphCodes.clusterBase, let scalar = Unicode.Scalar(code) {
                s.unicodeScalars.append(scalar)
            } else {
                s.append(GlyphCodes.character(code))
            }
        }
        return s
    }

    /// Runs of changed cells per row, for the terminal backend to draw.
    public func diff(from old: ScreenBuffer?) -> [(x: Int, y: Int, cells: ArraySlice<Cell>)] {
        // New colours for the styles repaint everything.
        guard let old, old.width == width, old.height == height, old.look == look else {
            return (0..<height).map { y in (0, y, cells[(y * width)..<((y + 1) * width)]) }
        }
        var runs: [(x: Int, y: Int, cells: ArraySlice<Cell>)] = []
        for y in 0..<height where !sameRow(y, as: old) {
            var x = 0
            while x < width {
                let i = y * width + x
                if cells[i] == old.cells[i] { x += 1; continue }
                var end = x + 1
                // Merge changes separated by a few equal cells into one run.
                while end < width {
                    let j = y * width + end
                    if cells[j] != old.cells[j] { end += 1; continue }
                    var k = end
                    while k < width && k < end + 4 && cells[y * width + k] == old.cells[y * width + k] { k += 1 }
                    if k < width && k < end + 4 { end = k } else { break }
                }
                // A run must not start on the right half of a wide character.
                var start = x
                if cells[y * width + start].continuation && start > 0 { start -= 1 }
                runs.append((start, y, cells[(y * width + start)..<(y * width + end)]))
                x = end
            }
        }
        return runs
    }
}

/// Terminal cell widths without the C locale: East Asian wide and emoji take two cells,
/// combining marks none.
public enum TextWidth {
    public static func of(_ c: Character) -> Int {
        // Most cells are ASCII, box drawing or blocks: one scalar of the Basic Multilingual
        // Plane, answered from a table instead of Unicode property lookups (which were a
        // sixth of a frame's cost).
        if let ascii = c.asciiValue { return ascii < 0x20 || ascii == 0x7F ? 0 : 1 }
        let scalars = c.unicodeScalars
        guard let first = scalars.first else { return 0 }
        if first.value < 0x10000, scalars.index(after: scalars.startIndex) == scalars.endIndex {
            return Int(bmp[Int(first.value)])
        }
        return slow(c)
    }

    /// The width of a cell's glyph.
    public static func of(code: UInt32) -> Int {
        if code < 0x10000 { return Int(bmp[Int(code)]) }
        return slow(GlyphCodes.character(code))
    }

    /// The width of every single-scalar character below U+10000, worked out once.
    static let bmp: [UInt8] = (0..<0x10000).map { v in
        guard let scalar = Unicode.Scalar(UInt32(v)) else { return 1 }
        return UInt8(slow(Character(scalar)))
    }

    static func slow(_ c: Character) -> Int {
        guard let first = c.unicodeScalars.first else { return 0 }
        if c.unicodeScalars.count == 1 && first.value < 0x300 {
            return first.value < 0x20 || (0x7F..<0xA0).contains(first.value) ? 0 : 1
        }
        let props = first.properties
        switch props.generalCategory {
        case .nonspacingMark, .enclosingMark, .format: return 0
        default: break
        }
        if props.isEmojiPresentation || c.unicodeScalars.contains(where: { $0.value == 0xFE0F }) { return 2 }
        return isWide(first.value) ? 2 : 1
    }

    static func isWide(_ v: UInt32) -> Bool {
        switch v {
        case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF,
             0xA000...0xA4CF, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60,
             0xFFE0...0xFFE6, 0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x20000...0x3FFFD:
            return true
        default:
            return false
        }
    }

    public static func of(_ s: String) -> Int {
        if s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return s.utf8.count }
        return s.reduce(0) { $0 + of($1) }
    }

    /// `s` cut to `width` cells, ending in `ellipsis` when cut.
    public static func fit(_ s: String, width: Int, ellipsis: String = "…") -> String {
        guard width > 0 else { return "" }
        if of(s) <= width { return s }
        let room = width - of(ellipsis)
        guard room >= 0 else { return String(ellipsis.prefix(width)) }
        var out = ""
        var used = 0
        for c in s {
            let w = of(c)
            if used + w > room { break }
            out.append(c)
            used += w
        }
        return out + ellipsis
    }

    /// `s` padded with spaces (or cut) to exactly `width` cells.
    public static func pad(_ s: String, width: Int, ellipsis: String = "…") -> String {
        let f = fit(s, width: width, ellipsis: ellipsis)
        return f + String(repeating: " ", count: max(0, width - of(f)))
    }
}
