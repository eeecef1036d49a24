import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import MusitAPI
import NIOCore
import NIOHTTPTypes
import Synchronization

/// `GET /api/v1/events`, answered by a channel handler in each connection's pipeline, so a
/// held poll costs no task and no async frame: only this handler's state and an entry in
/// the bus.
///
/// Why it sits in the pipeline: a poll held by a route keeps the async frames of the whole
/// request path alive (connection loop, router, middleware, handler), about 18 KB beyond an
/// idle connection. Here a poll is taken before Hummingbird sees it; a short task signs the
/// user in and reads storage (the same steps as the route, `PollEdge.prepare`), and ends.
/// When nothing is there yet, the poll is parked: the bus keeps a reference to this
/// connection's mailbox and later hands it its answer on this event loop (`EventBus.park`),
/// as swift-nio's `NIOHTTP1Server` example parks a request with no task.
///
/// The contract is the route's, unchanged for clients: status codes, 400 and 410 with
/// `resumeFrom`, the timeout, page limits, the presence updates. Around it:
/// - Pipelining: answers leave in request order. A poll that arrives while the router is
///   still answering an earlier request on this connection goes to the route; while a poll
///   is in progress, what arrives behind it waits here, and reading stops until it is
///   answered (as NIO's `HTTPServerPipelineHandler` does).
/// - Client gone (FIN or RST): the poll leaves the bus at once.
/// - Shutdown: the bus answers every parked poll; the server's quiesce event is held back
///   until this connection's poll is answered, then the connection closes.
/// - HTTP/1.0, `Connection: close`, 100-continue and timers are the connection guard's
///   (`ConnectionGuard`), which sits before the codec and sees these answers like any other.
/// The route stays for what this handler leaves to it: HEAD, conditional requests, and
/// polls pipelined behind another request.
final class PollHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// The poll in progress on this connection, if any.
    enum State: Equatable {
        case idle
        /// A poll's head was taken; its end has not arrived.
        case reading
        /// A short task signs the user in and reads storage.
        case preparing(id: UInt64)
        /// Held in the bus, no task.
        case parked(id: UInt64)
        /// Woken, reading storage in a short task.
        case answering(id: UInt64)
        case closed

        var isBusy: Bool {
            switch self {
            case .preparing, .parked, .answering: true
            case .idle, .reading, .closed: false
            }
        }
    }

    /// What the poll in progress carries from its head to its answer.
    private struct Poll {
        var head: HTTPRequest
        var start: UInt64
        /// The metrics' route.
        var route = PollEdge.path
        /// A media request answered from memory (`MediaFastPath`), to write at its end.
        var media: PollEdge.Answer?
        var user: Int64?
        var cursor: Int64 = 0
        /// A wake that came before the task that parked the poll reported back.
        var earlyWake: (wake: EventBus.Wake, sentAt: UInt64)?
        /// When the bus handed over events for it: its answer's delivery time starts there.
        var wokenAt: UInt64?
    }

    let edge: PollEdge
    private(set) var state = State.idle
    private var poll: Poll?
    private var context: ChannelHandlerContext?
    private var mailbox: PollMailbox?
    /// Requests handed to the router whose answers have not ended.
    private var forwarded = 0
    /// Parts that arrived behind a poll in progress, in order.
    /// (An array, not a `CircularBuffer`: an empty array allocates nothing, and every
    /// connection has one; this one is rarely used, and holds one read's parts at most.)
    private var held: [HTTPRequestPart] = []
    private var readPending = false
    private var quiescePending = false

    init(edge: PollEdge) {
        self.edge = edge
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        mailbox = PollMailbox(handler: NIOLoopBound(self, eventLoop: context.eventLoop), eventLoop: context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        leave()
        self.context = nil
        // The mailbox holds this handler for the bus and the short tasks: let go of it, or
        // the two would keep each other alive after the connection.
        mailbox = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if state.isBusy || !held.isEmpty {
            held.append(part)
            return
        }
        take(part, context: context)
    }

    /// A part in order, with no poll in progress (reading a poll's own parts is not progress).
    private func take(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        if state == .reading {
            switch part {
            case .head: break  // cannot happen: a head after a head without its end
            case .body: return  // a GET's body means nothing; it is dropped
            case .end:
                if let media = poll?.media {
                    finish(media)
                } else {
                    start(context)
                }
                return
            }
        }
        route(part, context: context)
    }

    /// An arriving part, with nothing in progress here: a poll is taken, the rest goes on.
    private func route(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        if case .head(let head) = part {
            if forwarded == 0, state == .idle {
                if edge.takes(head) {
                    state = .reading
                    poll = Poll(head: head, start: DispatchTime.now().uptimeNanoseconds)
                    return
                }
                if let (answer, logged) = edge.media?.answer(head) {
                    edge.log(path: logged)
                    state = .reading
                    poll = Poll(head: head, start: DispatchTime.now().uptimeNanoseconds, route: MediaFastPath.route, media: answer)
                    return
                }
            }
            forwarded += 1
        }
        context.fireChannelRead(wrapInboundOut(part))
    }

    func read(context: ChannelHandlerContext) {
        if state.isBusy {
            readPending = true
        } else {
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), forwarded > 0 { forwarded -= 1 }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        leave()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, state.isBusy || state == .reading {
            // Answer first: the router's side thinks this connection idle and would close it.
            quiescePending = true
            return
        }
        if let e = event as? ChannelEvent, e == .inputClosed, state.isBusy {
            // The client hung up: nobody will read the answer.
            leave()
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// The connection is going: a parked poll leaves the bus now.
    private func leave() {
        switch state {
        case .parked(let id), .preparing(let id), .answering(let id):
            if let user = poll?.user { edge.bus.cancel(user: user, id: id) }
        case .idle, .reading, .closed:
            break
        }
        // A poll still preparing is cancelled when its task reports back (`prepared`).
        state = .closed
        held.removeAll()
    }

    // MARK: The poll's steps

    private func start(_ context: ChannelHandlerContext) {
        guard let poll, let mailbox else { return }
        let id = edge.bus.makeWaitID()
        state = .preparing(id: id)
        let edge = edge
        let head = poll.head
        shortTask(while: .preparing(id: id), { await edge.prepare(head, mailbox: mailbox, id: id) },
                  then: { $0.prepared(id: id, $1) })
    }

    /// Runs `work` in a short task once this loop has a slot for it (`PollSlots`), if the
    /// poll is still in `expected` then (its connection may have gone while it waited);
    /// `report` gets the result back on the loop.
    private func shortTask<T: Sendable>(while expected: State, _ work: @escaping @Sendable () async -> T,
                                        then report: @escaping @Sendable (PollHandler, T) -> Void) {
        guard let mailbox else { return }
        let slots = PollSlots.of(mailbox.eventLoop)
        slots.run { [self] in
            guard state == expected else { return false }
            let bound = NIOLoopBound(slots, eventLoop: mailbox.eventLoop)
            Task {
                let result = await work()
                mailbox.eventLoop.execute {
                    bound.value.done()
                    report(mailbox.handler.value, result)
                }
            }
            return true
        }
    }

    /// The short task reported back.
    func prepared(id: UInt64, _ step: PollEdge.Step) {
        switch step {
        case .answer(let answer):
            guard state == .preparing(id: id) else { return }
            finish(answer)
        case .parked(let user, let cursor):
            poll?.user = user
            poll?.cursor = cursor
            guard state == .preparing(id: id) else {
                // The connection went while the task ran: take the poll out of the bus.
                edge.bus.cancel(user: user, id: id)
                return
            }
            state = .parked(id: id)
            if let head = poll?.head { poll?.head = Self.held(head) }
            if let early = poll?.earlyWake { wake(id: id, early.wake, sentAt: early.sentAt) }
        }
    }

    /// What a parked poll keeps of its request: what its answer reads (the path for a
    /// problem's instance, Origin for CORS, whether a token came for the 401's
    /// WWW-Authenticate), without the token itself and the other headers, about 0.6 KB of
    /// a poll's 3.7 KB.
    static func held(_ head: HTTPRequest) -> HTTPRequest {
        var fields = HTTPFields()
        if let origin = head.headerFields[.origin] { fields[.origin] = origin }
        if head.headerFields[.authorization] != nil { fields[.authorization] = "Bearer" }
        return HTTPRequest(method: head.method, scheme: head.scheme, authority: head.authority, path: head.path,
                           headerFields: fields)
    }

    /// The bus's answer, on this loop.
    func wake(id: UInt64, _ wake: EventBus.Wake, sentAt: UInt64) {
        switch state {
        case .preparing(id):
            poll?.earlyWake = (wake, sentAt)
        case .parked(id):
            guard let user = poll?.user else { return }
            if wake != .nothing { poll?.wokenAt = sentAt }
            guard let poll else { return }
            if wake == .readStorage {
                state = .answering(id: id)
                let edge = edge
                let cursor = poll.cursor
                let head = poll.head
                shortTask(while: .answering(id: id), { await edge.answer(head, user: user, cursor: cursor, wake) },
                          then: { $0.answered(id: id, $1) })
            } else {
                finish(edge.answerNow(poll.head, user: user, cursor: poll.cursor, wake))
            }
        default:
            break
        }
    }

    func answered(id: UInt64, _ answer: PollEdge.Answer) {
        guard state == .answering(id: id) else { return }
        finish(answer)
    }

    /// Writes the answer, then lets through what waited behind the poll.
    private func finish(_ answer: PollEdge.Answer) {
        guard let context, let poll else { return }
        self.poll = nil
        state = .idle
        var head = HTTPResponse(status: answer.status, headerFields: answer.headers)
        head.headerFields[.contentLength] = String(answer.body.readableBytes)
        edge.decorate(&head, request: poll.head)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(answer.body)), promise: nil)
        edge.record(answer.status, route: poll.route, since: poll.start)
        if poll.media != nil, answer.status.kind == .successful {
            MetricsSetup.streamedBytes.increment(by: Int64(answer.body.readableBytes))
        }
        if let wokenAt = poll.wokenAt, answer.events > 0 {
            MetricsSetup.eventDelivery.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds &- wokenAt))
        }
        if quiescePending {
            state = .closed
            held.removeAll()
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        // What waited, in order, until another poll is in progress (a poll's own end, held
        // behind its head, starts it).
        var replayed = false
        while !held.isEmpty, state == .idle || state == .reading {
            take(held.removeFirst(), context: context)
            replayed = true
        }
        if replayed { context.fireChannelReadComplete() }
        if !state.isBusy, readPending {
            readPending = false
            context.read()
        }
    }
}

/// The short tasks of one event loop's polls, a few at a time.
///
/// Ten thousand polls that arrive at once would otherwise make ten thousand tasks at once,
/// each with its frames, waiting on the token check and the database; their memory is
/// freed when they end, but the process keeps its high-water mark. Here the polls beyond
/// `limit` wait in their handlers (a closure each, no task) and start as others end: the
/// database is the bottleneck anyway, so they are answered no later.
final class PollSlots {
    static let limit = 32
    private var running = 0
    /// Each returns whether it started a task (false: its connection went meanwhile).
    private var waiting = CircularBuffer<() -> Bool>()

    private static let slots = NIOLockedValueBox([ObjectIdentifier: NIOLoopBound<PollSlots>]())

    /// The slots of `loop`; call on it.
    static func of(_ loop: any EventLoop) -> PollSlots {
        slots.withLockedValue { s in
            if let slots = s[ObjectIdentifier(loop)] { return slots.value }
            let slots = PollSlots()
            s[ObjectIdentifier(loop)] = NIOLoopBound(slots, eventLoop: loop)
            return slots
        }
    }

    /// Runs `start` now if a slot is free, else when one is.
    func run(_ start: @escaping () -> Bool) {
        guard running < Self.limit else {
            waiting.append(start)
            return
        }
        if start() { running += 1 }
    }

    /// A task reported back: the next waiting poll starts.
    func done() {
        running -= 1
        while running < Self.limit, let next = waiting.popFirst() {
            if next() { running += 1 }
        }
    }
}

/// The Sendable face of a connection's `PollHandler`: what the bus holds while the poll is
/// parked, and where the short tasks report back.
final class PollMailbox: ParkedPoll {
    let handler: NIOLoopBound<PollHandler>
    let eventLoop: any EventLoop

    init(handler: NIOLoopBound<PollHandler>, eventLoop: any EventLoop) {
        self.handler = handler
        self.eventLoop = eventLoop
    }

    func wake(id: UInt64, _ wake: EventBus.Wake, sentAt: UInt64) {
        handler.value.wake(id: id, wake, sentAt: sentAt)
    }
}

/// What `PollHandler` needs of the server: the route's steps (`EventsController`), the
/// tokens and users to sign a poll in, and the request middleware's log, metrics and CORS.
final class PollEdge: Sendable {
    struct Answer: Sendable {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: ByteBuffer
        /// The events it carries.
        var events = 0
    }

    enum Step: Sendable {
        case answer(Answer)
        /// Held in the bus for this user, after this cursor.
        case parked(user: Int64, cursor: Int64)
    }

    static let path = "/api/v1/events"

    let events: EventsController
    let tokens: TokenService
    let users: any UserDirectory
    let problems: ProblemMiddleware<MusitContext>
    let metrics: RequestMetrics
    let routes: RouteCounter
    let cors: CORSPolicy
    let logger: Logger
    let serverName: String
    /// Ranges of hot songs, answered from memory; nil: all go to the route.
    let media: MediaFastPath?
    var bus: EventBus { events.poll.bus }

    init(events: EventsController, tokens: TokenService, users: any UserDirectory, problems: ProblemMiddleware<MusitContext>,
         metrics: RequestMetrics, routes: RouteCounter, cors: CORSPolicy, logger: Logger, serverName: String,
         media: MediaFastPath? = nil) {
        self.media = media
        self.events = events
        self.tokens = tokens
        self.users = users
        self.problems = problems
        self.metrics = metrics
        self.routes = routes
        self.cors = cors
        self.logger = logger
        self.serverName = serverName
    }

    /// A poll this handler answers: a plain GET of the path. Conditional requests need the
    /// router's precondition checks; HEAD goes to `MusitResponder`.
    func takes(_ head: HTTPRequest) -> Bool {
        guard head.method == .get, let path = head.path, path.hasPrefix(Self.path) else { return false }
        let rest = path.utf8.dropFirst(Self.path.utf8.count)
        guard rest.isEmpty || rest.first == UInt8(ascii: "?") else { return false }
        for field in [HTTPField.Name.ifMatch, .ifNoneMatch, .ifModifiedSince, .ifUnmodifiedSince] where head.headerFields[field] != nil {
            return false
        }
        return true
    }

    /// The route's steps up to holding: sign in, parameters, presence, the first read; then
    /// park `mailbox` in the bus when there is nothing yet.
    func prepare(_ head: HTTPRequest, mailbox: PollMailbox, id: UInt64) async -> Step {
        let request = Request(head: head, body: .init(buffer: ByteBuffer()))
        // The router's request id, as every other request's line has.
        logger.info("Request", metadata: ["hb.request.id": .stringConvertible(RequestID()), "hb.request.method": "GET",
                                          "hb.request.path": .string(RequestMiddleware.redacted(request.uri))])
        do {
            let me = try await AuthenticationMiddleware.user(request, tokens: tokens, users: users)
            let (cursor, timeout) = try EventsController.parameters(request)
            try await events.arrived(me)
            let epoch = bus.resetEpoch
            var found = try await events.poll.current(user: me.id, after: cursor)
            if found.isEmpty, timeout > 0 {
                guard let wake = await bus.park(mailbox, id: id, user: me.id, after: cursor, timeout: Double(timeout),
                                                limit: LongPoll.pageLimit, epoch: epoch) else {
                    return .parked(user: me.id, cursor: cursor)
                }
                found = try await events.poll.woken(user: me.id, after: cursor, wake)
            }
            try await events.answered(me.id)
            return .answer(try page(user: me.id, cursor: cursor, found))
        } catch {
            return .answer(problem(error, head))
        }
    }

    /// A woken poll's answer when it needs storage (`.readStorage`).
    func answer(_ head: HTTPRequest, user: Int64, cursor: Int64, _ wake: EventBus.Wake) async -> Answer {
        do {
            let found = try await events.poll.woken(user: user, after: cursor, wake)
            try await events.answered(user)
            return try page(user: user, cursor: cursor, found)
        } catch {
            return problem(error, head)
        }
    }

    /// A woken poll's answer from what the bus handed over, on the event loop.
    func answerNow(_ head: HTTPRequest, user: Int64, cursor: Int64, _ wake: EventBus.Wake) -> Answer {
        let found: [ServerEvent]
        switch wake {
        case .events(let fresh): found = fresh
        case .nothing, .readStorage: found = []
        case .accountDeleted: return problem(Problem.unauthorized("No such user"), head)
        }
        // In memory on one instance: no task needed to mark the user seen.
        if let tracker = events.presence as? PresenceTracker {
            _ = tracker.touch(userID: user, seen: Date())
        } else {
            let events = events
            Task { try? await events.answered(user) }
        }
        do {
            return try page(user: user, cursor: cursor, found)
        } catch {
            return problem(error, head)
        }
    }

    private func page(user: Int64, cursor: Int64, _ found: [ServerEvent]) throws -> Answer {
        let page = EventsPage(events: found, cursor: found.last?.id ?? cursor)
        return Answer(status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                      body: try events.pages.body(user: user, after: cursor, page: page), events: found.count)
    }

    private func problem(_ error: any Error, _ head: HTTPRequest) -> Answer {
        let (status, headers, body) = problems.parts(for: error, request: Request(head: head, body: .init(buffer: ByteBuffer())))
        return Answer(status: status, headers: headers, body: body)
    }

    /// What every answer of the server carries: length, date, server name, and CORS.
    func decorate(_ response: inout HTTPResponse, request: HTTPRequest) {
        response.headerFields[.date] = HTTPDate.now
        response.headerFields[.server] = serverName
        if let origin = request.headerFields[.origin], cors.isEnabled, cors.allows(origin) {
            response.headerFields[.accessControlAllowOrigin] = origin
            response.headerFields[.accessControlExposeHeaders] = CORSPolicy.exposedHeaders
            response.headerFields[values: .vary].append("Origin")
        }
    }

    /// The request middleware's log line, for a GET answered here; `path` as redacted.
    func log(path: String) {
        logger.info("Request", metadata: ["hb.request.id": .stringConvertible(RequestID()), "hb.request.method": "GET",
                                          "hb.request.path": .string(path)])
    }

    /// The request middleware's metrics, for a request answered here.
    func record(_ status: HTTPResponse.Status, route: String, since start: UInt64) {
        let endpoint = metrics.endpoint(route, .get, status)
        endpoint.requests.increment()
        endpoint.errors?.increment()
        endpoint.duration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        routes.add(endpoint.route)
    }
}

/// The `Date` header's text, made once a second.
enum HTTPDate {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))

    static var now: String {
        var time = time_t()
        Foundation.time(&time)
        let second = Int(time)
        if let hit = cache.withLock({ $0.second == second ? $0.text : nil }) { return hit }
        var parts = tm()
        gmtime_r(&time, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let text = "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
        cache.withLock { $0 = (second, text) }
        return text
    }
}
