import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// Limits on connections, so idle and slow clients cannot take the descriptors that
/// healthy ones need.
public struct ConnectionLimits: Sendable, Equatable {
    /// From the first byte of a request to the end of its header.
    public var headerTimeout: TimeAmount = .seconds(10)
    /// A connection with no request in progress, or a request body that stops arriving,
    /// is closed after this long.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// Open connections at most; nil: as many as the descriptor limit leaves room for.
    public var maxConnections: Int?

    public init() {}

    /// Descriptors kept for the database, media files and the listening socket.
    static let reservedDescriptors = 128

    /// The cap in effect: the configured one, never more than the descriptors allow.
    func effectiveMaxConnections(descriptorLimit: Int) -> Int {
        let room = max(16, descriptorLimit - Self.reservedDescriptors)
        return min(maxConnections ?? room, room)
    }

    /// Raises the soft descriptor limit to the hard one (as nginx's `worker_rlimit_nofile`
    /// would) and returns the soft limit in effect.
    static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = min(limit.rlim_max, 1 << 20)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }
}

/// Hummingbird's HTTP/1 channel with Musit's connection guard in front of its codec.
///
/// Hummingbird turns NIO's request head into an `HTTPRequest` that no longer says which
/// HTTP version the client spoke, and it has no header-read timeout; both need a handler
/// that sees NIO's parts, so the guard is inserted right after NIO's request decoder.
///
/// Each connection runs in a task of its own, not as a child of the server's task group:
/// the Swift 6.3 runtime removes a finished child by walking the group's list of children
/// from its head (swiftlang/swift#71212), so with 10,000 connections open each one that
/// closes would walk past the others. The group's child only starts the task and ends at
/// once; `ConnectionTasks` counts the tasks, and shutdown waits for them.
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let inner: HTTP1Channel
    let registry: ConnectionRegistry
    let tasks: ConnectionTasks

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let ops = channel.pipeline.syncOperations
            let guardHandler = ConnectionGuard(registry: registry)
            let decoder = try ops.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try ops.addHandler(guardHandler, position: .after(decoder))
            try ops.addHandler(FirstByteWatcher(guard: guardHandler), position: .first)
            // The channel keeps its last receive buffer for the next read, sized by this
            // allocator: NIO starts at 2 KiB, which every connection that has sent a request
            // then holds while idle or while its poll is held. Requests are a few hundred
            // bytes; a larger read (an upload) grows the buffer sixteenfold per full read.
            try channel.syncOptions?.setOption(ChannelOptions.recvAllocator, value: Self.receiveBuffers)
            return value
        }
    }

    static let receiveBuffers = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)

    func handle(value: Value, logger: Logger) async {
        let inner = inner
        let tasks = tasks
        tasks.started()
        // On the connection's event loop: a request read there is answered there, without a
        // switch to the cooperative pool and back. Blocking work goes to NIO's thread pool
        // (`runBlocking`), as it must anyway.
        let executor = EventLoopTaskExecutor(value.channel.eventLoop)
        Task(executorPreference: executor) {
            await inner.handle(value: value, logger: logger)
            tasks.ended()
        }
    }
}

/// Runs a task's jobs on an event loop.
final class EventLoopTaskExecutor: TaskExecutor {
    let loop: any EventLoop

    init(_ loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        loop.execute { job.runSynchronously(on: executor) }
    }
}

/// The connections' tasks: how many run, and a wait for none at shutdown. After the server
/// has closed every connection (its quiesce), each task only has its last steps to run.
public final class ConnectionTasks: Service, Sendable {
    private struct State {
        var running = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    /// How long shutdown waits for the last connections' tasks.
    let drainTimeout: Duration

    init(drainTimeout: Duration = .seconds(5)) {
        self.drainTimeout = drainTimeout
    }

    var running: Int { state.withLock { $0.running } }

    func started() {
        state.withLock { $0.running += 1 }
    }

    func ended() {
        let done = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.running -= 1
            guard s.running == 0 else { return [] }
            defer { s.waiters = [] }
            return s.waiters
        }
        for c in done { c.resume() }
    }

    /// Returns when no connection task runs, or after `drainTimeout`.
    func drained() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { c in
                    let now = self.state.withLock { s -> Bool in
                        if s.running == 0 { return true }
                        s.waiters.append(c)
                        return false
                    }
                    if now { c.resume() }
                }
            }
            group.addTask { [drainTimeout] in try? await Task.sleep(for: drainTimeout) }
            await group.next()
            group.cancelAll()
            // The other child may be a continuation no one resumes before the timeout ends
            // the wait: release it.
            let left = self.state.withLock { s -> [CheckedContinuation<Void, Never>] in
                defer { s.waiters = [] }
                return s.waiters
            }
            for c in left { c.resume() }
        }
    }

    /// As a service, listed before the server: it stops after it, and waits for the
    /// connections' tasks then.
    public func run() async throws {
        try? await gracefulShutdown()
        await drained()
    }
}

/// The open connections, oldest idle first, and the cap on their number.
///
/// At the cap a new connection costs the oldest idle one its keep-alive (what nginx does
/// when it runs out of connections); only when none is idle is the new one refused. Either
/// way a line is logged, at most once a second, so a flood does not flood the log.
final class ConnectionRegistry: Sendable {
    /// One open connection. Its idle time is an atomic the connection's handler sets without
    /// the registry's lock: it changes twice per request, and is read only at the cap.
    final class Entry: Sendable {
        let channel: any Channel
        /// Uptime in nanoseconds since the connection became idle; 0 while it is busy.
        let idleSince: Synchronization.Atomic<UInt64>

        init(channel: any Channel, idleSince: UInt64) {
            self.channel = channel
            self.idleSince = Synchronization.Atomic(idleSince)
        }

        func setIdle(_ idle: Bool) {
            idleSince.store(idle ? max(1, DispatchTime.now().uptimeNanoseconds) : 0, ordering: .relaxed)
        }
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var lastLog: UInt64 = 0
        var shed = 0
        var refused = 0
    }

    let limits: ConnectionLimits
    let maxConnections: Int
    let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(limits: ConnectionLimits, descriptorLimit: Int, logger: Logger) {
        self.limits = limits
        self.maxConnections = limits.effectiveMaxConnections(descriptorLimit: descriptorLimit)
        self.logger = logger
    }

    var count: Int { state.withLockedValue { $0.entries.count } }

    /// Registers a new connection; closes the oldest idle one, or this one, at the cap.
    /// Returns the connection's entry, for `Entry.setIdle`.
    @discardableResult
    func opened(_ channel: any Channel) -> Entry {
        let now = DispatchTime.now().uptimeNanoseconds
        let entry = Entry(channel: channel, idleSince: max(1, now))
        let (victim, refuse, log) = state.withLockedValue { s -> ((any Channel)?, Bool, String?) in
            s.entries[ObjectIdentifier(channel)] = entry
            guard s.entries.count > maxConnections else { return (nil, false, nil) }
            var oldest: (ObjectIdentifier, UInt64)?
            for (id, e) in s.entries where id != ObjectIdentifier(channel) {
                let since = e.idleSince.load(ordering: .relaxed)
                if since != 0, since < (oldest?.1 ?? .max) { oldest = (id, since) }
            }
            var victim: (any Channel)?
            if let oldest {
                victim = s.entries.removeValue(forKey: oldest.0)?.channel
                s.shed += 1
            } else {
                s.entries.removeValue(forKey: ObjectIdentifier(channel))
                s.refused += 1
            }
            var line: String?
            if now - s.lastLog > 1_000_000_000 {
                line = "connection cap of \(maxConnections) reached: closed \(s.shed) idle connection(s) "
                    + "and refused \(s.refused) new one(s) since the last report"
                s.lastLog = now
                s.shed = 0
                s.refused = 0
            }
            return (victim, victim == nil, line)
        }
        if let log { logger.warning("\(log)") }
        victim?.close(promise: nil)
        if refuse { channel.close(promise: nil) }
        return entry
    }

    func closed(_ channel: any Channel) {
        state.withLockedValue { _ = $0.entries.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}

/// One connection's timers and framing rules, between NIO's request decoder and
/// Hummingbird's codec:
/// - idle: no request in progress closes after `idleTimeout`;
/// - header: from the first byte of a request, its header must be complete within
///   `headerTimeout` (a client sending a byte now and then gains nothing);
/// - body: a request body that stops arriving closes after `idleTimeout`;
/// - `Expect: 100-continue` is answered with `100 Continue`;
/// - a request that does not keep the connection alive (HTTP/1.0 without
///   `Connection: keep-alive`, or `Connection: close`) has it closed after its response
///   (RFC 9112 §9.3), and an HTTP/1.0 client gets a 1.0 response, framed by the close
///   when it has no length, since it cannot read chunked encoding.
/// A request whose body has been read and whose response is being prepared (a held
/// long-poll) has no timer: it has its own timeout.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private struct Pending {
        let version: HTTPVersion
        let keepAlive: Bool
    }

    let registry: ConnectionRegistry
    private var entry: ConnectionRegistry.Entry?
    /// The loop's clock, which closes the connection at its deadline, and this handler's
    /// context for it.
    private var clock: ConnectionClock?
    private var clockContext: ChannelHandlerContext?
    /// When the connection must have made progress, and what it is closed for if not; nil:
    /// no limit now (a request being answered has its own).
    private var deadline: (at: UInt64, reason: String)?
    private var readingRequest = false
    /// Requests whose response has not ended, oldest first (pipelining).
    private var pending: [Pending] = []
    private var headerDeadlineSet = false
    private var closeAfterResponse = false

    init(registry: ConnectionRegistry) {
        self.registry = registry
    }

    private var isIdle: Bool { pending.isEmpty && !readingRequest }

    func handlerAdded(context: ChannelHandlerContext) {
        entry = registry.opened(context.channel)
        clockContext = context
        armIdle(context)
        schedule(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimer()
        clockContext = nil
        registry.closed(context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimer()
        registry.closed(context.channel)
        context.fireChannelInactive()
    }

    /// Bytes arrived before the decoder: when they start a request, its header is due.
    func sawBytes(context: ChannelHandlerContext) {
        guard isIdle, !headerDeadlineSet else { return }
        headerDeadlineSet = true
        arm(context, after: registry.limits.headerTimeout, reason: "header not received in time")
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            headerDeadlineSet = false
            readingRequest = true
            pending.append(Pending(version: head.version, keepAlive: head.isKeepAlive))
            entry?.setIdle(false)
            arm(context, after: registry.limits.idleTimeout, reason: "request body stalled")
            // A client that asks before sending its body (curl does for bodies over 1 MB)
            // waits a second for this, or for ever (RFC 9110 §10.1.1); Hummingbird never
            // sends it. It goes straight to the encoder, ahead of the final answer.
            if head.version == .http1_1,
               head.headers["expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))),
                                      promise: nil)
            }
        case .body:
            if readingRequest { arm(context, after: registry.limits.idleTimeout, reason: "request body stalled") }
        case .end:
            readingRequest = false
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Deadlines move on every request; the timer follows only when one comes before it
        // would fire, and only once per read, not per request part.
        schedule(context)
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            guard let request = pending.first else { break }
            if !request.keepAlive { closeAfterResponse = true }
            if request.version.major == 1 && request.version.minor == 0 {
                head.version = .http1_0
                if request.keepAlive, head.headers.contains(name: "content-length") {
                    head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
                } else {
                    closeAfterResponse = true
                }
            }
            if closeAfterResponse { head.headers.replaceOrAdd(name: "connection", value: "close") }
            let send = head.headers.first(name: FileSends.header.canonicalName).flatMap(FileSends.take)
            if send != nil { head.headers.remove(name: FileSends.header.canonicalName) }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
            if let send { sendFile(send, context: context) }
            return
        case .body:
            break
        case .end:
            if !pending.isEmpty { pending.removeFirst() }
            if closeAfterResponse {
                context.writeAndFlush(data).whenComplete { _ in context.close(promise: nil) }
                promise?.succeed()
                return
            }
            if isIdle {
                entry?.setIdle(true)
                armIdle(context)
                schedule(context)
            }
        }
        context.write(data, promise: promise)
    }

    /// The body of an answer that named a file (`FileSends`): one region, written with
    /// sendfile(2) from a descriptor of its own, closed when it is written.
    private func sendFile(_ send: FileSends.Pending, context: ChannelHandlerContext) {
        guard let (region, handle) = FileSends.region(send) else {
            context.close(promise: nil)
            return
        }
        MetricsSetup.activeStreams.increment()
        let length = Int64(region.readableBytes)
        context.write(wrapOutboundOut(.body(.fileRegion(region)))).whenComplete { result in
            MetricsSetup.activeStreams.decrement()
            if case .success = result { MetricsSetup.streamedBytes.increment(by: length) }
            try? handle.close()
        }
    }

    private func armIdle(_ context: ChannelHandlerContext) {
        arm(context, after: registry.limits.idleTimeout, reason: "idle")
    }

    /// Sets the deadline; the timer is moved by `schedule`, at the end of the read.
    private func arm(_ context: ChannelHandlerContext, after delay: TimeAmount, reason: String) {
        deadline = (DispatchTime.now().uptimeNanoseconds + UInt64(delay.nanoseconds), reason)
    }

    /// Files the connection with its loop's clock by the deadline. Filed under a later tick,
    /// it moves; filed under an earlier one, it stays: when that tick comes the clock finds
    /// the deadline moved and files it again. So a kept-alive connection's requests usually
    /// cost no more than a clock read.
    private func schedule(_ context: ChannelHandlerContext) {
        guard let deadline else { return }
        if clock == nil { clock = ConnectionClock.of(context.eventLoop) }
        clock?.file(self, by: deadline.at)
    }

    /// Called by the clock at or after the tick the connection was filed under.
    func due(now: UInt64) -> UInt64? {
        guard let deadline, let context = clockContext else { return nil }
        if deadline.at > now { return deadline.at }
        let channel = context.channel
        registry.logger.debug("closing connection", metadata: ["reason": .string(deadline.reason),
                                                               "peer": .string(channel.remoteAddress?.description ?? "?")])
        self.deadline = nil
        channel.close(promise: nil)
        return nil
    }

    private func stopTimer() {
        clock?.remove(self)
        deadline = nil
    }

    /// Where the clock's tick, if any, has this connection filed.
    var filedTick: UInt64?
}

/// The deadlines of one event loop's connections, checked by one timer for the loop.
///
/// A NIO timer per connection would do, but NIO cancels a scheduled task by searching the
/// loop's queue of them from the front: with 10,000 connections open, every connection that
/// closes (and cancels its timer) walked past the others, and closing them all at shutdown
/// took seconds. Here a connection is filed under the tick (100 ms) of its deadline, in a
/// table by tick; filing and removing cost O(1), and the loop's one timer runs
/// when the earliest filed tick comes (an idle connection's loop wakes once a minute, not
/// ten times a second). Deadlines are met within a tick.
final class ConnectionClock {
    static let tick: UInt64 = 100_000_000

    private let eventLoop: any EventLoop
    private var buckets: [UInt64: [ObjectIdentifier: ConnectionGuard]] = [:]
    private var filed = 0
    private var timer: Scheduled<Void>?
    private var timerTick: UInt64 = 0
    /// The last tick whose connections were looked at.
    private var done: UInt64

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        done = DispatchTime.now().uptimeNanoseconds / Self.tick
    }

    private static let clocks = NIOLockedValueBox([ObjectIdentifier: NIOLoopBound<ConnectionClock>]())

    /// The clock of `loop`; call on it.
    static func of(_ loop: any EventLoop) -> ConnectionClock {
        clocks.withLockedValue { c in
            if let clock = c[ObjectIdentifier(loop)] { return clock.value }
            let clock = ConnectionClock(eventLoop: loop)
            c[ObjectIdentifier(loop)] = NIOLoopBound(clock, eventLoop: loop)
            return clock
        }
    }

    func file(_ connection: ConnectionGuard, by deadline: UInt64) {
        // The tick after the deadline, and never one already looked at.
        let tick = max(done + 1, (deadline + Self.tick - 1) / Self.tick)
        if let at = connection.filedTick {
            if at <= tick { return }
            buckets[at]?.removeValue(forKey: ObjectIdentifier(connection))
            filed -= 1
        }
        buckets[tick, default: [:]][ObjectIdentifier(connection)] = connection
        connection.filedTick = tick
        filed += 1
        wake(at: tick)
    }

    func remove(_ connection: ConnectionGuard) {
        guard let at = connection.filedTick else { return }
        connection.filedTick = nil
        if buckets[at]?.removeValue(forKey: ObjectIdentifier(connection)) != nil {
            filed -= 1
            if buckets[at]?.isEmpty == true { buckets[at] = nil }
        }
    }

    /// Makes the timer fire by `tick`. Moving it costs a search of the loop's few timers.
    private func wake(at tick: UInt64) {
        if timer != nil, timerTick <= tick { return }
        timer?.cancel()
        timerTick = tick
        let now = DispatchTime.now().uptimeNanoseconds
        let at = tick * Self.tick
        timer = eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: .nanoseconds(Int64(at > now ? at - now : 0))) { [self] in
            timer = nil
            run()
            // The earliest tick still filed: at most one per 100 ms of the longest timeout.
            if let next = buckets.keys.min() { wake(at: next) }
        }
    }

    private func run() {
        let now = DispatchTime.now().uptimeNanoseconds
        let current = now / Self.tick
        while done < current {
            done += 1
            guard let due = buckets.removeValue(forKey: done) else { continue }
            filed -= due.count
            for connection in due.values {
                connection.filedTick = nil
                if let later = connection.due(now: now) { file(connection, by: later) }
            }
        }
    }
}

/// Sits first in the pipeline and tells the guard when bytes arrive, which starts the
/// header-read clock of a request; what it reads it passes on untouched.
final class FirstByteWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let guardHandler: ConnectionGuard
    private var guardContext: ChannelHandlerContext?

    init(guard: ConnectionGuard) {
        guardHandler = `guard`
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if guardContext == nil { guardContext = try? context.pipeline.syncOperations.context(handler: guardHandler) }
        if let guardContext { guardHandler.sawBytes(context: guardContext) }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        guardContext = nil
    }
}
