import ArgumentParser
import Foundation
import Hummingbird
import Logging
import MusitConfig
import MusitServer

/// `musit-tui --serve`: the backend, headless. Settings: flags, then MUSIT_* environment,
/// then the config file's "server" section, then defaults.
struct ServeCommand {
    let host: String?
    let port: Int?
    let data: String?
    let admin: String?
    let config: String?
    let logFormat: String?

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
        c.jwtSecret = environment["MUSIT_JWT_SECRET"]
        if let cost = environment["MUSIT_BCRYPT_COST"].flatMap(UInt8.init), (4...31).contains(cost) { c.bcryptCost = cost }
        let configuration = c
        let levelName = environment["MUSIT_LOG_LEVEL"] ?? "info"
        guard let level = Logger.Level(rawValue: levelName) else {
            throw ValidationError("MUSIT_LOG_LEVEL is one of trace, debug, info, notice, warning, error, critical, not \(levelName).")
        }
        let format = logFormat ?? environment["MUSIT_LOG_FORMAT"] ?? "text"
        guard ["text", "json"].contains(format) else { throw ValidationError("--log-format is text or json, not \(format).") }
        if format == "json" {
            LoggingSystem.bootstrap { JSONLogHandler(label: $0) }
        }
        // Each log line's timestamp goes through glibc's localtime_r, which stats
        // /etc/localtime on every call while TZ is unset: a syscall per request.
        if environment["TZ"] == nil { setenv("TZ", ":/etc/localtime", 0) }
        let done = DispatchSemaphore(value: 0)
        let failure = Locked<(any Error)?>(nil)
        Task {
            do {
                var logger = Logger(label: "musit.server")
                logger.logLevel = level
                try await MusitBackend.run(configuration, logger: logger)
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

/// A value shared between a task and the thread waiting for it.
final class Locked<Value: Sendable>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func set(_ v: Value) { lock.lock(); value = v; lock.unlock() }
    func get() -> Value { lock.lock(); defer { lock.unlock() }; return value }
}
