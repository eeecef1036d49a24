import Foundation
import Hummingbird
import HummingbirdTesting
import MusitAPI
import MusitAudio
import MusitCodecs
@testable import MusitClient
import MusitServer
import MusitTestSupport
import Testing

/// A live backend on loopback for client tests, with an API client signed in to it.
struct LiveServer {
    static func config() -> ServerConfiguration {
        var c = ServerConfiguration(dataDirectory: NSTemporaryDirectory() + "musit-client-\(UUID().uuidString)")
        c.port = 0
        c.bcryptCost = 4
        return c
    }

    static func with(_ config: ServerConfiguration = config(), _ body: @Sendable (String) async throws -> Void) async throws {
        let app = try await MusitBackend.makeApplication(config)
        try await app.test(.live) { client in
            try await body("http://127.0.0.1:\(client.port!)")
        }
    }

    static func client(_ base: String, _ name: String, sessionFile: SessionFile? = nil) async throws -> APIClient {
        let api = APIClient(baseURL: base, sessionFile: sessionFile)
        _ = try await api.register(username: name, password: "correct horse")
        return api
    }
}

/// Records a player's events.
final class Events: Sendable {
    let log = Locked<[PlayerEvent]>([])
    init(_ player: Player) {
        let log = self.log
        player.observe { e in log.withLock { $0.append(e) } }
    }
    var all: [PlayerEvent] { log.withLock { $0 } }

    func wait(timeout: Double = 30, until predicate: ([PlayerEvent]) -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if predicate(all) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }
}

@Suite("Client: streamed playback through the backend's HLS")
struct StreamingTests {
    static func player(_ device: String, opener: StreamOpener?) -> Player {
        _ = Fixtures.alsaConfig
        var config = PlayerConfiguration(device: device)
        if let opener { config.openSource = opener.openSource }
        return Player(configuration: config)
    }

    static func playToEnd(_ tracks: [String], opener: StreamOpener?) async throws -> (PCM, [PlayerEvent]) {
        let (device, capture) = Fixtures.captureDevice()
        let p = player(device, opener: opener)
        let events = Events(p)
        p.send(.load(tracks.map(Track.init), startAt: 0, autoplay: true))
        #expect(await events.wait { $0.contains(.queueFinished) }, "queue finished")
        p.shutdown()
        return (try PCM(raw: capture), events.all)
    }

    @Test("streamed playback equals the local decode sample for sample, gapless join included")
    func streamedEqualsLocal() async throws {
        try await LiveServer.with { base in
            let api = try await LiveServer.client(base, "streamer")
            var songs: [Song] = []
            for name in ["sweep_a.mp3", "sweep_b.mp3"] {
                songs.append(try await api.upload(path: Fixtures.path(name)) { _, _ in })
            }
            let opener = StreamOpener(client: api, readAhead: 64 * 1024)
            opener.remember(songs)
            let (streamed, events) = try await Self.playToEnd(songs.map { SongLocation.make($0.id) }, opener: opener)
            let (local, _) = try await Self.playToEnd(["sweep_a.mp3", "sweep_b.mp3"].map(Fixtures.path), opener: nil)
            #expect(local.frames == 264_600, "the local decode is the whole sweep: \(local.frames)")
            #expect(streamed.frames == local.frames, "streamed \(streamed.frames) frames vs local \(local.frames)")
            #expect(streamed.samples == local.samples, "sample for sample")
            let failures = events.compactMap { if case .trackFailed(_, let e) = $0 { e } else { nil } }
            #expect(failures.isEmpty, "\(failures)")
            // One device stream: the join is gapless, not a reopen.
            #expect(events.filter { if case .outputChanged = $0 { true } else { false } }.count == 1)
            // Tags come from the server's song record (segments carry none).
            let started = events.compactMap { if case .trackStarted(_, _, let m) = $0 { m.title } else { nil } }
            #expect(started == songs.map(\.title))
        }
    }

    @Test("a seek inside a streamed track lands within 10 ms, from the segment that holds the target")
    func streamedSeek() async throws {
        try await LiveServer.with { base in
            let api = try await LiveServer.client(base, "seeker")
            let song = try await api.upload(path: Fixtures.path("long20.mp3")) { _, _ in }
            let opener = StreamOpener(client: api, readAhead: 64 * 1024)
            opener.remember([song])
            let (device, capture) = Fixtures.captureDevice()
            let p = Self.player(device, opener: opener)
            let events = Events(p)
            p.send(.load([Track(SongLocation.make(song.id))], startAt: 0, autoplay: false))
            #expect(await events.wait { $0.contains(.stateChanged(.paused)) })
            p.send(.seek(to: 13.0))  // the third of four segments (they start near 0, 6, 12 and 18 s)
            p.send(.resume)
            #expect(await events.wait { $0.contains(.queueFinished) })
            p.shutdown()
            let pcm = try PCM(raw: capture)
            let source = try PCM(wav: Fixtures.path("long20.wav"))
            let skip = 2048  // the first frames after a cut decode without their bit reservoir
            let expected = 13 * 44100 + skip
            let match = Signal.bestLag(probe: pcm.channel(0, from: skip, count: 8192), reference: source.channel(0),
                                       expectedStart: expected, maxLag: 2205)
            #expect(abs(match.lag) <= 441, "landed \(match.lag) frames (\(Double(match.lag) / 44.1) ms) from the target")
            #expect(match.correlation > 0.999, "the capture is the song after the seek (\(match.correlation))")
            #expect(abs(pcm.frames - (source.frames - 13 * 44100)) <= 2 * 1152, "plays on to the end: \(pcm.frames) frames")
        }
    }

    @Test("FLAC, Vorbis and Opus stream by Range: sample for sample the local decode, gapless join included",
          arguments: [["sweep_a.flac", "sweep_b.flac"], ["sweep_a.ogg", "sweep_b.ogg"], ["sweep48_a.opus", "sweep48_b.opus"]])
    func rangedEqualsLocal(names: [String]) async throws {
        try await LiveServer.with { base in
            let api = try await LiveServer.client(base, "ranger")
            var songs: [Song] = []
            for name in names { songs.append(try await api.upload(path: Fixtures.path(name)) { _, _ in }) }
            #expect(songs.allSatisfy { $0.format != nil && $0.format != "mp3" }, "\(songs.map(\.format))")
            // Two 64 KiB blocks ahead: each song is read over several windows.
            let opener = StreamOpener(client: api, readAhead: 128 * 1024)
            opener.remember(songs)
            let (streamed, events) = try await Self.playToEnd(songs.map { SongLocation.make($0.id) }, opener: opener)
            let (local, _) = try await Self.playToEnd(names.map(Fixtures.path), opener: nil)
            // The server's exact lengths add up to what the local decode plays.
            let lengths = songs.map { Int(($0.duration * Double($0.sampleRate ?? 0)).rounded()) }
            #expect(local.frames == lengths.reduce(0, +), "the local decode is the whole sweep: \(local.frames) vs \(lengths)")
            #expect(streamed.frames == local.frames, "streamed \(streamed.frames) frames vs local \(local.frames)")
            #expect(streamed.samples == local.samples, "sample for sample")
            let failures = events.compactMap { if case .trackFailed(_, let e) = $0 { e } else { nil } }
            #expect(failures.isEmpty, "\(failures)")
            #expect(events.filter { if case .outputChanged = $0 { true } else { false } }.count == 1, "one device stream")
            // Tags from the files themselves, as for local files.
            let started = events.compactMap { if case .trackStarted(_, _, let m) = $0 { m } else { nil } }
            #expect(started.count == 2 && started.allSatisfy { $0.totalFrames != nil })
        }
    }

    @Test("a seek far into a FLAC streamed by Range (blocks not yet fetched) lands on the very sample")
    func rangedSeek() async throws {
        try await LiveServer.with { base in
            let api = try await LiveServer.client(base, "rangeseeker")
            let song = try await api.upload(path: Fixtures.path("long20.flac")) { _, _ in }
            let opener = StreamOpener(client: api, readAhead: 128 * 1024)
            opener.remember([song])
            let (device, capture) = Fixtures.captureDevice()
            let p = Self.player(device, opener: opener)
            let events = Events(p)
            p.send(.load([Track(SongLocation.make(song.id))], startAt: 0, autoplay: false))
            #expect(await events.wait { $0.contains(.stateChanged(.paused)) })
            p.send(.seek(to: 13.0))
            p.send(.resume)
            #expect(await events.wait { $0.contains(.queueFinished) })
            p.shutdown()
            let pcm = try PCM(raw: capture)
            let source = try PCM(wav: Fixtures.path("long20.wav"))
            let from = 13 * 44_100 * 2
            #expect(pcm.frames == source.frames - 13 * 44_100, "\(pcm.frames) frames after the seek")
            #expect(pcm.samples == Array(source.samples[from...]), "the capture is the sweep from 13.000 s, sample for sample")
        }
    }
}
