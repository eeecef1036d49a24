import MusitArt

/// How many colours the terminal shows.
public enum ColorDepth: String, Sendable {
    case mono, ansi8, palette256, trueColor

    /// From the terminal's colour count (`COLORS`); `*-direct` terminals report 2^24. Most
    /// 24-bit terminals (GNOME Terminal, iTerm2, Alacritty, WezTerm, Windows Terminal, and
    /// tmux passing it on) keep `TERM=xterm-256color` and say so in `COLORTERM` instead
    /// (`truecolor` or `24bit`, as neovim and most terminal players read it).
    public static func from(colors: Int, hasColors: Bool, colorTerm: String? = nil) -> ColorDepth {
        guard hasColors else { return .mono }
        if colors >= 0x1000000 { return .trueColor }
        // Only over a 256-colour entry: a COLORTERM inherited from the outer terminal says
        // nothing of an 8-colour one (screen) in between.
        if colors >= 256, let colorTerm, announcesTrueColor(colorTerm) { return .trueColor }
        if colors >= 256 { return .palette256 }
        if colors >= 8 { return .ansi8 }
        return .mono
    }

    /// Whether `COLORTERM`'s value promises 24-bit colour.
    public static func announcesTrueColor(_ colorTerm: String) -> Bool {
        ["truecolor", "24bit"].contains(colorTerm.lowercased())
    }
}

/// Colours and attributes for one style. Colour values are terminal colour numbers:
/// 0–7 ANSI, 0–255 palette, or 0xRRGGBB on direct-colour terminals; nil is the default colour.
public struct StyleSpec: Equatable, Hashable, Sendable {
    public var fg: Int?
    public var bg: Int?
    public var bold = false
    public var dim = false
    public var reverse = false
    public var underline = false

    public init(fg: Int? = nil, bg: Int? = nil, bold: Bool = false, dim: Bool = false,
                reverse: Bool = false, underline: Bool = false) {
        self.fg = fg; self.bg = bg; self.bold = bold; self.dim = dim; self.reverse = reverse; self.underline = underline
    }
}

/// The look of every style at a colour depth.
public struct Theme: Sendable {
    public let depth: ColorDepth
    /// Indexed by the style's raw value: looked up for every cell drawn, so no hashing.
    private let specs: [StyleSpec]

    public func spec(_ style: Style) -> StyleSpec {
        let i = Int(style.rawValue)
        return i < specs.count ? specs[i] : StyleSpec()
    }

    private static func table(_ specs: [Style: StyleSpec]) -> [StyleSpec] {
        Style.allCases.map { specs[$0] ?? StyleSpec() }
    }

    /// A picture's 24-bit colour (0xRRGGBB) as this terminal's nearest colour number.
    public func color(_ rgb: Int32) -> Int? {
        guard rgb >= 0 else { return nil }
        switch depth {
        case .trueColor: return Int(rgb)
        case .palette256: return TerminalPalette.nearest256(RGB(hex: Int(rgb)))
        case .ansi8: return TerminalPalette.nearestANSI(RGB(hex: Int(rgb)))
        case .mono: return nil
        }
    }

    /// The colours and attributes of a cell: its style's, with its picture's colours on top.
    public func spec(_ style: Style, _ paint: Paint) -> StyleSpec {
        var spec = self.spec(style)
        guard depth != .mono, paint != .none else { return spec }
        if let fg = color(paint.fg) { spec.fg = fg }
        if let bg = color(paint.bg) { spec.bg = bg }
        return spec
    }

    /// Every style in the colours of `look` (24-bit terminals): text on the tinted
    /// background, borders and titles in the cover's hue, the accent for focus and progress.
    public init(look: AmbientLook) {
        depth = .trueColor
        let bg = look.background.hex, bar = look.statusBackground.hex, overlay = look.overlayBackground.hex
        let text = look.text.hex, dim = look.dim.hex, border = look.border.hex, accent = look.accent.hex
        specs = Self.table([
            .normal: StyleSpec(fg: text, bg: bg),
            .dim: StyleSpec(fg: dim, bg: bg),
            .bold: StyleSpec(fg: text, bg: bg, bold: true),
            .border: StyleSpec(fg: border, bg: bg),
            .borderFocused: StyleSpec(fg: accent, bg: bg, bold: true),
            .title: StyleSpec(fg: border, bg: bg),
            .titleFocused: StyleSpec(fg: accent, bg: bg, bold: true),
            .selection: StyleSpec(fg: text, bg: look.selectionBackground.hex, bold: true),
            .selectionInactive: StyleSpec(fg: text, bg: bar),
            .playing: StyleSpec(fg: accent, bg: bg, bold: true),
            .accent: StyleSpec(fg: accent, bg: bg, bold: true),
            .progress: StyleSpec(fg: accent, bg: bg),
            .progressTrack: StyleSpec(fg: dim, bg: bg),
            .warning: StyleSpec(fg: look.warning.hex, bg: bg, bold: true),
            .error: StyleSpec(fg: look.error.hex, bg: bg, bold: true),
            .statusBar: StyleSpec(fg: text, bg: bar),
            .overlay: StyleSpec(fg: text, bg: overlay),
            .overlayTitle: StyleSpec(fg: look.warning.hex, bg: overlay, bold: true),
        ])
    }

    public init(depth: ColorDepth) {
        self.depth = depth
        // (truecolor RGB, 256-colour index, ANSI colour) for each accent.
        func c(_ rgb: Int, _ p256: Int, _ ansi: Int) -> Int? {
            switch depth {
            case .trueColor: return rgb
            case .palette256: return p256
            case .ansi8: return ansi
            case .mono: return nil
            }
        }
        let cyan = c(0x5FD7D7, 80, 6), blue = c(0x5F87D7, 68, 4), yellow = c(0xFFD75F, 221, 3)
        let red = c(0xFF5F5F, 203, 1), green = c(0x87D787, 114, 2), grey = c(0x808080, 244, 7)
        let selBg = c(0x3A3A5A, 60, 4), inactiveBg = c(0x303030, 236, 0), barBg = c(0x262626, 235, 0)
        let overlayBg = c(0x1C1C2C, 234, 0)
        let mono = depth == .mono
        specs = Self.table([
            .normal: StyleSpec(),
            .dim: StyleSpec(fg: grey, dim: mono),
            .bold: StyleSpec(bold: true),
            .border: StyleSpec(fg: grey, dim: mono),
            .borderFocused: StyleSpec(fg: cyan, bold: true),
            .title: StyleSpec(fg: grey),
            .titleFocused: StyleSpec(fg: cyan, bold: true, reverse: mono),
            .selection: StyleSpec(fg: mono ? nil : c(0xFFFFFF, 231, 7), bg: selBg, bold: true, reverse: mono || depth == .ansi8),
            .selectionInactive: StyleSpec(bg: inactiveBg, underline: mono),
            .playing: StyleSpec(fg: green, bold: true),
            .accent: StyleSpec(fg: cyan, bold: true),
            .progress: StyleSpec(fg: blue),
            .progressTrack: StyleSpec(fg: grey, dim: true),
            .warning: StyleSpec(fg: yellow, bold: true),
            .error: StyleSpec(fg: red, bold: true),
            .statusBar: StyleSpec(fg: mono ? nil : c(0xD0D0D0, 252, 7), bg: barBg, reverse: mono),
            .overlay: StyleSpec(bg: overlayBg),
            .overlayTitle: StyleSpec(fg: yellow, bg: overlayBg, bold: true),
        ])
    }
}
