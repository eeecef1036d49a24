import Foundation
import MusitAPI
import MusitCodecs
import PostgresNIO

/// The event logs' statements inside a caller's transaction.
extension PostgresStore {
    /// Appends `event` to the logs of `users` inside the caller's transaction; ascending ids.
    func appendEvent(_ conn: PostgresConnection, _ event: ServerEvent, to users: [Int64]) async throws -> [CommittedEvent] {
        guard !users.isEmpty else { return [] }
        let now = Date()
        let created = now.ISO8601Format()
        let payload = String(decoding: try event.storedPayload(), as: UTF8.self)
        let kind = event.kind.rawValue
        // Three statements, whatever the number of users (an event for everyone is not two
        // per user). The first locks the user rows in ascending id order (its row locks are
        // taken above the sort), so writers cannot deadlock on each other; the UPDATE then
        // moves heads it already holds. The lock is the UPDATE's own, FOR NO KEY UPDATE:
        // FOR UPDATE would also block the key-share locks that inserting a message or a
        // log row takes on its user, and under the hammer that deadlocked thousands of times.
        let ids = Set(users).sorted()
        try await conn.query("SELECT userID FROM eventLog WHERE userID = ANY(\(ids)) ORDER BY userID FOR NO KEY UPDATE", logger: logger)
        var heads: [(Int64, Int64)] = []
        for try await r in try await conn.query("""
            UPDATE eventLog SET head = head + 1 WHERE userID = ANY(\(ids)) RETURNING userID, head
            """, logger: logger).decode((Int64, Int64).self) { heads.append(r) }
        heads.sort { $0.0 < $1.0 }
        try await conn.query("""
            INSERT INTO userEvent (userID, seq, kind, payload, createdAt)
            SELECT t.u, t.s, \(kind), \(payload), \(now) FROM unnest(\(heads.map(\.0)), \(heads.map(\.1))) AS t(u, s)
            """, logger: logger)
        let out = heads.map { id, seq in
            var e = event
            e.id = seq
            e.createdAt = created
            return CommittedEvent(userID: id, event: e)
        }
        var told = event
        told.createdAt = created
        try await notify(conn, event: told, heads: heads)
        return out
    }

    /// Tells every instance of an event at commit (see `PostgresEventRelay`): with the event
    /// itself when it is small, so their polls answer from memory instead of each reading
    /// its log; else only the heads, and they read.
    func notify(_ conn: PostgresConnection, event: ServerEvent, heads: [(Int64, Int64)]) async throws {
        let items = heads.map { "\($0.0):\($0.1)" }
        let payloads = (try? JSONEncoder().encode(event)).flatMap { json in
            PostgresEventRelay.eventPayloads(items, event: String(decoding: json, as: UTF8.self), instance: instance)
        } ?? PostgresEventRelay.payloads(items, instance: instance)
        for payload in payloads {
            try await conn.query("SELECT pg_notify(\(PostgresEventRelay.channel), \(payload))", logger: logger)
        }
    }

    /// Every user with a log, for events that concern everyone (the library changed).
    func allUsers(_ conn: PostgresConnection) async throws -> [Int64] {
        try await int64s(conn, "SELECT userID FROM eventLog")
    }
}

extension PostgresStore: SocialRepository {
    public func appendEvent(_ event: ServerEvent, to users: [Int64]) async throws -> [CommittedEvent] {
        guard !users.isEmpty else { return [] }
        return try await write { conn in try await self.appendEvent(conn, event, to: users) }
    }

    public func events(for user: Int64, after cursor: Int64, limit: Int) async throws -> EventSlice {
        try await read { conn in
            // One statement, one snapshot: the head, the horizon and the page agree.
            var head: Int64 = 0, pruned: Int64 = 0
            var events: [ServerEvent] = []
            let rows = try await conn.query(#"""
                SELECT l.head, COALESCE(h.prunedThrough, 0), e.seq, e.payload, e.createdAt
                FROM eventLog l
                LEFT JOIN eventHorizon h ON h.userID = l.userID
                LEFT JOIN LATERAL (SELECT seq, payload, createdAt FROM userEvent
                                   WHERE userID = l.userID AND seq > \#(cursor) ORDER BY seq LIMIT \#(limit)) e ON TRUE
                WHERE l.userID = \#(user) ORDER BY e.seq
                """#, logger: self.logger)
            for try await (h, p, seq, payload, created) in rows.decode((Int64, Int64, Int64?, String?, Date?).self) {
                head = h
                pruned = p
                guard let seq, let payload, let created,
                      var e = try? JSONDecoder().decode(ServerEvent.self, from: Data(payload.utf8)) else { continue }
                e.id = seq
                e.createdAt = created.ISO8601Format()
                events.append(e)
            }
            return EventSlice(events: events, head: head, prunedThrough: pruned)
        }
    }

    /// In batches, each its own transaction (a backlog in one would outlast the operation
    /// timeout and roll back every time); each batch's deletion and horizon in one statement,
    /// so they see one snapshot: no event leaves without the horizon saying so.
    public func pruneEvents(before date: Date) async throws -> Int {
        var total = 0
        while true {
            let batch = Self.pruneBatch
            let n = try await write { conn in
                try await self.int64s(conn, """
                    WITH gone AS (
                      DELETE FROM userEvent WHERE (userID, seq) IN (
                        SELECT userID, seq FROM userEvent WHERE createdAt < \(date) ORDER BY createdAt LIMIT \(batch))
                      RETURNING userID, seq),
                    horizon AS (
                      INSERT INTO eventHorizon (userID, prunedThrough) SELECT userID, MAX(seq) FROM gone GROUP BY userID
                      ON CONFLICT (userID) DO UPDATE SET prunedThrough = GREATEST(eventHorizon.prunedThrough, excluded.prunedThrough)
                      RETURNING 1)
                    SELECT COUNT(*) FROM gone
                    """).first ?? 0
            }
            total += Int(n)
            if n < batch {
                // The outbox messages applied as long ago: none is delivered again so late.
                try await write { conn in
                    try await conn.query("DELETE FROM consumedOutbox WHERE at < \(date)", logger: self.logger)
                }
                return total
            }
        }
    }

    /// Events one pruning transaction drops at most.
    static let pruneBatch = 5000

    private func friendState(_ conn: PostgresConnection, _ a: Int64, _ b: Int64) async throws -> FriendState {
        for try await (requester, accepted) in try await conn.query("""
            SELECT requesterID, accepted FROM friendship
            WHERE (requesterID = \(a) AND addresseeID = \(b)) OR (requesterID = \(b) AND addresseeID = \(a))
            """, logger: logger).decode((Int64, Bool).self) {
            if accepted { return .friends }
            return requester == a ? .outgoing : .incoming
        }
        return .none
    }

    public func requestFriend(from: User, to: User) async throws -> (FriendRequestOutcome, [CommittedEvent]) {
        // Crossing requests: the pair's unique index fails the second insert, whose retry
        // then finds the other's request and accepts it.
        try await write(retryUnique: true) { conn in
            switch try await self.friendState(conn, from.id, to.id) {
            case .friends: return (.alreadyFriends, [])
            case .outgoing: return (.alreadyRequested, [])
            case .incoming:
                try await conn.query("UPDATE friendship SET accepted = TRUE WHERE requesterID = \(to.id) AND addresseeID = \(from.id)",
                                     logger: self.logger)
                return (.accepted, try await self.appendEvent(conn, .draft(.friendAccepted, user: from.username), to: [to.id]))
            case .none:
                // Social's own record of who exists: a log, made with the account and removed
                // when Social forgets a deleted one. Locked (key share) so that a forgetting
                // in flight is ordered with this insert.
                guard try await self.int64s(conn, """
                    SELECT userID FROM eventLog WHERE userID IN (\(from.id), \(to.id)) FOR KEY SHARE
                    """).count == 2 else { throw Problem.notFound("No such user") }
                try await conn.query("""
                    INSERT INTO friendship (requesterID, addresseeID, accepted, createdAt) VALUES (\(from.id), \(to.id), FALSE, \(Date()))
                    """, logger: self.logger)
                return (.requested, try await self.appendEvent(conn, .draft(.friendRequest, user: from.username), to: [to.id]))
            }
        }
    }

    public func acceptFriend(from: User, to: User) async throws -> [CommittedEvent]? {
        try await write { conn in
            guard try await self.rowCount(conn, """
                UPDATE friendship SET accepted = TRUE WHERE requesterID = \(from.id) AND addresseeID = \(to.id) AND NOT accepted RETURNING 1
                """) > 0 else { return nil }
            return try await self.appendEvent(conn, .draft(.friendAccepted, user: to.username), to: [from.id])
        }
    }

    public func declineFriend(from: User, to: User) async throws -> [CommittedEvent]? {
        try await write { conn in
            guard try await self.rowCount(conn, """
                DELETE FROM friendship WHERE requesterID = \(from.id) AND addresseeID = \(to.id) AND NOT accepted RETURNING 1
                """) > 0 else { return nil }
            return try await self.appendEvent(conn, .draft(.friendRemoved, user: to.username), to: [from.id])
        }
    }

    public func removeFriend(_ me: User, _ other: User) async throws -> [CommittedEvent]? {
        try await write { conn in
            guard try await self.rowCount(conn, """
                DELETE FROM friendship
                WHERE (requesterID = \(me.id) AND addresseeID = \(other.id)) OR (requesterID = \(other.id) AND addresseeID = \(me.id))
                RETURNING 1
                """) > 0 else { return nil }
            return try await self.appendEvent(conn, .draft(.friendRemoved, user: me.username), to: [other.id])
        }
    }

    public func friends(of user: Int64) async throws -> FriendIDs {
        try await read { conn in
            var ids = FriendIDs()
            for try await (requester, addressee, accepted) in try await conn.query("""
                SELECT requesterID, addresseeID, accepted FROM friendship
                WHERE requesterID = \(user) OR addresseeID = \(user) ORDER BY createdAt, id
                """, logger: self.logger).decode((Int64, Int64, Bool).self) {
                ids.add(me: user, requester: requester, addressee: addressee, accepted: accepted)
            }
            return ids
        }
    }

    private typealias MessageRow = (Int64, Int64, Int64, String, String, Date, Date?)

    private func messages(_ conn: PostgresConnection, _ query: PostgresQuery) async throws -> [StoredMessage] {
        var out: [StoredMessage] = []
        for try await r in try await conn.query(query, logger: logger).decode(MessageRow.self) {
            out.append(StoredMessage(id: r.0, fromID: r.1, toID: r.2, clientID: r.3, body: r.4, sentAt: r.5, readAt: r.6))
        }
        return out
    }

    public func sendMessage(from: User, to: User, clientID: String, body: String) async throws -> SendOutcome {
        // Resent at once: the (sender, client id) index fails the second insert, whose retry
        // then finds the stored message.
        try await write(retryUnique: true) { conn in
            if let m = try await self.messages(conn, """
                SELECT id, fromID, toID, clientID, body, sentAt, readAt FROM message WHERE fromID = \(from.id) AND clientID = \(clientID)
                """).first {
                return .stored(m, isNew: false, events: [])
            }
            guard try await self.friendState(conn, from.id, to.id) == .friends else { return .notFriends }
            let now = Date()
            let id = try await self.int64s(conn, """
                INSERT INTO message (fromID, toID, clientID, body, sentAt) VALUES (\(from.id), \(to.id), \(clientID), \(body), \(now)) RETURNING id
                """).first!
            let stored = StoredMessage(id: id, fromID: from.id, toID: to.id, clientID: clientID, body: body, sentAt: now, readAt: nil)
            let event = ServerEvent.draft(.chatMessage, user: from.username, message: ChatMessage(stored, from: from.username, to: to.username))
            return .stored(stored, isNew: true, events: try await self.appendEvent(conn, event, to: [to.id, from.id]))
        }
    }

    public func messages(between a: Int64, _ b: Int64, before: Int64?, limit: Int) async throws -> [StoredMessage] {
        try await read { conn in
            try await self.messages(conn, """
                SELECT id, fromID, toID, clientID, body, sentAt, readAt FROM message
                WHERE ((fromID = \(a) AND toID = \(b)) OR (fromID = \(b) AND toID = \(a))) AND id < \(before ?? Int64.max)
                ORDER BY id DESC LIMIT \(limit)
                """)
        }
    }

    public func markRead(reader: User, from: User, upTo: Int64) async throws -> [CommittedEvent] {
        try await write { conn in
            guard try await self.rowCount(conn, """
                UPDATE message SET readAt = \(Date()) WHERE toID = \(reader.id) AND fromID = \(from.id) AND id <= \(upTo) AND readAt IS NULL
                RETURNING 1
                """) > 0 else { return [] }
            return try await self.appendEvent(conn, .draft(.messageRead, user: reader.username, readUpTo: upTo), to: [from.id])
        }
    }
}

extension PostgresStore: SocialOutboxConsumer {
    /// Records outbox messages as applied, in the transaction that applies them; the ids not
    /// applied before. Another deliverer's insert of the same id at the same moment waits for
    /// this one's commit and then finds the row.
    func firstDeliveries(_ conn: PostgresConnection, source: String, ids: [Int64]) async throws -> Set<Int64> {
        var fresh: Set<Int64> = []
        for try await id in try await conn.query("""
            INSERT INTO consumedOutbox (source, id, at) SELECT \(source), unnest(\(ids)::BIGINT[]), \(Date())
            ON CONFLICT DO NOTHING RETURNING id
            """, logger: logger).decode(Int64.self) { fresh.insert(id) }
        return fresh
    }

    public func applyLibraryChanges(_ messages: [OutboxMessage]) async throws -> [CommittedEvent] {
        let changes = messages.filter { $0.topic == .libraryChanged }
        guard !changes.isEmpty else { return [] }
        return try await write { conn in
            // Applied before (a redelivery, or another deliverer's at the same moment: its
            // insert waits for this one's commit and then finds the row): skipped. Recorded
            // with the events it appends, so the two commit together.
            let fresh = try await self.firstDeliveries(conn, source: "library", ids: changes.map(\.id))
            guard !fresh.isEmpty else { return [] }
            let users = try await self.allUsers(conn)
            var out: [CommittedEvent] = []
            for message in changes where fresh.contains(message.id) {
                out += try await self.appendEvent(conn, .draft(.libraryChanged, user: message.payload), to: users)
            }
            return out
        }
    }
    public func startLogs(_ messages: [OutboxMessage]) async throws {
        let created = messages.filter { $0.topic == .userCreated }
        guard !created.isEmpty else { return }
        _ = try await write { conn in
            let fresh = try await self.firstDeliveries(conn, source: "accounts", ids: created.map(\.id))
            let users = created.filter { fresh.contains($0.id) }.map(\.subject)
            guard !users.isEmpty else { return }
            try await conn.query("""
                INSERT INTO eventLog (userID, head) SELECT unnest(\(users)::BIGINT[]), 0 ON CONFLICT (userID) DO NOTHING
                """, logger: self.logger)
        }
    }

    public func forgetUsers(_ messages: [OutboxMessage]) async throws -> [CommittedEvent] {
        let deletions = messages.filter { $0.topic == .userDeletedSocial }
        guard !deletions.isEmpty else { return [] }
        return try await write { conn in
            let fresh = try await self.firstDeliveries(conn, source: "accounts", ids: deletions.map(\.id))
            var out: [CommittedEvent] = []
            for message in deletions where fresh.contains(message.id) {
                let user = message.subject
                // Whoever is left on the other side of a friendship or request. One who was
                // deleted too and forgotten first has no row with this user any more.
                let others = try await self.int64s(conn, """
                    SELECT addresseeID FROM friendship WHERE requesterID = \(user)
                    UNION SELECT requesterID FROM friendship WHERE addresseeID = \(user)
                    """)
                try await conn.query("DELETE FROM friendship WHERE requesterID = \(user) OR addresseeID = \(user)", logger: self.logger)
                try await conn.query("DELETE FROM message WHERE fromID = \(user) OR toID = \(user)", logger: self.logger)
                try await conn.query("DELETE FROM presence WHERE userID = \(user)", logger: self.logger)
                // The log's events and horizon go with it (their foreign keys to eventLog).
                try await conn.query("DELETE FROM eventLog WHERE userID = \(user)", logger: self.logger)
                out += try await self.appendEvent(conn, .draft(.friendRemoved, user: message.payload), to: others)
            }
            return out
        }
    }
}
