import Foundation
import GRDB
import MusitAPI

/// What the plays add up to over a window of days (see `PlayRepository.playStats`).
public struct PlayTotals: Sendable, Equatable {
    /// Plays started per UTC day ("yyyy-mm-dd"), days without plays absent.
    public var perDay: [String: Int]
    public var topSongs: [AdminStats.TopSong]
    public var topArtists: [AdminStats.TopArtist]
}

/// The plays, which the Stats service owns. A play keeps the song's title and artist as
/// they were when it started, so the totals need no other service's tables.
public protocol PlayRepository: Sendable {
    /// A new play; `PlayForgotten` when the user or the song was deleted (`forget`).
    func startPlay(userID: Int64, songID: Int64, title: String, artist: String?, at: Date) async throws -> Int64
    /// Records progress (or the end) of a play of the user's; false when it is not theirs.
    func updatePlay(id: Int64, userID: Int64, position: Double, ended: Bool) async throws -> Bool
    /// Plays since `since`, and the ten most played songs and artists of all time.
    func playStats(since: Date) async throws -> PlayTotals
    /// Removes the plays of these users and songs and refuses new ones for them; the same
    /// call again changes nothing. Returns the plays removed.
    func forget(users: [Int64], songs: [Int64]) async throws -> Int
}

/// A play of a user or song that was deleted.
public struct PlayForgotten: Error, Equatable, Sendable {}

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

    /// Runs after every other migration: the song's title and artist move into the play.
    static func registerPlaySongMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v7-plays-keep-their-song") { db in
            try db.execute(sql: "ALTER TABLE play ADD COLUMN title TEXT NOT NULL DEFAULT ''")
            try db.execute(sql: "ALTER TABLE play ADD COLUMN artist TEXT")
            try db.execute(sql: """
                UPDATE play SET title = (SELECT title FROM song WHERE song.id = play.songID),
                                artist = (SELECT artist FROM song WHERE song.id = play.songID)
                """)
        }
    }

    public func startPlay(userID: Int64, songID: Int64, title: String, artist: String?, at date: Date) async throws -> Int64 {
        try await write { db in
            if try Row.fetchOne(db, sql: """
                SELECT 1 FROM playForgotten WHERE (kind = 'user' AND subject = ?) OR (kind = 'song' AND subject = ?)
                """, arguments: [userID, songID]) != nil {
                throw PlayForgotten()
            }
            try db.execute(sql: "INSERT INTO play (userID, songID, title, artist, startedAt) VALUES (?, ?, ?, ?, ?)",
                           arguments: [userID, songID, title, artist, date])
            return db.lastInsertedRowID
        }
    }

    public func updatePlay(id: Int64, userID: Int64, position: Double, ended: Bool) async throws -> Bool {
        try await write { db in
            try db.execute(sql: "UPDATE play SET position = ?, endedAt = CASE WHEN ? THEN ? ELSE endedAt END WHERE id = ? AND userID = ?",
                           arguments: [position, ended, Date(), id, userID])
            return db.changesCount > 0
        }
    }

    public func forget(users: [Int64], songs: [Int64]) async throws -> Int {
        try await write { db in
            var removed = 0
            for (kind, ids, column) in [("user", users, "userID"), ("song", songs, "songID")] {
                for id in ids {
                    try db.execute(sql: "INSERT OR IGNORE INTO playForgotten (kind, subject) VALUES (?, ?)", arguments: [kind, id])
                    try db.execute(sql: "DELETE FROM play WHERE \(column) = ?", arguments: [id])
                    removed += db.changesCount
                }
            }
            return removed
        }
    }

    public func playStats(since: Date) async throws -> PlayTotals {
        try await read { db in
            var perDay: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT startedAt FROM play WHERE startedAt >= ?", arguments: [since]) {
                let d: Date = row["startedAt"]
                perDay[Self.day(d), default: 0] += 1
            }
            let top = try Row.fetchAll(db, sql: """
                SELECT songID, MAX(title) AS title, MAX(artist) AS artist, COUNT(*) AS n FROM play
                GROUP BY songID ORDER BY n DESC, songID LIMIT 10
                """).map { AdminStats.TopSong(songId: $0["songID"], title: $0["title"], artist: $0["artist"], plays: $0["n"]) }
            let artists = try Row.fetchAll(db, sql: """
                SELECT artist, COUNT(*) AS n FROM play WHERE artist IS NOT NULL
                GROUP BY artist ORDER BY n DESC, artist LIMIT 10
                """).map { AdminStats.TopArtist(artist: $0["artist"], plays: $0["n"]) }
            return PlayTotals(perDay: perDay, topSongs: top, topArtists: artists)
        }
    }

    static func day(_ d: Date) -> String {
        let c = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: d)
        return String(format: "%04d-%02d-%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0)
    }
}
