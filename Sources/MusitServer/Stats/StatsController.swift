import Foundation
import Hummingbird
import MusitAPI
import MusitRPC
import NIOCore

/// The gateway's routes for plays and the admin statistics. Plays and their totals belong
/// to the Stats service, reached through `stats` (in process, or over gRPC); the counts of
/// users, songs and listeners come from the services that own them.
struct StatsController: Sendable {
    let services: Services
    let stats: ServiceLink<any Musit_Stats_V1_Stats.ClientProtocol>

    func addRoutes(signedIn: RouterGroup<MusitContext>) {
        let s = services
        let stats = self.stats
        signedIn.post("plays") { request, context in
            let me = try context.requireUser()
            let body = try await request.decode(as: PlayReport.self, context: context)
            guard body.position.isFinite, body.position >= 0 else { throw Problem.badRequest("position is seconds, 0 or more") }
            guard let song = try await s.library.song(id: body.songId) else { throw Problem.notFound("No such song") }
            var call = Musit_Stats_V1_RecordPlayRequest()
            call.userID = me.id
            call.songID = song.id
            call.position = body.position
            switch body.event {
            case .start:
                call.event = .start
                call.title = song.title
                call.artist = song.artist ?? ""
                let answer: Musit_Stats_V1_RecordPlayResponse
                do {
                    answer = try await stats.call { try await $0.recordPlay(call, options: $1) }
                } catch let error as HTTPError where error.status == .conflict {
                    throw Problem.notFound("No such song")  // deleted since it was read
                }
                return Response(status: .created, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(PlayStarted(playId: answer.playID)))))
            case .progress, .end:
                guard let id = body.playId else { throw Problem.badRequest("progress and end need the playId from start") }
                call.event = body.event == .end ? .end : .progress
                call.playID = id
                do {
                    _ = try await stats.call { try await $0.recordPlay(call, options: $1) }
                } catch let error as HTTPError where error.status == .notFound {
                    throw Problem.notFound("No play \(id) of yours")
                }
                return Response(status: .noContent)
            }
        }

        signedIn.get("admin/stats") { _, context in
            let me = try context.requireUser()
            guard me.role == .admin else { throw Problem(status: 403, title: "Forbidden", detail: "Statistics are for admins") }
            let overview = try await stats.call(idempotent: true) { try await $0.overview(.with { $0.days = 30 }, options: $1) }
            let users = try await s.users.userCount()
            let library = try await s.library.totals()
            let routes = s.routes.snapshot.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
                .map { AdminStats.RouteCount(route: $0.key, requests: $0.value) }
            return AdminStats(users: users, songs: library.songs, storageBytes: library.bytes,
                              playsPerDay: overview.playsPerDay.map { AdminStats.Day(day: $0.day, plays: Int($0.plays)) },
                              topSongs: overview.topSongs.map {
                                  AdminStats.TopSong(songId: $0.songID, title: $0.title, artist: $0.artist.isEmpty ? nil : $0.artist,
                                                     plays: Int($0.plays))
                              },
                              topArtists: overview.topArtists.map { AdminStats.TopArtist(artist: $0.artist, plays: Int($0.plays)) },
                              listenersNow: try await s.presence.listening(now: Date()), requestsPerRoute: routes)
        }
    }
}

extension AdminStats: ResponseEncodable {}
