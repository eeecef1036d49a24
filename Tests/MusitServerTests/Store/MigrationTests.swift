import Foundation
import GRDB
import Testing

@testable import MusitServer

/// SQLite cannot drop a foreign key, so migration v12 makes every table that referred to
/// `user` again from its own definition. A database as the previous release left it must
/// come through with every row, index and id sequence, and without a cascade from `user`.
@Suite("Storage migrations")
struct MigrationTests {
    @Test("v12 takes the cascades from user off and keeps every row, index and id sequence")
    func servicesOwnTheirRows() throws {
        let dir = NSTemporaryDirectory() + "musit-migration-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pool = try DatabasePool(path: dir + "/musit.sqlite")
        try SQLiteStore.migrator.migrate(pool, upTo: "v11-library-outbox")
        let now = Date()
        try pool.write { db in
            for name in ["ann", "bob"] {
                try db.execute(sql: "INSERT INTO user (username, displayName, passwordHash, role, createdAt) VALUES (?, ?, 'x', 'user', ?)",
                               arguments: [name, name, now])
                try db.execute(sql: "INSERT INTO eventLog (userID, head) VALUES (?, 1)", arguments: [db.lastInsertedRowID])
            }
            for n in 1...3 {
                try db.execute(sql: """
                    INSERT INTO song (ownerID, sha256, title, duration, bytes, hls, createdAt) VALUES (1, ?, ?, 1, 1, x'00', ?)
                    """, arguments: ["sha\(n)", "Song \(n)", now])
            }
            // The last song deleted: its id must never be given again (Stats forgets by id).
            try db.execute(sql: "DELETE FROM song WHERE id = 3")
            try db.execute(sql: "INSERT INTO friendship (requesterID, addresseeID, accepted, createdAt) VALUES (1, 2, 1, ?)", arguments: [now])
            try db.execute(sql: "INSERT INTO message (fromID, toID, clientID, body, sentAt) VALUES (1, 2, 'c1', 'hello', ?)", arguments: [now])
            try db.execute(sql: "INSERT INTO userEvent (userID, seq, kind, payload, createdAt) VALUES (2, 1, 'chat.message', x'7b7d', ?)",
                           arguments: [now])
            try db.execute(sql: "INSERT INTO presence (userID, lastSeen) VALUES (1, ?)", arguments: [now])
            try db.execute(sql: "INSERT INTO eventHorizon (userID, prunedThrough) VALUES (2, 0)")
        }
        let tables = ["song", "friendship", "message", "presence", "eventHorizon", "userEvent", "eventLog"]
        func counts(_ db: Database) throws -> [Int] { try tables.map { try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \($0)") ?? -1 } }
        let indexes = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name"
        let (rowsBefore, indexesBefore) = try pool.read { db in (try counts(db), try String.fetchAll(db, sql: indexes)) }

        try SQLiteStore.migrator.migrate(pool)

        try pool.write { db in
            #expect(try counts(db) == rowsBefore, "every row kept")
            #expect(try String.fetchAll(db, sql: indexes) == indexesBefore, "every index made again")
            let referring = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%REFERENCES%user%'")
            #expect(referring == ["refreshToken"], "only Accounts' own table refers to user: \(referring)")
            try db.execute(sql: "INSERT INTO song (ownerID, sha256, title, duration, bytes, hls, createdAt) VALUES (1, 'sha4', 'Four', 1, 1, x'00', ?)",
                           arguments: [now])
            #expect(db.lastInsertedRowID == 4, "the next song's id follows the deleted one's, not reusing it")
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM songOwnerForgotten") == 0)
            // Deleting the user now takes nothing of the others' with it: that is the outbox's.
            try db.execute(sql: "DELETE FROM user WHERE id = 1")
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM song WHERE ownerID = 1") == 3)
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM friendship") == 1)
        }
    }
}
