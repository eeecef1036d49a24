import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import NIOCore

/// What one process runs. `all` (the default) is every service in one process over the
/// in-process transport; `gateway` is the public HTTP API, reaching the services it is
/// given an address for over gRPC; a service role serves that service's gRPC API alone.
public enum ServerRole: String, Sendable, CaseIterable {
    case all, gateway, accounts, library, social, stats

    /// The roles that serve one service alone.
    public var isService: Bool { ServiceName(rawValue: rawValue) != nil }
}

/// The services behind the gateway.
public enum ServiceName: String, Sendable, CaseIterable, Hashable {
    case accounts, library, social, stats

    /// The gRPC service it serves, as health checks name it.
    var grpcName: String {
        switch self {
        case .accounts: "musit.accounts.v1.Accounts"
        case .library: "musit.library.v1.Library"
        case .social: "musit.social.v1.Social"
        case .stats: "musit.stats.v1.Stats"
        }
    }

    var title: String { rawValue.prefix(1).uppercased() + rawValue.dropFirst() }
}

/// Where the services are: the role, a service's gRPC port, and the gateway's addresses.
public struct ServiceTopology: Sendable, Equatable {
    public var role: ServerRole = .all
    /// A service role's gRPC port (HTTP/2 without TLS, for a private network).
    public var grpcPort: Int?
    /// host:port of each service the gateway reaches over gRPC.
    public var addresses: [ServiceName: String] = [:]
    /// The budget of each call the gateway makes for a request (sent as `grpc-timeout`).
    public var callTimeout: Duration = .seconds(5)
    /// All-in-one with the split's path: every service served over HTTP/2 on
    /// loopback ports of this process, and the gateway reaching them as it reaches
    /// services elsewhere. For the server suite (`MUSIT_TEST_SPLIT=1`): the same tests
    /// over both paths, in one process.
    public var loopback = false

    public init() {}

    /// Checks that the pieces fit, with a message naming the flag and its variable.
    public func validate() throws -> Self {
        switch role {
        case .all:
            if !addresses.isEmpty {
                throw TopologyError("--accounts, --library, --social and --stats are for --role gateway")
            }
        case .gateway:
            if addresses.isEmpty {
                throw TopologyError("--role gateway needs the services it reaches over gRPC: --accounts host:port, --library host:port, "
                                    + "--social host:port, --stats host:port (or MUSIT_ACCOUNTS_ADDR, MUSIT_LIBRARY_ADDR, "
                                    + "MUSIT_SOCIAL_ADDR, MUSIT_STATS_ADDR)")
            }
        case .accounts, .library, .social, .stats:
            guard grpcPort != nil else { throw TopologyError("--role \(role.rawValue) needs --grpc-port (or MUSIT_GRPC_PORT)") }
            if !addresses.isEmpty { throw TopologyError("--accounts, --library, --social and --stats are for --role gateway") }
        }
        for (name, address) in addresses where Self.hostPort(address) == nil {
            throw TopologyError("--\(name.rawValue) is host:port, not \(address)")
        }
        return self
    }

    /// "host:port" (or "[v6]:port") split, or nil.
    static func hostPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        return (host, port)
    }
}

public struct TopologyError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ text: String) { description = text }
}

/// How the gateway reaches one service: its generated client, the budget each call gets
/// (the caller's deadline travels as `grpc-timeout`, and the callee is cancelled past it),
/// and what a failed call becomes for the HTTP client: the service down is 503 with
/// Retry-After (the routes that do not need it keep working), its deadline passed is 504.
struct ServiceLink<Client: Sendable>: Sendable {
    let service: ServiceName
    let client: Client
    let timeout: Duration
    /// Calls wait for the connection within their budget instead of failing at once: for
    /// services in this very process (`ServiceTopology.loopback`), which are never down
    /// while it runs, only not yet listening as it starts.
    var waitForReady = false

    /// Calls the service within the budget. An `idempotent` call that finds the service
    /// unavailable is tried again, at most twice, after 50 and 100 ms with full jitter, while
    /// the budget lasts. (The retry policy of grpc-swift-2 2.4.3's service config is not
    /// used: when the transport fails a stream at once, its executor still waits for its
    /// deadline timer before it returns, so a service that is down took the whole budget.)
    /// `budget` replaces the link's for a call whose work is long by nature (an upload's
    /// validation decodes the whole file).
    func call<T: Sendable>(idempotent: Bool = false, budget: Duration? = nil, _ body: (Client, CallOptions) async throws -> T)
        async throws -> T {
        let deadline = ContinuousClock.now + (budget ?? timeout)
        var attempt = 0
        while true {
            var options = CallOptions.defaults
            options.timeout = ContinuousClock.now.duration(to: deadline)
            // A service that is down fails the call at once (503) instead of holding it for
            // the whole budget while the transport reconnects.
            options.waitForReady = waitForReady
            do {
                return try await body(client, options)
            } catch let error as RPCError {
                attempt += 1
                let pause = Duration.milliseconds(Int64.random(in: 0...(50 << attempt)))
                guard idempotent, error.code == .unavailable, attempt < 3, ContinuousClock.now + pause < deadline else {
                    throw problem(for: error)
                }
                try await Task.sleep(for: pause)
            } catch let error as RuntimeError where error.code == .clientIsStopped {
                // Shutting down: the gateway's client stops after the HTTP server, so only a
                // request that outlives the drain sees this.
                throw HTTPError(.serviceUnavailable, headers: [.retryAfter: "1"], message: "\(service.title) is stopping")
            }
        }
    }

    func problem(for error: RPCError) -> any Error {
        let name = service.title
        // Anything else is the service failing, not the client: 502.
        guard let coded = error.code.httpStatus else { return HTTPError(.badGateway, message: "\(name) failed (\(error.code))") }
        // The public API's own status, when the callee answered with one (413, 422, ...).
        let status = RPCProblems.status(of: error) ?? coded
        // A callee that knows how long to wait says so (`retry-after`, seconds); else 1 s.
        let wait = error.metadata[stringValues: "retry-after"].first(where: { _ in true }).flatMap { Int($0) }
        let retry: HTTPFields = [.serviceUnavailable, .tooManyRequests].contains(status) ? [.retryAfter: String(wait ?? 1)] : [:]
        let message = switch error.code {
        case .unavailable: "\(name) is unavailable; try again in a second"
        case .deadlineExceeded: "\(name) did not answer in time"
        default: error.message
        }
        return HTTPError(status, headers: retry, message: message)
    }
}

extension RPCError.Code {
    /// The HTTP status of a gRPC code that says what was wrong with the call or when to
    /// try again; nil for the codes that mean the callee failed. `ServiceLink` answers the
    /// gateway's client with it, `JSONCalls` a service's JSON caller.
    var httpStatus: HTTPResponse.Status? {
        switch self {
        case .invalidArgument: .badRequest
        case .notFound: .notFound
        case .failedPrecondition: .conflict
        case .permissionDenied: .forbidden
        case .unauthenticated: .unauthorized
        case .alreadyExists: .conflict
        case .resourceExhausted: .tooManyRequests
        case .unavailable: .serviceUnavailable
        case .deadlineExceeded: .gatewayTimeout
        default: nil
        }
    }
}

extension ServiceTopology {
    /// The gRPC client transport to a service at "host:port": HTTP/2 without TLS, reconnecting
    /// within 100 ms to 1 s of the service coming back (not the default's up to two minutes).
    static func transport(to address: String) throws -> HTTP2ClientTransport.Posix {
        guard let (host, port) = hostPort(address) else { throw TopologyError("not host:port: \(address)") }
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.backoff = .init(initial: .milliseconds(100), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
        let target: any ResolvableTarget = host.contains(":") ? .ipv6(address: host, port: port)
            : host.allSatisfy({ $0.isNumber || $0 == "." }) ? .ipv4(address: host, port: port) : .dns(host: host, port: port)
        return try .http2NIOPosix(target: target, transportSecurity: .plaintext, config: config)
    }
}
