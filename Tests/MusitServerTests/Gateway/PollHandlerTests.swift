import Foundation
import HTTPTypes
import Logging
import MusitAPI
@testable import MusitServer
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Testing

/// The poll handler in a connection's pipeline as the server builds it (NIO's codec, the
/// connection guard, the HTTPTypes codec, the poll handler), driven byte by byte through a
/// testing channel, over a real SQLite store and event bus. Behind the poll handler a
/// stand-in router records what it is given and answers when told, so pipelining and the
/// route's share can be seen.
@Suite("Poll handler: polls parked on the event loop", .serialized)
struct PollHandlerTests {
    /// What the router would get: the requests the poll handler passed on.
    final class StandInRouter: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPRequestPart
        typealias OutboundOut = HTTPResponsePart
        var paths: [String] = []
        var ended = 0
        var context: ChannelHandlerContext?
        /// Answer at once, or hold answers until `answerAll`.
        var holdAnswers = false

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): paths.append(head.path ?? "")
            case .body: break
            case .end:
                ended += 1
                if !holdAnswers { answer(context) }
            }
        }

        private var answered = 0

        func answer(_ context: ChannelHandlerContext) {
            let body = ByteBuffer(string: "routed \(paths[answered])")
            answered += 1
            context.write(wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: [.contentLength: "\(body.readableBytes)"]))),
                          promise: nil)
            context.write(wrapOutboundOut(.body(body)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }

        func answerAll() {
            guard let context else { return }
            while answered < ended { answer(context) }
        }
    }

    /// A store, a bus, one user with a token, and the edge the server would build.
    struct World {
        let store: SQLiteStore
        let bus: EventBus
        let edge: PollEdge
        let user: User
        let token: String

        static func make() async throws -> World {
            let dir = NSTemporaryDirectory() + "musit-poll-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let store = try SQLiteStore(path: dir + "/musit.sqlite")
            let bus = EventBus()
            let tokens = await TokenService(secret: Array(repeating: 7, count: 32), accessLifetime: 900, refreshLifetime: 3600)
            let user = try await store.createUser(username: "alice", displayName: "Alice", passwordHash: "x", role: .user,
                                                  firstIsAdmin: false)
            // Her log starts from the outbox, as the relay would start it.
            try await store.startLogs(try await store.pendingOutbox(limit: 10))
            let logger = Logger(label: "test")
            let events = EventsController(social: store, presence: PresenceTracker(), poll: LongPoll(store: store, bus: bus),
                                          pages: EncodedPages())
            let edge = PollEdge(events: events, tokens: tokens, users: store, problems: ProblemMiddleware(logger: logger),
                                metrics: RequestMetrics(), routes: RouteCounter(), cors: CORSPolicy(), logger: logger,
                                serverName: "Musit")
            return World(store: store, bus: bus, edge: edge, user: user, token: try await tokens.accessToken(for: user))
        }

        /// Commits an event for the user and announces it, as a controller does.
        func send(_ body: String) async throws {
            let message = ChatMessage(id: 1, from: "bob", to: "alice", body: body, clientId: "c", sentAt: "")
            await bus.announce(try await store.appendEvent(.draft(.chatMessage, message: message), to: [user.id]))
        }

        func request(_ query: String, version: String = "1.1", extra: String = "") -> String {
            "GET /api/v1/events?\(query) HTTP/\(version)\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n\(extra)\r\n"
        }
    }

    /// A channel with the server's pipeline around the poll handler.
    static func channel(_ world: World, router: StandInRouter) async throws -> NIOAsyncTestingChannel {
        let channel = NIOAsyncTestingChannel()
        let registry = ConnectionRegistry(limits: ConnectionLimits(), descriptorLimit: 1024, logger: Logger(label: "test"))
        try await channel.eventLoop.submit {
            let ops = channel.pipeline.syncOperations
            try ops.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
            let decoder = try ops.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try ops.addHandler(ConnectionGuard(registry: registry), position: .after(decoder))
            try ops.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try ops.addHandler(PollHandler(edge: world.edge))
            try ops.addHandler(router)
        }.get()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        return channel
    }

    /// Everything the channel wrote so far, as text.
    static func written(_ channel: NIOAsyncTestingChannel, into text: inout String) async throws {
        while let data = try await channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { text += String(buffer: buffer) }
        }
    }

    /// Waits until what was written holds `count` complete answers (or `seconds` pass).
    static func answers(_ channel: NIOAsyncTestingChannel, count: Int, within seconds: Double = 5) async throws -> [String] {
        var text = ""
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            try await written(channel, into: &text)
            let parsed = split(text)
            if parsed.count >= count { return parsed }
            try await Task.sleep(for: .milliseconds(10))
        }
        return split(text)
    }

    /// Complete responses (head and Content-Length body) in `text`.
    static func split(_ text: String) -> [String] {
        var out: [String] = []
        var rest = Substring(text)
        while let end = rest.range(of: "\r\n\r\n") {
            let head = rest[..<end.lowerBound]
            let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            let bodyStart = end.upperBound
            guard rest.utf8.distance(from: bodyStart, to: rest.endIndex) >= length else { break }
            let bodyEnd = rest.utf8.index(bodyStart, offsetBy: length)
            out.append(String(rest[rest.startIndex..<bodyEnd]))
            rest = rest[bodyEnd...]
        }
        return out
    }

    /// The events page an answer carries.
    static func page(_ answer: String?) -> EventsPage? {
        guard let answer, let body = answer.range(of: "\r\n\r\n") else { return nil }
        return try? JSONDecoder().decode(EventsPage.self, from: Data(answer[body.upperBound...].utf8))
    }

    static func heldPolls(_ bus: EventBus, become n: Int) async throws -> Bool {
        for _ in 0..<300 {
            if await bus.heldPolls == n { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    @Test("a poll with nothing to answer is parked with no task, and woken by an event")
    func parkAndWake() async throws {
        let world = try await World.make()
        let router = StandInRouter()
        let channel = try await Self.channel(world, router: router)
        try await channel.writeInbound(ByteBuffer(string: world.request("cursor=0&timeout=30")))
        #expect(try await Self.heldPolls(world.bus, become: 1), "the poll is held in the bus")
        #expect(try await Self.answers(channel, count: 1, within: 0.3).isEmpty, "nothing is answered while held")
        try await world.send("hello")
        let answers = try await Self.answers(channel, count: 1)
        #expect(answers.count == 1)
        #expect(answers.first?.hasPrefix("HTTP/1.1 200 OK") == true, "\(answers)")
        #expect(answers.first?.contains(#""body":"hello""#) == true, "\(answers)")
        #expect(answers.first?.contains(#""cursor":1"#) == true)
        #expect(router.paths.isEmpty, "the router never saw the poll")
        #expect(await world.bus.heldPolls == 0)
        // Kept alive: the next poll on the same connection is parked again.
        try await channel.writeInbound(ByteBuffer(string: world.request("cursor=1&timeout=30")))
        #expect(try await Self.heldPolls(world.bus, become: 1))
        try await world.send("again")
        let second = try await Self.answers(channel, count: 1)
        #expect(second.first?.contains(#""body":"again""#) == true, "\(second)")
        _ = try? await channel.finish()
    }

    @Test("a held poll answers an empty page at its timeout, with its cursor")
    func timeout() async throws {
        let world = try await World.make()
        let channel = try await Self.channel(world, router: StandInRouter())
        let start = ContinuousClock.now
        try await channel.writeInbound(ByteBuffer(string: world.request("cursor=0&timeout=1")))
        let answers = try await Self.answers(channel, count: 1, within: 3)
        let took = ContinuousClock.now - start
        #expect(Self.page(answers.first) == EventsPage(events: [], cursor: 0), "\(answers)")
        #expect(took >= .milliseconds(950) && took < .milliseconds(1500), "answered at its timeout: \(took)")
        #expect(await world.bus.heldPolls == 0)
        _ = try? await channel.finish()
    }

    @Test("a client that goes away frees its parked poll at once")
    func clientClose() async throws {
        let world = try await World.make()
        let channel = try await Self.channel(world, router: StandInRouter())
        weak var handler = try await channel.pipeline.handler(type: PollHandler.self).get()
        try await channel.writeInbound(ByteBuffer(string: world.request("cursor=0&timeout=60")))
        #expect(try await Self.heldPolls(world.bus, become: 1))
        try await channel.close()
        #expect(try await Self.heldPolls(world.bus, become: 0), "the bus let go of it")
        for _ in 0..<100 where handler != nil { try await Task.sleep(for: .milliseconds(10)) }
        #expect(handler == nil, "nothing keeps the connection's handler alive after it closed")
        // An event for the user after that wakes nothing and breaks nothing.
        try await world.send("nobody listens")
    }

    @Test("at shutdown a parked poll is answered, then its connection closes; the quiesce waits for it")
    func quiesce() async throws {
        let world = try await World.make()
        let channel = try await Self.channel(world, router: StandInRouter())
        try await channel.writeInbound(ByteBuffer(string: world.request("cursor=0&timeout=60")))
        #expect(try await Self.heldPolls(world.bus, become: 1))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        try await Task.sleep(for: .milliseconds(100))
        #expect(channel.isActive, "the poll is not cut off by the server's quiesce")
        await world.bus.close()
        let answers = try await Self.answers(channel, count: 1)
        #expect(answers.first?.hasPrefix("HTTP/1.1 200 OK") == true, "\(answers)")
        #expect(Self.page(answers.first) == EventsPage(events: [], cursor: 0), "\(answers)")
        for _ in 0..<100 where channel.isActive { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!channel.isActive, "closed after the answer")
    }

    @Test("a request pipelined behind a held poll waits for it, and answers come in request order")
    func pipelinedBehindPoll() async throws {
        let world = try await World.make()
        let router = StandInRouter()
        let channel = try await Self.channel(world, router: router)
        try await channel.writeInbound(ByteBuffer(string: world.request("cursor=0&timeout=30")
                + "GET /api/v1/songs HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(try await Self.heldPolls(world.bus, become: 1))
        #expect(router.paths.isEmpty, "the request behind the poll waits")
        try await world.send("first")
        let answers = try await Self.answers(channel, count: 2)
        #expect(answers.count == 2, "\(answers)")
        #expect(answers.first?.contains(#""body":"first""#) == true, "the poll's answer first: \(answers)")
        #expect(answers.last?.contains("routed /api/v1/songs") == true, "\(answers)")
        #expect(router.paths == ["/api/v1/songs"])
        _ = try? await channel.finish()
    }

    @Test("two polls pipelined in one write: the second starts when the first is answered")
    func pollBehindPoll() async throws {
        let world = try await World.make()
        let router = StandInRouter()
        let channel = try await Self.channel(world, router: router)
        try await channel.writeInbound(ByteBuffer(string: world.request("cursor=0&timeout=30") + world.request("cursor=0&timeout=30")))
        #expect(try await Self.heldPolls(world.bus, become: 1), "the first is held; the second waits behind it")
        try await world.send("first")
        let answers = try await Self.answers(channel, count: 2)
        #expect(answers.count == 2, "\(answers)")
        #expect(answers.allSatisfy { Self.page($0)?.events.first?.message?.body == "first" }, "\(answers)")
        #expect(router.paths.isEmpty)
        #expect(try await Self.heldPolls(world.bus, become: 0))
        _ = try? await channel.finish()
    }

    @Test("a poll pipelined behind a request the router is answering goes to the route")
    func pollBehindRequest() async throws {
        let world = try await World.make()
        let router = StandInRouter()
        router.holdAnswers = true
        let channel = try await Self.channel(world, router: router)
        try await channel.writeInbound(ByteBuffer(string: "GET /api/v1/songs HTTP/1.1\r\nHost: x\r\n\r\n"
                + world.request("cursor=0&timeout=30")))
        #expect(router.paths == ["/api/v1/songs", "/api/v1/events?cursor=0&timeout=30"])
        #expect(await world.bus.heldPolls == 0, "the poll handler did not take it")
        try await channel.eventLoop.submit { router.answerAll() }.get()
        let answers = try await Self.answers(channel, count: 2)
        #expect(answers.map { $0.contains("routed") } == [true, true], "\(answers)")
        _ = try? await channel.finish()
    }

    @Test("HTTP/1.0: the answer is 1.0, framed by its length, and the connection closes after it")
    func http10() async throws {
        let world = try await World.make()
        let channel = try await Self.channel(world, router: StandInRouter())
        try await channel.writeInbound(ByteBuffer(string: world.request("cursor=0&timeout=1", version: "1.0")))
        let answers = try await Self.answers(channel, count: 1, within: 3)
        #expect(answers.first?.hasPrefix("HTTP/1.0 200 OK") == true, "\(answers)")
        #expect(answers.first?.lowercased().contains("connection: close") == true, "\(answers)")
        for _ in 0..<100 where channel.isActive { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!channel.isActive)
    }

    @Test("a poll whose account is deleted while it is held is answered 401 at once")
    func accountDeleted() async throws {
        let world = try await World.make()
        let channel = try await Self.channel(world, router: StandInRouter())
        try await channel.writeInbound(ByteBuffer(string: world.request("cursor=0&timeout=60")))
        #expect(try await Self.heldPolls(world.bus, become: 1))
        _ = try await world.store.deleteUser(world.user)
        await world.bus.remove(user: world.user.id)
        let answers = try await Self.answers(channel, count: 1, within: 2)
        #expect(answers.first?.hasPrefix("HTTP/1.1 401") == true, "\(answers)")
        #expect(answers.first?.contains("No such user") == true)
        // The parked poll kept only a mark of its token, and the answer still says a token
        // came and was refused.
        #expect(answers.first?.contains(#"error="invalid_token""#) == true, "\(answers)")
        #expect(await world.bus.heldPolls == 0)
        _ = try? await channel.finish()
    }

    @Test("a parked poll keeps its path and Origin, and of its token only that one came")
    func heldHead() {
        var head = HTTPRequest(method: .get, scheme: nil, authority: "x", path: "/api/v1/events?cursor=3&timeout=60")
        head.headerFields[.authorization] = "Bearer " + String(repeating: "t", count: 300)
        head.headerFields[.origin] = "https://app.example"
        head.headerFields[.userAgent] = "musit-tui"
        let held = PollHandler.held(head)
        #expect(held.path == head.path && held.method == .get && held.authority == "x")
        #expect(held.headerFields[.origin] == "https://app.example")
        #expect(held.headerFields[.authorization] == "Bearer")
        #expect(held.headerFields[.userAgent] == nil)
        var anonymous = head
        anonymous.headerFields[.authorization] = nil
        #expect(PollHandler.held(anonymous).headerFields[.authorization] == nil)
    }

    @Test("a cursor past the log is 410 with resumeFrom; a bad one 400; no token 401; none is held")
    func refusals() async throws {
        let world = try await World.make()
        try await world.send("one")
        let channel = try await Self.channel(world, router: StandInRouter())
        try await channel.writeInbound(ByteBuffer(string: world.request("cursor=5&timeout=30")))
        let gone = try await Self.answers(channel, count: 1)
        #expect(gone.first?.hasPrefix("HTTP/1.1 410 Gone") == true, "\(gone)")
        #expect(gone.first?.contains(#""resumeFrom":1"#) == true, "\(gone)")
        try await channel.writeInbound(ByteBuffer(string: world.request("cursor=x&timeout=30")))
        let bad = try await Self.answers(channel, count: 1)
        #expect(bad.first?.hasPrefix("HTTP/1.1 400") == true, "\(bad)")
        try await channel.writeInbound(ByteBuffer(string: "GET /api/v1/events?cursor=0 HTTP/1.1\r\nHost: x\r\n\r\n"))
        let unauthorized = try await Self.answers(channel, count: 1)
        #expect(unauthorized.first?.hasPrefix("HTTP/1.1 401") == true, "\(unauthorized)")
        #expect(unauthorized.first?.contains(#"WWW-Authenticate: Bearer realm="musit""#) == true, "\(unauthorized)")
        #expect(await world.bus.heldPolls == 0)
        _ = try? await channel.finish()
    }
}
