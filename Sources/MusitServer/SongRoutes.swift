import Crypto
import Foundation
import Hummingbird
import MusitAPI
import MusitAudio
import NIOCore
import NIOPosix
import Synchronization

/// The song library: upload, list, search, delete, cover, and streaming (Range GET and HLS).
enum SongRoutes {
    static func register(on router: Router<MusitContext>, services s: Services) {
        let media = s.config.dataDirectory + "/media"
        let fileIO = FileIO()
        let publisher = EventPublisher(store: s.social, bus: s.bus)

        router.post("/api/v1/songs") { request, context in
            let me = try await Routes.authenticate(request, services: s)
            let contentType = request.headers[.contentType] ?? ""
            let type = contentType.lowercased()
            let boundary = try MultipartFile<RequestBody>.boundary(of: contentType)
            guard boundary != nil || type.hasPrefix("audio/mpeg") || type.hasPrefix("application/octet-stream") else {
                throw Problem(status: 415, title: "Unsupported Media Type",
                              detail: "Upload the MP3 itself as audio/mpeg, or as the part named file of multipart/form-data")
            }
            let allowance = boundary == nil ? 0 : MultipartFile<RequestBody>.formAllowance
            if let length = request.headers[.contentLength].flatMap(Int.init), length > s.config.uploadLimit + allowance {
                throw Problem(status: 413, title: "Content Too Large", detail: "Uploads are at most \(s.config.uploadLimit) bytes")
            }
            let temp = media + "/uploads/\(UUID().uuidString).part"
            let meter = UploadMeter(limit: s.config.uploadLimit)
            do {
                // Streamed to disk, hashed and counted on the way; never held in memory whole.
                if let boundary {
                    let file = MultipartFile(base: request.body, boundary: boundary, limit: s.config.uploadLimit + allowance)
                    try await fileIO.writeFile(contents: MeteredBody(base: file, meter: meter), path: temp, context: context)
                } else {
                    try await fileIO.writeFile(contents: MeteredBody(base: request.body, meter: meter), path: temp, context: context)
                }
                let stored = try await accept(temp: temp, meter: meter, owner: me, services: s, media: media)
                MetricsSetup.uploads.increment()
                MetricsSetup.uploadBytes.increment(by: meter.count)
                try await publisher.publish(EventPublisher.event(.libraryChanged, user: me.username), to: try await s.songs.allUserIDs())
                return EditedResponse(status: .created, response: song(stored, owner: me.username))
            } catch {
                // A refused, broken or abandoned upload leaves nothing behind.
                try? FileManager.default.removeItem(atPath: temp)
                // The file system wraps what the body threw; answer with the body's own problem.
                if let refusal = meter.refusal { throw refusal }
                throw error
            }
        }

        router.get("/api/v1/songs") { request, _ in
            _ = try await Routes.authenticate(request, services: s)
            let params = request.uri.queryParameters
            let limit = params.get("limit", as: Int.self) ?? 50
            guard (1...200).contains(limit) else { throw Problem.badRequest("limit is 1 to 200") }
            let cursor = params.get("cursor", as: Int64.self) ?? 0
            guard cursor >= 0 else { throw Problem.badRequest("cursor is a song id, 0 or more") }
            let query = params.get("query")
            guard (query?.count ?? 0) <= 100 else { throw Problem.badRequest("Search for at most 100 characters") }
            let rows = try await s.songs.songs(after: cursor, limit: limit, query: query)
            var owners: [Int64: String] = [:]
            for id in Set(rows.map(\.ownerID)) { owners[id] = try await s.users.user(id: id)?.username ?? "?" }
            return SongsPage(songs: rows.map { song($0, owner: owners[$0.ownerID] ?? "?") },
                             nextCursor: rows.count == limit ? rows.last?.id : nil)
        }

        router.get("/api/v1/songs/:id") { request, context in
            _ = try await Routes.authenticate(request, services: s)
            let stored = try await find(context, s)
            return song(stored, owner: try await s.users.user(id: stored.ownerID)?.username ?? "?")
        }

        router.delete("/api/v1/songs/:id") { request, context in
            let me = try await Routes.authenticate(request, services: s)
            let stored = try await find(context, s)
            guard stored.ownerID == me.id || me.role == .admin else {
                throw Problem(status: 403, title: "Forbidden", detail: "Only the owner or an admin deletes a song")
            }
            _ = try await s.songs.deleteSong(id: stored.id)
            s.mediaCache.forget(song: stored.id)
            // Streams already open keep reading the unlinked file to its end.
            try? FileManager.default.removeItem(atPath: audioPath(media, stored.id))
            try? FileManager.default.removeItem(atPath: coverPath(media, stored.id))
            try await publisher.publish(EventPublisher.event(.libraryChanged, user: me.username), to: try await s.songs.allUserIDs())
            return Response(status: .noContent)
        }

        router.get("/api/v1/songs/:id/cover") { request, context in
            _ = try await Routes.authenticate(request, services: s)
            let stored = try await find(context, s)
            guard let mime = stored.coverMime else { throw Problem.notFound("This song has no cover") }
            let body = try await fileIO.loadFile(path: coverPath(media, stored.id), context: context)
            return Response(status: .ok, headers: [.contentType: mime, .cacheControl: "private, max-age=86400"], body: body)
        }

        router.get("/api/v1/songs/:id/stream") { request, context in
            let me = try await Routes.authenticate(request, services: s)
            let stored = try await find(context, s)
            let token = try await s.tokens.mediaToken(userID: me.id, song: stored.id, lifetime: s.config.mediaTokenLifetime)
            let base = "/api/v1/songs/\(stored.id)"
            return StreamURLs(hls: "\(base)/hls/index.m3u8?token=\(token)", audio: "\(base)/audio?token=\(token)",
                              token: token, expiresIn: Int(s.config.mediaTokenLifetime))
        }

        router.get("/api/v1/songs/:id/audio") { request, context in
            let stored = try await mediaSong(request, context, s)
            return try await rangeResponse(request, context, fileIO: fileIO, cache: s.mediaCache, song: stored.id,
                                           path: audioPath(media, stored.id),
                                           size: Int(stored.bytes), etag: "\"\(stored.sha256.prefix(32))\"",
                                           lastModified: stored.createdAt)
        }

        router.get("/api/v1/songs/:id/hls/index.m3u8") { request, context in
            let stored = try await mediaSong(request, context, s)
            let token = request.uri.queryParameters.get("token")
            let suffix = token.map { "?token=\($0)" } ?? ""
            let text = HLSSegmenter.playlist(stored.hls) { "\($0).mp3\(suffix)" }
            return Response(status: .ok, headers: [.contentType: "application/vnd.apple.mpegurl", .cacheControl: "private, max-age=60"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }

        router.get("/api/v1/songs/:id/hls/:segment") { request, context in
            let stored = try await mediaSong(request, context, s)
            let name = context.parameters.get("segment") ?? ""
            guard name.hasSuffix(".mp3"), let n = Int(name.dropLast(4)), stored.hls.segments.indices.contains(n) else {
                throw Problem.notFound("No segment \(name)")
            }
            let seg = stored.hls.segments[n]
            let tag = HLSSegmenter.timestampTag(startSample: seg.startSample, sampleRate: stored.hls.sampleRate)
            let frames = try await readRange(audioPath(media, stored.id), offset: seg.offset, length: seg.length)
            var buffer = ByteBuffer(bytes: tag)
            buffer.writeBytes(frames)
            return Response(status: .ok, headers: [.contentType: "audio/mpeg", .cacheControl: "private, max-age=86400"],
                            body: .init(byteBuffer: buffer))
        }
    }

    static func audioPath(_ media: String, _ id: Int64) -> String { "\(media)/\(id).mp3" }
    static func coverPath(_ media: String, _ id: Int64) -> String { "\(media)/\(id).cover" }

    /// Validates an upload with libmpg123, reads its tags, indexes its HLS segments, and
    /// moves it into place under its song id.
    static func accept(temp: String, meter: UploadMeter, owner: User, services s: Services, media: String) async throws -> StoredSong {
        let hash = meter.digest
        if let existing = try await s.songs.song(sha256: hash) {
            throw Problem(status: 409, title: "Conflict", detail: "This file is already in the library as song \(existing.id)")
        }
        if try await s.songs.bytesStored(by: owner.id) + Int64(meter.count) > s.config.quota {
            throw Problem(status: 413, title: "Content Too Large", detail: "Your quota of \(s.config.quota) bytes would be exceeded")
        }
        let (meta, index): (TrackMetadata, HLSSegmenter.Index) = try await runBlocking {
            let meta: TrackMetadata
            do {
                meta = try FileTrack.readMetadata(path: temp)
            } catch let error as AudioError {
                throw Problem(status: 422, title: "Unprocessable Content", detail: "Not a playable MP3: \(error.message)")
            }
            do {
                let data = try Data(contentsOf: URL(fileURLWithPath: temp), options: .alwaysMapped)
                return (meta, try HLSSegmenter.index(data))
            } catch let reason as AudioError.Reason {
                throw Problem(status: 422, title: "Unprocessable Content", detail: AudioError("upload", reason).message)
            }
        }
        guard !index.segments.isEmpty else {
            throw Problem(status: 422, title: "Unprocessable Content", detail: "The MP3 has no audio frames")
        }
        var stored = StoredSong(id: 0, ownerID: owner.id, sha256: hash, title: meta.title ?? "Untitled", artist: meta.artist,
                                album: meta.album, trackNumber: meta.trackNumber, year: meta.year,
                                duration: meta.duration ?? index.duration, bytes: Int64(meter.count),
                                coverMime: meta.cover?.mimeType, hls: index, createdAt: Date())
        stored = try await s.songs.insertSong(stored)
        try FileManager.default.moveItem(atPath: temp, toPath: audioPath(media, stored.id))
        if let cover = meta.cover {
            try Data(cover.data).write(to: URL(fileURLWithPath: coverPath(media, stored.id)), options: .atomic)
        }
        return stored
    }

    static func song(_ s: StoredSong, owner: String) -> Song {
        Song(id: s.id, title: s.title, artist: s.artist, album: s.album, trackNumber: s.trackNumber, year: s.year,
             duration: s.duration, bytes: s.bytes, owner: owner, hasCover: s.coverMime != nil, sha256: s.sha256,
             createdAt: s.createdAt.ISO8601Format(), sampleRate: s.hls.sampleRate)
    }

    static func find(_ context: MusitContext, _ s: Services) async throws -> StoredSong {
        guard let id = context.parameters.get("id", as: Int64.self) else { throw Problem.notFound("No such song") }
        if let cached = s.mediaCache.song(id) { return cached }
        guard let song = try await s.songs.song(id: id) else { throw Problem.notFound("No such song") }
        s.mediaCache.store(song)
        return song
    }

    /// Media requests authenticate by bearer header or by a media token for this song in the URL.
    static func mediaSong(_ request: Request, _ context: MusitContext, _ s: Services) async throws -> StoredSong {
        let song = try await find(context, s)
        if let token = request.uri.queryParameters.get("token") {
            if s.mediaCache.tokenSong(token) == song.id { return song }
            guard let claims = try? await s.tokens.verifyMedia(token), claims.song == song.id else {
                throw Problem.unauthorized("Invalid or expired media token")
            }
            s.mediaCache.remember(token: token, song: song.id, expires: claims.exp.value)
            return song
        }
        _ = try await Routes.authenticate(request, services: s)
        return song
    }

    /// GET with Range (one range: a-b, a-, -n), If-Range (ETag or date) and ETag.
    /// Ranges up to this size are read with one `pread` of an already open file; larger ones
    /// and whole files stream through `FileIO` in chunks.
    static let smallRange = 1 << 20

    static func rangeResponse(_ request: Request, _ context: MusitContext, fileIO: FileIO, cache: MediaCache, song: Int64,
                              path: String, size: Int, etag: String, lastModified: Date) async throws -> Response {
        var headers: HTTPFields = [.contentType: "audio/mpeg", .acceptRanges: "bytes", .eTag: etag,
                                   .lastModified: lastModified.httpDate]
        if request.headers[.ifNoneMatch].map({ $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.contains(etag) }) == true {
            return Response(status: .notModified, headers: headers)
        }
        var range: ClosedRange<Int>?
        if let header = request.headers[.range] {
            var honour = true
            if let ifRange = request.headers[.ifRange] {
                honour = ifRange == etag || ifRange == lastModified.httpDate
            }
            if honour { range = try parseRange(header, size: size) }
        }
        guard let range else {
            headers[.contentLength] = String(size)
            return Response(status: .ok, headers: headers, body: counted(try await fileIO.loadFile(path: path, context: context)))
        }
        headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
        headers[.contentLength] = String(range.count)
        if range.count <= smallRange {
            // Hot songs are served from memory (a slice shares the cached storage); others
            // with one pread of an open file: no open, stat or close per request.
            let bytes: ByteBuffer
            if let whole = cache.contents(song: song), whole.readableBytes == size {
                bytes = whole.getSlice(at: whole.readerIndex + range.lowerBound, length: range.count)!
            } else {
                bytes = try await runBlocking {
                    let file = try cache.file(song: song, path: path)
                    if let whole = try cache.admit(song: song, size: size, read: { try file.read(0...(size - 1)) }) {
                        return whole.getSlice(at: whole.readerIndex + range.lowerBound, length: range.count)!
                    }
                    return try file.read(range)
                }
            }
            // One buffer, written with its head in one go; not a stream to count.
            return Response(status: .partialContent, headers: headers, body: .init(byteBuffer: bytes))
        }
        return Response(status: .partialContent, headers: headers,
                        body: counted(try await fileIO.loadFile(path: path, range: range, context: context)))
    }

    /// A body streamed from disk (a whole file, a large range) that counts itself in the
    /// active-streams gauge while it is being written.
    static func counted(_ body: ResponseBody) -> ResponseBody {
        ResponseBody(contentLength: body.contentLength) { writer in
            MetricsSetup.activeStreams.increment()
            defer { MetricsSetup.activeStreams.decrement() }
            try await body.write(writer)
        }
    }

    /// One byte range of a file of `size` bytes; nil to serve the whole file (several ranges,
    /// or a header that is not a byte range); 416 when it cannot be satisfied.
    static func parseRange(_ header: String, size: Int) throws -> ClosedRange<Int>? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        var spec = header.dropFirst(6)
        while spec.first == " " || spec.first == "\t" { spec.removeFirst() }
        while spec.last == " " || spec.last == "\t" { spec.removeLast() }
        let parts = spec.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        var unsatisfiable: HTTPError { HTTPError(.rangeNotSatisfiable, headers: [.contentRange: "bytes */\(size)"]) }
        if parts[0].isEmpty {
            guard let n = Int(parts[1]), n > 0, size > 0 else { throw unsatisfiable }
            return max(0, size - n)...(size - 1)
        }
        guard let start = Int(parts[0]), start >= 0 else { return nil }
        guard start < size else { throw unsatisfiable }
        if parts[1].isEmpty { return start...(size - 1) }
        guard let end = Int(parts[1]), end >= start else { return nil }
        return start...min(end, size - 1)
    }

    static func readRange(_ path: String, offset: Int, length: Int) async throws -> [UInt8] {
        try await runBlocking {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw Problem.notFound("The audio file is gone") }
            defer { try? handle.close() }
            try handle.seek(toOffset: UInt64(offset))
            return [UInt8](try handle.read(upToCount: length) ?? Data())
        }
    }

    /// Runs blocking file work on NIO's thread pool, off the event loops.
    static func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }
}

/// Counts and hashes an upload as it streams; past the limit it stops the stream.
final class UploadMeter: @unchecked Sendable {
    let limit: Int
    private let lock = NSLock()
    private var hasher = SHA256()
    private var _count = 0
    private var _refusal: Problem?

    init(limit: Int) { self.limit = limit }

    var count: Int { lock.withLock { _count } }
    /// Why the body was refused (too large, a broken form), when it was.
    var refusal: Problem? { lock.withLock { _refusal } }
    var digest: String { lock.withLock { hasher.finalize().map { String(format: "%02x", $0) }.joined() } }

    func refuse(_ problem: Problem) { lock.withLock { if _refusal == nil { _refusal = problem } } }

    func add(_ buffer: ByteBuffer) throws {
        try lock.withLock {
            _count += buffer.readableBytes
            if _count > limit {
                throw Problem(status: 413, title: "Content Too Large", detail: "Uploads are at most \(limit) bytes")
            }
            buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        }
    }
}

struct MeteredBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let meter: UploadMeter

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let meter: UploadMeter

        mutating func next() async throws -> ByteBuffer? {
            do {
                guard let buffer = try await base.next() else { return nil }
                try meter.add(buffer)
                return buffer
            } catch let problem as Problem {
                meter.refuse(problem)
                throw problem
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), meter: meter) }
}

extension Date {
    /// IMF-fixdate, as HTTP dates are written (English names whatever the locale).
    var httpDate: String {
        var t = time_t(timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) " +
            "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}

/// Recently used song rows and verified media tokens, so a Range request costs no database
/// read and no signature check when the same player asks again.
final class MediaCache: Sendable {
    /// An audio file kept open for range reads. Closed when the last holder lets go, so a
    /// read in flight when the song is deleted still completes from the unlinked file.
    final class OpenFile: Sendable {
        let fd: Int32

        init(path: String) throws {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw Problem.notFound("The audio file is gone") }
        }

        deinit { close(fd) }

        func read(_ range: ClosedRange<Int>) throws -> ByteBuffer {
            var buffer = ByteBufferAllocator().buffer(capacity: range.count)
            let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: range.count) { out -> Int in
                var done = 0
                while done < range.count {
                    let r = pread(fd, out.baseAddress! + done, range.count - done, off_t(range.lowerBound + done))
                    if r < 0 && errno == EINTR { continue }
                    if r <= 0 { break }
                    done += r
                }
                return done
            }
            guard n == range.count else { throw Problem(status: 500, title: "Internal Server Error", detail: "short read") }
            return buffer
        }
    }

    private let files = Mutex<[Int64: OpenFile]>([:])
    private let songs = Mutex<[Int64: StoredSong]>([:])
    /// Whole files of songs asked for by range more than once, within a byte budget.
    private let memory = Mutex<(files: [Int64: ByteBuffer], bytes: Int, seen: Set<Int64>)>(([:], 0, []))
    let memoryBudget: Int

    init(memoryBudget: Int = 128 << 20) {
        self.memoryBudget = memoryBudget
    }

    func contents(song id: Int64) -> ByteBuffer? { memory.withLock { $0.files[id] } }

    /// On a song's second range request, reads it whole into memory if it fits the budget
    /// (evicting others); nil when it stays on disk.
    func admit(song id: Int64, size: Int, read: () throws -> ByteBuffer) rethrows -> ByteBuffer? {
        let wanted = memory.withLock { m -> Bool in
            guard size <= memoryBudget / 4, m.files[id] == nil else { return false }
            if m.seen.contains(id) { return true }
            if m.seen.count > 10_000 { m.seen.removeAll() }
            m.seen.insert(id)
            return false
        }
        guard wanted else { return nil }
        let whole = try read()
        memory.withLock { m in
            while m.bytes + size > memoryBudget, let victim = m.files.keys.first {
                m.bytes -= m.files.removeValue(forKey: victim)?.readableBytes ?? 0
            }
            m.files[id] = whole
            m.bytes += size
        }
        return whole
    }

    /// The open file of a song (opened on first use; call on the thread pool).
    func file(song id: Int64, path: String) throws -> OpenFile {
        if let f = files.withLock({ $0[id] }) { return f }
        let f = try OpenFile(path: path)
        return files.withLock { open in
            if let other = open[id] { return other }
            if open.count >= 512 { open.removeAll() }
            open[id] = f
            return f
        }
    }
    private let tokens = Mutex<[String: (song: Int64, expires: Date)]>([:])
    static let limit = 10_000

    func song(_ id: Int64) -> StoredSong? { songs.withLock { $0[id] } }

    func store(_ song: StoredSong) {
        songs.withLock {
            if $0.count >= Self.limit { $0.removeAll() }
            $0[song.id] = song
        }
    }

    func forget(song id: Int64) {
        songs.withLock { _ = $0.removeValue(forKey: id) }
        files.withLock { _ = $0.removeValue(forKey: id) }
        memory.withLock { m in
            m.bytes -= m.files.removeValue(forKey: id)?.readableBytes ?? 0
            m.seen.remove(id)
        }
        tokens.withLock { $0 = $0.filter { $0.value.song != id } }
    }

    /// The song a token was verified for, while it is valid.
    func tokenSong(_ token: String, now: Date = Date()) -> Int64? {
        tokens.withLock { t in
            guard let entry = t[token] else { return nil }
            if entry.expires <= now {
                t[token] = nil
                return nil
            }
            return entry.song
        }
    }

    func remember(token: String, song: Int64, expires: Date) {
        tokens.withLock {
            if $0.count >= Self.limit { $0.removeAll() }
            $0[token] = (song, expires)
        }
    }
}

extension Song: ResponseEncodable {}
extension SongsPage: ResponseEncodable {}
extension StreamURLs: ResponseEncodable {}
