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
/// never refused: each update is kept at once (what `GET /users` and new polls see). What
/// reaches friends' event logs is limited per user by a token bucket: `burst` updates go
/// out at once (a track change, a pause: friends see it within the second), then one per
/// `interval`. An update with no token left is held, the newest replacing older ones, and
/// published when the next token comes, so friends always end on the true state and a
/// flood costs them `burst` events plus one per interval.
actor PresencePublisher {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
        /// Who has an update held for want of a token (its flush is scheduled); what is
        /// published then is the state kept at that moment, the newest.
        var held: String?
    }

    let interval: Duration
    let burst: Int
    private let social: any SocialRepository
    private let presence: any PresenceRepository
    private let bus: EventBus
    private let logger: Logger
    private var buckets: [Int64: Bucket] = [:]

    init(interval: Duration = .seconds(2), burst: Int = 5, social: any SocialRepository, presence: any PresenceRepository,
         bus: EventBus, logger: Logger) {
        self.interval = interval
        self.burst = burst
        self.social = social
        self.presence = presence
        self.bus = bus
        self.logger = logger
    }

    private func refill(_ b: inout Bucket, now: ContinuousClock.Instant) {
        b.tokens = min(Double(burst), b.tokens + (now - b.updated) / interval)
        b.updated = now
    }

    /// Publishes now when the user has a token, else holds the newest update.
    func update(user: Int64, username: String) async throws {
        let now = ContinuousClock.now
        var b = buckets[user] ?? Bucket(tokens: Double(burst), updated: now)
        refill(&b, now: now)
        if b.held == nil, b.tokens >= 1 {
            b.tokens -= 1
            buckets[user] = b
            forget(now: now)
            try await publish(user: user, username: username)
            return
        }
        let scheduled = b.held != nil
        b.held = username
        buckets[user] = b
        if !scheduled {
            let due = now + interval * (1 - b.tokens)
            Task { await self.flush(user: user, at: due) }
        }
    }

    private func flush(user: Int64, at due: ContinuousClock.Instant) async {
        try? await Task.sleep(until: due, clock: .continuous)
        guard var b = buckets[user], let username = b.held else { return }
        refill(&b, now: .now)
        b.tokens = max(0, b.tokens - 1)
        b.held = nil
        buckets[user] = b
        do {
            try await publish(user: user, username: username)
        } catch {
            logger.error("presence not published", metadata: ["user": "\(user)", "error": "\(error)"])
        }
    }

    /// Publishes the state as kept now: on several instances a newer update may have
    /// reached another one (see `PresenceRepository.publish`).
    private func publish(user: Int64, username: String) async throws {
        let friends = try await social.friends(of: user).friends
        await bus.announce(try await presence.publish(user: user, username: username, to: friends, via: social))
    }

    /// A full bucket with nothing held carries no information: the table stays as small as
    /// the set of users who changed presence lately.
    private func forget(now: ContinuousClock.Instant) {
        guard buckets.count > 1024 else { return }
        buckets = buckets.filter { _, b in
            b.held != nil || b.tokens + (now - b.updated) / interval < Double(burst)
        }
    }
}
