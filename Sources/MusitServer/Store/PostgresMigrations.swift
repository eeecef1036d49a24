import Foundation
import PostgresNIO

/// Versioned migrations for PostgreSQL, run at start. Instances that start together take
/// one transaction-scoped advisory lock in turn: the first applies what is missing, the
/// others then find it applied, so each migration runs once.
extension PostgresStore {
    static let migrations: [(version: Int, sql: [String])] = [
        (1, [
            """
            CREATE TABLE "user" (
              id BIGSERIAL PRIMARY KEY,
              username TEXT NOT NULL,
              displayName TEXT NOT NULL,
              passwordHash TEXT NOT NULL,
              role TEXT NOT NULL,
              bio TEXT NOT NULL DEFAULT '',
              createdAt TIMESTAMPTZ NOT NULL,
              eventHead BIGINT NOT NULL DEFAULT 0)
            """,
            #"CREATE UNIQUE INDEX user_username ON "user" (lower(username))"#,
            """
            CREATE TABLE refreshToken (
              id BIGSERIAL PRIMARY KEY,
              userID BIGINT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
              family TEXT NOT NULL,
              tokenHash TEXT NOT NULL UNIQUE,
              expiresAt TIMESTAMPTZ NOT NULL,
              usedAt TIMESTAMPTZ,
              revokedAt TIMESTAMPTZ,
              createdAt TIMESTAMPTZ NOT NULL)
            """,
            "CREATE INDEX refreshToken_user ON refreshToken (userID)",
            "CREATE INDEX refreshToken_family ON refreshToken (family)",
            """
            CREATE TABLE friendship (
              id BIGSERIAL PRIMARY KEY,
              requesterID BIGINT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
              addresseeID BIGINT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
              accepted BOOLEAN NOT NULL DEFAULT FALSE,
              createdAt TIMESTAMPTZ NOT NULL)
            """,
            "CREATE UNIQUE INDEX friendship_pair ON friendship (LEAST(requesterID, addresseeID), GREATEST(requesterID, addresseeID))",
            "CREATE INDEX friendship_addressee ON friendship (addresseeID)",
            """
            CREATE TABLE message (
              id BIGSERIAL PRIMARY KEY,
              fromID BIGINT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
              toID BIGINT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
              clientID TEXT NOT NULL,
              body TEXT NOT NULL,
              sentAt TIMESTAMPTZ NOT NULL,
              readAt TIMESTAMPTZ,
              UNIQUE (fromID, clientID))
            """,
            "CREATE INDEX message_pair ON message (fromID, toID, id)",
            """
            CREATE TABLE presence (
              userID BIGINT PRIMARY KEY REFERENCES "user"(id) ON DELETE CASCADE,
              nowPlaying TEXT,
              lastSeen TIMESTAMPTZ NOT NULL)
            """,
            """
            CREATE TABLE eventHorizon (
              userID BIGINT PRIMARY KEY REFERENCES "user"(id) ON DELETE CASCADE,
              prunedThrough BIGINT NOT NULL)
            """,
            """
            CREATE TABLE userEvent (
              userID BIGINT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
              seq BIGINT NOT NULL,
              kind TEXT NOT NULL,
              payload TEXT NOT NULL,
              createdAt TIMESTAMPTZ NOT NULL,
              PRIMARY KEY (userID, seq))
            """,
            "CREATE INDEX userEvent_createdAt ON userEvent (createdAt)",
            """
            CREATE TABLE song (
              id BIGSERIAL PRIMARY KEY,
              ownerID BIGINT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
              sha256 TEXT NOT NULL UNIQUE,
              title TEXT NOT NULL,
              artist TEXT,
              album TEXT,
              trackNumber BIGINT,
              year BIGINT,
              duration DOUBLE PRECISION NOT NULL,
              bytes BIGINT NOT NULL,
              coverMime TEXT,
              hls TEXT NOT NULL,
              createdAt TIMESTAMPTZ NOT NULL,
              scanVersion INTEGER NOT NULL DEFAULT 1)
            """,
            "CREATE INDEX song_owner ON song (ownerID)",
            """
            CREATE TABLE play (
              id BIGSERIAL PRIMARY KEY,
              userID BIGINT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
              songID BIGINT NOT NULL REFERENCES song(id) ON DELETE CASCADE,
              startedAt TIMESTAMPTZ NOT NULL,
              position DOUBLE PRECISION NOT NULL DEFAULT 0,
              endedAt TIMESTAMPTZ)
            """,
            "CREATE INDEX play_user ON play (userID)",
            "CREATE INDEX play_song ON play (songID)",
            "CREATE INDEX play_startedAt ON play (startedAt)",
        ]),
        // Login attempts and presence, shared by the instances (see `LoginThrottling`,
        // `PresenceRepository`).
        (2, [
            """
            CREATE TABLE loginAttempt (
              key TEXT NOT NULL,
              at TIMESTAMPTZ NOT NULL)
            """,
            "CREATE INDEX loginAttempt_key ON loginAttempt (key, at)",
            "CREATE INDEX loginAttempt_at ON loginAttempt (at)",
            "CREATE INDEX presence_lastSeen ON presence (lastSeen)",
        ]),
        // A play keeps its song's title and artist: Stats owns the plays and reads no
        // library table (`PlayRepository`).
        (3, [
            "ALTER TABLE play ADD COLUMN title TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE play ADD COLUMN artist TEXT",
            "UPDATE play SET title = song.title, artist = song.artist FROM song WHERE song.id = play.songID",
        ]),
        // Stats owns the plays: no foreign keys into accounts and the library, which tell
        // it of deletions through the outbox (`OutboxRelay`); what it forgot stays refused.
        (4, [
            "ALTER TABLE play DROP CONSTRAINT IF EXISTS play_userid_fkey",
            "ALTER TABLE play DROP CONSTRAINT IF EXISTS play_songid_fkey",
            "CREATE TABLE playForgotten (kind TEXT NOT NULL, subject BIGINT NOT NULL, PRIMARY KEY (kind, subject))",
            """
            CREATE TABLE outbox (
              id BIGSERIAL PRIMARY KEY,
              topic TEXT NOT NULL,
              subject BIGINT NOT NULL,
              createdAt TIMESTAMPTZ NOT NULL)
            """,
        ]),
        // Social owns the event log's heads: out of Accounts' "user" into a table of its own,
        // which the log's rows hang from. An append locks its users' eventLog rows and then
        // inserts rows that reference them (a key-share lock it already covers); an account
        // deletion locks the "user" row and cascades to eventLog, waiting for the appenders.
        // With the log's rows referencing "user" instead, an appender would wait on the
        // deletion's "user" lock while the deletion waits on its eventLog lock: a deadlock.
        (5, [
            """
            CREATE TABLE eventLog (
              userID BIGINT PRIMARY KEY REFERENCES "user"(id) ON DELETE CASCADE,
              head BIGINT NOT NULL DEFAULT 0)
            """,
            #"INSERT INTO eventLog (userID, head) SELECT id, eventHead FROM "user""#,
            #"ALTER TABLE "user" DROP COLUMN eventHead"#,
            "ALTER TABLE userEvent DROP CONSTRAINT IF EXISTS userevent_userid_fkey",
            "ALTER TABLE userEvent ADD CONSTRAINT userEvent_log FOREIGN KEY (userID) REFERENCES eventLog(userID) ON DELETE CASCADE",
            "ALTER TABLE eventHorizon DROP CONSTRAINT IF EXISTS eventhorizon_userid_fkey",
            "ALTER TABLE eventHorizon ADD CONSTRAINT eventHorizon_log FOREIGN KEY (userID) REFERENCES eventLog(userID) ON DELETE CASCADE",
        ]),
        // FLAC, Vorbis and Opus beside MP3: each song says what it is. Rows from before are MP3s.
        (6, [
            "ALTER TABLE song ADD COLUMN format TEXT NOT NULL DEFAULT 'mp3'",
            "ALTER TABLE song ADD COLUMN channels INTEGER",
            "ALTER TABLE song ADD COLUMN bitDepth INTEGER",
        ]),
        // Library's changes reach Social through the outbox: who changed it, and Social's
        // record of the messages it applied.
        (7, [
            "ALTER TABLE outbox ADD COLUMN payload TEXT",
            """
            CREATE TABLE consumedOutbox (
              source TEXT NOT NULL, id BIGINT NOT NULL, at TIMESTAMPTZ NOT NULL, PRIMARY KEY (source, id))
            """,
            "CREATE INDEX consumedOutbox_at ON consumedOutbox (at)",
        ]),
        // Accounts' rows no longer cascade into the other services' tables: an account's
        // deletion reaches Library and Social as `user.deleted` outbox messages. Every
        // foreign key to "user" but the refresh tokens' (Accounts' own) goes; Library keeps
        // the owners it forgot, whose uploads it refuses from then on.
        (8, [
            """
            DO $$
            DECLARE r record;
            BEGIN
              FOR r IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
                       WHERE contype = 'f' AND confrelid = '"user"'::regclass AND conrelid <> 'refreshtoken'::regclass
              LOOP
                EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
              END LOOP;
            END $$
            """,
            "CREATE TABLE songOwnerForgotten (ownerID BIGINT PRIMARY KEY)",
        ]),
    ]

    /// The advisory lock key of the migrations ("musit" in ASCII).
    static let migrationLock: Int64 = 0x6D_75_73_69_74

    func migrate(schema: String?) async throws {
        let applied = try await client.withTransaction(logger: logger) { conn -> [Int] in
            try await conn.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: self.logger)
            if let schema {
                try await conn.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(schema)"), logger: self.logger)
            }
            try await conn.query("CREATE TABLE IF NOT EXISTS musit_migration (version INTEGER PRIMARY KEY, appliedAt TIMESTAMPTZ NOT NULL)",
                                 logger: self.logger)
            var done = Set<Int>()
            for try await v in try await conn.query("SELECT version FROM musit_migration", logger: self.logger).decode(Int.self) {
                done.insert(v)
            }
            var applied: [Int] = []
            for m in Self.migrations where !done.contains(m.version) {
                for statement in m.sql { try await conn.query(PostgresQuery(unsafeSQL: statement), logger: self.logger) }
                try await conn.query("INSERT INTO musit_migration (version, appliedAt) VALUES (\(m.version), \(Date()))",
                                     logger: self.logger)
                applied.append(m.version)
            }
            return applied
        }
        if !applied.isEmpty {
            logger.notice("PostgreSQL migrations applied", metadata: ["versions": "\(applied)"])
        }
    }
}
