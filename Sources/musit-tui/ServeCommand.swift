import ArgumentParser
import Foundation
import Hummingbird
import Logging
import MusitConfig
import MusitServer
import ServiceLifecycle

/// `musit-tui --serve`: the backend, headless. Settings: flags, then MUSIT_* environment,
/// then the config file's "server" section, then defaults.
struct ServeCommand {
    let host: String?
    let port: Int?
    let data: String?
    let admin: String?
    let config: String?
    let logFormat: String?
    let database: String?
    let media: String?
    let role: String?
    let grpcPort: Int?
    let addresses: Addresses

    /// Where the gateway reaches each service: the flags `--accounts`, `--library`, `--social`,
    /// `--stats`, or the settings file's entries of those names.
    struct Addresses {
        var accounts, library, social, stats: String?

        func flag(_ name: ServiceName) -> String? {
            switch name {
            case .accounts: accounts
            case .library: library
            case .social: social
            case .stats: stats
            }
        }
    }

    func run(environment: [String: String]) throws {
        let settings: MusitSettings
        do {
            settings = try MusitSettings.load(path: config, environment: environment)
        } catch {
            throw ValidationError("\(error)")
        }
        let file = settings.server
        var c = ServerConfiguration(dataDirectory: data ?? environment["MUSIT_DATA"] ?? file?.data
                                    ?? XDGPaths(environment: environment).dataHome + "/musit")
        c.host = host ?? environment["MUSIT_HOST"] ?? file?.host ?? "127.0.0.1"
        c.port = port ?? environment["MUSIT_PORT"].flatMap(Int.init) ?? file?.port ?? 8080
        c.admin = admin ?? environment["MUSIT_ADMIN"] ?? file?.admin
        c.jwtSecret = environment["MUSIT_JWT_SECRET"] ?? file?.jwtSecret
        // A key in a file (a container secret, or one the compose stack makes at its first start).
        if c.jwtSecret == nil, let path = environment["MUSIT_JWT_SECRET_FILE"], !path.isEmpty {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("MUSIT_JWT_SECRET_FILE names \(path), which cannot be read.")
            }
            let key = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !key.isEmpty else { throw ValidationError("MUSIT_JWT_SECRET_FILE names \(path), which is empty.") }
            c.jwtSecret = key
        }
        c.database = database ?? environment["MUSIT_DATABASE_URL"] ?? file?.database
        c.mediaDirectory = media ?? environment["MUSIT_MEDIA"] ?? file?.media
        if let text = environment["MUSIT_DATABASE_POOL"] ?? file?.databasePool.map(String.init) {
            guard let n = Int(text), (2...1000).contains(n) else {
                throw ValidationError("The database pool (MUSIT_DATABASE_POOL or server.databasePool) is 2 to 1000 connections, not \(text).")
            }
            c.databasePoolSize = n
        }
        c.connections = try Self.connectionLimits(environment: environment, file: file)
        c.cors = try Self.corsPolicy(environment: environment, file: file)
        c.trustedProxies = try Self.trustedProxies(environment: environment, file: file)
        c.topology = try Self.topology(role: role, grpcPort: grpcPort, addresses: addresses, environment: environment, file: file)
        if let cost = environment["MUSIT_BCRYPT_COST"].flatMap(UInt8.init), (4...31).contains(cost) { c.bcryptCost = cost }
        // How long the per-user event logs keep history, in seconds (30 days by default), and
        // how often they are pruned.
        for (name, path) in [("MUSIT_EVENT_RETENTION", \ServerConfiguration.eventRetention),
                             ("MUSIT_EVENT_PRUNE_INTERVAL", \ServerConfiguration.eventPruneInterval)] {
            guard let text = environment[name] else { continue }
            guard let seconds = Double(text), seconds >= 1, seconds <= 10 * 365 * 86400 else {
                throw ValidationError("\(name) is a number of seconds from 1 to ten years, not \(text).")
            }
            c[keyPath: path] = seconds
        }
        let configuration = c
        let levelName = environment["MUSIT_LOG_LEVEL"] ?? "info"
        guard let level = Logger.Level(rawValue: levelName) else {
            throw ValidationError("MUSIT_LOG_LEVEL is one of trace, debug, info, notice, warning, error, critical, not \(levelName).")
        }
        let format = logFormat ?? environment["MUSIT_LOG_FORMAT"] ?? "text"
        guard ["text", "json"].contains(format) else { throw ValidationError("--log-format is text or json, not \(format).") }
        // Tracing first: the log lines written inside a span then carry its ids.
        let service = environment["OTEL_SERVICE_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? "musit-\(configuration.topology.role.rawValue)"
        let telemetry: Telemetry.Backend?
        do {
            let diagnostics = format == "json" ? Logger(label: "swift-otel") { JSONLogHandler(label: $0, service: service) } : nil
            telemetry = try Telemetry.bootstrap(role: configuration.topology.role, environment: environment, diagnostics: diagnostics)
        } catch {
            throw ValidationError("OpenTelemetry (OTEL_* variables): \(error)")
        }
        let provider = telemetry == nil ? nil : Telemetry.loggingMetadataProvider
        let exported = telemetry?.logHandler
        // Lines on stderr as chosen, written in batches (`LogSink`: a request's line is not a
        // system call of its own), and the same records to the collector when exporting.
        LoggingSystem.bootstrap({ label, provider in
            let local = SinkLogHandler(format == "json"
                ? JSONLogHandler(label: label, service: service, metadataProvider: provider)
                : StreamLogHandler(label: label, stream: LogSink.standardError, metadataProvider: provider))
            guard let exported else { return local }
            return MultiplexLogHandler([local, exported(label)])
        }, metadataProvider: provider)
        // Each log line's timestamp goes through glibc's localtime_r, which stats
        // /etc/localtime on every call while TZ is unset: a syscall per request.
        if environment["TZ"] == nil { setenv("TZ", ":/etc/localtime", 0) }
        let done = DispatchSemaphore(value: 0)
        let failure = Locked<(any Error)?>(nil)
        Task {
            do {
                var logger = Logger(label: "musit.server")
                logger.logLevel = level
                try await MusitBackend.run(configuration, logger: logger, telemetry: telemetry?.service)
            } catch {
                failure.set(error)
            }
            done.signal()
        }
        done.wait()
        if let error = failure.get() {
            FileHandle.standardError.write(Data("musit-tui: server: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

extension ServeCommand {
    /// The role and the services' addresses: flags, then `MUSIT_ROLE`, `MUSIT_GRPC_PORT`,
    /// `MUSIT_<SERVICE>_ADDR`, then the file's `server.role`, `server.grpcPort`,
    /// `server.<service>`.
    static func topology(role: String?, grpcPort: Int?, addresses: Addresses, environment: [String: String],
                         file: MusitSettings.Server?) throws -> ServiceTopology {
        var t = ServiceTopology()
        let roleName = role ?? environment["MUSIT_ROLE"].flatMap { $0.isEmpty ? nil : $0 } ?? file?.role ?? "all"
        guard let r = ServerRole(rawValue: roleName) else {
            throw ValidationError("--role (MUSIT_ROLE, server.role) is one of \(ServerRole.allCases.map(\.rawValue).joined(separator: ", ")), not \(roleName).")
        }
        t.role = r
        if let text = environment["MUSIT_RPC_TIMEOUT"] {
            guard let seconds = Double(text), seconds >= 0.01, seconds <= 600 else {
                throw ValidationError("MUSIT_RPC_TIMEOUT is the seconds each call to a service may take, 0.01 to 600, not \(text).")
            }
            t.callTimeout = .milliseconds(Int64(seconds * 1000))
        }
        if let text = grpcPort.map(String.init) ?? environment["MUSIT_GRPC_PORT"] ?? file?.grpcPort.map(String.init) {
            guard let p = Int(text), (0...65535).contains(p) else {
                throw ValidationError("--grpc-port (MUSIT_GRPC_PORT, server.grpcPort) is a port, 0 to 65535, not \(text).")
            }
            t.grpcPort = p
        }
        let fromFile = Addresses(accounts: file?.accounts, library: file?.library, social: file?.social, stats: file?.stats)
        for name in ServiceName.allCases {
            if let address = addresses.flag(name) ?? environment["MUSIT_\(name.rawValue.uppercased())_ADDR"].flatMap({ $0.isEmpty ? nil : $0 })
                ?? fromFile.flag(name) {
                t.addresses[name] = address
            }
        }
        do {
            return try t.validate()
        } catch let error as TopologyError {
            throw ValidationError(error.description + ".")
        }
    }

    /// Timeouts and the connection cap: `MUSIT_HEADER_TIMEOUT`, `MUSIT_IDLE_TIMEOUT`
    /// (seconds) and `MUSIT_MAX_CONNECTIONS`, then the file's `headerTimeout`,
    /// `idleTimeout` and `maxConnections`. A bad value is an error naming it.
    static func connectionLimits(environment: [String: String], file: MusitSettings.Server?) throws -> ConnectionLimits {
        var limits = ConnectionLimits()
        func seconds(_ name: String, _ fileValue: Double?, _ key: String) throws -> Double? {
            let value: Double
            if let text = environment[name] {
                guard let v = Double(text), v.isFinite, v > 0, v <= 86_400 else {
                    throw ValidationError("\(name) is a number of seconds above 0 and at most 86400, not \(text).")
                }
                value = v
            } else if let v = fileValue {
                guard v.isFinite, v > 0, v <= 86_400 else {
                    throw ValidationError("server.\(key) in the config file is a number of seconds above 0 and at most 86400, not \(v).")
                }
                value = v
            } else {
                return nil
            }
            return value
        }
        if let t = try seconds("MUSIT_HEADER_TIMEOUT", file?.headerTimeout, "headerTimeout") { limits.headerTimeout = .nanoseconds(Int64(t * 1e9)) }
        if let t = try seconds("MUSIT_IDLE_TIMEOUT", file?.idleTimeout, "idleTimeout") { limits.idleTimeout = .nanoseconds(Int64(t * 1e9)) }
        if let text = environment["MUSIT_MAX_CONNECTIONS"] {
            guard let n = Int(text), n >= 16 else { throw ValidationError("MUSIT_MAX_CONNECTIONS is a whole number of at least 16, not \(text).") }
            limits.maxConnections = n
        } else if let n = file?.maxConnections {
            guard n >= 16 else { throw ValidationError("server.maxConnections in the config file is at least 16, not \(n).") }
            limits.maxConnections = n
        }
        return limits
    }
}

extension ServeCommand {
    /// `MUSIT_CORS_ORIGINS` (comma-separated), then the file's `corsOrigins`: exact origins
    /// such as `https://player.example`, or `*`. None by default: CORS is off.
    static func corsPolicy(environment: [String: String], file: MusitSettings.Server?) throws -> CORSPolicy {
        let origins = environment["MUSIT_CORS_ORIGINS"].map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            ?? file?.corsOrigins ?? []
        for origin in origins where origin != "*" {
            guard let url = URL(string: origin), let scheme = url.scheme, ["http", "https"].contains(scheme),
                  url.host != nil, url.path.isEmpty, url.query == nil else {
                throw ValidationError("CORS origins are * or scheme://host[:port] with no path, not \(origin).")
            }
        }
        return CORSPolicy(allowedOrigins: origins.filter { !$0.isEmpty })
    }
}

extension ServeCommand {
    /// `MUSIT_TRUSTED_PROXIES` (comma-separated), then the file's `trustedProxies`: the
    /// addresses of proxies in front (nginx), whose `X-Forwarded-For` names the client.
    static func trustedProxies(environment: [String: String], file: MusitSettings.Server?) throws -> [String] {
        let list = environment["MUSIT_TRUSTED_PROXIES"].map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            ?? file?.trustedProxies ?? []
        for address in list where !address.isEmpty {
            guard ServerConfiguration.isIPAddress(address) else {
                throw ValidationError("Trusted proxies (MUSIT_TRUSTED_PROXIES or server.trustedProxies) are IP addresses, not \(address).")
            }
        }
        return list.filter { !$0.isEmpty }
    }
}

/// A value shared between a task and the thread waiting for it.
final class Locked<Value: Sendable>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func set(_ v: Value) { lock.lock(); value = v; lock.unlock() }
    func get() -> Value { lock.lock(); defer { lock.unlock() }; return value }
}
