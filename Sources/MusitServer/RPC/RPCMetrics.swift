import GRPCCore
import Logging
import Prometheus
import Synchronization

/// gRPC calls by service, method and status code, and their latency, on both sides of a
/// call: `grpc_server_handled_total`, `grpc_server_handling_seconds`, and the same with
/// `grpc_client_`. The names and labels are those of go-grpc-prometheus, which Grafana's
/// gRPC dashboards read. Handles are made once per series, as for the HTTP routes.
final class RPCMetrics: Sendable {
    enum Side: String, Sendable { case server, client }

    private struct Key: Hashable {
        let service: String
        let method: String
        let code: Int
    }

    private struct Handles {
        var counters: [Key: Prometheus.Counter] = [:]
        var durations: [Key: DurationHistogram] = [:]
    }

    let side: Side
    private let handles = Mutex(Handles())

    init(side: Side) { self.side = side }

    static let server = RPCMetrics(side: .server)
    static let client = RPCMetrics(side: .client)

    /// Buckets from 0.25 ms (a call over loopback) to 10 s.
    static let buckets: [Duration] = [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
                                      .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                      .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                      .seconds(2.5), .seconds(10)]

    /// Status codes by their names in the gRPC documentation (`grpc_code` label).
    static let codeNames = ["OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
                            "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
                            "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"]

    func record(_ method: MethodDescriptor, code: Int, duration: Duration) {
        let key = Key(service: method.service.fullyQualifiedService, method: method.method, code: code)
        let (counter, histogram) = handles.withLock { h -> (Prometheus.Counter, DurationHistogram) in
            if let c = h.counters[key], let d = h.durations[key] { return (c, d) }
            let registry = MetricsSetup.registry
            let codeName = Self.codeNames.indices.contains(code) ? Self.codeNames[code] : String(code)
            let c = registry.makeCounter(
                descriptor: .init(metricName: "grpc_\(side.rawValue)_handled", unitName: "total",
                                  helpText: "gRPC calls completed, by service, method and status code."),
                labels: [("grpc_service", key.service), ("grpc_method", key.method), ("grpc_code", codeName)])
            let d = registry.makeDurationHistogram(
                descriptor: .init(metricName: "grpc_\(side.rawValue)_handling", unitName: "seconds",
                                  helpText: "Time from a gRPC call's start to its status, by service, method and status code."),
                labels: [("grpc_service", key.service), ("grpc_method", key.method), ("grpc_code", codeName)],
                buckets: Self.buckets)
            h.counters[key] = c
            h.durations[key] = d
            return (c, d)
        }
        counter.increment()
        histogram.record(duration)
    }

    static func code(of error: any Error) -> Int {
        if let error = error as? RPCError { return error.code.rawValue }
        if let error = error as? any RPCErrorConvertible { return error.rpcErrorCode.rawValue }
        if error is CancellationError { return RPCError.Code.cancelled.rawValue }
        return RPCError.Code.unknown.rawValue
    }
}

/// Counts every call a server answers, with the code it ends with: a failure before the
/// handler, a failure of the handler, or the producer's end.
struct ServerMetricsInterceptor: ServerInterceptor {
    let metrics: RPCMetrics

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let start = ContinuousClock.now
        let method = context.descriptor
        let metrics = self.metrics
        var response: StreamingServerResponse<Output>
        do {
            response = try await next(request, context)
        } catch {
            let code = RPCMetrics.code(of: error)
            metrics.record(method, code: code, duration: .now - start)
            Self.log(method, code: code, since: start)
            throw error
        }
        // The access line, as the gateway writes one per request: written here, inside the
        // call's span (the tracing interceptor is outside this one), it carries its trace id.
        switch response.accepted {
        case .failure(let error): Self.log(method, code: error.code.rawValue, since: start)
        case .success: Self.log(method, code: 0, since: start)
        }
        switch response.accepted {
        case .failure(let error):
            metrics.record(method, code: error.code.rawValue, duration: .now - start)
        case .success(var contents):
            let producer = contents.producer
            contents.producer = { writer in
                do {
                    let trailers = try await producer(writer)
                    metrics.record(method, code: 0, duration: .now - start)
                    return trailers
                } catch {
                    metrics.record(method, code: RPCMetrics.code(of: error), duration: .now - start)
                    throw error
                }
            }
            response.accepted = .success(contents)
        }
        return response
    }
}

extension ServerMetricsInterceptor {
    static let logger = Logger(label: "musit.rpc")

    static func log(_ method: MethodDescriptor, code: Int, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        logger.info("RPC", metadata: ["grpc.method": .string(method.fullyQualifiedMethod),
                                      "grpc.code": .string(RPCMetrics.codeNames.indices.contains(code) ? RPCMetrics.codeNames[code] : String(code)),
                                      "duration_ms": .stringConvertible((ms * 1000).rounded() / 1000)])
    }
}

/// Counts every call a client makes, with the code it ends with.
struct ClientMetricsInterceptor: ClientInterceptor {
    let metrics: RPCMetrics

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>, context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            switch response.accepted {
            case .failure(let error):
                metrics.record(context.descriptor, code: error.code.rawValue, duration: .now - start)
            case .success:
                // A call the server fails before it answers (every failure of a unary
                // call here) arrives as `.failure` above; an accepted one counts as OK.
                metrics.record(context.descriptor, code: 0, duration: .now - start)
            }
            return response
        } catch {
            metrics.record(context.descriptor, code: RPCMetrics.code(of: error), duration: .now - start)
            throw error
        }
    }
}
