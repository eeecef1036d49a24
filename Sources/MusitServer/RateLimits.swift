import Foundation
import Hummingbird
import Logging
import MusitAPI
import Synchronization

/// Token buckets by key (a user id): `burst` actions at once, then one per `interval`.
/// The table is bounded: past `capacity` keys, the buckets that have refilled (which hold
/// no information) are dropped, then the oldest.
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    let burst: Double
    let interval: Double
    let capacity: Int
    private let buckets = Mutex<[Int64: Bucket]>([:])

    init(burst: Int, interval: Double, capacity: Int = 10_000) {
        self.burst = Double(burst)
        self.interval = interval
        self.capacity = capacity
    }

    var count: Int { buckets.withLock { $0.count } }

    /// Takes a token for `key`; nil when one was available, else the seconds until one is.
    func take(_ key: Int64, now: Double = Date().timeIntervalSinceReferenceDate) -> Int? {
        buckets.withLock { table in
            var b = table[key] ?? Bucket(tokens: burst, updated: now)
            b.tokens = min(burst, b.tokens + (now - b.updated) / interval)
            b.updated = now
            guard b.tokens >= 1 else {
                table[key] = b
                return max(1, Int(((1 - b.tokens) * interval).rounded(.up)))
            }
            b.tokens -= 1
            table[key] = b
            if table.count > capacity { trim(&table, now: now) }
            return nil
        }
    }

    private func trim(_ table: inout [Int64: Bucket], now: Double) {
        table = table.filter { _, b in b.tokens + (now - b.updated) / interval < burst }
        if table.count > capacity {
            for (key, _) in table.sorted(by: { $0.value.updated < $1.value.updated }).prefix(table.count - capacity) {
                table.removeValue(forKey: key)
            }
        }
    }

    /// Throws 429 with Retry-After when `key` has no token left.
    func check(_ key: Int64, what: String) throws {
        if let wait = take(key) {
            throw HTTPError(.tooManyRequests, headers: [.retryAfter: String(wait)],
                            message: "Too many \(what); try again in \(wait) s")
        }
    }
}

/// Presence is "the latest state wins", so a player that sends it on every key press is
/// never refused: each update is kept at once (what `GET /users` and new polls see), but
/// it reaches friends' event logs at most once per `interval` per user. An update inside
/// the interval is held and the newest one is published when the interval ends, so
/// friends always end on the true state, and a flood costs them one event per interval.
actor PresencePublisher {
    private struct Pending {
        var info: NowPlayingInfo
        var username: String
    }

    let interval: Duration
    private let social: any SocialRepository
    private let bus: EventBus
    private let logger: Logger
    private var lastPublished: [Int64: ContinuousClock.Instant] = [:]
    private var pending: [Int64: Pending] = [:]

    init(interval: Duration = .seconds(2), social: any SocialRepository, bus: EventBus, logger: Logger) {
        self.interval = interval
        self.social = social
        self.bus = bus
        self.logger = logger
    }

    /// Publishes now when the user's interval has passed, else holds the newest update.
    func update(user: Int64, username: String, info: NowPlayingInfo) async throws {
        let now = ContinuousClock.now
        if let last = lastPublished[user], now < last + interval {
            let waiting = pending[user] != nil
            pending[user] = Pending(info: info, username: username)
            if !waiting {
                let due = last + interval
                Task { await self.flush(user: user, at: due) }
            }
            return
        }
        lastPublished[user] = now
        forget(before: now)
        try await publish(user: user, username: username, info: info)
    }

    private func flush(user: Int64, at due: ContinuousClock.Instant) async {
        try? await Task.sleep(until: due, clock: .continuous)
        guard let p = pending.removeValue(forKey: user) else { return }
        lastPublished[user] = .now
        do {
            try await publish(user: user, username: p.username, info: p.info)
        } catch {
            logger.error("presence not published", metadata: ["user": "\(user)", "error": "\(error)"])
        }
    }

    private func publish(user: Int64, username: String, info: NowPlayingInfo) async throws {
        let friends = try await social.friends(of: user).friends.map(\.id)
        await bus.announce(try await social.appendEvent(.draft(.presence, user: username, nowPlaying: info, online: true),
                                                        to: friends))
    }

    /// Users whose interval has long passed need no entry: the table stays as small as the
    /// set of users who changed presence lately.
    private func forget(before now: ContinuousClock.Instant) {
        guard lastPublished.count > 1024 else { return }
        lastPublished = lastPublished.filter { now < $0.value + interval }
    }
}
