import Foundation
import GRDB
import Hummingbird
import HummingbirdCore
import Logging
import MusitAPI
import NIOCore
import ServiceLifecycle
import UnixSignals

/// How the backend runs; see `ServerSettings.resolve` for where each value comes from.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Database, signing key and media live here.
    public var dataDirectory: String
    /// `postgres://user:password@host:port/database` to keep everything but media in
    /// PostgreSQL; nil (or `sqlite:///path`) for SQLite in the data directory.
    public var database: String?
    /// Connections to PostgreSQL at most, per instance.
    public var databasePoolSize = 20
    /// Song files; instances over one database share it (a shared filesystem in production).
    public var mediaDirectory: String?
    /// `mediaDirectory`, or `media` in the data directory.
    public var media: String { mediaDirectory ?? dataDirectory + "/media" }
    /// This user becomes admin when registering (the first user does anyway).
    public var admin: String?
    /// HMAC secret for access tokens (≥ 32 bytes); generated and kept in the data directory when absent.
    public var jwtSecret: String?
    public var bcryptCost: UInt8 = 11
    public var accessLifetime: TimeInterval = 15 * 60
    /// Largest upload, in bytes.
    public var uploadLimit = APILimits.defaultUploadLimit
    /// Bytes of songs one user may store.
    public var quota = APILimits.defaultQuota
    /// A client that has not polled for this long is offline.
    public var onlineWindow: TimeInterval = APILimits.onlineSeconds
    /// How long a media URL token lasts.
    public var mediaTokenLifetime: TimeInterval = 6 * 3600
    public var refreshLifetime: TimeInterval = 30 * 24 * 3600
    /// Header-read and idle timeouts, and the cap on open connections.
    public var connections = ConnectionLimits()
    /// Friend requests and removals one user may make at once, then one per interval (s).
    public var friendChangeBurst = 30
    public var friendChangeInterval: TimeInterval = 5
    /// A user's presence reaches friends 5 times at once, then once per this many seconds
    /// (the newest update wins; see `PresencePublisher`).
    public var presenceInterval: TimeInterval = 2
    /// Events older than this leave the per-user logs (a cursor below them gets 410 and
    /// reloads); checked every `eventPruneInterval` seconds by the process that owns Social.
    public var eventRetention: TimeInterval = 30 * 24 * 3600
    public var eventPruneInterval: TimeInterval = 3600
    /// Origins whose browser pages may call the API and stream (CORS); none by default.
    public var cors = CORSPolicy()
    /// Proxies in front (their IP addresses): behind one, the client's address, which the
    /// login throttle counts by, is the last one in `X-Forwarded-For` no proxy added.
    public var trustedProxies: [String] = []
    /// What this process runs and where the others are (`--role`, `--grpc-port`, `--stats`…).
    public var topology = ServiceTopology()

    public init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
    }

    public static func isIPAddress(_ text: String) -> Bool {
        (try? SocketAddress(ipAddress: text, port: 0)) != nil
    }
}

public enum MusitServerVersion {
    public static let string = "0.1.0"
}

/// The request context: Hummingbird's core storage, the peer's address (for throttling)
/// and the signed-in user, set by `AuthenticationMiddleware`.
public struct MusitContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    public var user: User?
    /// A HEAD request, answered as GET without the body (`MusitResponder`).
    public var isHead = false
    /// The connection, to learn when its client goes away (`ClientDisconnectSignal`).
    let channel: any Channel

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the
    /// nearest address in `X-Forwarded-For` that is not one of the proxies (entries further
    /// left were written by the client, which may lie).
    func clientAddress(_ request: Request, trusting proxies: [String]) -> String {
        let peer = remoteAddress?.ipAddress ?? "unknown"
        guard !proxies.isEmpty, proxies.contains(peer) else { return peer }
        let hops = request.headers[values: .init("X-Forwarded-For")!]
            .flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        return hops.reversed().first { !proxies.contains($0) && !$0.isEmpty } ?? peer
    }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        channel = source.channel
    }

    /// The signed-in user; only routes behind `AuthenticationMiddleware` have one.
    func requireUser() throws -> User {
        guard let user else { throw Problem.unauthorized("Sign in: send Authorization: Bearer <access token>") }
        return user
    }
}

/// Everything the handlers share.
struct Services: Sendable {
    /// Sign-in, tokens and profiles: over the store, or the Accounts service.
    let accounts: any AccountsAPI
    /// Users by id and name (`accounts.directory`).
    var users: any UserDirectory { accounts.directory }
    let tokens: TokenService
    let social: any SocialRepository
    /// Songs: over the store and the media directory, or the Library service.
    let library: any LibraryAPI
    let routes: RouteCounter
    let presence: any PresenceRepository
    /// Tells Stats of deleted users and songs (the outbox written with the deletion).
    let outbox: OutboxRelay
    let mediaCache: MediaCache
    let pages = EncodedPages()
    let bus: EventBus
    let config: ServerConfiguration
    let logger: Logger
}

/// Everything the backend keeps, behind one value: `SQLiteStore` or `PostgresStore`.
public typealias Store = UserRepository & RefreshTokenRepository & SocialRepository & SongRepository & PlayRepository
    & OutboxRepository & ClosableStore

public enum MusitBackend {
    public typealias App = Application<MusitResponder>
    static let serverName = "Musit"

    /// Builds the application: storage opened and migrated, routes registered.
    public static func makeApplication(_ config: ServerConfiguration, logger: Logger? = nil) async throws -> App {
        try await make(config, logger: logger).app
    }

    /// Runs the server until SIGTERM or SIGINT; held long-polls are answered before it stops.
    /// `telemetry` (the trace exporter, `Telemetry.bootstrap`) runs first and so stops last,
    /// flushing the spans of everything else.
    public static func run(_ config: ServerConfiguration, logger: Logger, shutdownSignals: [UnixSignal] = [.sigterm, .sigint],
                           telemetry: (any Service)? = nil,
                           onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) async throws {
        if config.topology.role.isService {
            try await ServiceRole.run(config, logger: logger, shutdownSignals: shutdownSignals, telemetry: telemetry,
                                      onServerRunning: onServerRunning)
            return
        }
        let (app, bus, tasks, closer) = try await makeServices(config, logger: logger, onServerRunning: onServerRunning)
        // Services stop in reverse order: the bus answers held polls while the server still
        // writes, the server then closes its connections, the connections' tasks end, and
        // the store is closed last.
        let group = ServiceGroup(configuration: .init(services: (telemetry.map { [$0] } ?? []) + [closer, tasks, app, bus],
                                                      gracefulShutdownSignals: shutdownSignals,
                                                      logger: logger))
        try await group.run()
    }

    public static func make(_ config: ServerConfiguration, logger: Logger? = nil,
                            onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) async throws -> (app: App, bus: EventBus) {
        var (app, bus, _, closer) = try await makeServices(config, logger: logger, onServerRunning: onServerRunning)
        // First among the application's services, so it stops after the server and the rest.
        app.services.insert(closer, at: 0)
        return (app, bus)
    }

    /// Accounts over the store, for the process that owns its storage.
    static func localAccounts(_ config: ServerConfiguration, store: any Store, tokens: TokenService) -> LocalAccounts {
        LocalAccounts(users: store, refreshTokens: store, tokens: tokens, hasher: PasswordHasher(cost: config.bcryptCost),
                      throttle: (store as? PostgresStore).map { $0 as any LoginThrottling } ?? LoginThrottle(), admin: config.admin)
    }

    /// The event logs' pruner, for the process that owns Social's storage.
    static func pruner(_ config: ServerConfiguration, _ store: any EventRepository, _ logger: Logger) -> EventPruner {
        EventPruner(events: store, retention: config.eventRetention,
                    interval: .milliseconds(Int64(config.eventPruneInterval * 1000)), logger: logger)
    }

    /// The database the configuration names: PostgreSQL, or SQLite in the data directory.
    static func openStore(_ config: ServerConfiguration, logger log: Logger, needsSigningKey: Bool = true) async throws -> any Store {
        let store: any Store
        if let url = config.database, url.hasPrefix("postgres") {
            // Instances share the database, so they must share the signing key too: one
            // made up here would sign tokens the others refuse.
            guard config.jwtSecret != nil || !needsSigningKey else {
                throw Problem(status: 500, title: "No signing key",
                              detail: "With PostgreSQL, every instance needs the same key: set MUSIT_JWT_SECRET (32 bytes or more)")
            }
            store = try await PostgresStore(url: url, poolSize: config.databasePoolSize, logger: log)
        } else {
            let path = config.database.map { String($0.dropFirst("sqlite://".count)) } ?? config.dataDirectory + "/musit.sqlite"
            // Processes that open a new database at once (a gateway and a service sharing
            // a data directory) meet in SQLite's switch to WAL, which takes the file
            // exclusively and does not wait on the busy handler: the loser tries again.
            var attempt = 0
            while true {
                do {
                    store = try SQLiteStore(path: path)
                    break
                } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && attempt < 50 {
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            try DataDirectory.restrictDatabaseFiles(path)
        }
        return store
    }

    /// The application, the event bus, the connections' tasks and the store's closer: the
    /// services `run` runs.
    public static func makeServices(_ config: ServerConfiguration, logger: Logger? = nil,
                                    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in })
        async throws -> (app: App, bus: EventBus, tasks: ConnectionTasks, closer: any Service) {
        let topology = try config.topology.validate()
        try DataDirectory.prepare(config.dataDirectory)
        try FileManager.default.createDirectory(atPath: config.media + "/uploads", withIntermediateDirectories: true)
        var log = logger ?? Logger(label: "musit.server")
        if logger == nil { log.logLevel = .info }
        let store = try await openStore(config, logger: log)
        let secret = try SigningKey.load(secret: config.jwtSecret, dataDirectory: config.dataDirectory)
        let bus = EventBus()
        let tokens = await TokenService(secret: secret, accessLifetime: config.accessLifetime, refreshLifetime: config.refreshLifetime)
        var reached = topology
        var loopbackServices: [any Service] = []
        if topology.loopback, topology.role == .all {
            (reached.addresses, loopbackServices) = try RPCWiring.loopback(store: store, config: config, tokens: tokens, logger: log)
        }
        var links = try RPCWiring.gatewayLinks(reached, plays: store)
        // The services first: they start before the gateway's clients and stop after them.
        links.services = loopbackServices + links.services
        // Friendships, chat and the event logs: the Social service when it runs apart.
        let social: any SocialRepository = links.social.map { RemoteSocial(link: $0) } ?? store
        // Songs: the Library service when it runs apart.
        let localLibrary = links.library == nil ? LocalLibrary(config, songs: store) : nil
        let library: any LibraryAPI = links.library.map { RemoteLibrary(link: $0) } ?? localLibrary!
        let mediaCache = MediaCache()
        let relay = OutboxRelay(outbox: store, stats: links.stats, social: social, library: library,
                                songsGone: { ids in for id in ids { mediaCache.forget(song: id) } },
                                announce: { await bus.announce($0) }, logger: log)
        // Sign-in, tokens and profiles: the Accounts service when it runs apart.
        let accounts: any AccountsAPI = links.accounts.map { RemoteAccounts(link: $0) }
            ?? Self.localAccounts(config, store: store, tokens: tokens)
        let services = Services(
            accounts: accounts, tokens: tokens, social: social, library: library, routes: RouteCounter(),
            presence: (store as? PostgresStore).map { PostgresPresence(store: $0, window: config.onlineWindow) as any PresenceRepository }
                ?? PresenceTracker(window: config.onlineWindow), outbox: relay, mediaCache: mediaCache, bus: bus, config: config, logger: log)
        if let postgres = store as? PostgresStore {
            await bus.attach(PostgresEventRelay(store: postgres, bus: bus, cache: services.mediaCache,
                                                accounts: accounts as? RemoteAccounts, logger: log))
        }
        _ = MetricsSetup.registry
        MetricsSetup.listFamilies()
        let router = Router(context: MusitContext.self)
        let table = RouteTable()
        let middleware = RequestMiddleware(logger: log, routes: services.routes, table: table, cors: config.cors)
        // A server span per request, the child of an incoming W3C `traceparent`; first, so
        // that the request's log lines carry its ids.
        if Telemetry.isTracing { router.add(middleware: TracingMiddleware()) }
        router.add(middleware: middleware)
        // Two views of /api/v1: the open one (accounts, media by token), and the one
        // behind authentication, whose handlers find the user in their context.
        let open = router.group("/api/v1")
        let signedIn = router.group("/api/v1").add(middleware: AuthenticationMiddleware(tokens: services.tokens, users: services.users))
        AccountsController(services: services).addRoutes(to: router, open: open, signedIn: signedIn)
        SocialController(users: services.users, social: social, presence: services.presence, bus: services.bus,
                         friendChanges: RateLimiter(burst: config.friendChangeBurst, interval: config.friendChangeInterval),
                         presencePublisher: PresencePublisher(interval: .milliseconds(Int64(config.presenceInterval * 1000)),
                                                              social: social, presence: services.presence, bus: services.bus, logger: log))
            .addRoutes(to: signedIn)
        let events = EventsController(social: social, presence: services.presence, poll: LongPoll(store: social, bus: services.bus),
                                      pages: services.pages)
        events.addRoutes(to: signedIn)
        let pollEdge = PollEdge(events: events, tokens: services.tokens, users: services.users, problems: middleware.problems,
                                metrics: middleware.metrics, routes: services.routes, cors: config.cors, logger: log,
                                serverName: Self.serverName, media: MediaFastPath(cache: services.mediaCache))
        // The process that owns the library repairs the media directory before any request.
        if let owner = localLibrary ?? (topology.loopback ? LocalLibrary(config, songs: store) : nil) {
            try await owner.prepare(logger: log)
        } else {
            // Library apart repairs its rows and files; the uploads this gateway's last run
            // left half-written are this gateway's to remove.
            let swept = try await SongRoutes.runBlocking { MediaFiles.sweepUploads(directory: config.media) }
            if swept > 0 { log.warning("removed partial uploads after an unclean stop", metadata: ["partial_uploads_removed": "\(swept)"]) }
        }
        SongsController(services: services).addRoutes(open: open, signedIn: signedIn)
        StatsController(services: services, stats: links.stats).addRoutes(signedIn: signedIn)
        // Prometheus: every family, and the media volume read at the scrape.
        let media = config.media
        router.get("/metrics") { _, _ in
            MetricsSetup.measureVolume(media)
            return MetricsSetup.response()
        }
        let registry = ConnectionRegistry(limits: config.connections,
                                          descriptorLimit: ConnectionLimits.raiseDescriptorLimit(), logger: log)
        let tasks = ConnectionTasks()
        let server = HTTPServerBuilder { responder in
            GuardedHTTP1Channel(inner: HTTP1Channel(responder: responder,
                                                    configuration: .init(additionalChannelHandlers: [
                                                        ClientDisconnectHandler(), PollHandler(edge: pollEdge),
                                                    ])),
                                registry: registry, tasks: tasks)
        }
        table.load(router.routes)
        let app = Application(responder: MusitResponder(router: router.buildResponder(), routes: table), server: server,
                              configuration: .init(address: .hostname(config.host, port: config.port), serverName: Self.serverName),
                              services: links.services + [relay] + (links.social.map {
                                  // Social apart: its notices of every gateway's changes wake the polls held here.
                                  [SocialSubscription(client: $0.client, bus: bus, logger: log)]
                              } ?? [Self.pruner(config, store, log)]),
                              onServerRunning: onServerRunning, logger: log)
        return (app, services.bus, tasks, StoreCloser(store: store, logger: log))
    }
}

/// Every error leaves as `application/problem+json` (RFC 9457).
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return response(for: error, request: request)
        }
    }

    /// The problem answer for `error`; an error that is not the client's is logged. A 401
    /// names the scheme to use (RFC 9110 §11.6.1, RFC 6750 §3).
    func response(for error: any Error, request: Request) -> Response {
        let (status, headers, body) = parts(for: error, request: request)
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    /// `response(for:request:)` as status, headers and body, for answers written to a
    /// channel directly (`PollHandler`).
    func parts(for error: any Error, request: Request) -> (HTTPResponse.Status, HTTPFields, ByteBuffer) {
        var (problem, headers) = problem(for: error, request: request)
        if problem.status == 401, headers[.wwwAuthenticate] == nil {
            headers[.wwwAuthenticate] = request.headers[.authorization] == nil
                ? #"Bearer realm="musit""# : #"Bearer realm="musit", error="invalid_token""#
        }
        return Self.parts(problem, headers: headers)
    }

    private func problem(for error: any Error, request: Request) -> (Problem, HTTPFields) {
        switch error {
        case let problem as Problem:
            return (problem, [:])
        case let error as HTTPError:
            return (Problem(status: Int(error.status.code), title: error.status.reasonPhrase, detail: error.body), error.headers)
        case let error as any HTTPResponseError:
            return (Problem(status: Int(error.status.code), title: error.status.reasonPhrase), [:])
        case is DecodingError:
            return (Problem(status: 400, title: "Bad Request", detail: "The body is not the JSON this endpoint takes"), [:])
        default:
            logger.error("unhandled error", metadata: ["error": "\(String(reflecting: error))", "path": "\(request.uri.path)"])
            return (Problem(status: 500, title: "Internal Server Error"), [:])
        }
    }

    static func response(_ problem: Problem, headers extra: HTTPFields = [:]) -> Response {
        let (status, headers, body) = parts(problem, headers: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    static func parts(_ problem: Problem, headers extra: HTTPFields = [:]) -> (HTTPResponse.Status, HTTPFields, ByteBuffer) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(problem)) ?? Data("{}".utf8)
        var headers = extra
        headers[.contentType] = "application/problem+json"
        return (.init(code: problem.status), headers, ByteBuffer(bytes: data))
    }
}

extension Problem {
    static func badRequest(_ detail: String) -> Problem { Problem(status: 400, title: "Bad Request", detail: detail) }
    static func unauthorized(_ detail: String) -> Problem { Problem(status: 401, title: "Unauthorized", detail: detail) }
    static func conflict(_ detail: String) -> Problem { Problem(status: 409, title: "Conflict", detail: detail) }
}

extension Health: ResponseEncodable {}
extension TokenPair: ResponseEncodable {}
extension UserInfo: ResponseEncodable {}

/// The data directory holds password and token hashes and every chat: only its owner may
/// read it, whatever the umask.
enum DataDirectory {
    /// Creates the directory (and `media/uploads`) and makes it 0700; creates an empty
    /// database file 0600 when there is none, so it is never readable by others, not even
    /// for the moment before `restrictDatabaseFiles`.
    static func prepare(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path + "/media/uploads", withIntermediateDirectories: true)
        guard chmod(path, 0o700) == 0 else {
            throw Problem(status: 500, title: "Internal Server Error", detail: "Cannot restrict \(path) to its owner")
        }
        let fd = open(path + "/musit.sqlite", O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
    }

    /// The database, its WAL and shared-memory files: 0600. SQLite gives the WAL and -shm
    /// the database's own mode when it makes them, so this holds for files made later too.
    static func restrictDatabaseFiles(_ database: String) throws {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let file = database + suffix
            if FileManager.default.fileExists(atPath: file), chmod(file, 0o600) != 0 {
                throw Problem(status: 500, title: "Internal Server Error", detail: "Cannot restrict \(file) to its owner")
            }
        }
    }
}
