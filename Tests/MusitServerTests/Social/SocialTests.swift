import Foundation
import Hummingbird
import HummingbirdTesting
import MusitAPI
@testable import MusitServer
import NIOCore
import Testing

typealias T = ServerTests

/// A signed-in user for the tests.
struct Client {
    let http: any TestClientProtocol
    let pair: TokenPair
    var name: String { pair.user.username }

    func call(_ method: HTTPRequest.Method, _ uri: String, _ body: ByteBuffer? = nil) async throws -> TestResponse {
        var headers = T.bearer(pair.accessToken)
        if body != nil { headers[.contentType] = "application/json" }
        return try await http.execute(uri: uri, method: method, headers: headers, body: body)
    }

    func call<B: Encodable>(_ method: HTTPRequest.Method, _ uri: String, json: B) async throws -> TestResponse {
        try await call(method, uri, T.json(json))
    }

    func poll(after cursor: Int64, timeout: Int = 5) async throws -> EventsPage {
        let r = try await call(.get, "/api/v1/events?cursor=\(cursor)&timeout=\(timeout)")
        #expect(r.status == .ok, "\(String(buffer: r.body))")
        return try T.decode(EventsPage.self, r)
    }

    static func make(_ http: any TestClientProtocol, _ name: String) async throws -> Client {
        Client(http: http, pair: try await T.register(http, name))
    }

    func befriend(_ other: Client) async throws {
        #expect(try await call(.post, "/api/v1/friends/requests", json: FriendRequestBody(username: other.name)).status == .created)
        #expect(try await other.call(.post, "/api/v1/friends/requests/\(name)/accept").status == .ok)
    }
}

@Suite("Backend: profiles, friends, chat, presence and long-poll sync")
struct SocialTests {
    @Test("bios and display names are edited by their owner within limits; users can be found")
    func profiles() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            _ = try await Client.make(http, "bob_50")
            _ = try await Client.make(http, "bobx50")
            var r = try await alice.call(.patch, "/api/v1/me", json: ProfileUpdate(displayName: "Alice 🎧", bio: String(repeating: "é", count: 500)))
            #expect(r.status == .ok)
            let info = try T.decode(UserInfo.self, r)
            #expect(info.bio.count == 500 && info.displayName == "Alice 🎧")
            r = try await alice.call(.patch, "/api/v1/me", json: ProfileUpdate(bio: String(repeating: "x", count: 501)))
            try T.expectProblem(r, .badRequest)
            r = try await alice.call(.patch, "/api/v1/me", json: ProfileUpdate(bio: String(repeating: "x", count: 10_000)))
            try T.expectProblem(r, .badRequest)
            r = try await alice.call(.get, "/api/v1/users/ALICE")
            #expect(try T.decode(UserInfo.self, r).bio.count == 500)
            try T.expectProblem(try await alice.call(.get, "/api/v1/users/nobody"), .notFound)
            r = try await alice.call(.get, "/api/v1/users?query=50%25")
            #expect(try T.decode(UserList.self, r).users.isEmpty, "% is literal, not a wildcard")
            r = try await alice.call(.get, "/api/v1/users?query=b_5")
            #expect(try T.decode(UserList.self, r).users.map(\.username) == ["bob_50"], "_ is literal, not a wildcard")
            r = try await alice.call(.get, "/api/v1/users?query=BOB")
            #expect(try T.decode(UserList.self, r).users.count == 2)
            try T.expectProblem(try await http.execute(uri: "/api/v1/users?query=a", method: .get), .unauthorized)
        }
    }

    @Test("friend requests: send, accept, decline, remove; each side sees the right lists")
    func friends() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let bob = try await Client.make(http, "bob")
            let carol = try await Client.make(http, "carol")
            #expect(try await alice.call(.post, "/api/v1/friends/requests", json: FriendRequestBody(username: "bob")).status == .created)
            #expect(try await alice.call(.post, "/api/v1/friends/requests", json: FriendRequestBody(username: "bob")).status == .accepted)
            var lists = try T.decode(FriendsList.self, try await bob.call(.get, "/api/v1/friends"))
            #expect(lists.incoming.map(\.username) == ["alice"] && lists.friends.isEmpty)
            lists = try T.decode(FriendsList.self, try await alice.call(.get, "/api/v1/friends"))
            #expect(lists.outgoing.map(\.username) == ["bob"])
            #expect(try await bob.call(.post, "/api/v1/friends/requests/alice/accept").status == .ok)
            lists = try T.decode(FriendsList.self, try await alice.call(.get, "/api/v1/friends"))
            #expect(lists.friends.map(\.user.username) == ["bob"] && lists.outgoing.isEmpty)

            // Carol asks Alice, Alice declines; then Carol asks again and Alice asks back, which accepts.
            _ = try await carol.call(.post, "/api/v1/friends/requests", json: FriendRequestBody(username: "alice"))
            #expect(try await alice.call(.post, "/api/v1/friends/requests/carol/decline").status == .noContent)
            try T.expectProblem(try await alice.call(.post, "/api/v1/friends/requests/carol/accept"), .notFound)
            _ = try await carol.call(.post, "/api/v1/friends/requests", json: FriendRequestBody(username: "alice"))
            #expect(try await alice.call(.post, "/api/v1/friends/requests", json: FriendRequestBody(username: "carol")).status == .ok)
            lists = try T.decode(FriendsList.self, try await carol.call(.get, "/api/v1/friends"))
            #expect(lists.friends.map(\.user.username) == ["alice"])

            #expect(try await bob.call(.delete, "/api/v1/friends/alice").status == .noContent)
            try T.expectProblem(try await bob.call(.delete, "/api/v1/friends/alice"), .notFound)
            try T.expectProblem(try await bob.call(.post, "/api/v1/friends/requests", json: FriendRequestBody(username: "bob")), .badRequest)
            try T.expectProblem(try await bob.call(.post, "/api/v1/friends/requests", json: FriendRequestBody(username: "zed")), .notFound)
        }
    }

    @Test("chat between friends only; client ids make sends idempotent; history pages; read receipts")
    func chat() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let bob = try await Client.make(http, "bob")
            let r0 = try await alice.call(.post, "/api/v1/messages", json: SendMessage(to: "bob", body: "hi", clientId: "c0"))
            try T.expectProblem(r0, .forbidden)
            try await alice.befriend(bob)
            let first = try await alice.call(.post, "/api/v1/messages", json: SendMessage(to: "bob", body: "héllo 東京 🎵", clientId: "c1"))
            #expect(first.status == .created)
            let again = try await alice.call(.post, "/api/v1/messages", json: SendMessage(to: "bob", body: "héllo 東京 🎵", clientId: "c1"))
            #expect(again.status == .ok, "a resend with the same client id is not a new message")
            #expect(try T.decode(ChatMessage.self, first).id == T.decode(ChatMessage.self, again).id)
            for i in 2...5 {
                _ = try await (i % 2 == 0 ? bob : alice).call(.post, "/api/v1/messages", json: SendMessage(to: i % 2 == 0 ? "alice" : "bob", body: "m\(i)", clientId: "c\(i)"))
            }
            var page = try T.decode(MessagesPage.self, try await bob.call(.get, "/api/v1/conversations/alice/messages?limit=2"))
            #expect(page.messages.map(\.body) == ["m5", "m4"])
            var all = page.messages
            while let before = page.nextBefore {
                page = try T.decode(MessagesPage.self, try await bob.call(.get, "/api/v1/conversations/alice/messages?limit=2&before=\(before)"))
                all += page.messages
            }
            #expect(all.map(\.body) == ["m5", "m4", "m3", "m2", "héllo 東京 🎵"], "every message once, newest first")
            let last = all[0].id
            #expect(try await bob.call(.post, "/api/v1/conversations/alice/read", json: ReadReceipt(upTo: last)).status == .noContent)
            page = try T.decode(MessagesPage.self, try await alice.call(.get, "/api/v1/conversations/bob/messages"))
            #expect(page.messages.filter { $0.from == "alice" }.allSatisfy { $0.readAt != nil })
            #expect(page.messages.filter { $0.from == "bob" }.allSatisfy { $0.readAt == nil })
            let events = try await alice.poll(after: 0, timeout: 0).events
            #expect(events.contains { $0.kind == .messageRead && $0.readUpTo == last && $0.user == "bob" })
            try T.expectProblem(try await alice.call(.post, "/api/v1/messages", json: SendMessage(to: "bob", body: "  ", clientId: "c9")), .badRequest)
        }
    }

    @Test("two held polls get an event published by a third request within 100 ms")
    func longPollFanOut() async throws {
        let (app, bus) = try await MusitBackend.make(T.config())
        // AsyncHTTPClient pools connections, so the two polls really are held side by side.
        try await app.test(.ahc(.http)) { http in
            let alice = try await Client.make(http, "alice")
            let bob = try await Client.make(http, "bob")
            try await alice.befriend(bob)
            // First polls bring both online, which tells the other: drain those events too.
            _ = try await alice.poll(after: 0, timeout: 0)
            let bCursor = try await bob.poll(after: 0, timeout: 0).cursor
            let aCursor = try await alice.poll(after: 0, timeout: 0).cursor
            async let aPoll = alice.poll(after: aCursor, timeout: 30)
            async let bPoll = bob.poll(after: bCursor, timeout: 30)
            var held = 0
            for _ in 0..<200 where held < 2 {
                held = await bus.heldPolls
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(held == 2, "both polls are held")
            let sent = Date()
            _ = try await alice.call(.post, "/api/v1/messages", json: SendMessage(to: "bob", body: "ping", clientId: "p1"))
            let (a, b) = try await (aPoll, bPoll)
            let latency = Date().timeIntervalSince(sent)
            #expect(latency < 0.1, "delivered in \(latency * 1000) ms")
            #expect(a.events.map(\.message?.body) == ["ping"] && b.events.map(\.message?.body) == ["ping"])
            #expect(b.cursor == b.events.last?.id)
            #expect(await bus.heldPolls == 0, "answered polls are no longer counted")
            // A poll that times out (released by the sweeper) is not counted either.
            let timedOut = try await alice.poll(after: a.cursor, timeout: 1)
            #expect(timedOut.events.isEmpty && timedOut.cursor == a.cursor)
            #expect(await bus.heldPolls == 0)
        }
    }

    @Test("a poll that times out returns no events and the same cursor")
    func pollTimeout() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let cursor = try await alice.poll(after: 0, timeout: 0).cursor
            let start = Date()
            let page = try await alice.poll(after: cursor, timeout: 1)
            let waited = Date().timeIntervalSince(start)
            #expect(page.events.isEmpty && page.cursor == cursor)
            #expect(waited >= 0.95 && waited < 3, "held for \(waited) s")
            try T.expectProblem(try await alice.call(.get, "/api/v1/events?timeout=61"), .badRequest)
            try T.expectProblem(try await alice.call(.get, "/api/v1/events?cursor=-1"), .badRequest)
        }
    }

    @Test("after a restart, resuming from the cursor loses and repeats nothing; pruned history answers 410")
    func resumeAcrossRestart() async throws {
        let c = T.config()
        let first = try await MusitBackend.makeApplication(c)
        let (before, cursor) = try await first.test(.live) { http -> ([String], Int64) in
            let alice = try await Client.make(http, "alice")
            let bob = try await Client.make(http, "bob")
            try await alice.befriend(bob)
            for i in 0..<3 { _ = try await alice.call(.post, "/api/v1/messages", json: SendMessage(to: "bob", body: "a\(i)", clientId: "a\(i)")) }
            let page = try await bob.poll(after: 0, timeout: 0)
            for i in 3..<6 { _ = try await alice.call(.post, "/api/v1/messages", json: SendMessage(to: "bob", body: "a\(i)", clientId: "a\(i)")) }
            return (page.events.compactMap(\.message?.body), page.cursor)
        }
        let second = try await MusitBackend.makeApplication(c)
        try await second.test(.live) { http in
            let login = try await http.execute(uri: "/api/v1/auth/login", method: .post, headers: T.jsonHeaders,
                                               body: T.json(LoginRequest(username: "bob", password: "correct horse")))
            let bob = Client(http: http, pair: try T.decode(TokenPair.self, login))
            let page = try await bob.poll(after: cursor, timeout: 0)
            let seen = before + page.events.compactMap(\.message?.body)
            #expect(seen == (0..<6).map { "a\($0)" }, "every message exactly once")
            let ids = page.events.map(\.id)
            #expect(ids == ids.sorted() && ids.allSatisfy { $0 > cursor })

            let store = try await T.store(c)
            #expect(try await store.pruneEvents(before: Date().addingTimeInterval(60)) > 0)
            let gone = try await bob.call(.get, "/api/v1/events?cursor=\(cursor)&timeout=0")
            try T.expectProblem(gone, .gone)
            #expect(String(buffer: gone.body).contains("resync"))
            let latest = page.cursor
            #expect(try await bob.poll(after: latest, timeout: 0).events.isEmpty, "a cursor at the horizon is fine")
        }
    }

    @Test("presence: now-playing reaches friends as an event and in the friends list; it expires")
    func presence() async throws {
        var c = T.config()
        c.onlineWindow = 1.5
        let app = try await MusitBackend.makeApplication(c)
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let bob = try await Client.make(http, "bob")
            let stranger = try await Client.make(http, "eve")
            try await alice.befriend(bob)
            let cursor = try await alice.poll(after: 0, timeout: 0).cursor
            let strangerCursor = try await stranger.poll(after: 0, timeout: 0).cursor
            let np = NowPlayingInfo(state: .playing, title: "Night Walk", artist: "Musit Demo Band", position: 12, duration: 96)
            #expect(try await bob.call(.put, "/api/v1/presence", json: np).status == .noContent)
            let events = try await alice.poll(after: cursor, timeout: 0).events
            #expect(events.last?.kind == .presence && events.last?.nowPlaying == np && events.last?.user == "bob")
            let list = try T.decode(FriendsList.self, try await alice.call(.get, "/api/v1/friends"))
            #expect(list.friends.first?.online == true && list.friends.first?.nowPlaying == np)
            #expect(try await stranger.poll(after: strangerCursor, timeout: 0).events.isEmpty, "strangers see nothing")

            // Bob stops syncing: after the online window he is offline and his now-playing is gone.
            try await Task.sleep(for: .milliseconds(1700))
            let later = try T.decode(FriendsList.self, try await alice.call(.get, "/api/v1/friends"))
            #expect(later.friends.first?.online == false && later.friends.first?.nowPlaying == nil)
        }
    }
}
