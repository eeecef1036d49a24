import Crypto
import Foundation
import Hummingbird
import Logging
import MusitAPI
import MusitCodecs
import NIOCore
import NIOPosix
import Synchronization

/// The song routes: upload, list, search and delete through Library (`LibraryAPI`, in this
/// process or over gRPC), and the media bytes the gateway serves from the media directory
/// (cover, Range GET, HLS).
struct SongsController: Sendable {
    let services: Services
    let media: String
    let fileIO = FileIO()

    init(services: Services) {
        self.services = services
        media = services.config.media
    }

    func addRoutes(open: RouterGroup<MusitContext>, signedIn: RouterGroup<MusitContext>) {
        let s = services
        let media = media
        let fileIO = fileIO
        let library = services.library

        signedIn.post("songs") { request, context in
            let me = try context.requireUser()
            let contentType = request.headers[.contentType] ?? ""
            let type = contentType.lowercased()
            let boundary = try MultipartFile<RequestBody>.boundary(of: contentType)
            guard boundary != nil || SongRoutes.uploadTypes.contains(where: { type.hasPrefix($0) }) else {
                throw Problem(status: 415, title: "Unsupported Media Type",
                              detail: "Upload the MP3, FLAC, Ogg Vorbis or Ogg Opus file itself as audio/* (audio/mpeg, audio/flac, "
                                  + "audio/ogg), or as the part named file of multipart/form-data")
            }
            let allowance = boundary == nil ? 0 : MultipartFile<RequestBody>.formAllowance
            if let length = request.headers[.contentLength].flatMap(Int.init), length > s.config.uploadLimit + allowance {
                throw Problem(status: 413, title: "Content Too Large", detail: "Uploads are at most \(s.config.uploadLimit) bytes")
            }
            let upload = "\(UUID().uuidString).part"
            let temp = media + "/uploads/" + upload
            let meter = UploadMeter(limit: s.config.uploadLimit)
            // Held until Library has taken the file or refused it: a Library starting
            // meanwhile removes the partial uploads an unclean stop left, not this one.
            let claim = try await UploadClaim(path: temp)
            do {
                // Streamed to disk, hashed and counted on the way; never held in memory whole.
                if let boundary {
                    let file = MultipartFile(base: request.body, boundary: boundary, limit: s.config.uploadLimit + allowance)
                    try await fileIO.writeFile(contents: MeteredBody(base: file, meter: meter), path: temp, context: context)
                } else {
                    try await fileIO.writeFile(contents: MeteredBody(base: request.body, meter: meter), path: temp, context: context)
                }
                let stored = try await library.addSong(upload: upload, owner: me, measured: meter)
                await claim.release()
                // Its library.changed: from the outbox through Social into every log.
                await s.outbox.deliverNow()
                MetricsSetup.uploads.increment()
                MetricsSetup.uploadBytes.increment(by: Int64(meter.count))
                return EditedResponse(status: .created, response: SongRoutes.song(stored, owner: me.username))
            } catch {
                // A refused, broken or abandoned upload leaves nothing behind.
                _ = try? await SongRoutes.runBlocking { try? FileManager.default.removeItem(atPath: temp) }
                await claim.release()
                // The file system wraps what the body threw; answer with the body's own problem.
                if let refusal = meter.refusal { throw refusal }
                throw error
            }
        }

        signedIn.get("songs") { request, context in
            _ = try context.requireUser()
            let params = QueryParameters(request)
            let limit = try params.integer("limit", in: 1...200, default: 50)
            let cursor = try params.integer("cursor", in: 0...Int64.max, default: 0)
            let query = try params.text("query", maxCharacters: 100, maxBytes: 400)
            let rows = try await library.songs(after: cursor, limit: limit, query: query)
            var owners: [Int64: String] = [:]
            for id in Set(rows.map(\.ownerID)) { owners[id] = try await s.users.user(id: id)?.username ?? "?" }
            return SongsPage(songs: rows.map { SongRoutes.song($0, owner: owners[$0.ownerID] ?? "?") },
                             nextCursor: rows.count == limit ? rows.last?.id : nil)
        }

        signedIn.get("songs/:id") { _, context in
            let stored = try await SongRoutes.find(context, s)
            return SongRoutes.song(stored, owner: try await s.users.user(id: stored.ownerID)?.username ?? "?")
        }

        signedIn.delete("songs/:id") { _, context in
            let me = try context.requireUser()
            guard let id = context.parameters.get("id", as: Int64.self) else { throw Problem.notFound("No such song") }
            try await library.deleteSong(id: id, by: me)
            // Its outbox messages (Stats forgets its plays, Social tells everyone) are
            // committed: delivered now, not at the next check.
            await s.outbox.deliverNow()
            s.mediaCache.forget(song: id)
            return Response(status: .noContent)
        }

        signedIn.get("songs/:id/cover") { _, context in
            let stored = try await SongRoutes.find(context, s)
            guard stored.coverMime != nil else { throw Problem.notFound("This song has no cover") }
            let path = SongRoutes.coverPath(media, stored.id)
            let bytes = try await SongRoutes.runBlocking { try Data(contentsOf: URL(fileURLWithPath: path)) }
            // The type the bytes are, never the one the tag claims (a tag may say text/html).
            guard let mime = ImageType.sniff(bytes) else { throw Problem.notFound("This song has no cover") }
            return Response(status: .ok, headers: [.contentType: mime, .cacheControl: "private, max-age=86400",
                                                   SongRoutes.contentTypeOptions: "nosniff"],
                            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }

        signedIn.get("songs/:id/stream") { _, context in
            let me = try context.requireUser()
            let stored = try await SongRoutes.find(context, s)
            let token = try await s.tokens.mediaToken(userID: me.id, song: stored.id, lifetime: s.config.mediaTokenLifetime)
            let base = "/api/v1/songs/\(stored.id)"
            return StreamURLs(hls: "\(base)/hls/index.m3u8?token=\(token)", audio: "\(base)/audio?token=\(token)",
                              token: token, expiresIn: Int(s.config.mediaTokenLifetime))
        }

        // Media: a bearer header or a media token in the URL (players that cannot send headers).
        open.get("songs/:id/audio") { request, context in
            let stored = try await SongRoutes.mediaSong(request, context, s)
            return try await SongRoutes.rangeResponse(request, cache: s.mediaCache, song: stored.id,
                                                      path: SongRoutes.audioPath(media, stored.id),
                                                      contentType: stored.format.mediaType,
                                                      size: Int(stored.bytes), etag: stored.eTag,
                                                      lastModified: stored.createdAt)
        }

        // The multivariant playlist: one variant, with the codec a player must support to
        // choose it before loading anything (RFC 8216 §4.4.6.2).
        open.get("songs/:id/hls/master.m3u8") { request, context in
            let stored = try await SongRoutes.mediaSong(request, context, s)
            try SongRoutes.requireHLS(stored)
            let suffix = request.uri.queryParameters.get("token").map { "?token=\($0)" } ?? ""
            let text = HLSSegmenter.multivariant(codecs: stored.format == .flac ? "fLaC" : "mp4a.40.34",
                                                 bandwidth: SongRoutes.peakBitRate(stored),
                                                 media: "index.m3u8\(suffix)")
            return Response(status: .ok, headers: [.contentType: "application/vnd.apple.mpegurl", .cacheControl: "private, max-age=60"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }

        open.get("songs/:id/hls/index.m3u8") { request, context in
            let stored = try await SongRoutes.mediaSong(request, context, s)
            try SongRoutes.requireHLS(stored)
            let token = request.uri.queryParameters.get("token")
            let suffix = token.map { "?token=\($0)" } ?? ""
            let fmp4 = stored.format == .flac
            let text = HLSSegmenter.playlist(stored.hls, map: fmp4 ? "init.mp4\(suffix)" : nil) { "\($0).\(fmp4 ? "m4s" : "mp3")\(suffix)" }
            return Response(status: .ok, headers: [.contentType: "application/vnd.apple.mpegurl", .cacheControl: "private, max-age=60"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }

        open.get("songs/:id/hls/:segment") { request, context in
            let stored = try await SongRoutes.mediaSong(request, context, s)
            try SongRoutes.requireHLS(stored)
            let name = context.parameters.get("segment") ?? ""
            if stored.format == .flac {
                return try await SongRoutes.flacSegment(name, stored, path: SongRoutes.audioPath(media, stored.id))
            }
            guard name.hasSuffix(".mp3"), let n = Int(name.dropLast(4)), stored.hls.segments.indices.contains(n) else {
                throw Problem.notFound("No segment \(name)")
            }
            let seg = stored.hls.segments[n]
            let tag = HLSSegmenter.timestampTag(startSample: seg.startSample, sampleRate: stored.hls.sampleRate)
            let frames = try await SongRoutes.readRange(SongRoutes.audioPath(media, stored.id), offset: seg.offset, length: seg.length)
            var buffer = ByteBuffer(bytes: tag)
            buffer.writeBytes(frames)
            MetricsSetup.streamedBytes.increment(by: Int64(buffer.readableBytes))
            return Response(status: .ok, headers: [.contentType: "audio/mpeg", .cacheControl: "private, max-age=86400"],
                            body: .init(byteBuffer: buffer))
        }
    }
}

/// What the song routes share: paths, upload acceptance, lookup, media authentication, Range.
enum SongRoutes {
    static let contentTypeOptions = HTTPFields.Element.Name("X-Content-Type-Options")!
    /// The song's audio file, whatever its format: the row's `format` says what it is (the
    /// name predates the other formats; keeping it keeps every stored library valid).
    static func audioPath(_ media: String, _ id: Int64) -> String { "\(media)/\(id).mp3" }

    /// Request types an upload may be sent as (the bytes decide what it is; a player's or a
    /// browser's guess at the type must not refuse a good file).
    static let uploadTypes = ["audio/", "application/ogg", "application/octet-stream"]

    /// The highest bit rate of any segment (RFC 8216 §4.4.6.2: BANDWIDTH is a peak).
    static func peakBitRate(_ song: StoredSong) -> Int {
        let rate = Double(song.hls.sampleRate)
        let peak = song.hls.segments.map { Double($0.length) * 8 / max(Double($0.samples) / rate, 0.001) }.max()
        return Int((peak ?? Double(song.bytes) * 8 / max(song.duration, 0.001)).rounded(.up))
    }

    /// HLS: MP3 frames as packed audio (RFC 8216 §3.4), FLAC frames in fragmented MP4
    /// (§3.3); Vorbis and Opus songs are played from /audio by Range.
    static func requireHLS(_ song: StoredSong) throws {
        guard song.format == .mp3 || (song.format == .flac && song.hls.flacStreamInfo != nil) else {
            throw Problem(status: 415, title: "Unsupported Media Type",
                          detail: "HLS is served for MP3 and FLAC songs; this song is \(song.format.name): "
                              + "play /api/v1/songs/\(song.id)/audio, which takes Range requests")
        }
    }
    static func coverPath(_ media: String, _ id: Int64) -> String { "\(media)/\(id).cover" }

    /// A FLAC song's HLS segment: `init.mp4` (the track, with STREAMINFO) or `N.m4s` (its
    /// frames in a fragment), as audio/mp4.
    static func flacSegment(_ name: String, _ song: StoredSong, path: String) async throws -> Response {
        let index = song.hls
        let bytes: [UInt8]
        if name == "init.mp4", let info = index.flacStreamInfo {
            bytes = FLACSegments.initSegment(streamInfo: info, sampleRate: index.sampleRate, channels: index.channels ?? 2,
                                             bitsPerSample: index.bitsPerSample ?? 16)
        } else if name.hasSuffix(".m4s"), let n = Int(name.dropLast(4)), index.segments.indices.contains(n) {
            let segment = index.segments[n]
            let frames = try await readRange(path, offset: segment.offset, length: segment.length)
            // The fragment's table says each frame's size: a short read would break them all.
            guard frames.count == segment.length else { throw Problem.notFound("The audio file is gone") }
            bytes = FLACSegments.mediaSegment(segment, number: n, frames: frames)
        } else {
            throw Problem.notFound("No segment \(name)")
        }
        MetricsSetup.streamedBytes.increment(by: Int64(bytes.count))
        return Response(status: .ok, headers: [.contentType: "audio/mp4", .cacheControl: "private, max-age=86400"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// fsync(2) of a file.
    static func syncFile(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw Problem(status: 500, title: "Internal Server Error", detail: "Upload vanished") }
        defer { close(fd) }
        _ = fsync(fd)
    }

    static func song(_ s: StoredSong, owner: String) -> Song {
        Song(id: s.id, title: s.title, artist: s.artist, album: s.album, trackNumber: s.trackNumber, year: s.year,
             duration: s.duration, bytes: s.bytes, owner: owner, hasCover: s.coverMime != nil, sha256: s.sha256,
             createdAt: s.createdAt.ISO8601Format(), sampleRate: s.hls.sampleRate, format: s.format.rawValue,
             channels: s.channels, bitDepth: s.bitDepth)
    }

    static func find(_ context: MusitContext, _ s: Services) async throws -> StoredSong {
        guard let id = context.parameters.get("id", as: Int64.self) else { throw Problem.notFound("No such song") }
        if let cached = s.mediaCache.song(id) { return cached }
        guard let song = try await s.library.song(id: id) else { throw Problem.notFound("No such song") }
        s.mediaCache.store(song)
        return song
    }

    /// Media requests authenticate by bearer header or by a media token for this song in the URL.
    static func mediaSong(_ request: Request, _ context: MusitContext, _ s: Services) async throws -> StoredSong {
        // Authenticated first: whether a song exists is not told to strangers.
        let id = context.parameters.get("id", as: Int64.self)
        if let token = request.uri.queryParameters.get("token") {
            if id == nil || s.mediaCache.tokenSong(token) != id {
                // The token's user must still exist: a deleted account's links stop working.
                guard let claims = try? await s.tokens.verifyMedia(token), claims.song == id,
                      let owner = Int64(claims.sub.value), try await s.users.user(id: owner) != nil else {
                    throw Problem.unauthorized("Invalid or expired media token")
                }
                s.mediaCache.remember(token: token, song: claims.song, user: owner, expires: claims.exp.value)
            }
        } else {
            _ = try await AuthenticationMiddleware.user(request, tokens: s.tokens, users: s.users)
        }
        return try await find(context, s)
    }

    /// GET with Range (one range: a-b, a-, -n), If-Range (ETag or date) and ETag.
    /// Ranges up to this size are one slice of memory or one `pread` of an already open file;
    /// larger ones and whole files go out with sendfile(2) (`sendFile`).
    static let smallRange = 1 << 20

    static func rangeResponse(_ request: Request, cache: MediaCache, song: Int64,
                              path: String, contentType: String, size: Int, etag: String,
                              lastModified: Date) async throws -> Response {
        var headers: HTTPFields = [.contentType: contentType, .acceptRanges: "bytes", .eTag: etag,
                                   .lastModified: lastModified.httpDate]
        // If-None-Match, If-Modified-Since, If-Match and If-Unmodified-Since are evaluated
        // on this answer for every route alike (`Preconditions`).
        var range: ClosedRange<Int>?
        if let header = request.headers[.range] {
            var honour = true
            if let ifRange = request.headers[.ifRange] {
                honour = ifRange == etag || ifRange == lastModified.httpDate
            }
            if honour { range = try parseRange(header, size: size) }
        }
        guard let range else {
            return try await sendFile(cache: cache, song: song, path: path, headers: headers, status: .ok, range: 0...(size - 1),
                                      size: size)
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
            // One buffer, written with its head in one go; not a stream to count, but bytes.
            MetricsSetup.streamedBytes.increment(by: Int64(bytes.readableBytes))
            return Response(status: .partialContent, headers: headers, body: .init(byteBuffer: bytes))
        }
        return try await sendFile(cache: cache, song: song, path: path, headers: headers, status: .partialContent, range: range,
                                  size: size)
    }

    /// An answer whose body `ConnectionGuard` sends from the file with sendfile(2); the file
    /// is opened here, before the head promises its length (`FileSends`).
    static func sendFile(cache: MediaCache, song: Int64, path: String, headers: HTTPFields, status: HTTPResponse.Status,
                         range: ClosedRange<Int>, size: Int) async throws -> Response {
        var headers = headers
        headers[.contentLength] = String(range.count)
        guard size > 0 else { return Response(status: status, headers: headers) }
        let file = try await runBlocking { try cache.file(song: song, path: path) }
        headers[FileSends.header] = FileSends.add(file, offset: range.lowerBound, length: range.count)
        return Response(status: status, headers: headers, body: ResponseBody())
    }

    /// One byte range of a file of `size` bytes; nil to serve the whole file (several ranges,
    /// or a header that is not a byte range); 416 when it cannot be satisfied.
    /// One range of `bytes=first-last`, `bytes=first-` or `bytes=-suffix` (RFC 9110 14.1.2,
    /// digits only, blanks around the spec allowed); nil for anything else (several ranges,
    /// another unit, junk), which the caller answers with the whole file. Throws 416 for a
    /// well-formed range that misses the file. Read as bytes in one pass: it runs on every
    /// media request.
    static func parseRange(_ header: String, size: Int) throws -> ClosedRange<Int>? {
        var header = header
        return try header.withUTF8 { utf8 -> ClosedRange<Int>? in
            let prefix = "bytes=".utf8
            guard utf8.count > prefix.count, utf8.starts(with: prefix) else { return nil }
            var i = prefix.count, end = utf8.count
            func blank(_ c: UInt8) -> Bool { c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") }
            while i < end, blank(utf8[i]) { i += 1 }
            while end > i, blank(utf8[end - 1]) { end -= 1 }
            /// The digits from `i` up to the first other byte, and where they stop; nil when
            /// there are none or more than 18 (no file is that large).
            func number(_ i: inout Int) -> Int? {
                var n = 0, digits = 0
                while i < end, utf8[i] >= UInt8(ascii: "0"), utf8[i] <= UInt8(ascii: "9") {
                    guard digits < 18 else { return nil }
                    n = n * 10 + Int(utf8[i] - UInt8(ascii: "0"))
                    digits += 1
                    i += 1
                }
                return digits > 0 ? n : nil
            }
            var unsatisfiable: HTTPError { HTTPError(.rangeNotSatisfiable, headers: [.contentRange: "bytes */\(size)"]) }
            if i < end, utf8[i] == UInt8(ascii: "-") {
                i += 1
                let n = number(&i)
                guard i == end else { return nil }
                guard let n, n > 0, size > 0 else { throw unsatisfiable }
                return max(0, size - n)...(size - 1)
            }
            guard let first = number(&i), i < end, utf8[i] == UInt8(ascii: "-") else { return nil }
            i += 1
            if i == end {
                guard first < size else { throw unsatisfiable }
                return first...(size - 1)
            }
            guard let last = number(&i), i == end, last >= first else { return nil }
            guard first < size else { throw unsatisfiable }
            return first...min(last, size - 1)
        }
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

/// Counts, hashes and walks an upload as it streams; past the limit it stops the stream.
final class UploadMeter: @unchecked Sendable {
    let limit: Int
    private let lock = NSLock()
    private var hasher = SHA256()
    /// The frames are walked as the bytes pass, so the upload is read once: hashed,
    /// counted, validated and indexed on the way to disk.
    private var scanner = MP3Scanner()
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
            buffer.withUnsafeReadableBytes {
                hasher.update(bufferPointer: $0)
                scanner.consume($0)
            }
        }
    }

    /// The frame walk of everything that arrived: what the upload will play, or why not.
    func scan() throws(AudioError.Reason) -> MP3Scanner.Summary {
        lock.lock()
        defer { lock.unlock() }
        return try scanner.finish()
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

    /// A cached row with the header values every media answer of it carries, written once
    /// per song rather than per request.
    struct Row: Sendable {
        let song: StoredSong
        let eTag: String
        let lastModified: String

        init(_ song: StoredSong) {
            self.song = song
            eTag = song.eTag
            lastModified = song.createdAt.httpDate
        }
    }

    private let files = Mutex<[Int64: OpenFile]>([:])
    private let songs = Mutex<[Int64: Row]>([:])
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
    private let tokens = Mutex<[String: (song: Int64, user: Int64, expires: Date)]>([:])
    static let limit = 10_000

    func song(_ id: Int64) -> StoredSong? { songs.withLock { $0[id]?.song } }

    /// The cached row with its header values.
    func row(_ id: Int64) -> Row? { songs.withLock { $0[id] } }

    func store(_ song: StoredSong) {
        let row = Row(song)
        songs.withLock {
            if $0.count >= Self.limit { $0.removeAll() }
            $0[song.id] = row
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

    func remember(token: String, song: Int64, user: Int64, expires: Date) {
        tokens.withLock {
            if $0.count >= Self.limit { $0.removeAll() }
            $0[token] = (song, user, expires)
        }
    }

    /// Forgets the media tokens verified for `user`, whose account is gone.
    func forget(user: Int64) {
        tokens.withLock { $0 = $0.filter { $0.value.user != user } }
    }
}

extension Song: ResponseEncodable {}
extension SongsPage: ResponseEncodable {}
extension StreamURLs: ResponseEncodable {}

extension Problem {
    static func duplicate(_ id: Int64) -> Problem {
        Problem(status: 409, title: "Conflict", detail: "This file is already in the library as song \(id)")
    }

    static func quota(_ bytes: Int64) -> Problem {
        Problem(status: 413, title: "Content Too Large", detail: "Your quota of \(bytes) bytes would be exceeded")
    }
}

/// The id whose files an upload placed inside its transaction, for cleanup when it fails.
final class PlacedFiles: Sendable {
    let id = Mutex<Int64?>(nil)
}

/// Image types told from their first bytes.
enum ImageType {
    static func sniff(_ bytes: Data) -> String? {
        let b = [UInt8](bytes.prefix(12))
        if b.starts(with: [0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if b.starts(with: Array("GIF87a".utf8)) || b.starts(with: Array("GIF89a".utf8)) { return "image/gif" }
        if b.count == 12, b.starts(with: Array("RIFF".utf8)), Array(b[8..<12]) == Array("WEBP".utf8) { return "image/webp" }
        return nil
    }
}

extension StoredSong {
    /// The entity tag of the song's bytes, as the media route and the fast path send it.
    var eTag: String { "\"\(sha256.prefix(32))\"" }
}
