import Foundation
@testable import MusitAudio
@testable import MusitCodecs
import MusitTestSupport
import Testing

/// Runs a player and records its events.
final class PlayerHarness: Sendable {
    let player: Player
    private let log = Locked<[PlayerEvent]>([])
    private let times = Locked<[Date]>([])

    init(device: String, configure: (inout PlayerConfiguration) -> Void = { _ in }) {
        _ = Fixtures.alsaConfig
        var config = PlayerConfiguration(device: device)
        configure(&config)
        player = Player(configuration: config)
        let log = self.log
        let times = self.times
        player.observe { event in
            log.withLock { $0.append(event) }
            times.withLock { $0.append(Date()) }
        }
    }

    var events: [PlayerEvent] { log.withLock { $0 } }

    /// When the first event matching `predicate` was emitted (on the audio thread).
    func time(of predicate: (PlayerEvent) -> Bool) -> Date? {
        let (events, times) = (log.withLock { $0 }, self.times.withLock { $0 })
        return zip(events, times).first { predicate($0.0) }?.1
    }

    var failures: [AudioError] {
        events.compactMap { if case .trackFailed(_, let e) = $0 { return e } else { return nil } }
    }

    var started: [Int] {
        events.compactMap { if case .trackStarted(let i, _, _) = $0 { return i } else { return nil } }
    }

    /// Waits until `predicate` holds for the events so far; fails the test on timeout.
    @discardableResult
    func wait(timeout: Double = 20, sourceLocation: SourceLocation = #_sourceLocation,
              until predicate: ([PlayerEvent]) -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if predicate(events) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        Issue.record("timed out waiting for player events; got \(events.filter { if case .position = $0 { false } else { true } })",
                     sourceLocation: sourceLocation)
        return false
    }

    func waitForQueueEnd(timeout: Double = 20) async {
        await wait(timeout: timeout) { $0.contains(.queueFinished) }
    }

    func play(_ files: [String], autoplay: Bool = true) {
        player.send(.load(files.map { Track(Fixtures.path($0)) }, startAt: 0, autoplay: autoplay))
    }

    deinit { player.shutdown() }
}


/// Every sample a source gives from where it is to its end.
func readAllPCM(_ source: any PCMSource) throws -> [Int16] {
    var out: [Int16] = []
    var buffer = [Int16](repeating: 0, count: 4096 * source.format.channels)
    while true {
        let frames = try buffer.withUnsafeMutableBufferPointer { try source.read(into: $0) }
        if frames == 0 { return out }
        out += buffer[0..<(frames * source.format.channels)]
    }
}
