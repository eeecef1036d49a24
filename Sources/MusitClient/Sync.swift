import Foundation
import MusitAPI

/// How the client stands with its server, for the status bar.
public enum ConnectionState: Equatable, Sendable {
    case connecting
    case online
    /// The last attempt failed; the next one is in `seconds`.
    case retrying(attempt: Int, seconds: Double, reason: String)
    case signedOut(String)
}

/// Keeps one long-poll outstanding. Events are handed over before the cursor is saved, so
/// after a dropped connection, a server restart or a client crash the next poll resumes
/// right after the last event handled. Failures back off exponentially with jitter.
public final class SyncLoop: Sendable {
    public struct Handlers: Sendable {
        public var state: @Sendable (ConnectionState) -> Void
        public var events: @Sendable ([ServerEvent]) async -> Void
        /// After connecting (or reconnecting, or a 410): reload what events may have missed.
        public var resync: @Sendable () async -> Void

        public init(state: @escaping @Sendable (ConnectionState) -> Void, events: @escaping @Sendable ([ServerEvent]) async -> Void,
                    resync: @escaping @Sendable () async -> Void) {
            self.state = state
            self.events = events
            self.resync = resync
        }
    }

    private let client: APIClient
    private let handlers: Handlers
    private let pollSeconds: Int
    private let maxDelay: Double

    public init(client: APIClient, pollSeconds: Int = 25, maxDelay: Double = 8, handlers: Handlers) {
        self.client = client
        self.pollSeconds = pollSeconds
        self.maxDelay = maxDelay
        self.handlers = handlers
    }

    /// Full jitter over an exponential ceiling: attempt 1 waits up to 0.5 s, then 1, 2, 4… capped.
    public static func backoff(attempt: Int, cap: Double, random: Double = Double.random(in: 0...1)) -> Double {
        let ceiling = min(cap, 0.25 * pow(2, Double(min(attempt, 16))))
        return max(0.05, ceiling * (0.5 + 0.5 * random))
    }

    /// Polls until cancelled or signed out.
    public func run() async {
        var online = false
        var attempt = 0
        handlers.state(.connecting)
        while !Task.isCancelled {
            do throws(ClientError) {
                let cursor = await client.cursor
                // The first poll after (re)connecting answers at once, so the state is known now.
                let page = try await client.events(after: cursor, timeout: online ? pollSeconds : 0)
                if !online {
                    online = true
                    attempt = 0
                    handlers.state(.online)
                    await handlers.resync()
                }
                if !page.events.isEmpty { await handlers.events(page.events) }
                await client.setCursor(page.cursor)
            } catch {
                if case .signedOut(let why) = error {
                    handlers.state(.signedOut(why))
                    return
                }
                if case .server(let p) = error, p.status == 410 {
                    await client.setCursor(p.resumeFrom ?? 0)
                    await handlers.resync()
                    continue
                }
                online = false
                attempt += 1
                let delay = Self.backoff(attempt: attempt, cap: maxDelay)
                handlers.state(.retrying(attempt: attempt, seconds: delay, reason: error.description))
                try? await Task.sleep(for: .seconds(delay))
            }
        }
    }
}

/// Chat messages not yet accepted by the server, kept on disk (0600) in the order written.
/// Each has a client id, and the server stores one message per id, so sending again after a
/// crash or a lost answer never doubles a message.
public actor Outbox {
    public struct Pending: Codable, Equatable, Sendable {
        public var message: SendMessage
        public var queuedAt: Date
    }

    public enum Outcome: Equatable, Sendable {
        case sent(clientId: String, ChatMessage)
        case rejected(clientId: String, reason: String)
    }

    private let path: String
    private let client: APIClient
    public private(set) var pending: [Pending] = []
    private var flushing = false

    public init(path: String, client: APIClient) {
        self.path = path
        self.client = client
        if let data = FileManager.default.contents(atPath: path),
           let saved = try? JSONDecoder().decode([Pending].self, from: data) {
            pending = saved
        }
    }

    public func enqueue(to: String, body: String) -> Pending {
        let p = Pending(message: SendMessage(to: to, body: body, clientId: UUID().uuidString.lowercased()), queuedAt: Date())
        pending.append(p)
        save()
        return p
    }

    /// Sends in order until the outbox is empty or the server cannot be reached.
    public func flush(_ report: @Sendable (Outcome) -> Void) async {
        guard !flushing else { return }
        flushing = true
        defer { flushing = false }
        while let first = pending.first {
            do throws(ClientError) {
                let stored = try await client.send(first.message)
                pending.removeFirst()
                save()
                report(.sent(clientId: first.message.clientId, stored))
            } catch {
                if error.isTransient { return }
                if case .signedOut = error { return }
                pending.removeFirst()
                save()
                report(.rejected(clientId: first.message.clientId, reason: error.description))
            }
        }
    }

    private func save() {
        guard let data = try? JSONEncoder().encode(pending) else { return }
        PrivateFile.write(data, to: path)
    }
}
