import Foundation
import MusitRPC
import Synchronization

/// Where news of committed events goes: the gateway's `EventBus` (its held polls) or, in
/// a Social of its own, the `EventFeed` its gateways subscribe to. `PostgresEventRelay`
/// feeds either with what other instances commit.
protocol EventSink: Sendable {
    /// Events just committed, with their ids.
    func announce(_ committed: [CommittedEvent]) async
    /// Logs grew to these heads elsewhere; the events are in storage.
    func announceRemote(_ heads: [(user: Int64, seq: Int64)]) async
    /// News may have been lost: every held poll reads storage.
    func wakeAll() async
}

extension EventBus: EventSink {}

/// Social's notices for its subscribers, the gateways (`Subscribe` in social.proto).
///
/// Every change Social commits is published here after its commit, as a numbered notice
/// in a window of the latest (bounded in notices and bytes). A subscriber asks for the
/// notices after the last one it saw; it gets them in order, or waits for the next. What
/// makes this exact without a notice being stored: a subscriber either replays from the
/// window without a gap, or is told `reset` — when it names another stream (Social
/// restarted: this process's notices began after whatever it missed) or a notice that
/// left the window — and then its gateway wakes every held poll to read storage, the only
/// source of truth. A poll that reads storage before it parks and a notice that comes
/// after its read raise the bus's head either before the park (answered at once) or after
/// (woken): the same argument as for one process (`EventBus.wait`).
final class EventFeed: EventSink {
    typealias Notice = Musit_Social_V1_Notice

    /// This run's name; a subscriber from another run is reset.
    let stream = UUID().uuidString
    /// The window: at most this many notices and bytes of events.
    let windowNotices: Int
    let windowBytes: Int
    /// A change with more events (a library change to every user) is split into notices
    /// of at most this many, so no message nears the transport's limit.
    static let eventsPerNotice = 256
    /// Notices handed over at once.
    static let batch = 64

    private struct State {
        var seq: UInt64 = 0
        var window: [(notice: Notice, bytes: Int)] = []
        var start = 0
        var bytes = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
        /// Waits under way (from their id to their end), and those of them whose timer or
        /// cancellation came before they registered.
        var pending: Set<UInt64> = []
        var released: Set<UInt64> = []
    }

    private let state = Mutex(State())

    init(windowNotices: Int = 4096, windowBytes: Int = 8 << 20) {
        self.windowNotices = windowNotices
        self.windowBytes = windowBytes
    }

    func announce(_ committed: [CommittedEvent]) {
        guard !committed.isEmpty else { return }
        let encoder = JSONEncoder()
        var notices: [[Musit_Social_V1_CommittedEvent]] = []
        var current: [Musit_Social_V1_CommittedEvent] = []
        for c in committed {
            // An event that does not encode cannot be sent; its head still can.
            guard let json = try? encoder.encode(c.event) else {
                announceRemote([(c.userID, c.event.id)])
                continue
            }
            current.append(.with {
                $0.userID = c.userID
                $0.eventJson = json
            })
            if current.count == Self.eventsPerNotice {
                notices.append(current)
                current = []
            }
        }
        if !current.isEmpty { notices.append(current) }
        for events in notices {
            publish(.with { $0.events = events }, bytes: events.reduce(0) { $0 + $1.eventJson.count + 16 })
        }
    }

    func announceRemote(_ heads: [(user: Int64, seq: Int64)]) {
        for chunk in stride(from: 0, to: heads.count, by: Self.eventsPerNotice) {
            let part = heads[chunk..<min(chunk + Self.eventsPerNotice, heads.count)]
            publish(.with {
                $0.heads = part.map { head in .with {
                    $0.userID = head.user
                    $0.eventID = head.seq
                } }
            }, bytes: part.count * 16)
        }
    }

    func wakeAll() {
        publish(.with { $0.reset = true }, bytes: 0)
    }

    private func publish(_ notice: Notice, bytes: Int) {
        var notice = notice
        notice.stream = stream
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.seq += 1
            notice.seq = s.seq
            s.window.append((notice, bytes))
            s.bytes += bytes
            while s.window.count - s.start > windowNotices || (s.bytes > windowBytes && s.window.count - s.start > 1) {
                s.bytes -= s.window[s.start].bytes
                // Its events go now; the empty slot waits for the front to be dropped.
                s.window[s.start] = (Notice(), 0)
                s.start += 1
            }
            // Drop the consumed front now and then, not at every notice.
            if s.start > 1024, s.start * 2 > s.window.count {
                s.window.removeFirst(s.start)
                s.start = 0
            }
            let w = Array(s.waiters.values)
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume() }
    }

    /// What a subscriber at (`stream`, `after`) gets next: the notices after it (at most
    /// `batch`), a `reset` when they cannot be replayed, or, when there are none, the first
    /// to come within `timeout`; empty when none came (the caller sends a heartbeat) or the
    /// task was cancelled.
    func next(stream: String, after: UInt64, timeout: Duration) async -> [Notice] {
        if let ready = ready(stream: stream, after: after) { return ready }
        let id = state.withLock { s -> UInt64 in
            s.nextWaiter += 1
            s.pending.insert(s.nextWaiter)
            return s.nextWaiter
        }
        let timer = Task {
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            self.release(id)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                // Registered under the lock that publishing takes: a notice published after
                // `ready` looked is either seen here or resumes this wait.
                let now = state.withLock { s -> Bool in
                    if s.released.remove(id) != nil || Task.isCancelled || self.hasNews(s, stream: stream, after: after) {
                        return true
                    }
                    s.waiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            self.release(id)
        }
        timer.cancel()
        state.withLock {
            $0.pending.remove(id)
            $0.released.remove(id)
        }
        return ready(stream: stream, after: after) ?? []
    }

    /// Ends wait `id`: resumes it, or, when it has not registered yet, marks it so that it
    /// does not (a timer that fires first must not leave it waiting for the next notice).
    private func release(_ id: UInt64) {
        state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let c = s.waiters.removeValue(forKey: id) { return c }
            if s.pending.contains(id) { s.released.insert(id) }
            return nil
        }?.resume()
    }

    private func hasNews(_ s: State, stream: String, after: UInt64) -> Bool {
        stream != self.stream || after != s.seq
    }

    private func ready(stream: String, after: UInt64) -> [Notice]? {
        state.withLock { s -> [Notice]? in
            let first = s.window.count > s.start ? s.window[s.start].notice.seq : s.seq + 1
            // Another run, a position from the future, or notices that left the window.
            if stream != self.stream || after > s.seq || after + 1 < first {
                return [.with {
                    $0.stream = self.stream
                    $0.seq = s.seq
                    $0.reset = true
                }]
            }
            guard after < s.seq else { return nil }
            let from = s.start + Int(after + 1 - first)
            return s.window[from..<min(from + Self.batch, s.window.count)].map(\.notice)
        }
    }

    /// Subscribers waiting now (for tests and the metrics).
    var waiting: Int { state.withLock { $0.waiters.count } }
}
