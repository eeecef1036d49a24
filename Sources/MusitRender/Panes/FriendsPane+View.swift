import MusitArt
import MusitViewModel

extension FriendsPane: PaneView {
    static func draw(_ b: inout ScreenBuffer, _ f: Rect, _ s: AppState, _ pen: Pen) {
        let requests = s.social.friends.filter { $0.relation == .incoming }.count
        pen.box(&b, f, title: PaneID.friends.title, focused: s.focus == .friends,
                footer: requests > 0 ? "\(requests) request\(requests == 1 ? "" : "s")" : nil)
        let inner = PaneGeometry.inner(f)
        if !s.signedIn { pen.centered(&b, inner, "sign in to see friends") } else { list(&b, inner, s, focused: s.focus == .friends, pen) }
    }

    private static func list(_ b: inout ScreenBuffer, _ r: Rect, _ s: AppState, focused: Bool, _ pen: Pen) {
        guard !r.isEmpty else { return }
        let social = s.social
        if social.friends.isEmpty {
            pen.centered(&b, r, "no friends yet: :friend NAME")
            return
        }
        // Two rows a friend: name and state, then what they play.
        let (perRow, top) = PaneGeometry.friends(r, count: social.friends.count, cursor: social.friendCursor)
        var y = r.y
        for i in max(0, top)..<social.friends.count where y + perRow - 1 < r.maxY {
            let f = social.friends[i]
            let selected = i == social.friendCursor
            let style: Style = selected ? (focused ? .selection : .selectionInactive) : .normal
            if selected { b.fill((r.x, y, r.width, perRow), style: style) }
            let dot = pen.glyphs.unicode ? (f.online ? "●" : "○") : (f.online ? "*" : "o")
            var label = "\(dot) \(f.username)"
            switch f.relation {
            case .incoming: label += "  wants to be friends (a accept, d decline)"
            case .outgoing: label += "  (request sent)"
            case .friend: if f.unread > 0 { label += "  (\(f.unread) new)" }
            }
            b.put(label, x: r.x + 1, y: y, maxWidth: r.width - 2, style: f.unread > 0 && !selected ? .accent : style,
                  ellipsis: pen.glyphs.ellipsis)
            if perRow == 2 {
                b.put(playingLine(f, clock: social.clock, pen), x: r.x + 3, y: y + 1, maxWidth: max(0, r.width - 4),
                      style: selected ? style : .dim, ellipsis: pen.glyphs.ellipsis)
            }
            y += perRow
        }
    }

    private static func playingLine(_ f: Friend, clock: Double, _ pen: Pen) -> String {
        guard f.relation == .friend else { return "" }
        guard let p = f.playing, p.state != .stopped, f.online else { return f.online ? "online" : "offline" }
        var position = p.position
        if p.state == .playing { position += max(0, clock - p.reportedAt) }
        if let d = p.duration { position = min(position, d) }
        let what = [p.title, p.artist].compactMap { $0 }.joined(separator: " – ")
        let glyph = p.state == .playing ? pen.glyphs.statePlaying : pen.glyphs.statePaused
        let times = p.duration.map { "\(Clock.format(position))/\(Clock.format($0))" } ?? Clock.format(position)
        return "\(glyph) \(what.isEmpty ? "something" : what) \(times)"
    }
}
