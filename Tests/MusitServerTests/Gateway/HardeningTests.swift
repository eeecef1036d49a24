import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import MusitAPI
@testable import MusitServer
import MusitTestSupport
import NIOCore
import Testing

/// Keeps every log line, rendered as text with its metadata.
final class CapturedLog: Sendable {
    let lines = Locked<[String]>([])

    var logger: Logger {
        var l = Logger(label: "musit.test") { _ in CapturingHandler(sink: self) }
        l.logLevel = .debug
        return l
    }

    struct CapturingHandler: LogHandler {
        let sink: CapturedLog
        var logLevel: Logger.Level = .debug
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.lines.withLock { $0.append("\(event.message) \(all)") }
        }
    }
}

@Suite("Backend: what logs and metrics say", .serialized)
struct HardeningTests {
    @Test("media tokens and other query secrets never reach the request log")
    func redactedLogs() async throws {
        let log = CapturedLog()
        let app = try await MusitBackend.makeApplication(T.config(), logger: log.logger)
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let song = try T.decode(Song.self, try await alice.upload("sine440.mp3"))
            let urls = try T.decode(StreamURLs.self, try await alice.call(.get, "/api/v1/songs/\(song.id)/stream"))
            #expect(try await http.execute(uri: urls.audio, method: .get).status == .ok)
            #expect(try await http.execute(uri: urls.hls, method: .get).status == .ok)
            _ = try await http.execute(uri: "/api/v1/songs/\(song.id)/audio?x=1&token=forged-secret&refresh_token=r-secret", method: .get)
        }
        let lines = log.lines.withLock { $0 }
        #expect(lines.contains { $0.contains("token=REDACTED") }, "the parameter is named, its value hidden")
        #expect(lines.contains { $0.contains("x=1") }, "other parameters stay")
        let token = lines.first { $0.contains("/audio") }
        #expect(token != nil)
        for secret in ["forged-secret", "r-secret"] {
            #expect(!lines.contains { $0.contains(secret) }, "\(secret) leaked")
        }
        #expect(!lines.contains { $0.range(of: #"token=eyJ"#) != nil }, "no JWT in the log")
    }

    @Test("hb_request_errors counts answers that are errors, and only those")
    func errorMetrics() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            func errors(_ text: String, _ status: String) -> Double {
                text.split(separator: "\n").filter { $0.hasPrefix("hb_request_errors") && $0.contains("error_type=\"\(status)\"") }
                    .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
            }
            let before = String(buffer: try await http.execute(uri: "/metrics", method: .get).body)
            let alice = try await Client.make(http, "alice")
            for _ in 0..<3 { _ = try await alice.call(.get, "/api/v1/users/nobody") }
            _ = try await http.execute(uri: "/api/v1/me", method: .get)
            let text = String(buffer: try await http.execute(uri: "/metrics", method: .get).body)
            #expect(errors(text, "404") - errors(before, "404") == 3, "three 404s")
            #expect(errors(text, "401") - errors(before, "401") == 1, "one 401")
            let success = text.split(separator: "\n").filter { $0.hasPrefix("hb_request_errors") && $0.contains("error_type=\"2") }
            #expect(success.isEmpty, "no error series for successes: \(success.prefix(3))")
        }
    }
}

@Suite("Backend: files only their owner reads", .serialized, .enabled(if: !T.onPostgres, "the database files are SQLite's"))
struct FileModeTests {
    static func mode(_ path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber).intValue & 0o777
    }

    @Test("the data directory is 0700 and the database files 0600, whatever the umask; also after a restart")
    func modes() async throws {
        let old = umask(0)
        defer { umask(old) }
        let c = T.config()
        for round in 0..<2 {
            let app = try await MusitBackend.makeApplication(c)
            try await app.test(.live) { http in
                let alice = try await Client.make(http, "alice\(round)")
                _ = try await alice.call(.patch, "/api/v1/me", json: ProfileUpdate(bio: "written"))
                #expect(try Self.mode(c.dataDirectory) == 0o700)
                for suffix in ["", "-wal", "-shm"] {
                    #expect(try Self.mode(c.dataDirectory + "/musit.sqlite" + suffix) == 0o600, "musit.sqlite\(suffix)")
                }
                #expect(try Self.mode(c.dataDirectory + "/jwt.key") == 0o600)
            }
        }
        // A directory left open by an earlier version is closed at the next start.
        chmod(c.dataDirectory, 0o755)
        chmod(c.dataDirectory + "/musit.sqlite", 0o644)
        _ = try await MusitBackend.makeApplication(c)
        #expect(try Self.mode(c.dataDirectory) == 0o700)
        #expect(try Self.mode(c.dataDirectory + "/musit.sqlite") == 0o600)
    }
}

@Suite("Backend: HTTP semantics")
struct HTTPSemanticsTests {
    @Test("every 401 says how to authenticate: WWW-Authenticate: Bearer, with invalid_token for a bad one")
    func wwwAuthenticate() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            _ = try await Client.make(http, "alice")
            for uri in ["/api/v1/me", "/api/v1/friends", "/api/v1/events?timeout=0", "/api/v1/songs", "/api/v1/songs/1/audio"] {
                let none = try await http.execute(uri: uri, method: .get)
                #expect(none.status == .unauthorized, "\(uri)")
                #expect(none.headers[.wwwAuthenticate] == #"Bearer realm="musit""#, "\(uri): \(none.headers)")
                let bad = try await http.execute(uri: uri, method: .get, headers: T.bearer("not-a-token"))
                #expect(bad.status == .unauthorized)
                #expect(bad.headers[.wwwAuthenticate]?.contains(#"error="invalid_token""#) == true, "\(uri)")
            }
            let login = try await http.execute(uri: "/api/v1/auth/login", method: .post, headers: T.jsonHeaders,
                                               body: T.json(LoginRequest(username: "alice", password: "wrong password")))
            #expect(login.status == .unauthorized && login.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
        }
    }
}

@Suite("Backend: names and text that try to pass for something else")
struct TrickyTextTests {
    /// Classes of characters that must never make a user name: line breaks of every kind,
    /// NUL, other controls, spaces, invisible and look-alike letters, combining marks.
    static let tricky: [String] = ["\0", "\0zz", "\n", "\r\n", "\r", "\u{2028}", "\u{2029}", "\u{85}", "\u{0B}", "\u{0C}",
                                   "\t", " ", "\u{A0}", "\u{200B}", "\u{FEFF}", "\u{202E}", "é", "e\u{301}", "ａ",
                                   "\u{430}", "\u{1F600}", "/", "%00", ":"]

    @Test("user names: one strict rule; every tricky variant of a name is refused at register and at login")
    func usernames() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            _ = try await Client.make(http, "victim1")
            for suffix in Self.tricky {
                for name in ["victim1" + suffix, suffix + "victim1", "vic" + suffix + "tim1"] {
                    let reg = try await http.execute(uri: "/api/v1/auth/register", method: .post, headers: T.jsonHeaders,
                                                     body: T.json(RegisterRequest(username: name, password: "correct horse")))
                    #expect(reg.status == .badRequest, "register \(name.debugDescription): \(reg.status)")
                    let login = try await http.execute(uri: "/api/v1/auth/login", method: .post, headers: T.jsonHeaders,
                                                       body: T.json(LoginRequest(username: name, password: "correct horse")))
                    #expect(login.status == .unauthorized, "login \(name.debugDescription) with victim1's password: \(login.status)")
                }
            }
            for name in ["ab", String(repeating: "a", count: 33)] {
                let reg = try await http.execute(uri: "/api/v1/auth/register", method: .post, headers: T.jsonHeaders,
                                                 body: T.json(RegisterRequest(username: name, password: "correct horse")))
                #expect(reg.status == .badRequest)
            }
            let me = try await http.execute(uri: "/api/v1/auth/login", method: .post, headers: T.jsonHeaders,
                                            body: T.json(LoginRequest(username: "VICTIM1", password: "correct horse")))
            #expect(me.status == .ok, "names are one account regardless of case")
        }
    }

    @Test("free text: NUL refused, limits in characters and in bytes, display names without controls or bidi overrides")
    func freeText() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let bob = try await Client.make(http, "bob")
            try await alice.befriend(bob)
            let before = try T.decode(UserInfo.self, try await alice.call(.get, "/api/v1/me"))
            // 64 "characters" that are 200,001 code points: one letter under a pile of marks.
            let heavy = "a" + String(repeating: "\u{301}", count: 200_000)
            let cases: [(String, HTTPRequest.Method, ByteBuffer)] = [
                ("/api/v1/me", .patch, T.json(ProfileUpdate(displayName: heavy))),
                ("/api/v1/me", .patch, T.json(ProfileUpdate(displayName: "Alice\u{202E}gnp.exe"))),
                ("/api/v1/me", .patch, T.json(ProfileUpdate(displayName: "Alice\u{7}"))),
                ("/api/v1/me", .patch, T.json(ProfileUpdate(displayName: "Ali\0ce"))),
                ("/api/v1/me", .patch, T.json(ProfileUpdate(bio: "bio\0"))),
                ("/api/v1/me", .patch, T.json(ProfileUpdate(bio: heavy))),
                ("/api/v1/messages", .post, T.json(SendMessage(to: "bob", body: "hi\0", clientId: "n1"))),
                ("/api/v1/messages", .post, T.json(SendMessage(to: "bob", body: heavy, clientId: "n2"))),
                ("/api/v1/messages", .post, T.json(SendMessage(to: "bob", body: "hi", clientId: "é" + String(repeating: "x", count: 63)))),
                ("/api/v1/presence", .put, T.json(NowPlayingInfo(state: .playing, title: String(repeating: "t", count: 1_500_000)))),
                ("/api/v1/presence", .put, T.json(NowPlayingInfo(state: .playing, title: "x\0"))),
            ]
            for (uri, method, body) in cases {
                let r = try await alice.call(method, uri, body)
                #expect(r.status == .badRequest, "\(method) \(uri): \(r.status) \(String(buffer: r.body).prefix(200))")
            }
            let info = try T.decode(UserInfo.self, try await alice.call(.get, "/api/v1/me"))
            #expect(info == before, "nothing refused was stored")
            let history = try T.decode(MessagesPage.self, try await alice.call(.get, "/api/v1/conversations/bob/messages"))
            #expect(history.messages.isEmpty)
            // What is allowed still is.
            #expect(try await alice.call(.patch, "/api/v1/me", json: ProfileUpdate(displayName: "Ålice 東京 🎧")).status == .ok)
            #expect(try await alice.call(.post, "/api/v1/messages", json: SendMessage(to: "bob", body: "مرحبا e\u{301}", clientId: "ok1")).status == .created)
        }
    }
}

@Suite("Backend: covers are served as what their bytes are")
struct CoverTypeTests {
    /// `mp3` behind an ID3v2.3 tag whose APIC frame claims `mime` for `picture`.
    static func tagged(_ mp3: Data, mime: String, picture: Data) -> Data {
        var body = Data([0]) + Data(mime.utf8) + Data([0, 3, 0]) + picture
        var frame = Data("APIC".utf8)
        frame += withUnsafeBytes(of: UInt32(body.count).bigEndian) { Data($0) } + Data([0, 0])
        frame += body
        body = frame
        let size = body.count
        let syncsafe = Data([UInt8((size >> 21) & 0x7F), UInt8((size >> 14) & 0x7F), UInt8((size >> 7) & 0x7F), UInt8(size & 0x7F)])
        return Data("ID3".utf8) + Data([3, 0, 0]) + syncsafe + body + mp3
    }

    @Test("a cover that claims text/html is no cover; a real image is served by its bytes' type, with nosniff")
    func sniffedCovers() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        let mp3 = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("sine440.mp3")))
        let png = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("cover.png")))
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            func upload(_ bytes: Data) async throws -> Song {
                var headers = T.bearer(alice.pair.accessToken)
                headers[.contentType] = "audio/mpeg"
                let r = try await http.execute(uri: "/api/v1/songs", method: .post, headers: headers, body: ByteBuffer(bytes: bytes))
                #expect(r.status == .created, "\(String(buffer: r.body))")
                return try T.decode(Song.self, r)
            }
            let html = try await upload(Self.tagged(mp3, mime: "text/html", picture: Data("<html><script>alert(1)</script></html>".utf8)))
            #expect(!html.hasCover)
            let none = try await alice.call(.get, "/api/v1/songs/\(html.id)/cover")
            #expect(none.status == .notFound)
            #expect(none.headers[.contentType] != "text/html")
            var other = mp3
            other.append(Data(count: 1))  // other bytes: not a duplicate
            let lying = try await upload(Self.tagged(other, mime: "text/html", picture: png))
            #expect(lying.hasCover)
            let cover = try await alice.call(.get, "/api/v1/songs/\(lying.id)/cover")
            #expect(cover.status == .ok)
            #expect(cover.headers[.contentType] == "image/png", "typed by its bytes, not by the tag's text/html")
            #expect(cover.headers[SongRoutes.contentTypeOptions] == "nosniff")
            #expect(Data(buffer: cover.body) == png)
        }
    }
}

@Suite("Backend: login throttling that stops guessers, not owners", .serialized)
struct ThrottleTests {
    /// A login over a connection from `source` (127.0.0.x); the status code. The socket
    /// blocks, so it runs on a thread of its own, never on the pool the server needs.
    static func login(_ port: Int, _ name: String, _ password: String, from source: String) async -> Int {
        await withCheckedContinuation { c in
            Thread.detachNewThread { c.resume(returning: blockingLogin(port, name, password, from: source)) }
        }
    }

    static func blockingLogin(_ port: Int, _ name: String, _ password: String, from source: String) -> Int {
        let json = #"{"username":"\#(name)","password":"\#(password)"}"#
        let answer = RawHTTP.request(port: port, "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                                     "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)", from: source) ?? ""
        return Int(answer.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @Test("guesses from one address lock that address out of that account, not the owner elsewhere")
    func noLockout() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            _ = try await Client.make(http, "victim")
            let port = try #require(http.port)
            var guesses: [Int] = []
            for _ in 0..<8 { guesses.append(await Self.login(port, "victim", "wrong guess", from: "127.0.0.2")) }
            #expect(guesses.prefix(5).allSatisfy { $0 == 401 } && guesses.dropFirst(5).allSatisfy { $0 == 429 }, "\(guesses)")
            #expect(await Self.login(port, "victim", "correct horse", from: "127.0.0.2") == 429, "the guesser stays stopped")
            #expect(await Self.login(port, "victim", "correct horse", from: "127.0.0.3") == 200, "the owner signs in from elsewhere")
        }
    }

    @Test("parallel guesses are counted before bcrypt: 24 at once, at most 5 checked")
    func parallelGuesses() async throws {
        var c = T.config()
        c.bcryptCost = 8  // slow enough that the guesses really overlap
        let app = try await MusitBackend.makeApplication(c)
        try await app.test(.live) { http in
            _ = try await Client.make(http, "victim")
            let port = try #require(http.port)
            let statuses = await withTaskGroup(of: Int.self) { group in
                for _ in 0..<24 {
                    group.addTask { await Self.login(port, "victim", "wrong guess", from: "127.0.0.4") }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 401 }.count <= 5, "checked: \(statuses.filter { $0 == 401 }.count)")
            #expect(statuses.filter { $0 == 429 }.count >= 19)
        }
    }

    @Test("the throttle's table stays bounded under a flood of distinct names and addresses")
    func bounded() async {
        let throttle = LoginThrottle(capacity: 1000)
        for i in 0..<20_000 {
            _ = await throttle.begin(account: "user\(i)", address: "10.0.\(i / 250).\(i % 250)")
        }
        #expect(await throttle.count <= 1000)
        // Still throttling what matters: a pair that keeps failing is stopped.
        for _ in 0..<5 { #expect(await throttle.begin(account: "victim", address: "10.9.9.9") == nil) }
        #expect(await throttle.begin(account: "victim", address: "10.9.9.9") != nil)
    }
}

@Suite("The database's timeout")
struct DatabaseTimeoutTests {
    /// Waits `seconds` on a dispatch timer that ignores cancellation, as a query on a
    /// connection whose database stopped answering can.
    static func deaf(_ seconds: Double) async -> Int {
        await withCheckedContinuation { (c: CheckedContinuation<Int, Never>) in
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { c.resume(returning: 7) }
        }
    }

    @Test("the caller is answered at the deadline even when the work does not heed cancellation")
    func answersAtTheDeadline() async throws {
        let started = ContinuousClock.now
        await #expect(throws: CancellationError.self) {
            try await PostgresStore.withTimeout(seconds: 0.2) { await Self.deaf(3) }
        }
        let waited = ContinuousClock.now - started
        #expect(waited < .seconds(1.5), "waited \(waited) for a 0.2 s timeout")
        // In time, the work's own answer.
        let quick = try await PostgresStore.withTimeout(seconds: 2) { await Self.deaf(0.05) }
        #expect(quick == 7)
        // Its own error passes through.
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await PostgresStore.withTimeout(seconds: 2) { () async throws -> Int in throw Refused() }
        }
    }

    @Test("a cancelled caller is answered at once")
    func cancelledCaller() async throws {
        let started = ContinuousClock.now
        let task = Task { try await PostgresStore.withTimeout(seconds: 10) { await Self.deaf(3) } }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        #expect(ContinuousClock.now - started < .seconds(1.5))
    }
}
