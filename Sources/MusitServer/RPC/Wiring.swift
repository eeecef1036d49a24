import Foundation
import GRPCCore
import GRPCInProcessTransport
import GRPCNIOTransportHTTP2
import Logging
import MusitRPC
import ServiceLifecycle

/// The gRPC pieces each role runs.
enum RPCWiring {
    /// The gateway's way to Stats: over HTTP/2 when the topology names its address, or a
    /// Stats server in this process over the in-process transport (all-in-one), with the
    /// same serialization, interceptors and health. Returns the services that keep them
    /// running, to run before the HTTP server (and stop after it).
    /// Social is reached over HTTP/2 only when the topology names it; all-in-one, the routes
    /// call its repository directly (`social` nil): the long-poll's reads are the hottest
    /// path of the server, and a call through the in-process transport would cost each one.
    static func gatewayLinks(_ topology: ServiceTopology, plays: any PlayRepository)
        throws -> (stats: ServiceLink<any Musit_Stats_V1_Stats.ClientProtocol>,
                   social: ServiceLink<any Musit_Social_V1_Social.ClientProtocol>?,
                   accounts: ServiceLink<any Musit_Accounts_V1_Accounts.ClientProtocol>?,
                   library: ServiceLink<any Musit_Library_V1_Library.ClientProtocol>?, services: [any Service]) {
        var clientInterceptors: [any ClientInterceptor] = [ClientMetricsInterceptor(metrics: .client)]
        if Telemetry.isTracing { clientInterceptors.insert(ClientTracingInterceptor(), at: 0) }
        var services: [any Service] = []
        // A service named by the topology: a client over HTTP/2 to it, run as a service.
        func remote<C: Sendable>(_ name: ServiceName, _ wrap: (GRPCClient<HTTP2ClientTransport.Posix>) -> C) throws -> ServiceLink<C>? {
            guard let address = topology.addresses[name] else { return nil }
            let client = GRPCClient(transport: try ServiceTopology.transport(to: address), interceptors: clientInterceptors)
            services.append(GRPCClientService(client: client))
            return ServiceLink(service: name, client: wrap(client), timeout: topology.callTimeout, waitForReady: topology.loopback)
        }
        let stats: ServiceLink<any Musit_Stats_V1_Stats.ClientProtocol>
        if let link = try remote(.stats, { Musit_Stats_V1_Stats.Client(wrapping: $0) as any Musit_Stats_V1_Stats.ClientProtocol }) {
            stats = link
        } else {
            let transport = InProcessTransport()
            let (server, _) = serviceServer(transport: transport.server, services: [.stats: StatsService(plays: plays)])
            let client = GRPCClient(transport: transport.client, interceptors: clientInterceptors)
            services += [server, GRPCClientService(client: client)]
            stats = ServiceLink(service: .stats, client: Musit_Stats_V1_Stats.Client(wrapping: client), timeout: topology.callTimeout,
                                waitForReady: topology.loopback)
        }
        let social = try remote(.social) { Musit_Social_V1_Social.Client(wrapping: $0) as any Musit_Social_V1_Social.ClientProtocol }
        let accounts = try remote(.accounts) { Musit_Accounts_V1_Accounts.Client(wrapping: $0) as any Musit_Accounts_V1_Accounts.ClientProtocol }
        let library = try remote(.library) { Musit_Library_V1_Library.Client(wrapping: $0) as any Musit_Library_V1_Library.ClientProtocol }
        return (stats, social, accounts, library, services)
    }

    /// A gRPC server for `services`, as the service that runs it (on `executor`), with the
    /// health service answering for each of them (NOT_SERVING once shutdown begins) and the
    /// server metrics on every call.
    static func serviceServer<Transport: ServerTransport>(transport: Transport, services: [ServiceName: any RegistrableRPCService],
                                                          executor: (any TaskExecutor)? = nil, faults: DelayInterceptor? = nil)
        -> (GRPCServerService<Transport>, HealthService) {
        let health = HealthService(services: services.keys.map(\.grpcName))
        var interceptors: [any ServerInterceptor] = [ServerMetricsInterceptor(metrics: .server), DeadlineInterceptor()]
        if Telemetry.isTracing { interceptors.insert(ServerTracingInterceptor(), at: 0) }
        if let faults { interceptors.append(faults) }
        let server = GRPCServer(transport: transport, services: Array(services.values) + [health], interceptors: interceptors)
        return (GRPCServerService(server: server, executor: executor, onShutdown: { health.setAll(.notServing) }), health)
    }

    /// `ServiceTopology.loopback`: Accounts, Library, Social and Stats over the store, each served over HTTP/2
    /// on a free loopback port, as `--role social` and `--role stats` serve them. Returns
    /// their addresses, for the gateway, and the services that run them (with Social's
    /// pruner, whose process owns its storage).
    static func loopback(store: any Store, config: ServerConfiguration, tokens: TokenService, logger: Logger) throws
        -> (addresses: [ServiceName: String], services: [any Service]) {
        var addresses: [ServiceName: String] = [:]
        var services: [any Service] = []
        let built: [(ServiceName, any RegistrableRPCService)] = [
            (.accounts, AccountsService(accounts: MusitBackend.localAccounts(config, store: store, tokens: tokens))),
            (.library, LibraryService(library: LocalLibrary(config, songs: store))),
            (.social, SocialService(social: store)),
            (.stats, StatsService(plays: store)),
        ]
        for (name, service) in built {
            let port = try freeLoopbackPort()
            var transportConfig = HTTP2ServerTransport.Posix.Config.defaults
            transportConfig.rpc.maxRequestPayloadSize = ServiceRole.maxRequestBytes
            let transport = HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext,
                                                       config: transportConfig)
            services.append(serviceServer(transport: transport, services: [name: service]).0)
            addresses[name] = "127.0.0.1:\(port)"
        }
        services.append(MusitBackend.pruner(config, store, logger))
        return (addresses, services)
    }

    /// A port no one listens on now (the kernel's pick for a socket bound to port 0). It is
    /// free when asked, not reserved: another process could take it before the service
    /// binds it, which the loopback topology (tests only) accepts; a deployment names ports.
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TopologyError("no socket for a loopback port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw TopologyError("no free loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
