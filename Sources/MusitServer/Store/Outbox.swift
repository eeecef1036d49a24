import Foundation
import GRDB
import PostgresNIO

/// A change one service committed that another must see, written in the same transaction
/// as the change (the transactional outbox): the delivery may come late or twice, never not
/// at all. `OutboxRelay` delivers and then removes it; the consumer is idempotent.
public struct OutboxMessage: Sendable, Equatable {
    public enum Topic: String, Sendable {
        /// An account was made: Social starts its event log. The payload is the user's name.
        case userCreated = "user.created"
        /// An account was deleted: Stats forgets its plays.
        case userDeleted = "user.deleted"
        /// The same deletion for Social: the user's friendships, messages, presence and log
        /// go. The payload is the user's name (for the friends' `friend_removed`).
        case userDeletedSocial = "user.deleted/social"
        /// The same deletion for Library: the songs the user owned go. The payload is the
        /// user's name (for `library.changed`).
        case userDeletedLibrary = "user.deleted/library"
        /// A song was deleted (by its owner, with its owner, or found without its file).
        case songDeleted = "song.deleted"
        /// Library changed (a song stored or deleted): Social tells every user
        /// (`library.changed` in each log). The payload is the name of who changed it.
        case libraryChanged = "library.changed"

        /// An account's deletion: one message for each service that keeps something of the
        /// user, with the user's name.
        static let accountDeletion: [Topic] = [.userDeleted, .userDeletedSocial, .userDeletedLibrary]

        /// Who consumes the message. A change several services must see is one message per
        /// consumer, so that each is removed when its consumer answered.
        var consumer: Consumer {
            switch self {
            case .userDeleted, .songDeleted: .stats
            case .userCreated, .userDeletedSocial, .libraryChanged: .social
            case .userDeletedLibrary: .library
            }
        }
    }

    public enum Consumer: Sendable { case stats, social, library }

    public var id: Int64
    public var topic: Topic
    /// The user's or song's id.
    public var subject: Int64
    public var payload: String?

    public init(id: Int64, topic: Topic, subject: Int64, payload: String? = nil) {
        self.id = id
        self.topic = topic
        self.subject = subject
        self.payload = payload
    }
}

/// Social's side of the outbox: `user.created` messages start a user's log, `library.changed`
/// messages become an event in every user's log, and `user.deleted/social` messages remove
/// what Social keeps of the user, once per
/// message whatever the number of deliveries (the ids it applied are kept, in the
/// transaction that applies them, for as long as the logs keep events).
public protocol SocialOutboxConsumer: Sendable {
    /// Applies what was not applied before; the events committed now (none for a redelivery).
    func applyLibraryChanges(_ messages: [OutboxMessage]) async throws -> [CommittedEvent]
    /// Starts the event logs of the users of `user.created` messages not applied before (a
    /// redelivery after the user was forgotten starts none).
    func startLogs(_ messages: [OutboxMessage]) async throws
    /// Forgets the users of `user.deleted/social` messages not applied before: their
    /// friendships and requests (each other side gets `friend_removed`), messages, presence
    /// and event log. The events committed now.
    func forgetUsers(_ messages: [OutboxMessage]) async throws -> [CommittedEvent]
}

public protocol OutboxRepository: Sendable {
    /// The oldest undelivered messages, at most `limit`.
    func pendingOutbox(limit: Int) async throws -> [OutboxMessage]
    /// Removes delivered messages.
    func removeOutbox(ids: [Int64]) async throws
}

extension SQLiteStore: OutboxRepository {
    /// After every other migration: plays lose their foreign keys (Stats owns them and
    /// learns of deletions through the outbox), and the outbox and Stats' list of what it
    /// forgot are made.
    static func registerOutboxMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v8-stats-owns-plays") { db in
            try db.execute(sql: """
                CREATE TABLE play_owned (
                  id INTEGER PRIMARY KEY AUTOINCREMENT, userID INTEGER NOT NULL, songID INTEGER NOT NULL,
                  startedAt DATETIME NOT NULL, position DOUBLE NOT NULL DEFAULT 0, endedAt DATETIME,
                  title TEXT NOT NULL DEFAULT '', artist TEXT);
                INSERT INTO play_owned (id, userID, songID, startedAt, position, endedAt, title, artist)
                  SELECT id, userID, songID, startedAt, position, endedAt, title, artist FROM play;
                DROP TABLE play;
                ALTER TABLE play_owned RENAME TO play;
                CREATE INDEX play_userID ON play (userID);
                CREATE INDEX play_songID ON play (songID);
                CREATE INDEX play_startedAt ON play (startedAt);
                CREATE TABLE playForgotten (kind TEXT NOT NULL, subject INTEGER NOT NULL, PRIMARY KEY (kind, subject));
                CREATE TABLE outbox (
                  id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, subject INTEGER NOT NULL,
                  createdAt DATETIME NOT NULL);
                """)
        }
    }

    /// Library's changes travel to Social through the outbox too: a payload (who changed
    /// it), and Social's record of the messages it applied.
    static func registerLibraryOutboxMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v11-library-outbox") { db in
            try db.execute(sql: """
                ALTER TABLE outbox ADD COLUMN payload TEXT;
                CREATE TABLE consumedOutbox (
                  source TEXT NOT NULL, id INTEGER NOT NULL, at DATETIME NOT NULL, PRIMARY KEY (source, id));
                CREATE INDEX consumedOutbox_at ON consumedOutbox (at);
                """)
        }
    }

    /// Accounts' rows no longer cascade into the other services' tables: an account's
    /// deletion reaches Library and Social as `user.deleted` outbox messages, which they
    /// apply themselves (and the tables could live in other databases). SQLite cannot drop
    /// a foreign key, so each table that refers to `user` is made again from its own
    /// definition without that clause, with its rows, indexes and AUTOINCREMENT sequence
    /// (ids are never reused: Stats forgets songs by id). Library also keeps the owners it
    /// forgot, whose uploads it refuses from then on.
    static func registerServicesOwnTheirRowsMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v12-no-cascade-from-accounts") { db in
            let reference = try NSRegularExpression(
                pattern: #"\s+REFERENCES\s+"?user"?\s*\(\s*"?id"?\s*\)\s+ON\s+DELETE\s+CASCADE"#, options: [.caseInsensitive])
            let tables = try Row.fetchAll(db, sql: """
                SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT IN ('user', 'refreshToken')
                ORDER BY name
                """).filter { row in
                let sql: String = row["sql"]
                return reference.firstMatch(in: sql, range: NSRange(sql.startIndex..., in: sql)) != nil
            }
            for row in tables {
                let name: String = row["name"], sql: String = row["sql"]
                let indexes = try String.fetchAll(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                                                  arguments: [name])
                let sequence = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = ?", arguments: [name])
                let bare = reference.stringByReplacingMatches(in: sql, range: NSRange(sql.startIndex..., in: sql), withTemplate: "")
                let header = try NSRegularExpression(pattern: #"^CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?("?)\#(name)\2"#,
                                                     options: [.caseInsensitive])
                let made = header.stringByReplacingMatches(in: bare, range: NSRange(bare.startIndex..., in: bare),
                                                           withTemplate: "CREATE TABLE \"\(name)_v12\"")
                guard made != bare else { throw DatabaseError(message: "v12: cannot read the definition of \(name)") }
                try db.execute(sql: made)
                try db.execute(sql: "INSERT INTO \"\(name)_v12\" SELECT * FROM \"\(name)\"")
                try db.execute(sql: "DROP TABLE \"\(name)\"")
                try db.execute(sql: "ALTER TABLE \"\(name)_v12\" RENAME TO \"\(name)\"")
                for index in indexes { try db.execute(sql: index) }
                if let sequence {
                    try db.execute(sql: "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", arguments: [sequence, name])
                    if db.changesCount == 0 {
                        try db.execute(sql: "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", arguments: [name, sequence])
                    }
                }
            }
            try db.execute(sql: "CREATE TABLE songOwnerForgotten (ownerID INTEGER PRIMARY KEY)")
        }
    }

    /// Adds messages inside the caller's transaction.
    static func enqueue(_ db: Database, _ topic: OutboxMessage.Topic, _ subjects: [Int64], payload: String? = nil) throws {
        let now = Date()
        for subject in subjects {
            try db.execute(sql: "INSERT INTO outbox (topic, subject, payload, createdAt) VALUES (?, ?, ?, ?)",
                           arguments: [topic.rawValue, subject, payload, now])
        }
    }

    public func pendingOutbox(limit: Int) async throws -> [OutboxMessage] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT id, topic, subject, payload FROM outbox ORDER BY id LIMIT ?", arguments: [limit])
                .compactMap { row in
                    OutboxMessage.Topic(rawValue: row["topic"]).map {
                        OutboxMessage(id: row["id"], topic: $0, subject: row["subject"], payload: row["payload"])
                    }
                }
        }
    }

    public func removeOutbox(ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        try await write { db in
            for id in ids { try db.execute(sql: "DELETE FROM outbox WHERE id = ?", arguments: [id]) }
        }
    }
}

extension PostgresStore: OutboxRepository {
    func enqueue(_ conn: PostgresConnection, _ topic: OutboxMessage.Topic, _ subjects: [Int64], payload: String? = nil) async throws {
        guard !subjects.isEmpty else { return }
        try await conn.query("""
            INSERT INTO outbox (topic, subject, payload, createdAt)
            SELECT \(topic.rawValue), unnest(\(subjects)::BIGINT[]), \(payload), \(Date())
            """, logger: logger)
    }

    public func pendingOutbox(limit: Int) async throws -> [OutboxMessage] {
        try await read { conn in
            var out: [OutboxMessage] = []
            for try await (id, topic, subject, payload) in try await conn.query(
                "SELECT id, topic, subject, payload FROM outbox ORDER BY id LIMIT \(limit)", logger: self.logger)
                .decode((Int64, String, Int64, String?).self) {
                if let t = OutboxMessage.Topic(rawValue: topic) {
                    out.append(OutboxMessage(id: id, topic: t, subject: subject, payload: payload))
                }
            }
            return out
        }
    }

    public func removeOutbox(ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        try await write { conn in
            try await conn.query("DELETE FROM outbox WHERE id = ANY(\(ids)::BIGINT[])", logger: self.logger)
        }
    }
}
