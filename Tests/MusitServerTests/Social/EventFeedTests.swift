import Foundation
import MusitAPI
@testable import MusitServer
import Testing

/// Social's notices to its gateways: replayed without a gap, or a reset.
@Suite("Social: the subscription feed")
struct EventFeedTests {
    static func event(_ user: Int64, _ id: Int64) -> CommittedEvent {
        CommittedEvent(userID: user, event: ServerEvent(id: id, kind: .libraryChanged, createdAt: "1970-01-01T00:00:00Z"))
    }

    static func ids(_ notices: [EventFeed.Notice]) -> [Int64] {
        notices.flatMap { $0.events.map { try! JSONDecoder().decode(ServerEvent.self, from: $0.eventJson).id } }
    }

    @Test("a new subscriber is reset; then every notice after its position, in order, without gaps")
    func replay() async {
        let feed = EventFeed()
        let first = await feed.next(stream: "", after: 0, timeout: .seconds(1))
        #expect(first.count == 1 && first[0].reset && first[0].seq == 0)
        feed.announce([Self.event(1, 1), Self.event(2, 1)])
        feed.announce([Self.event(1, 2)])
        let all = await feed.next(stream: feed.stream, after: 0, timeout: .seconds(1))
        #expect(all.map(\.seq) == [1, 2] && Self.ids(all) == [1, 1, 2] && !all.contains { $0.reset })
        let rest = await feed.next(stream: feed.stream, after: 1, timeout: .seconds(1))
        #expect(rest.map(\.seq) == [2])
        // Another run's position, or one from the future: reset at the current number.
        for (stream, after) in [("another", UInt64(1)), (feed.stream, UInt64(9))] {
            let reset = await feed.next(stream: stream, after: after, timeout: .seconds(1))
            #expect(reset.count == 1 && reset[0].reset && reset[0].seq == 2)
        }
    }

    @Test("a subscriber that fell out of the window, in notices or bytes, is reset; the window stays bounded")
    func window() async {
        let feed = EventFeed(windowNotices: 8, windowBytes: 1 << 20)
        for i in 1...20 { feed.announce([Self.event(1, Int64(i))]) }
        let behind = await feed.next(stream: feed.stream, after: 11, timeout: .seconds(1))
        #expect(behind.count == 1 && behind[0].reset && behind[0].seq == 20)
        let inside = await feed.next(stream: feed.stream, after: 12, timeout: .seconds(1))
        #expect(inside.map(\.seq) == Array(13...20))
        // Bytes: one large change leaves only itself.
        let small = EventFeed(windowNotices: 1000, windowBytes: 4096)
        small.announce([Self.event(1, 1)])
        small.announce((1...200).map { Self.event($0, 1) })
        let gone = await small.next(stream: small.stream, after: 0, timeout: .seconds(1))
        #expect(gone.first?.reset == true)
        // 200 events fit in one notice (at most 256 each); 600 take three.
        let feed2 = EventFeed()
        feed2.announce((1...600).map { Self.event($0, 2) })
        let split = await feed2.next(stream: feed2.stream, after: 0, timeout: .seconds(1))
        #expect(split.map { $0.events.count } == [256, 256, 88])
    }

    @Test("a waiting subscriber is woken by the next notice, and gets nothing at its timeout or when cancelled")
    func waiting() async throws {
        let feed = EventFeed()
        let started = ContinuousClock.now
        let nothing = await feed.next(stream: feed.stream, after: 0, timeout: .milliseconds(200))
        #expect(nothing.isEmpty && ContinuousClock.now - started >= .milliseconds(200))
        let waiter = Task { await feed.next(stream: feed.stream, after: 0, timeout: .seconds(30)) }
        while feed.waiting == 0 { try await Task.sleep(for: .milliseconds(5)) }
        feed.wakeAll()
        let woken = await waiter.value
        #expect(woken.count == 1 && woken[0].reset && woken[0].seq == 1)
        let cancelled = Task { await feed.next(stream: feed.stream, after: 1, timeout: .seconds(30)) }
        while feed.waiting == 0 { try await Task.sleep(for: .milliseconds(5)) }
        let t0 = ContinuousClock.now
        cancelled.cancel()
        #expect(await cancelled.value.isEmpty && ContinuousClock.now - t0 < .seconds(5) && feed.waiting == 0)
    }

    @Test("many subscribers and publishers at once: each subscriber sees every notice once, in order")
    func hammer() async {
        let feed = EventFeed(windowNotices: 100_000)
        let publishers = 8, each = 500
        await withTaskGroup(of: [UInt64].self) { group in
            for _ in 0..<16 {
                group.addTask {
                    var seen: [UInt64] = []
                    var after: UInt64 = 0
                    while seen.count < publishers * each {
                        let got = await feed.next(stream: feed.stream, after: after, timeout: .seconds(5))
                        guard let last = got.last else { break }
                        seen += got.map(\.seq)
                        after = last.seq
                    }
                    return seen
                }
            }
            for p in 0..<publishers {
                group.addTask {
                    for i in 0..<each { feed.announce([Self.event(Int64(p + 1), Int64(i + 1))]) }
                    return []
                }
            }
            for await seen in group where !seen.isEmpty {
                #expect(seen == Array(1...UInt64(publishers * each)))
            }
        }
    }

    @Test("a poll that read storage before a reset and holds after it is sent to storage, not held")
    func resetBetweenReadAndHold() async {
        let bus = EventBus()
        let before = bus.resetEpoch
        await bus.wakeAll()
        let wake = await bus.wait(id: bus.makeWaitID(), user: 1, after: 0, timeout: 5, limit: 10, epoch: before)
        #expect(wake == .readStorage)
        // Taken after the reset: held as usual, until its timeout.
        let started = ContinuousClock.now
        let held = await bus.wait(id: bus.makeWaitID(), user: 1, after: 0, timeout: 0.2, limit: 10, epoch: bus.resetEpoch)
        #expect(held == .nothing && ContinuousClock.now - started >= .milliseconds(150))
    }

    @Test("the signing key: made once by processes that start together; a key cut short is replaced")
    func signingKey() async throws {
        let dir = NSTemporaryDirectory() + "musit-key-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let keys = await withTaskGroup(of: [UInt8]?.self) { group in
            for _ in 0..<16 { group.addTask { try? SigningKey.load(secret: nil, dataDirectory: dir) } }
            var all: [[UInt8]?] = []
            for await k in group { all.append(k) }
            return all
        }
        #expect(keys.allSatisfy { $0 != nil && $0 == keys[0] } && keys[0]?.count == 64)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["jwt.key"])
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: dir + "/jwt.key"))
        let fresh = try SigningKey.load(secret: nil, dataDirectory: dir)
        #expect(fresh.count == 64 && FileManager.default.contents(atPath: dir + "/jwt.key") == Data(fresh))
    }
}
