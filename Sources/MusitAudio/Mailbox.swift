import Dispatch
import Synchronization

/// Messages for a loop that runs on a thread of its own (the audio engine, the UI) from any
/// other thread: posted without blocking, taken in order in batches, with a wait that ends
/// at the first post or at a timeout.
///
/// The loop marks itself sleeping under the lock before it waits; the post that finds it
/// sleeping rings the bell, once. A semaphore waits on the monotonic clock and a wake costs
/// one system call on each side (a condition variable cost a second one each time a wait
/// timed out, the mutex it takes back being marked contended). A wait that times out just
/// as a post comes takes that post's ring at once, so the next wait is not cut short.
public final class Mailbox<Message: Sendable>: Sendable {
    private struct Box {
        var messages: [Message] = []
        var sleeping = false
        var closed = false
    }

    private let box = Mutex(Box())
    private let bell = DispatchSemaphore(value: 0)

    public init() {}

    /// Queues `message`; false once the mailbox is closed.
    @discardableResult
    public func post(_ message: Message) -> Bool {
        let (accepted, ring) = box.withLock { b -> (Bool, Bool) in
            guard !b.closed else { return (false, false) }
            b.messages.append(message)
            defer { b.sleeping = false }
            return (true, b.sleeping)
        }
        if ring { bell.signal() }
        return accepted
    }

    /// Posts `last` and refuses every later post; false when it was already closed.
    public func close(with last: Message) -> Bool {
        let (first, ring) = box.withLock { b -> (Bool, Bool) in
            guard !b.closed else { return (false, false) }
            b.messages.append(last)
            b.closed = true
            defer { b.sleeping = false }
            return (true, b.sleeping)
        }
        if ring { bell.signal() }
        return first
    }

    /// The messages posted since the last call, waiting up to `timeout` seconds for one
    /// when there are none (none at all for a timeout of 0).
    public func take(timeout: Double) -> [Message] {
        let got = box.withLock { b in
            defer { b.messages.removeAll() }
            b.sleeping = b.messages.isEmpty && timeout > 0
            return b.messages
        }
        guard got.isEmpty, timeout > 0 else { return got }
        let rung = bell.wait(timeout: .now() + .nanoseconds(Int(min(timeout, 3600) * 1e9))) == .success
        let (messages, owed) = box.withLock { b in
            defer { b.messages.removeAll() }
            // Timed out just as a post came: it rings (or has rung) the bell.
            let owed = !rung && !b.sleeping
            b.sleeping = false
            return (b.messages, owed)
        }
        // Take that ring now, so the next wait is not cut short by it.
        if owed { bell.wait() }
        return messages
    }
}
