import MusitArt
import MusitViewModel

extension ChatPane: PaneView {
    static func draw(_ b: inout ScreenBuffer, _ f: Rect, _ s: AppState, _ pen: Pen) {
        var title = s.social.chat.peer.map { "\(PaneID.chat.title): \($0)" } ?? PaneID.chat.title
        // The other conversations, with their unread counts: [ and ] switch.
        let others = s.social.conversations.filter { $0 != s.social.chat.peer }.map { peer in
            let n = s.social.unread(peer)
            return n > 0 ? "\(peer) (\(n))" : peer
        }
        if !others.isEmpty { title += "  [ \(others.joined(separator: " · ")) ]" }
        pen.box(&b, f, title: title, focused: s.focus == .chat)
        let inner = PaneGeometry.inner(f)
        if !s.signedIn { pen.centered(&b, inner, "sign in to chat") } else { conversation(&b, inner, s, focused: s.focus == .chat, pen) }
    }

    private static func conversation(_ b: inout ScreenBuffer, _ r: Rect, _ s: AppState, focused: Bool, _ pen: Pen) {
        guard !r.isEmpty else { return }
        let chat = s.social.chat
        guard chat.peer != nil else {
            pen.centered(&b, r, "pick a friend and press Enter")
            return
        }
        let composeY = r.maxY - 1
        let rows = max(0, r.height - 1)
        let end = max(0, chat.lines.count - chat.scroll)
        let start = max(0, end - rows)
        var y = composeY - (end - start)
        if start == 0 && rows > end - start && y > r.y {
            let note = chat.reachedStart ? "start of conversation" : (chat.loadingOlder ? "loading\(pen.glyphs.ellipsis)" : "")
            if !note.isEmpty { b.put(note, x: r.x + 1, y: y - 1, maxWidth: r.width - 2, style: .dim) }
        }
        for line in chat.lines[start..<end] {
            let mine = line.from == s.social.me
            var mark = ""
            if mine {
                switch line.delivery {
                case .queued: mark = pen.glyphs.unicode ? " ◷" : " ..."
                case .sent: mark = pen.glyphs.unicode ? " ✓" : " +"
                case .read: mark = pen.glyphs.unicode ? " ✓✓" : " ++"
                case .failed: mark = " !"
                }
            }
            let who = mine ? "me" : line.from
            let markWidth = TextWidth.of(mark)
            b.put("\(who): ", x: r.x + 1, y: y, maxWidth: r.width - 2, style: mine ? .dim : .accent)
            let nameWidth = TextWidth.of("\(who): ")
            b.put(line.body, x: r.x + 1 + nameWidth, y: y, maxWidth: max(0, r.width - 2 - nameWidth - markWidth),
                  style: .normal, ellipsis: pen.glyphs.ellipsis)
            if markWidth > 0 { b.put(mark, x: r.maxX - 1 - markWidth, y: y, style: line.delivery == .read ? .accent : .dim) }
            y += 1
        }
        let composing = s.mode == .compose
        let prompt = "> "
        let text = chat.compose.text
        let caret = composing ? (pen.glyphs.unicode ? "▏" : "_") : ""
        let hint = composing || !text.isEmpty ? "" : (focused ? "Enter to write" : "")
        b.put(prompt + text + caret + hint, x: r.x + 1, y: composeY, maxWidth: r.width - 2,
              style: composing ? .bold : .dim, ellipsis: pen.glyphs.ellipsis)
    }
}
