import MusitArt
import MusitViewModel

extension QueuePane: PaneView {
    static func draw(_ b: inout ScreenBuffer, _ f: Rect, _ s: AppState, _ pen: Pen) {
        let focused = s.focus == .queue
        pen.box(&b, f, title: PaneID.queue.title, focused: focused, footer: footer(s, pen))
        rows(&b, PaneGeometry.inner(f), s, focused: focused, pen)
    }

    private static func footer(_ s: AppState, _ pen: Pen) -> String {
        var parts: [String] = []
        let q = s.queue
        if q.count > 0 { parts.append("\(q.cursor + 1)/\(q.count)\(q.hasMore ? "+" : "")") }
        if !q.filter.isEmpty { parts.append("filter: \(q.filter)") }
        if q.sort != .path { parts.append(q.sort.label) }
        if let scan = s.scan, !scan.finished { parts.append("scanning\(pen.glyphs.ellipsis) \(scan.found)") }
        if let u = s.social.upload {
            parts.append("uploading \(u.fileIndex + 1)/\(u.fileCount) " + ProgressBar.render(fraction: u.fraction, width: 10, unicode: pen.glyphs.unicode))
        }
        return parts.joined(separator: " · ")
    }

    private static func rows(_ b: inout ScreenBuffer, _ r: Rect, _ s: AppState, focused: Bool, _ pen: Pen) {
        guard !r.isEmpty else { return }
        let q = s.queue
        if q.count == 0 {
            let text: String
            if let scan = s.scan, !scan.finished { text = "scanning\(pen.glyphs.ellipsis)" }
            else if !q.filter.isEmpty { text = "no match for \u{201C}\(q.filter)\u{201D}" }
            else if q.hasMore && !q.pending.isEmpty { text = "loading\(pen.glyphs.ellipsis)" }
            else { text = s.signedIn ? "empty: add music with :upload PATH (or :add PATH)" : "empty: add music with :add PATH" }
            pen.centered(&b, r, text)
            return
        }
        for i in 0..<r.height {
            let row = q.top + i
            guard row < q.count else { break }
            let y = r.y + i
            guard let item = q.item(at: row) else {
                b.put(pen.glyphs.ellipsis, x: r.x + 2, y: y, maxWidth: r.width - 2, style: .dim)
                continue
            }
            let isPlaying = item.index == q.playingIndex
            let selected = row == q.cursor
            let failure = s.failed[item.index]
            let style: Style = selected ? (focused ? .selection : .selectionInactive)
                : (isPlaying ? .playing : (failure != nil ? .error : .normal))
            if selected { b.fill((r.x, y, r.width, 1), style: style) }
            b.put(isPlaying ? pen.glyphs.playing : " ", x: r.x, y: y, maxWidth: 1, style: style)
            var right = ""
            if let d = item.duration { right = Clock.format(d) }
            let rightWidth = right.isEmpty ? 0 : TextWidth.of(right) + 1
            var label = item.title
            if let detail = item.detail, !detail.isEmpty { label += " · " + detail }
            if let failure { label += " — " + failure }
            b.put(label, x: r.x + 2, y: y, maxWidth: max(0, r.width - 2 - rightWidth), style: style, ellipsis: pen.glyphs.ellipsis)
            if rightWidth > 0 && r.width > rightWidth + 4 {
                b.put(right, x: r.maxX - rightWidth + 1, y: y, maxWidth: rightWidth, style: selected ? style : .dim)
            }
        }
    }
}
