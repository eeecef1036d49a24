import Foundation
import GRDB
import MusitAPI
import MusitAudio

public struct StoredSong: Equatable, Sendable {
    public var id: Int64
    public var ownerID: Int64
    public var sha256: String
    public var title: String
    public var artist: String?
    public var album: String?
    public var trackNumber: Int?
    public var year: Int?
    public var duration: Double
    public var bytes: Int64
    public var coverMime: String?
    public var hls: HLSSegmenter.Index
    public var createdAt: Date
}

public protocol SongRepository: Sendable {
    func insertSong(_ song: StoredSong) async throws -> StoredSong
    func song(id: Int64) async throws -> StoredSong?
    func song(sha256: String) async throws -> StoredSong?
    /// Songs with id greater than `after`, in id order, matching `query` in title/artist/album.
    func songs(after: Int64, limit: Int, query: String?) async throws -> [StoredSong]
    func deleteSong(id: Int64) async throws -> Bool
    func bytesStored(by owner: Int64) async throws -> Int64
    func allUserIDs() async throws -> [Int64]
}

extension SQLiteStore: SongRepository {
    static func registerSongMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v3-songs") { db in
            try db.create(table: "song") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("ownerID", .integer).notNull().indexed().references("user", onDelete: .cascade)
                t.column("sha256", .text).notNull().unique()
                t.column("title", .text).notNull()
                t.column("artist", .text)
                t.column("album", .text)
                t.column("trackNumber", .integer)
                t.column("year", .integer)
                t.column("duration", .double).notNull()
                t.column("bytes", .integer).notNull()
                t.column("coverMime", .text)
                t.column("hls", .blob).notNull()
                t.column("createdAt", .datetime).notNull()
            }
        }
    }

    private static func song(_ row: Row) throws -> StoredSong {
        StoredSong(id: row["id"], ownerID: row["ownerID"], sha256: row["sha256"], title: row["title"], artist: row["artist"],
                   album: row["album"], trackNumber: row["trackNumber"], year: row["year"], duration: row["duration"],
                   bytes: row["bytes"], coverMime: row["coverMime"],
                   hls: try JSONDecoder().decode(HLSSegmenter.Index.self, from: row["hls"] as Data), createdAt: row["createdAt"])
    }

    public func insertSong(_ song: StoredSong) async throws -> StoredSong {
        let hls = try JSONEncoder().encode(song.hls)
        return try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO song (ownerID, sha256, title, artist, album, trackNumber, year, duration, bytes, coverMime, hls, createdAt)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [song.ownerID, song.sha256, song.title, song.artist, song.album, song.trackNumber, song.year,
                                 song.duration, song.bytes, song.coverMime, hls, song.createdAt])
            var stored = song
            stored.id = db.lastInsertedRowID
            return stored
        }
    }

    public func song(id: Int64) async throws -> StoredSong? {
        try await pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM song WHERE id = ?", arguments: [id]).map(Self.song) }
    }

    public func song(sha256: String) async throws -> StoredSong? {
        try await pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM song WHERE sha256 = ?", arguments: [sha256]).map(Self.song) }
    }

    public func songs(after: Int64, limit: Int, query: String?) async throws -> [StoredSong] {
        try await pool.read { db in
            if let query, !query.isEmpty {
                let like = Self.containsPattern(query)
                return try Row.fetchAll(db, sql: """
                    SELECT * FROM song WHERE id > ? AND (title LIKE ? ESCAPE '\\' OR artist LIKE ? ESCAPE '\\' OR album LIKE ? ESCAPE '\\')
                    ORDER BY id LIMIT ?
                    """, arguments: [after, like, like, like, limit]).map(Self.song)
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM song WHERE id > ? ORDER BY id LIMIT ?", arguments: [after, limit]).map(Self.song)
        }
    }

    public func deleteSong(id: Int64) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM song WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }

    public func bytesStored(by owner: Int64) async throws -> Int64 {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM song WHERE ownerID = ?", arguments: [owner]) ?? 0 }
    }

    public func allUserIDs() async throws -> [Int64] {
        try await pool.read { db in try Int64.fetchAll(db, sql: "SELECT id FROM user") }
    }
}
