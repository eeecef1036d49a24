import MusitArt
import MusitViewModel

/// Glyphs for UTF-8 terminals and their ASCII stand-ins.
public struct Glyphs: Sendable {
    public var topLeft, top, topRight, side, bottomLeft, bottomRight: Character
    public var playing: String, ellipsis: String
    public var statePlaying: String, statePaused: String, stateStopped: String
    public var unicode: Bool

    public static let unicode = Glyphs(topLeft: "┌", top: "─", topRight: "┐", side: "│", bottomLeft: "└", bottomRight: "┘",
                                       playing: "♪", ellipsis: "…", statePlaying: "▶", statePaused: "⏸",
                                       stateStopped: "■", unicode: true)
    public static let ascii = Glyphs(topLeft: "+", top: "-", topRight: "+", side: "|", bottomLeft: "+", bottomRight: "+",
                                     playing: ">", ellipsis: "...", statePlaying: ">", statePaused: "||",
                                     stateStopped: "[]", unicode: false)
}

/// State in, screen buffer out. Pure: drawing cost depends on the screen size, not the queue's.
public struct Renderer: Sendable {
    public var glyphs: Glyphs

    public init(unicode: Bool = true) {
        glyphs = unicode ? .unicode : .ascii
    }

    public func render(_ s: AppState) -> ScreenBuffer {
        var b = ScreenBuffer(width: s.width, height: s.height)
        b.look = s.appearance.currentLook(at: s.clock)
        guard b.width > 0, b.height > 0 else { return b }
        if s.isTooSmall {
            b.put("Terminal too small", x: 0, y: 0, style: .warning, ellipsis: glyphs.ellipsis)
            b.put("need \(AppState.minimumSize.width)x\(AppState.minimumSize.height)", x: 0, y: 1, style: .dim,
                  ellipsis: glyphs.ellipsis)
            return b
        }
        for (pane, frame) in s.frames.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            drawPane(&b, pane, frame, s)
        }
        drawStatusBar(&b, s)
        switch s.mode {
        case .help: drawHelp(&b, s)
        case .confirmQuit: drawDialog(&b, title: "Quit", lines: ["Quit while playing?", "y: quit    n: stay"])
        case .signIn(let form): drawSignIn(&b, form)
        case .stats: if let stats = s.social.stats { drawStats(&b, stats) }
        case .profile:
            if let p = s.social.profile {
                drawDialog(&b, title: "Profile: \(p.username)", lines: [p.displayName, ""] + wrap(p.bio.isEmpty ? "(no bio)" : p.bio,
                                                                                                   width: min(60, b.width - 6)) + ["", "Esc closes"])
            }
        default: break
        }
        return b
    }

    /// The frame for `s`, given the last frame drawn and the state it was drawn from. When
    /// only time has moved since (the clock, the position, the visualizer's bands), only the
    /// panes that show time are drawn again over the last frame; otherwise the whole screen
    /// is. Either way the cells are those `render(s)` gives: panes never draw outside their
    /// frames, and everything else on screen is a function of what is compared here.
    public func render(_ s: AppState, after last: (state: AppState, frame: ScreenBuffer)?) -> ScreenBuffer {
        guard let last, let panes = Self.panesShowingTime(from: last.state, to: s) else { return render(s) }
        var b = last.frame
        // A cross-fade recolours every style: the whole screen changes.
        guard b.look == s.appearance.currentLook(at: s.clock) else { return render(s) }
        let frames = s.frames
        for pane in panes {
            guard let f = frames[pane] else { continue }
            if pane == .nowPlaying {
                // Its border and cover stay: only the text beside the cover moves.
                let r = PaneGeometry.nowPlayingText(PaneGeometry.inner(f), s)
                guard !r.isEmpty else { continue }
                // Most frames of the visualizer move nothing but its bars: only they are
                // drawn again.
                if let bars = spectrumRect(r, s), spectrumRect(r, last.state) == bars,
                   textMoment(r, last.state) == textMoment(r, s) {
                    b.fill((bars.x, bars.y, bars.width, bars.height), style: .normal)
                    drawSpectrum(&b, bars, s.appearance.spectrum)
                    if let look = b.look {
                        for y in bars.y..<bars.maxY {
                            b.paintBackground((r.x, y, r.width, 1), look.panel(row: y - f.y, of: f.height))
                        }
                    }
                    continue
                }
                b.fill((r.x, r.y, r.width, r.height), style: .normal)
                drawNowPlayingText(&b, r, s)
                if let look = b.look {
                    for y in r.y..<r.maxY { b.paintBackground((r.x, y, r.width, 1), look.panel(row: y - f.y, of: f.height)) }
                }
                continue
            }
            b.fill((f.x, f.y, f.width, f.height), style: .normal)
            drawPane(&b, pane, f, s)
        }
        return b
    }

    /// The panes to draw again when `new` differs from `old` only in time, or nil when
    /// anything else changed (or something is drawn over the panes).
    static func panesShowingTime(from old: AppState, to new: AppState) -> [PaneID]? {
        switch new.mode {
        case .normal, .filter, .command, .compose: break
        case .help, .confirmQuit, .signIn, .stats, .profile: return nil
        }
        func timeless(_ s: AppState) -> AppState {
            var s = s
            s.social.clock = 0
            s.nowPlaying.position = 0
            s.nowPlaying.stamp = 0
            s.appearance.spectrum = []
            return s
        }
        guard timeless(old) == timeless(new) else { return nil }
        var panes: [PaneID] = [.nowPlaying]
        // Friends' positions move with the clock too.
        if new.social.friends.contains(where: { $0.playing != nil }) { panes.append(.friends) }
        return panes
    }

    // MARK: Friends and chat

    private func drawFriends(_ b: inout ScreenBuffer, _ r: Rect, _ s: AppState, focused: Bool) {
        guard !r.isEmpty else { return }
        let social = s.social
        if social.friends.isEmpty {
            centered(&b, r, "no friends yet: :friend NAME")
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
            let dot = glyphs.unicode ? (f.online ? "●" : "○") : (f.online ? "*" : "o")
            var label = "\(dot) \(f.username)"
            switch f.relation {
            case .incoming: label += "  wants to be friends (a accept, d decline)"
            case .outgoing: label += "  (request sent)"
            case .friend: if f.unread > 0 { label += "  (\(f.unread) new)" }
            }
            b.put(label, x: r.x + 1, y: y, maxWidth: r.width - 2, style: f.unread > 0 && !selected ? .accent : style,
                  ellipsis: glyphs.ellipsis)
            if perRow == 2 {
                b.put(playingLine(f, clock: social.clock), x: r.x + 3, y: y + 1, maxWidth: max(0, r.width - 4),
                      style: selected ? style : .dim, ellipsis: glyphs.ellipsis)
            }
            y += perRow
        }
    }

    private func playingLine(_ f: Friend, clock: Double) -> String {
        guard f.relation == .friend else { return "" }
        guard let p = f.playing, p.state != .stopped, f.online else { return f.online ? "online" : "offline" }
        var position = p.position
        if p.state == .playing { position += max(0, clock - p.reportedAt) }
        if let d = p.duration { position = min(position, d) }
        let what = [p.title, p.artist].compactMap { $0 }.joined(separator: " – ")
        let glyph = p.state == .playing ? glyphs.statePlaying : glyphs.statePaused
        let times = p.duration.map { "\(Clock.format(position))/\(Clock.format($0))" } ?? Clock.format(position)
        return "\(glyph) \(what.isEmpty ? "something" : what) \(times)"
    }

    private func drawChat(_ b: inout ScreenBuffer, _ r: Rect, _ s: AppState, focused: Bool) {
        guard !r.isEmpty else { return }
        let chat = s.social.chat
        guard chat.peer != nil else {
            centered(&b, r, "pick a friend and press Enter")
            return
        }
        let composeY = r.maxY - 1
        let rows = max(0, r.height - 1)
        let end = max(0, chat.lines.count - chat.scroll)
        let start = max(0, end - rows)
        var y = composeY - (end - start)
        if start == 0 && rows > end - start && y > r.y {
            let note = chat.reachedStart ? "start of conversation" : (chat.loadingOlder ? "loading\(glyphs.ellipsis)" : "")
            if !note.isEmpty { b.put(note, x: r.x + 1, y: y - 1, maxWidth: r.width - 2, style: .dim) }
        }
        for line in chat.lines[start..<end] {
            let mine = line.from == s.social.me
            var mark = ""
            if mine {
                switch line.delivery {
                case .queued: mark = glyphs.unicode ? " ◷" : " ..."
                case .sent: mark = glyphs.unicode ? " ✓" : " +"
                case .read: mark = glyphs.unicode ? " ✓✓" : " ++"
                case .failed: mark = " !"
                }
            }
            let who = mine ? "me" : line.from
            let markWidth = TextWidth.of(mark)
            b.put("\(who): ", x: r.x + 1, y: y, maxWidth: r.width - 2, style: mine ? .dim : .accent)
            let nameWidth = TextWidth.of("\(who): ")
            b.put(line.body, x: r.x + 1 + nameWidth, y: y, maxWidth: max(0, r.width - 2 - nameWidth - markWidth),
                  style: .normal, ellipsis: glyphs.ellipsis)
            if markWidth > 0 { b.put(mark, x: r.maxX - 1 - markWidth, y: y, style: line.delivery == .read ? .accent : .dim) }
            y += 1
        }
        let composing = s.mode == .compose
        let prompt = "> "
        let text = chat.compose.text
        let caret = composing ? (glyphs.unicode ? "▏" : "_") : ""
        let hint = composing || !text.isEmpty ? "" : (focused ? "Enter to write" : "")
        b.put(prompt + text + caret + hint, x: r.x + 1, y: composeY, maxWidth: r.width - 2,
              style: composing ? .bold : .dim, ellipsis: glyphs.ellipsis)
    }

    private func wrap(_ text: String, width: Int) -> [String] {
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

    private func drawSignIn(_ b: inout ScreenBuffer, _ form: SignInForm) {
        let title = form.register ? "Register" : "Sign in"
        let mask = String(repeating: "*", count: form.password.characters.count)
        let caret = glyphs.unicode ? "▏" : "_"
        var lines = ["Server: \(form.server)", "",
                     "Username: \(form.username.text)\(form.field == .username ? caret : "")",
                     "Password: \(mask)\(form.field == .password ? caret : "")", ""]
        if form.busy { lines.append("\(form.register ? "registering" : "signing in")\(glyphs.ellipsis)") }
        if let e = form.error { lines.append(e) }
        lines.append("Enter: \(form.register ? "register" : "sign in")  Tab: field  Ctrl-R: \(form.register ? "sign in" : "register") instead  Esc: quit")
        b.fill((0, 0, b.width, b.height), style: .normal)
        drawDialog(&b, title: title, lines: lines)
    }

    private func drawStats(_ b: inout ScreenBuffer, _ st: StatsView) {
        let w = max(10, b.width - 2)
        let h = max(4, b.height - 2)
        let f = Rect(x: 1, y: 1, width: w, height: h)
        b.fill((f.x, f.y, f.width, f.height), style: .overlay)
        drawBox(&b, f, title: "Stats (Esc closes)", focused: true)
        var y = f.y + 1
        let x = f.x + 2, inner = f.width - 4
        func line(_ t: String, _ style: Style = .overlay) {
            guard y < f.maxY - 1 else { return }
            b.put(t, x: x, y: y, maxWidth: inner, style: style, ellipsis: glyphs.ellipsis)
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
                text += level > Double(row) + 0.5 ? (glyphs.unicode ? "█" : "#") : (level > Double(row) ? (glyphs.unicode ? "▄" : ".") : " ")
            }
            b.put(text, x: x, y: y, maxWidth: inner, style: .progress)
            y += 1
        }
        line("")
        line("top songs", .overlayTitle)
        for (i, t) in st.topSongs.prefix(5).enumerated() { line("\(i + 1). \(t.title) (\(t.plays))") }
    }

    // MARK: Panes

    private func drawBox(_ b: inout ScreenBuffer, _ f: Rect, title: String, focused: Bool, footer: String? = nil) {
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

    private func drawPane(_ b: inout ScreenBuffer, _ pane: PaneID, _ f: Rect, _ s: AppState) {
        let focused = s.focus == pane
        let inner = PaneGeometry.inner(f)
        switch pane {
        case .queue:
            drawBox(&b, f, title: pane.title, focused: focused, footer: queueFooter(s))
            drawQueue(&b, inner, s, focused: focused)
        case .nowPlaying:
            drawBox(&b, f, title: pane.title, focused: focused)
            drawNowPlaying(&b, inner, s)
            // The album's gradient behind the whole pane, lighter at the top.
            if let look = b.look {
                for row in 0..<f.height { b.paintBackground((f.x, f.y + row, f.width, 1), look.panel(row: row, of: f.height)) }
            }
        case .friends:
            let requests = s.social.friends.filter { $0.relation == .incoming }.count
            drawBox(&b, f, title: pane.title, focused: focused, footer: requests > 0 ? "\(requests) request\(requests == 1 ? "" : "s")" : nil)
            if !s.signedIn { centered(&b, inner, "sign in to see friends") } else { drawFriends(&b, inner, s, focused: focused) }
        case .chat:
            var title = s.social.chat.peer.map { "\(pane.title): \($0)" } ?? pane.title
            // The other conversations, with their unread counts: [ and ] switch.
            let others = s.social.conversations.filter { $0 != s.social.chat.peer }.map { peer in
                let n = s.social.unread(peer)
                return n > 0 ? "\(peer) (\(n))" : peer
            }
            if !others.isEmpty { title += "  [ \(others.joined(separator: " · ")) ]" }
            drawBox(&b, f, title: title, focused: focused)
            if !s.signedIn { centered(&b, inner, "sign in to chat") } else { drawChat(&b, inner, s, focused: focused) }
        }
    }

    private func centered(_ b: inout ScreenBuffer, _ r: Rect, _ text: String, style: Style = .dim) {
        guard !r.isEmpty else { return }
        let w = min(TextWidth.of(text), r.width)
        b.put(text, x: r.x + (r.width - w) / 2, y: r.y + (r.height - 1) / 2, maxWidth: r.width, style: style,
              ellipsis: glyphs.ellipsis)
    }

    private func queueFooter(_ s: AppState) -> String {
        var parts: [String] = []
        let q = s.queue
        if q.count > 0 { parts.append("\(q.cursor + 1)/\(q.count)\(q.hasMore ? "+" : "")") }
        if q.isFiltered { parts.append("filter: \(q.filter)") }
        if let scan = s.scan, !scan.finished { parts.append("scanning\(glyphs.ellipsis) \(scan.found)") }
        if let u = s.social.upload {
            parts.append("uploading \(u.fileIndex + 1)/\(u.fileCount) " + ProgressBar.render(fraction: u.fraction, width: 10, unicode: glyphs.unicode))
        }
        return parts.joined(separator: " · ")
    }

    private func drawQueue(_ b: inout ScreenBuffer, _ r: Rect, _ s: AppState, focused: Bool) {
        guard !r.isEmpty else { return }
        let q = s.queue
        if q.count == 0 {
            let text: String
            if let scan = s.scan, !scan.finished { text = "scanning\(glyphs.ellipsis)" }
            else if q.isFiltered { text = "no match for \u{201C}\(q.filter)\u{201D}" }
            else if q.hasMore && !q.pending.isEmpty { text = "loading\(glyphs.ellipsis)" }
            else { text = s.signedIn ? "empty: add music with :upload PATH (or :add PATH)" : "empty: add music with :add PATH" }
            centered(&b, r, text)
            return
        }
        for i in 0..<r.height {
            let row = q.top + i
            guard row < q.count else { break }
            let y = r.y + i
            guard let item = q.item(at: row) else {
                b.put(glyphs.ellipsis, x: r.x + 2, y: y, maxWidth: r.width - 2, style: .dim)
                continue
            }
            let isPlaying = item.index == q.playingIndex
            let selected = row == q.cursor
            let failure = s.failed[item.index]
            let style: Style = selected ? (focused ? .selection : .selectionInactive)
                : (isPlaying ? .playing : (failure != nil ? .error : .normal))
            if selected { b.fill((r.x, y, r.width, 1), style: style) }
            b.put(isPlaying ? glyphs.playing : " ", x: r.x, y: y, maxWidth: 1, style: style)
            var right = ""
            if let d = item.duration { right = Clock.format(d) }
            let rightWidth = right.isEmpty ? 0 : TextWidth.of(right) + 1
            var label = item.title
            if let detail = item.detail, !detail.isEmpty { label += " · " + detail }
            if let failure { label += " — " + failure }
            b.put(label, x: r.x + 2, y: y, maxWidth: max(0, r.width - 2 - rightWidth), style: style, ellipsis: glyphs.ellipsis)
            if rightWidth > 0 && r.width > rightWidth + 4 {
                b.put(right, x: r.maxX - rightWidth + 1, y: y, maxWidth: rightWidth, style: selected ? style : .dim)
            }
        }
    }

    private func drawNowPlaying(_ b: inout ScreenBuffer, _ inner: Rect, _ s: AppState) {
        guard !inner.isEmpty else { return }
        let np = s.nowPlaying
        // With the kitty protocol the terminal places the image itself over these blank cells.
        if !s.appearance.kitty, let (cover, rect) = PaneGeometry.shownCover(s) {
            drawCover(&b, rect, cover)
        }
        drawNowPlayingText(&b, PaneGeometry.nowPlayingText(inner, s), s)
    }

    /// Now Playing's text: title, artist, bar, state and times, then the visualizer or the
    /// settings. Drawn inside `r` only (frames drawn in part rely on it).
    private func drawNowPlayingText(_ b: inout ScreenBuffer, _ r: Rect, _ s: AppState) {
        guard !r.isEmpty else { return }
        let np = s.nowPlaying
        var y = r.y
        func line(_ text: String, _ style: Style = .normal) {
            guard y < r.maxY else { return }
            b.put(text, x: r.x + 1, y: y, maxWidth: max(0, r.width - 2), style: style, ellipsis: glyphs.ellipsis)
            y += 1
        }
        // A title too long for the pane scrolls in place.
        line(Marquee.frame(np.title ?? "Nothing playing", width: max(0, r.width - 2),
                           clock: s.clock - s.appearance.titleSince), .bold)
        line([np.artist, np.album].compactMap { $0 }.joined(separator: " · "), .dim)
        let duration = np.duration ?? 0
        let position = np.position(at: s.clock)
        let stateGlyph: String
        switch np.state {
        case .playing: stateGlyph = "\(glyphs.statePlaying) playing"
        case .paused: stateGlyph = "\(glyphs.statePaused) paused"
        case .stopped: stateGlyph = "\(glyphs.stateStopped) stopped"
        }
        let times = "\(Clock.format(position)) / \(Clock.format(duration))"
        if let bar = PaneGeometry.progressBar(r) {
            // One cell a scalar: set directly, nothing to measure or cut.
            var x = bar.x
            for scalar in ProgressBar.render(fraction: duration > 0 ? position / duration : 0, width: bar.width,
                                             unicode: glyphs.unicode).unicodeScalars where x < bar.x + bar.width {
                b.set(x, bar.y, Cell(code: scalar.value, .progress))
                x += 1
            }
            y += 1
        }
        line("\(stateGlyph)  \(times)", np.state == .playing ? .accent : .normal)
        if let bars = spectrumRect(r, s) {
            drawSpectrum(&b, bars, s.appearance.spectrum)
            return
        }
        line("vol \(np.volume)%  repeat \(np.repeatMode)  shuffle \(np.shuffle ? "on" : "off")", .dim)
        if np.buffering { line("buffering\(glyphs.ellipsis)", .warning) }
        if np.noAudioDevice { line("no audio device", .warning) }
        if let error = np.error { line(error, .error) }
    }

    /// Where the visualizer's bars go in Now Playing's text `r`: below the title, artist,
    /// bar and state lines, to the bottom; nil when they are not shown.
    private func spectrumRect(_ r: Rect, _ s: AppState) -> Rect? {
        guard s.appearance.visualizer, !s.appearance.spectrum.isEmpty, glyphs.unicode else { return nil }
        let y = r.y + (PaneGeometry.progressBar(r) != nil ? 4 : 3)
        guard y < r.maxY else { return nil }
        return Rect(x: r.x + 1, y: y, width: max(0, r.width - 2), height: r.maxY - y)
    }

    /// What the moving text of Now Playing shows at `s.clock`: the title's scroll step, the
    /// bar's eighths and the time. Equal moments (of states equal but for time) draw equal text.
    private func textMoment(_ r: Rect, _ s: AppState) -> (title: Int, bar: Int, time: String) {
        let np = s.nowPlaying
        let position = np.position(at: s.clock), duration = np.duration ?? 0
        let bar = PaneGeometry.progressBar(r).map {
            ProgressBar.units(fraction: duration > 0 ? position / duration : 0, width: $0.width)
        } ?? 0
        return (Marquee.step(np.title ?? "Nothing playing", width: max(0, r.width - 2), clock: s.clock - s.appearance.titleSince),
                bar, Clock.format(position))
    }

    /// The cover in `rect`: each cell an upper half block, upper pixel in front.
    private func drawCover(_ b: inout ScreenBuffer, _ rect: Rect, _ cover: CoverCells) {
        for y in 0..<rect.height {
            for x in 0..<rect.width {
                b.set(rect.x + x, rect.y + y, Cell(code: 0x2580, .normal, paint: Paint(fg: cover.top(x, y), bg: cover.bottom(x, y))))
            }
        }
    }

    /// Bars with eighth-block tops, one column per band (bands spread over the width).
    private func drawSpectrum(_ b: inout ScreenBuffer, _ r: Rect, _ bands: [Double]) {
        guard r.width > 0, r.height > 0 else { return }
        // ▁ ▂ ▃ ▄ ▅ ▆ ▇ █: U+2581 to U+2588, one eighth more each.
        for x in 0..<r.width {
            let level = bands[min(bands.count - 1, x * bands.count / r.width)]
            let units = Int((level * Double(r.height * 8)).rounded())
            for row in 0..<r.height {
                let fromBottom = units - row * 8
                guard fromBottom > 0 else { break }
                b.set(r.x + x, r.maxY - 1 - row, Cell(code: 0x2580 + UInt32(min(8, fromBottom)), .progress))
            }
        }
    }

    // MARK: Status bar and overlays

    private func drawStatusBar(_ b: inout ScreenBuffer, _ s: AppState) {
        let y = s.height - 1
        b.fill((0, y, s.width, 1), style: .statusBar)
        let text: String
        switch s.mode {
        case .filter(let f): text = "/" + f + (glyphs.unicode ? "▏" : "_")
        case .command(let c): text = ":" + c + (glyphs.unicode ? "▏" : "_")
        case .compose: text = "writing to \(s.social.chat.peer ?? ""): Enter sends, Esc stops"
        default:
            text = s.message ?? "? help  q quit  / filter  : command  Tab focus  Space pause  Enter play"
        }
        if s.social.connection != .none, s.width >= 50 {
            let me = s.social.me.map { "\($0) · " } ?? ""
            let tag = " \(me)\(s.social.connection.label) "
            let w = min(TextWidth.of(tag), s.width / 2)
            b.put(tag, x: s.width - w, y: y, maxWidth: w, style: s.social.connection == .online ? .statusBar : .warning,
                  ellipsis: glyphs.ellipsis)
            b.put(text, x: 0, y: y, maxWidth: s.width - w - 1, style: s.message != nil && s.mode == .normal ? .warning : .statusBar,
                  ellipsis: glyphs.ellipsis)
            return
        }
        b.put(text, x: 0, y: y, maxWidth: s.width, style: s.message != nil && s.mode == .normal ? .warning : .statusBar,
              ellipsis: glyphs.ellipsis)
    }

    private func drawDialog(_ b: inout ScreenBuffer, title: String, lines: [String]) {
        let w = min(b.width - 2, max(TextWidth.of(title) + 6, (lines.map { TextWidth.of($0) }.max() ?? 0) + 4))
        let h = min(b.height - 2, lines.count + 2)
        let f = Rect(x: (b.width - w) / 2, y: (b.height - h) / 2, width: w, height: h)
        b.fill((f.x, f.y, f.width, f.height), style: .overlay)
        drawBox(&b, f, title: title, focused: true)
        for (i, l) in lines.enumerated() where f.y + 1 + i < f.maxY - 1 {
            b.put(l, x: f.x + 2, y: f.y + 1 + i, maxWidth: f.width - 4, style: .overlay, ellipsis: glyphs.ellipsis)
        }
    }

    /// The help overlay: every section of `Help`, written from the tables that handle the
    /// keys, in as many columns as fit, scrolled by `helpScroll`.
    private func drawHelp(_ b: inout ScreenBuffer, _ s: AppState) {
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
        drawBox(&b, f, title: title + ")", focused: true)
        let colWidth = (f.width - 2) / layout.columns
        for (i, row) in shown.enumerated() {
            let col = i / layout.perColumn, line = i % layout.perColumn
            let y = f.y + 1 + line
            guard y < f.maxY - 1 else { continue }
            let x = f.x + 1 + col * colWidth
            switch row {
            case .title(let text):
                b.put(text, x: x, y: y, maxWidth: colWidth - 1, style: .overlayTitle, ellipsis: glyphs.ellipsis)
            case .entry(let e):
                b.put(TextWidth.pad(e.keys, width: keyWidth, ellipsis: glyphs.ellipsis), x: x + 1, y: y, style: .overlayTitle)
                b.put(e.summary, x: x + keyWidth + 2, y: y, maxWidth: colWidth - keyWidth - 3, style: .overlay,
                      ellipsis: glyphs.ellipsis)
            }
        }
    }
}

public enum Clock {
    public static func format(_ seconds: Double) -> String {
        let total = max(0, Int(seconds.isFinite ? seconds : 0))
        let h = total / 3600, m = (total % 3600) / 60, s = total % 60
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return h > 0 ? "\(h):\(two(m)):\(two(s))" : "\(m):\(two(s))"
    }
}

/// A line too long for its place, scrolling: it rests at its start, then moves left four
/// cells a second and comes round again.
public enum Marquee {
    public static let speed = 4.0
    public static let rest = 2.0
    static let gap = "   •   "

    public static func frame(_ text: String, width: Int, clock: Double) -> String {
        guard width > 0, TextWidth.of(text) > width else { return text }
        let loop = Array(text + gap)
        let offset = step(text, width: width, clock: clock)
        let rotated = String(loop[offset...] + loop[..<offset])
        return TextWidth.fit(rotated, width: width, ellipsis: "")
    }

    /// How many characters the title has scrolled by at `clock` (0 when it fits).
    public static func step(_ text: String, width: Int, clock: Double) -> Int {
        guard width > 0, TextWidth.of(text) > width else { return 0 }
        let count = text.count + gap.count
        let cycle = Double(count) / speed + rest
        let t = clock.truncatingRemainder(dividingBy: cycle)
        return t < rest ? 0 : min(count - 1, Int((t - rest) * speed))
    }

    /// Seconds until the frame changes, from `clock`.
    public static func nextChange(_ text: String, width: Int, clock: Double) -> Double? {
        guard width > 0, TextWidth.of(text) > width else { return nil }
        let cycle = Double(Array(text + gap).count) / speed + rest
        let t = clock.truncatingRemainder(dividingBy: cycle)
        return t < rest ? rest - t : 1 / speed - (t - rest).truncatingRemainder(dividingBy: 1 / speed)
    }
}

/// A smooth progress bar: full blocks and an eighth-block glyph for the partial cell.
public enum ProgressBar {
    static let eighths = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]

    /// The eighths of a cell filled at `fraction`.
    public static func units(fraction: Double, width: Int) -> Int {
        let f = max(0, min(1, fraction.isFinite ? fraction : 0))
        return Int((f * Double(max(0, width) * 8)).rounded(.down))
    }

    public static func render(fraction: Double, width: Int, unicode: Bool = true) -> String {
        guard width > 0 else { return "" }
        let f = max(0, min(1, fraction.isFinite ? fraction : 0))
        if !unicode {
            let filled = Int((f * Double(width)).rounded(.down))
            return String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        }
        let units = units(fraction: f, width: width)
        let full = units / 8, part = units % 8
        var s = String(repeating: "█", count: full)
        if full < width {
            s += part > 0 ? eighths[part] : "░"
            s += String(repeating: "░", count: width - full - 1)
        }
        return s
    }
}
