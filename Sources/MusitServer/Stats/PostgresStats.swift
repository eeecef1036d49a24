import Foundation
import MusitAPI
import MusitAudio
import PostgresNIO

extension PostgresStore: PlayRepository {
    public func startPlay(userID: Int64, songID: Int64, at date: Date) async throws -> Int64 {
        try await write { conn in
            try await self.int64s(conn, "INSERT INTO play (userID, songID, startedAt) VALUES (\(userID), \(songID), \(date)) RETURNING id").first!
        }
    }

    public func updatePlay(id: Int64, userID: Int64, position: Double, ended: Bool) async throws -> Bool {
        try await write { conn in
            try await self.rowCount(conn, """
                UPDATE play SET position = \(position), endedAt = CASE WHEN \(ended) THEN \(Date()) ELSE endedAt END
                WHERE id = \(id) AND userID = \(userID) RETURNING 1
                """) > 0
        }
    }

    public func stats(now: Date) async throws -> (users: Int, songs: Int, bytes: Int64, perDay: [String: Int],
                                                 topSongs: [AdminStats.TopSong], topArtists: [AdminStats.TopArtist], listeners: Int) {
        try await read { conn in
            let users = Int(try await self.int64s(conn, #"SELECT COUNT(*) FROM "user""#).first ?? 0)
            let songs = Int(try await self.int64s(conn, "SELECT COUNT(*) FROM song").first ?? 0)
            let bytes = try await self.int64s(conn, "SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM song").first ?? 0
            let since = now.addingTimeInterval(-30 * 86400)
            var perDay: [String: Int] = [:]
            for try await d in try await conn.query("SELECT startedAt FROM play WHERE startedAt >= \(since)", logger: self.logger)
                .decode(Date.self) {
                perDay[SQLiteStore.day(d), default: 0] += 1
            }
            var top: [AdminStats.TopSong] = []
            for try await (id, title, artist, n) in try await conn.query("""
                SELECT s.id, s.title, s.artist, COUNT(*) AS n FROM play p JOIN song s ON s.id = p.songID
                GROUP BY s.id ORDER BY n DESC, s.id LIMIT 10
                """, logger: self.logger).decode((Int64, String, String?, Int64).self) {
                top.append(AdminStats.TopSong(songId: id, title: title, artist: artist, plays: Int(n)))
            }
            var artists: [AdminStats.TopArtist] = []
            for try await (artist, n) in try await conn.query("""
                SELECT s.artist, COUNT(*) AS n FROM play p JOIN song s ON s.id = p.songID WHERE s.artist IS NOT NULL
                GROUP BY s.artist ORDER BY n DESC, s.artist LIMIT 10
                """, logger: self.logger).decode((String, Int64).self) {
                artists.append(AdminStats.TopArtist(artist: artist, plays: Int(n)))
            }
            return (users, songs, bytes, perDay, top, artists, 0)
        }
    }
}
