import Foundation
import MusitAPI
import MusitApp
import MusitAudio
import MusitCodecs
@testable import MusitClient
import MusitTestSupport
import MusitViewModel
import Testing

@Suite("Client: the server's library as the queue")
struct LibraryTests {
    /// `count` distinct MP3s: the same audio with a different title tag (so a different hash).
    static func songs(_ count: Int) throws -> String {
        let dir = NSTemporaryDirectory() + "musit-lib-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let audio = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tag_v1.mp3"))).dropLast(128)
        for i in 0..<count {
            // An ID3v1 tag: "TAG", title (30), artist (30), album (30), year (4), comment (30), genre.
            func field(_ s: String, _ n: Int) -> [UInt8] { Array((Array(s.utf8) + [UInt8](repeating: 0, count: n)).prefix(n)) }
            let tag = Array("TAG".utf8) + field(String(format: "Song %03d", i), 30) + field(i % 2 == 0 ? "Even" : "Odd", 30)
                + field("Paged", 30) + field("2026", 4) + field("", 30) + [255]
            try (audio + tag).write(to: URL(fileURLWithPath: dir + String(format: "/%03d.mp3", i)))
        }
        return dir
    }

    @Test("offset pages over cursor pages, server search, and every listed song in the player's queue")
    func paging() async throws {
        let dir = try Self.songs(230)
        try await LiveServer.with { base in
            let api = try await LiveServer.client(base, "pager")
            for name in try FileManager.default.contentsOfDirectory(atPath: dir).sorted() {
                _ = try await api.upload(path: dir + "/" + name) { _, _ in }
            }
            let player = Player(configuration: PlayerConfiguration(device: "null-unused"))
            defer { player.shutdown() }
            let posted = Locked<[Action]>([])
            let library = ServerLibrary(client: api, opener: StreamOpener(client: api), player: player,
                                        post: { a in posted.withLock { $0.append(a) } })
            func page(_ offset: Int, _ filter: String = "", generation: Int = 0) async -> QueuePage? {
                await library.serve(QueuePageRequest(offset: offset, limit: 100, filter: filter, generation: generation))
                return posted.withLock { $0 }.compactMap { if case .pageLoaded(let p) = $0 { p } else { nil } }.last
            }
            // Straight to the third page: the first two are fetched on the way.
            let third = try #require(await page(200))
            #expect(third.items.map(\.title) == (200..<230).map { String(format: "Song %03d", $0) })
            #expect(third.total == 230 && !third.hasMore)
            let first = try #require(await page(0))
            #expect(first.items.count == 100 && first.items.first?.title == "Song 000")
            #expect(first.items.first?.detail == "Even · Paged")
            #expect(first.items.map(\.index) == Array(0..<100), "rows are their places in the player's queue")
            // A search is the server's: odd artists only, in pages of their own.
            let odd = try #require(await page(100, "Odd", generation: 1))
            #expect(odd.items.count == 15 && odd.total == 115)
            #expect(odd.items.allSatisfy { $0.detail?.hasPrefix("Odd") == true })
            #expect(odd.items.map(\.index) == stride(from: 201, to: 230, by: 2).map { $0 }, "same queue places as unfiltered")
            #expect(await library.song(at: 229)?.title == "Song 229")
            #expect(player.status.queueCount == 230, "the player's queue holds each listed song once")
        }
    }
}
