import AsyncHTTPClient
import Foundation
import MusitAPI
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// What went wrong talking to the backend, in words the status bar can show.
public enum ClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No answer: refused, reset, timed out.
    case unreachable(String)
    /// The server answered with a problem (4xx/5xx).
    case server(Problem)
    /// The server answered something that is not the API (broken JSON, wrong type).
    case badResponse(String)
    /// No session, or the refresh token was refused: sign in again.
    case signedOut(String)

    public var description: String {
        switch self {
        case .unreachable(let why): return "server unreachable: \(why)"
        case .server(let p): return p.detail ?? "\(p.status) \(p.title)"
        case .badResponse(let why): return "bad answer from server: \(why)"
        case .signedOut(let why): return "signed out: \(why)"
        }
    }

    public var status: Int? {
        if case .server(let p) = self { return p.status }
        return nil
    }

    /// Worth trying again later (the network or the server may come back).
    public var isTransient: Bool {
        switch self {
        case .unreachable, .badResponse: return true
        case .server(let p): return p.status >= 500 || p.status == 429 || p.status == 408
        case .signedOut: return false
        }
    }
}

/// Tokens and the sync cursor, kept between runs in one JSON file with 0600 permissions.
public struct StoredSession: Codable, Equatable, Sendable {
    public var server: String
    public var user: UserInfo
    public var accessToken: String
    public var refreshToken: String
    public var expiresAt: Date
    /// The last event id this client has handled.
    public var cursor: Int64

    public init(server: String, user: UserInfo, accessToken: String, refreshToken: String, expiresAt: Date, cursor: Int64 = 0) {
        self.server = server
        self.user = user
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresAt = expiresAt
        self.cursor = cursor
    }
}

public final class SessionFile: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public func load() -> StoredSession? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try? decoder.decode(StoredSession.self, from: data)
    }

    public func save(_ session: StoredSession) {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        guard let data = try? encoder.encode(session) else { return }
        PrivateFile.write(data, to: path)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Writes files only their owner can read (tokens, passwords, unsent messages): a temp
/// file created 0600 and renamed over the old one, so a crash never leaves half a file.
public enum PrivateFile {
    @discardableResult
    public static func write(_ data: Data, to path: String) -> Bool {
        let dir = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        let temp = path + ".\(getpid()).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        let ok = data.withUnsafeBytes { b -> Bool in
            var off = 0
            while off < b.count {
                let n = Foundation.write(fd, b.baseAddress! + off, b.count - off)
                if n <= 0 { return false }
                off += n
            }
            return true
        }
        fchmod(fd, 0o600)
        close(fd)
        guard ok, rename(temp, path) == 0 else {
            unlink(temp)
            return false
        }
        return true
    }
}

/// The backend's HTTP API over async-http-client. Access tokens are refreshed a minute
/// before they expire and once more on a 401; one refresh runs at a time, so two requests
/// never both present the same refresh token (which the server would treat as theft).
public actor APIClient {
    public nonisolated let baseURL: String
    /// Names the server in the session file: its URL, or a stable name for the embedded one
    /// (whose port changes every run) so the cursor survives restarts.
    public nonisolated let serverKey: String
    private let http: HTTPClient
    private let sessionFile: SessionFile?
    private var session: StoredSession?
    private var refreshing: Task<StoredSession, any Error>?
    public var requestTimeout: TimeAmount = .seconds(15)

    /// The player's HTTP client: an unreachable server is reported within two seconds (the
    /// pool retries connecting until then) instead of at the request's deadline.
    public static let http: HTTPClient = {
        var config = HTTPClient.Configuration()
        config.timeout.connect = .seconds(2)
        config.connectionPool.idleTimeout = .seconds(30)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()

    public init(baseURL: String, serverKey: String? = nil, sessionFile: SessionFile?, http: HTTPClient = APIClient.http) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.serverKey = serverKey ?? base
        self.http = http
        self.sessionFile = sessionFile
        if let stored = sessionFile?.load(), stored.server == self.serverKey { session = stored }
    }

    public var user: UserInfo? { session?.user }
    public var cursor: Int64 { session?.cursor ?? 0 }

    public func setCursor(_ cursor: Int64) {
        guard var s = session, s.cursor != cursor else { return }
        s.cursor = cursor
        store(s)
    }

    // MARK: Accounts

    public func register(username: String, password: String, displayName: String? = nil) async throws(ClientError) -> UserInfo {
        let pair: TokenPair = try await call(.POST, "/api/v1/auth/register",
                                             body: RegisterRequest(username: username, password: password, displayName: displayName),
                                             authorized: false)
        adopt(pair)
        return pair.user
    }

    public func login(username: String, password: String) async throws(ClientError) -> UserInfo {
        let pair: TokenPair = try await call(.POST, "/api/v1/auth/login", body: LoginRequest(username: username, password: password),
                                             authorized: false)
        adopt(pair)
        return pair.user
    }

    /// Revokes the refresh token on the server (best effort) and forgets the session.
    public func signOut() async {
        if let s = session {
            let _: Empty? = try? await call(.POST, "/api/v1/auth/logout", body: RefreshRequest(refreshToken: s.refreshToken),
                                            authorized: false)
        }
        session = nil
        sessionFile?.remove()
    }

    private func adopt(_ pair: TokenPair) {
        let cursor = session?.user.id == pair.user.id ? session?.cursor ?? 0 : 0
        store(StoredSession(server: serverKey, user: pair.user, accessToken: pair.accessToken, refreshToken: pair.refreshToken,
                            expiresAt: Date(timeIntervalSinceNow: Double(pair.expiresIn)), cursor: cursor))
    }

    private func store(_ s: StoredSession) {
        session = s
        sessionFile?.save(s)
    }

    private func dropSession() {
        session = nil
        sessionFile?.remove()
    }

    /// A current access token, refreshing first when it expires within a minute.
    private func accessToken(forceRefresh: Bool = false) async throws(ClientError) -> String {
        guard let s = session else { throw .signedOut("not signed in") }
        if !forceRefresh && s.expiresAt.timeIntervalSinceNow > 60 { return s.accessToken }
        return try await refreshed(after: s.accessToken).accessToken
    }

    private func refreshed(after token: String) async throws(ClientError) -> StoredSession {
        if let current = session, current.accessToken != token { return current }  // someone already refreshed
        let task: Task<StoredSession, any Error>
        if let running = refreshing {
            task = running
        } else {
            guard let s = session else { throw .signedOut("not signed in") }
            task = Task { try await self.performRefresh(s) }
            refreshing = task
        }
        defer { if refreshing == task { refreshing = nil } }
        do {
            return try await task.value
        } catch let e as ClientError {
            throw e
        } catch {
            throw .unreachable("\(error)")
        }
    }

    private func performRefresh(_ s: StoredSession) async throws(ClientError) -> StoredSession {
        let pair: TokenPair
        do {
            pair = try await call(.POST, "/api/v1/auth/refresh", body: RefreshRequest(refreshToken: s.refreshToken),
                                  authorized: false)
        } catch {
            guard error.status == 401 || error.status == 400 else { throw error }
            dropSession()
            throw .signedOut("the session expired; sign in again")
        }
        var next = s
        next.user = pair.user
        next.accessToken = pair.accessToken
        next.refreshToken = pair.refreshToken
        next.expiresAt = Date(timeIntervalSinceNow: Double(pair.expiresIn))
        if let cursor = session?.cursor { next.cursor = cursor }
        store(next)
        return next
    }

    // MARK: Requests

    struct Empty: Codable {}

    /// Sends `body` as JSON and decodes the answer (an empty answer decodes as `Empty`).
    func call<Response: Decodable>(_ method: HTTPMethod, _ path: String, body: (some Encodable & Sendable)? = Empty?.none,
                                   authorized: Bool = true, timeout: TimeAmount? = nil) async throws(ClientError) -> Response {
        var encoded: ByteBuffer?
        if let body {
            do { encoded = ByteBuffer(data: try JSONEncoder().encode(body)) } catch {
                throw .badResponse("cannot encode request: \(error)")
            }
        }
        let payload = encoded
        let build: @Sendable (String?) -> HTTPClientRequest = { [baseURL] token in
            var request = HTTPClientRequest(url: baseURL + path)
            request.method = method
            request.headers.add(name: "Accept", value: "application/json")
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            if let payload {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(payload)
            }
            return request
        }
        let (status, bytes) = try await send(build, authorized: authorized, timeout: timeout ?? requestTimeout)
        return try Self.decode(status: status, bytes)
    }

    /// Runs a request, with the bearer token when `authorized`, refreshing once on 401.
    func send(_ build: @Sendable (String?) -> HTTPClientRequest, authorized: Bool, timeout: TimeAmount,
              maxBody: Int = 8 << 20) async throws(ClientError) -> (HTTPResponseStatus, ByteBuffer) {
        guard authorized else { return try await perform(build(nil), timeout: timeout, maxBody: maxBody) }
        var token = try await accessToken()
        var result = try await perform(build(token), timeout: timeout, maxBody: maxBody)
        if result.0 == .unauthorized {
            token = try await refreshed(after: token).accessToken
            result = try await perform(build(token), timeout: timeout, maxBody: maxBody)
            if result.0 == .unauthorized {
                dropSession()
                throw .signedOut("the server refused the session")
            }
        }
        return result
    }

    nonisolated func perform(_ request: HTTPClientRequest, timeout: TimeAmount, maxBody: Int) async throws(ClientError) -> (HTTPResponseStatus, ByteBuffer) {
        do {
            let response = try await http.execute(request, timeout: timeout)
            let body = try await response.body.collect(upTo: maxBody)
            return (response.status, body)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            throw .unreachable("timed out")
        } catch let error as NIOTooManyBytesError {
            throw .badResponse("answer too large (\(error))")
        } catch {
            throw .unreachable(Self.describe(error))
        }
    }

    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        if text.contains("remoteConnectionClosed") || text.contains("Connection reset") { return "connection closed" }
        return text.count > 120 ? String(text.prefix(120)) + "…" : text
    }

    static func decode<Response: Decodable>(status: HTTPResponseStatus, _ bytes: ByteBuffer) throws(ClientError) -> Response {
        guard (200..<300).contains(Int(status.code)) else {
            if let problem = try? JSONDecoder().decode(Problem.self, from: bytes) { throw .server(problem) }
            throw .server(Problem(status: Int(status.code), title: status.reasonPhrase,
                                  detail: "the server answered \(status.code) \(status.reasonPhrase)"))
        }
        if Response.self == Empty.self, let empty = Empty() as? Response { return empty }
        do {
            return try JSONDecoder().decode(Response.self, from: bytes)
        } catch {
            throw .badResponse("broken JSON (\(status.code), \(bytes.readableBytes) bytes)")
        }
    }
}
