import Foundation
import MusitArt
import MusitAudio
import MusitCodecs
import MusitConfig
import MusitClient
import MusitImage
import MusitLibrary
import MusitRender
import MusitTerminal
import MusitViewModel
import Synchronization

/// The full-screen player: terminal input, player events and library pages all become
/// actions on one store, run on the calling thread; each batch of actions draws one frame.
public final class TerminalApp {
    private let player: Player
    private let paths: [String]
    private let layoutStore: LayoutStore
    private let inbox: Inbox
    private let session: Session?
    private let serverName: String
    /// What the settings file got wrong, for the status bar at start.
    private let notice: String?
    private let look: LookSettings
    private let kittyDetected: Bool

    /// `session` connects the social panes (and, with no `paths`, the queue) to a backend;
    /// actions it posts go through `inbox`.
    public init(player: Player, paths: [String], session: Session? = nil, serverName: String = "", inbox: Inbox = Inbox(),
                notice: String? = nil, look: LookSettings = LookSettings(),
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.notice = notice
        self.look = look
        kittyDetected = KittyGraphics.detected(environment)
        self.player = player
        self.paths = paths
        self.session = session
        self.serverName = serverName
        self.inbox = inbox
        layoutStore = LayoutStore(directory: XDGPaths(environment: environment).configHome + "/musit")
        tagCache = XDGPaths(environment: environment).cacheHome + "/musit/tags.json"
    }

    /// Where the tags of local files are kept between runs.
    private let tagCache: String

    /// A local file's tags for the queue (off the cooperative pool: the library's own queue).
    static func queueTags(_ path: String) -> LocalLibrary.Tags? {
        guard let meta = AudioFiles.readTags(path: path) else { return nil }
        guard meta.title != nil || meta.artist != nil || meta.album != nil else { return nil }
        return LocalLibrary.Tags(title: meta.title, artist: meta.artist, album: meta.album, track: meta.trackNumber)
    }

    /// Runs until quit or a terminating signal; the terminal is restored in every case.
    public func run() {
        let inbox = self.inbox
        let player = self.player
        let started = Atomic<Bool>(false)
        // The order the player plays a sorted queue in follows the library: tags read or
        // files found after the sort change it, and the player is told again.
        let sorted = Mutex(QueueSort.path)
        // Set once the library exists; cleared when the loop ends (the library's callback
        // holds this, so the two would otherwise keep each other).
        let libraryRef = Mutex<LocalLibrary?>(nil)
        let ordering = DispatchQueue(label: "musit.queue-order", qos: .userInitiated)
        let reorder: @Sendable () -> Void = {
            let sort = sorted.withLock { $0 }
            guard sort != .path else { return }
            ordering.async {
                guard let library = libraryRef.withLock({ $0 }) else { return }
                player.send(.setOrder(library.order(sort)))
            }
        }
        let library = LocalLibrary(readTags: Self.queueTags, cacheFile: tagCache) { event in
            switch event {
            case .changed(let total, let scanning, let added):
                if !added.isEmpty {
                    let tracks = added.map { Track($0.path) }
                    if started.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
                        player.send(.load(tracks, startAt: 0, autoplay: true))
                    } else {
                        player.send(.append(tracks))
                    }
                }
                inbox.post(.queueChanged(total: total, hasMore: scanning))
                if !added.isEmpty { reorder() }
            case .progress(let p):
                inbox.post(.scanProgress(p))
            case .page(let page):
                inbox.post(.pageLoaded(page))
            case .problem(let text):
                inbox.post(.message(text))
            case .tagsRead(let total, let scanning):
                inbox.post(.queueInvalidated(total: total, hasMore: scanning))
                reorder()
            }
        }
        libraryRef.withLock { $0 = library }
        defer { libraryRef.withLock { $0 = nil } }
        let session = self.session
        player.observe { event in
            if case .trackFailed(let index, let error) = event {
                inbox.post(.trackFailed(index: index, reason: error.message))
            }
            if case .outputReopened(let format, let ms) = event {
                inbox.post(.message(String(format: "output: %@ (reopened in %.0f ms)", format.description, ms)))
            }
            // A damaged file plays what it has; said once, as it starts.
            if case .trackStarted(_, let track, let meta) = event, let damage = meta.damage {
                inbox.post(.message("\((track.location as NSString).lastPathComponent): \(damage); playing what is there"))
            }
            switch event {
            case .stateChanged, .trackStarted, .queueFinished:
                session?.playerChanged(player.status, seeked: false)
            case .seeked:
                // Friends see the new position once the engine has moved there.
                session?.playerChanged(player.status, seeked: true)
            case .position(let seconds, _):
                session?.playerProgress(index: player.status.trackIndex, position: seconds)
            default:
                break
            }
            // The loop reads the player's status each time it wakes; position reports do not
            // wake it (`FrameClock` knows when the bar next moves), every other change does.
            if case .position = event { return }
            inbox.wake()
        }
        let serverQueue = session.flatMap { $0.libraryIsQueue && paths.isEmpty ? $0.queueSource : nil }

        let terminal = CursesTerminal()
        let signals = SignalWatcher { inbox.post(.quitSignal) }
        terminal.start()
        defer {
            terminal.stop()
            _ = signals
        }
        let size = terminal.size
        var initial = AppState(width: size.width, height: size.height, layout: layoutStore.load() ?? .standard)
        initial.unicode = terminal.unicode
        initial.serverName = serverName
        if session != nil { initial.social.connection = .connecting }
        if layoutStore.loadError != nil { initial.message = "layout file unreadable; using the standard layout" }
        if let notice { initial.message = notice }
        initial.appearance.theme = ThemeName(rawValue: look.theme) ?? .album
        initial.appearance.coverEnabled = look.cover
        initial.appearance.setVisualizer(look.visualizer)
        initial.appearance.trueColor = terminal.depth == .trueColor
        initial.appearance.canPaint = terminal.depth != .mono && terminal.unicode
        initial.appearance.kitty = initial.appearance.canPaint && (look.kitty || kittyDetected)
        initial.appearance.retarget(at: 0)
        let renderer = Renderer(unicode: terminal.unicode)
        let covers = CoverLoader(client: session?.client) { inbox.post($0) }
        let layoutStore = self.layoutStore
        let seen = SeenStatus()
        let store = Store(state: initial) { effect in
            switch effect {
            case .artwork(let key, let album):
                // The embedded picture of what the loop last read from the player.
                let status = seen.status
                covers.artwork(key: key, embedded: status?.track?.location == key ? status?.metadata?.cover?.data : nil, album: album)
            case .scaleCover(let request):
                covers.scale(request)
            case .visualizer(let on):
                // The engine feeds the tap only while a visualizer shows it.
                player.tap.listen(on)
            case .player(.order(let sort)):
                // The library knows the order; the server's queue keeps its own.
                if serverQueue == nil {
                    sorted.withLock { $0 = sort }
                    if sort == .path {
                        ordering.async { player.send(.setOrder(library.order(.path))) }
                    } else {
                        reorder()
                    }
                }
            case .player(let intent):
                if let command = Self.command(intent) { player.send(command) }
            case .fetch(let request):
                if let serverQueue { serverQueue.request(request) } else { library.request(request) }
            case .add(let path): library.add([path])
            case .saveLayout(let layout): layoutStore.save(layout)
            case .session(let e): session?.handle(e)
            case .quit: break
            }
        }
        terminal.startInput { input in
            switch input {
            case .key(let k): inbox.post(.action(.key(k)))
            case .mouse(let m): inbox.post(.action(.mouse(m)))
            case .resize(let w, let h): inbox.post(.action(.resize(width: w, height: h)))
            case .repaint: inbox.wake()
            }
        }
        player.tap.listen(store.state.appearance.visualizer)
        store.send(.resize(width: size.width, height: size.height))
        if serverQueue == nil { library.add(paths) }
        session?.start()
        defer { session?.stop() }
        FrameLoop(store: store, player: player, inbox: inbox, renderer: renderer, terminal: terminal, covers: covers,
                  seen: seen).run()
    }

    /// The player's command for an intent; nil for what the app answers itself (`.order`).
    static func command(_ intent: PlayerIntent) -> PlayerCommand? {
        switch intent {
        case .play(let index): return .play(index: index)
        case .togglePause: return .togglePause
        case .stop: return .stop
        case .next: return .next
        case .previous: return .previous
        case .seek(let by): return .seekBy(by)
        case .seekTo(let t): return .seek(to: t)
        case .volume(let by): return .changeVolume(by)
        case .setVolume(let v): return .setVolume(v)
        case .cycleRepeat: return .cycleRepeat
        case .toggleShuffle: return .toggleShuffle
        case .order: return nil
        }
    }

    static func nowPlaying(_ s: PlayerStatus) -> NowPlaying {
        var np = NowPlaying()
        switch s.state {
        case .playing: np.state = .playing
        case .paused: np.state = .paused
        case .stopped: np.state = .stopped
        }
        np.index = s.trackIndex
        np.key = s.track?.location
        np.title = s.metadata?.title ?? s.track.map { URL(fileURLWithPath: $0.location).deletingPathExtension().lastPathComponent }
        np.artist = s.metadata?.artist
        np.album = s.metadata?.album
        np.position = s.position
        np.duration = s.duration
        np.volume = s.volume
        np.repeatMode = s.repeatMode.rawValue
        np.shuffle = s.shuffle
        np.noAudioDevice = s.noAudioDevice
        np.error = s.lastError?.description
        np.buffering = s.buffering
        return np
    }
}

