import Foundation
import Hummingbird
import Logging
import MusitAPI
import MusitCodecs
import NIOCore

/// What the gateway asks of Library: songs stored, looked up, listed and deleted.
/// `LocalLibrary` does it over the store and the media directory (all-in-one, and
/// `--role library` serving it); `RemoteLibrary` asks the Library service over gRPC.
/// Failures are the public API's answers (`Problem`), whichever side runs.
///
/// The gateway and Library share the media directory: the gateway streams uploads into
/// `uploads/` and serves the stored files' bytes; Library decides what is stored and
/// places and removes the files with their rows.
protocol LibraryAPI: Sendable {
    /// Validates and stores the upload named `upload` in `uploads/` for `owner`. `measured`
    /// is what the gateway learnt as the bytes streamed in (hash, size, MP3 frame walk), so
    /// that a library in the same process need not read the file again; without it the
    /// file is read here. On success the file has moved to the song's name; on failure it
    /// is where it was.
    func addSong(upload: String, owner: User, measured: UploadMeter?) async throws -> StoredSong
    func song(id: Int64) async throws -> StoredSong?
    /// Songs with id greater than `after`, in id order, matching `query` in title/artist/album.
    func songs(after: Int64, limit: Int, query: String?) async throws -> [StoredSong]
    /// Deletes a song of `user`'s (any song for an admin), then its files. 404 when there is
    /// no such song, 403 when it is someone else's. Its `library.changed` and `song.deleted`
    /// are in the outbox, committed with it.
    func deleteSong(id: Int64, by user: User) async throws
    /// Songs in the library and their bytes, for the admin statistics.
    func totals() async throws -> (songs: Int, bytes: Int64)
    /// An account was deleted (`user.deleted/library`): deletes the songs it owned, then
    /// their files, and refuses its uploads from then on. The ids deleted; none the second time.
    func deleteSongs(ownedBy owner: Int64, name: String) async throws -> [Int64]
}

/// Library over the store and the media directory.
struct LocalLibrary: LibraryAPI {
    let songs: any SongRepository
    let media: String
    let quota: Int64
    let uploadLimit: Int

    init(songs: any SongRepository, media: String, quota: Int64, uploadLimit: Int) {
        self.songs = songs
        self.media = media
        self.quota = quota
        self.uploadLimit = uploadLimit
    }

    /// Deletions write their outbox message for Stats in their transaction; the gateway that
    /// asked pokes its relay (`OutboxRelay`), and every relay checks every 2 s.
    init(_ config: ServerConfiguration, songs: any SongRepository) {
        self.init(songs: songs, media: config.media, quota: config.quota, uploadLimit: config.uploadLimit)
    }

    /// Before the first request, in the process that owns the library: repairs the media
    /// directory against the rows after an unclean stop, and rescans songs stored before
    /// durations came from the frame walk.
    func prepare(logger: Logger) async throws {
        let repair = try await songs.repairMedia(directory: media, event: .draft(.libraryChanged))
        if !repair.isEmpty {
            logger.warning("repaired the media directory after an unclean stop", metadata: [
                "partial_uploads_removed": "\(repair.partialUploads)",
                "songs_without_audio_removed": "\(repair.rowsWithoutFile)",
                "covers_forgotten": "\(repair.coversForgotten)",
                "files_without_song_removed": "\(repair.filesWithoutRow)",
            ])
        }
        try await rescan(logger: logger)
    }

    /// Songs stored before durations came from the frame walk get their true duration and
    /// HLS index from their files, once. A file the walk now refuses keeps its row (it was
    /// accepted once; deleting a user's song is not this code's call) and is logged.
    func rescan(logger: Logger) async throws {
        let ids = try await songs.songsToRescan()
        guard !ids.isEmpty else { return }
        var refused = 0
        for id in ids {
            let path = SongRoutes.audioPath(media, id)
            let scan: MP3Scanner.Summary? = try await SongRoutes.runBlocking {
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { return nil }
                defer { close(fd) }
                return try? MP3Scanner.scan(fd: fd)
            }
            if scan == nil { refused += 1 }
            try await songs.storeScan(id: id, duration: scan?.duration, hls: scan?.index)
        }
        logger.notice("songs rescanned for their true durations", metadata: ["songs": "\(ids.count)", "unplayable": "\(refused)"])
    }

    /// An upload's name in `uploads/`: a UUID and `.part`, so that no caller can name
    /// another file.
    static func isUploadName(_ name: String) -> Bool {
        name.hasSuffix(".part") && UUID(uuidString: String(name.dropLast(5))) != nil
    }

    func uploadPath(_ name: String) -> String { media + "/uploads/" + name }

    func addSong(upload: String, owner: User, measured: UploadMeter?) async throws -> StoredSong {
        guard Self.isUploadName(upload) else { throw Problem.badRequest("An upload is named by a UUID and .part") }
        let temp = uploadPath(upload)
        let meter: UploadMeter
        if let measured {
            meter = measured
        } else {
            meter = try await Self.measure(path: temp, limit: uploadLimit)
        }
        // Not cancelled with its caller: a gateway that goes away (or a deadline that passes)
        // mid-store must not stop it between placing the files and the commit, or between
        // a failed commit and taking the files back (a cancelled task's database calls
        // throw at once), which left a file without a row. It finishes, either way, and
        // its answer is dropped; the upload retried then answers 409 naming the song.
        let library = self
        return try await Task { try await library.accept(temp: temp, meter: meter, owner: owner) }.value
    }

    /// Hashes, counts and walks a file already on disk, as `UploadMeter` does a body.
    static func measure(path: String, limit: Int) async throws -> UploadMeter {
        try await SongRoutes.runBlocking {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw Problem(status: 400, title: "Bad Request", detail: "No such upload: it was removed or never written") }
            defer { close(fd) }
            let meter = UploadMeter(limit: limit)
            var buffer = ByteBufferAllocator().buffer(capacity: 256 << 10)
            while true {
                buffer.clear()
                var failed = false
                let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 256 << 10) { out -> Int in
                    while true {
                        let r = read(fd, out.baseAddress!, out.count)
                        if r < 0 && errno == EINTR { continue }
                        failed = r < 0
                        return max(r, 0)
                    }
                }
                if failed { throw Problem(status: 500, title: "Internal Server Error", detail: "The upload could not be read") }
                if n == 0 { break }
                try meter.add(buffer)
            }
            return meter
        }
    }

    /// Validates an upload (MP3: its frame walk and libmpg123; FLAC, Vorbis, Opus: decoded
    /// whole), reads its tags, and stores it: the row, its outbox message and its files in place
    /// commit together or not at all.
    func accept(temp: String, meter: UploadMeter, owner: User) async throws -> StoredSong {
        let hash = meter.digest
        // Early answers for the common cases; the transaction below decides.
        if let existing = try await songs.song(sha256: hash) {
            throw Problem.duplicate(existing.id)
        }
        if try await songs.bytesStored(by: owner.id) + Int64(meter.count) > quota {
            throw Problem.quota(quota)
        }
        // One hop to the thread pool: the format from the first bytes, then MP3's tags
        // (its frames were walked as the bytes came) or the other formats decoded whole
        // (the only proof that every sample plays). One rule with the player's
        // (`MP3Scanner`): what would not play is refused, with the player's reason.
        enum Checked: Sendable {
            case mp3(MP3Scanner.Summary, TrackMetadata)
            /// With a FLAC's STREAMINFO, for HLS.
            case other(VerifiedAudio, streamInfo: [UInt8]?)
            case refused(String)
        }
        let (kind, checked) = try await SongRoutes.runBlocking { () -> (AudioFiles.Kind, Checked) in
            let kind = AudioFiles.kind(path: temp)
            do {
                guard kind == .mp3 else {
                    let verified = try AudioFiles.verify(path: temp, kind: kind)
                    return (kind, .other(verified, streamInfo: kind == .flac ? FLACSegments.streamInfo(path: temp) : nil))
                }
                let scan = try meter.scan()
                return (kind, .mp3(scan, try scan.readMetadata()))
            } catch let reason as AudioError.Reason {
                // Neither MP3 nor a format told by its bytes: say what it looks like.
                if case .otherFormat = reason { return (kind, .refused("Not a playable file: \(AudioError("upload", reason).message)")) }
                return (kind, .refused("Not a playable MP3: \(AudioError("upload", reason).message)"))
            } catch let error as AudioError {
                return (kind, .refused("Not a playable \(kind.name) file: \(error.message)"))
            } catch {
                return (kind, .refused("Not a playable \(kind.name) file: \(error)"))
            }
        }
        let meta: TrackMetadata
        let index: HLSSegmenter.Index
        let duration: Double
        let channels: Int
        var bitDepth: Int?
        switch checked {
        case .mp3(let scan, let tags):
            meta = tags
            index = scan.index
            duration = scan.duration
            channels = scan.channels
        case .other(let verified, let streamInfo):
            meta = verified.metadata
            duration = verified.duration
            channels = verified.channels
            bitDepth = verified.bitDepth
            if let frames = verified.frameLog, let info = streamInfo {
                // HLS in fragmented MP4: the file's own frames, bit for bit.
                var flac = FLACSegments.index(frames: frames, sampleRate: verified.sampleRate, fileSize: meter.count)
                flac.flacStreamInfo = info
                flac.bitsPerSample = verified.bitDepth
                flac.channels = verified.channels
                index = flac
            } else {
                index = HLSSegmenter.Index(sampleRate: verified.sampleRate, segments: [], audioOffset: 0, audioLength: meter.count)
            }
        case .refused(let why):
            throw Problem(status: 422, title: "Unprocessable Content", detail: why)
        }
        // On disk before the row can commit, so a crash after the commit finds the bytes.
        try await SongRoutes.runBlocking { try SongRoutes.syncFile(temp) }
        // A cover is kept only when its bytes are an image we know, whatever the tag claims.
        let cover = meta.cover.map { Data($0.data) }.flatMap { ImageType.sniff($0) == nil ? nil : $0 }
        let stored = StoredSong(id: 0, ownerID: owner.id, sha256: hash, title: meta.title ?? "Untitled", artist: meta.artist,
                                album: meta.album, trackNumber: meta.trackNumber, year: meta.year,
                                duration: duration, bytes: Int64(meter.count),
                                coverMime: cover.flatMap(ImageType.sniff), hls: index, createdAt: Date(),
                                format: kind, channels: channels, bitDepth: bitDepth)
        let placed = PlacedFiles()
        let media = media
        do {
            return try await songs.insertSong(stored, quota: quota, event: .draft(.libraryChanged, user: owner.username)) { id in
                placed.id.withLock { $0 = id }
                if let cover { try cover.write(to: URL(fileURLWithPath: SongRoutes.coverPath(media, id)), options: .atomic) }
                // rename(2) is atomic: the audio is either at its final name or still the .part.
                try FileManager.default.moveItem(atPath: temp, toPath: SongRoutes.audioPath(media, id))
            }
        } catch let error as SongStorageError {
            switch error {
            case .duplicate(let id): throw Problem.duplicate(id)
            case .quota: throw Problem.quota(quota)
            case .ownerGone: throw Problem.unauthorized("No such user: the account was deleted")
            }
        } catch {
            // The transaction failed after the files were placed (a failed commit): take
            // them back, unless the id has since become another upload's.
            if let id = placed.id.withLock({ $0 }) {
                try? await songs.discardFiles(of: id) { Self.removeFiles(of: [id], in: media) }
            }
            throw error
        }
    }

    func song(id: Int64) async throws -> StoredSong? { try await songs.song(id: id) }

    func songs(after: Int64, limit: Int, query: String?) async throws -> [StoredSong] {
        try await songs.songs(after: after, limit: limit, query: query)
    }

    func deleteSong(id: Int64, by user: User) async throws {
        switch try await songs.deleteSong(id: id, by: user, event: .draft(.libraryChanged, user: user.username)) {
        case .notFound:
            throw Problem.notFound("No such song")
        case .forbidden:
            throw Problem(status: 403, title: "Forbidden", detail: "Only the owner or an admin deletes a song")
        case .deleted:
            // After the commit: a crash in between leaves files without a row, which the
            // next start removes; never a row without its file. Ids are not reused, so
            // no later song can own these names. Open streams read the unlinked file on.
            let media = media
            _ = try? await SongRoutes.runBlocking { Self.removeFiles(of: [id], in: media) }
        }
    }

    func deleteSongs(ownedBy owner: Int64, name: String) async throws -> [Int64] {
        let ids = try await songs.deleteSongs(ownedBy: owner, event: .draft(.libraryChanged, user: name.isEmpty ? nil : name))
        guard !ids.isEmpty else { return [] }
        // After the commit, as for one song: a crash in between leaves files without a row,
        // which the next start removes.
        let media = media
        _ = try? await SongRoutes.runBlocking { Self.removeFiles(of: ids, in: media) }
        return ids
    }

    /// Removes the songs' audio and cover files (blocking: off the pool). A file already
    /// gone is no error.
    static func removeFiles(of ids: [Int64], in media: String) {
        for id in ids {
            try? FileManager.default.removeItem(atPath: SongRoutes.audioPath(media, id))
            try? FileManager.default.removeItem(atPath: SongRoutes.coverPath(media, id))
        }
    }

    func totals() async throws -> (songs: Int, bytes: Int64) { try await songs.libraryTotals() }
}

/// An upload in progress, told to every process sharing the media directory: an exclusive
/// flock(2) on `uploads/<name>.lock`, taken before the `.part` is written and held until
/// Library has taken the file or refused it. A Library starting meanwhile (`MediaFiles`)
/// removes only the partial uploads no live process holds; a process that dies lets go
/// of its locks with it.
final class UploadClaim: Sendable {
    let lockPath: String
    private let fd: Int32

    /// Claims the upload at `path` (its `.part`); on the thread pool (open and flock).
    init(path: String) async throws {
        let lockPath = UploadClaim.lockPath(of: path)
        self.lockPath = lockPath
        fd = try await SongRoutes.runBlocking {
            // A sweep may find the file between its creation and the lock and remove it:
            // then the lock is on a name no one sees, and it is taken again.
            for _ in 0..<3 {
                let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
                guard fd >= 0 else { break }
                var held = stat(), named = stat()
                if flock(fd, LOCK_EX) == 0, fstat(fd, &held) == 0, stat(lockPath, &named) == 0, held.st_ino == named.st_ino {
                    return fd
                }
                close(fd)
            }
            throw Problem(status: 500, title: "Internal Server Error", detail: "Cannot start an upload in the media directory")
        }
    }

    /// Lets go, on the thread pool: the lock file goes while the lock is held, so that a
    /// process that opened it meanwhile finds it gone and makes its own (`init`).
    func release() async {
        let (path, fd) = (lockPath, fd)
        _ = try? await SongRoutes.runBlocking {
            unlink(path)
            close(fd)
        }
    }

    static func lockPath(of part: String) -> String { String(part.dropLast(".part".count)) + ".lock" }

    /// Whether any upload in `uploads/` is held by a live process now (call on the thread pool).
    static func anyHeld(in uploads: String) -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: uploads)) ?? []
        return names.contains { name in
            guard name.hasSuffix(".lock") else { return false }
            let fd = open(uploads + "/" + name, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return errno != ENOENT }
            defer { close(fd) }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                flock(fd, LOCK_UN)
                return false
            }
            return true
        }
    }

    /// Removes the upload `<uploads>/<stem>.part` and its lock file when no live process
    /// holds it; true when it was abandoned and is gone (call on the thread pool). Both go
    /// while the lock is held here, as in `release`. Anything but "no lock file" or "the
    /// lock taken" (another user's file, a file system without locks) counts as held:
    /// an upload is never removed on a guess.
    static func removeIfAbandoned(stem: String) -> Bool {
        let lock = stem + ".lock"
        let fd = open(lock, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            guard errno == ENOENT else { return false }
            return unlink(stem + ".part") == 0
        }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }
        let removed = unlink(stem + ".part") == 0
        unlink(lock)
        return removed
    }
}
