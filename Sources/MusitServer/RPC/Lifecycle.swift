import GRPCCore
import ServiceLifecycle

// grpc-swift-2's server and client as ServiceLifecycle services (grpc-swift-extras has the
// same glue; it is not among this project's dependencies). A graceful shutdown lets the
// calls in flight finish; cancellation stops at once.

/// Serves gRPC until the service group shuts down.
struct GRPCServerService<Transport: ServerTransport>: Service {
    let server: GRPCServer<Transport>
    /// Where the server's tasks (and so every handler, a child of them) run; nil: the
    /// global executor.
    var executor: (any TaskExecutor)? = nil
    /// Told when the server stops taking calls, so health can say NOT_SERVING first.
    var onShutdown: @Sendable () -> Void = {}

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withTaskExecutorPreference(executor) { try await server.serve() }
        } onGracefulShutdown: {
            onShutdown()
            server.beginGracefulShutdown()
        }
    }
}

/// Keeps a gRPC client's connections until the service group shuts down.
struct GRPCClientService<Transport: ClientTransport>: Service {
    let client: GRPCClient<Transport>

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await client.runConnections()
        } onGracefulShutdown: {
            client.beginGracefulShutdown()
        }
    }
}
