import AsyncHTTPClient
import Foundation
import MusitAPI
import MusitAudio
import MusitCodecs
import NIOCore
import NIOHTTP1

/// One method per API operation the player uses.
extension APIClient {
    public func me() async throws(ClientError) -> UserInfo {
        try await call(.GET, "/api/v1/me")
    }

    public func updateProfile(_ update: ProfileUpdate) async throws(ClientError) -> UserInfo {
        try await call(.PATCH, "/api/v1/me", body: update)
    }

    public func profile(_ username: String) async throws(ClientError) -> UserInfo {
        try await call(.GET, "/api/v1/users/\(Self.segment(username))")
    }

    public func friends() async throws(ClientError) -> FriendsList {
        try await call(.GET, "/api/v1/friends")
    }

    public func requestFriend(_ username: String) async throws(ClientError) {
        let _: Empty = try await call(.POST, "/api/v1/friends/requests", body: FriendRequestBody(username: username))
    }

    public func acceptFriend(_ username: String) async throws(ClientError) {
        let _: Empty = try await call(.POST, "/api/v1/friends/requests/\(Self.segment(username))/accept")
    }

    public func declineFriend(_ username: String) async throws(ClientError) {
        let _: Empty = try await call(.POST, "/api/v1/friends/requests/\(Self.segment(username))/decline")
    }

    public func removeFriend(_ username: String) async throws(ClientError) {
        let _: Empty = try await call(.DELETE, "/api/v1/friends/\(Self.segment(username))")
    }

    public func send(_ message: SendMessage) async throws(ClientError) -> ChatMessage {
        try await call(.POST, "/api/v1/messages", body: message)
    }

    public func messages(with username: String, before: Int64? = nil, limit: Int = 50) async throws(ClientError) -> MessagesPage {
        var path = "/api/v1/conversations/\(Self.segment(username))/messages?limit=\(limit)"
        if let before { path += "&before=\(before)" }
        return try await call(.GET, path)
    }

    public func markRead(with username: String, upTo: Int64) async throws(ClientError) {
        let _: Empty = try await call(.POST, "/api/v1/conversations/\(Self.segment(username))/read", body: ReadReceipt(upTo: upTo))
    }

    public func setPresence(_ nowPlaying: NowPlayingInfo) async throws(ClientError) {
        let _: Empty = try await call(.PUT, "/api/v1/presence", body: nowPlaying)
    }

    /// One long-poll: answers at once with events after `cursor`, or after up to `timeout` seconds.
    public func events(after cursor: Int64, timeout: Int) async throws(ClientError) -> EventsPage {
        try await call(.GET, "/api/v1/events?cursor=\(cursor)&timeout=\(timeout)", timeout: .seconds(Int64(timeout) + 15))
    }

    public func songs(cursor: Int64? = nil, limit: Int = 100, query: String? = nil) async throws(ClientError) -> SongsPage {
        var path = "/api/v1/songs?limit=\(limit)"
        if let cursor { path += "&cursor=\(cursor)" }
        if let query, !query.isEmpty { path += "&query=\(Self.query(query))" }
        return try await call(.GET, path)
    }

    public func streamURLs(song id: Int64) async throws(ClientError) -> StreamURLs {
        try await call(.GET, "/api/v1/songs/\(id)/stream")
    }

    /// The song's cover image, as stored (PNG or JPEG); nil when it has none.
    public func cover(song id: Int64, maxBytes: Int = 16 << 20) async throws(ClientError) -> [UInt8]? {
        let build: @Sendable (String?) -> HTTPClientRequest = { [baseURL] token in
            var request = HTTPClientRequest(url: baseURL + "/api/v1/songs/\(id)/cover")
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            return request
        }
        let (status, body) = try await send(build, authorized: true, timeout: requestTimeout, maxBody: maxBytes)
        if status == .notFound { return nil }
        guard (200..<300).contains(Int(status.code)) else {
            let _: Empty = try Self.decode(status: status, body)
            throw .badResponse("unexpected \(status.code)")
        }
        return Array(buffer: body)
    }

    public func deleteSong(_ id: Int64) async throws(ClientError) {
        let _: Empty = try await call(.DELETE, "/api/v1/songs/\(id)")
    }

    public func reportPlay(_ report: PlayReport) async throws(ClientError) -> PlayStarted? {
        if report.event == .start { return try await call(.POST, "/api/v1/plays", body: report) }
        let _: Empty = try await call(.POST, "/api/v1/plays", body: report)
        return nil
    }

    public func stats() async throws(ClientError) -> AdminStats {
        try await call(.GET, "/api/v1/admin/stats")
    }

    public func health() async throws(ClientError) -> Health {
        try await call(.GET, "/healthz", authorized: false, timeout: .seconds(5))
    }

    /// A media URL the server handed out (it carries its own token): raw bytes, all of them
    /// or the byte `range` (which must come back as a 206 of exactly that range).
    public func fetchMedia(_ pathAndQuery: String, range: ClosedRange<Int>? = nil,
                           maxBytes: Int = 64 << 20) async throws(ClientError) -> ByteBuffer {
        let url = pathAndQuery.hasPrefix("http") ? pathAndQuery : baseURL + pathAndQuery
        var request = HTTPClientRequest(url: url)
        if let range { request.headers.add(name: "Range", value: "bytes=\(range.lowerBound)-\(range.upperBound)") }
        let (status, body) = try await perform(request, timeout: requestTimeout, maxBody: range.map { $0.count } ?? maxBytes)
        guard (200..<300).contains(Int(status.code)) else {
            let _: Empty = try Self.decode(status: status, body)
            throw .badResponse("unexpected \(status.code)")
        }
        if let range, status.code != 206 || body.readableBytes != range.count {
            throw .badResponse("asked for \(range.count) bytes by Range, got \(status.code) with \(body.readableBytes)")
        }
        return body
    }

    /// Streams the MP3 at `path` to the server; `progress` hears bytes sent so far.
    public func upload(path: String, progress: @escaping @Sendable (Int64, Int64) -> Void) async throws(ClientError) -> Song {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .badResponse("cannot read \(path)") }
        defer { try? handle.close() }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
        let chunks = FileChunks(handle: handle, total: size, progress: progress)
        let build: @Sendable (String?) -> HTTPClientRequest = { [baseURL] token in
            var request = HTTPClientRequest(url: baseURL + "/api/v1/songs")
            request.method = .POST
            // A hint (the server tells the format from the bytes), from the name alone: no file read here.
            request.headers.add(name: "Content-Type", value: AudioFiles.uploadType(path: path))
            request.headers.add(name: "Accept", value: "application/json")
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            request.body = .stream(chunks, length: .known(size))
            return request
        }
        let (status, body) = try await send(build, authorized: true, timeout: .seconds(600))
        return try Self.decode(status: status, body)
    }

    static func segment(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? s
    }

    static func query(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? s
    }
}

/// A file read in 64 KiB chunks as an async sequence, reporting progress as it goes.
/// Each iteration starts from the beginning (a retried request sends the whole file again).
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let handle: FileHandle
    let total: Int64
    let progress: @Sendable (Int64, Int64) -> Void

    struct AsyncIterator: AsyncIteratorProtocol {
        let handle: FileHandle
        let total: Int64
        let progress: @Sendable (Int64, Int64) -> Void
        var sent: Int64 = 0

        mutating func next() async throws -> ByteBuffer? {
            if sent == 0 { try handle.seek(toOffset: 0) }
            guard let data = try handle.read(upToCount: 64 * 1024), !data.isEmpty else { return nil }
            sent += Int64(data.count)
            progress(sent, total)
            return ByteBuffer(data: data)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(handle: handle, total: total, progress: progress) }
}
