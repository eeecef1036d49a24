import Foundation
import Hummingbird
import MusitAPI
import MusitApp
@testable import MusitAudio
@testable import MusitCodecs
@testable import MusitClient
import MusitServer
import MusitTestSupport
import Testing

@Suite("Client: tokens, outbox, sync loop, bad servers and slow links")
struct ClientTests {
    static func tempDir() -> String {
        let dir = NSTemporaryDirectory() + "musit-client-test-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Makes the stored access token look expired (or valid) without waiting.
    static func setExpiry(_ file: SessionFile, _ date: Date) {
        var s = file.load()!
        s.expiresAt = date
        file.save(s)
    }

    @Test("tokens kept 0600; refreshed before expiry and on 401, once for ten callers; a revoked refresh signs out")
    func tokens() async throws {
        var config = LiveServer.config()
        config.accessLifetime = 2
        try await LiveServer.with(config) { base in
            let dir = Self.tempDir()
            let file = SessionFile(path: dir + "/session.json")
            let api = try await LiveServer.client(base, "tina", sessionFile: file)
            let mode = try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? NSNumber
            #expect(mode?.intValue == 0o600, "session file mode \(String(mode?.intValue ?? 0, radix: 8))")
            let first = try #require(file.load())
            #expect(first.user.username == "tina")

            // Expiring within a minute: refreshed before the call.
            _ = try await api.me()
            let second = try #require(file.load())
            #expect(second.refreshToken != first.refreshToken, "rotated before expiry")

            // Really expired but believed valid: the 401 leads to one refresh and a retry.
            try await Task.sleep(for: .seconds(2.2))
            Self.setExpiry(file, Date(timeIntervalSinceNow: 3600))
            let believer = APIClient(baseURL: base, sessionFile: file)
            #expect(try await believer.me().username == "tina")
            let third = try #require(file.load())
            #expect(third.refreshToken != second.refreshToken, "refreshed on 401")

            // Ten callers at once on an expired token share one refresh: were two refreshes to
            // present the same token, the server would revoke the family and calls would fail.
            Self.setExpiry(file, Date(timeIntervalSinceNow: -1))
            let crowd = APIClient(baseURL: base, sessionFile: file)
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<10 { group.addTask { try await crowd.me().username } }
                for try await name in group { #expect(name == "tina") }
            }
            #expect(try await crowd.me().username == "tina", "the family is intact")

            // The refresh token is revoked elsewhere (sign out on another copy): back to sign-in.
            let copyPath = dir + "/copy.json"
            try FileManager.default.copyItem(atPath: file.path, toPath: copyPath)
            let copy = SessionFile(path: copyPath)
            let other = APIClient(baseURL: base, sessionFile: copy)
            await crowd.signOut()
            #expect(!FileManager.default.fileExists(atPath: file.path), "signing out forgets the tokens")
            Self.setExpiry(copy, Date(timeIntervalSinceNow: -1))
            await #expect(throws: ClientError.signedOut("the session expired; sign in again")) { try await other.me() }
            #expect(!FileManager.default.fileExists(atPath: copyPath), "a refused session is forgotten")
            #expect(await other.user == nil)

            // A wrong password is a clear error, not a crash or a session.
            let wrong = APIClient(baseURL: base, sessionFile: nil)
            await #expect { try await wrong.login(username: "tina", password: "not the password") } throws: { error in
                (error as? ClientError)?.status == 401
            }
            #expect(await wrong.user == nil)
        }
    }

    @Test("messages written while the server is down wait on disk (0600) and are sent exactly once when it is back")
    func outbox() async throws {
        let dir = Self.tempDir()
        let config = LiveServer.config()
        // Two friends, then the server goes away.
        try await LiveServer.with(config) { base in
            let a = try await LiveServer.client(base, "amy", sessionFile: SessionFile(path: dir + "/amy.json"))
            let b = try await LiveServer.client(base, "ben", sessionFile: SessionFile(path: dir + "/ben.json"))
            try await a.requestFriend("ben")
            try await b.acceptFriend("amy")
        }
        // Offline: the client keeps its session (same server key) but nothing listens.
        var s = try #require(SessionFile(path: dir + "/amy.json").load())
        s.server = "musit-test"
        SessionFile(path: dir + "/amy.json").save(s)
        let offline = APIClient(baseURL: "http://127.0.0.1:\(RawHTTP.freePort())", serverKey: "musit-test",
                                sessionFile: SessionFile(path: dir + "/amy.json"))
        let box = Outbox(path: dir + "/outbox.json", client: offline)
        for text in ["one", "two ✓", "three 東京"] { _ = await box.enqueue(to: "ben", body: text) }
        let reports = Locked<[Outbox.Outcome]>([])
        await box.flush { o in reports.withLock { $0.append(o) } }
        #expect(reports.withLock { $0 }.isEmpty, "nothing sent, nothing dropped")
        #expect(await box.pending.count == 3)
        let mode = try FileManager.default.attributesOfItem(atPath: dir + "/outbox.json")[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)

        // The server is back (same data); a restarted client finds the outbox on disk.
        try await LiveServer.with(config) { base in
            let online = APIClient(baseURL: base, serverKey: "musit-test", sessionFile: SessionFile(path: dir + "/amy.json"))
            let restarted = Outbox(path: dir + "/outbox.json", client: online)
            #expect(await restarted.pending.map(\.message.body) == ["one", "two ✓", "three 東京"])
            // Two flushes at once, and a resend of the first (as after a lost answer).
            async let f1: Void = restarted.flush { o in reports.withLock { $0.append(o) } }
            async let f2: Void = restarted.flush { o in reports.withLock { $0.append(o) } }
            _ = await (f1, f2)
            let firstSent = await restarted.pending.isEmpty
            #expect(firstSent)
            let sentIDs = reports.withLock { $0 }.compactMap { if case .sent(let id, _) = $0 { id } else { nil } }
            #expect(sentIDs.count == 3)
            let ben = APIClient(baseURL: base, sessionFile: SessionFile(path: dir + "/ben.json"))
            _ = try await ben.login(username: "ben", password: "correct horse")
            let resend = try await online.send(SendMessage(to: "ben", body: "one", clientId: sentIDs[0]))
            let history = try await ben.messages(with: "amy")
            #expect(history.messages.map(\.body) == ["three 東京", "two ✓", "one"], "once each, in order")
            #expect(history.messages.last?.id == resend.id, "the resend is the same message")
        }
    }

    @Test("backoff: exponential ceiling with jitter, capped")
    func backoff() {
        for attempt in 1...12 {
            let ceiling = min(8, 0.25 * pow(2, Double(attempt)))
            let low = SyncLoop.backoff(attempt: attempt, cap: 8, random: 0)
            let high = SyncLoop.backoff(attempt: attempt, cap: 8, random: 1)
            #expect(abs(low - max(0.05, ceiling / 2)) < 1e-9 && abs(high - ceiling) < 1e-9, "attempt \(attempt): \(low)…\(high)")
        }
        let spread = Set((0..<50).map { _ in SyncLoop.backoff(attempt: 5, cap: 8) })
        #expect(spread.count > 40, "jittered")
    }

    @Test("the sync loop hands over events once, saves the cursor, and resumes from it")
    func syncLoop() async throws {
        let dir = Self.tempDir()
        try await LiveServer.with { base in
            let file = SessionFile(path: dir + "/s.json")
            let a = try await LiveServer.client(base, "sue", sessionFile: file)
            let b = try await LiveServer.client(base, "sam")
            try await b.requestFriend("sue")
            let got = Locked<[ServerEvent]>([])
            let states = Locked<[ConnectionState]>([])
            let loop = SyncLoop(client: a, pollSeconds: 5, handlers: .init(
                state: { s in states.withLock { $0.append(s) } },
                events: { e in got.withLock { $0 += e } },
                resync: {}))
            let task = Task { await loop.run() }
            try await a.acceptFriend("sam")
            for i in 0..<5 { _ = try await b.send(SendMessage(to: "sue", body: "m\(i)", clientId: "c\(i)")) }
            let deadline = Date().addingTimeInterval(5)
            while got.withLock({ $0.filter { $0.kind == .chatMessage }.count }) < 5 && Date() < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            task.cancel()
            let events = got.withLock { $0 }
            #expect(events.filter { $0.kind == .chatMessage }.compactMap(\.message?.body) == ["m0", "m1", "m2", "m3", "m4"])
            #expect(events.map(\.id) == events.map(\.id).sorted() && Set(events.map(\.id)).count == events.count)
            #expect(states.withLock { $0 }.prefix(2) == [.connecting, .online])
            try await Task.sleep(for: .milliseconds(100))
            // The cursor is on disk: a new client starts after the last event.
            let saved = try #require(file.load()).cursor
            #expect(saved == events.last?.id)
            let again = APIClient(baseURL: base, sessionFile: file)
            #expect(try await again.events(after: await again.cursor, timeout: 0).events.isEmpty)
        }
    }

    @Test("a server restored from an older backup: the sync loop resynchronises and hears what comes next")
    func restoredBackup() async throws {
        let dir = Self.tempDir()
        let config = LiveServer.config()
        let backup = config.dataDirectory + "-backup"
        @Sendable func session(_ name: String) -> SessionFile { SessionFile(path: dir + "/\(name).json") }
        @Sendable func client(_ base: String, _ name: String) -> APIClient {
            APIClient(baseURL: base, serverKey: "musit-test", sessionFile: session(name))
        }
        try await LiveServer.with(config) { base in
            let amy = try await LiveServer.client(base, "amy", sessionFile: session("amy"))
            let ben = try await LiveServer.client(base, "ben", sessionFile: session("ben"))
            try await amy.requestFriend("ben")
            try await ben.acceptFriend("amy")
        }
        for name in ["amy", "ben"] {
            var s = try #require(session(name).load())
            s.server = "musit-test"
            session(name).save(s)
        }
        // A stopped server has closed its database: the log is in the file, and nothing
        // changes under the copy.
        for file in ["musit.sqlite-wal", "musit.sqlite-shm"] {
            #expect(!FileManager.default.fileExists(atPath: config.dataDirectory + "/" + file), "\(file) left after the stop")
        }
        try FileManager.default.copyItem(atPath: config.dataDirectory, toPath: backup)
        // After the backup: five messages that amy's client hears, so its cursor moves past
        // anything the backup knows.
        try await LiveServer.with(config) { base in
            let amy = client(base, "amy")
            for i in 0..<5 { _ = try await client(base, "ben").send(SendMessage(to: "amy", body: "lost \(i)", clientId: "l\(i)")) }
            let page = try await amy.events(after: await amy.cursor, timeout: 0)
            await amy.setCursor(page.cursor)
        }
        let ahead = try #require(session("amy").load()).cursor
        try FileManager.default.removeItem(atPath: config.dataDirectory)
        try FileManager.default.moveItem(atPath: backup, toPath: config.dataDirectory)
        try await LiveServer.with(config) { base in
            let amy = client(base, "amy")
            let got = Locked<[ServerEvent]>([])
            let resyncs = Locked(0)
            let loop = SyncLoop(client: amy, pollSeconds: 5, handlers: .init(
                state: { _ in }, events: { e in got.withLock { $0 += e } }, resync: { resyncs.withLock { $0 += 1 } }))
            let task = Task { await loop.run() }
            defer { task.cancel() }
            // The restored server's newest event for amy is below her cursor.
            let deadline = Date().addingTimeInterval(5)
            while await amy.cursor >= ahead && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(await amy.cursor < ahead, "the cursor was taken back to the restored server's newest event")
            _ = try await client(base, "ben").send(SendMessage(to: "amy", body: "after restore", clientId: "r1"))
            while !got.withLock({ $0.contains { $0.message?.body == "after restore" } }) && Date() < deadline.addingTimeInterval(5) {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(got.withLock { $0 }.compactMap(\.message?.body) == ["after restore"], "heard, not silent")
            #expect(resyncs.withLock { $0 } >= 2, "reloaded state on connecting and on the 410")
        }
    }

    @Test("a server answering 500s or broken JSON: typed errors, the sync loop backs off, nothing crashes")
    func badServer() async throws {
        let router = Router()
        router.get("/api/v1/events") { _, _ -> Response in
            Response(status: .internalServerError, headers: [.contentType: "application/problem+json"],
                     body: .init(byteBuffer: ByteBuffer(string: #"{"type":"about:blank","title":"Internal Server Error","status":500}"#)))
        }
        router.get("/api/v1/songs") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"songs\": [tru")))
        }
        router.get("/api/v1/friends") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "[1,2,3]")))
        }
        router.get("/api/v1/me") { _, _ -> Response in
            Response(status: .badGateway, body: .init(byteBuffer: ByteBuffer(string: "<html>bad gateway</html>")))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let base = "http://127.0.0.1:\(client.port!)"
            let file = SessionFile(path: Self.tempDir() + "/s.json")
            file.save(StoredSession(server: base, user: UserInfo(id: 1, username: "x", displayName: "x", role: .user, bio: ""),
                                    accessToken: "t", refreshToken: "r", expiresAt: Date(timeIntervalSinceNow: 3600)))
            let api = APIClient(baseURL: base, sessionFile: file)
            await #expect { try await api.songs() } throws: { ($0 as? ClientError).map { if case .badResponse = $0 { true } else { false } } ?? false }
            await #expect { try await api.friends() } throws: { ($0 as? ClientError).map { if case .badResponse = $0 { true } else { false } } ?? false }
            await #expect { try await api.me() } throws: { error in
                guard let e = error as? ClientError, e.status == 502, e.isTransient else { return false }
                return e.description.contains("502")
            }
            let states = Locked<[ConnectionState]>([])
            let loop = SyncLoop(client: api, maxDelay: 0.4, handlers: .init(state: { s in states.withLock { $0.append(s) } },
                                                                              events: { _ in }, resync: {}))
            let task = Task { await loop.run() }
            try await Task.sleep(for: .seconds(1.5))
            task.cancel()
            let retries = states.withLock { $0 }.compactMap { s -> (Int, Double, String)? in
                if case .retrying(let a, let d, let r) = s { (a, d, r) } else { nil }
            }
            #expect(retries.count >= 3, "kept retrying: \(retries.count)")
            #expect(retries.map(\.0) == Array(1...retries.count), "attempts count up")
            #expect(retries.allSatisfy { $0.1 <= 0.4 && $0.2.contains("Internal Server Error") || $0.2.contains("500") })
            #expect(!states.withLock { $0 }.contains(.online))
        }
    }

    @Test("play reports: an end report says how far that track played, not where the next one is")
    func playReports() async throws {
        let reports = Locked<[PlayReport]>([])
        let router = Router()
        router.post("/api/v1/plays") { request, context -> Response in
            let report = try await request.decode(as: PlayReport.self, context: context)
            let id = reports.withLock { $0.append(report); return Int64($0.count) }
            guard report.event == .start else { return Response(status: .noContent) }
            return Response(status: .created, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(PlayStarted(playId: id)))))
        }
        router.put("/api/v1/presence") { _, _ in Response(status: .noContent) }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let base = "http://127.0.0.1:\(client.port!)"
            let dir = Self.tempDir()
            let file = SessionFile(path: dir + "/s.json")
            file.save(StoredSession(server: base, user: UserInfo(id: 1, username: "x", displayName: "x", role: .user, bio: ""),
                                    accessToken: "t", refreshToken: "r", expiresAt: Date(timeIntervalSinceNow: 3600)))
            let api = APIClient(baseURL: base, sessionFile: file)
            let player = Player(configuration: PlayerConfiguration(device: "null-unused"))
            defer { player.shutdown() }
            let session = Session(client: api, opener: StreamOpener(client: api), dataDirectory: dir, player: player,
                                  libraryIsQueue: false, post: { _ in })
            func status(_ state: PlaybackState, _ index: Int, song: Int64, at position: Double) -> PlayerStatus {
                var s = PlayerStatus()
                s.state = state
                s.trackIndex = index
                s.track = Track(SongLocation.make(song))
                s.position = position
                return s
            }
            func settle(_ count: Int) async throws {
                for _ in 0..<200 where reports.withLock({ $0.count }) < count { try await Task.sleep(for: .milliseconds(10)) }
            }
            session.playerChanged(status(.playing, 0, song: 11, at: 0), seeked: false)
            try await settle(1)
            for t in stride(from: 0.5, through: 42.5, by: 0.5) { session.playerProgress(index: 0, position: t) }
            // Position ticks of the next track, before its start is announced, are not this play's.
            session.playerProgress(index: 1, position: 0.2)
            // The next track starts: the status already speaks of it.
            session.playerChanged(status(.playing, 1, song: 12, at: 0.3), seeked: false)
            try await settle(3)
            session.playerProgress(index: 1, position: 6.5)
            session.playerChanged(status(.stopped, 1, song: 12, at: 7), seeked: false)
            try await settle(4)
            let got = reports.withLock { $0 }
            #expect(got.count == 4)
            #expect(got.first == PlayReport(songId: 11, event: .start, position: 0))
            #expect(got.contains(PlayReport(songId: 11, event: .end, position: 42.5, playId: 1)), "\(got)")
            #expect(got.contains(PlayReport(songId: 12, event: .start, position: 0)))
            #expect(got.last == PlayReport(songId: 12, event: .end, position: 7, playId: got.firstIndex { $0.songId == 12 }.map { Int64($0 + 1) }),
                    "a stop ends the play where it stopped: \(got)")
        }
    }

    @Test("a slow, stalling link: streamed playback says buffering and resumes without skipping a sample")
    func slowLink() async throws {
        try await LiveServer.with { base in
            let api = try await LiveServer.client(base, "slow")
            let song = try await api.upload(path: Fixtures.path("long20.mp3")) { _, _ in }
            let port = Int(base.split(separator: ":").last!)!
            // 20 s in four segments of 120 KB: at 150 KB/s the unpaced decoder empties each
            // segment long before the next has arrived.
            let proxy = SlowProxy(upstream: port, bytesPerSecond: 150_000)
            defer { proxy.close() }
            let slow = APIClient(baseURL: "http://127.0.0.1:\(proxy.port)", sessionFile: nil)
            _ = try await slow.login(username: "slow", password: "correct horse")
            let opener = StreamOpener(client: slow, readAhead: 16 * 1024)
            opener.remember([song])
            let stall = Task {
                try await Task.sleep(for: .seconds(0.8))
                proxy.setRate(0)  // a dead link for a second
                try await Task.sleep(for: .seconds(1))
                proxy.setRate(150_000)
            }
            let (streamed, events) = try await StreamingTests.playToEnd([SongLocation.make(song.id)], opener: opener)
            _ = try await stall.value
            let (local, _) = try await StreamingTests.playToEnd([Fixtures.path("long20.mp3")], opener: nil)
            let stalls = events.filter { $0 == .buffering(true) }.count
            #expect(stalls >= 2, "buffering was shown (\(stalls) stalls)")
            #expect(events.last(where: { if case .buffering = $0 { true } else { false } }) == .buffering(false))
            #expect(events.compactMap { if case .trackFailed(_, let e) = $0 { e } else { nil } }.isEmpty)
            #expect(streamed.frames == local.frames && streamed.samples == local.samples, "nothing skipped or repeated")
        }
    }

    @Test("a slow, stalling link under a FLAC read by Range: buffering shown, every sample played once, memory bounded")
    func slowLinkRanged() async throws {
        try await LiveServer.with { base in
            let api = try await LiveServer.client(base, "slowflac")
            let song = try await api.upload(path: Fixtures.path("long20.flac")) { _, _ in }
            #expect(song.format == "flac" && song.bytes > 8 * Int64(RemoteFile.blockSize), "\(song.bytes) bytes: many blocks")
            let port = Int(base.split(separator: ":").last!)!
            let proxy = SlowProxy(upstream: port, bytesPerSecond: 200_000)
            defer { proxy.close() }
            let slow = APIClient(baseURL: "http://127.0.0.1:\(proxy.port)", sessionFile: nil)
            _ = try await slow.login(username: "slowflac", password: "correct horse")
            let opener = StreamOpener(client: slow, readAhead: 128 * 1024)
            opener.remember([song])
            let stall = Task {
                try await Task.sleep(for: .seconds(0.8))
                proxy.setRate(0)
                try await Task.sleep(for: .seconds(1))
                proxy.setRate(200_000)
            }
            let (streamed, events) = try await StreamingTests.playToEnd([SongLocation.make(song.id)], opener: opener)
            _ = try await stall.value
            let (local, _) = try await StreamingTests.playToEnd([Fixtures.path("long20.flac")], opener: nil)
            let stalls = events.filter { $0 == .buffering(true) }.count
            #expect(stalls >= 2, "buffering was shown (\(stalls) stalls)")
            #expect(events.compactMap { if case .trackFailed(_, let e) = $0 { e } else { nil } }.isEmpty)
            #expect(local.frames == 20 * 44_100)
            #expect(streamed.frames == local.frames && streamed.samples == local.samples, "nothing skipped or repeated")
        }
    }

    @Test("a FLAC from the server opens at once on a dead link: the audio thread never waits on the network, and it plays when bytes come")
    func rangedOpenDoesNotBlock() async throws {
        try await LiveServer.with { base in
            let api = try await LiveServer.client(base, "deadlink")
            let song = try await api.upload(path: Fixtures.path("sweep_a.flac")) { _, _ in }
            let port = Int(base.split(separator: ":").last!)!
            let proxy = SlowProxy(upstream: port, bytesPerSecond: 50_000_000)
            defer { proxy.close() }
            let slow = APIClient(baseURL: "http://127.0.0.1:\(proxy.port)", sessionFile: nil)
            _ = try await slow.login(username: "deadlink", password: "correct horse")
            let opener = StreamOpener(client: slow, readAhead: 128 * 1024)
            opener.remember([song])
            proxy.setRate(0)
            let started = Date()
            let track = try opener.open(SongLocation.make(song.id))
            #expect(Date().timeIntervalSince(started) < 0.5, "opened in \(Date().timeIntervalSince(started)) s with no byte")
            #expect(track.format == PCMFormat(sampleRate: 44_100, channels: 2) && track.metadata.title == song.title)
            var buffer = [Int16](repeating: 0, count: 4096)
            let stalled = Date()
            #expect(throws: AudioError.self) { try buffer.withUnsafeMutableBufferPointer { try track.read(into: $0) } }
            #expect(Date().timeIntervalSince(stalled) < 0.5, "a read says buffering instead of waiting")
            proxy.setRate(50_000_000)
            var frames = 0
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                do {
                    let n = try buffer.withUnsafeMutableBufferPointer { try track.read(into: $0) }
                    if n == 0 { break }
                    frames += n
                } catch let error as AudioError where error.reason == .stalled {
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            #expect(frames == 119_070, "the whole half sweep once the link is back: \(frames)")
        }
    }

    @Test("RemoteFile keeps the read-ahead window and a few spare blocks, however far the reads go")
    func remoteFileBounded() async throws {
        let size = 40 * RemoteFile.blockSize + 123
        let file = RemoteFile(size: size, readAhead: 3)
        let producer = Task {
            var fetched = 0
            while let block = await file.nextBlock() {
                let start = block * RemoteFile.blockSize
                file.store(block, (start..<min(size, start + RemoteFile.blockSize)).map { UInt8(truncatingIfNeeded: $0 / 7) })
                fetched += 1
            }
            return fetched
        }
        var out = [UInt8](repeating: 0, count: 1000)
        // Forward, then a jump to the end and back to the start, as an Ogg open and a seek do.
        for offset in Array(stride(from: 0, to: size, by: 10_007)) + [size - 500, 17, 30 * RemoteFile.blockSize + 5] {
            let n = out.withUnsafeMutableBytes { file.read(at: offset, into: $0, timeout: 5) }
            let want = min(1000, size - offset, RemoteFile.blockSize - offset % RemoteFile.blockSize)
            #expect(n == want, "at \(offset)")
            #expect(Array(out[0..<want]) == (offset..<(offset + want)).map { UInt8(truncatingIfNeeded: $0 / 7) }, "at \(offset)")
            #expect(file.heldBlocks <= 3 + 4 + 1, "\(file.heldBlocks) blocks held at \(offset)")
        }
        #expect(file.read(at: size, into: UnsafeMutableRawBufferPointer(start: nil, count: 0), timeout: 0) == 0)
        file.close()
        let fetched = await producer.value
        #expect(fetched >= 41 && fetched < 80, "\(fetched) fetches for 41 blocks read mostly in order")
    }
}
