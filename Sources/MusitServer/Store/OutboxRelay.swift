import GRPCCore
import Logging
import MusitRPC
import ServiceLifecycle
import Synchronization

/// Delivers the outbox to its consumers (deletions to Stats' `Forget`, Library's changes
/// to Social, which tells every user; an account's deletion to Library, which deletes its
/// songs, and to Social, which forgets its friendships, messages and log) and removes what
/// was delivered.
///
/// Delivery is at least once: a message is removed only after the consumer answered, so a
/// crash of either side between the two sends it again, and the consumer's idempotence
/// makes the effect exactly once. It runs in every process that writes the outbox (all of
/// them on PostgreSQL), woken by the writer's `poke` and every 2 s for what other
/// instances or an earlier run left; two instances delivering the same message at once is
/// the same as a redelivery.
final class OutboxRelay: Service, Sendable {
    let outbox: any OutboxRepository
    let stats: ServiceLink<any Musit_Stats_V1_Stats.ClientProtocol>
    let social: any SocialOutboxConsumer
    /// Deletes a deleted account's songs (`user.deleted/library`).
    let library: any LibraryAPI
    /// The songs Library deleted here: this process's media cache forgets them.
    let songsGone: @Sendable ([Int64]) -> Void
    /// Wakes this process's polls with the events Social committed (other gateways hear of
    /// them through Social's subscription).
    let announce: @Sendable ([CommittedEvent]) async -> Void
    let logger: Logger
    private let signal = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?)>((true, nil))

    static let batch = StatsService.forgetLimit
    static let idleCheck: Duration = .seconds(2)

    init(outbox: any OutboxRepository, stats: ServiceLink<any Musit_Stats_V1_Stats.ClientProtocol>,
         social: any SocialOutboxConsumer, library: any LibraryAPI, songsGone: @escaping @Sendable ([Int64]) -> Void,
         announce: @escaping @Sendable ([CommittedEvent]) async -> Void, logger: Logger) {
        self.outbox = outbox
        self.stats = stats
        self.social = social
        self.library = library
        self.songsGone = songsGone
        self.announce = announce
        self.logger = logger
    }

    /// Delivers what is pending in the caller's task: a song stored or deleted is in every
    /// user's log when its request is answered, as it was when the change wrote the events
    /// itself. A failure (a consumer down) is left to the relay's loop, which retries.
    func deliverNow() async {
        do {
            try await deliverAll()
        } catch {
            logger.debug("outbox delivery failed; the relay retries", metadata: ["error": "\(error)"])
            poke()
        }
    }

    /// Something was added: deliver now rather than at the next check.
    func poke() {
        let waiter = signal.withLock { s -> CheckedContinuation<Void, Never>? in
            s.pending = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            var backoff: Duration = .milliseconds(100)
            while !Task.isCancelled {
                do {
                    try await self.deliverAll()
                    backoff = .milliseconds(100)
                    await self.wait(upTo: Self.idleCheck)
                } catch is CancellationError {
                    return
                } catch {
                    // The consumer is down or the database is: try again, a little later each
                    // time, up to the idle check's pace.
                    self.logger.debug("outbox delivery failed; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, Self.idleCheck)
                }
            }
        }
    }

    /// Delivers until the outbox is empty. Each consumer's part of a batch is removed once
    /// that consumer answered, so one that is down holds back only its own messages (a
    /// batch of them; the next is read when it is back).
    func deliverAll() async throws {
        while true {
            signal.withLock { $0.pending = false }
            let messages = try await outbox.pendingOutbox(limit: Self.batch)
            if messages.isEmpty { return }
            var delivered: [Int64] = []
            var failure: (any Error)?
            let forStats = messages.filter { $0.topic.consumer == .stats }
            if !forStats.isEmpty {
                var request = Musit_Stats_V1_ForgetRequest()
                request.userIds = forStats.filter { $0.topic == .userDeleted }.map(\.subject)
                request.songIds = forStats.filter { $0.topic == .songDeleted }.map(\.subject)
                do {
                    _ = try await stats.call(idempotent: true) { try await $0.forget(request, options: $1) }
                    delivered += forStats.map(\.id)
                } catch {
                    failure = error
                }
            }
            let forSocial = messages.filter { $0.topic.consumer == .social }
            if !forSocial.isEmpty {
                do {
                    // In the order they were written: a user's log starts before anything is
                    // told to everyone, and is forgotten last.
                    try await social.startLogs(forSocial.filter { $0.topic == .userCreated })
                    var events = try await social.applyLibraryChanges(forSocial.filter { $0.topic == .libraryChanged })
                    events += try await social.forgetUsers(forSocial.filter { $0.topic == .userDeletedSocial })
                    delivered += forSocial.map(\.id)
                    await announce(events)
                } catch {
                    failure = error
                }
            }
            // One owner at a time: each call deletes that owner's songs in one transaction
            // and writes their `song.deleted` and `library.changed` to the outbox, which the
            // next round of this loop delivers.
            for message in messages where message.topic.consumer == .library {
                do {
                    songsGone(try await library.deleteSongs(ownedBy: message.subject, name: message.payload ?? ""))
                    delivered.append(message.id)
                } catch {
                    failure = error
                    break
                }
            }
            try await outbox.removeOutbox(ids: delivered)
            if let failure { throw failure }
        }
    }

    private func wait(upTo limit: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForPoke() }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForPoke() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = signal.withLock { s -> Bool in
                    if s.pending || Task.isCancelled { return true }
                    s.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = signal.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }
}
