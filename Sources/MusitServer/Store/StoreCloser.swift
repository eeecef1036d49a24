import Logging
import NIOPosix
import ServiceLifecycle

/// A store that lets go of its database when the process stops.
public protocol ClosableStore: Sendable {
    /// Finishes with the database: SQLite checkpoints its write-ahead log into the file and
    /// removes it; PostgreSQL's connections are closed. Calls after it fail.
    func close() async throws
}

/// Closes the store when the service group shuts down. Listed before everything that reads
/// or writes the store, it stops after them: the database is closed, its files complete, by
/// the time the group's `run` returns, not whenever the last reference happens to go (a
/// backup taken after a clean stop then copies files that no longer change under it).
struct StoreCloser: Service {
    let store: any ClosableStore
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        do {
            try await store.close()
        } catch {
            logger.error("the database did not close", metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}

extension SQLiteStore: ClosableStore {
    public func close() async throws {
        // Readers first: GRDB's `close()` shuts the writer before them (groue/GRDB.swift#739),
        // and the last connection to close, a read-only one, can neither checkpoint nor
        // remove the log. With the readers gone the writer is the last one and does both.
        // It checkpoints and so writes: on the thread pool, not the cooperative one.
        let pool = self.pool
        try await NIOThreadPool.singleton.runIfActive {
            pool.releaseMemory()
            try pool.close()
        }
    }
}

extension PostgresStore: ClosableStore {
    public func close() async {
        runner.cancel()
        _ = await runner.value
    }
}
