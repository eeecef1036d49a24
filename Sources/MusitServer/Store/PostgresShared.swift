import Foundation
import MusitAPI
import PostgresNIO
import Synchronization

/// The login throttle over PostgreSQL: every instance counts into one table, so the limits
/// hold for the whole deployment, not per instance.
///
/// An attempt takes transaction-scoped advisory locks on its three keys (in a fixed order,
/// so two attempts cannot deadlock), reads their recent rows and, when allowed, adds its
/// own before commit: parallel guesses on any instances are counted one after the other,
/// exactly as the in-memory throttle's actor does on one. The table stays small without a
/// cap of its own: a row is kept for the window (5 minutes) and only attempts that go on to
/// bcrypt add rows, so its size is bounded by what bcrypt lets through in the window.
extension PostgresStore: LoginThrottling {
    static let loginRules = LoginRules()
    /// The first half of the login keys' two-part advisory locks (a space of their own).
    static let loginLockSpace: Int32 = 0x6C6F67  // "log"

    func begin(account: String, address: String) async throws -> Int? {
        let k = LoginRules.keys(account: account, address: address)
        let rules = Self.loginRules
        return try await write { conn in
            let keys = [k.pair, k.address, k.user]
            for key in keys.sorted() {
                try await conn.query("SELECT pg_advisory_xact_lock(\(Self.loginLockSpace), hashtext(\(key)))", logger: self.logger)
            }
            let now = Date()
            let since = now.addingTimeInterval(-rules.window)
            // Now and then, everything expired goes (indexed by time); the keys at hand always.
            if Int.random(in: 0..<64) == 0 {
                try await conn.query("DELETE FROM loginAttempt WHERE at < \(since)", logger: self.logger)
            }
            var times: [String: [Date]] = [:]
            for try await (key, at) in try await conn.query("""
                SELECT key, at FROM loginAttempt WHERE key = ANY(\(keys)) AND at >= \(since) ORDER BY at
                """, logger: self.logger).decode((String, Date).self) {
                times[key, default: []].append(at)
            }
            if let wait = rules.wait(pair: times[k.pair] ?? [], address: times[k.address] ?? [], user: times[k.user] ?? [], now: now) {
                return wait
            }
            try await conn.query("""
                INSERT INTO loginAttempt (key, at) SELECT unnest(\(keys)), \(now)
                """, logger: self.logger)
            return nil
        }
    }

    func succeeded(account: String, address: String) async throws {
        let k = LoginRules.keys(account: account, address: address)
        try await write { conn in
            try await conn.query("DELETE FROM loginAttempt WHERE key = ANY(\([k.pair, k.user]))", logger: self.logger)
            try await conn.query("""
                DELETE FROM loginAttempt WHERE ctid = (SELECT ctid FROM loginAttempt WHERE key = \(k.address) ORDER BY at DESC LIMIT 1)
                """, logger: self.logger)
        }
    }
}

/// Presence over PostgreSQL: the `presence` table is what every instance reads, so friends'
/// lists, listeners now and the "came online" event agree whichever instance answers.
///
/// Updates from a player (`set`) are written at once. Polls only say "still here", twice
/// each, which must not cost a write each time: an instance writes a user's `lastSeen` when
/// what the table holds is older than `refresh` (a sixth of the online window), so the
/// table is at most that far behind while the user stays online on any instance, and a
/// user is never shown offline while polling. The table is the only state; what an
/// instance remembers is when it last wrote, per user it serves, forgotten after a window.
final class PostgresPresence: PresenceRepository {
    let store: PostgresStore
    let window: TimeInterval
    let refresh: TimeInterval
    private let written = Mutex<[Int64: Date]>([:])

    init(store: PostgresStore, window: TimeInterval) {
        self.store = store
        self.window = window
        refresh = window / 6
    }

    private func encode(_ info: NowPlayingInfo?) throws -> String? {
        try info.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
    }

    private static func decode(_ text: String?) -> NowPlayingInfo? {
        text.flatMap { try? JSONDecoder().decode(NowPlayingInfo.self, from: Data($0.utf8)) }
    }

    private func wrote(_ user: Int64, _ seen: Date) {
        let window = self.window
        written.withLock { w in
            w[user] = seen
            if w.count > 4096 { w = w.filter { seen.timeIntervalSince($0.value) < window } }
        }
    }

    func set(userID: Int64, nowPlaying: NowPlayingInfo?, seen: Date) async throws {
        let text = try encode(nowPlaying)
        try await store.write { conn in
            try await conn.query("""
                INSERT INTO presence (userID, nowPlaying, lastSeen) VALUES (\(userID), \(text), \(seen))
                ON CONFLICT (userID) DO UPDATE SET nowPlaying = EXCLUDED.nowPlaying,
                  lastSeen = GREATEST(presence.lastSeen, EXCLUDED.lastSeen)
                """, logger: self.store.logger)
        }
        wrote(userID, seen)
    }

    func touch(userID: Int64, seen: Date) async throws -> Bool {
        // The write is claimed before it is made: thousands of polls of one user woken at
        // once find the claim and go on, instead of queueing thousands of writes for the
        // pool (which held the last answers of a 10,000-poll fan-out back by 400 ms).
        let refresh = self.refresh
        let claimed = written.withLock { w -> Bool in
            if let last = w[userID], seen.timeIntervalSince(last) < refresh { return false }
            w[userID] = seen
            return true
        }
        guard claimed else { return false }
        do {
            return try await write(userID: userID, seen: seen)
        } catch {
            written.withLock { w in if w[userID] == seen { w[userID] = nil } }
            throw error
        }
    }

    private func write(userID: Int64, seen: Date) async throws -> Bool {
        let window = self.window
        // The row locked, its time read, then moved on: of two instances touching at once,
        // the second sees the first's time, so one "came online" event is sent, not two.
        let before = try await store.write { conn -> Date? in
            var before: Date?
            for try await t in try await conn.query("SELECT lastSeen FROM presence WHERE userID = \(userID) FOR UPDATE",
                                                    logger: self.store.logger).decode(Date.self) { before = t }
            try await conn.query("""
                INSERT INTO presence (userID, nowPlaying, lastSeen) VALUES (\(userID), NULL, \(seen))
                ON CONFLICT (userID) DO UPDATE SET lastSeen = GREATEST(presence.lastSeen, EXCLUDED.lastSeen)
                """, logger: self.store.logger)
            return before
        }
        return before.map { seen.timeIntervalSince($0) > window } ?? true
    }

    func presence(of users: [Int64]) async throws -> [Int64: StoredPresence] {
        guard !users.isEmpty else { return [:] }
        return try await store.read { conn in
            var out: [Int64: StoredPresence] = [:]
            for try await (id, text, seen) in try await conn.query("""
                SELECT userID, nowPlaying, lastSeen FROM presence WHERE userID = ANY(\(users))
                """, logger: self.store.logger).decode((Int64, String?, Date).self) {
                out[id] = StoredPresence(userID: id, nowPlaying: Self.decode(text), lastSeen: seen)
            }
            return out
        }
    }

    func listening(now: Date) async throws -> Int {
        let since = now.addingTimeInterval(-window)
        return try await store.read { conn in
            var n = 0
            for try await text in try await conn.query("""
                SELECT nowPlaying FROM presence WHERE lastSeen >= \(since) AND nowPlaying IS NOT NULL
                """, logger: self.store.logger).decode(String.self) where Self.decode(text)?.state == .playing {
                n += 1
            }
            return n
        }
    }

    func remove(userID: Int64) async {
        // The row goes with the user (ON DELETE CASCADE).
        _ = written.withLock { $0.removeValue(forKey: userID) }
    }

    func publish(user: Int64, username: String, to friends: [Int64], via social: any SocialRepository) async throws -> [CommittedEvent] {
        // The presence row is locked while the event is appended: an update on another
        // instance waits for this commit and then publishes after it, or committed before
        // and is what this reads. Either way the last event carries the newest state.
        try await store.write { conn in
            var text: String?
            for try await t in try await conn.query("SELECT nowPlaying FROM presence WHERE userID = \(user) FOR UPDATE",
                                                    logger: self.store.logger).decode(String?.self) { text = t }
            return try await self.store.appendEvent(conn, .draft(.presence, user: username, nowPlaying: Self.decode(text), online: true),
                                                    to: friends)
        }
    }
}

/// Statements every repository on PostgreSQL uses.
extension PostgresStore {
    func int64s(_ conn: PostgresConnection, _ query: PostgresQuery) async throws -> [Int64] {
        var out: [Int64] = []
        for try await v in try await conn.query(query, logger: logger).decode(Int64.self) { out.append(v) }
        return out
    }

    func rowCount(_ conn: PostgresConnection, _ query: PostgresQuery) async throws -> Int {
        // "RETURNING 1" rows stand for the rows a statement changed.
        var n = 0
        for try await _ in try await conn.query(query, logger: logger) { n += 1 }
        return n
    }

    /// Tells every instance at commit, or never (see `PostgresEventRelay`).
    func notify(_ conn: PostgresConnection, _ items: [String]) async throws {
        for payload in PostgresEventRelay.payloads(items, instance: instance) {
            try await conn.query("SELECT pg_notify(\(PostgresEventRelay.channel), \(payload))", logger: logger)
        }
    }
}
