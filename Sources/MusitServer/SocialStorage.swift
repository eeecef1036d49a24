import Foundation
import GRDB
import MusitAPI

public enum FriendState: String, Sendable {
    case none, outgoing, incoming, friends
}

public struct StoredMessage: Equatable, Sendable {
    public var id: Int64
    public var fromID: Int64
    public var toID: Int64
    public var clientID: String
    public var body: String
    public var sentAt: Date
    public var readAt: Date?
}

public struct StoredPresence: Equatable, Sendable {
    public var userID: Int64
    public var nowPlaying: NowPlayingInfo?
    public var lastSeen: Date
}

public struct StoredEvent: Equatable, Sendable {
    public var id: Int64
    public var userID: Int64
    public var kind: ServerEvent.Kind
    public var payload: Data
    public var createdAt: Date
}

/// Profiles, friendships, chat, presence and the per-user event log.
public protocol SocialRepository: Sendable {
    func updateProfile(userID: Int64, displayName: String?, bio: String?) async throws -> User?
    func searchUsers(_ query: String, limit: Int) async throws -> [User]

    func friendState(_ a: Int64, _ b: Int64) async throws -> FriendState
    func requestFriend(from: Int64, to: Int64) async throws
    /// Accepts `from`'s request to `to`; false when there was none.
    func acceptFriend(from: Int64, to: Int64) async throws -> Bool
    /// Removes a request either way or a friendship; false when there was nothing.
    func removeFriendship(_ a: Int64, _ b: Int64) async throws -> Bool
    func friends(of user: Int64) async throws -> (friends: [User], incoming: [User], outgoing: [User])

    /// Stores a message once per (sender, client id); returns it and whether it is new.
    func insertMessage(from: Int64, to: Int64, clientID: String, body: String) async throws -> (StoredMessage, Bool)
    func messages(between a: Int64, _ b: Int64, before: Int64?, limit: Int) async throws -> [StoredMessage]
    /// Marks `from`'s messages to `reader` up to `upTo` read; returns how many changed.
    func markRead(reader: Int64, from: Int64, upTo: Int64) async throws -> Int

    func setPresence(userID: Int64, nowPlaying: NowPlayingInfo?, seen: Date) async throws
    func touchPresence(userID: Int64, seen: Date) async throws -> Bool
    func presence(of users: [Int64]) async throws -> [Int64: StoredPresence]

    /// Appends an event for each of `users`; returns the new ids in order.
    func appendEvent(for users: [Int64], kind: ServerEvent.Kind, payload: Data) async throws -> [Int64]
    func events(for user: Int64, after cursor: Int64, limit: Int) async throws -> [StoredEvent]
    /// The highest event id of `user`'s that was dropped (0 when none).
    func prunedThrough(for user: Int64) async throws -> Int64
    /// Drops events older than `date`; returns how many.
    func pruneEvents(before date: Date) async throws -> Int
}

extension SQLiteStore: SocialRepository {
    static func registerSocialMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v2-social") { db in
            try db.create(table: "friendship") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("requesterID", .integer).notNull().references("user", onDelete: .cascade)
                t.column("addresseeID", .integer).notNull().references("user", onDelete: .cascade)
                t.column("accepted", .boolean).notNull().defaults(to: false)
                t.column("createdAt", .datetime).notNull()
                t.uniqueKey(["requesterID", "addresseeID"])
            }
            try db.create(index: "friendship_addressee", on: "friendship", columns: ["addresseeID"])
            try db.create(table: "message") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("fromID", .integer).notNull().references("user", onDelete: .cascade)
                t.column("toID", .integer).notNull().references("user", onDelete: .cascade)
                t.column("clientID", .text).notNull()
                t.column("body", .text).notNull()
                t.column("sentAt", .datetime).notNull()
                t.column("readAt", .datetime)
                t.uniqueKey(["fromID", "clientID"])
            }
            try db.create(index: "message_pair", on: "message", columns: ["fromID", "toID", "id"])
            try db.create(table: "presence") { t in
                t.column("userID", .integer).primaryKey().references("user", onDelete: .cascade)
                t.column("nowPlaying", .blob)
                t.column("lastSeen", .datetime).notNull()
            }
            // AUTOINCREMENT: ids are never reused, so a cursor never sees an old id again.
            try db.create(table: "event") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("userID", .integer).notNull().references("user", onDelete: .cascade)
                t.column("kind", .text).notNull()
                t.column("payload", .blob).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(index: "event_user", on: "event", columns: ["userID", "id"])
            // The highest event id dropped per user: a cursor below it has missed events.
            try db.create(table: "eventHorizon") { t in
                t.column("userID", .integer).primaryKey().references("user", onDelete: .cascade)
                t.column("prunedThrough", .integer).notNull()
            }
        }
    }

    /// A LIKE pattern (for ESCAPE '\\') matching text that contains `query` literally:
    /// a search for "50%" finds "50%", not everything.
    static func containsPattern(_ query: String) -> String {
        "%" + query.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
    }

    private static func message(_ row: Row) -> StoredMessage {
        StoredMessage(id: row["id"], fromID: row["fromID"], toID: row["toID"], clientID: row["clientID"], body: row["body"],
                      sentAt: row["sentAt"], readAt: row["readAt"])
    }

    public func updateProfile(userID: Int64, displayName: String?, bio: String?) async throws -> User? {
        try await pool.write { db in
            if let displayName {
                try db.execute(sql: "UPDATE user SET displayName = ? WHERE id = ?", arguments: [displayName, userID])
            }
            if let bio { try db.execute(sql: "UPDATE user SET bio = ? WHERE id = ?", arguments: [bio, userID]) }
            return try Row.fetchOne(db, sql: "SELECT * FROM user WHERE id = ?", arguments: [userID]).map(SQLiteStore.userRow)
        }
    }

    public func searchUsers(_ query: String, limit: Int) async throws -> [User] {
        let like = Self.containsPattern(query)
        return try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM user WHERE username LIKE ? ESCAPE '\\' OR displayName LIKE ? ESCAPE '\\'
                ORDER BY username COLLATE NOCASE LIMIT ?
                """, arguments: [like, like, limit]).map(SQLiteStore.userRow)
        }
    }

    public func friendState(_ a: Int64, _ b: Int64) async throws -> FriendState {
        try await pool.read { db in try Self.friendState(db, a, b) }
    }

    private static func friendState(_ db: Database, _ a: Int64, _ b: Int64) throws -> FriendState {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT requesterID, accepted FROM friendship
            WHERE (requesterID = ? AND addresseeID = ?) OR (requesterID = ? AND addresseeID = ?)
            """, arguments: [a, b, b, a]) else { return .none }
        if row["accepted"] as Bool { return .friends }
        return (row["requesterID"] as Int64) == a ? .outgoing : .incoming
    }

    public func requestFriend(from: Int64, to: Int64) async throws {
        try await pool.write { db in
            guard try Self.friendState(db, from, to) == .none else { return }
            try db.execute(sql: "INSERT INTO friendship (requesterID, addresseeID, accepted, createdAt) VALUES (?, ?, 0, ?)",
                           arguments: [from, to, Date()])
        }
    }

    public func acceptFriend(from: Int64, to: Int64) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "UPDATE friendship SET accepted = 1 WHERE requesterID = ? AND addresseeID = ? AND accepted = 0",
                           arguments: [from, to])
            return db.changesCount > 0
        }
    }

    public func removeFriendship(_ a: Int64, _ b: Int64) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: """
                DELETE FROM friendship WHERE (requesterID = ? AND addresseeID = ?) OR (requesterID = ? AND addresseeID = ?)
                """, arguments: [a, b, b, a])
            return db.changesCount > 0
        }
    }

    public func friends(of user: Int64) async throws -> (friends: [User], incoming: [User], outgoing: [User]) {
        try await pool.read { db in
            func users(_ sql: String) throws -> [User] {
                try Row.fetchAll(db, sql: sql, arguments: [user, user]).map(SQLiteStore.userRow)
            }
            let friends = try users("""
                SELECT u.* FROM user u JOIN friendship f ON f.accepted = 1 AND
                  ((f.requesterID = ? AND f.addresseeID = u.id) OR (f.addresseeID = ? AND f.requesterID = u.id))
                ORDER BY u.username COLLATE NOCASE
                """)
            let incoming = try users("""
                SELECT u.* FROM user u JOIN friendship f ON f.accepted = 0 AND f.addresseeID = ? AND f.requesterID = u.id
                WHERE ? IS NOT NULL ORDER BY f.createdAt
                """)
            let outgoing = try users("""
                SELECT u.* FROM user u JOIN friendship f ON f.accepted = 0 AND f.requesterID = ? AND f.addresseeID = u.id
                WHERE ? IS NOT NULL ORDER BY f.createdAt
                """)
            return (friends, incoming, outgoing)
        }
    }

    public func insertMessage(from: Int64, to: Int64, clientID: String, body: String) async throws -> (StoredMessage, Bool) {
        try await pool.write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM message WHERE fromID = ? AND clientID = ?",
                                          arguments: [from, clientID]) {
                return (Self.message(row), false)
            }
            let now = Date()
            try db.execute(sql: "INSERT INTO message (fromID, toID, clientID, body, sentAt) VALUES (?, ?, ?, ?, ?)",
                           arguments: [from, to, clientID, body, now])
            return (StoredMessage(id: db.lastInsertedRowID, fromID: from, toID: to, clientID: clientID, body: body,
                                  sentAt: now, readAt: nil), true)
        }
    }

    public func messages(between a: Int64, _ b: Int64, before: Int64?, limit: Int) async throws -> [StoredMessage] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM message WHERE ((fromID = ? AND toID = ?) OR (fromID = ? AND toID = ?)) AND id < ?
                ORDER BY id DESC LIMIT ?
                """, arguments: [a, b, b, a, before ?? Int64.max, limit]).map(Self.message)
        }
    }

    public func markRead(reader: Int64, from: Int64, upTo: Int64) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "UPDATE message SET readAt = ? WHERE toID = ? AND fromID = ? AND id <= ? AND readAt IS NULL",
                           arguments: [Date(), reader, from, upTo])
            return db.changesCount
        }
    }

    public func setPresence(userID: Int64, nowPlaying: NowPlayingInfo?, seen: Date) async throws {
        let blob = try nowPlaying.map { try JSONEncoder().encode($0) }
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO presence (userID, nowPlaying, lastSeen) VALUES (?, ?, ?)
                ON CONFLICT(userID) DO UPDATE SET nowPlaying = excluded.nowPlaying, lastSeen = excluded.lastSeen
                """, arguments: [userID, blob, seen])
        }
    }

    public func touchPresence(userID: Int64, seen: Date) async throws -> Bool {
        try await pool.write { db in
            let before: Date? = try Date.fetchOne(db, sql: "SELECT lastSeen FROM presence WHERE userID = ?", arguments: [userID])
            try db.execute(sql: """
                INSERT INTO presence (userID, nowPlaying, lastSeen) VALUES (?, NULL, ?)
                ON CONFLICT(userID) DO UPDATE SET lastSeen = excluded.lastSeen
                """, arguments: [userID, seen])
            // True when the user just came online.
            return before.map { seen.timeIntervalSince($0) > APILimits.onlineSeconds } ?? true
        }
    }

    public func presence(of users: [Int64]) async throws -> [Int64: StoredPresence] {
        guard !users.isEmpty else { return [:] }
        return try await pool.read { db in
            var out: [Int64: StoredPresence] = [:]
            let marks = users.map { _ in "?" }.joined(separator: ",")
            for row in try Row.fetchAll(db, sql: "SELECT * FROM presence WHERE userID IN (\(marks))",
                                        arguments: StatementArguments(users)) {
                let blob: Data? = row["nowPlaying"]
                let np = blob.flatMap { try? JSONDecoder().decode(NowPlayingInfo.self, from: $0) }
                out[row["userID"]] = StoredPresence(userID: row["userID"], nowPlaying: np, lastSeen: row["lastSeen"])
            }
            return out
        }
    }

    public func appendEvent(for users: [Int64], kind: ServerEvent.Kind, payload: Data) async throws -> [Int64] {
        guard !users.isEmpty else { return [] }
        return try await pool.write { db in
            var ids: [Int64] = []
            let now = Date()
            for u in users {
                try db.execute(sql: "INSERT INTO event (userID, kind, payload, createdAt) VALUES (?, ?, ?, ?)",
                               arguments: [u, kind.rawValue, payload, now])
                ids.append(db.lastInsertedRowID)
            }
            return ids
        }
    }

    public func events(for user: Int64, after cursor: Int64, limit: Int) async throws -> [StoredEvent] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM event WHERE userID = ? AND id > ? ORDER BY id LIMIT ?",
                             arguments: [user, cursor, limit]).compactMap { row in
                guard let kind = ServerEvent.Kind(rawValue: row["kind"]) else { return nil }
                return StoredEvent(id: row["id"], userID: row["userID"], kind: kind, payload: row["payload"],
                                   createdAt: row["createdAt"])
            }
        }
    }

    public func prunedThrough(for user: Int64) async throws -> Int64 {
        try await pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT prunedThrough FROM eventHorizon WHERE userID = ?", arguments: [user]) ?? 0
        }
    }

    public func pruneEvents(before date: Date) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO eventHorizon (userID, prunedThrough)
                SELECT userID, MAX(id) FROM event WHERE createdAt < ? GROUP BY userID
                ON CONFLICT(userID) DO UPDATE SET prunedThrough = MAX(prunedThrough, excluded.prunedThrough)
                """, arguments: [date])
            try db.execute(sql: "DELETE FROM event WHERE createdAt < ?", arguments: [date])
            return db.changesCount
        }
    }
}
