import MusitArt

public enum Action: Equatable, Sendable {
    case key(Key)
    case mouse(MouseEvent)
    case resize(width: Int, height: Int)
    /// The player's state changed (or its position moved).
    case nowPlaying(NowPlaying)
    case pageLoaded(QueuePage)
    /// The queue's source grew or changed (a scan found files, `:add` ran).
    case queueChanged(total: Int, hasMore: Bool)
    /// Rows anywhere may have changed (the server's library lost songs): reload what is shown.
    case queueInvalidated(total: Int, hasMore: Bool)
    case scanProgress(ScanProgress)
    case message(String?)
    /// The player could not play queue entry `index`.
    case trackFailed(index: Int, reason: String)
    /// From the backend side: connection, friends, chat, answers.
    case session(SessionEvent)
    /// The UI clock (seconds), for friends' live progress, cross-fades and motion.
    case tick(Double)
    /// What plays has this artwork: `seeds` are its colours (from the cover, else the album's
    /// name); `hasPicture` says a cover exists to be scaled for the pane.
    case artwork(key: String, seeds: [OKLab], hasPicture: Bool)
    /// A cover scaled for Now Playing (off the UI thread).
    case cover(CoverCells)
    /// The visualizer's band levels for this frame.
    case spectrum([Double])
}

/// What the player should do, in the view model's words.
public enum PlayerIntent: Equatable, Sendable {
    case play(index: Int)
    case togglePause, stop, next, previous
    case seek(by: Double)
    case seekTo(Double)
    case volume(by: Int)
    case setVolume(Int)
    case cycleRepeat, toggleShuffle
    /// Play the queue in this order (indexes into it, every one once).
    case order(QueueSort)
}

/// Work for the outside world; the store hands these to its effect handler.
public enum Effect: Equatable, Sendable {
    case player(PlayerIntent)
    case fetch(QueuePageRequest)
    case add(path: String)
    case saveLayout(Layout)
    case quit
    case session(SessionEffect)
    /// A new track plays: work out its artwork (cover and colours; the album's name when it
    /// has no picture), to come back as `Action.artwork`.
    case artwork(key: String, album: String)
    /// Now Playing wants the cover at this size (a new picture, or a new box): to come back
    /// as `Action.cover`.
    case scaleCover(CoverRequest)
    /// The visualizer was turned on or off: the player's tap should (or need no longer)
    /// keep what is heard.
    case visualizer(Bool)
}

/// The reducer: all UI logic, as a pure function of state and action.
public enum Reducer {
    /// The global keys as the settings file leaves them (`KeyConfig`).
    public static var keymap: Keymap { Keymap.standard.rebound(KeyConfig.overrides(for: "global")) }
    static let resizeStep = 2
    static let seekStep = 5.0
    static let volumeStep = 5

    /// The state after `action`, and the work it asks of the outside world. A change of the
    /// cover Now Playing wants (any action may bring one: a picture, a resize, a layout)
    /// asks for it to be scaled; turning the visualizer on or off tells the player's tap.
    public static func reduce(_ s: inout AppState, _ action: Action) -> [Effect] {
        let cover = s.coverRequest, visualizer = s.appearance.visualizer
        var effects = reduceAction(&s, action)
        if let request = s.coverRequest, request != cover { effects.append(.scaleCover(request)) }
        if s.appearance.visualizer != visualizer { effects.append(.visualizer(s.appearance.visualizer)) }
        return effects
    }

    static func reduceAction(_ s: inout AppState, _ action: Action) -> [Effect] {
        switch action {
        case .key(let key):
            return handleKey(&s, key)
        case .mouse(let event):
            return handleMouse(&s, event)
        case .resize(let w, let h):
            s.width = max(0, w)
            s.height = max(0, h)
            return fetches(s.queue.setCursor(s.queue.cursor, visibleRows: s.queueRows))
        case .nowPlaying(var np):
            np.stamp = s.clock
            // A new title scrolls from its start.
            if np.title != s.nowPlaying.title { s.appearance.titleSince = s.clock }
            let newTrack = np.key != s.nowPlaying.key ? np.key : nil
            s.nowPlaying = np
            s.queue.playingIndex = np.index
            // A new track: its artwork, worked out off the UI thread.
            return newTrack.map { [.artwork(key: $0, album: np.album ?? np.title ?? $0)] } ?? []
        case .pageLoaded(let page):
            return fetches(s.queue.loaded(page, visibleRows: s.queueRows))
        case .queueChanged(let total, let hasMore):
            return fetches(s.queue.sourceChanged(total: total, hasMore: hasMore, visibleRows: s.queueRows))
        case .queueInvalidated(let total, let hasMore):
            return fetches(s.queue.invalidate(total: total, hasMore: hasMore, visibleRows: s.queueRows))
        case .scanProgress(let p):
            s.scan = p
            return []
        case .message(let m):
            s.message = m
            return []
        case .trackFailed(let index, let reason):
            s.failed[index] = reason
            return []
        case .session(let event):
            return reduceSession(&s, event)
        case .tick(let t):
            s.social.clock = t
            return []
        case .artwork(let key, let seeds, let hasPicture):
            guard key != s.appearance.artworkKey || hasPicture != s.appearance.hasPicture else { return [] }
            s.appearance.artworkKey = key
            s.appearance.hasPicture = hasPicture
            s.appearance.albumSeeds = seeds
            if s.appearance.cover?.key != key { s.appearance.cover = nil }
            s.appearance.retarget(at: s.clock)
            return []
        case .cover(let cells):
            if cells.key == s.appearance.artworkKey { s.appearance.cover = cells }
            return []
        case .spectrum(let bands):
            s.appearance.spectrum = s.appearance.visualizer ? bands : []
            return []
        }
    }

    static func fetches(_ requests: [QueuePageRequest]) -> [Effect] {
        requests.map { .fetch($0) }
    }

    // MARK: Keys

    /// A key goes to whoever owns it: the mode's editor or overlay, else the focused pane,
    /// else the global keys. Each owner's table is what the help lists (`Help.sections`).
    private static func handleKey(_ s: inout AppState, _ key: Key) -> [Effect] {
        switch s.mode {
        case .help:
            return HelpPane.handle(key, &s) ?? []
        case .confirmQuit:
            if let effects = ConfirmQuitPane.handle(key, &s) { return effects }
            s.mode = .normal
            return []
        case .stats, .profile:
            return OverlayPane.handle(key, &s) ?? []
        case .compose:
            if let effects = ComposeEditor.handle(key, &s) { return effects }
            _ = s.social.chat.compose.apply(key)
            return []
        case .signIn(var form):
            if let effects = SignInPane.handle(key, &s) { return effects }
            guard !form.busy else { return [] }
            if form.field == .username { _ = form.username.apply(key) } else { _ = form.password.apply(key) }
            s.mode = .signIn(form)
            return []
        case .filter(let text):
            if let effects = FilterEditor.handle(key, &s) { return effects }
            guard case .char(let c) = key else { return [] }
            s.mode = .filter(text + String(c))
            return fetches(s.queue.reset(filter: text + String(c), visibleRows: s.queueRows))
        case .command(let text):
            if let effects = CommandLineEditor.handle(key, &s) { return effects }
            if case .char(let c) = key { s.mode = .command(text + String(c)) }
            return []
        case .normal:
            s.message = nil
            let owned: [Effect]?
            switch s.focus {
            case .queue: owned = QueuePane.handle(key, &s)
            case .friends: owned = FriendsPane.handle(key, &s)
            case .chat: owned = ChatPane.handle(key, &s)
            case .nowPlaying: owned = nil
            }
            if let owned { return owned }
            guard let command = keymap.action(for: key) else { return [] }
            return run(&s, command)
        }
    }

    /// Runs a `:` command line.
    static func execute(_ s: inout AppState, _ line: String) -> [Effect] {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        let (name, rest) = trimmed.splitOnce(" ")
        switch name {
        case "":
            return []
        case "add", "a":
            guard !rest.isEmpty else {
                s.message = "usage: :add PATH"
                return []
            }
            return [.add(path: rest)]
        case "q", "quit":
            s.quitting = true
            return [.quit]
        case "layout":
            guard rest == "reset" else {
                s.message = "usage: :layout reset"
                return []
            }
            s.layout = .standard
            s.focus = .queue
            return [.saveLayout(s.layout)]
        case "vol", "volume":
            guard let v = Int(rest), (0...100).contains(v) else {
                s.message = "usage: :vol 0-100"
                return []
            }
            return [.player(.setVolume(v))]
        case "seek":
            guard let t = Double(rest), t >= 0 else {
                s.message = "usage: :seek SECONDS"
                return []
            }
            return [.player(.seekTo(t))]
        case "filter":
            return fetches(s.queue.reset(filter: rest, visibleRows: s.queueRows))
        case "sort":
            guard let sort = QueueSort(rawValue: rest) else {
                s.message = "usage: :sort " + QueueSort.allCases.map(\.rawValue).joined(separator: "|")
                return []
            }
            return sortQueue(&s, sort)
        case "theme":
            guard let theme = ThemeName(rawValue: rest) else {
                s.message = "usage: :theme " + ThemeName.allCases.map(\.rawValue).joined(separator: "|")
                return []
            }
            s.appearance.theme = theme
            s.appearance.retarget(at: s.clock)
            return []
        case "cover", "visualizer":
            guard let on = ["on": true, "off": false][rest] else {
                s.message = "usage: :\(name) on|off"
                return []
            }
            if name == "cover" { s.appearance.coverEnabled = on } else { s.appearance.setVisualizer(on) }
            return []
        default:
            if let effects = socialCommand(&s, name, rest) { return effects }
            s.message = "unknown command: \(name)"
            return []
        }
    }

    /// Rows and play order follow `sort` (the player keeps the track it is on).
    static func sortQueue(_ s: inout AppState, _ sort: QueueSort) -> [Effect] {
        s.message = "queue: \(sort.label)"
        return fetches(s.queue.reset(filter: s.queue.filter, sort: sort, visibleRows: s.queueRows)) + [.player(.order(sort))]
    }

    static func run(_ s: inout AppState, _ command: Command) -> [Effect] {
        let rows = s.queueRows
        switch command {
        case .togglePause: return [.player(.togglePause)]
        case .next: return [.player(.next)]
        case .previous: return [.player(.previous)]
        case .stop: return [.player(.stop)]
        case .seekBack: return [.player(.seek(by: -seekStep))]
        case .seekForward: return [.player(.seek(by: seekStep))]
        case .volumeUp: return [.player(.volume(by: volumeStep))]
        case .volumeDown: return [.player(.volume(by: -volumeStep))]
        case .cycleRepeat: return [.player(.cycleRepeat)]
        case .toggleShuffle: return [.player(.toggleShuffle)]
        case .jumpToPlaying:
            guard let playing = s.nowPlaying.index else { return [] }
            var effects: [Effect] = []
            if !s.queue.filter.isEmpty { effects += fetches(s.queue.reset(filter: "", visibleRows: rows)) }
            s.focus = .queue
            return effects + fetches(s.queue.locate(index: playing, visibleRows: rows))
        case .focusNext, .focusPrevious:
            let panes = s.visiblePanes
            guard !panes.isEmpty else { return [] }
            let i = panes.firstIndex(of: s.focus) ?? 0
            let step = command == .focusNext ? 1 : panes.count - 1
            s.focus = panes[(i + step) % panes.count]
            return []
        case .filter:
            s.focus = .queue
            s.mode = .filter(s.queue.filter)
            return []
        case .commandLine:
            s.mode = .command("")
            return []
        case .help:
            s.mode = .help
            s.helpScroll = 0
            return []
        case .quit:
            if s.nowPlaying.state == .playing {
                s.mode = .confirmQuit
                return []
            }
            s.quitting = true
            return [.quit]
        case .narrower, .wider, .shorter, .taller:
            let axis: SplitAxis = command == .narrower || command == .wider ? .horizontal : .vertical
            let delta = command == .wider || command == .taller ? resizeStep : -resizeStep
            let before = s.layout
            s.layout.resize(s.focus, axis: axis, by: delta, in: s.paneArea)
            return s.layout == before ? [] : afterLayoutChange(&s)
        case .maximize:
            s.layout.maximized = s.layout.maximized == s.focus ? nil : s.focus
            return afterLayoutChange(&s)
        case .hidePane:
            guard s.visiblePanes.count > 1 else {
                s.message = "the last pane stays"
                return []
            }
            s.layout.maximized = nil
            s.layout.hidden.insert(s.focus)
            s.focus = s.visiblePanes.first ?? .queue
            return afterLayoutChange(&s)
        case .toggleQueue: return toggle(&s, .queue)
        case .toggleNowPlaying: return toggle(&s, .nowPlaying)
        case .toggleFriends: return toggle(&s, .friends)
        case .toggleChat: return toggle(&s, .chat)
        case .toggleVisualizer:
            s.appearance.setVisualizer(!s.appearance.visualizer)
            s.message = "visualizer \(s.appearance.visualizer ? "on" : "off")"
            return []
        }
    }

    private static func toggle(_ s: inout AppState, _ pane: PaneID) -> [Effect] {
        s.layout.maximized = nil
        if s.layout.hidden.contains(pane) {
            s.layout.hidden.remove(pane)
            s.focus = pane
        } else {
            guard s.visiblePanes.count > 1 else {
                s.message = "the last pane stays"
                return []
            }
            s.layout.hidden.insert(pane)
            if s.focus == pane { s.focus = s.visiblePanes.first ?? .queue }
        }
        return afterLayoutChange(&s)
    }

    private static func afterLayoutChange(_ s: inout AppState) -> [Effect] {
        [.saveLayout(s.layout)] + fetches(s.queue.setCursor(s.queue.cursor, visibleRows: s.queueRows))
    }

    // MARK: Mouse

    private static func handleMouse(_ s: inout AppState, _ e: MouseEvent) -> [Effect] {
        guard !s.isTooSmall, s.mode == .normal || s.dragging != nil else {
            if e.kind == .press, s.mode == .help { s.mode = .normal }
            return []
        }
        let area = s.paneArea
        switch e.kind {
        case .press:
            if let border = s.layout.border(at: e.x, e.y, in: area) {
                let at = border.axis == .horizontal ? e.x : e.y
                s.dragging = border.id
                s.dragOffset = at - border.position
                return []
            }
            guard let (pane, frame) = s.frames.first(where: { $0.value.contains(x: e.x, y: e.y) }) else { return [] }
            s.focus = pane
            // The pane under the pointer answers the press.
            switch pane {
            case .queue: return QueuePane.press(x: e.x, y: e.y, frame: frame, &s)
            case .nowPlaying: return NowPlayingPane.press(x: e.x, y: e.y, frame: frame, &s)
            case .friends: return FriendsPane.press(x: e.x, y: e.y, frame: frame, &s)
            case .chat: return ChatPane.press(x: e.x, y: e.y, frame: frame, &s)
            }
        case .drag, .release:
            guard let id = s.dragging, let border = s.layout.borders(in: area).first(where: { $0.id == id }) else {
                s.dragging = nil
                return []
            }
            let at = border.axis == .horizontal ? e.x : e.y
            s.layout.moveBorder(id: id, to: at - s.dragOffset, in: area)
            if e.kind == .release {
                s.dragging = nil
                return afterLayoutChange(&s)
            }
            return []
        case .scrollUp, .scrollDown:
            guard let f = s.frames[.queue], f.contains(x: e.x, y: e.y) else { return [] }
            return fetches(s.queue.scroll(by: e.kind == .scrollUp ? -3 : 3, visibleRows: s.queueRows))
        }
    }
}

extension String {
    func splitOnce(_ separator: Character) -> (String, String) {
        guard let i = firstIndex(of: separator) else { return (self, "") }
        return (String(self[..<i]), String(self[index(after: i)...]).trimmingCharacters(in: .whitespaces))
    }

    func trimmingCharacters(in set: CharacterClass) -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}

enum CharacterClass { case whitespaces }

/// Holds the state, runs the reducer and hands effects to the outside world.
/// Confined to one thread (the UI loop); tests drive it with scripts of actions.
public final class Store {
    public private(set) var state: AppState
    private let effects: (Effect) -> Void

    public init(state: AppState, effects: @escaping (Effect) -> Void) {
        self.state = state
        self.effects = effects
    }

    public func send(_ action: Action) {
        for effect in Reducer.reduce(&state, action) { effects(effect) }
    }

    public func send(_ actions: [Action]) {
        for a in actions { send(a) }
    }
}
