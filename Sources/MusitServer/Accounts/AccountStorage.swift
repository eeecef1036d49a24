import Foundation
import GRDB
import MusitAPI

public struct User: Equatable, Sendable {
    public var id: Int64
    public var username: String
    public var displayName: String
    public var passwordHash: String
    public var role: Role
    public var bio: String

    public var info: UserInfo {
        UserInfo(id: id, username: username, displayName: displayName, role: role, bio: bio)
    }
}

public struct StoredRefreshToken: Equatable, Sendable {
    public var id: Int64
    public var userID: Int64
    /// Every token rotated from one login shares a family; reuse revokes the family.
    public var family: String
    public var expiresAt: Date
    public var usedAt: Date?
    public var revokedAt: Date?
}

public enum StorageError: Error, Equatable {
    case usernameTaken
}

/// Users as every route sees them: found by id or name. The store, or Accounts over gRPC
/// (`RemoteAccounts`, whose users carry no password hash).
public protocol UserDirectory: Sendable {
    func user(named username: String) async throws -> User?
    func user(id: Int64) async throws -> User?
    /// The users of `ids` that exist, in no particular order.
    func users(ids: [Int64]) async throws -> [User]
    func userCount() async throws -> Int
    /// Users whose name or display name contains `query`, by name.
    func searchUsers(_ query: String, limit: Int) async throws -> [User]
}

/// Accounts. Handlers talk to these protocols, so another database can stand behind them.
public protocol UserRepository: UserDirectory {
    /// Creates a user; the first user ever becomes admin when `firstIsAdmin`.
    func createUser(username: String, displayName: String, passwordHash: String, role: Role,
                    firstIsAdmin: Bool) async throws -> User
    /// Deletes the user and their refresh tokens, and writes `user.deleted` to the outbox for
    /// each service that keeps something of theirs (Stats, Social, Library), in one
    /// transaction; nothing when there is no such user.
    func deleteUser(_ user: User) async throws
    /// Sets what is given of the profile; the user as now stored, nil when there is none.
    func updateProfile(userID: Int64, displayName: String?, bio: String?) async throws -> User?
}

public protocol RefreshTokenRepository: Sendable {
    func insertRefreshToken(hash: String, userID: Int64, family: String, expiresAt: Date) async throws
    /// Marks the token used and returns it as it was before, atomically; nil when unknown.
    func consumeRefreshToken(hash: String, at: Date) async throws -> StoredRefreshToken?
    func revokeFamily(_ family: String, at: Date) async throws
    func revokeToken(hash: String, at: Date) async throws -> StoredRefreshToken?
}

/// SQLite in WAL mode through GRDB, with versioned migrations.
public final class SQLiteStore: UserRepository, RefreshTokenRepository {
    let pool: DatabasePool

    public init(path: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(5)
        pool = try DatabasePool(path: path, configuration: config)
        try Self.migrator.migrate(pool)
        // Readers run side by side; writes one at a time.
        DatabaseMetrics.poolSize(system: "sqlite", config.maximumReaderCount)
    }

    /// A write transaction (one at a time, SQLite's single writer), a span when tracing.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let pool = self.pool
        return try await Telemetry.span("sqlite write", kind: .client, attributes: [("db.system", "sqlite")]) {
            try await Self.writes.measure { try await pool.write(body) }
        }
    }

    /// A read in a snapshot of its own, a span when tracing.
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let pool = self.pool
        return try await Telemetry.span("sqlite read", kind: .client, attributes: [("db.system", "sqlite")]) {
            try await Self.reads.measure { try await pool.read(body) }
        }
    }

    private static let writes = DatabaseMetrics(system: "sqlite", kind: "write")
    private static let reads = DatabaseMetrics(system: "sqlite", kind: "read")

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-accounts") { db in
            try db.create(table: "user") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("username", .text).notNull().unique().collate(.nocase)
                t.column("displayName", .text).notNull()
                t.column("passwordHash", .text).notNull()
                t.column("role", .text).notNull()
                t.column("bio", .text).notNull().defaults(to: "")
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "refreshToken") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("userID", .integer).notNull().indexed().references("user", onDelete: .cascade)
                t.column("family", .text).notNull().indexed()
                t.column("tokenHash", .text).notNull().unique()
                t.column("expiresAt", .datetime).notNull()
                t.column("usedAt", .datetime)
                t.column("revokedAt", .datetime)
                t.column("createdAt", .datetime).notNull()
            }
        }
        registerSocialMigrations(&m)
        registerSongMigrations(&m)
        registerPlayMigrations(&m)
        registerEventLogMigration(&m)
        registerDurationMigration(&m)
        registerPlaySongMigration(&m)
        registerOutboxMigration(&m)
        registerEventLogOwnerMigration(&m)
        registerFormatMigration(&m)
        registerLibraryOutboxMigration(&m)
        registerServicesOwnTheirRowsMigration(&m)
        return m
    }

    static func userRow(_ row: Row) -> User {
        User(id: row["id"], username: row["username"], displayName: row["displayName"],
             passwordHash: row["passwordHash"], role: Role(rawValue: row["role"]) ?? .user, bio: row["bio"])
    }

    private static func token(_ row: Row) -> StoredRefreshToken {
        StoredRefreshToken(id: row["id"], userID: row["userID"], family: row["family"], expiresAt: row["expiresAt"],
                           usedAt: row["usedAt"], revokedAt: row["revokedAt"])
    }

    public func createUser(username: String, displayName: String, passwordHash: String, role: Role,
                           firstIsAdmin: Bool) async throws -> User {
        try await write { db in
            if try Row.fetchOne(db, sql: "SELECT 1 FROM user WHERE username = ? COLLATE NOCASE", arguments: [username]) != nil {
                throw StorageError.usernameTaken
            }
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM user") ?? 0
            let effective: Role = firstIsAdmin && count == 0 ? .admin : role
            try db.execute(sql: """
                INSERT INTO user (username, displayName, passwordHash, role, bio, createdAt) VALUES (?, ?, ?, ?, '', ?)
                """, arguments: [username, displayName, passwordHash, effective.rawValue, Date()])
            let id = db.lastInsertedRowID
            // Social starts the user's log from the outbox (`user.created`).
            try Self.enqueue(db, .userCreated, [id], payload: username)
            return User(id: id, username: username, displayName: displayName,
                        passwordHash: passwordHash, role: effective, bio: "")
        }
    }

    public func user(named username: String) async throws -> User? {
        // A name that no account can have is nobody's: "victim\0zz" is not "victim".
        guard TextRules.isValidUsername(username) else { return nil }
        return try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM user WHERE username = ? COLLATE NOCASE", arguments: [username]).map(Self.userRow)
        }
    }

    public func user(id: Int64) async throws -> User? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM user WHERE id = ?", arguments: [id]).map(Self.userRow)
        }
    }

    public func users(ids: [Int64]) async throws -> [User] {
        guard !ids.isEmpty else { return [] }
        return try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM user WHERE id IN (SELECT value FROM json_each(?))",
                             arguments: [String(decoding: try JSONEncoder().encode(ids), as: UTF8.self)]).map(Self.userRow)
        }
    }

    public func userCount() async throws -> Int {
        try await read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM user") ?? 0 }
    }

    public func deleteUser(_ user: User) async throws {
        try await write { db in
            try db.execute(sql: "DELETE FROM user WHERE id = ?", arguments: [user.id])
            guard db.changesCount > 0 else { return }
            for topic in OutboxMessage.Topic.accountDeletion { try Self.enqueue(db, topic, [user.id], payload: user.username) }
        }
    }

    public func insertRefreshToken(hash: String, userID: Int64, family: String, expiresAt: Date) async throws {
        try await write { db in
            try db.execute(sql: """
                INSERT INTO refreshToken (userID, family, tokenHash, expiresAt, createdAt) VALUES (?, ?, ?, ?, ?)
                """, arguments: [userID, family, hash, expiresAt, Date()])
        }
    }

    public func consumeRefreshToken(hash: String, at date: Date) async throws -> StoredRefreshToken? {
        try await write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM refreshToken WHERE tokenHash = ?", arguments: [hash]) else {
                return nil
            }
            let before = Self.token(row)
            if before.usedAt == nil {
                try db.execute(sql: "UPDATE refreshToken SET usedAt = ? WHERE id = ?", arguments: [date, before.id])
            }
            return before
        }
    }

    public func revokeFamily(_ family: String, at date: Date) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE refreshToken SET revokedAt = ? WHERE family = ? AND revokedAt IS NULL",
                           arguments: [date, family])
        }
    }

    public func revokeToken(hash: String, at date: Date) async throws -> StoredRefreshToken? {
        try await write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM refreshToken WHERE tokenHash = ?", arguments: [hash]) else {
                return nil
            }
            let token = Self.token(row)
            try db.execute(sql: "UPDATE refreshToken SET revokedAt = ? WHERE family = ? AND revokedAt IS NULL",
                           arguments: [date, token.family])
            return token
        }
    }
}

/// Profiles: what a user says of themselves, and finding one another.
extension SQLiteStore {
    /// A LIKE pattern (for ESCAPE '\\') matching text that contains `query` literally:
    /// a search for "50%" finds "50%", not everything.
    static func containsPattern(_ query: String) -> String {
        "%" + query.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
    }

    public func updateProfile(userID: Int64, displayName: String?, bio: String?) async throws -> User? {
        try await write { db in
            if let displayName {
                try db.execute(sql: "UPDATE user SET displayName = ? WHERE id = ?", arguments: [displayName, userID])
            }
            if let bio { try db.execute(sql: "UPDATE user SET bio = ? WHERE id = ?", arguments: [bio, userID]) }
            return try Row.fetchOne(db, sql: "SELECT * FROM user WHERE id = ?", arguments: [userID]).map(SQLiteStore.userRow)
        }
    }

    public func searchUsers(_ query: String, limit: Int) async throws -> [User] {
        let like = Self.containsPattern(query)
        return try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM user WHERE username LIKE ? ESCAPE '\\' OR displayName LIKE ? ESCAPE '\\'
                ORDER BY username COLLATE NOCASE LIMIT ?
                """, arguments: [like, like, limit]).map(SQLiteStore.userRow)
        }
    }
}
