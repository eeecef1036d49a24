import Foundation
import MusitAPI
import MusitCodecs
import PostgresNIO

extension PostgresStore: PlayRepository {
    public func startPlay(userID: Int64, songID: Int64, title: String, artist: String?, at date: Date) async throws -> Int64 {
        try await write { conn in
            // A start and a Forget of its user or song take the same advisory locks
            // (in ascending order, so they cannot deadlock): one commits before the
            // other reads, so a play is either refused or removed, never left behind.
            try await self.lockPlaySubjects(conn, [Self.playLockKey(user: userID), Self.playLockKey(song: songID)])
            let ids = try await self.int64s(conn, """
                INSERT INTO play (userID, songID, title, artist, startedAt)
                SELECT \(userID), \(songID), \(title), \(artist), \(date)
                WHERE NOT EXISTS (SELECT 1 FROM playForgotten
                                  WHERE (kind = 'user' AND subject = \(userID)) OR (kind = 'song' AND subject = \(songID)))
                RETURNING id
                """)
            guard let id = ids.first else { throw PlayForgotten() }
            return id
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

    public func forget(users: [Int64], songs: [Int64]) async throws -> Int {
        try await write { conn in
            try await self.lockPlaySubjects(conn, users.map { Self.playLockKey(user: $0) } + songs.map { Self.playLockKey(song: $0) })
            try await conn.query("""
                INSERT INTO playForgotten (kind, subject)
                SELECT 'user', unnest(\(users)::BIGINT[]) UNION SELECT 'song', unnest(\(songs)::BIGINT[])
                ON CONFLICT DO NOTHING
                """, logger: self.logger)
            return try await self.rowCount(conn, """
                DELETE FROM play WHERE userID = ANY(\(users)::BIGINT[]) OR songID = ANY(\(songs)::BIGINT[]) RETURNING 1
                """)
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

    /// The advisory lock of a user's or a song's plays: a space of its own above the
    /// other advisory keys (the migration lock, the login throttle's hashes may meet it,
    /// which only makes two unrelated transactions wait for each other).
    static func playLockKey(user id: Int64) -> Int64 { 0x5000_0000_0000_0000 | (id << 1) }
    static func playLockKey(song id: Int64) -> Int64 { 0x5000_0000_0000_0000 | (id << 1) | 1 }

    private func lockPlaySubjects(_ conn: PostgresConnection, _ keys: [Int64]) async throws {
        for key in Set(keys).sorted() {
            try await conn.query("SELECT pg_advisory_xact_lock(\(key))", logger: logger)
        }
    }
}
