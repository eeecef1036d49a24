import Foundation
import MusitCodecs
import Synchronization

public enum PlaybackState: String, Sendable {
    case stopped, playing, paused
}

/// A snapshot of the player for drawing: what is audible now, not what is being decoded.
public struct PlayerStatus: Sendable, Equatable {
    public var state: PlaybackState = .stopped
    public var trackIndex: Int?
    public var track: Track?
    public var metadata: TrackMetadata?
    /// Seconds into the audible track.
    public var position: Double = 0
    public var volume: Int = 100
    public var repeatMode: RepeatMode = .off
    public var shuffle = false
    public var outputName = ""
    public var noAudioDevice = false
    public var queueCount = 0
    public var lastError: AudioError?
    /// A streamed track is waiting for the network.
    public var buffering = false

    public var duration: Double? { metadata?.duration }
}

public enum PlayerEvent: Sendable, Equatable {
    case stateChanged(PlaybackState)
    /// The track's first sample reached the device's output (not merely the decoder).
    case trackStarted(index: Int, track: Track, metadata: TrackMetadata)
    case trackEnded(index: Int, track: Track)
    /// The track could not be played (or broke off); the queue moves on.
    case trackFailed(index: Int, error: AudioError)
    case position(seconds: Double, duration: Double?)
    /// A seek landed: what is heard from now on starts at `seconds` (friends are told then,
    /// not after a guessed delay).
    case seeked(seconds: Double)
    case outputChanged(name: String, noAudioDevice: Bool)
    /// The next track's rate, channels or sample width differ: the device was opened again
    /// for `format` (after what it held had played), which took `milliseconds`.
    case outputReopened(format: PCMFormat, milliseconds: Double)
    case queueFinished
    /// A streamed track stalled (true) or has bytes again (false).
    case buffering(Bool)
    /// Volume, repeat or shuffle changed (the status has the new values).
    case settingsChanged
}

public enum PlayerCommand: Sendable {
    /// Replaces the queue; starts track `startAt` when `autoplay`, else cues it paused at 0:00.
    case load([Track], startAt: Int, autoplay: Bool)
    case append([Track])
    case play(index: Int)
    case togglePause, pause, resume, stop
    case seek(to: Double)
    case seekBy(Double)
    case setVolume(Int)
    case changeVolume(Int)
    case next, previous
    case setRepeat(RepeatMode)
    case cycleRepeat
    case setShuffle(Bool)
    case toggleShuffle
    /// Plays the queue in this order (indexes into it, each once), keeping the current track.
    case setOrder([Int])
}

public struct PlayerConfiguration: Sendable {
    /// ALSA device name.
    public var device: String = "default"
    /// Pace writes by the clock, for ALSA devices that swallow audio instantly.
    public var paceDevice = false
    public var latencyMicros: UInt32 = 200_000
    /// The next track is opened and decoded this long before the current one ends.
    public var preloadSeconds = 5.0
    /// How often position events are published.
    public var positionInterval = 0.05
    public var initialVolume = 100
    /// Loudness by the tags' ReplayGain: off, track or album.
    public var replayGain = ReplayGainMode.off
    /// Opens a track for decoding.
    public var openSource: @Sendable (Track) throws(AudioError) -> any PCMSource = { track throws(AudioError) in
        try AudioFiles.open(path: track.location)
    }

    public init(device: String = "default") {
        self.device = device
    }
}

/// The playback engine. Decoding and the blocking device writes run on one
/// dedicated thread, never on Swift's cooperative pool; callers talk to it
/// through commands and hear back through events and a status snapshot.
public final class Player: Sendable {
    private let mailbox = Mailbox<EngineMessage>()
    private let hub = EventHub()
    private let finished = DispatchSemaphore(value: 0)
    /// What the device is playing, for the visualizer.
    public let tap = AudioTap()

    public init(configuration: PlayerConfiguration = PlayerConfiguration()) {
        let mailbox = self.mailbox
        let hub = self.hub
        let finished = self.finished
        let tap = self.tap
        let thread = Thread {
            let engine = Engine(configuration: configuration, mailbox: mailbox, hub: hub, tap: tap)
            engine.run()
            finished.signal()
        }
        thread.name = "musit-audio"
        thread.qualityOfService = .userInteractive
        thread.start()
    }

    public func send(_ command: PlayerCommand) {
        mailbox.post(.command(command))
    }

    /// The current snapshot (thread-safe).
    public var status: PlayerStatus { hub.status }

    /// A new stream of every event from now on.
    public func events() -> AsyncStream<PlayerEvent> { hub.subscribe() }

    /// Calls `observer` on the audio thread for every event; keep it quick.
    public func observe(_ observer: @escaping @Sendable (PlayerEvent) -> Void) { hub.observe(observer) }

    /// Stops playback, closes the device and ends the thread. Idempotent.
    public func shutdown() {
        guard mailbox.close(with: .shutdown) else { return }
        finished.wait()
    }

    deinit { shutdown() }
}

// MARK: - Plumbing between callers and the audio thread

/// What the engine's mailbox carries.
enum EngineMessage: Sendable {
    case command(PlayerCommand)
    case shutdown
}

final class EventHub: Sendable {
    private struct State {
        var status = PlayerStatus()
        var continuations: [Int: AsyncStream<PlayerEvent>.Continuation] = [:]
        var observers: [@Sendable (PlayerEvent) -> Void] = []
        var nextID = 0
    }

    private let state = Mutex(State())

    var status: PlayerStatus { state.withLock { $0.status } }

    func update(_ change: (inout PlayerStatus) -> Void) {
        state.withLock { change(&$0.status) }
    }

    func subscribe() -> AsyncStream<PlayerEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: PlayerEvent.self, bufferingPolicy: .bufferingNewest(4096))
        let id = state.withLock { s in
            s.nextID += 1
            s.continuations[s.nextID] = continuation
            return s.nextID
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }

    func observe(_ observer: @escaping @Sendable (PlayerEvent) -> Void) {
        state.withLock { $0.observers.append(observer) }
    }

    func emit(_ event: PlayerEvent) {
        let (continuations, observers) = state.withLock { (Array($0.continuations.values), $0.observers) }
        for c in continuations { c.yield(event) }
        for o in observers { o(event) }
    }

    func finishAll() {
        let continuations = state.withLock { s in
            defer { s.continuations.removeAll() }
            return Array(s.continuations.values)
        }
        for c in continuations { c.finish() }
    }
}
