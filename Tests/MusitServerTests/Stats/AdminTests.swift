import Foundation
import Hummingbird
import HummingbirdTesting
import MusitAPI
@testable import MusitServer
import NIOCore
import Testing

@Suite("Backend: plays, admin statistics, metrics and the authorization matrix", .serialized)
struct AdminTests {
    @Test("plays are reported by clients, not counted from streams; admins see the statistics")
    func playsAndStats() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let admin = try await Client.make(http, "admin")
            let alice = try await Client.make(http, "alice")
            let song = try T.decode(Song.self, try await alice.upload("tag_v1.mp3"))
            let other = try T.decode(Song.self, try await alice.upload("tag_v24.mp3"))
            // Fetching the stream is not a play.
            _ = try await alice.call(.get, "/api/v1/songs/\(song.id)/audio")
            var stats = try T.decode(AdminStats.self, try await admin.call(.get, "/api/v1/admin/stats"))
            #expect(stats.playsPerDay.reduce(0) { $0 + $1.plays } == 0)
            for _ in 0..<3 {
                let r = try await alice.call(.post, "/api/v1/plays", json: PlayReport(songId: song.id, event: .start, position: 0))
                #expect(r.status == .created)
                let id = try T.decode(PlayStarted.self, r).playId
                #expect(try await alice.call(.post, "/api/v1/plays", json: PlayReport(songId: song.id, event: .progress, position: 0.5, playId: id)).status == .noContent)
                #expect(try await alice.call(.post, "/api/v1/plays", json: PlayReport(songId: song.id, event: .end, position: 1, playId: id)).status == .noContent)
                // Someone else's play cannot be touched.
                try T.expectProblem(try await admin.call(.post, "/api/v1/plays", json: PlayReport(songId: song.id, event: .end, position: 1, playId: id)), .notFound)
            }
            _ = try await alice.call(.post, "/api/v1/plays", json: PlayReport(songId: other.id, event: .start, position: 0))
            try T.expectProblem(try await alice.call(.post, "/api/v1/plays", json: PlayReport(songId: 999, event: .start, position: 0)), .notFound)
            try T.expectProblem(try await alice.call(.post, "/api/v1/plays", json: PlayReport(songId: song.id, event: .end, position: 1)), .badRequest)
            _ = try await alice.call(.put, "/api/v1/presence", json: NowPlayingInfo(state: .playing, title: "Old Title"))

            stats = try T.decode(AdminStats.self, try await admin.call(.get, "/api/v1/admin/stats"))
            #expect(stats.users == 2 && stats.songs == 2)
            #expect(stats.storageBytes == song.bytes + other.bytes)
            #expect(stats.playsPerDay.count == 30 && stats.playsPerDay.last?.plays == 4)
            #expect(stats.topSongs.first?.songId == song.id && stats.topSongs.first?.plays == 3)
            #expect(stats.topArtists.first == AdminStats.TopArtist(artist: "Old Artist", plays: 3))
            #expect(stats.listenersNow == 1)
            #expect(stats.requestsPerRoute.contains { $0.route == "POST /api/v1/plays" && $0.requests >= 10 })
            try T.expectProblem(try await alice.call(.get, "/api/v1/admin/stats"), .forbidden)
        }
    }

    @Test("/metrics speaks Prometheus text: per-route requests and latency, held polls, uploads")
    func metrics() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            func sample(_ text: String, _ name: String, _ labels: [String] = []) -> Double? {
                text.split(separator: "\n")
                    .filter { line in (line.hasPrefix(name + "{") || line.hasPrefix(name + " ")) && labels.allSatisfy { line.contains($0) } }
                    .compactMap { Double($0.split(separator: " ").last ?? "") }.max()
            }
            func metrics() async throws -> String {
                String(buffer: try await http.execute(uri: "/metrics", method: .get).body)
            }
            let songs = ["http_route=\"/api/v1/songs\"", "http_request_method=\"POST\"", "http_response_status_code=\"201\""]
            let before = try await metrics()
            let alice = try await Client.make(http, "alice")
            let song = try T.decode(Song.self, try await alice.upload("tag_v1.mp3"))
            _ = try await alice.poll(after: 0, timeout: 0)
            _ = try await alice.call(.get, "/api/v1/no-such-thing")
            let text = try await metrics()
            // The registry is one per process: other tests count too, so compare with before.
            let uploads = (sample(text, "hb_requests_total", songs) ?? 0) - (sample(before, "hb_requests_total", songs) ?? 0)
            #expect(uploads >= 1, "the upload is counted by route, method and status")
            #expect((sample(text, "http_server_request_duration_seconds_count", songs) ?? 0) >= 1)
            #expect((sample(text, "http_server_request_duration_seconds_sum", songs) ?? 0) > 0, "its latency is recorded")
            #expect((sample(text, "http_server_request_duration_seconds_bucket", songs + ["le=\"+Inf\""]) ?? 0) >= 1)
            #expect((sample(text, "hb_requests_total", ["http_route=\"/api/v1/events\"", "http_response_status_code=\"200\""]) ?? 0) >= 1)
            #expect((sample(text, "hb_requests_total", ["http_response_status_code=\"404\""]) ?? 0) >= 1, "unmatched paths count too")
            #expect((sample(text, "http_server_active_requests", ["http_request_method=\"GET\""]) ?? 0) >= 1, "this GET /metrics")
            #expect((sample(text, "musit_uploads_total") ?? 0) >= 1)
            #expect((sample(text, "musit_upload_bytes_total") ?? 0) >= Double(song.bytes))
            #expect(sample(text, "musit_long_polls_held") != nil)
        }
    }

    @Test("a page of events is encoded once for the polls that share it, and never served stale")
    func encodedPages() throws {
        let pages = EncodedPages()
        func event(_ id: Int64, _ body: String) -> ServerEvent {
            var e = ServerEvent.draft(.chatMessage, user: "bob")
            e.id = id
            e.createdAt = body
            return e
        }
        func decode(_ b: ByteBuffer) throws -> EventsPage { try JSONDecoder().decode(EventsPage.self, from: b) }
        let one = EventsPage(events: [event(5, "a")], cursor: 5)
        let first = try pages.body(user: 1, after: 4, page: one)
        #expect(try decode(first) == one)
        // The same span for the same user: the stored encoding (a page built anew would say "b").
        let again = try pages.body(user: 1, after: 4, page: EventsPage(events: [event(5, "b")], cursor: 5))
        #expect(again == first)
        // A longer span, another cursor, another user, an empty page: each its own answer.
        let two = EventsPage(events: [event(5, "a"), event(6, "c")], cursor: 6)
        #expect(try decode(pages.body(user: 1, after: 4, page: two)) == two)
        let later = EventsPage(events: [event(6, "c")], cursor: 6)
        #expect(try decode(pages.body(user: 1, after: 5, page: later)) == later)
        let other = EventsPage(events: [event(5, "d")], cursor: 5)
        #expect(try decode(pages.body(user: 2, after: 4, page: other)) == other)
        let empty = EventsPage(events: [], cursor: 4)
        #expect(try decode(pages.body(user: 1, after: 4, page: empty)) == empty)
    }

    /// Anonymous, a user, another user and an admin against every protected endpoint.
    @Test("authorization matrix")
    func matrix() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let admin = try await Client.make(http, "admin")
            let owner = try await Client.make(http, "owner")
            let other = try await Client.make(http, "other")
            let song = try T.decode(Song.self, try await owner.upload("tag_v1.mp3"))
            let protected: [(HTTPRequest.Method, String)] = [
                (.get, "/api/v1/me"), (.patch, "/api/v1/me"), (.get, "/api/v1/users"), (.get, "/api/v1/users/owner"),
                (.get, "/api/v1/friends"), (.post, "/api/v1/friends/requests"), (.post, "/api/v1/friends/requests/owner/accept"),
                (.post, "/api/v1/friends/requests/owner/decline"), (.delete, "/api/v1/friends/owner"), (.post, "/api/v1/messages"),
                (.get, "/api/v1/conversations/owner/messages"), (.post, "/api/v1/conversations/owner/read"), (.put, "/api/v1/presence"),
                (.get, "/api/v1/events?timeout=0"), (.post, "/api/v1/songs"), (.get, "/api/v1/songs"), (.get, "/api/v1/songs/\(song.id)"),
                (.delete, "/api/v1/songs/\(song.id)"), (.get, "/api/v1/songs/\(song.id)/cover"), (.get, "/api/v1/songs/\(song.id)/stream"),
                (.get, "/api/v1/songs/\(song.id)/audio"), (.get, "/api/v1/songs/\(song.id)/hls/index.m3u8"),
                (.get, "/api/v1/songs/\(song.id)/hls/0.mp3"), (.post, "/api/v1/plays"), (.get, "/api/v1/admin/stats"),
            ]
            for (method, uri) in protected {
                let r = try await http.execute(uri: uri, method: method, headers: T.jsonHeaders, body: ByteBuffer(string: "{}"))
                #expect(r.status == .unauthorized, "anonymous \(method) \(uri): \(r.status)")
            }
            for public_ in ["/healthz", "/openapi.yaml", "/metrics"] {
                #expect(try await http.execute(uri: public_, method: .get).status == .ok, "\(public_) is public")
            }
            // Owner-only and admin-only actions.
            try T.expectProblem(try await other.call(.delete, "/api/v1/songs/\(song.id)"), .forbidden)
            try T.expectProblem(try await owner.call(.get, "/api/v1/admin/stats"), .forbidden)
            #expect(try await admin.call(.get, "/api/v1/admin/stats").status == .ok)
            // Everyone signed in may read the library and stream it.
            #expect(try await other.call(.get, "/api/v1/songs/\(song.id)/audio").status == .ok)
            #expect(try await admin.call(.delete, "/api/v1/songs/\(song.id)").status == .noContent)
        }
    }
}
