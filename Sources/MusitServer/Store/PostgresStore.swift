import Foundation
import Logging
import MusitAPI
import MusitCodecs
import PostgresNIO
import Synchronization

/// Every repository on PostgreSQL through postgres-nio's pooled client: the same contracts
/// as `SQLiteStore`, for several instances over one database.
///
/// Where SQLite's single writer made things exact, PostgreSQL needs its own reasons:
/// - Event ids: `appendEvent` advances the user's `eventLog.head` with an UPDATE, which
///   takes the row lock and holds it to commit, so the writer of a user's id N+1 cannot even
///   get its id before N has committed: ids are dense and become visible in order. Writers
///   take those rows in ascending user order, so they cannot deadlock on each other.
/// - Read snapshots: READ COMMITTED gives each statement its own snapshot, so a page and
///   the log's head are read by one statement.
/// - Races the unique indexes settle (crossing friend requests, a resent message, two
///   identical uploads, two registrations of one name): the loser's transaction fails
///   with a unique violation and is run again, and then finds the winner's row.
/// - Quotas: an upload takes a transaction-scoped advisory lock on its owner first, so
///   two uploads of one user are checked one after the other.
/// - A deadlock or serialization failure PostgreSQL detects is retried, a few times.
public final class PostgresStore: Sendable {
    let client: PostgresClient
    let logger: Logger
    let runner: Task<Void, Never>
    /// Names this instance's notices, so its relay skips them (see `PostgresEventRelay`).
    let instance = String(UUID().uuidString.prefix(8))

    /// Connects to `url` (`postgres://user:password@host:port/database`, optionally with
    /// `?search_path=schema` for a schema of its own), retrying with backoff for up to
    /// `startTimeout` seconds while the database is not up, then runs the migrations.
    public init(url: String, poolSize: Int = 20, startTimeout: Double = 30, logger: Logger) async throws {
        let parsed = try DatabaseURL(url)
        var config = PostgresClient.Configuration(host: parsed.host, port: parsed.port, username: parsed.user,
                                                  password: parsed.password, database: parsed.database, tls: .disable)
        config.options.maximumConnections = max(2, poolSize)
        DatabaseMetrics.poolSize(system: "postgresql", config.options.maximumConnections)
        if let schema = parsed.schema { config.options.additionalStartupParameters = [("search_path", schema)] }
        let client = PostgresClient(configuration: config)
        self.client = client
        self.logger = logger
        runner = Task { await client.run() }
        let deadline = Date().addingTimeInterval(startTimeout)
        var delay = 0.1
        while true {
            do {
                _ = try await Self.withTimeout(seconds: 5) {
                    try await client.query("SELECT 1", logger: logger)
                }
                break
            } catch {
                if Date() > deadline {
                    runner.cancel()
                    throw Problem(status: 503, title: "Service Unavailable",
                                  detail: "PostgreSQL at \(parsed.host):\(parsed.port) did not answer in \(Int(startTimeout)) s: \(error)")
                }
                logger.warning("PostgreSQL not reachable yet; retrying", metadata: ["in": "\(delay) s", "error": "\(String(reflecting: error))"])
                try await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 2)
            }
        }
        try await migrate(schema: parsed.schema)
    }

    deinit {
        runner.cancel()
    }

    /// `body`'s result, or a `CancellationError` after `seconds`, whichever comes first.
    ///
    /// The caller is answered at the deadline even when `body` does not heed cancellation
    /// (a query on a connection whose database stopped answering, a wait in the pool): a
    /// task group would wait for its child to end, and a request would hang as long as
    /// the database is away. `body` runs in a task of its own, cancelled at the deadline and
    /// left to end when it can; its late result is dropped.
    static func withTimeout<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let race = Race<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                race.start(continuation, seconds: seconds, body)
            }
        } onCancel: {
            race.finish(.failure(CancellationError()))
        }
    }

    /// One answer to a `withTimeout` caller: the first of `body`'s result, the deadline and
    /// the caller's cancellation; the others find the continuation gone.
    private final class Race<T: Sendable>: Sendable {
        private let state = Mutex<(continuation: CheckedContinuation<T, any Error>?, work: Task<Void, Never>?, timer: Task<Void, Never>?, done: Bool)>((nil, nil, nil, false))

        func start(_ continuation: CheckedContinuation<T, any Error>, seconds: Double,
                   _ body: @escaping @Sendable () async throws -> T) {
            // The continuation first: whatever ends first from here on finds it.
            let cancelled = state.withLock { s -> Bool in
                if s.done { return true }
                s.continuation = continuation
                return false
            }
            if cancelled {
                continuation.resume(throwing: CancellationError())
                return
            }
            let work = Task {
                do { self.finish(.success(try await body())) } catch { self.finish(.failure(error)) }
            }
            let timer = Task {
                guard (try? await Task.sleep(for: .seconds(seconds))) != nil else { return }
                self.finish(.failure(CancellationError()))
            }
            // Already answered (a quick body, a cancelled caller): stop what is left.
            let answered = state.withLock { s -> Bool in
                if s.done { return true }
                (s.work, s.timer) = (work, timer)
                return false
            }
            if answered {
                work.cancel()
                timer.cancel()
            }
        }

        func finish(_ result: Result<T, any Error>) {
            let taken = state.withLock { s -> (CheckedContinuation<T, any Error>?, Task<Void, Never>?, Task<Void, Never>?) in
                if s.done { return (nil, nil, nil) }
                s.done = true
                defer { (s.continuation, s.work, s.timer) = (nil, nil, nil) }
                return (s.continuation, s.work, s.timer)
            }
            guard let continuation = taken.0 else { return }
            taken.1?.cancel()
            taken.2?.cancel()
            continuation.resume(with: result)
        }
    }

    /// A transaction; run again when PostgreSQL reports a deadlock or a serialization
    /// failure, or (when `retryUnique`) a unique violation, whose retry finds the winner.
    func write<T: Sendable>(retryUnique: Bool = false, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await Telemetry.span("postgresql transaction", kind: .client, attributes: [("db.system", "postgresql")]) {
            try await Self.writes.measure { try await transaction(retryUnique: retryUnique, body) }
        }
    }

    private func transaction<T: Sendable>(retryUnique: Bool, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                let client = self.client, logger = self.logger
                return try await Self.withTimeout(seconds: Self.operationTimeout) {
                    try await client.withTransaction(logger: logger) { conn in try await body(conn) }
                }
            } catch let wrapped {
                // What went wrong inside, not the wrapper: a caller's own error (a duplicate,
                // a quota) passes through as it was thrown.
                var error = wrapped
                if let t = wrapped as? PostgresTransactionError {
                    error = t.closureError ?? t.commitError ?? t.beginError ?? wrapped
                }
                attempt += 1
                let state = (error as? PSQLError)?.serverInfo?[.sqlState]
                let retry = state == "40P01" || state == "40001" || (retryUnique && state == "23505")
                guard retry, attempt < 5 else { throw Self.unavailable(error) }
            }
        }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await Telemetry.span("postgresql read", kind: .client, attributes: [("db.system", "postgresql")]) {
            try await Self.reads.measure { try await readConnection(body) }
        }
    }

    private static let writes = DatabaseMetrics(system: "postgresql", kind: "write")
    private static let reads = DatabaseMetrics(system: "postgresql", kind: "read")

    private func readConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            let client = self.client
            return try await Self.withTimeout(seconds: Self.operationTimeout) {
                try await client.withConnection { conn in try await body(conn) }
            }
        } catch {
            throw Self.unavailable(error)
        }
    }

    /// The pool waits for a connection as long as the database is away; a request waits
    /// this long, then gets a 503 it can retry (an idempotent one, such as a message with
    /// its client id, is safe to retry even if its commit did land).
    static let operationTimeout = 5.0

    /// A database that went away, or did not answer in time, is the server's trouble, not
    /// the client's: 503.
    static func unavailable(_ error: any Error) -> any Error {
        if error is CancellationError {
            return Problem(status: 503, title: "Service Unavailable", detail: "The database did not answer in time; try again shortly")
        }
        guard let psql = error as? PSQLError else { return error }
        if psql.serverInfo?[.sqlState] != nil { return error }
        return Problem(status: 503, title: "Service Unavailable", detail: "The database is not reachable; try again shortly")
    }

    static func isUniqueViolation(_ error: any Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
    }
}

/// `postgres://user:password@host:port/database?search_path=schema`.
struct DatabaseURL {
    var host: String
    var port: Int
    var user: String
    var password: String?
    var database: String?
    var schema: String?

    init(_ text: String) throws {
        guard let url = URLComponents(string: text), ["postgres", "postgresql"].contains(url.scheme ?? ""),
              let host = url.host, !host.isEmpty else {
            throw Problem(status: 500, title: "Bad database URL",
                          detail: "The database is postgres://user:password@host:port/database, not \(text)")
        }
        self.host = host
        port = url.port ?? 5432
        user = url.user ?? "postgres"
        password = url.password
        let path = url.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        database = path.isEmpty ? nil : path
        schema = url.queryItems?.first { $0.name == "search_path" }?.value
        if let schema, !schema.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
            throw Problem(status: 500, title: "Bad database URL", detail: "search_path is letters, digits and _, not \(schema)")
        }
    }
}
