import Foundation
import MusitAPI
import MusitCodecs
import PostgresNIO

extension PostgresStore: SongRepository {
    private static let songColumns =
        "id, ownerID, sha256, title, artist, album, trackNumber, year, duration, bytes, coverMime, hls, createdAt, format, channels, bitDepth"
    private typealias SongRow = (Int64, Int64, String, String, String?, String?, Int64?, Int64?, Double, Int64, String?, String, Date,
                                 String, Int32?, Int32?)

    private func songs(_ conn: PostgresConnection, _ query: PostgresQuery) async throws -> [StoredSong] {
        var out: [StoredSong] = []
        for try await r in try await conn.query(query, logger: logger).decode(SongRow.self) {
            out.append(StoredSong(id: r.0, ownerID: r.1, sha256: r.2, title: r.3, artist: r.4, album: r.5,
                                  trackNumber: r.6.map(Int.init), year: r.7.map(Int.init), duration: r.8, bytes: r.9,
                                  coverMime: r.10, hls: try JSONDecoder().decode(HLSSegmenter.Index.self, from: Data(r.11.utf8)),
                                  createdAt: r.12, format: AudioFiles.Kind(rawValue: r.13) ?? .mp3,
                                  channels: r.14.map(Int.init), bitDepth: r.15.map(Int.init)))
        }
        return out
    }

    public func insertSong(_ song: StoredSong, quota: Int64, event: ServerEvent,
                           place: @escaping @Sendable (Int64) throws -> Void) async throws -> StoredSong {
        let hls = String(decoding: try JSONEncoder().encode(song.hls), as: UTF8.self)
        do {
            return try await write { conn in
                // The owner's uploads one at a time, so the quota holds.
                try await conn.query("SELECT pg_advisory_xact_lock(\(Int32(0x6D75)), \(Int32(truncatingIfNeeded: song.ownerID)))",
                                     logger: self.logger)
                if let id = try await self.int64s(conn, "SELECT id FROM song WHERE sha256 = \(song.sha256)").first {
                    throw SongStorageError.duplicate(id)
                }
                if try await !self.int64s(conn, "SELECT ownerID FROM songOwnerForgotten WHERE ownerID = \(song.ownerID)").isEmpty {
                    throw SongStorageError.ownerGone
                }
                let used = try await self.int64s(conn, "SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM song WHERE ownerID = \(song.ownerID)").first ?? 0
                guard used + song.bytes <= quota else { throw SongStorageError.quota }
                let track = song.trackNumber.map(Int64.init), year = song.year.map(Int64.init)
                let id = try await self.int64s(conn, """
                    INSERT INTO song (ownerID, sha256, title, artist, album, trackNumber, year, duration, bytes, coverMime, hls, createdAt,
                                      format, channels, bitDepth)
                    VALUES (\(song.ownerID), \(song.sha256), \(song.title), \(song.artist), \(song.album), \(track), \(year),
                            \(song.duration), \(song.bytes), \(song.coverMime), \(hls), \(song.createdAt),
                            \(song.format.rawValue), \(song.channels.map(Int32.init)), \(song.bitDepth.map(Int32.init))) RETURNING id
                    """).first!
                var stored = song
                stored.id = id
                // Social tells everyone (`library.changed`), from the outbox, once it commits.
                try await self.enqueue(conn, .libraryChanged, [id], payload: event.user)
                try place(id)
                return stored
            }
        } catch where Self.isUniqueViolation(error) {
            // Two identical uploads by different users at once: the other one committed first.
            if let other = try await self.song(sha256: song.sha256) { throw SongStorageError.duplicate(other.id) }
            throw error
        }
    }

    public func discardFiles(of id: Int64, remove: @escaping @Sendable () -> Void) async throws {
        _ = try await write { conn in
            // The row's lock, if it exists, keeps a commit of this id from racing the removal.
            if try await self.int64s(conn, "SELECT id FROM song WHERE id = \(id) FOR UPDATE").isEmpty { remove() }
        }
    }

    public func deleteSong(id: Int64, by user: User, event: ServerEvent) async throws -> SongDeletion {
        try await write { conn in
            guard let owner = try await self.int64s(conn, "SELECT ownerID FROM song WHERE id = \(id) FOR UPDATE").first else {
                return .notFound
            }
            guard owner == user.id || user.role == .admin else { return .forbidden }
            try await conn.query("DELETE FROM song WHERE id = \(id)", logger: self.logger)
            try await self.enqueue(conn, .songDeleted, [id])
            try await self.enqueue(conn, .libraryChanged, [id], payload: event.user)
            try await self.notify(conn, ["s:\(id)"])
            return .deleted
        }
    }

    public func deleteSongs(ownedBy owner: Int64, event: ServerEvent) async throws -> [Int64] {
        try await write { conn in
            // The owner's uploads' lock (insertSong): one in flight commits first or, after
            // this, finds the owner forgotten and is refused.
            try await conn.query("SELECT pg_advisory_xact_lock(\(Int32(0x6D75)), \(Int32(truncatingIfNeeded: owner)))",
                                 logger: self.logger)
            try await conn.query("INSERT INTO songOwnerForgotten (ownerID) VALUES (\(owner)) ON CONFLICT DO NOTHING",
                                 logger: self.logger)
            let ids = try await self.int64s(conn, "DELETE FROM song WHERE ownerID = \(owner) RETURNING id")
            guard !ids.isEmpty else { return [] }
            try await self.enqueue(conn, .songDeleted, ids)
            // One change for everyone, however many songs went.
            try await self.enqueue(conn, .libraryChanged, [ids.min()!], payload: event.user)
            try await self.notify(conn, ids.map { "s:\($0)" })
            return ids.sorted()
        }
    }

    public func repairMedia(directory: String, event: ServerEvent) async throws -> MediaRepair {
        try await write { conn in
            // Another process may be placing a song's files inside its insert (instances or
            // a Library sharing the media directory): this waits for every insert in flight
            // to commit and holds new ones back, so a file placed by one is never taken for
            // a file without a row. (SQLite's single writer orders them the same way.)
            try await conn.query("LOCK TABLE song IN SHARE ROW EXCLUSIVE MODE", logger: self.logger)
            var rows: [(Int64, Bool)] = []
            for try await (id, cover) in try await conn.query("SELECT id, coverMime FROM song", logger: self.logger)
                .decode((Int64, String?).self) {
                rows.append((id, cover != nil))
            }
            let (repair, coversMissing) = MediaFiles.reconcile(directory: directory, rows: rows)
            for id in repair.rowsWithoutFile { try await conn.query("DELETE FROM song WHERE id = \(id)", logger: self.logger) }
            try await self.enqueue(conn, .songDeleted, repair.rowsWithoutFile)
            for id in coversMissing { try await conn.query("UPDATE song SET coverMime = NULL WHERE id = \(id)", logger: self.logger) }
            if let first = repair.rowsWithoutFile.first {
                try await self.enqueue(conn, .libraryChanged, [first], payload: event.user)
            }
            return repair
        }
    }

    public func song(id: Int64) async throws -> StoredSong? {
        try await read { conn in try await self.songs(conn, "SELECT \(unescaped: Self.songColumns) FROM song WHERE id = \(id)").first }
    }

    public func song(sha256: String) async throws -> StoredSong? {
        try await read { conn in try await self.songs(conn, "SELECT \(unescaped: Self.songColumns) FROM song WHERE sha256 = \(sha256)").first }
    }

    public func songs(after: Int64, limit: Int, query: String?) async throws -> [StoredSong] {
        try await read { conn in
            if let query, !query.isEmpty {
                let like = SQLiteStore.containsPattern(query)
                return try await self.songs(conn, #"""
                    SELECT \#(unescaped: Self.songColumns) FROM song WHERE id > \#(after)
                      AND (title ILIKE \#(like) ESCAPE '\' OR artist ILIKE \#(like) ESCAPE '\' OR album ILIKE \#(like) ESCAPE '\')
                    ORDER BY id LIMIT \#(limit)
                    """#)
            }
            return try await self.songs(conn, "SELECT \(unescaped: Self.songColumns) FROM song WHERE id > \(after) ORDER BY id LIMIT \(limit)")
        }
    }

    public func bytesStored(by owner: Int64) async throws -> Int64 {
        try await read { conn in try await self.int64s(conn, "SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM song WHERE ownerID = \(owner)").first ?? 0 }
    }

    public func libraryTotals() async throws -> (songs: Int, bytes: Int64) {
        try await read { conn in
            var out: (Int, Int64) = (0, 0)
            for try await (n, b) in try await conn.query("SELECT COUNT(*), COALESCE(SUM(bytes), 0)::BIGINT FROM song", logger: self.logger)
                .decode((Int64, Int64).self) { out = (Int(n), b) }
            return out
        }
    }

    public func songsToRescan() async throws -> [Int64] {
        try await read { conn in try await self.int64s(conn, "SELECT id FROM song WHERE scanVersion < 1 ORDER BY id") }
    }

    public func storeScan(id: Int64, duration: Double?, hls: HLSSegmenter.Index?) async throws {
        let encoded = try hls.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        _ = try await write { conn in
            if let duration, let encoded {
                try await conn.query("UPDATE song SET duration = \(duration), hls = \(encoded), scanVersion = 1 WHERE id = \(id)",
                                     logger: self.logger)
            } else {
                try await conn.query("UPDATE song SET scanVersion = 1 WHERE id = \(id)", logger: self.logger)
            }
        }
    }
}
