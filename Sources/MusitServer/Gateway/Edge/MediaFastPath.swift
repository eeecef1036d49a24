import Foundation
import HTTPTypes
import NIOCore

/// The hot media request answered on the event loop: a range of a song whose token, row
/// and bytes are all in memory, which is what a player streaming a song asks for again and
/// again.
///
/// Why below Hummingbird: such a request needs no I/O at all, yet through the router it
/// cost a task, the middleware's frames and header conversions, about half of what nginx
/// spends on the same 64 KiB range. Here it is one lookup in `MediaCache` and a slice of the
/// song's buffer. It answers only what the route would answer the same way, from the same
/// cache, with the same headers:
/// - `GET /api/v1/songs/{id}/audio?token=T` with a single range of at most 1 MiB;
/// - a token the cache verified for this song and that has not expired (the cache drops
///   the tokens of a deleted account or song);
/// - the song's row and whole bytes cached (a song asked for by range twice is);
/// - no condition (`If-*`, `If-Range`) and no `Origin`.
/// Anything else, including an unsatisfiable range, goes to the route.
struct MediaFastPath: Sendable {
    static let prefix = Array("/api/v1/songs/".utf8)
    static let suffix = Array("/audio?token=".utf8)
    static let route = "/api/v1/songs/{id}/audio"

    let cache: MediaCache

    /// The answer, and the request's target as the log shows it (the token redacted).
    func answer(_ head: HTTPRequest) -> (answer: PollEdge.Answer, logged: String)? {
        guard head.method == .get, let path = head.path, let range = head.headerFields[.range],
              let (id, token) = Self.parse(path) else { return nil }
        let fields = head.headerFields
        guard fields[.ifMatch] == nil, fields[.ifNoneMatch] == nil, fields[.ifModifiedSince] == nil,
              fields[.ifUnmodifiedSince] == nil, fields[.ifRange] == nil, fields[.origin] == nil else { return nil }
        guard cache.tokenSong(token) == id, let row = cache.row(id), let whole = cache.contents(song: id) else { return nil }
        let size = Int(row.song.bytes)
        guard whole.readableBytes == size, let wanted = try? SongRoutes.parseRange(range, size: size),
              wanted.count <= SongRoutes.smallRange,
              let body = whole.getSlice(at: whole.readerIndex + wanted.lowerBound, length: wanted.count) else { return nil }
        let headers: HTTPFields = [
            .contentType: row.song.format.mediaType, .acceptRanges: "bytes", .eTag: row.eTag, .lastModified: row.lastModified,
            .contentRange: "bytes \(wanted.lowerBound)-\(wanted.upperBound)/\(size)",
        ]
        // What `RequestMiddleware.redacted` writes for this target, without parsing it again.
        return (PollEdge.Answer(status: .partialContent, headers: headers, body: body), "/api/v1/songs/\(id)/audio?token=REDACTED")
    }

    /// The song id and token of `/api/v1/songs/{id}/audio?token=T`, with nothing else in
    /// the query; nil for any other target.
    static func parse(_ path: String) -> (Int64, String)? {
        var utf8 = path.utf8[...]
        guard utf8.starts(with: prefix) else { return nil }
        utf8 = utf8.dropFirst(prefix.count)
        let digits = utf8.prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard !digits.isEmpty, digits.count <= 18, let id = Int64(Substring(digits)) else { return nil }
        utf8 = utf8.dropFirst(digits.count)
        guard utf8.starts(with: suffix) else { return nil }
        let token = utf8.dropFirst(suffix.count)
        // One pass: nothing after the token, and nothing escaped in it.
        guard !token.isEmpty, !token.contains(where: { $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "#") })
        else { return nil }
        return (id, String(Substring(token)))
    }
}
