import MusitArt
import MusitViewModel

/// What every pane draws with: the terminal's glyphs and the pieces panes share.
struct Pen: Sendable {
    let glyphs: Glyphs

    /// A border round `f`, the title on its top edge and an optional footer on the bottom.
    func box(_ b: inout ScreenBuffer, _ f: Rect, title: String, focused: Bool, footer: String? = nil) {
        guard f.width >= 2, f.height >= 2 else { return }
        let style: Style = focused ? .borderFocused : .border
        // Border glyphs are one cell wide: set cell by cell, without measuring text.
        for x in (f.x + 1)..<(f.maxX - 1) {
            b.set(x, f.y, Cell(glyphs.top, style))
            b.set(x, f.maxY - 1, Cell(glyphs.top, style))
        }
        b.set(f.x, f.y, Cell(glyphs.topLeft, style))
        b.set(f.maxX - 1, f.y, Cell(glyphs.topRight, style))
        b.set(f.x, f.maxY - 1, Cell(glyphs.bottomLeft, style))
        b.set(f.maxX - 1, f.maxY - 1, Cell(glyphs.bottomRight, style))
        for y in (f.y + 1)..<(f.maxY - 1) {
            b.set(f.x, y, Cell(glyphs.side, style))
            b.set(f.maxX - 1, y, Cell(glyphs.side, style))
        }
        if f.width > 4 {
            b.put(" \(title) ", x: f.x + 1, y: f.y, maxWidth: f.width - 2, style: focused ? .titleFocused : .title,
                  ellipsis: glyphs.ellipsis)
        }
        if let footer, f.width > 6 {
            let text = " \(footer) "
            let w = min(TextWidth.of(text), f.width - 4)
            b.put(text, x: f.maxX - 2 - w, y: f.maxY - 1, maxWidth: w, style: .dim, ellipsis: glyphs.ellipsis)
        }
    }

    func centered(_ b: inout ScreenBuffer, _ r: Rect, _ text: String, style: Style = .dim) {
        guard !r.isEmpty else { return }
        let w = min(TextWidth.of(text), r.width)
        b.put(text, x: r.x + (r.width - w) / 2, y: r.y + (r.height - 1) / 2, maxWidth: r.width, style: style,
              ellipsis: glyphs.ellipsis)
    }

    /// A box in the middle of the screen with `lines` in it.
    func dialog(_ b: inout ScreenBuffer, title: String, lines: [String]) {
        let w = min(b.width - 2, max(TextWidth.of(title) + 6, (lines.map { TextWidth.of($0) }.max() ?? 0) + 4))
        let h = min(b.height - 2, lines.count + 2)
        let f = Rect(x: (b.width - w) / 2, y: (b.height - h) / 2, width: w, height: h)
        b.fill((f.x, f.y, f.width, f.height), style: .overlay)
        box(&b, f, title: title, focused: true)
        for (i, l) in lines.enumerated() where f.y + 1 + i < f.maxY - 1 {
            b.put(l, x: f.x + 2, y: f.y + 1 + i, maxWidth: f.width - 4, style: .overlay, ellipsis: glyphs.ellipsis)
        }
    }

    /// `text` broken into lines of at most `width` cells, at spaces.
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var current = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: false) {
            if !current.isEmpty && TextWidth.of(current) + 1 + TextWidth.of(String(word)) > width {
                lines.append(current)
                current = String(word)
            } else {
                current = current.isEmpty ? String(word) : current + " " + word
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }
}

/// A pane's drawing, beside its keys and mouse (MusitViewModel's pane types): one type per
/// pane owns all three. It draws inside `frame`, border included, and nowhere else.
protocol PaneView {
    static func draw(_ b: inout ScreenBuffer, _ frame: Rect, _ s: AppState, _ pen: Pen)
}

/// The drawing of an overlay (help, dialogs): over the whole screen.
protocol OverlayView {
    static func draw(_ b: inout ScreenBuffer, _ s: AppState, _ pen: Pen)
}
