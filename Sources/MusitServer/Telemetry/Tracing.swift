import GRPCCore
import Instrumentation
import Logging
import OTel
import ServiceContextModule
import ServiceLifecycle
import Synchronization
import Tracing

/// OpenTelemetry tracing, configured by the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`,
/// `OTEL_RESOURCE_ATTRIBUTES`…) through swift-otel. Off unless an endpoint is set; then no
/// span is made anywhere (the HTTP middleware and the gRPC interceptors are not installed,
/// the stores skip their transaction spans), so it costs one atomic load per transaction.
public enum Telemetry {
    private static let enabled = Atomic<Bool>(false)

    /// Whether spans are being recorded.
    public static var isTracing: Bool { enabled.load(ordering: .relaxed) }

    /// What `bootstrap` started: the exporters' service, to run first in the process's
    /// service group so that it stops last and flushes what the others recorded, and the
    /// OTLP log handler to put beside the process's own (nil when `OTEL_LOGS_EXPORTER=none`).
    public struct Backend: Sendable {
        public let service: any Service
        public let logHandler: (@Sendable (String) -> any LogHandler)?
    }

    /// Starts tracing, and log export, when the environment names an OTLP endpoint; nil when
    /// telemetry stays off. Call once per process.
    /// `diagnostics` gets swift-otel's own lines (export failures, settings read from the
    /// environment), so they are written as the process's others are.
    public static func bootstrap(role: ServerRole, environment: [String: String], diagnostics: Logger? = nil) throws -> Backend? {
        let endpoint = environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] ?? environment["OTEL_EXPORTER_OTLP_ENDPOINT"]
        guard let endpoint, !endpoint.isEmpty, environment["OTEL_SDK_DISABLED"] != "true" else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = "musit-\(role.rawValue)"   // OTEL_SERVICE_NAME overrides
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        // Export trouble, not every setting it read (OTEL_LOG_LEVEL overrides).
        configuration.diagnosticLogLevel = .warning
        if let diagnostics { configuration.diagnosticLogger = .custom(diagnostics) }
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(backend.factory)
        enabled.store(true, ordering: .relaxed)
        var services: [any Service] = [backend.service]
        var logHandler: (@Sendable (String) -> any LogHandler)?
        let logsEndpoint = environment["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] ?? environment["OTEL_EXPORTER_OTLP_ENDPOINT"]
        if environment["OTEL_LOGS_EXPORTER"] != "none", let logsEndpoint, !logsEndpoint.isEmpty {
            var logs = configuration
            logs.traces.enabled = false
            logs.logs.enabled = true
            // Every line the process keeps is exported; the process's logger chooses them.
            logs.logs.level = .trace
            let logging = try OTel.makeLoggingBackend(configuration: logs)
            services.append(logging.service)
            logHandler = logging.factory
        }
        return Backend(service: services.count == 1 ? services[0] : AllOf(services), logHandler: logHandler)
    }

    /// Services that run side by side and stop together (each sees the group's shutdown).
    private struct AllOf: Service {
        let services: [any Service]
        init(_ services: [any Service]) { self.services = services }

        func run() async throws {
            try await withThrowingDiscardingTaskGroup { group in
                for service in services { group.addTask { try await service.run() } }
            }
        }
    }

    /// Runs `body` in a span when tracing, else just runs it.
    @inlinable
    static func span<T>(_ name: String, kind: SpanKind = .internal, attributes: [(String, String)] = [],
                        _ body: () async throws -> T) async throws -> T {
        guard isTracing else { return try await body() }
        return try await withSpan(name, ofKind: kind) { span in
            for (key, value) in attributes { span.attributes[key] = value }
            return try await body()
        }
    }

    /// The metadata provider that puts the current span's `trace_id` and `span_id` on each
    /// log line written inside it.
    public static var loggingMetadataProvider: Logger.MetadataProvider { OTel.makeLoggingMetadataProvider() }
}

/// W3C trace context into and out of gRPC metadata.
struct MetadataCarrier: Injector, Extractor {
    func inject(_ value: String, forKey key: String, into carrier: inout Metadata) {
        carrier.replaceOrAddString(value, forKey: key)
    }

    func extract(key: String, from carrier: Metadata) -> String? {
        carrier[stringValues: key].first(where: { _ in true })
    }
}

/// A client span for every call, its context sent in the call's metadata.
struct ClientTracingInterceptor: ClientInterceptor {
    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>, context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        let method = context.descriptor
        return try await withSpan(method.fullyQualifiedMethod, ofKind: .client) { span in
            span.describe(method)
            InstrumentationSystem.instrument.inject(span.context, into: &request.metadata, using: MetadataCarrier())
            let response = try await next(request, context)
            if case .failure(let error) = response.accepted {
                span.fail(error)
            } else {
                span.attributes["rpc.grpc.status_code"] = 0
            }
            return response
        }
    }
}

/// A server span for every call, the child of the caller's span when its metadata carries one.
struct ServerTracingInterceptor: ServerInterceptor {
    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        var parent = ServiceContext.current ?? .topLevel
        InstrumentationSystem.instrument.extract(request.metadata, into: &parent, using: MetadataCarrier())
        let method = context.descriptor
        return try await withSpan(method.fullyQualifiedMethod, context: parent, ofKind: .server) { span in
            span.describe(method)
            do {
                return try await next(request, context)
            } catch let error as RPCError {
                span.fail(error)
                throw error
            }
        }
    }
}

extension Span {
    /// The OpenTelemetry RPC attributes of a gRPC call.
    func describe(_ method: MethodDescriptor) {
        attributes["rpc.system"] = "grpc"
        attributes["rpc.service"] = method.service.fullyQualifiedService
        attributes["rpc.method"] = method.method
    }

    /// A call that ended with `error`: its status code, and the span marked failed.
    func fail(_ error: RPCError) {
        attributes["rpc.grpc.status_code"] = error.code.rawValue
        setStatus(.init(code: .error, message: error.message))
    }
}
