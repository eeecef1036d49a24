/// What the Now Playing pane shows; filled from the player's status.
public struct NowPlaying: Equatable, Sendable {
    public enum State: String, Sendable { case stopped, playing, paused }

    public var state: State = .stopped
    public var index: Int?
    /// What plays (a file's path, a server song's location): its artwork is keyed by it.
    public var key: String?
    public var title: String?
    public var artist: String?
    public var album: String?
    public var position: Double = 0
    public var duration: Double?
    public var volume = 100
    public var repeatMode = "off"
    public var shuffle = false
    public var noAudioDevice = false
    public var error: String?
    /// A streamed track waits for the network.
    public var buffering = false
    /// The UI clock when `position` was read, for the bar to move on between reports.
    public var stamp = 0.0

    public init() {}

    /// Where playback is at UI time `clock`: the last report, moved on by the time since
    /// while playing (at most a second, so a stalled stream does not run away).
    public func position(at clock: Double) -> Double {
        guard state == .playing, !buffering else { return position }
        let moved = position + max(0, min(1, clock - stamp))
        return duration.map { min($0, moved) } ?? moved
    }
}

public enum Mode: Equatable, Sendable {
    case normal
    /// Typing a filter for the queue.
    case filter(String)
    /// Typing a command after `:`.
    case command(String)
    case help
    case confirmQuit
    /// Writing a chat message in the Chat pane.
    case compose
    /// The sign-in / register screen.
    case signIn(SignInForm)
    /// Admin statistics over the panes.
    case stats
    /// A user's profile over the panes.
    case profile
}

/// Background scanning of files and folders.
public struct ScanProgress: Equatable, Sendable {
    public var found: Int
    public var skipped: Int
    public var finished: Bool

    public init(found: Int, skipped: Int, finished: Bool) {
        self.found = found
        self.skipped = skipped
        self.finished = finished
    }
}

public struct AppState: Equatable, Sendable {
    public var width: Int { didSet { if width != oldValue { placePanes() } } }
    public var height: Int { didSet { if height != oldValue { placePanes() } } }
    public var layout: Layout { didSet { if layout != oldValue { placePanes() } } }
    /// Where each visible pane is. Kept rather than worked out from the layout on each use:
    /// the loop, the renderer and the cover ask several times a frame.
    public private(set) var frames: [PaneID: Rect] = [:]
    public var focus: PaneID = .queue
    public var queue = QueueState()
    public var nowPlaying = NowPlaying()
    public var mode: Mode = .normal
    /// A one-line message in the status bar (errors, results of commands).
    public var message: String?
    public var scan: ScanProgress?
    /// Being dragged: a split border.
    public var dragging: Int?
    /// Where on the border the drag was grabbed (the column/row before the border, or on it).
    public var dragOffset = 0
    /// Set when the app should exit.
    public var quitting = false
    /// Friends and chat come with the backend; until then they say how to get them.
    public var signedIn = false
    /// Queue indexes the player could not play, with the reason.
    public var failed: [Int: String] = [:]
    public var unicode = true
    /// Friends, chat and the connection to the backend.
    public var social = SocialState()
    /// The backend's address, for the sign-in screen.
    public var serverName = ""
    /// Rows of the help scrolled past.
    public var helpScroll = 0
    /// Cover, colours and motion.
    public var appearance = Appearance()

    /// The UI clock in seconds (advanced by `.tick`).
    public var clock: Double { social.clock }

    public init(width: Int, height: Int, layout: Layout = .standard) {
        self.width = width
        self.height = height
        self.layout = layout
        placePanes()
    }

    private mutating func placePanes() {
        frames = isTooSmall ? [:] : layout.frames(in: paneArea)
    }

    /// Smallest terminal the full UI draws in.
    public static let minimumSize = (width: 40, height: 10)

    public var isTooSmall: Bool { width < Self.minimumSize.width || height < Self.minimumSize.height }

    /// Panes take all rows but the status line.
    public var paneArea: Rect { Rect(x: 0, y: 0, width: width, height: max(0, height - 1)) }


    /// Queue rows that fit inside the Queue pane's border.
    public var queueRows: Int {
        guard let f = frames[.queue] else { return max(1, height - 3) }
        return max(1, f.height - 2)
    }

    /// Panes in focus order that are visible.
    public var visiblePanes: [PaneID] {
        layout.root.panes.filter { layout.isVisible($0) }
    }
}
