/// The control strings of the terminal at hand (from its terminfo entry), for `FrameEncoder`.
/// Parameterised strings are functions; absent capabilities are empty.
public struct TerminalCodes: Sendable {
    /// Moves the cursor to (row, column), both from 0.
    public var moveTo: @Sendable (_ row: Int, _ column: Int) -> [UInt8]
    /// Sets the foreground or background to a colour number (the theme's: 0–7, 0–255 or 0xRRGGBB).
    public var foreground: @Sendable (Int) -> [UInt8]
    public var background: @Sendable (Int) -> [UInt8]
    /// Back to the default colours (`op`).
    public var defaultColors: [UInt8]
    /// Every attribute off (`sgr0`).
    public var reset: [UInt8]
    public var bold: [UInt8]
    public var dim: [UInt8]
    public var reverse: [UInt8]
    public var underline: [UInt8]
    /// Clears the screen (`clear`).
    public var clear: [UInt8]
    /// Whether writing the bottom-right cell scrolls the screen (`am` without `xenl`).
    public var bottomRightScrolls: Bool
    /// Whether the terminal takes UTF-8; otherwise what is not ASCII shows as `?`.
    public var utf8: Bool

    public init(moveTo: @escaping @Sendable (Int, Int) -> [UInt8], foreground: @escaping @Sendable (Int) -> [UInt8],
                background: @escaping @Sendable (Int) -> [UInt8], defaultColors: [UInt8], reset: [UInt8],
                bold: [UInt8], dim: [UInt8], reverse: [UInt8], underline: [UInt8], clear: [UInt8],
                bottomRightScrolls: Bool, utf8: Bool) {
        self.moveTo = moveTo
        self.foreground = foreground
        self.background = background
        self.defaultColors = defaultColors
        self.reset = reset
        self.bold = bold
        self.dim = dim
        self.reverse = reverse
        self.underline = underline
        self.clear = clear
        self.bottomRightScrolls = bottomRightScrolls
        self.utf8 = utf8
    }

    /// An xterm-compatible terminal with direct colour (tmux-direct, xterm-direct), as its
    /// terminfo entry gives it: the reference `FrameEncoder`'s tests decode.
    public static func xtermDirect(utf8: Bool = true) -> TerminalCodes {
        @Sendable func csi(_ s: String) -> [UInt8] { Array(("\u{1B}[" + s).utf8) }
        @Sendable func color(_ base: Int, _ c: Int) -> [UInt8] {
            c < 8 ? csi("\(base + c)m") : csi("\(base + 8):2::\(c >> 16 & 255):\(c >> 8 & 255):\(c & 255)m")
        }
        return TerminalCodes(moveTo: { csi("\($0 + 1);\($1 + 1)H") }, foreground: { color(30, $0) },
                             background: { color(40, $0) }, defaultColors: csi("39;49m"), reset: csi("m"),
                             bold: csi("1m"), dim: csi("2m"), reverse: csi("7m"), underline: csi("4m"),
                             clear: csi("H") + csi("2J"), bottomRightScrolls: false, utf8: utf8)
    }
}

/// Turns what changed between two frames into the bytes that draw it: cursor moves, colour
/// and attribute changes only where they change, and the glyphs, all in one buffer the
/// terminal gets in one write.
///
/// This replaces curses' own refresh: curses diffed the frame a second time against its
/// copy of the screen, looked up colour pairs, polled for typeahead, swapped signal handlers
/// and wrote a frame in three or four pieces; a visualizer frame cost as much in curses as
/// in drawing. The terminal's attributes are known only within a frame: every frame starts
/// and ends with them reset.
public struct FrameEncoder: Sendable {
    public let codes: TerminalCodes
    private var fgCache: [Int: [UInt8]] = [:]
    private var bgCache: [Int: [UInt8]] = [:]
    /// Cursor moves, by row and column (a screen's worth at most).
    private var moves: [Int: [UInt8]] = [:]
    /// Colour strings kept (covers and fades bring many colours; most frames reuse a few).
    static let cacheLimit = 4096

    public init(codes: TerminalCodes) {
        self.codes = codes
    }

    /// Appends to `out` the bytes that turn the screen showing `old` (nil: unknown, so
    /// everything is drawn after a clear) into one showing `new`, in `theme`'s colours.
    public mutating func encode(_ new: ScreenBuffer, from old: ScreenBuffer?, theme: Theme, into out: inout [UInt8]) {
        var old = old
        encode(new, over: &old, theme: theme, into: &out)
    }

    /// `encode(_:from:theme:into:)`, then makes `old` what the screen shows: only the cells
    /// sent are copied into it. A terminal keeps what it drew this way, so its copy is never
    /// shared with the frame the loop draws into next, and drawing in place copies nothing.
    public mutating func encode(_ new: ScreenBuffer, over old: inout ScreenBuffer?, theme: Theme, into out: inout [UInt8]) {
        let runs = new.diff(from: old)
        let cleared = old == nil || old?.width != new.width || old?.height != new.height
        if cleared { out += codes.clear }
        if cleared || old?.look != new.look {
            old = new
        } else {
            for run in runs { old!.replace(x: run.x, y: run.y, with: run.cells) }
        }
        guard !runs.isEmpty else { return }
        out += codes.reset
        out += codes.defaultColors
        // What the terminal's pen is set to.
        var pen = StyleSpec()
        var last: (style: Style, paint: Paint)?
        let width = new.width, height = new.height
        for run in runs {
            var x = run.x
            var placed = false
            for cell in run.cells {
                defer { x += 1 }
                // The right half of a wide character: the terminal moved past it already.
                if cell.continuation { continue }
                if !placed {
                    out += move(run.y, x)
                    placed = true
                }
                if last?.style != cell.style || last?.paint != cell.paint {
                    let want = theme.spec(cell.style, cell.paint)
                    if want != pen { set(want, over: &pen, into: &out) }
                    last = (cell.style, cell.paint)
                }
                if x == width - 1 && run.y == height - 1 && codes.bottomRightScrolls { continue }
                let code = cell.code
                if code >= 0x20 && code < 0x7F {
                    out.append(UInt8(code))
                    continue
                }
                let cellWidth = TextWidth.of(code: code)
                if cellWidth == 2 && x + 1 >= width {
                    out.append(0x20)
                    continue
                }
                if !codes.utf8 || code < 0x20 || (code >= 0x7F && code < 0xA0) {
                    // Nothing the terminal can show: a stand-in as wide as the glyph.
                    let stand: UInt8 = code < 0x20 || (code >= 0x7F && code < 0xA0) ? 0x20 : UInt8(ascii: "?")
                    for _ in 0..<max(1, cellWidth) { out.append(stand) }
                    continue
                }
                if code < GlyphCodes.clusterBase {
                    if let scalar = Unicode.Scalar(code) { UTF8.encode(scalar) { out.append($0) } } else { out.append(0x20) }
                } else {
                    out += Array(String(GlyphCodes.character(code)).utf8)
                }
                // Where the terminal may measure a glyph differently (emoji sequences,
                // ambiguous widths), what follows is placed by position, so one odd glyph
                // cannot shift the rest of the row.
                if code >= GlyphCodes.clusterBase || cellWidth != 1 || code >= 0x1F000 { placed = false }
            }
        }
        out += codes.reset
        out += codes.defaultColors
    }

    private mutating func set(_ want: StyleSpec, over pen: inout StyleSpec, into out: inout [UInt8]) {
        // Attributes can only be turned off all at once, colours with them.
        if (pen.bold && !want.bold) || (pen.dim && !want.dim) || (pen.reverse && !want.reverse)
            || (pen.underline && !want.underline) {
            out += codes.reset
            out += codes.defaultColors
            pen = StyleSpec()
        }
        if want.bold && !pen.bold { out += codes.bold }
        if want.dim && !pen.dim { out += codes.dim }
        if want.reverse && !pen.reverse { out += codes.reverse }
        if want.underline && !pen.underline { out += codes.underline }
        if (want.fg == nil && pen.fg != nil) || (want.bg == nil && pen.bg != nil) {
            out += codes.defaultColors
            pen.fg = nil
            pen.bg = nil
        }
        if let fg = want.fg, fg != pen.fg { out += foreground(fg) }
        if let bg = want.bg, bg != pen.bg { out += background(bg) }
        pen = want
    }

    private mutating func foreground(_ c: Int) -> [UInt8] { Self.cached(c, in: &fgCache, codes.foreground) }
    private mutating func background(_ c: Int) -> [UInt8] { Self.cached(c, in: &bgCache, codes.background) }
    private mutating func move(_ row: Int, _ column: Int) -> [UInt8] {
        Self.cached(row << 16 | column, in: &moves) { [codes] in codes.moveTo($0 >> 16, $0 & 0xFFFF) }
    }

    /// A control string from `cache`, made (by terminfo, which formats it each time) when
    /// missing; past `cacheLimit` strings the cache starts again.
    private static func cached(_ key: Int, in cache: inout [Int: [UInt8]], _ make: (Int) -> [UInt8]) -> [UInt8] {
        if let s = cache[key] { return s }
        if cache.count >= cacheLimit { cache.removeAll(keepingCapacity: true) }
        let s = make(key)
        cache[key] = s
        return s
    }
}
