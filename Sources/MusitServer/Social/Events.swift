import Foundation
import NIOCore
import MusitAPI
import ServiceLifecycle
import Synchronization

/// A poll held on an event loop with no task (`PollHandler`): the bus hands it its answer
/// once, on its own loop, through `EventBus.deliver`.
protocol ParkedPoll: AnyObject, Sendable {
    var eventLoop: any EventLoop { get }
    /// Called on `eventLoop`, once per park, with what the poll `id` learned; `sentAt` is
    /// when the bus handed it over (`DispatchTime` nanoseconds), for the delivery metric.
    func wake(id: UInt64, _ wake: EventBus.Wake, sentAt: UInt64)
}

/// Wakes held long-polls when their user's log grows.
///
/// The bus never decides what a poll answers on its own: storage does (see `LongPoll`). It
/// knows, per user, the highest event id announced after its commit (`heads`), and keeps the
/// latest announced events so a woken poll can answer without a database read, but only
/// when it holds every id from the poll's cursor up to that head: announcements may arrive
/// out of id order (two writers finish, then race to the actor), and a run with a hole in it
/// is never answered from here; such a poll reads storage, where ids are visible in order.
///
/// A poll is held in one of two ways: a task suspended in `wait` (the route's path), or a
/// `ParkedPoll` on an event loop (`park`), which costs no task and no async frame. Polls are
/// woken in the order they were held, and a wake of parked polls is one `execute` per event
/// loop, whatever their number.
public actor EventBus: Service {
    /// What a held poll learned.
    enum Wake: Equatable, Sendable {
        /// Nothing after its cursor was announced (time up, client gone, or shutdown).
        case nothing
        /// Every event after its cursor through the newest announced, gapless, in id order.
        case events([ServerEvent])
        /// Something after its cursor was committed; read it from storage.
        case readStorage
        /// The poll's account was deleted while it was held.
        case accountDeleted
    }

    private enum Holder {
        case task(CheckedContinuation<Void, Never>)
        case parked(any ParkedPoll, limit: Int)
    }

    private struct Waiter {
        let id: UInt64
        let cursor: Int64
        let holder: Holder
    }

    /// The highest id announced per user.
    private var heads: [Int64: Int64] = [:]
    /// Each user's latest announced events, ascending by id (holes possible). Bounded.
    private var recent: [Int64: [ServerEvent]] = [:]
    static let recentLimit = 64
    /// Users whose latest events are kept; past it the table starts over (a miss costs a read).
    static let recentUsersLimit = 8192
    /// Each user's held polls in the order they were held (ids ascend): a wake answers them
    /// in that order, not in a hash table's.
    private var waiters: [Int64: [Waiter]] = [:]
    /// Names each wait (a counter: `UUID()` reads /dev/urandom on every call). Outside the
    /// actor, so a poll can name its wait before it starts and cancel it from anywhere.
    private nonisolated let waitIDs = WaitIDs()
    private var closed = false
    /// Releases that came before their waiter registered (a sweep or cancellation racing it).
    private var early: Set<UInt64> = []
    /// Polls between the start and the end of `wait`.
    private var active: Set<UInt64> = []
    /// Waits in `wait` released because their account was deleted.
    private var deletedWaits: Set<UInt64> = []
    /// When each held poll times out. One sweeper task releases them, instead of a timer
    /// per poll that had to be made when it was held and cancelled when it was answered.
    private var deadlines: [UInt64: (user: Int64, at: ContinuousClock.Instant)] = [:]
    private var sweeper: Task<Void, Never>?
    /// How late a timeout may be answered.
    static let sweepInterval = Duration.milliseconds(100)

    public init() {}

    /// Polls held now (kept as a count: summing the table each time costs O(users)).
    public private(set) var heldPolls = 0 {
        didSet { MetricsSetup.heldPolls.set(to: Double(heldPolls)) }
    }

    /// Returns when an event after `cursor` is announced for `user`, after `timeout` seconds,
    /// on cancellation (the client went away) or at shutdown, whichever comes first.
    /// A poll must read storage before it waits: an event committed before the wait began
    /// has been announced already or is announced later, and either way its id is above
    /// the cursor, so it ends the wait (or prevents it).
    /// `id` names the wait (from `makeWaitID`) so `cancel` can end it; `gone` is the client's
    /// connection, checked as the wait registers (a client that left just before is not held).
    func wait(id: UInt64, user: Int64, after cursor: Int64, timeout: Double, limit: Int, epoch: UInt64,
              gone: ClientDisconnectSignal? = nil) async -> Wake {
        if epoch != resetEpoch { return .readStorage }
        guard !closed, heads[user] ?? 0 <= cursor, timeout > 0, gone?.isGone != true else {
            return answer(user, after: cursor, limit: limit)
        }
        active.insert(id)
        defer {
            active.remove(id)
            early.remove(id)
        }
        deadlines[id] = (user, .now + .milliseconds(Int(timeout * 1000)))
        startSweeper()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                if early.remove(id) != nil || closed || gone?.isGone == true {
                    c.resume()
                } else {
                    hold(user, Waiter(id: id, cursor: cursor, holder: .task(c)))
                }
            }
        } onCancel: {
            Task { await self.release(user: user, id: id) }
        }
        deadlines[id] = nil
        if deletedWaits.remove(id) != nil { return .accountDeleted }
        return answer(user, after: cursor, limit: limit)
    }

    /// Holds `poll` (wait `id`) until an event after `cursor` is announced for `user`, its
    /// `timeout` passes or the bus closes; then `poll.wake` gets the answer on its loop.
    /// Returns nil when held, or the answer at once when there is no reason to hold it. The
    /// caller read storage first (see `wait`).
    func park(_ poll: any ParkedPoll, id: UInt64, user: Int64, after cursor: Int64, timeout: Double, limit: Int,
              epoch: UInt64) -> Wake? {
        if epoch != resetEpoch { return .readStorage }
        guard !closed, heads[user] ?? 0 <= cursor, timeout > 0 else {
            return answer(user, after: cursor, limit: limit)
        }
        deadlines[id] = (user, .now + .milliseconds(Int(timeout * 1000)))
        startSweeper()
        hold(user, Waiter(id: id, cursor: cursor, holder: .parked(poll, limit: limit)))
        return nil
    }

    private func hold(_ user: Int64, _ waiter: Waiter) {
        waiters[user, default: []].append(waiter)
        heldPolls += 1
    }

    nonisolated func makeWaitID() -> UInt64 { waitIDs.next() }

    /// Counts `wakeAll`s. A reset says "something was committed that this bus was not told
    /// of", and it releases only the polls held at that moment: a poll that read storage
    /// before the reset and holds after it would miss what the reset stood for. So a poll
    /// takes the epoch before its storage read and hands it to `wait` or `park`, which send
    /// it to storage again when a reset came in between.
    private nonisolated let resets = Atomic<UInt64>(0)
    nonisolated var resetEpoch: UInt64 { resets.load(ordering: .acquiring) }

    /// Ends wait `id` of `user` now (its client went away); harmless when it already ended.
    /// A parked poll released this way is not woken: its connection is gone.
    nonisolated func cancel(user: Int64, id: UInt64) {
        Task { await self.release(user: user, id: id, wakeParked: false) }
    }

    /// The events after `cursor` when this bus holds all of them, gapless, through the head.
    private func answer(_ user: Int64, after cursor: Int64, limit: Int) -> Wake {
        let head = heads[user] ?? 0
        guard head > cursor else { return .nothing }
        guard let list = recent[user], let start = list.firstIndex(where: { $0.id > cursor }), list[start].id == cursor + 1 else {
            return .readStorage
        }
        var out: [ServerEvent] = []
        var next = cursor + 1
        for e in list[start...] {
            guard e.id == next else { return .readStorage }
            out.append(e)
            next += 1
            if out.count == limit { return .events(out) }
        }
        return next > head ? .events(out) : .readStorage
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
        var wakes = ParkedWakes()
        for (id, d) in deadlines where d.at <= now {
            deadlines[id] = nil
            release(user: d.user, id: id, into: &wakes)
        }
        wakes.send()
        guard deadlines.isEmpty else { return true }
        sweeper = nil
        return false
    }

    private func release(user: Int64, id: UInt64, wakeParked: Bool = true) {
        var wakes = ParkedWakes()
        release(user: user, id: id, into: &wakes, wakeParked: wakeParked)
        wakes.send()
    }

    private func release(user: Int64, id: UInt64, into wakes: inout ParkedWakes, wakeParked: Bool = true) {
        if let at = waiters[user]?.firstIndex(where: { $0.id == id }), let w = waiters[user]?.remove(at: at) {
            heldPolls -= 1
            deadlines[id] = nil
            switch w.holder {
            case .task(let c): c.resume()
            case .parked(let poll, let limit):
                if wakeParked { wakes.add(poll, id: id, answer(user, after: w.cursor, limit: limit)) }
            }
        } else if active.contains(id) {
            early.insert(id)
        }
        if waiters[user]?.isEmpty == true { waiters[user] = nil }
    }

    /// Events just committed: raise their users' heads, keep them, and wake the polls
    /// whose cursor is below the new head. Call after the transaction commits, never before.
    func announce(_ committed: [CommittedEvent]) {
        var wakes = ParkedWakes()
        for c in committed {
            let user = c.userID
            let id = c.event.id
            heads[user] = max(heads[user] ?? 0, id)
            if recent[user] == nil, recent.count >= Self.recentUsersLimit { recent.removeAll(keepingCapacity: true) }
            var list = recent[user] ?? []
            // Usually the newest: insert from the end.
            var at = list.endIndex
            while at > list.startIndex, list[at - 1].id > id { at -= 1 }
            if at == list.startIndex || list[at - 1].id != id { list.insert(c.event, at: at) }
            if list.count > Self.recentLimit { list.removeFirst(list.count - Self.recentLimit) }
            recent[user] = list
            wake(user, into: &wakes)
        }
        wakes.send()
    }

    /// Another instance committed events: raise the heads, so polls behind them, held or
    /// about to be, read storage (this bus holds none of those events).
    func announceRemote(_ heads: [(user: Int64, seq: Int64)]) {
        var wakes = ParkedWakes()
        for (user, seq) in heads where seq > self.heads[user] ?? 0 {
            self.heads[user] = seq
            wake(user, into: &wakes)
        }
        wakes.send()
    }

    /// `user`'s account is gone: its held polls are answered so at once, and what the bus
    /// kept of it is dropped.
    func remove(user: Int64) {
        heads[user] = nil
        recent[user] = nil
        var wakes = ParkedWakes()
        for w in waiters.removeValue(forKey: user) ?? [] {
            heldPolls -= 1
            deadlines[w.id] = nil
            switch w.holder {
            case .task(let c):
                deletedWaits.insert(w.id)
                c.resume()
            case .parked(let poll, _): wakes.add(poll, id: w.id, .accountDeleted)
            }
        }
        wakes.send()
    }

    /// Every held poll reads storage now (after notices from other instances may have been lost).
    func wakeAll() {
        resets.add(1, ordering: .releasing)
        releaseAll { _ in .readStorage }
    }

    private func wake(_ user: Int64, into wakes: inout ParkedWakes) {
        guard let held = waiters[user] else { return }
        let head = heads[user] ?? 0
        // Usually every waiter of the user is behind the new head: hand them all over at once.
        var kept: [Waiter] = []
        var woken = 0
        for w in held {
            guard w.cursor < head else {
                kept.append(w)
                continue
            }
            deadlines[w.id] = nil
            switch w.holder {
            case .task(let c): c.resume()
            case .parked(let poll, let limit): wakes.add(poll, id: w.id, answer(user, after: w.cursor, limit: limit))
            }
            woken += 1
        }
        waiters[user] = kept.isEmpty ? nil : kept
        heldPolls -= woken  // one gauge update, not one per poll
    }

    /// Releases every held poll; a parked one gets `parkedAnswer` of its user and cursor.
    private func releaseAll(_ parkedAnswer: (_ user: Int64, _ cursor: Int64, _ limit: Int) -> Wake) {
        var wakes = ParkedWakes()
        for (user, held) in waiters.sorted(by: { $0.key < $1.key }) {
            for w in held {
                deadlines[w.id] = nil
                switch w.holder {
                case .task(let c): c.resume()
                case .parked(let poll, let limit): wakes.add(poll, id: w.id, parkedAnswer(user, w.cursor, limit))
                }
            }
            heldPolls -= held.count
        }
        waiters.removeAll()
        wakes.send()
    }

    private func releaseAll(_ parkedAnswer: (Int64) -> Wake) {
        releaseAll { user, _, _ in parkedAnswer(user) }
    }

    /// Answers every held poll and refuses to hold new ones. A parked poll gets what this bus
    /// holds for it, or an empty page: at shutdown it does not read storage (it resumes from
    /// its cursor on another instance, or after the restart, and loses nothing).
    public func close() {
        closed = true
        releaseAll { user, cursor, limit in
            let wake = answer(user, after: cursor, limit: limit)
            return wake == .readStorage ? .nothing : wake
        }
    }

    /// What tells this bus of events committed by other instances (`PostgresEventRelay`).
    private var relay: (any Service)?

    func attach(_ relay: any Service) {
        self.relay = relay
    }

    /// As a service: runs the relay, if any; at graceful shutdown, answers held polls
    /// before the server stops.
    public func run() async throws {
        let relay = self.relay
        let listening = Task { try? await relay?.run() }
        try? await gracefulShutdown()
        close()
        listening.cancel()
        _ = await listening.value
    }
}

/// Parked polls woken by one step of the bus, grouped by event loop, so that each loop gets
/// one `execute` for all of its polls, in the order they were woken.
private struct ParkedWakes {
    private var loops: [ObjectIdentifier: (loop: any EventLoop, polls: [(poll: any ParkedPoll, id: UInt64, wake: EventBus.Wake)])] = [:]
    private var order: [ObjectIdentifier] = []

    mutating func add(_ poll: any ParkedPoll, id: UInt64, _ wake: EventBus.Wake) {
        let key = ObjectIdentifier(poll.eventLoop)
        if loops[key] == nil {
            loops[key] = (poll.eventLoop, [])
            order.append(key)
        }
        loops[key]!.polls.append((poll, id, wake))
    }

    func send() {
        guard !order.isEmpty else { return }
        let sentAt = DispatchTime.now().uptimeNanoseconds
        for key in order {
            guard let (loop, polls) = loops[key] else { continue }
            loop.execute {
                for p in polls { p.poll.wake(id: p.id, p.wake, sentAt: sentAt) }
            }
        }
    }
}

/// The long-poll: a page of `user`'s events after a cursor, at once when there are any,
/// else when one is committed or the time is up.
///
/// Storage is the only source of truth for what exists; the bus only says when to look.
/// 1. Read the events after the cursor, with the log's head, in one snapshot. A cursor
///    above the head (a client of a restored backup, or a forged cursor) or below what
///    pruning dropped is 410 with where to resume: waiting there would be silent forever.
/// 2. None: wait on the bus. An event committed after the snapshot is announced with an id
///    above the cursor, so it wakes the wait or, if announced first, prevents it.
/// 3. Woken: the bus answers the gapless run it holds, or storage is read again. Either
///    way the page starts right after the cursor and has no holes, because a user's ids
///    become visible in order (see `SQLiteStore.appendEvent`): no id is skipped, none twice.
struct LongPoll: Sendable {
    let store: any EventRepository
    let bus: EventBus
    static let pageLimit = 500

    /// `disconnect`: the connection's signal; a held wait ends when the client goes away.
    func page(user: Int64, after cursor: Int64, timeout: Int, disconnect: ClientDisconnectSignal? = nil) async throws -> EventsPage {
        let epoch = bus.resetEpoch
        var events = try await current(user: user, after: cursor)
        if events.isEmpty, timeout > 0 {
            let bus = bus
            let id = bus.makeWaitID()
            // No task per held poll: the connection's signal ends the wait directly.
            let callback = disconnect?.onDisconnect { bus.cancel(user: user, id: id) }
            defer { disconnect?.remove(callback) }
            events = try await woken(user: user, after: cursor,
                                     await bus.wait(id: id, user: user, after: cursor, timeout: Double(timeout),
                                                    limit: Self.pageLimit, epoch: epoch, gone: disconnect))
        }
        return EventsPage(events: events, cursor: events.last?.id ?? cursor)
    }

    /// Step 1: the events after `cursor` in storage now; 410 for a cursor out of the log.
    func current(user: Int64, after cursor: Int64) async throws -> [ServerEvent] {
        let slice = try await store.events(for: user, after: cursor, limit: Self.pageLimit)
        if cursor < slice.prunedThrough {
            throw Problem.resync("Events after \(cursor) are no longer kept; reload state and resume from \(slice.prunedThrough)",
                                 resumeFrom: slice.prunedThrough)
        }
        if cursor > slice.head {
            throw Problem.resync("Cursor \(cursor) is past the newest event (\(slice.head)); reload state and resume from \(slice.head)",
                                 resumeFrom: slice.head)
        }
        return slice.events
    }

    /// Step 3: what a woken poll answers.
    func woken(user: Int64, after cursor: Int64, _ wake: EventBus.Wake) async throws -> [ServerEvent] {
        switch wake {
        case .nothing: return []
        case .events(let fresh): return fresh
        case .readStorage: return try await store.events(for: user, after: cursor, limit: Self.pageLimit).events
        case .accountDeleted: throw Problem.unauthorized("No such user")
        }
    }
}

extension Problem {
    /// 410: the client must reload its state and resume from `resumeFrom`.
    static func resync(_ detail: String, resumeFrom: Int64) -> Problem {
        Problem(status: 410, title: "Gone", detail: detail, type: "https://musit.invalid/problems/resync", resumeFrom: resumeFrom)
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
    /// A page's JSON stays under this many bytes: 500 events of long messages would make
    /// megabytes. A page always holds at least one event, so the cursor always moves; the
    /// rest follow on the next poll.
    static let maxBytes = 1 << 20

    /// The page's JSON, trimmed from the end to `maxBytes`, its cursor moved back to match.
    static func encode(_ page: EventsPage) throws -> Data {
        var page = page
        var data = try JSONEncoder().encode(page)
        while data.count > maxBytes, page.events.count > 1 {
            let keep = max(1, min(page.events.count - 1, page.events.count * maxBytes / data.count))
            page = EventsPage(events: Array(page.events.prefix(keep)), cursor: page.events[keep - 1].id)
            data = try JSONEncoder().encode(page)
        }
        return data
    }

    /// The JSON body of `page`, the answer for `user` after `after`.
    func body(user: Int64, after: Int64, page: EventsPage) throws -> ByteBuffer {
        if !page.events.isEmpty { MetricsSetup.eventsDelivered.increment(by: Int64(page.events.count)) }
        let through = page.events.last?.id ?? after
        if let e = entries.withLock({ $0[user] }), e.after == after, e.through == through {
            return e.body
        }
        let body = ByteBuffer(bytes: try Self.encode(page))
        entries.withLock {
            if $0.count >= Self.limit { $0.removeAll(keepingCapacity: true) }
            $0[user] = Entry(after: after, through: through, body: body)
        }
        return body
    }
}

/// Who is online and what they play. Every instance must answer the same (friends' list,
/// listeners now, the "came online" event), so it is kept where the instances meet: in
/// memory for one instance (`PresenceTracker`), in the database over PostgreSQL
/// (`PostgresPresence`).
protocol PresenceRepository: Sendable {
    /// A client that has not polled for this long is offline.
    var window: TimeInterval { get }
    func set(userID: Int64, nowPlaying: NowPlayingInfo?, seen: Date) async throws
    /// Marks the user seen; true when they were offline before.
    func touch(userID: Int64, seen: Date) async throws -> Bool
    func presence(of users: [Int64]) async throws -> [Int64: StoredPresence]
    /// Users online whose player is playing.
    func listening(now: Date) async throws -> Int
    /// Forgets a deleted user.
    func remove(userID: Int64) async
    /// Appends to `friends`' logs a presence event with the user's state as it is kept now,
    /// so that when publications race, the last event friends get carries the newest state.
    func publish(user: Int64, username: String, to friends: [Int64], via social: any SocialRepository) async throws -> [CommittedEvent]
}

/// Presence in memory, for one instance: a poll touches it twice, which must not cost a
/// database write (or, with thousands of polls woken at once, an actor hop) each time.
/// It is ephemeral by nature (clients re-announce).
public final class PresenceTracker: PresenceRepository, Sendable {
    private let entries = Mutex<[Int64: StoredPresence]>([:])
    let window: TimeInterval

    public init(window: TimeInterval = APILimits.onlineSeconds) {
        self.window = window
    }

    func set(userID: Int64, nowPlaying: NowPlayingInfo?, seen: Date) {
        entries.withLock { $0[userID] = StoredPresence(userID: userID, nowPlaying: nowPlaying, lastSeen: seen) }
    }

    func remove(userID: Int64) {
        entries.withLock { _ = $0.removeValue(forKey: userID) }
    }

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

    func listening(now: Date) -> Int {
        entries.withLock { e in
            e.values.filter { now.timeIntervalSince($0.lastSeen) <= window && $0.nowPlaying?.state == .playing }.count
        }
    }

    func publish(user: Int64, username: String, to friends: [Int64], via social: any SocialRepository) async throws -> [CommittedEvent] {
        let info = entries.withLock { $0[user]?.nowPlaying }
        return try await social.appendEvent(.draft(.presence, user: username, nowPlaying: info, online: true), to: friends)
    }
}

extension ServerEvent {
    /// An event to commit: its id and time are given when it is written.
    static func draft(_ kind: Kind, user: String? = nil, message: ChatMessage? = nil, nowPlaying: NowPlayingInfo? = nil,
                      readUpTo: Int64? = nil, online: Bool? = nil) -> ServerEvent {
        ServerEvent(id: 0, kind: kind, createdAt: "", user: user, message: message, nowPlaying: nowPlaying,
                    readUpTo: readUpTo, online: online)
    }
}

/// Wait names, handed out without the actor.
final class WaitIDs: Sendable {
    private let last = Atomic<UInt64>(0)

    func next() -> UInt64 { last.add(1, ordering: .relaxed).newValue }
}
