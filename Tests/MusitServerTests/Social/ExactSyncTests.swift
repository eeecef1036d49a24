import Foundation
import Hummingbird
import HummingbirdTesting
import MusitAPI
@testable import MusitServer
import MusitTestSupport
import NIOCore
import Testing

@Suite("Backend: exact sync, one transaction per change, atomic uploads", .serialized)
struct ExactSyncTests {
    @Test("a cursor past the newest event is 410 with resumeFrom; the next event after resuming arrives")
    func cursorAhead() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let bob = try await Client.make(http, "bob")
            try await alice.befriend(bob)
            let head = try await bob.poll(after: 0, timeout: 0).cursor
            #expect(head > 0)
            let ahead = try await bob.call(.get, "/api/v1/events?cursor=\(head + 1000)&timeout=5")
            try T.expectProblem(ahead, .gone)
            let problem = try T.decode(Problem.self, ahead)
            #expect(problem.resumeFrom == head, "resume from the newest: \(String(buffer: ahead.body))")
            #expect(try await bob.poll(after: head, timeout: 0).events.isEmpty, "the head itself is a valid cursor")
            _ = try await alice.call(.post, "/api/v1/messages", json: SendMessage(to: "bob", body: "after restore", clientId: "r1"))
            let page = try await bob.poll(after: problem.resumeFrom ?? 0, timeout: 5)
            #expect(page.events.compactMap(\.message?.body) == ["after restore"])
            #expect(page.events.map(\.id) == [head + 1], "ids are dense per user")
        }
    }

    /// Every endpoint that takes query parameters, with values that are not numbers,
    /// negative, overflowing or out of range: 400 problem+json naming the parameter.
    @Test("bad query parameters are 400 naming the parameter, on every endpoint that takes them")
    func badParameters() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            _ = try await Client.make(http, "bob")
            let cases: [(String, String)] = [
                ("/api/v1/events?cursor=abc&timeout=0", "cursor"),
                ("/api/v1/events?cursor=-1&timeout=0", "cursor"),
                ("/api/v1/events?cursor=99999999999999999999&timeout=0", "cursor"),
                ("/api/v1/events?cursor=1e3&timeout=0", "cursor"),
                ("/api/v1/events?cursor=0&timeout=abc", "timeout"),
                ("/api/v1/events?cursor=0&timeout=-1", "timeout"),
                ("/api/v1/events?cursor=0&timeout=61", "timeout"),
                ("/api/v1/events?cursor=0&timeout=99999999999999999999", "timeout"),
                ("/api/v1/events?cursor=0&cursor=1&timeout=0", "cursor"),
                ("/api/v1/songs?limit=abc", "limit"),
                ("/api/v1/songs?limit=0", "limit"),
                ("/api/v1/songs?limit=201", "limit"),
                ("/api/v1/songs?cursor=x", "cursor"),
                ("/api/v1/songs?cursor=-5", "cursor"),
                ("/api/v1/songs?query=" + String(repeating: "a", count: 101), "query"),
                ("/api/v1/conversations/bob/messages?limit=x", "limit"),
                ("/api/v1/conversations/bob/messages?limit=500", "limit"),
                ("/api/v1/conversations/bob/messages?before=abc", "before"),
                ("/api/v1/conversations/bob/messages?before=-1", "before"),
                ("/api/v1/conversations/bob/messages?before=99999999999999999999", "before"),
                ("/api/v1/users?query=" + String(repeating: "b", count: 65), "query"),
            ]
            for (uri, name) in cases {
                let start = Date()
                let r = try await alice.call(.get, uri)
                #expect(r.status == .badRequest, "\(uri): \(r.status)")
                #expect(r.headers[.contentType] == "application/problem+json", "\(uri)")
                let detail = try T.decode(Problem.self, r).detail ?? ""
                #expect(detail.contains(name), "\(uri): \(detail)")
                #expect(Date().timeIntervalSince(start) < 2, "\(uri) answers at once, never holds")
            }
        }
    }

    @Test("a held poll is released as soon as its client goes away; clients that stay keep their connection")
    func disconnectReleasesPoll() async throws {
        let (app, bus) = try await MusitBackend.make(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let port = try #require(http.port)
            let cursor = try await alice.poll(after: 0, timeout: 0).cursor
            let request = Array("GET /api/v1/events?cursor=\(cursor)&timeout=30 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(alice.pair.accessToken)\r\n\r\n".utf8)
            var sockets: [Int32] = []
            for _ in 0..<40 {
                let fd = RawHTTP.connect(port: port)
                try #require(fd >= 0)
                RawHTTP.send(fd, request)
                sockets.append(fd)
            }
            var held = 0
            for _ in 0..<400 where held < 40 {
                held = await bus.heldPolls
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(held == 40, "all polls held")
            // Half hang up (FIN), half reset (RST).
            for (i, fd) in sockets.enumerated() {
                if i % 2 == 1 {
                    var linger = linger(l_onoff: 1, l_linger: 0)
                    setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
                }
                close(fd)
            }
            let closed = Date()
            for _ in 0..<200 where held > 0 {
                held = await bus.heldPolls
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(held == 0, "released \(Date().timeIntervalSince(closed)) s after the clients left; \(held) still held")
            #expect(Date().timeIntervalSince(closed) < 1)
            // Keep-alive: a poll that times out, then another request on the same connection.
            let fd = RawHTTP.connect(port: port)
            defer { close(fd) }
            let short = "GET /api/v1/events?cursor=\(cursor)&timeout=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(alice.pair.accessToken)\r\n\r\n"
            RawHTTP.send(fd, Array(short.utf8))
            RawHTTP.send(fd, Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
            let answer = String(decoding: RawHTTP.receive(fd), as: UTF8.self)
            #expect(answer.components(separatedBy: "HTTP/1.1 200").count == 3, "two answers on one connection: \(answer)")
            #expect(answer.contains("\"status\":\"ok\""))
        }
    }

    @Test("twenty pairs of identical uploads at once: one 201 and one 409 each; parallel deletes: one 204")
    func concurrentUploadsAndDeletes() async throws {
        let c = T.config()
        let app = try await MusitBackend.makeApplication(c)
        let base = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("sine440.mp3")))
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let bob = try await Client.make(http, "bob")
            var ids: [Int64] = []
            for n in 0..<20 {
                // Distinct songs: an ID3v1 tag of their own each.
                var bytes = base
                bytes.append(Data("TAG".utf8) + Data("pair \(n)".utf8.map { $0 }).padded(to: 30) + Data(count: 94))
                let body = ByteBuffer(bytes: bytes)
                func post(_ who: Client) async throws -> TestResponse {
                    var headers = T.bearer(who.pair.accessToken)
                    headers[.contentType] = "audio/mpeg"
                    return try await http.execute(uri: "/api/v1/songs", method: .post, headers: headers, body: body)
                }
                async let a = post(alice)
                async let b = post(bob)
                let (ra, rb) = try await (a, b)
                let statuses = [Int(ra.status.code), Int(rb.status.code)].sorted()
                #expect(statuses == [201, 409], "pair \(n): \(statuses) \(String(buffer: ra.body)) \(String(buffer: rb.body))")
                if let created = [ra, rb].first(where: { $0.status == .created }) {
                    ids.append(try T.decode(Song.self, created).id)
                }
            }
            let list = try T.decode(SongsPage.self, try await alice.call(.get, "/api/v1/songs?limit=200"))
            #expect(list.songs.count == 20)
            // Four deletes of one song at once: one 204, the rest 404; its files are gone.
            let song = try #require(ids.first)
            let owner = try T.decode(Song.self, try await alice.call(.get, "/api/v1/songs/\(song)")).owner == "alice" ? alice : bob
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 { group.addTask { try await owner.call(.delete, "/api/v1/songs/\(song)").status.code } }
                return try await group.reduce(into: []) { $0.append($1) }.sorted()
            }
            #expect(statuses == [204, 404, 404, 404])
            #expect(!FileManager.default.fileExists(atPath: c.dataDirectory + "/media/\(song).mp3"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.dataDirectory + "/media/uploads").isEmpty)
    }

    @Test("crossing friend requests become one friendship, told to each side once")
    func crossingRequests() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            for n in 0..<10 {
                let a = try await Client.make(http, "amy\(n)")
                let b = try await Client.make(http, "ben\(n)")
                async let ra = a.call(.post, "/api/v1/friends/requests", json: FriendRequestBody(username: b.name))
                async let rb = b.call(.post, "/api/v1/friends/requests", json: FriendRequestBody(username: a.name))
                let statuses = try await [ra.status.code, rb.status.code].sorted()
                #expect(statuses == [200, 201], "one asks, the other's request accepts: \(statuses)")
                for (me, other) in [(a, b), (b, a)] {
                    let list = try T.decode(FriendsList.self, try await me.call(.get, "/api/v1/friends"))
                    #expect(list.friends.map(\.user.username) == [other.name] && list.incoming.isEmpty && list.outgoing.isEmpty)
                }
                let kinds = try await a.poll(after: 0, timeout: 0).events.map(\.kind) + b.poll(after: 0, timeout: 0).events.map(\.kind)
                #expect(kinds.filter { $0 == .friendRequest }.count == 1 && kinds.filter { $0 == .friendAccepted }.count == 1)
            }
        }
    }

    @Test("a resent message (same client id) is stored once with one event per side")
    func idempotentSend() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let bob = try await Client.make(http, "bob")
            try await alice.befriend(bob)
            let cursor = try await bob.poll(after: 0, timeout: 0).cursor
            let send = SendMessage(to: "bob", body: "once", clientId: "same-id")
            let results = try await withThrowingTaskGroup(of: (Int, Int64).self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let r = try await alice.call(.post, "/api/v1/messages", json: send)
                        return (r.status.code, try T.decode(ChatMessage.self, r).id)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.map(\.0).sorted() == [200, 200, 200, 200, 200, 200, 200, 201])
            #expect(Set(results.map(\.1)).count == 1, "one message")
            let events = try await bob.poll(after: cursor, timeout: 0).events
            #expect(events.filter { $0.kind == .chatMessage }.count == 1)
        }
    }
}

extension Data {
    func padded(to count: Int) -> Data { self + Data(count: Swift.max(0, count - self.count)) }
}
