import GRPCCore
import MusitRPC
import Synchronization

/// The standard `grpc.health.v1.Health` service: "" (the whole server) and each service's
/// full name (`musit.stats.v1.Stats`) answer SERVING while the server takes calls and
/// NOT_SERVING once it is shutting down; other names are NOT_FOUND (Check) or
/// SERVICE_UNKNOWN (Watch), as the protocol says.
final class HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol, Sendable {
    typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: Status] = [:]
        var watchers: [Int: (service: String, continuation: AsyncStream<Status>.Continuation)] = [:]
        var nextWatcher = 0
    }

    /// Watches held at once, at most: each holds a stream open.
    static let watcherLimit = 256
    private let state = Mutex(State())

    init(services: [String]) {
        state.withLock { s in
            s.statuses[""] = .serving
            for name in services { s.statuses[name] = .serving }
        }
    }

    /// Sets every name's status (NOT_SERVING at shutdown) and tells the watchers.
    func setAll(_ status: Status) {
        let told = state.withLock { s -> [(AsyncStream<Status>.Continuation, Status)] in
            for key in s.statuses.keys { s.statuses[key] = status }
            return s.watchers.values.map { ($0.continuation, status) }
        }
        for (continuation, status) in told { continuation.yield(status) }
    }

    func status(of service: String) -> Status? { state.withLock { $0.statuses[service] } }

    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws
        -> Grpc_Health_V1_HealthCheckResponse {
        guard let status = status(of: request.service) else {
            throw RPCError(code: .notFound, message: "No service named \"\(request.service)\" here")
        }
        return .with { $0.status = status }
    }

    func list(request: Grpc_Health_V1_HealthListRequest, context: ServerContext) async throws
        -> Grpc_Health_V1_HealthListResponse {
        let all = state.withLock { $0.statuses }
        return .with { answer in
            for (name, status) in all { answer.statuses[name] = .with { $0.status = status } }
        }
    }

    func watch(request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
               context: ServerContext) async throws {
        let (stream, continuation) = AsyncStream.makeStream(of: Status.self, bufferingPolicy: .bufferingNewest(1))
        let id = try state.withLock { s -> Int in
            guard s.watchers.count < Self.watcherLimit else {
                throw RPCError(code: .resourceExhausted, message: "Too many health watches at once")
            }
            s.nextWatcher += 1
            s.watchers[s.nextWatcher] = (request.service, continuation)
            continuation.yield(s.statuses[request.service] ?? .serviceUnknown)
            return s.nextWatcher
        }
        defer { state.withLock { _ = $0.watchers.removeValue(forKey: id) } }
        try await withTaskCancellationHandler {
            for await status in stream {
                try await response.write(.with { $0.status = status })
            }
        } onCancel: {
            continuation.finish()
        }
    }
}
