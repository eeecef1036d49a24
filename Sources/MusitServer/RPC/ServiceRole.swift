import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import Logging
import MusitAPI
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// `--serve --role stats --grpc-port P [--port M]`: one service alone. Its gRPC API over
/// HTTP/2 on P (plaintext: a private network between the gateway and its services), and
/// /healthz and /metrics over HTTP on M for probes and Prometheus.
enum ServiceRole {
    /// A request message larger than this is refused with RESOURCE_EXHAUSTED before it is
    /// read into memory: no message of these contracts comes near it.
    static let maxRequestBytes = 1 << 20

    static func run(_ config: ServerConfiguration, logger: Logger, shutdownSignals: [UnixSignal], telemetry: (any Service)?,
                    onServerRunning: @escaping @Sendable (any Channel) async -> Void) async throws {
        let topology = try config.topology.validate()
        guard let name = ServiceName(rawValue: topology.role.rawValue), let port = topology.grpcPort else {
            throw TopologyError("--role \(topology.role.rawValue) is not a service")
        }
        try DataDirectory.prepare(config.dataDirectory)
        // Accounts signs the access tokens: it needs the key the gateways check them with.
        let store = try await MusitBackend.openStore(config, logger: logger, needsSigningKey: name == .accounts)
        let service: any RegistrableRPCService
        var own: [any Service] = []
        switch name {
        case .stats: service = StatsService(plays: store)
        case .social:
            let feed = EventFeed()
            service = SocialService(social: store, feed: feed)
            own.append(MusitBackend.pruner(config, store, logger))
            // Several Social instances on one PostgreSQL: what the others commit reaches
            // this one's subscribers through the database's notices.
            if let postgres = store as? PostgresStore {
                own.append(PostgresEventRelay(store: postgres, bus: feed, cache: nil, logger: logger))
            }
        case .accounts:
            let secret = try SigningKey.load(secret: config.jwtSecret, dataDirectory: config.dataDirectory)
            let tokens = await TokenService(secret: secret, accessLifetime: config.accessLifetime, refreshLifetime: config.refreshLifetime)
            service = AccountsService(accounts: MusitBackend.localAccounts(config, store: store, tokens: tokens))
        case .library:
            // Library shares the media directory with the gateways: they write uploads into
            // it and serve its files; Library places and removes them with their rows.
            try FileManager.default.createDirectory(atPath: config.media + "/uploads", withIntermediateDirectories: true)
            let library = LocalLibrary(config, songs: store)
            // The repair's library.changed events are in the logs: a poll reads them when it
            // next reads storage (a Library alone has no bus to wake the gateways' polls).
            _ = try await library.prepare(logger: logger)
            service = LibraryService(library: library)
        }
        var transportConfig = HTTP2ServerTransport.Posix.Config.defaults
        transportConfig.rpc.maxRequestPayloadSize = maxRequestBytes
        let address: GRPCNIOTransportCore.SocketAddress = config.host.contains(":")
            ? .ipv6(host: config.host, port: port) : .ipv4(host: config.host, port: port)
        // One event loop carries the service's connections and runs its handlers (their task
        // executor), so a call is read, handled and answered on one thread: on the shared
        // group with the global executor, each call hopped between threads four times and
        // cost 340 µs of CPU for a health check.
        let loop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let transport = HTTP2ServerTransport.Posix(address: address, transportSecurity: .plaintext, config: transportConfig,
                                                   eventLoopGroup: loop)
        let faults = DelayInterceptor(environment: ProcessInfo.processInfo.environment["MUSIT_FAULT_DELAY"])
        if let faults { logger.warning("fault injection: calls wait before they are handled", metadata: ["method": "\(faults.method)"]) }
        let (server, health) = RPCWiring.serviceServer(transport: transport, services: [name: service],
                                                       executor: EventLoopTaskExecutor(loop.next()), faults: faults)
        _ = MetricsSetup.registry
        MetricsSetup.listFamilies()

        let router = Router()
        router.get("/healthz") { _, _ -> Response in
            let serving = health.status(of: "") == .serving
            let body = try JSONEncoder().encode(Health(status: serving ? "ok" : "stopping", version: MusitServerVersion.string))
            return Response(status: serving ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/metrics") { _, _ in MetricsSetup.response() }
        JSONCalls(methods: JSONCalls.methods(of: service).merging(JSONCalls.methods(of: health)) { a, _ in a }).addRoutes(to: router)
        let app = Application(router: router,
                              configuration: .init(address: .hostname(config.host, port: config.port),
                                                   serverName: MusitBackend.serverName),
                              onServerRunning: { channel in
                                  if let bound = try? await transport.listeningAddress {
                                      logger.notice("gRPC listening", metadata: ["service": "\(name.grpcName)", "address": "\(bound)"])
                                  }
                                  await onServerRunning(channel)
                              },
                              logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: (telemetry.map { [$0] } ?? []) + [StoreCloser(store: store, logger: logger)] + own + [server, app],
            gracefulShutdownSignals: shutdownSignals, logger: logger))
        try await group.run()
    }
}
