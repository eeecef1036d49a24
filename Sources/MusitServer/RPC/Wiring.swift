import GRPCCore
import GRPCInProcessTransport
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
                   social: ServiceLink<any Musit_Social_V1_Social.ClientProtocol>?, services: [any Service]) {
        var clientInterceptors: [any ClientInterceptor] = [ClientMetricsInterceptor(metrics: .client)]
        if Telemetry.isTracing { clientInterceptors.insert(ClientTracingInterceptor(), at: 0) }
        let stats: any Musit_Stats_V1_Stats.ClientProtocol
        var services: [any Service] = []
        if let address = topology.addresses[.stats] {
            let transport = try ServiceTopology.transport(to: address)
            let client = GRPCClient(transport: transport, interceptors: clientInterceptors)
            services.append(GRPCClientService(client: client))
            stats = Musit_Stats_V1_Stats.Client(wrapping: client)
        } else {
            let transport = InProcessTransport()
            let (server, _) = serviceServer(transport: transport.server, services: [.stats: StatsService(plays: plays)])
            let client = GRPCClient(transport: transport.client, interceptors: clientInterceptors)
            services += [server, GRPCClientService(client: client)]
            stats = Musit_Stats_V1_Stats.Client(wrapping: client)
        }
        var social: ServiceLink<any Musit_Social_V1_Social.ClientProtocol>?
        if let address = topology.addresses[.social] {
            let transport = try ServiceTopology.transport(to: address)
            let client = GRPCClient(transport: transport, interceptors: clientInterceptors)
            services.append(GRPCClientService(client: client))
            social = ServiceLink(service: .social, client: Musit_Social_V1_Social.Client(wrapping: client), timeout: topology.callTimeout)
        }
        return (ServiceLink(service: .stats, client: stats, timeout: topology.callTimeout), social, services)
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
}
