import Foundation
import Hummingbird
import MusitAPI
import NIOCore
import Prometheus

/// Play reports, admin statistics and Prometheus metrics.
struct AdminController: Sendable {
    let services: Services

    func addRoutes(to router: Router<MusitContext>, signedIn: RouterGroup<MusitContext>) {
        let s = services
        signedIn.post("plays") { request, context in
            let me = try context.requireUser()
            let body = try await request.decode(as: PlayReport.self, context: context)
            guard body.position.isFinite, body.position >= 0 else { throw Problem.badRequest("position is seconds, 0 or more") }
            guard try await s.songs.song(id: body.songId) != nil else { throw Problem.notFound("No such song") }
            switch body.event {
            case .start:
                let id = try await s.plays.startPlay(userID: me.id, songID: body.songId, at: Date())
                return Response(status: .created, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(PlayStarted(playId: id)))))
            case .progress, .end:
                guard let id = body.playId else { throw Problem.badRequest("progress and end need the playId from start") }
                guard try await s.plays.updatePlay(id: id, userID: me.id, position: body.position, ended: body.event == .end) else {
                    throw Problem.notFound("No play \(id) of yours")
                }
                return Response(status: .noContent)
            }
        }

        signedIn.get("admin/stats") { _, context in
            let me = try context.requireUser()
            guard me.role == .admin else { throw Problem(status: 403, title: "Forbidden", detail: "Statistics are for admins") }
            let now = Date()
            let st = try await s.plays.stats(now: now)
            let days = (0..<30).reversed().map { back -> AdminStats.Day in
                let d = SQLiteStore.day(now.addingTimeInterval(-Double(back) * 86400))
                return AdminStats.Day(day: d, plays: st.perDay[d] ?? 0)
            }
            let routes = s.routes.snapshot.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
                .map { AdminStats.RouteCount(route: $0.key, requests: $0.value) }
            return AdminStats(users: st.users, songs: st.songs, storageBytes: st.bytes, playsPerDay: days, topSongs: st.topSongs,
                              topArtists: st.topArtists, listenersNow: try await s.presence.listening(now: now),
                              requestsPerRoute: routes)
        }

        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: MetricsSetup.registry.emitToBuffer())))
        }
    }
}

extension AdminStats: ResponseEncodable {}
