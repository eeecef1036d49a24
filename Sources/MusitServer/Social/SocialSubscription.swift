import Foundation
import GRPCCore
import Logging
import MusitAPI
import MusitRPC
import ServiceLifecycle
import Synchronization

/// A gateway's one subscription to Social (`Subscribe`): every change to the event logs,
/// whichever gateway made it, reaches this gateway's held polls through one stream, not a
/// call per poll. The gateway still announces the events its own calls answer with (they
/// come sooner); the stream's copy of them changes nothing (`EventBus.announce` keeps the
/// highest head and each id once).
///
/// After a lost stream it subscribes again from the last notice it saw; when Social cannot
/// replay from there, its first notice is a reset and every held poll reads storage. A
/// stream that brings nothing, not even Social's heartbeat, for `silence` is taken as
/// lost (a Social whose host went away closes no connection).
final class SocialSubscription: Service, Sendable {
    let client: any Musit_Social_V1_Social.ClientProtocol
    let bus: any EventSink
    let logger: Logger
    let silence: Duration

    init(client: any Musit_Social_V1_Social.ClientProtocol, bus: any EventSink, logger: Logger,
         silence: Duration = SocialService.heartbeat * 3) {
        self.client = client
        self.bus = bus
        self.logger = logger
        self.silence = silence
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.follow()
        }
    }

    /// Where the last notice left this gateway: the stream and its number.
    private struct Position: Sendable {
        var stream = ""
        var after: UInt64 = 0
    }

    private func follow() async {
        var position = Position()
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            let heard = Heard()
            let from = position
            do {
                position = try await withThrowingTaskGroup(of: Position?.self) { group in
                    group.addTask { try await self.read(from: from, heard: heard) }
                    group.addTask {
                        // The watchdog: ends the read when the stream has gone quiet.
                        while !Task.isCancelled {
                            try await Task.sleep(for: .seconds(1))
                            if heard.since > self.silence { throw SilentStream() }
                        }
                        return nil
                    }
                    defer { group.cancelAll() }
                    let ended = try await group.next()
                    return (ended ?? nil) ?? from
                }
            } catch {
                if Task.isCancelled { return }
                if heard.count > 0 { delay = .milliseconds(100) }
                logger.warning("lost the subscription to Social; subscribing again",
                               metadata: ["in": "\(delay)", "error": "\(error)"])
                position.after = heard.position?.after ?? position.after
                position.stream = heard.position?.stream ?? position.stream
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }

    /// Reads one subscription until it ends; returns where it left off.
    private func read(from start: Position, heard: Heard) async throws -> Position? {
        let request = Musit_Social_V1_SubscribeRequest.with {
            $0.stream = start.stream
            $0.after = start.after
        }
        var options = CallOptions.defaults
        // Wait while Social is away rather than fail and poll for it.
        options.waitForReady = true
        let bus = self.bus, logger = self.logger
        return try await client.subscribe(request, options: options) { response in
            let decoder = JSONDecoder()
            var position = start
            for try await notice in response.messages {
                heard.note(Position(stream: notice.stream, after: notice.seq))
                if notice.reset {
                    if position.stream != notice.stream, !position.stream.isEmpty {
                        logger.notice("Social began a new stream; held polls read storage")
                    }
                    await bus.wakeAll()
                }
                if !notice.events.isEmpty {
                    // One that does not decode is taken as its head: the poll reads it.
                    var committed: [CommittedEvent] = []
                    var heads: [(user: Int64, seq: Int64)] = []
                    for e in notice.events {
                        if let event = try? decoder.decode(ServerEvent.self, from: e.eventJson) {
                            committed.append(CommittedEvent(userID: e.userID, event: event))
                        } else if let id = Self.id(in: e.eventJson) {
                            heads.append((e.userID, id))
                        }
                    }
                    await bus.announce(committed)
                    if !heads.isEmpty { await bus.announceRemote(heads) }
                }
                if !notice.heads.isEmpty {
                    await bus.announceRemote(notice.heads.map { ($0.userID, $0.eventID) })
                }
                position = Position(stream: notice.stream, after: notice.seq)
            }
            return position
        }
    }

    private static func id(in json: Data) -> Int64? {
        struct OnlyID: Decodable { var id: Int64 }
        return try? JSONDecoder().decode(OnlyID.self, from: json).id
    }

    private struct SilentStream: Error, CustomStringConvertible {
        var description: String { "no notice or heartbeat from Social for a while" }
    }

    /// What the reading task last heard, for the watchdog and for a resume after an error.
    private final class Heard: Sendable {
        private struct State {
            var at = ContinuousClock.now
            var position: Position?
            var count = 0
        }

        private let state = Mutex(State())

        func note(_ position: Position) {
            state.withLock {
                $0.at = .now
                $0.position = position
                $0.count += 1
            }
        }

        var since: Duration { state.withLock { ContinuousClock.now - $0.at } }
        var position: Position? { state.withLock { $0.position } }
        var count: Int { state.withLock { $0.count } }
    }
}
