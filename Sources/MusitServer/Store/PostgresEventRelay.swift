import Foundation
import Logging
import MusitAPI
import PostgresNIO
import ServiceLifecycle

/// Carries "user U's log grew to id N" between instances over one PostgreSQL, so a poll
/// held on instance B is woken by a change committed on instance A.
///
/// The notice is a `pg_notify` in the very transaction that appends the events
/// (`PostgresStore.appendEvent`): PostgreSQL delivers it to every listening session when,
/// and only if, that transaction commits. Each instance listens on a connection of its
/// own and raises its bus's heads (`EventBus.announceRemote`), which wakes the polls behind
/// them; they read storage, the only source of truth, so the exactly-once, in-order
/// guarantee is the storage's (see `LongPoll`). A poll that registers after a notice has
/// been handled finds the raised head and reads storage at once, so none is missed.
/// Notices sent while the listening connection was down are lost: when it is back, every
/// held poll is woken to read storage, which costs a read and loses nothing.
public final class PostgresEventRelay: Service, Sendable {
    static let channel = "musit_events"
    let store: PostgresStore
    /// The gateway's bus, or the feed of a Social of its own (which tells its gateways).
    let bus: any EventSink
    /// The gateway's caches of songs and users; a service has none.
    let cache: MediaCache?
    /// The users a gateway keeps from Accounts apart, which a deletion elsewhere ends.
    let accounts: RemoteAccounts?
    let logger: Logger

    init(store: PostgresStore, bus: any EventSink, cache: MediaCache?, accounts: RemoteAccounts? = nil, logger: Logger) {
        self.store = store
        self.bus = bus
        self.cache = cache
        self.accounts = accounts
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.listen()
        }
    }

    func listen() async {
        var delay = 0.1
        while !Task.isCancelled {
            do {
                try await store.client.withConnection { conn in
                    try await conn.listen(on: Self.channel) { notifications in
                        // Notices sent before this connection listened are not coming: the
                        // held polls read storage now.
                        await self.bus.wakeAll()
                        for try await n in notifications {
                            let notice = Self.parse(n.payload, ignoring: self.store.instance)
                            // The events themselves: held polls answer from memory, as for
                            // events committed here (the notice comes at commit, like a
                            // local announcement after it).
                            if !notice.events.isEmpty {
                                await self.bus.announce(notice.events)
                                continue
                            }
                            // A song or a user gone on another instance: nothing of theirs may
                            // be served from this one's caches (rows, open files, tokens).
                            for song in notice.songs { self.cache?.forget(song: song) }
                            for user in notice.users {
                                self.cache?.forget(user: user)
                                self.accounts?.forget(user)
                            }
                            if !notice.heads.isEmpty { await self.bus.announceRemote(notice.heads) }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("lost the PostgreSQL event channel; listening again", metadata: ["in": "\(delay) s", "error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(delay))
            delay = min(delay * 2, 2)
        }
    }

    struct Notice {
        var heads: [(user: Int64, seq: Int64)] = []
        var songs: [Int64] = []
        var users: [Int64] = []
        var events: [CommittedEvent] = []
    }

    /// `instance|item,item…`, each item `user:seq` (a log grew), `s:id` (a song is gone) or
    /// `u:id` (a user is gone); or `instance|e|user:seq,…|EVENT` (the logs grew by that event,
    /// its JSON with its time, under the ids given). An instance's own notices are skipped
    /// (it knew first). An event that does not decode is taken as its heads alone.
    static func parse(_ payload: String, ignoring instance: String) -> Notice {
        var notice = Notice()
        if payload.hasPrefix(instance + "|") { return notice }
        let event = payload.split(separator: "|", maxSplits: 3)
        if event.count == 4, event[1] == "e" {
            var heads = parse(String(event[0]) + "|" + String(event[2]), ignoring: instance).heads
            if let e = try? JSONDecoder().decode(ServerEvent.self, from: Data(event[3].utf8)) {
                notice.events = heads.map { user, seq in
                    var x = e
                    x.id = seq
                    return CommittedEvent(userID: user, event: x)
                }
                heads = []
            }
            notice.heads = heads
            return notice
        }
        let parts = payload.split(separator: "|", maxSplits: 1)
        guard parts.count == 2, parts[0] != instance else { return notice }
        for item in parts[1].split(separator: ",") {
            let f = item.split(separator: ":")
            guard f.count == 2, let b = Int64(f[1]) else { continue }
            switch f[0] {
            case "s": notice.songs.append(b)
            case "u": notice.users.append(b)
            default: if let a = Int64(f[0]) { notice.heads.append((a, b)) }
            }
        }
        return notice
    }

    /// An event's notices (`instance|e|heads|EVENT`), each under the payload limit; nil when
    /// the event is too large to leave room for heads (a long message): then heads alone.
    static func eventPayloads(_ heads: [String], event: String, instance: String) -> [String]? {
        let room = 7_500 - instance.utf8.count - event.utf8.count - 4
        guard room >= 1_000 else { return nil }
        return groups(heads, room: room).map { instance + "|e|" + $0 + "|" + event }
    }

    /// The notices of `items`, each under PostgreSQL's 8,000-byte payload limit.
    static func payloads(_ items: [String], instance: String) -> [String] {
        groups(items, room: 7_500 - instance.utf8.count - 1).map { instance + "|" + $0 }
    }

    /// `items` joined by commas into as few groups as keep each within `room` bytes.
    private static func groups(_ items: [String], room: Int) -> [String] {
        var out: [String] = []
        var current = ""
        for item in items {
            if !current.isEmpty, current.utf8.count + item.utf8.count + 1 > room {
                out.append(current)
                current = ""
            }
            current += current.isEmpty ? item : "," + item
        }
        if !current.isEmpty { out.append(current) }
        return out
    }
}
