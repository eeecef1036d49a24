import Foundation
import Logging
import ServiceLifecycle

/// Keeps the per-user event logs bounded: every `interval`, events older than `retention`
/// are dropped. A client whose cursor falls below what was dropped gets 410 with where to
/// resume and reloads its state (`LongPoll`), so nothing is lost but history it was away
/// for longer than the retention. Runs where Social's storage is written: all-in-one and
/// `--role social` (on PostgreSQL every instance may prune: it is idempotent).
final class EventPruner: Service, Sendable {
    let events: any EventRepository
    let retention: TimeInterval
    let interval: Duration
    let logger: Logger

    init(events: any EventRepository, retention: TimeInterval, interval: Duration, logger: Logger) {
        self.events = events
        self.retention = retention
        self.interval = interval
        self.logger = logger
    }

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let dropped = try await self.events.pruneEvents(before: Date().addingTimeInterval(-self.retention))
                    if dropped > 0 {
                        self.logger.info("event log pruned", metadata: ["events": "\(dropped)", "retention_s": "\(Int(self.retention))"])
                    }
                } catch is CancellationError {
                    return
                } catch {
                    self.logger.warning("event log pruning failed; trying again later", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: self.interval)
            }
        }
    }
}
