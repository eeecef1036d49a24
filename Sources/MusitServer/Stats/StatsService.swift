import Foundation
import GRPCCore
import MusitAPI
import MusitRPC

/// The Stats service, `musit.stats.v1.Stats`: plays and what they add up to. The same value
/// serves the in-process transport (all-in-one) and HTTP/2 (`--role stats`).
struct StatsService: Musit_Stats_V1_Stats.SimpleServiceProtocol {
    let plays: any PlayRepository

    func recordPlay(request: Musit_Stats_V1_RecordPlayRequest, context: ServerContext) async throws
        -> Musit_Stats_V1_RecordPlayResponse {
        guard request.position.isFinite, request.position >= 0 else {
            throw RPCError(code: .invalidArgument, message: "position is seconds, 0 or more")
        }
        guard request.userID > 0, request.songID > 0 else {
            throw RPCError(code: .invalidArgument, message: "user_id and song_id are ids above 0")
        }
        var answer = Musit_Stats_V1_RecordPlayResponse()
        switch request.event {
        case .start:
            guard !request.title.isEmpty, request.title.utf8.count <= 4096, request.artist.utf8.count <= 4096 else {
                throw RPCError(code: .invalidArgument, message: "a start needs the song's title (at most 4096 bytes, as the artist)")
            }
            do {
                answer.playID = try await plays.startPlay(userID: request.userID, songID: request.songID, title: request.title,
                                                          artist: request.artist.isEmpty ? nil : request.artist, at: Date())
            } catch is PlayForgotten {
                throw RPCError(code: .failedPrecondition, message: "The user or the song was deleted")
            }
        case .progress, .end:
            guard request.playID > 0 else {
                throw RPCError(code: .invalidArgument, message: "progress and end need the play_id from start")
            }
            guard try await plays.updatePlay(id: request.playID, userID: request.userID, position: request.position,
                                             ended: request.event == .end) else {
                throw RPCError(code: .notFound, message: "No play \(request.playID) of this user's")
            }
            answer.playID = request.playID
        case .unspecified, .UNRECOGNIZED:
            throw RPCError(code: .invalidArgument, message: "event is START, PROGRESS or END")
        }
        return answer
    }

    func overview(request: Musit_Stats_V1_OverviewRequest, context: ServerContext) async throws
        -> Musit_Stats_V1_OverviewResponse {
        let days = request.days == 0 ? 30 : Int(request.days)
        guard (1...366).contains(days) else { throw RPCError(code: .invalidArgument, message: "days is 1 to 366") }
        let now = Date()
        let totals = try await plays.playStats(since: Self.startOfDay(now.addingTimeInterval(-Double(days - 1) * 86400)))
        var answer = Musit_Stats_V1_OverviewResponse()
        answer.playsPerDay = (0..<days).reversed().map { back in
            let day = SQLiteStore.day(now.addingTimeInterval(-Double(back) * 86400))
            return .with { $0.day = day; $0.plays = Int64(totals.perDay[day] ?? 0) }
        }
        answer.topSongs = totals.topSongs.map { song in
            .with { $0.songID = song.songId; $0.title = song.title; $0.artist = song.artist ?? ""; $0.plays = Int64(song.plays) }
        }
        answer.topArtists = totals.topArtists.map { a in .with { $0.artist = a.artist; $0.plays = Int64(a.plays) } }
        return answer
    }

    func forget(request: Musit_Stats_V1_ForgetRequest, context: ServerContext) async throws -> Musit_Stats_V1_ForgetResponse {
        guard request.userIds.count + request.songIds.count <= Self.forgetLimit else {
            throw RPCError(code: .invalidArgument, message: "At most \(Self.forgetLimit) users and songs per call")
        }
        let removed = try await plays.forget(users: request.userIds, songs: request.songIds)
        return .with { $0.playsForgotten = Int64(removed) }
    }

    /// Subjects one Forget may name: the relay sends batches of at most this many.
    static let forgetLimit = 1000

    /// Midnight UTC of the day `date` falls in.
    static func startOfDay(_ date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 86400).rounded(.down) * 86400)
    }
}
