import Foundation
import MusitAPI
import MusitAudio
import PostgresNIO

// The repositories on PostgreSQL; see `PostgresStore` for why each is exact.

private let userColumns = "id, username, displayName, passwordHash, role, bio"
private typealias UserRow = (Int64, String, String, String, String, String)

private func makeUser(_ r: UserRow) -> User {
    User(id: r.0, username: r.1, displayName: r.2, passwordHash: r.3, role: Role(rawValue: r.4) ?? .user, bio: r.5)
}

extension PostgresStore {
    func users(_ conn: PostgresConnection, _ query: PostgresQuery) async throws -> [User] {
        var out: [User] = []
        for try await r in try await conn.query(query, logger: logger).decode(UserRow.self) { out.append(makeUser(r)) }
        return out
    }

    func int64s(_ conn: PostgresConnection, _ query: PostgresQuery) async throws -> [Int64] {
        var out: [Int64] = []
        for try await v in try await conn.query(query, logger: logger).decode(Int64.self) { out.append(v) }
        return out
    }

    func rowCount(_ conn: PostgresConnection, _ query: PostgresQuery) async throws -> Int {
        // "RETURNING 1" rows stand for the rows a statement changed.
        var n = 0
        for try await _ in try await conn.query(query, logger: logger) { n += 1 }
        return n
    }

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
        try await conn.query(#"SELECT id FROM "user" WHERE id = ANY(\#(ids)) ORDER BY id FOR NO KEY UPDATE"#, logger: logger)
        var heads: [(Int64, Int64)] = []
        for try await r in try await conn.query("""
            UPDATE "user" SET eventHead = eventHead + 1 WHERE id = ANY(\(ids)) RETURNING id, eventHead
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

    /// Tells every instance at commit, or never (see `PostgresEventRelay`).
    func notify(_ conn: PostgresConnection, _ items: [String]) async throws {
        for payload in PostgresEventRelay.payloads(items, instance: instance) {
            try await conn.query("SELECT pg_notify(\(PostgresEventRelay.channel), \(payload))", logger: logger)
        }
    }

    func allUsers(_ conn: PostgresConnection) async throws -> [Int64] {
        try await int64s(conn, #"SELECT id FROM "user""#)
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

    public func userCount() async throws -> Int {
        try await read { conn in Int(try await self.int64s(conn, #"SELECT COUNT(*) FROM "user""#).first ?? 0) }
    }

    public func deleteUser(_ user: User) async throws -> (events: [CommittedEvent], songs: [Int64]) {
        try await write { conn in
            let songs = try await self.int64s(conn, "SELECT id FROM song WHERE ownerID = \(user.id) ORDER BY id")
            let others = try await self.int64s(conn, """
                SELECT addresseeID FROM friendship WHERE requesterID = \(user.id)
                UNION SELECT requesterID FROM friendship WHERE addresseeID = \(user.id)
                """)
            guard try await self.rowCount(conn, #"DELETE FROM "user" WHERE id = \#(user.id) RETURNING 1"#) > 0 else { return ([], []) }
            try await self.notify(conn, ["u:\(user.id)"] + songs.map { "s:\($0)" })
            var events = try await self.appendEvent(conn, .draft(.friendRemoved, user: user.username), to: others)
            if !songs.isEmpty {
                events += try await self.appendEvent(conn, .draft(.libraryChanged, user: user.username), to: try await self.allUsers(conn))
            }
            return (events, songs)
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
                SELECT u.eventHead, COALESCE(h.prunedThrough, 0), e.seq, e.payload, e.createdAt
                FROM "user" u
                LEFT JOIN eventHorizon h ON h.userID = u.id
                LEFT JOIN LATERAL (SELECT seq, payload, createdAt FROM userEvent
                                   WHERE userID = u.id AND seq > \#(cursor) ORDER BY seq LIMIT \#(limit)) e ON TRUE
                WHERE u.id = \#(user) ORDER BY e.seq
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

    public func pruneEvents(before date: Date) async throws -> Int {
        try await write { conn in
            try await conn.query("""
                INSERT INTO eventHorizon (userID, prunedThrough)
                SELECT userID, MAX(seq) FROM userEvent WHERE createdAt < \(date) GROUP BY userID
                ON CONFLICT (userID) DO UPDATE SET prunedThrough = GREATEST(eventHorizon.prunedThrough, excluded.prunedThrough)
                """, logger: self.logger)
            return try await self.rowCount(conn, "DELETE FROM userEvent WHERE createdAt < \(date) RETURNING 1")
        }
    }

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

    public func friends(of user: Int64) async throws -> (friends: [User], incoming: [User], outgoing: [User]) {
        try await read { conn in
            let cols = "u.id, u.username, u.displayName, u.passwordHash, u.role, u.bio"
            let friends = try await self.users(conn, #"""
                SELECT \#(unescaped: cols) FROM "user" u JOIN friendship f ON f.accepted AND
                  ((f.requesterID = \#(user) AND f.addresseeID = u.id) OR (f.addresseeID = \#(user) AND f.requesterID = u.id))
                ORDER BY lower(u.username)
                """#)
            let incoming = try await self.users(conn, #"""
                SELECT \#(unescaped: cols) FROM "user" u JOIN friendship f
                  ON NOT f.accepted AND f.addresseeID = \#(user) AND f.requesterID = u.id ORDER BY f.createdAt
                """#)
            let outgoing = try await self.users(conn, #"""
                SELECT \#(unescaped: cols) FROM "user" u JOIN friendship f
                  ON NOT f.accepted AND f.requesterID = \#(user) AND f.addresseeID = u.id ORDER BY f.createdAt
                """#)
            return (friends, incoming, outgoing)
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

extension PostgresStore: SongRepository {
    private static let songColumns =
        "id, ownerID, sha256, title, artist, album, trackNumber, year, duration, bytes, coverMime, hls, createdAt"
    private typealias SongRow = (Int64, Int64, String, String, String?, String?, Int64?, Int64?, Double, Int64, String?, String, Date)

    private func songs(_ conn: PostgresConnection, _ query: PostgresQuery) async throws -> [StoredSong] {
        var out: [StoredSong] = []
        for try await r in try await conn.query(query, logger: logger).decode(SongRow.self) {
            out.append(StoredSong(id: r.0, ownerID: r.1, sha256: r.2, title: r.3, artist: r.4, album: r.5,
                                  trackNumber: r.6.map(Int.init), year: r.7.map(Int.init), duration: r.8, bytes: r.9,
                                  coverMime: r.10, hls: try JSONDecoder().decode(HLSSegmenter.Index.self, from: Data(r.11.utf8)),
                                  createdAt: r.12))
        }
        return out
    }

    public func insertSong(_ song: StoredSong, quota: Int64, event: ServerEvent,
                           place: @escaping @Sendable (Int64) throws -> Void) async throws -> (StoredSong, [CommittedEvent]) {
        let hls = String(decoding: try JSONEncoder().encode(song.hls), as: UTF8.self)
        do {
            return try await write { conn in
                // The owner's uploads one at a time, so the quota holds.
                try await conn.query("SELECT pg_advisory_xact_lock(\(Int32(0x6D75)), \(Int32(truncatingIfNeeded: song.ownerID)))",
                                     logger: self.logger)
                if let id = try await self.int64s(conn, "SELECT id FROM song WHERE sha256 = \(song.sha256)").first {
                    throw SongStorageError.duplicate(id)
                }
                let used = try await self.int64s(conn, "SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM song WHERE ownerID = \(song.ownerID)").first ?? 0
                guard used + song.bytes <= quota else { throw SongStorageError.quota }
                let track = song.trackNumber.map(Int64.init), year = song.year.map(Int64.init)
                let id = try await self.int64s(conn, """
                    INSERT INTO song (ownerID, sha256, title, artist, album, trackNumber, year, duration, bytes, coverMime, hls, createdAt)
                    VALUES (\(song.ownerID), \(song.sha256), \(song.title), \(song.artist), \(song.album), \(track), \(year),
                            \(song.duration), \(song.bytes), \(song.coverMime), \(hls), \(song.createdAt)) RETURNING id
                    """).first!
                var stored = song
                stored.id = id
                let events = try await self.appendEvent(conn, event, to: try await self.allUsers(conn))
                try place(id)
                return (stored, events)
            }
        } catch where Self.isUniqueViolation(error) {
            // Two identical uploads by different users at once: the other one committed first.
            if let other = try await self.song(sha256: song.sha256) { throw SongStorageError.duplicate(other.id) }
            throw error
        }
    }

    public func discardFiles(of id: Int64, remove: @escaping @Sendable () -> Void) async throws {
        _ = try await write { conn in
            // The row's lock, if it exists, keeps a commit of this id from racing the removal.
            if try await self.int64s(conn, "SELECT id FROM song WHERE id = \(id) FOR UPDATE").isEmpty { remove() }
        }
    }

    public func deleteSong(id: Int64, by user: User, event: ServerEvent) async throws -> SongDeletion {
        try await write { conn in
            guard let owner = try await self.int64s(conn, "SELECT ownerID FROM song WHERE id = \(id) FOR UPDATE").first else {
                return .notFound
            }
            guard owner == user.id || user.role == .admin else { return .forbidden }
            try await conn.query("DELETE FROM song WHERE id = \(id)", logger: self.logger)
            try await self.notify(conn, ["s:\(id)"])
            return .deleted(try await self.appendEvent(conn, event, to: try await self.allUsers(conn)))
        }
    }

    public func repairMedia(directory: String, event: ServerEvent) async throws -> MediaRepair {
        try await write { conn in
            var rows: [(Int64, Bool)] = []
            for try await (id, cover) in try await conn.query("SELECT id, coverMime FROM song", logger: self.logger)
                .decode((Int64, String?).self) {
                rows.append((id, cover != nil))
            }
            var (repair, coversMissing) = MediaFiles.reconcile(directory: directory, rows: rows)
            for id in repair.rowsWithoutFile { try await conn.query("DELETE FROM song WHERE id = \(id)", logger: self.logger) }
            for id in coversMissing { try await conn.query("UPDATE song SET coverMime = NULL WHERE id = \(id)", logger: self.logger) }
            if !repair.rowsWithoutFile.isEmpty {
                repair.events = try await self.appendEvent(conn, event, to: try await self.allUsers(conn))
            }
            return repair
        }
    }

    public func song(id: Int64) async throws -> StoredSong? {
        try await read { conn in try await self.songs(conn, "SELECT \(unescaped: Self.songColumns) FROM song WHERE id = \(id)").first }
    }

    public func song(sha256: String) async throws -> StoredSong? {
        try await read { conn in try await self.songs(conn, "SELECT \(unescaped: Self.songColumns) FROM song WHERE sha256 = \(sha256)").first }
    }

    public func songs(after: Int64, limit: Int, query: String?) async throws -> [StoredSong] {
        try await read { conn in
            if let query, !query.isEmpty {
                let like = SQLiteStore.containsPattern(query)
                return try await self.songs(conn, #"""
                    SELECT \#(unescaped: Self.songColumns) FROM song WHERE id > \#(after)
                      AND (title ILIKE \#(like) ESCAPE '\' OR artist ILIKE \#(like) ESCAPE '\' OR album ILIKE \#(like) ESCAPE '\')
                    ORDER BY id LIMIT \#(limit)
                    """#)
            }
            return try await self.songs(conn, "SELECT \(unescaped: Self.songColumns) FROM song WHERE id > \(after) ORDER BY id LIMIT \(limit)")
        }
    }

    public func bytesStored(by owner: Int64) async throws -> Int64 {
        try await read { conn in try await self.int64s(conn, "SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM song WHERE ownerID = \(owner)").first ?? 0 }
    }

    public func songsToRescan() async throws -> [Int64] {
        try await read { conn in try await self.int64s(conn, "SELECT id FROM song WHERE scanVersion < 1 ORDER BY id") }
    }

    public func storeScan(id: Int64, duration: Double?, hls: HLSSegmenter.Index?) async throws {
        let encoded = try hls.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        _ = try await write { conn in
            if let duration, let encoded {
                try await conn.query("UPDATE song SET duration = \(duration), hls = \(encoded), scanVersion = 1 WHERE id = \(id)",
                                     logger: self.logger)
            } else {
                try await conn.query("UPDATE song SET scanVersion = 1 WHERE id = \(id)", logger: self.logger)
            }
        }
    }
}

extension PostgresStore: PlayRepository {
    public func startPlay(userID: Int64, songID: Int64, at date: Date) async throws -> Int64 {
        try await write { conn in
            try await self.int64s(conn, "INSERT INTO play (userID, songID, startedAt) VALUES (\(userID), \(songID), \(date)) RETURNING id").first!
        }
    }

    public func updatePlay(id: Int64, userID: Int64, position: Double, ended: Bool) async throws -> Bool {
        try await write { conn in
            try await self.rowCount(conn, """
                UPDATE play SET position = \(position), endedAt = CASE WHEN \(ended) THEN \(Date()) ELSE endedAt END
                WHERE id = \(id) AND userID = \(userID) RETURNING 1
                """) > 0
        }
    }

    public func stats(now: Date) async throws -> (users: Int, songs: Int, bytes: Int64, perDay: [String: Int],
                                                 topSongs: [AdminStats.TopSong], topArtists: [AdminStats.TopArtist], listeners: Int) {
        try await read { conn in
            let users = Int(try await self.int64s(conn, #"SELECT COUNT(*) FROM "user""#).first ?? 0)
            let songs = Int(try await self.int64s(conn, "SELECT COUNT(*) FROM song").first ?? 0)
            let bytes = try await self.int64s(conn, "SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM song").first ?? 0
            let since = now.addingTimeInterval(-30 * 86400)
            var perDay: [String: Int] = [:]
            for try await d in try await conn.query("SELECT startedAt FROM play WHERE startedAt >= \(since)", logger: self.logger)
                .decode(Date.self) {
                perDay[SQLiteStore.day(d), default: 0] += 1
            }
            var top: [AdminStats.TopSong] = []
            for try await (id, title, artist, n) in try await conn.query("""
                SELECT s.id, s.title, s.artist, COUNT(*) AS n FROM play p JOIN song s ON s.id = p.songID
                GROUP BY s.id ORDER BY n DESC, s.id LIMIT 10
                """, logger: self.logger).decode((Int64, String, String?, Int64).self) {
                top.append(AdminStats.TopSong(songId: id, title: title, artist: artist, plays: Int(n)))
            }
            var artists: [AdminStats.TopArtist] = []
            for try await (artist, n) in try await conn.query("""
                SELECT s.artist, COUNT(*) AS n FROM play p JOIN song s ON s.id = p.songID WHERE s.artist IS NOT NULL
                GROUP BY s.artist ORDER BY n DESC, s.artist LIMIT 10
                """, logger: self.logger).decode((String, Int64).self) {
                artists.append(AdminStats.TopArtist(artist: artist, plays: Int(n)))
            }
            return (users, songs, bytes, perDay, top, artists, 0)
        }
    }
}
