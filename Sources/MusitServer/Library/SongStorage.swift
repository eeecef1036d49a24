import Foundation
import GRDB
import MusitAPI
import MusitCodecs

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
    /// What the bytes are (sniffed and decoded at upload, never taken from a name or type).
    public var format: AudioFiles.Kind = .mp3
    /// Of the decoded audio; nil for songs stored before formats were recorded.
    public var channels: Int?
    /// Bits per sample of a lossless song (FLAC); nil for lossy ones.
    public var bitDepth: Int?
}

public enum SongStorageError: Error, Equatable {
    /// The same bytes are already stored, as this song.
    case duplicate(Int64)
    /// The owner's quota would be exceeded.
    case quota
    /// The owner's account was deleted.
    case ownerGone
}

/// What deleting a song did.
public enum SongDeletion: Sendable, Equatable {
    case deleted
    case notFound
    case forbidden
}

public protocol SongRepository: Sendable {
    /// Stores `song` with its outbox message (`library.changed`, from `event`'s user) in one
    /// transaction; the events are Social's to append, so none are returned. `place` puts the song's
    /// files where its id says, inside that transaction: if it throws, or the process dies
    /// before the commit, there is no row (and `repairMedia` removes what was placed).
    /// Throws `SongStorageError` for a duplicate or an exceeded quota.
    func insertSong(_ song: StoredSong, quota: Int64, event: ServerEvent,
                    place: @escaping @Sendable (Int64) throws -> Void) async throws -> StoredSong
    /// Removes the files of a song whose row was not committed, under the writer's lock so
    /// that no other upload can meanwhile be given the same id.
    func discardFiles(of id: Int64, remove: @escaping @Sendable () -> Void) async throws
    /// Deletes a song of `user`'s (any song for an admin) with `event` for every user.
    func deleteSong(id: Int64, by user: User, event: ServerEvent) async throws -> SongDeletion
    /// An account was deleted: deletes every song it owned, with their `song.deleted` and one
    /// `library.changed` (`event`'s user) in the outbox, and refuses the owner's uploads from
    /// then on. The ids deleted, whose files the caller removes; none the second time.
    func deleteSongs(ownedBy owner: Int64, event: ServerEvent) async throws -> [Int64]
    /// At start-up: drops rows whose audio file is gone, forgets covers whose file is gone,
    /// and removes files without a row and leftover partial uploads. Returns what it did.
    func repairMedia(directory: String, event: ServerEvent) async throws -> MediaRepair
    func song(id: Int64) async throws -> StoredSong?
    func song(sha256: String) async throws -> StoredSong?
    /// Songs with id greater than `after`, in id order, matching `query` in title/artist/album.
    func songs(after: Int64, limit: Int, query: String?) async throws -> [StoredSong]
    func bytesStored(by owner: Int64) async throws -> Int64
    /// Songs in the library and their bytes, for the admin statistics.
    func libraryTotals() async throws -> (songs: Int, bytes: Int64)
    /// Songs whose duration and HLS index predate the frame walk.
    func songsToRescan() async throws -> [Int64]
    /// Stores a song's walked duration and index (nil: the file would now be refused;
    /// its row is kept, marked as scanned).
    func storeScan(id: Int64, duration: Double?, hls: HLSSegmenter.Index?) async throws
}

extension SQLiteStore: SongRepository {
    /// Durations and HLS indexes used to come from libmpg123's estimate; rows made before
    /// are rescanned from their files at start (`SongsController`), once.
    static func registerDurationMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v6-true-durations") { db in
            try db.alter(table: "song") { t in t.add(column: "scanVersion", .integer).notNull().defaults(to: 0) }
        }
    }

    public func songsToRescan() async throws -> [Int64] {
        try await read { db in try Int64.fetchAll(db, sql: "SELECT id FROM song WHERE scanVersion < 1 ORDER BY id") }
    }

    public func storeScan(id: Int64, duration: Double?, hls: HLSSegmenter.Index?) async throws {
        let encoded = try hls.map { try JSONEncoder().encode($0) }
        try await write { db in
            if let duration, let encoded {
                try db.execute(sql: "UPDATE song SET duration = ?, hls = ?, scanVersion = 1 WHERE id = ?",
                               arguments: [duration, encoded, id])
            } else {
                try db.execute(sql: "UPDATE song SET scanVersion = 1 WHERE id = ?", arguments: [id])
            }
        }
    }

    /// FLAC, Vorbis and Opus beside MP3: each song says what it is. Rows from before are MP3s.
    static func registerFormatMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v10-song-formats") { db in
            try db.alter(table: "song") { t in
                t.add(column: "format", .text).notNull().defaults(to: "mp3")
                t.add(column: "channels", .integer)
                t.add(column: "bitDepth", .integer)
            }
        }
    }

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
                   hls: try JSONDecoder().decode(HLSSegmenter.Index.self, from: row["hls"] as Data), createdAt: row["createdAt"],
                   format: AudioFiles.Kind(rawValue: row["format"]) ?? .mp3, channels: row["channels"], bitDepth: row["bitDepth"])
    }

    public func insertSong(_ song: StoredSong, quota: Int64, event: ServerEvent,
                           place: @escaping @Sendable (Int64) throws -> Void) async throws -> StoredSong {
        let hls = try JSONEncoder().encode(song.hls)
        return try await write { db in
            // Checked in the writer's transaction: two identical uploads at once are one 201 and one 409.
            if let id = try Int64.fetchOne(db, sql: "SELECT id FROM song WHERE sha256 = ?", arguments: [song.sha256]) {
                throw SongStorageError.duplicate(id)
            }
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM songOwnerForgotten WHERE ownerID = ?", arguments: [song.ownerID]) != nil {
                throw SongStorageError.ownerGone
            }
            let used = try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM song WHERE ownerID = ?",
                                          arguments: [song.ownerID]) ?? 0
            guard used + song.bytes <= quota else { throw SongStorageError.quota }
            try db.execute(sql: """
                INSERT INTO song (ownerID, sha256, title, artist, album, trackNumber, year, duration, bytes, coverMime, hls, createdAt,
                                  scanVersion, format, channels, bitDepth)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)
                """, arguments: [song.ownerID, song.sha256, song.title, song.artist, song.album, song.trackNumber, song.year,
                                 song.duration, song.bytes, song.coverMime, hls, song.createdAt, song.format.rawValue,
                                 song.channels, song.bitDepth])
            var stored = song
            stored.id = db.lastInsertedRowID
            // Social tells everyone (`library.changed`), from the outbox, once it commits.
            try Self.enqueue(db, .libraryChanged, [stored.id], payload: event.user)
            // Last, so nothing after it can fail: the files are in place before the row commits.
            try place(stored.id)
            return stored
        }
    }

    public func discardFiles(of id: Int64, remove: @escaping @Sendable () -> Void) async throws {
        try await write { db in
            if try Int64.fetchOne(db, sql: "SELECT id FROM song WHERE id = ?", arguments: [id]) == nil { remove() }
        }
    }

    public func deleteSong(id: Int64, by user: User, event: ServerEvent) async throws -> SongDeletion {
        try await write { db in
            guard let owner = try Int64.fetchOne(db, sql: "SELECT ownerID FROM song WHERE id = ?", arguments: [id]) else {
                return .notFound
            }
            guard owner == user.id || user.role == .admin else { return .forbidden }
            try db.execute(sql: "DELETE FROM song WHERE id = ?", arguments: [id])
            try Self.enqueue(db, .songDeleted, [id])
            try Self.enqueue(db, .libraryChanged, [id], payload: event.user)
            return .deleted
        }
    }

    public func deleteSongs(ownedBy owner: Int64, event: ServerEvent) async throws -> [Int64] {
        try await write { db in
            // Refused from now on: an upload of the owner's still in flight cannot store a
            // song for an account that is gone (SQLite's single writer orders the two).
            try db.execute(sql: "INSERT INTO songOwnerForgotten (ownerID) VALUES (?) ON CONFLICT DO NOTHING", arguments: [owner])
            let ids = try Int64.fetchAll(db, sql: "SELECT id FROM song WHERE ownerID = ? ORDER BY id", arguments: [owner])
            guard !ids.isEmpty else { return [] }
            try db.execute(sql: "DELETE FROM song WHERE ownerID = ?", arguments: [owner])
            try Self.enqueue(db, .songDeleted, ids)
            // One change for everyone, however many songs went.
            try Self.enqueue(db, .libraryChanged, [ids[0]], payload: event.user)
            return ids
        }
    }

    public func repairMedia(directory: String, event: ServerEvent) async throws -> MediaRepair {
        try await write { db in
            let rows = try Row.fetchAll(db, sql: "SELECT id, coverMime FROM song").map { row -> (Int64, Bool) in
                (row["id"], (row["coverMime"] as String?) != nil)
            }
            let (repair, coversMissing) = MediaFiles.reconcile(directory: directory, rows: rows)
            for id in repair.rowsWithoutFile { try db.execute(sql: "DELETE FROM song WHERE id = ?", arguments: [id]) }
            try Self.enqueue(db, .songDeleted, repair.rowsWithoutFile)
            for id in coversMissing { try db.execute(sql: "UPDATE song SET coverMime = NULL WHERE id = ?", arguments: [id]) }
            if let first = repair.rowsWithoutFile.first { try Self.enqueue(db, .libraryChanged, [first], payload: event.user) }
            return repair
        }
    }

    public func song(id: Int64) async throws -> StoredSong? {
        try await read { db in try Row.fetchOne(db, sql: "SELECT * FROM song WHERE id = ?", arguments: [id]).map(Self.song) }
    }

    public func song(sha256: String) async throws -> StoredSong? {
        try await read { db in try Row.fetchOne(db, sql: "SELECT * FROM song WHERE sha256 = ?", arguments: [sha256]).map(Self.song) }
    }

    public func songs(after: Int64, limit: Int, query: String?) async throws -> [StoredSong] {
        try await read { db in
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

    public func bytesStored(by owner: Int64) async throws -> Int64 {
        try await read { db in try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM song WHERE ownerID = ?", arguments: [owner]) ?? 0 }
    }

    public func libraryTotals() async throws -> (songs: Int, bytes: Int64) {
        try await read { db in
            let row = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM song")
            return (row?["n"] ?? 0, row?["b"] ?? 0)
        }
    }
}

/// The media directory against the song rows, the same for every store.
enum MediaFiles {
    /// Removes partial uploads and files no row owns; returns what it did, with the rows
    /// whose audio is gone (`rowsWithoutFile`, for the store to delete) and the rows whose
    /// cover file is gone (for the store to forget the cover of).
    /// Removes the partial uploads a process that died left in `uploads/`, not those a live
    /// process sharing the directory is writing (`UploadClaim`); returns how many. Run by
    /// Library at its start and by a gateway at its own (it wrote them).
    static func sweepUploads(directory: String) -> Int {
        let uploads = directory + "/uploads"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: uploads)) ?? []
        let stems = Set(names.compactMap { name -> String? in
            guard name.hasSuffix(".part") || name.hasSuffix(".lock") else { return nil }
            return uploads + "/" + name.dropLast(5)
        })
        return stems.filter(UploadClaim.removeIfAbandoned).count
    }

    static func reconcile(directory: String, rows: [(id: Int64, hasCover: Bool)]) -> (MediaRepair, coversMissing: [Int64]) {
        var repair = MediaRepair()
        var coversMissing: [Int64] = []
        let fm = FileManager.default
        repair.partialUploads = sweepUploads(directory: directory)
        var withCover = Set<Int64>()
        var songs = Set<Int64>()
        for (id, hasCover) in rows {
            guard fm.fileExists(atPath: "\(directory)/\(id).mp3") else {
                repair.rowsWithoutFile.append(id)
                continue
            }
            songs.insert(id)
            if hasCover {
                if fm.fileExists(atPath: "\(directory)/\(id).cover") {
                    withCover.insert(id)
                } else {
                    coversMissing.append(id)
                    repair.coversForgotten += 1
                }
            }
        }
        for name in (try? fm.contentsOfDirectory(atPath: directory)) ?? [] {
            let parts = name.split(separator: ".", maxSplits: 1)
            guard parts.count == 2, let id = Int64(parts[0]) else { continue }
            let orphan = parts[1] == "mp3" ? !songs.contains(id) : parts[1] == "cover" ? !withCover.contains(id) : false
            if orphan {
                try? fm.removeItem(atPath: directory + "/" + name)
                repair.filesWithoutRow += 1
            }
        }
        return (repair, coversMissing)
    }
}

/// What `repairMedia` found and fixed at start-up.
public struct MediaRepair: Sendable, Equatable {
    public var partialUploads = 0
    public var rowsWithoutFile: [Int64] = []
    public var coversForgotten = 0
    public var filesWithoutRow = 0

    public var isEmpty: Bool { partialUploads == 0 && rowsWithoutFile.isEmpty && coversForgotten == 0 && filesWithoutRow == 0 }
}
