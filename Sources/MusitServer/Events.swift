import Foundation
import NIOCore
import MusitAPI
import ServiceLifecycle
import Synchronization

/// Wakes held long-polls. Each user has a version that every publish bumps; a poller reads
/// the version before it looks in storage and waits only while the version is unchanged, so
/// an event stored between the two can never be missed.
public actor EventBus: Service {
    private var versions: [Int64: UInt64] = [:]
    private var waiters: [Int64: [UInt64: CheckedContinuation<Void, Never>]] = [:]
    /// Names each wait (a counter: `UUID()` reads /dev/urandom on every call).
    private var lastWait: UInt64 = 0
    private var closed = false
    /// Releases that came before their waiter registered (a sweep or cancellation racing it).
    private var early: Set<UInt64> = []
    /// Polls between the start and the end of `wait`.
    private var active: Set<UInt64> = []
    /// When each held poll times out. One sweeper task releases them, instead of a timer
    /// task per poll that had to be made when it was held and cancelled when it was answered.
    private var deadlines: [UInt64: (user: Int64, at: ContinuousClock.Instant)] = [:]
    private var sweeper: Task<Void, Never>?
    /// How late a timeout may be answered.
    static let sweepInterval = Duration.milliseconds(100)
    /// Each user's latest events with the version that announced them, so a woken poll
    /// needs no database read. Bounded; a poll that fell behind it reads storage instead.
    private var recent: [Int64: [(version: UInt64, event: ServerEvent)]] = [:]
    static let recentLimit = 64

    public init() {}

    /// Polls held now (kept as a count: summing the table each time costs O(users)).
    public private(set) var heldPolls = 0 {
        didSet { MetricsSetup.heldPolls.record(heldPolls) }
    }

    func version(of user: Int64) -> UInt64 { versions[user] ?? 0 }

    /// Returns when `user` gets news after `version`, after `timeout` seconds, on
    /// cancellation (the client went away) or at shutdown, whichever comes first; with the
    /// events announced meanwhile when they are all still in memory (nil: read storage).
    /// Answering them here saves each woken poll a second trip through the actor.
    func wait(user: Int64, since version: UInt64, timeout: Double) async -> [ServerEvent]? {
        guard !closed, versions[user] ?? 0 == version, timeout > 0 else { return events(for: user, after: version) }
        lastWait &+= 1
        let id = lastWait
        active.insert(id)
        defer {
            active.remove(id)
            early.remove(id)
        }
        deadlines[id] = (user, .now + .milliseconds(Int(timeout * 1000)))
        startSweeper()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                if early.remove(id) != nil || closed {
                    c.resume()
                } else {
                    waiters[user, default: [:]][id] = c
                    heldPolls += 1
                }
            }
        } onCancel: {
            Task { await self.release(user: user, id: id) }
        }
        deadlines[id] = nil
        return events(for: user, after: version)
    }

    private func startSweeper() {
        guard sweeper == nil else { return }
        sweeper = Task { [weak self] in
            while true {
                try? await Task.sleep(for: Self.sweepInterval)
                guard let self, await self.sweep() else { return }
            }
        }
    }

    /// Answers the polls whose time is up; false, and the sweeper ends, when none is held.
    private func sweep() -> Bool {
        let now = ContinuousClock.now
        for (id, d) in deadlines where d.at <= now {
            deadlines[id] = nil
            release(user: d.user, id: id)
        }
        guard deadlines.isEmpty else { return true }
        sweeper = nil
        return false
    }

    private func release(user: Int64, id: UInt64) {
        if let c = waiters[user]?.removeValue(forKey: id) {
            heldPolls -= 1
            c.resume()
        } else if active.contains(id) {
            early.insert(id)
        }
        if waiters[user]?.isEmpty == true { waiters[user] = nil }
    }

    /// News for `users`: bump their versions and answer their held polls.
    public func publish(to users: [Int64]) {
        for u in users {
            versions[u, default: 0] &+= 1
            recent[u] = nil  // an announcement without its event: later polls read storage
            wake(u)
        }
    }

    /// Stored events for their users (ids from storage, one per user, in `users` order).
    func publish(_ event: ServerEvent, to users: [Int64], ids: [Int64]) {
        for (u, id) in zip(users, ids) {
            let v = (versions[u] ?? 0) &+ 1
            versions[u] = v
            var e = event
            e.id = id
            var list = recent[u] ?? []
            list.append((v, e))
            if list.count > Self.recentLimit { list.removeFirst(list.count - Self.recentLimit) }
            recent[u] = list
            wake(u)
        }
    }

    /// The events announced after `version`, when every one of them is still kept; nil otherwise.
    func events(for user: Int64, after version: UInt64) -> [ServerEvent]? {
        let current = versions[user] ?? 0
        if current == version { return [] }
        guard let list = recent[user], let first = list.first, first.version <= version &+ 1 else { return nil }
        return list.filter { $0.version > version }.map(\.event)
    }

    private func wake(_ user: Int64) {
        guard let held = waiters.removeValue(forKey: user) else { return }
        heldPolls -= held.count
        for (_, c) in held { c.resume() }
    }

    /// Answers every held poll and refuses to hold new ones.
    public func close() {
        closed = true
        for u in Array(waiters.keys) { wake(u) }
    }

    /// As a service: at graceful shutdown, answer held polls before the server stops.
    public func run() async throws {
        try? await gracefulShutdown()
        close()
    }
}

/// The JSON of the pages answered lately, one per user: the polls that one publish wakes
/// (every device and tab of a user, each holding the same cursor) share one encoding instead
/// of running the encoder once each. A page is named by its user and the ids it spans; the
/// events in that span never change, so a hit is always the same page.
final class EncodedPages: Sendable {
    private struct Entry {
        let after: Int64
        let through: Int64
        let body: ByteBuffer
    }

    private let entries = Mutex<[Int64: Entry]>([:])
    /// Users kept at most; past it the table starts over (a miss costs one encoding).
    static let limit = 4096

    /// The JSON body of `page`, the answer for `user` after `after`.
    func body(user: Int64, after: Int64, page: EventsPage) throws -> ByteBuffer {
        let through = page.events.last?.id ?? after
        if let e = entries.withLock({ $0[user] }), e.after == after, e.through == through {
            return e.body
        }
        let body = ByteBuffer(bytes: try JSONEncoder().encode(page))
        entries.withLock {
            if $0.count >= Self.limit { $0.removeAll(keepingCapacity: true) }
            $0[user] = Entry(after: after, through: through, body: body)
        }
        return body
    }
}

/// Stores events and wakes their users' polls.
struct EventPublisher: Sendable {
    let store: any SocialRepository
    let bus: EventBus

    func publish(_ event: ServerEvent, to users: [Int64]) async throws {
        guard !users.isEmpty else { return }
        let data = try JSONEncoder().encode(event)
        let ids = try await store.appendEvent(for: users, kind: event.kind, payload: data)
        var stamped = event
        stamped.createdAt = Date().ISO8601Format()
        await bus.publish(stamped, to: users, ids: ids)
    }

    static func event(_ kind: ServerEvent.Kind, user: String? = nil, message: ChatMessage? = nil,
                      nowPlaying: NowPlayingInfo? = nil, readUpTo: Int64? = nil, online: Bool? = nil) -> ServerEvent {
        ServerEvent(id: 0, kind: kind, createdAt: "", user: user, message: message, nowPlaying: nowPlaying,
                    readUpTo: readUpTo, online: online)
    }
}

/// Who is online and what they play, in memory: a poll touches it twice, which must not
/// cost a database write (or, with thousands of polls woken at once, an actor hop) each time.
/// It is ephemeral by nature (clients re-announce).
public final class PresenceTracker: Sendable {
    private let entries = Mutex<[Int64: StoredPresence]>([:])
    let window: TimeInterval

    public init(window: TimeInterval = APILimits.onlineSeconds) {
        self.window = window
    }

    func set(userID: Int64, nowPlaying: NowPlayingInfo?, seen: Date) {
        entries.withLock { $0[userID] = StoredPresence(userID: userID, nowPlaying: nowPlaying, lastSeen: seen) }
    }

    /// Marks the user seen; true when they were offline before.
    func touch(userID: Int64, seen: Date) -> Bool {
        let before = entries.withLock { e -> Date? in
            let before = e[userID]?.lastSeen
            if e[userID] == nil {
                e[userID] = StoredPresence(userID: userID, nowPlaying: nil, lastSeen: seen)
            } else {
                e[userID]?.lastSeen = seen
            }
            return before
        }
        return before.map { seen.timeIntervalSince($0) > window } ?? true
    }

    func presence(of users: [Int64]) -> [Int64: StoredPresence] {
        entries.withLock { e in
            var out: [Int64: StoredPresence] = [:]
            for u in users { out[u] = e[u] }
            return out
        }
    }

    func isOnline(_ p: StoredPresence, now: Date) -> Bool { now.timeIntervalSince(p.lastSeen) <= window }

    func listening(now: Date) -> Int {
        entries.withLock { e in
            e.values.filter { now.timeIntervalSince($0.lastSeen) <= window && $0.nowPlaying?.state == .playing }.count
        }
    }
}
