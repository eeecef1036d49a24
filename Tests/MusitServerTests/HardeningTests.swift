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

@Suite("Backend: files only their owner reads", .serialized)
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
