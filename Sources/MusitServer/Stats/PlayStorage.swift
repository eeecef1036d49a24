import Foundation
import GRDB
import Hummingbird
import MusitAPI
import Prometheus
import Synchronization

public protocol PlayRepository: Sendable {
    func startPlay(userID: Int64, songID: Int64, at: Date) async throws -> Int64
    /// Records progress (or the end) of a play of the user's; false when it is not theirs.
    func updatePlay(id: Int64, userID: Int64, position: Double, ended: Bool) async throws -> Bool
    func stats(now: Date) async throws -> (users: Int, songs: Int, bytes: Int64, perDay: [String: Int],
                                          topSongs: [AdminStats.TopSong], topArtists: [AdminStats.TopArtist], listeners: Int)
}

extension SQLiteStore: PlayRepository {
    static func registerPlayMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v4-plays") { db in
            try db.create(table: "play") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("userID", .integer).notNull().indexed().references("user", onDelete: .cascade)
                t.column("songID", .integer).notNull().indexed().references("song", onDelete: .cascade)
                t.column("startedAt", .datetime).notNull().indexed()
                t.column("position", .double).notNull().defaults(to: 0)
                t.column("endedAt", .datetime)
            }
        }
    }

    public func startPlay(userID: Int64, songID: Int64, at date: Date) async throws -> Int64 {
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO play (userID, songID, startedAt) VALUES (?, ?, ?)", arguments: [userID, songID, date])
            return db.lastInsertedRowID
        }
    }

    public func updatePlay(id: Int64, userID: Int64, position: Double, ended: Bool) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "UPDATE play SET position = ?, endedAt = CASE WHEN ? THEN ? ELSE endedAt END WHERE id = ? AND userID = ?",
                           arguments: [position, ended, Date(), id, userID])
            return db.changesCount > 0
        }
    }

    public func stats(now: Date) async throws -> (users: Int, songs: Int, bytes: Int64, perDay: [String: Int],
                                                 topSongs: [AdminStats.TopSong], topArtists: [AdminStats.TopArtist], listeners: Int) {
        try await pool.read { db in
            let users = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM user") ?? 0
            let songs = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM song") ?? 0
            let bytes = try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM song") ?? 0
            let since = now.addingTimeInterval(-30 * 86400)
            var perDay: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT startedAt FROM play WHERE startedAt >= ?", arguments: [since]) {
                let d: Date = row["startedAt"]
                perDay[Self.day(d), default: 0] += 1
            }
            let top = try Row.fetchAll(db, sql: """
                SELECT s.id, s.title, s.artist, COUNT(*) AS n FROM play p JOIN song s ON s.id = p.songID
                GROUP BY s.id ORDER BY n DESC, s.id LIMIT 10
                """).map { AdminStats.TopSong(songId: $0["id"], title: $0["title"], artist: $0["artist"], plays: $0["n"]) }
            let artists = try Row.fetchAll(db, sql: """
                SELECT s.artist, COUNT(*) AS n FROM play p JOIN song s ON s.id = p.songID WHERE s.artist IS NOT NULL
                GROUP BY s.artist ORDER BY n DESC, s.artist LIMIT 10
                """).map { AdminStats.TopArtist(artist: $0["artist"], plays: $0["n"]) }
            var listeners = 0
            for row in try Row.fetchAll(db, sql: "SELECT nowPlaying FROM presence WHERE lastSeen >= ?",
                                        arguments: [now.addingTimeInterval(-APILimits.onlineSeconds)]) {
                let blob: Data? = row["nowPlaying"]
                if let np = blob.flatMap({ try? JSONDecoder().decode(NowPlayingInfo.self, from: $0) }), np.state == .playing {
                    listeners += 1
                }
            }
            return (users, songs, bytes, perDay, top, artists, listeners)
        }
    }

    static func day(_ d: Date) -> String {
        let c = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: d)
        return String(format: "%04d-%02d-%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0)
    }
}
