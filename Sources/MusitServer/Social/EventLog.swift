import Foundation
import GRDB
import MusitAPI

extension ServerEvent {
    /// The JSON a log row keeps: the event without its id and time, which are columns.
    func storedPayload() throws -> Data {
        var stored = self
        stored.id = 0
        stored.createdAt = ""
        return try JSONEncoder().encode(stored)
    }
}

/// An event as committed with the change it reports: `event.id` is its place in the log of
/// `userID` (1, 2, 3… per user, without gaps), `event.createdAt` is set.
public struct CommittedEvent: Sendable, Equatable {
    public var userID: Int64
    public var event: ServerEvent
}

/// A user's events after a cursor, read in one snapshot with the log's bounds.
public struct EventSlice: Sendable, Equatable {
    public var events: [ServerEvent]
    /// The newest event id of the user's (0 before the first).
    public var head: Int64
    /// The newest id dropped by pruning (0 when none): a cursor below it has missed events.
    public var prunedThrough: Int64
}

/// The per-user event log, in SQLite.
///
/// Why it is exact: each user has a row in Social's `eventLog` table whose `head` is the id
/// of the user's newest event. An event is appended inside the transaction of the change it
/// reports by advancing that head (`UPDATE eventLog SET head = head + 1`) and inserting the
/// event under the new value. Two writers for one user therefore serialize on that row (SQLite has one writer
/// at a time anyway; PostgreSQL takes the row lock at the UPDATE and holds it to commit),
/// so a user's ids are dense and become visible in id order: once id N is visible, every
/// id below N already is. A reader that saw through N can never later meet an id below N,
/// and a page read from storage is always a gapless run after its cursor.
extension SQLiteStore {
    static func registerEventLogMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v5-exact-sync") { db in
            // Per-user ids. Existing events keep their ids as their per-user ids (ids only
            // grew per user before too), so cursors that clients saved stay valid.
            try db.alter(table: "user") { t in t.add(column: "eventHead", .integer).notNull().defaults(to: 0) }
            try db.execute(sql: """
                CREATE TABLE userEvent (
                  userID INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                  seq INTEGER NOT NULL,
                  kind TEXT NOT NULL,
                  payload BLOB NOT NULL,
                  createdAt DATETIME NOT NULL,
                  PRIMARY KEY (userID, seq)
                ) WITHOUT ROWID;
                INSERT INTO userEvent (userID, seq, kind, payload, createdAt)
                  SELECT userID, id, kind, payload, createdAt FROM event;
                UPDATE user SET eventHead = MAX(
                  COALESCE((SELECT MAX(seq) FROM userEvent WHERE userID = user.id), 0),
                  COALESCE((SELECT prunedThrough FROM eventHorizon WHERE userID = user.id), 0));
                DROP TABLE event;
                CREATE INDEX userEvent_createdAt ON userEvent(createdAt);
                """)
            // Crossing friend requests used to leave two pending rows, one each way: they are
            // the friendship both asked for. One row per pair from now on, whoever asked.
            try db.execute(sql: """
                UPDATE friendship SET accepted = 1 WHERE accepted = 0 AND EXISTS (
                  SELECT 1 FROM friendship f WHERE f.requesterID = friendship.addresseeID AND f.addresseeID = friendship.requesterID);
                DELETE FROM friendship WHERE EXISTS (
                  SELECT 1 FROM friendship f WHERE f.requesterID = friendship.addresseeID
                    AND f.addresseeID = friendship.requesterID AND f.id < friendship.id);
                CREATE UNIQUE INDEX friendship_pair ON friendship(MIN(requesterID, addresseeID), MAX(requesterID, addresseeID));
                """)
        }
    }

    /// The log's own table, out of Accounts' `user` (where the head was a column): Social
    /// keeps the users it has a log for, and reads no other service's table to find them.
    static func registerEventLogOwnerMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v9-social-owns-its-log") { db in
            try db.execute(sql: """
                CREATE TABLE eventLog (
                  userID INTEGER PRIMARY KEY REFERENCES user(id) ON DELETE CASCADE,
                  head INTEGER NOT NULL DEFAULT 0);
                INSERT INTO eventLog (userID, head) SELECT id, eventHead FROM user;
                ALTER TABLE user DROP COLUMN eventHead;
                """)
        }
    }

    /// Starts `user`'s log (`user.created` from Accounts' outbox): from then on every event
    /// for everyone reaches them.
    static func startLog(_ db: Database, user: Int64) throws {
        try db.execute(sql: "INSERT INTO eventLog (userID, head) VALUES (?, 0) ON CONFLICT(userID) DO NOTHING", arguments: [user])
    }

    /// Appends `event` to the logs of `users` inside the caller's transaction; returns the
    /// events as committed (once the transaction is), ascending by user id. Users that no
    /// longer exist are skipped.
    static func appendEvent(_ db: Database, _ event: ServerEvent, to users: [Int64]) throws -> [CommittedEvent] {
        guard !users.isEmpty else { return [] }
        let now = Date()
        let created = now.ISO8601Format()
        let payload = try event.storedPayload()
        var out: [CommittedEvent] = []
        // Ascending ids: on a store with row locks, every writer takes them in one order.
        for user in Set(users).sorted() {
            guard let seq = try Int64.fetchOne(db, sql: "UPDATE eventLog SET head = head + 1 WHERE userID = ? RETURNING head",
                                               arguments: [user]) else { continue }
            try db.execute(sql: "INSERT INTO userEvent (userID, seq, kind, payload, createdAt) VALUES (?, ?, ?, ?, ?)",
                           arguments: [user, seq, event.kind.rawValue, payload, now])
            var e = event
            e.id = seq
            e.createdAt = created
            out.append(CommittedEvent(userID: user, event: e))
        }
        return out
    }

    /// Every user with a log, for events that concern everyone (the library changed).
    static func allUsers(_ db: Database) throws -> [Int64] {
        try Int64.fetchAll(db, sql: "SELECT userID FROM eventLog")
    }

    public func appendEvent(_ event: ServerEvent, to users: [Int64]) async throws -> [CommittedEvent] {
        guard !users.isEmpty else { return [] }
        return try await write { db in try Self.appendEvent(db, event, to: users) }
    }

    public func events(for user: Int64, after cursor: Int64, limit: Int) async throws -> EventSlice {
        try await read { db in
            let head = try Int64.fetchOne(db, sql: "SELECT head FROM eventLog WHERE userID = ?", arguments: [user]) ?? 0
            let pruned = try Int64.fetchOne(db, sql: "SELECT prunedThrough FROM eventHorizon WHERE userID = ?",
                                            arguments: [user]) ?? 0
            let events = try Row.fetchAll(db, sql: """
                SELECT seq, kind, payload, createdAt FROM userEvent WHERE userID = ? AND seq > ? ORDER BY seq LIMIT ?
                """, arguments: [user, cursor, limit]).compactMap { row -> ServerEvent? in
                guard var e = try? JSONDecoder().decode(ServerEvent.self, from: row["payload"] as Data) else { return nil }
                e.id = row["seq"]
                e.createdAt = (row["createdAt"] as Date).ISO8601Format()
                return e
            }
            return EventSlice(events: events, head: head, prunedThrough: pruned)
        }
    }

    /// In batches of `pruneBatch`, each its own transaction: a backlog dropped in one would
    /// hold SQLite's only writer for as long as it took.
    public func pruneEvents(before date: Date) async throws -> Int {
        var total = 0
        while true {
            let n = try await write { db -> Int in
                let rows = try Row.fetchAll(db, sql: """
                    SELECT userID, seq FROM userEvent WHERE createdAt < ? ORDER BY createdAt LIMIT ?
                    """, arguments: [date, Self.pruneBatch])
                var top: [Int64: Int64] = [:]
                for row in rows {
                    let user: Int64 = row["userID"], seq: Int64 = row["seq"]
                    top[user] = max(top[user] ?? 0, seq)
                    try db.execute(sql: "DELETE FROM userEvent WHERE userID = ? AND seq = ?", arguments: [user, seq])
                }
                for (user, seq) in top {
                    try db.execute(sql: """
                        INSERT INTO eventHorizon (userID, prunedThrough) VALUES (?, ?)
                        ON CONFLICT(userID) DO UPDATE SET prunedThrough = MAX(prunedThrough, excluded.prunedThrough)
                        """, arguments: [user, seq])
                }
                return rows.count
            }
            total += n
            if n < Self.pruneBatch {
                // The outbox messages applied as long ago: none is delivered again so late.
                try await write { db in try db.execute(sql: "DELETE FROM consumedOutbox WHERE at < ?", arguments: [date]) }
                return total
            }
        }
    }

    /// Events one pruning transaction drops at most.
    static let pruneBatch = 5000
}

extension SQLiteStore: SocialOutboxConsumer {
    /// Records an outbox message as applied, in the transaction that applies it; false when
    /// it was applied before (a redelivery), which then changes nothing.
    static func firstDelivery(_ db: Database, source: String, id: Int64) throws -> Bool {
        try db.execute(sql: "INSERT INTO consumedOutbox (source, id, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       arguments: [source, id, Date()])
        return db.changesCount > 0
    }

    public func applyLibraryChanges(_ messages: [OutboxMessage]) async throws -> [CommittedEvent] {
        let changes = messages.filter { $0.topic == .libraryChanged }
        guard !changes.isEmpty else { return [] }
        return try await write { db in
            let users = try Self.allUsers(db)
            var out: [CommittedEvent] = []
            for message in changes {
                // Applied before (a redelivery): nothing to do. Recorded with the events it
                // appends, so the two commit together.
                guard try Self.firstDelivery(db, source: "library", id: message.id) else { continue }
                out += try Self.appendEvent(db, .draft(.libraryChanged, user: message.payload), to: users)
            }
            return out
        }
    }

    public func startLogs(_ messages: [OutboxMessage]) async throws {
        let created = messages.filter { $0.topic == .userCreated }
        guard !created.isEmpty else { return }
        try await write { db in
            for message in created {
                guard try Self.firstDelivery(db, source: "accounts", id: message.id) else { continue }
                try Self.startLog(db, user: message.subject)
            }
        }
    }

    public func forgetUsers(_ messages: [OutboxMessage]) async throws -> [CommittedEvent] {
        let deletions = messages.filter { $0.topic == .userDeletedSocial }
        guard !deletions.isEmpty else { return [] }
        return try await write { db in
            var out: [CommittedEvent] = []
            for message in deletions {
                guard try Self.firstDelivery(db, source: "accounts", id: message.id) else { continue }
                let user = message.subject
                // Whoever is left on the other side of a friendship or request. One who was
                // deleted too and forgotten first has no row with this user any more.
                let others = try Int64.fetchAll(db, sql: """
                    SELECT addresseeID FROM friendship WHERE requesterID = ? UNION SELECT requesterID FROM friendship WHERE addresseeID = ?
                    """, arguments: [user, user])
                try db.execute(sql: "DELETE FROM friendship WHERE requesterID = ? OR addresseeID = ?", arguments: [user, user])
                try db.execute(sql: "DELETE FROM message WHERE fromID = ? OR toID = ?", arguments: [user, user])
                try db.execute(sql: "DELETE FROM presence WHERE userID = ?", arguments: [user])
                try db.execute(sql: "DELETE FROM userEvent WHERE userID = ?", arguments: [user])
                try db.execute(sql: "DELETE FROM eventHorizon WHERE userID = ?", arguments: [user])
                try db.execute(sql: "DELETE FROM eventLog WHERE userID = ?", arguments: [user])
                out += try Self.appendEvent(db, .draft(.friendRemoved, user: message.payload), to: others)
            }
            return out
        }
    }
}
