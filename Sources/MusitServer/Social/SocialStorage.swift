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

/// What asking someone to be friends did.
public enum FriendRequestOutcome: Sendable, Equatable {
    /// A new request.
    case requested
    /// Asked before and still pending.
    case alreadyRequested
    case alreadyFriends
    /// They had asked first: asking back made the friendship.
    case accepted
}

/// A user's friendships by id: friends, requests to them (incoming) and theirs (outgoing),
/// each in the order they were made.
public struct FriendIDs: Sendable, Equatable {
    public var friends: [Int64] = []
    public var incoming: [Int64] = []
    public var outgoing: [Int64] = []

    mutating func add(me: Int64, requester: Int64, addressee: Int64, accepted: Bool) {
        let other = requester == me ? addressee : requester
        if accepted {
            friends.append(other)
        } else if requester == me {
            outgoing.append(other)
        } else {
            incoming.append(other)
        }
    }
}

/// What sending a message did.
public enum SendOutcome: Sendable, Equatable {
    /// Stored now with its events, or found stored already (same sender and client id:
    /// a retry), whose events were stored with it.
    case stored(StoredMessage, isNew: Bool, events: [CommittedEvent])
    case notFriends
}

/// The per-user event log: dense ids per user, visible in id order (see `appendEvent`).
public protocol EventRepository: Sendable {
    /// Appends `event` to each of `users`' logs in one transaction; the events as committed.
    func appendEvent(_ event: ServerEvent, to users: [Int64]) async throws -> [CommittedEvent]
    /// Up to `limit` of `user`'s events after `cursor`, with the log's head and horizon.
    func events(for user: Int64, after cursor: Int64, limit: Int) async throws -> EventSlice
    /// Drops events older than `date`; returns how many.
    func pruneEvents(before date: Date) async throws -> Int
}

/// Friendships and chat. Every change is one transaction with the events that
/// report it, so no change is stored without its events, nor events without their change.
public protocol SocialRepository: EventRepository, SocialOutboxConsumer {
    func requestFriend(from: User, to: User) async throws -> (FriendRequestOutcome, [CommittedEvent])
    /// `to` accepts `from`'s request; nil when there was none.
    func acceptFriend(from: User, to: User) async throws -> [CommittedEvent]?
    /// `to` declines `from`'s request; nil when there was none.
    func declineFriend(from: User, to: User) async throws -> [CommittedEvent]?
    /// Ends a friendship or withdraws a request, either way; nil when there was nothing.
    func removeFriend(_ me: User, _ other: User) async throws -> [CommittedEvent]?
    /// Who `user` is friends with and who asked whom, as ids: names are Accounts' to tell.
    func friends(of user: Int64) async throws -> FriendIDs

    /// Stores a message once per (sender, client id) with its events, if they are friends.
    func sendMessage(from: User, to: User, clientID: String, body: String) async throws -> SendOutcome
    func messages(between a: Int64, _ b: Int64, before: Int64?, limit: Int) async throws -> [StoredMessage]
    /// Marks `from`'s messages to `reader` up to `upTo` read; the events, none when nothing changed.
    func markRead(reader: User, from: User, upTo: Int64) async throws -> [CommittedEvent]
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

    private static func message(_ row: Row) -> StoredMessage {
        StoredMessage(id: row["id"], fromID: row["fromID"], toID: row["toID"], clientID: row["clientID"], body: row["body"],
                      sentAt: row["sentAt"], readAt: row["readAt"])
    }

    private static func friendState(_ db: Database, _ a: Int64, _ b: Int64) throws -> FriendState {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT requesterID, accepted FROM friendship
            WHERE (requesterID = ? AND addresseeID = ?) OR (requesterID = ? AND addresseeID = ?)
            """, arguments: [a, b, b, a]) else { return .none }
        if row["accepted"] as Bool { return .friends }
        return (row["requesterID"] as Int64) == a ? .outgoing : .incoming
    }

    public func requestFriend(from: User, to: User) async throws -> (FriendRequestOutcome, [CommittedEvent]) {
        try await write { db in
            switch try Self.friendState(db, from.id, to.id) {
            case .friends: return (.alreadyFriends, [])
            case .outgoing: return (.alreadyRequested, [])
            case .incoming:
                try db.execute(sql: "UPDATE friendship SET accepted = 1 WHERE requesterID = ? AND addresseeID = ?",
                               arguments: [to.id, from.id])
                return (.accepted, try Self.appendEvent(db, .draft(.friendAccepted, user: from.username), to: [to.id]))
            case .none:
                // Social's own record of who exists: a log, made with the account and removed
                // when Social forgets a deleted one.
                guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM eventLog WHERE userID IN (?, ?)",
                                       arguments: [from.id, to.id]) == 2 else { throw Problem.notFound("No such user") }
                try db.execute(sql: "INSERT INTO friendship (requesterID, addresseeID, accepted, createdAt) VALUES (?, ?, 0, ?)",
                               arguments: [from.id, to.id, Date()])
                return (.requested, try Self.appendEvent(db, .draft(.friendRequest, user: from.username), to: [to.id]))
            }
        }
    }

    public func acceptFriend(from: User, to: User) async throws -> [CommittedEvent]? {
        try await write { db in
            try db.execute(sql: "UPDATE friendship SET accepted = 1 WHERE requesterID = ? AND addresseeID = ? AND accepted = 0",
                           arguments: [from.id, to.id])
            guard db.changesCount > 0 else { return nil }
            return try Self.appendEvent(db, .draft(.friendAccepted, user: to.username), to: [from.id])
        }
    }

    public func declineFriend(from: User, to: User) async throws -> [CommittedEvent]? {
        try await write { db in
            try db.execute(sql: "DELETE FROM friendship WHERE requesterID = ? AND addresseeID = ? AND accepted = 0",
                           arguments: [from.id, to.id])
            guard db.changesCount > 0 else { return nil }
            // The asker's outgoing list changes too.
            return try Self.appendEvent(db, .draft(.friendRemoved, user: to.username), to: [from.id])
        }
    }

    public func removeFriend(_ me: User, _ other: User) async throws -> [CommittedEvent]? {
        try await write { db in
            try db.execute(sql: """
                DELETE FROM friendship WHERE (requesterID = ? AND addresseeID = ?) OR (requesterID = ? AND addresseeID = ?)
                """, arguments: [me.id, other.id, other.id, me.id])
            guard db.changesCount > 0 else { return nil }
            return try Self.appendEvent(db, .draft(.friendRemoved, user: me.username), to: [other.id])
        }
    }

    public func friends(of user: Int64) async throws -> FriendIDs {
        try await read { db in
            var ids = FriendIDs()
            for row in try Row.fetchAll(db, sql: """
                SELECT requesterID, addresseeID, accepted FROM friendship WHERE requesterID = ? OR addresseeID = ? ORDER BY createdAt, id
                """, arguments: [user, user]) {
                ids.add(me: user, requester: row["requesterID"], addressee: row["addresseeID"], accepted: row["accepted"])
            }
            return ids
        }
    }

    public func sendMessage(from: User, to: User, clientID: String, body: String) async throws -> SendOutcome {
        try await write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM message WHERE fromID = ? AND clientID = ?",
                                          arguments: [from.id, clientID]) {
                return .stored(Self.message(row), isNew: false, events: [])
            }
            guard try Self.friendState(db, from.id, to.id) == .friends else { return .notFriends }
            let now = Date()
            try db.execute(sql: "INSERT INTO message (fromID, toID, clientID, body, sentAt) VALUES (?, ?, ?, ?, ?)",
                           arguments: [from.id, to.id, clientID, body, now])
            let stored = StoredMessage(id: db.lastInsertedRowID, fromID: from.id, toID: to.id, clientID: clientID, body: body,
                                       sentAt: now, readAt: nil)
            let event = ServerEvent.draft(.chatMessage, user: from.username,
                                          message: ChatMessage(stored, from: from.username, to: to.username))
            return .stored(stored, isNew: true, events: try Self.appendEvent(db, event, to: [to.id, from.id]))
        }
    }

    public func messages(between a: Int64, _ b: Int64, before: Int64?, limit: Int) async throws -> [StoredMessage] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM message WHERE ((fromID = ? AND toID = ?) OR (fromID = ? AND toID = ?)) AND id < ?
                ORDER BY id DESC LIMIT ?
                """, arguments: [a, b, b, a, before ?? Int64.max, limit]).map(Self.message)
        }
    }

    public func markRead(reader: User, from: User, upTo: Int64) async throws -> [CommittedEvent] {
        try await write { db in
            try db.execute(sql: "UPDATE message SET readAt = ? WHERE toID = ? AND fromID = ? AND id <= ? AND readAt IS NULL",
                           arguments: [Date(), reader.id, from.id, upTo])
            guard db.changesCount > 0 else { return [] }
            return try Self.appendEvent(db, .draft(.messageRead, user: reader.username, readUpTo: upTo), to: [from.id])
        }
    }
}

extension ChatMessage {
    init(_ m: StoredMessage, from: String, to: String) {
        self.init(id: m.id, from: from, to: to, body: m.body, clientId: m.clientID, sentAt: m.sentAt.ISO8601Format(),
                  readAt: m.readAt?.ISO8601Format())
    }
}
