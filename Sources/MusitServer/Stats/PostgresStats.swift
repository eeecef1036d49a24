import Foundation
import MusitAPI
import MusitAudio
import PostgresNIO

extension PostgresStore: PlayRepository {
    public func startPlay(userID: Int64, songID: Int64, title: String, artist: String?, at date: Date) async throws -> Int64 {
        try await write { conn in
            try await self.int64s(conn, """
                INSERT INTO play (userID, songID, title, artist, startedAt) VALUES (\(userID), \(songID), \(title), \(artist), \(date))
                RETURNING id
                """).first!
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

    public func playStats(since: Date) async throws -> PlayTotals {
        try await read { conn in
            var perDay: [String: Int] = [:]
            for try await d in try await conn.query("SELECT startedAt FROM play WHERE startedAt >= \(since)", logger: self.logger)
                .decode(Date.self) {
                perDay[SQLiteStore.day(d), default: 0] += 1
            }
            var top: [AdminStats.TopSong] = []
            for try await (id, title, artist, n) in try await conn.query("""
                SELECT songID, MAX(title), MAX(artist), COUNT(*) AS n FROM play
                GROUP BY songID ORDER BY n DESC, songID LIMIT 10
                """, logger: self.logger).decode((Int64, String, String?, Int64).self) {
                top.append(AdminStats.TopSong(songId: id, title: title, artist: artist, plays: Int(n)))
            }
            var artists: [AdminStats.TopArtist] = []
            for try await (artist, n) in try await conn.query("""
                SELECT artist, COUNT(*) AS n FROM play WHERE artist IS NOT NULL
                GROUP BY artist ORDER BY n DESC, artist LIMIT 10
                """, logger: self.logger).decode((String, Int64).self) {
                artists.append(AdminStats.TopArtist(artist: artist, plays: Int(n)))
            }
            return PlayTotals(perDay: perDay, topSongs: top, topArtists: artists)
        }
    }
}
