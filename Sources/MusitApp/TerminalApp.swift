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
            case .progress(let p):
                inbox.post(.scanProgress(p))
            case .page(let page):
                inbox.post(.pageLoaded(page))
            case .problem(let text):
                inbox.post(.message(text))
            case .tagsRead(let total, let scanning):
                inbox.post(.queueInvalidated(total: total, hasMore: scanning))
            }
        }
        let session = self.session
        player.observe { event in
            if case .trackFailed(let index, let error) = event {
                inbox.post(.trackFailed(index: index, reason: error.message))
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
        let store = Store(state: initial) { effect in
            switch effect {
            case .player(.order(let sort)):
                // The library knows the order; the server's queue keeps its own.
                if serverQueue == nil {
                    let library = library
                    DispatchQueue.global(qos: .userInitiated).async { player.send(.setOrder(library.order(sort))) }
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
        store.send(.resize(width: size.width, height: size.height))
        if serverQueue == nil { library.add(paths) }
        session?.start()
        defer { session?.stop() }
        // The last frame and the state it shows. The frame is drawn over in place: the
        // terminal keeps its own copy, so nothing else holds it and nothing is copied.
        var shownState = store.state
        var frame = renderer.render(shownState)
        terminal.draw(frame)
        var artworkFor: String?
        var coverAsked: CoverRequest?
        var analyser = SpectrumAnalyser()
        // When something other than the visualizer next moves, and how much the visualizer
        // had heard when it last drew.
        var due = 0.0
        var heardEnd: Int64 = -1
        var drawnAt: UInt64 = 0
        while !store.state.quitting {
            // Sleep until something on screen moves (or input and events arrive): an idle
            // screen wakes nobody, a playing one at most `FrameClock.maxRate` times a second.
            var wait = FrameClock.delay(store.state, at: ProcessInfo.processInfo.systemUptime)
            // The engine feeds the tap only while a visualizer shows it.
            player.tap.listen(store.state.appearance.visualizer)
            if store.state.appearance.visualizer, store.state.nowPlaying.state == .playing, !player.tap.movesBetweenWrites() {
                // The device takes audio in blocks and tells no delay: what is heard moves
                // only when the engine writes, and the tap wakes the loop then (no sooner
                // than a frame after the last).
                wait = max(wait, due - ProcessInfo.processInfo.systemUptime)
                player.tap.wakeAfterWrite(notBefore: drawnAt + UInt64(1e9 / FrameClock.maxRate)) { [inbox] in inbox.wake() }
            }
            let messages = inbox.take(timeout: wait)
            // Woken for the visualizer alone: no input, no event, and nothing else on screen
            // due (`due` says when the clock, the bar, a scrolling title or a fade next move).
            // The state then moves only by the bars: the clock, the player's status and the
            // cover are not read again.
            let barsOnly = messages.isEmpty && store.state.appearance.visualizer
                && store.state.nowPlaying.state == .playing && ProcessInfo.processInfo.systemUptime < due
            // ... and when the device has played nothing since they were drawn (one that
            // takes audio in large blocks and tells no delay), not even they moved.
            if barsOnly && player.tap.heardEnd() == heardEnd { continue }
            if !barsOnly {
                // The clock first: what the messages start (a title, a fade) starts now.
                store.send(.tick(ProcessInfo.processInfo.systemUptime))
                for message in messages {
                    switch message {
                    case .action(let a): store.send(a)
                    case .wake: break
                    case .quitSignal: return
                    }
                }
                let status = player.status
                var np = Self.nowPlaying(status)
                np.stamp = store.state.nowPlaying.stamp
                if np != store.state.nowPlaying { store.send(.nowPlaying(np)) }
                // A new track: its cover and colours, worked out off the UI thread.
                let key = status.track?.location
                if key != artworkFor, let key {
                    artworkFor = key
                    covers.artwork(key: key, embedded: status.metadata?.cover?.data, album: status.metadata?.album ?? np.title ?? key)
                }
                if let request = store.state.coverRequest, request != coverAsked {
                    coverAsked = request
                    covers.scale(request)
                }
            }
            if store.state.appearance.visualizer {
                heardEnd = player.tap.heardEnd()
                let playing = store.state.nowPlaying.state == .playing
                if playing, let rate = analyser.samples.withUnsafeMutableBufferPointer({ player.tap.heard(into: $0) }) {
                    store.send(.spectrum(analyser.levels(sampleRate: rate, bands: FrameClock.bands)))
                } else if !store.state.appearance.spectrum.isEmpty, !playing {
                    store.send(.spectrum([]))
                }
            }
            // Only what moved is drawn again when nothing but time has changed.
            if barsOnly {
                renderer.redrawBands(store.state, over: &frame, drawnFrom: shownState)
                // Only the bands moved (`redrawBands` checks it in debug builds): the rest of
                // the state, a large struct, is not copied.
                shownState.appearance.spectrum = store.state.appearance.spectrum
            } else {
                renderer.render(store.state, over: &frame, drawnFrom: shownState)
                shownState = store.state
            }
            // The terminal draws only what differs from what it drew last (nothing, often).
            terminal.draw(frame)
            drawnAt = AudioTap.now()
            if barsOnly { continue }
            let now = ProcessInfo.processInfo.systemUptime
            due = now + FrameClock.delay(store.state, at: now, visualizer: false)
            if store.state.appearance.kitty {
                terminal.showImage(PaneGeometry.shownCover(store.state).flatMap { shown in
                    covers.picture(shown.cover.key).map { (shown.cover.key, $0, shown.rect) }
                })
            }
        }
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

/// When the next frame is due: as soon as something visible moves, and never more often
/// than `maxRate` a second.
public enum FrameClock {
    public static let maxRate = 30.0
    public static let bands = 32
    /// Nothing moves: the loop still wakes on input and events, and now and then to tick.
    public static let idle = 30.0

    /// Seconds until the next frame is due; without `visualizer`, as if it were off.
    public static func delay(_ s: AppState, at now: Double, visualizer: Bool = true) -> Double {
        let minimum = 1 / maxRate
        let a = s.appearance
        if a.fading(at: now) { return minimum }
        let np = s.nowPlaying
        if np.state == .playing && a.visualizer && visualizer { return minimum }
        let text = s.frames[.nowPlaying].map { PaneGeometry.nowPlayingText(PaneGeometry.inner($0), s) }
        var next = idle
        if s.social.friends.contains(where: { $0.playing != nil }) { next = 1 }
        if np.state == .playing {
            let position = np.position(at: now)
            // The clock's next second.
            next = min(next, 1 - position.truncatingRemainder(dividingBy: 1))
            // The bar's next eighth of a cell.
            if let duration = np.duration, duration > 0, let text, let bar = PaneGeometry.progressBar(text) {
                let step = duration / Double(bar.width * 8)
                next = min(next, step - position.truncatingRemainder(dividingBy: step))
            }
        }
        if let text, let title = np.title, let change = Marquee.nextChange(title, width: text.width - 2, clock: now - a.titleSince) {
            next = min(next, change)
        }
        return max(minimum, next + 0.002)
    }
}

/// Covers decoded, measured and scaled on their own queue (never the UI thread or Swift's
/// cooperative pool); the last few pictures are kept for rescaling after a resize.
final class CoverLoader: Sendable {
    private let queue = DispatchQueue(label: "musit-covers", qos: .utility)
    private let pictures = Mutex<[(key: String, picture: Picture)]>([])
    private let client: APIClient?
    private let post: @Sendable (Action) -> Void
    static let kept = 8
    static let side = 256

    init(client: APIClient?, post: @escaping @Sendable (Action) -> Void) {
        self.client = client
        self.post = post
    }

    /// Works out the artwork of the track at `key`: its embedded picture, or for a server
    /// song the server's cover; the colours from the picture, else from the album's name.
    func artwork(key: String, embedded: [UInt8]?, album: String) {
        if embedded == nil, let id = SongLocation.id(of: key), let client {
            Task {
                let bytes = try? await client.cover(song: id)
                self.queue.async { self.analyse(key: key, bytes: bytes ?? nil, album: album) }
            }
        } else {
            queue.async { self.analyse(key: key, bytes: embedded, album: album) }
        }
    }

    private func analyse(key: String, bytes: [UInt8]?, album: String) {
        // At most `side` pixels a side: cells need far fewer, and the kitty protocol sends
        // what is kept, for the terminal to scale.
        let picture = bytes.flatMap { try? ImageDecoder.decode($0) }.map { p in
            let scale = min(1, Double(Self.side) / Double(max(p.width, p.height)))
            return p.scaled(width: max(1, Int(Double(p.width) * scale)), height: max(1, Int(Double(p.height) * scale)))
        }
        if let picture {
            pictures.withLock { list in
                list.removeAll { $0.key == key }
                list.append((key, picture))
                if list.count > Self.kept { list.removeFirst() }
            }
        }
        let seeds = picture.map { Ambient.seeds(from: $0) } ?? Ambient.seeds(fromName: album)
        post(.artwork(key: key, seeds: seeds, hasPicture: picture != nil))
    }

    /// The decoded picture of `key`, if kept.
    func picture(_ key: String) -> Picture? {
        pictures.withLock { $0.last { $0.key == key }?.picture }
    }

    func scale(_ request: CoverRequest) {
        queue.async {
            guard let picture = self.picture(request.key) else { return }
            let fit = CoverCells.fit(width: picture.width, height: picture.height, maxColumns: request.columns, maxRows: request.rows)
            self.post(.cover(CoverCells(key: request.key, picture: picture, columns: fit.columns, rows: fit.rows)))
        }
    }
}

/// Messages for the UI loop from other threads.
public final class Inbox: Sendable {
    enum Message: Sendable {
        case action(Action)
        case wake
        case quitSignal
    }

    /// The messages, and whether the loop sleeps waiting for one (then the first post wakes it).
    private let box = Mutex<(messages: [Message], sleeping: Bool)>(([], false))
    /// Signalled once per sleep, by the post that ends it. A semaphore waits on the
    /// monotonic clock, and a wake costs one system call on each side: a condition variable
    /// cost a second one each time a wait timed out (the mutex it takes back is marked
    /// contended), which at thirty frames a second was a tenth of the loop's system calls.
    private let bell = DispatchSemaphore(value: 0)

    public init() {}

    public func post(_ action: Action) { post(.action(action)) }

    /// Wakes the loop with nothing to deliver (it reads the player's status when it wakes).
    public func wake() { post(.wake) }

    func post(_ message: Message) {
        let ring = box.withLock { b in
            b.messages.append(message)
            defer { b.sleeping = false }
            return b.sleeping
        }
        if ring { bell.signal() }
    }

    /// The messages posted since the last call, waiting up to `timeout` seconds for one.
    func take(timeout: Double) -> [Message] {
        let got = box.withLock { b in
            defer { b.messages.removeAll() }
            b.sleeping = b.messages.isEmpty && timeout > 0
            return b.messages
        }
        guard got.isEmpty, timeout > 0 else { return got }
        let rung = bell.wait(timeout: .now() + .nanoseconds(Int(min(timeout, 3600) * 1e9))) == .success
        let (messages, owed) = box.withLock { b in
            defer { b.messages.removeAll() }
            // Timed out just as a post came: it rings (or has rung) the bell.
            let owed = !rung && !b.sleeping
            b.sleeping = false
            return (b.messages, owed)
        }
        // Take that ring now, so the next sleep is not cut short by it.
        if owed { bell.wait() }
        return messages
    }
}

/// SIGINT, SIGTERM and SIGHUP end the main loop (which restores the terminal).
///
/// The signals are blocked in every thread (`blockTerminationSignals()` runs first thing
/// in main, before any thread exists, so all threads inherit the mask) and one thread
/// takes them with sigwait(). No handler runs in signal context, and no other thread
/// (the audio thread, ncurses) can swallow them.
public final class SignalWatcher: Sendable {
    public static let signals = [SIGINT, SIGTERM, SIGHUP]

    public static func blockTerminationSignals() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
        // A parent may have left them ignored, and the kernel drops ignored signals even
        // when blocked: restore the default action (it never runs while they are blocked).
        for sig in signals { signal(sig, SIG_DFL) }
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for sig in signals { sigaddset(&set, sig) }
        return set
    }

    /// Calls `handler` on the signal thread for each termination signal.
    public init(_ handler: @escaping @Sendable () -> Void) {
        Self.blockTerminationSignals()
        let thread = Thread {
            var set = Self.signalSet()
            while true {
                var sig: Int32 = 0
                if sigwait(&set, &sig) == 0 { handler() }
            }
        }
        thread.name = "musit-signals"
        thread.start()
    }
}

/// The layout, saved as JSON under the XDG config directory and restored at start.
public final class LayoutStore: Sendable {
    public let path: String
    private let problem = Mutex<String?>(nil)

    public init(directory: String) {
        path = directory + "/layout.json"
    }

    public var loadError: String? { problem.withLock { $0 } }

    public func load() -> Layout? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(Layout.self, from: data)
        } catch {
            problem.withLock { $0 = "\(path): \(error)" }
            return nil
        }
    }

    public func save(_ layout: Layout) {
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(layout).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            problem.withLock { $0 = "cannot save layout: \(error)" }
        }
    }
}
