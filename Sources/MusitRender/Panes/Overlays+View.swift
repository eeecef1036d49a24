import MusitArt
import MusitViewModel

extension HelpPane: OverlayView {
    /// The help overlay: every section of `Help`, written from the tables that handle the
    /// keys, in as many columns as fit, scrolled by `helpScroll`.
    static func draw(_ b: inout ScreenBuffer, _ s: AppState, _ pen: Pen) {
        let rows = Help.rows
        let layout = Help.layout(width: b.width, height: b.height)
        let scroll = max(0, min(layout.maxScroll, s.helpScroll))
        let shown = Array(rows.dropFirst(scroll).prefix(layout.columns * layout.perColumn))
        let keyWidth = min(18, rows.compactMap { row -> Int? in
            if case .entry(let e) = row { return TextWidth.of(e.keys) }
            return nil
        }.max() ?? 0)
        let h = min(b.height - 1, min(shown.count, layout.perColumn) + 2)
        let f = Rect(x: 1, y: max(0, (b.height - 1 - h) / 2), width: b.width - 2, height: h)
        b.fill((f.x, f.y, f.width, f.height), style: .overlay)
        var title = "Help: keys (Esc closes"
        if layout.maxScroll > 0 { title += scroll < layout.maxScroll ? ", j / PgDn: more" : ", k / PgUp: back" }
        pen.box(&b, f, title: title + ")", focused: true)
        let colWidth = (f.width - 2) / layout.columns
        for (i, row) in shown.enumerated() {
            let col = i / layout.perColumn, line = i % layout.perColumn
            let y = f.y + 1 + line
            guard y < f.maxY - 1 else { continue }
            let x = f.x + 1 + col * colWidth
            switch row {
            case .title(let text):
                b.put(text, x: x, y: y, maxWidth: colWidth - 1, style: .overlayTitle, ellipsis: pen.glyphs.ellipsis)
            case .entry(let e):
                b.put(TextWidth.pad(e.keys, width: keyWidth, ellipsis: pen.glyphs.ellipsis), x: x + 1, y: y, style: .overlayTitle)
                b.put(e.summary, x: x + keyWidth + 2, y: y, maxWidth: colWidth - keyWidth - 3, style: .overlay,
                      ellipsis: pen.glyphs.ellipsis)
            }
        }
    }
}

extension SignInPane: OverlayView {
    static func draw(_ b: inout ScreenBuffer, _ s: AppState, _ pen: Pen) {
        guard case .signIn(let form) = s.mode else { return }
        let title = form.register ? "Register" : "Sign in"
        let mask = String(repeating: "*", count: form.password.characters.count)
        let caret = pen.glyphs.unicode ? "▏" : "_"
        var lines = ["Server: \(form.server)", "",
                     "Username: \(form.username.text)\(form.field == .username ? caret : "")",
                     "Password: \(mask)\(form.field == .password ? caret : "")", ""]
        if form.busy { lines.append("\(form.register ? "registering" : "signing in")\(pen.glyphs.ellipsis)") }
        if let e = form.error { lines.append(e) }
        lines.append("Enter: \(form.register ? "register" : "sign in")  Tab: field  Ctrl-R: \(form.register ? "sign in" : "register") instead  Esc: quit")
        b.fill((0, 0, b.width, b.height), style: .normal)
        pen.dialog(&b, title: title, lines: lines)
    }
}

extension ConfirmQuitPane: OverlayView {
    static func draw(_ b: inout ScreenBuffer, _ s: AppState, _ pen: Pen) {
        pen.dialog(&b, title: "Quit", lines: ["Quit while playing?", "y: quit    n: stay"])
    }
}

/// Statistics and profiles.
extension OverlayPane: OverlayView {
    static func draw(_ b: inout ScreenBuffer, _ s: AppState, _ pen: Pen) {
        switch s.mode {
        case .stats:
            if let stats = s.social.stats { self.stats(&b, stats, pen) }
        case .profile:
            if let p = s.social.profile {
                pen.dialog(&b, title: "Profile: \(p.username)", lines: [p.displayName, ""]
                           + Pen.wrap(p.bio.isEmpty ? "(no bio)" : p.bio, width: min(60, b.width - 6)) + ["", "Esc closes"])
            }
        default: break
        }
    }

    private static func stats(_ b: inout ScreenBuffer, _ st: StatsView, _ pen: Pen) {
        let w = max(10, b.width - 2)
        let h = max(4, b.height - 2)
        let f = Rect(x: 1, y: 1, width: w, height: h)
        b.fill((f.x, f.y, f.width, f.height), style: .overlay)
        pen.box(&b, f, title: "Stats (Esc closes)", focused: true)
        var y = f.y + 1
        let x = f.x + 2, inner = f.width - 4
        func line(_ t: String, _ style: Style = .overlay) {
            guard y < f.maxY - 1 else { return }
            b.put(t, x: x, y: y, maxWidth: inner, style: style, ellipsis: pen.glyphs.ellipsis)
            y += 1
        }
        line("users \(st.users)  songs \(st.songs)  storage \(st.storageBytes / 1_000_000) MB  listeners now \(st.listenersNow)",
             .overlayTitle)
        line("")
        let maxPlays = max(1, st.playsPerDay.map(\.plays).max() ?? 1)
        let barRows = max(1, min(8, (f.maxY - 1 - y) - 3 - min(5, st.topSongs.count)))
        line("plays per day, last \(st.playsPerDay.count) days (max \(maxPlays))")
        let days = st.playsPerDay.suffix(max(1, inner))
        for row in (0..<barRows).reversed() where y < f.maxY - 1 {
            var text = ""
            for d in days {
                let level = Double(d.plays) / Double(maxPlays) * Double(barRows)
                text += level > Double(row) + 0.5 ? (pen.glyphs.unicode ? "█" : "#") : (level > Double(row) ? (pen.glyphs.unicode ? "▄" : ".") : " ")
            }
            b.put(text, x: x, y: y, maxWidth: inner, style: .progress)
            y += 1
        }
        line("")
        line("top songs", .overlayTitle)
        for (i, t) in st.topSongs.prefix(5).enumerated() { line("\(i + 1). \(t.title) (\(t.plays))") }
    }
}
