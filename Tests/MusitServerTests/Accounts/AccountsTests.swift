import Foundation
import Hummingbird
import HummingbirdTesting
import JWTKit
import Logging
import MusitAPI
@testable import MusitServer
import NIOCore
import Testing

/// The backend over real HTTP on loopback (HummingbirdTesting `.live`).
@Suite("Backend: accounts and tokens over HTTP")
struct ServerTests {
    /// The PostgreSQL the run was given (`scripts/with-postgres.sh`): then every test's
    /// backend keeps its data there, in a schema of its own, instead of in SQLite.
    static let postgres = ProcessInfo.processInfo.environment["MUSIT_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    static var onPostgres: Bool { postgres != nil }

    static func config(_ dir: String = NSTemporaryDirectory() + "musit-server-\(UUID().uuidString)") -> ServerConfiguration {
        var c = ServerConfiguration(dataDirectory: dir)
        c.port = 0
        c.bcryptCost = 4
        // The split's path: Social and Stats over gRPC on loopback ports (`make test` runs
        // the suite both ways).
        c.topology.loopback = ProcessInfo.processInfo.environment["MUSIT_TEST_SPLIT"] == "1"
        if let postgres {
            c.database = postgres + "?search_path=t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            c.jwtSecret = "a-test-signing-key-that-is-long-enough-0123456789"
        }
        return c
    }

    /// The store a test's backend used, opened beside it.
    static func store(_ c: ServerConfiguration) async throws -> any Store {
        if let url = c.database { return try await PostgresStore(url: url, logger: Logger(label: "test")) }
        return try SQLiteStore(path: c.dataDirectory + "/musit.sqlite")
    }

    static func json<T: Encodable>(_ value: T) -> ByteBuffer {
        ByteBuffer(bytes: try! JSONEncoder().encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(String(buffer: response.body).utf8))
    }

    static let jsonHeaders: HTTPFields = [.contentType: "application/json"]

    static func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

    @discardableResult
    static func register(_ client: some TestClientProtocol, _ name: String, _ password: String = "correct horse") async throws -> TokenPair {
        let r = try await client.execute(uri: "/api/v1/auth/register", method: .post, headers: jsonHeaders,
                                         body: json(RegisterRequest(username: name, password: password, displayName: "Ünïcødé 名前 🎵")))
        #expect(r.status == .created, "\(String(buffer: r.body))")
        return try decode(TokenPair.self, r)
    }

    static func expectProblem(_ r: TestResponse, _ status: HTTPResponse.Status, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(r.status == status, "\(String(buffer: r.body))", sourceLocation: sourceLocation)
        #expect(r.headers[.contentType] == "application/problem+json", sourceLocation: sourceLocation)
        let p = try decode(Problem.self, r)
        #expect(p.status == Int(status.code), sourceLocation: sourceLocation)
        #expect(!p.title.isEmpty, sourceLocation: sourceLocation)
    }

    @Test("health and the OpenAPI document")
    func health() async throws {
        let app = try await MusitBackend.makeApplication(Self.config())
        try await app.test(.live) { client in
            let r = try await client.execute(uri: "/healthz", method: .get)
            #expect(r.status == .ok)
            #expect(try Self.decode(Health.self, r).status == "ok")
            let doc = try await client.execute(uri: "/openapi.yaml", method: .get)
            #expect(doc.status == .ok)
            let yaml = String(buffer: doc.body)
            #expect(yaml.hasPrefix("openapi: 3.1.0"))
            for path in ["/healthz", "/openapi.yaml", "/metrics", "/api/v1/auth/register", "/api/v1/auth/login",
                         "/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/me", "/api/v1/users", "/api/v1/users/{username}",
                         "/api/v1/friends", "/api/v1/friends/requests", "/api/v1/friends/requests/{username}/accept",
                         "/api/v1/friends/requests/{username}/decline", "/api/v1/friends/{username}", "/api/v1/messages",
                         "/api/v1/conversations/{username}/messages", "/api/v1/conversations/{username}/read",
                         "/api/v1/presence", "/api/v1/events", "/api/v1/songs", "/api/v1/songs/{id}", "/api/v1/songs/{id}/cover",
                         "/api/v1/songs/{id}/stream", "/api/v1/songs/{id}/audio", "/api/v1/songs/{id}/hls/index.m3u8",
                         "/api/v1/songs/{id}/hls/{segment}", "/api/v1/plays", "/api/v1/admin/stats"] {
                #expect(yaml.contains("  \(path):"), "\(path) documented")
            }
            // A valid OpenAPI 3.1 document, by an independent validator.
            let file = NSTemporaryDirectory() + "musit-openapi-\(UUID().uuidString).yaml"
            try yaml.write(toFile: file, atomically: true, encoding: .utf8)
            let check = try Tool.run("/usr/bin/env", ["python3", "-c",
                "import sys, yaml; from openapi_spec_validator import validate; validate(yaml.safe_load(open(sys.argv[1]))); print('valid')",
                file])
            #expect(check.stdout.contains("valid"), "\(check.stderr)")
            try Self.expectProblem(try await client.execute(uri: "/no/such/route", method: .get), .notFound)
        }
    }

    @Test("register, login and me; the first user is admin; names are unique regardless of case")
    func accounts() async throws {
        let app = try await MusitBackend.makeApplication(Self.config())
        try await app.test(.live) { client in
            let first = try await Self.register(client, "alice")
            #expect(first.user.role == .admin)
            #expect(first.user.displayName == "Ünïcødé 名前 🎵")
            #expect(first.tokenType == "Bearer" && first.expiresIn == 900)
            let second = try await Self.register(client, "bob")
            #expect(second.user.role == .user)
            let dup = try await client.execute(uri: "/api/v1/auth/register", method: .post, headers: Self.jsonHeaders,
                                               body: Self.json(RegisterRequest(username: "ALICE", password: "whatever123")))
            try Self.expectProblem(dup, .conflict)

            let me = try await client.execute(uri: "/api/v1/me", method: .get, headers: Self.bearer(second.accessToken))
            #expect(me.status == .ok)
            #expect(try Self.decode(UserInfo.self, me).username == "bob")

            let login = try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: Self.jsonHeaders,
                                                 body: Self.json(LoginRequest(username: "Bob", password: "correct horse")))
            #expect(login.status == .ok)
            let wrong = try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: Self.jsonHeaders,
                                                 body: Self.json(LoginRequest(username: "bob", password: "wrong horse")))
            try Self.expectProblem(wrong, .unauthorized)
            let nobody = try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: Self.jsonHeaders,
                                                  body: Self.json(LoginRequest(username: "nobody", password: "correct horse")))
            try Self.expectProblem(nobody, .unauthorized)
        }
    }

    @Test("--admin names the admin; the first user still is one")
    func namedAdmin() async throws {
        var c = Self.config()
        c.admin = "Carol"
        let app = try await MusitBackend.makeApplication(c)
        try await app.test(.live) { client in
            let dave = try await Self.register(client, "dave")
            let erin = try await Self.register(client, "erin")
            let carol = try await Self.register(client, "carol")
            #expect(dave.user.role == .admin)
            #expect(erin.user.role == .user)
            #expect(carol.user.role == .admin)
        }
    }

    @Test("forged, expired, alg:none and garbage access tokens are refused with 401")
    func badTokens() async throws {
        let c = Self.config()
        let app = try await MusitBackend.makeApplication(c)
        try await app.test(.live) { client in
            let pair = try await Self.register(client, "alice")
            let parts = pair.accessToken.split(separator: ".").map(String.init)
            #expect(parts.count == 3)
            // Same header and claims, signature from another key.
            let forger = await TokenService(secret: Array(repeating: 7, count: 32), accessLifetime: 900, refreshLifetime: 60)
            let user = User(id: pair.user.id, username: "alice", displayName: "a", passwordHash: "", role: .admin, bio: "")
            let forged = try await forger.accessToken(for: user)
            // alg: none, claims copied, no signature.
            let noneHeader = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64EncodedString()
                .replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            let algNone = noneHeader + "." + parts[1] + "."
            // Signed with the real key, but expired an hour ago.
            let secret = try SigningKey.load(secret: c.jwtSecret, dataDirectory: c.dataDirectory)
            let real = await TokenService(secret: secret, accessLifetime: 900, refreshLifetime: 60)
            let expired = try await real.accessToken(for: user, now: Date().addingTimeInterval(-3600))
            let tampered = parts[0] + "." + parts[1].dropLast(2) + "AA." + parts[2]
            for (what, token) in [("forged", forged), ("alg none", algNone), ("expired", expired), ("tampered", tampered),
                                  ("garbage", "not-a-jwt"), ("empty", "")] {
                let r = try await client.execute(uri: "/api/v1/me", method: .get, headers: Self.bearer(token))
                #expect(r.status == .unauthorized, "\(what) token")
            }
            let none = try await client.execute(uri: "/api/v1/me", method: .get)
            try Self.expectProblem(none, .unauthorized)
            // The real key still works.
            let fresh = try await real.accessToken(for: user)
            #expect(try await client.execute(uri: "/api/v1/me", method: .get, headers: Self.bearer(fresh)).status == .ok)
        }
    }

    @Test("refresh tokens rotate; a reused one revokes its whole family; logout ends the session")
    func refreshRotation() async throws {
        let app = try await MusitBackend.makeApplication(Self.config())
        try await app.test(.live) { client in
            let first = try await Self.register(client, "alice")
            func refresh(_ token: String) async throws -> TestResponse {
                try await client.execute(uri: "/api/v1/auth/refresh", method: .post, headers: Self.jsonHeaders,
                                         body: Self.json(RefreshRequest(refreshToken: token)))
            }
            let r1 = try await refresh(first.refreshToken)
            #expect(r1.status == .ok)
            let second = try Self.decode(TokenPair.self, r1)
            #expect(second.refreshToken != first.refreshToken)
            #expect(second.accessToken != first.accessToken)
            // Replaying the first token: refused, and the token it was rotated into dies with it.
            try Self.expectProblem(try await refresh(first.refreshToken), .unauthorized)
            try Self.expectProblem(try await refresh(second.refreshToken), .unauthorized)
            try Self.expectProblem(try await refresh("made-up"), .unauthorized)

            // Another login is another family, unaffected; logout ends it.
            let login = try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: Self.jsonHeaders,
                                                 body: Self.json(LoginRequest(username: "alice", password: "correct horse")))
            let third = try Self.decode(TokenPair.self, login)
            let out = try await client.execute(uri: "/api/v1/auth/logout", method: .post, headers: Self.jsonHeaders,
                                               body: Self.json(RefreshRequest(refreshToken: third.refreshToken)))
            #expect(out.status == .noContent)
            try Self.expectProblem(try await refresh(third.refreshToken), .unauthorized)
        }
    }

    @Test("failed logins are throttled per account, even with the right password after")
    func throttle() async throws {
        let app = try await MusitBackend.makeApplication(Self.config())
        try await app.test(.live) { client in
            try await Self.register(client, "alice")
            for _ in 0..<5 {
                let r = try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: Self.jsonHeaders,
                                                 body: Self.json(LoginRequest(username: "alice", password: "guess guess")))
                #expect(r.status == .unauthorized)
            }
            let blocked = try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: Self.jsonHeaders,
                                                   body: Self.json(LoginRequest(username: "ALICE", password: "correct horse")))
            try Self.expectProblem(blocked, .tooManyRequests)
            #expect(Int(blocked.headers[.retryAfter] ?? "") ?? 0 > 0)
        }
    }

    /// Each case says what was sent; none may cause a 5xx or store anything.
    @Test("malformed and hostile bodies get clear 4xx problems")
    func badInput() async throws {
        let c = Self.config()
        let app = try await MusitBackend.makeApplication(c)
        try await app.test(.live) { client in
            let cases: [(String, ByteBuffer, HTTPResponse.Status)] = [
                ("not JSON", ByteBuffer(string: "{\"username\": "), .badRequest),
                ("wrong types", ByteBuffer(string: #"{"username": 5, "password": true}"#), .badRequest),
                ("missing field", ByteBuffer(string: #"{"username": "zed"}"#), .badRequest),
                ("SQL in the name", Self.json(RegisterRequest(username: "x'); DROP TABLE user;--", password: "password1")), .badRequest),
                ("path traversal name", Self.json(RegisterRequest(username: "../../etc", password: "password1")), .badRequest),
                ("short password", Self.json(RegisterRequest(username: "zed", password: "short")), .badRequest),
                ("10,000-char display name", Self.json(RegisterRequest(username: "zed", password: "password1",
                                                                     displayName: String(repeating: "é", count: 10_000))), .badRequest),
                ("3 MB body", ByteBuffer(string: String(repeating: " ", count: 3_000_000)), .contentTooLarge),
            ]
            for (what, body, status) in cases {
                let r = try await client.execute(uri: "/api/v1/auth/register", method: .post, headers: Self.jsonHeaders, body: body)
                #expect(r.status == status, "\(what): \(r.status) \(String(buffer: r.body))")
                #expect(r.headers[.contentType] == "application/problem+json", "\(what)")
            }
            // SQL metacharacters as a login name are just a wrong login.
            let sql = try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: Self.jsonHeaders,
                                               body: Self.json(LoginRequest(username: "' OR 1=1 --", password: "x")))
            try Self.expectProblem(sql, .unauthorized)
        }
        let store = try await Self.store(c)
        #expect(try await store.userCount() == 0, "nothing was stored")
    }

    @Test("passwords are stored as bcrypt hashes; accounts and the key survive a restart")
    func storageAndRestart() async throws {
        let c = Self.config()
        let app = try await MusitBackend.makeApplication(c)
        try await app.test(.live) { client in
            try await Self.register(client, "alice", "s3cret-passphrase")
        }
        let store = try await Self.store(c)
        let alice = try #require(try await store.user(named: "alice"))
        #expect(alice.passwordHash.hasPrefix("$2b$04$"))
        #expect(!alice.passwordHash.contains("s3cret"))
        #expect(!alice.passwordHash.contains(Data("s3cret-passphrase".utf8).base64EncodedString()))
        if !Self.onPostgres {  // with PostgreSQL the key is configured, not kept in a file
            let attributes = try FileManager.default.attributesOfItem(atPath: c.dataDirectory + "/jwt.key")
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        }
        let again = try await MusitBackend.makeApplication(c)
        _ = try await again.test(.live) { client in
            let r = try await client.execute(uri: "/api/v1/auth/login", method: .post, headers: Self.jsonHeaders,
                                             body: Self.json(LoginRequest(username: "alice", password: "s3cret-passphrase")))
            #expect(r.status == .ok)
        }
    }
}
