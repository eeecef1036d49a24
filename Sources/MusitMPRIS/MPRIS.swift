import CMPRIS
import Foundation
import MusitAudio
import MusitCodecs
import Synchronization

/// Musit on the session bus as an MPRIS 2.2 player (`org.mpris.MediaPlayer2.musit`), so
/// desktop media keys, status bars and `playerctl` reach it.
///
/// The bus side is C (`CMPRIS`, sd-bus on a thread of its own); this side turns the player's
/// events into that state and the bus's calls into player commands, the same commands the
/// keys give. What is told: PlaybackStatus only when it changes (one play or pause, one
/// PropertiesChanged), Metadata when a track starts, LoopStatus/Shuffle/Volume when their
/// settings change, never Position (it is read when asked), and Seeked only on a seek.
public final class MPRISService: Sendable {
    /// What the bus was last told, to tell only what changed.
    private struct Told: Equatable {
        var status = "Stopped"
        var loop = "None"
        var shuffle = false
        var volume = 1.0
        var trackIndex: Int?
        var canNext = false
        var canPrevious = false
    }

    private struct State {
        var told = Told()
        var metadata: TrackMetadata?
        var track: Track?
        var position: Double = 0
        var artURL = ""
    }

    /// The C side, its pointer as an integer so the class stays Sendable; set once, taken
    /// out by `stop` under `state`'s lock.
    private let handle = Atomic<Int>(0)
    private let state = Mutex(State())
    private let perform: @Sendable (PlayerCommand) -> Void
    private let quit: @Sendable () -> Void
    private let status: @Sendable () -> PlayerStatus
    /// Where covers are written for `mpris:artUrl` (a `file://` URL), off the audio thread.
    private let covers: String
    private let coverQueue = DispatchQueue(label: "musit.mpris.covers", qos: .utility)

    /// Joins the session bus; nil (with the reason in `failure`) when there is none.
    public static func start(player: Player, coverDirectory: String, quit: @escaping @Sendable () -> Void,
                             failure: (String) -> Void) -> MPRISService? {
        let service = MPRISService(perform: { player.send($0) }, quit: quit, status: { player.status }, covers: coverDirectory)
        guard service.connect(failure: failure) else { return nil }
        player.observe { [weak service] event in service?.handle(event) }
        return service
    }

    private init(perform: @escaping @Sendable (PlayerCommand) -> Void, quit: @escaping @Sendable () -> Void,
                 status: @escaping @Sendable () -> PlayerStatus, covers: String) {
        self.perform = perform
        self.quit = quit
        self.status = status
        self.covers = covers
    }

    private var pointer: OpaquePointer? { OpaquePointer(bitPattern: handle.load(ordering: .acquiring)) }

    private func connect(failure: (String) -> Void) -> Bool {
        let initial = state.withLock { Self.snapshot(status(), $0) }
        var error = [CChar](repeating: 0, count: 256)
        let context = Unmanaged.passUnretained(self).toOpaque()
        let m = Self.withCState(initial) { s in
            musit_mpris_start(s, { context, command, integer, number, text in
                guard let context else { return }
                Unmanaged<MPRISService>.fromOpaque(context).takeUnretainedValue()
                    .command(command, integer, number, text.map { String(cString: $0) })
            }, context, &error, Int32(error.count))
        }
        guard let m else {
            failure(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            return false
        }
        handle.store(Int(bitPattern: UnsafeMutableRawPointer(m)), ordering: .releasing)
        return true
    }

    /// The bus name taken (for tests and the log).
    public var name: String { state.withLock { _ in pointer.map { String(cString: musit_mpris_name($0)) } ?? "" } }

    /// Leaves the bus. Every call into the C side happens under `state`'s lock with the
    /// handle checked there, so once the handle is taken out here no event can reach the
    /// freed object; the thread is joined outside the lock.
    public func stop() {
        let raw = state.withLock { _ in handle.exchange(0, ordering: .acquiringAndReleasing) }
        if let m = OpaquePointer(bitPattern: raw) { musit_mpris_stop(m) }
    }

    deinit { stop() }

    // MARK: the bus's calls

    private func command(_ command: musit_mpris_command, _ integer: Int64, _ number: Double, _ text: String?) {
        guard number.isFinite else { return }
        let now = status()
        switch command {
        case MUSIT_MPRIS_PLAY:
            switch now.state {
            case .paused: perform(.resume)
            case .stopped: perform(.play(index: now.trackIndex ?? 0))
            case .playing: break
            }
        case MUSIT_MPRIS_PAUSE: if now.state == .playing { perform(.pause) }
        case MUSIT_MPRIS_PLAYPAUSE:
            now.state == .stopped ? perform(.play(index: now.trackIndex ?? 0)) : perform(.togglePause)
        case MUSIT_MPRIS_STOP: perform(.stop)
        case MUSIT_MPRIS_NEXT: perform(.next)
        case MUSIT_MPRIS_PREVIOUS: perform(.previous)
        case MUSIT_MPRIS_SEEK: perform(.seekBy(Double(integer) / 1_000_000))
        case MUSIT_MPRIS_SET_POSITION: perform(.seek(to: Double(integer) / 1_000_000))
        case MUSIT_MPRIS_VOLUME: perform(.setVolume(Int((number * 100).rounded())))
        case MUSIT_MPRIS_LOOP:
            perform(.setRepeat(text == "Track" ? .one : text == "Playlist" ? .all : .off))
        case MUSIT_MPRIS_SHUFFLE: perform(.setShuffle(integer != 0))
        case MUSIT_MPRIS_QUIT: quit()
        default: break
        }
    }

    // MARK: the player's events

    private func handle(_ event: PlayerEvent) {
        switch event {
        case .position(let seconds, _):
            // Read when asked, never announced.
            publish(extra: 0) { $0.position = seconds }
        case .seeked(let seconds):
            publish(extra: 0, seeked: true) { $0.position = seconds }
        case .trackStarted(_, let track, let metadata):
            publish(extra: Int32(MUSIT_MPRIS_CHANGED_METADATA)) {
                $0.metadata = metadata
                $0.track = track
                $0.position = 0
                $0.artURL = ""
            }
            if let cover = metadata.cover { writeCover(cover, for: track) }
        case .stateChanged, .settingsChanged, .queueFinished, .trackEnded:
            publish(extra: 0)
        default:
            break
        }
    }

    /// Applies `change` and sends the state, telling the bus what differs from what it was
    /// told: all under one lock, so the audio thread and the cover queue cannot send their
    /// snapshots out of order, and no call reaches a C object `stop` has freed. The player's
    /// status is read inside it (the player never calls back into this lock while holding
    /// its own: observers run outside it).
    private func publish(extra: Int32, seeked: Bool = false, _ change: (inout State) -> Void = { _ in }) {
        let status = self.status
        state.withLock { s in
            change(&s)
            guard let m = pointer else { return }
            let now = status()
            let snap = Self.snapshot(now, s)
            let told = Told(status: snap.status, loop: snap.loop, shuffle: snap.shuffle, volume: snap.volume,
                            trackIndex: now.trackIndex, canNext: snap.canNext, canPrevious: snap.canPrevious)
            var bits = extra
            if s.told.status != told.status { bits |= Int32(MUSIT_MPRIS_CHANGED_STATUS) }
            if s.told.loop != told.loop { bits |= Int32(MUSIT_MPRIS_CHANGED_LOOP) }
            if s.told.shuffle != told.shuffle { bits |= Int32(MUSIT_MPRIS_CHANGED_SHUFFLE) }
            if s.told.volume != told.volume { bits |= Int32(MUSIT_MPRIS_CHANGED_VOLUME) }
            if s.told.canNext != told.canNext || s.told.canPrevious != told.canPrevious || (s.told.trackIndex == nil) != (told.trackIndex == nil) {
                bits |= Int32(MUSIT_MPRIS_CHANGED_CAN)
            }
            s.told = told
            Self.withCState(snap) { musit_mpris_update(m, $0, bits) }
            if seeked { musit_mpris_seeked(m, snap.position) }
        }
    }

    /// A cover as a file for `mpris:artUrl`, written once per picture, off the audio thread.
    private func writeCover(_ cover: CoverArt, for track: Track) {
        let directory = covers
        coverQueue.async { [weak self] in
            var hash: UInt64 = 14_695_981_039_346_656_037
            for b in cover.data { hash = (hash ^ UInt64(b)) &* 1_099_511_628_211 }
            let ext = cover.mimeType.contains("png") ? "png" : cover.mimeType.contains("gif") ? "gif" : "jpg"
            let path = directory + "/cover-\(String(hash, radix: 16)).\(ext)"
            if !FileManager.default.fileExists(atPath: path) {
                try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                guard (try? Data(cover.data).write(to: URL(fileURLWithPath: path), options: .atomic)) != nil else { return }
            }
            guard let self else { return }
            let url = URL(fileURLWithPath: path).absoluteString
            let same = self.state.withLock { $0.track == track }
            // (A track change in between only makes this a Metadata change more.)
            if same {
                self.publish(extra: Int32(MUSIT_MPRIS_CHANGED_METADATA)) { s in
                    if s.track == track { s.artURL = url }
                }
            }
        }
    }

    // MARK: the state as the C side takes it

    struct Snapshot {
        var status = "Stopped", loop = "None"
        var shuffle = false
        var volume = 1.0
        var position: Int64 = 0
        var hasTrack = false
        var trackID = "", title = "", artist = "", album = "", artURL = "", url = ""
        var length: Int64 = -1
        var trackNumber = 0
        var canNext = false, canPrevious = false
    }

    private static func snapshot(_ now: PlayerStatus, _ state: State) -> Snapshot {
        let (metadata, track, position, artURL) = (state.metadata ?? now.metadata, state.track ?? now.track, state.position, state.artURL)
        var s = Snapshot()
        s.status = now.state == .playing ? "Playing" : now.state == .paused ? "Paused" : "Stopped"
        s.loop = now.repeatMode == .one ? "Track" : now.repeatMode == .all ? "Playlist" : "None"
        s.shuffle = now.shuffle
        s.volume = Double(now.volume) / 100
        s.position = Int64((position * 1_000_000).rounded())
        if let index = now.trackIndex, let track {
            s.hasTrack = true
            s.trackID = "/org/musit/Track/\(index)"
            s.title = metadata?.title ?? (track.location as NSString).lastPathComponent
            s.artist = metadata?.artist ?? ""
            s.album = metadata?.album ?? ""
            s.trackNumber = metadata?.trackNumber ?? 0
            // The exact gapless length: frames over the rate, in microseconds.
            // (A length that overflows is not told: a crafted Ogg can claim one.)
            if let frames = metadata?.totalFrames, let rate = metadata?.format.sampleRate, rate > 0 {
                let (micro, overflow) = frames.multipliedReportingOverflow(by: 1_000_000)
                if !overflow, frames >= 0 { s.length = micro / Int64(rate) }
            }
            s.artURL = artURL
            // Local files only: a server song's location is not a URL to give out.
            if track.location.hasPrefix("/") { s.url = URL(fileURLWithPath: track.location).absoluteString }
            s.canNext = index + 1 < now.queueCount || now.repeatMode == .all
            s.canPrevious = index > 0 || now.repeatMode == .all
        }
        return s
    }

    private static func withCState<T>(_ s: Snapshot, _ body: (UnsafePointer<musit_mpris_state>) -> T) -> T {
        let strings = [s.status, s.loop, s.trackID, s.title, s.artist, s.album, s.artURL, s.url].map { s in s.withCString { strdup($0) } }
        defer { strings.forEach { free($0) } }
        var c = musit_mpris_state(
            status: strings[0], loop: strings[1], shuffle: s.shuffle ? 1 : 0, volume: s.volume, position: s.position,
            has_track: s.hasTrack ? 1 : 0, track_id: strings[2], length: s.length, title: strings[3], artist: strings[4],
            album: strings[5], art_url: strings[6], url: strings[7], track_number: Int32(s.trackNumber),
            can_next: s.canNext ? 1 : 0, can_previous: s.canPrevious ? 1 : 0)
        return body(&c)
    }
}
