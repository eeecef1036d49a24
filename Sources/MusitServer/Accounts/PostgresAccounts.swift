import Foundation
import MusitAPI
import MusitCodecs
import PostgresNIO

// The repositories on PostgreSQL; see `PostgresStore` for why each is exact.

let userColumns = "id, username, displayName, passwordHash, role, bio"
typealias UserRow = (Int64, String, String, String, String, String)

func makeUser(_ r: UserRow) -> User {
    User(id: r.0, username: r.1, displayName: r.2, passwordHash: r.3, role: Role(rawValue: r.4) ?? .user, bio: r.5)
}

extension PostgresStore {
    func users(_ conn: PostgresConnection, _ query: PostgresQuery) async throws -> [User] {
        var out: [User] = []
        for try await r in try await conn.query(query, logger: logger).decode(UserRow.self) { out.append(makeUser(r)) }
        return out
    }
}

extension PostgresStore: UserRepository {
    public func createUser(username: String, displayName: String, passwordHash: String, role: Role,
                           firstIsAdmin: Bool) async throws -> User {
        do {
            return try await write { conn in
                // One registration at a time decides who is first.
                try await conn.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock + 1))", logger: self.logger)
                let count = try await self.int64s(conn, #"SELECT COUNT(*) FROM "user""#).first ?? 0
                let effective: Role = firstIsAdmin && count == 0 ? .admin : role
                let id = try await self.int64s(conn, #"""
                    INSERT INTO "user" (username, displayName, passwordHash, role, bio, createdAt)
                    VALUES (\#(username), \#(displayName), \#(passwordHash), \#(effective.rawValue), '', \#(Date())) RETURNING id
                    """#).first!
                // Social starts the user's log from the outbox (`user.created`).
                try await self.enqueue(conn, .userCreated, [id], payload: username)
                return User(id: id, username: username, displayName: displayName, passwordHash: passwordHash, role: effective, bio: "")
            }
        } catch where Self.isUniqueViolation(error) {
            throw StorageError.usernameTaken
        }
    }

    public func user(named username: String) async throws -> User? {
        guard TextRules.isValidUsername(username) else { return nil }
        return try await read { conn in
            try await self.users(conn, #"SELECT \#(unescaped: userColumns) FROM "user" WHERE lower(username) = lower(\#(username))"#).first
        }
    }

    public func user(id: Int64) async throws -> User? {
        try await read { conn in try await self.users(conn, #"SELECT \#(unescaped: userColumns) FROM "user" WHERE id = \#(id)"#).first }
    }

    public func users(ids: [Int64]) async throws -> [User] {
        guard !ids.isEmpty else { return [] }
        return try await read { conn in
            try await self.users(conn, #"SELECT \#(unescaped: userColumns) FROM "user" WHERE id = ANY(\#(ids))"#)
        }
    }

    public func userCount() async throws -> Int {
        try await read { conn in Int(try await self.int64s(conn, #"SELECT COUNT(*) FROM "user""#).first ?? 0) }
    }

    public func deleteUser(_ user: User) async throws {
        try await write { conn in
            guard try await self.rowCount(conn, #"DELETE FROM "user" WHERE id = \#(user.id) RETURNING 1"#) > 0 else { return }
            try await self.notify(conn, ["u:\(user.id)"])
            for topic in OutboxMessage.Topic.accountDeletion { try await self.enqueue(conn, topic, [user.id], payload: user.username) }
        }
    }
}

extension PostgresStore: RefreshTokenRepository {
    private typealias TokenRow = (Int64, Int64, String, Date, Date?, Date?)

    private func token(_ r: TokenRow) -> StoredRefreshToken {
        StoredRefreshToken(id: r.0, userID: r.1, family: r.2, expiresAt: r.3, usedAt: r.4, revokedAt: r.5)
    }

    public func insertRefreshToken(hash: String, userID: Int64, family: String, expiresAt: Date) async throws {
        _ = try await write { conn in
            try await conn.query("""
                INSERT INTO refreshToken (userID, family, tokenHash, expiresAt, createdAt) VALUES (\(userID), \(family), \(hash), \(expiresAt), \(Date()))
                """, logger: self.logger)
        }
    }

    public func consumeRefreshToken(hash: String, at date: Date) async throws -> StoredRefreshToken? {
        try await write { conn in
            // The row locked, its state before, then marked used: one caller sees it unused.
            for try await r in try await conn.query("""
                SELECT id, userID, family, expiresAt, usedAt, revokedAt FROM refreshToken WHERE tokenHash = \(hash) FOR UPDATE
                """, logger: self.logger).decode(TokenRow.self) {
                let before = self.token(r)
                if before.usedAt == nil {
                    try await conn.query("UPDATE refreshToken SET usedAt = \(date) WHERE id = \(before.id)", logger: self.logger)
                }
                return before
            }
            return nil
        }
    }

    public func revokeFamily(_ family: String, at date: Date) async throws {
        _ = try await write { conn in
            try await conn.query("UPDATE refreshToken SET revokedAt = \(date) WHERE family = \(family) AND revokedAt IS NULL",
                                 logger: self.logger)
        }
    }

    public func revokeToken(hash: String, at date: Date) async throws -> StoredRefreshToken? {
        try await write { conn in
            var found: StoredRefreshToken?
            for try await r in try await conn.query("""
                SELECT id, userID, family, expiresAt, usedAt, revokedAt FROM refreshToken WHERE tokenHash = \(hash)
                """, logger: self.logger).decode(TokenRow.self) { found = self.token(r) }
            guard let found else { return nil }
            try await conn.query("UPDATE refreshToken SET revokedAt = \(date) WHERE family = \(found.family) AND revokedAt IS NULL",
                                 logger: self.logger)
            return found
        }
    }
}

/// Profiles: what a user says of themselves, and finding one another.
extension PostgresStore {
    public func updateProfile(userID: Int64, displayName: String?, bio: String?) async throws -> User? {
        try await write { conn in
            if let displayName {
                try await conn.query(#"UPDATE "user" SET displayName = \#(displayName) WHERE id = \#(userID)"#, logger: self.logger)
            }
            if let bio { try await conn.query(#"UPDATE "user" SET bio = \#(bio) WHERE id = \#(userID)"#, logger: self.logger) }
            return try await self.users(conn, #"SELECT \#(unescaped: userColumns) FROM "user" WHERE id = \#(userID)"#).first
        }
    }

    public func searchUsers(_ query: String, limit: Int) async throws -> [User] {
        let like = SQLiteStore.containsPattern(query)
        return try await read { conn in
            try await self.users(conn, #"""
                SELECT \#(unescaped: userColumns) FROM "user"
                WHERE username ILIKE \#(like) ESCAPE '\' OR displayName ILIKE \#(like) ESCAPE '\'
                ORDER BY lower(username) LIMIT \#(limit)
                """#)
        }
    }
}
