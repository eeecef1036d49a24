import Foundation
import Hummingbird
import MusitAPI

/// Friends, chat and presence. Every change commits with its events in one
/// transaction (the repository's), then announces them to the bus.
struct SocialController: Sendable {
    let users: any UserDirectory
    let social: any SocialRepository
    let presence: any PresenceRepository
    let bus: EventBus
    /// New friend requests and removals (cancelled requests included), per user: each
    /// writes to another user's event log, so a flood of request/cancel pairs must stop.
    let friendChanges: RateLimiter
    let presencePublisher: PresencePublisher

    /// Routes for signed-in users: `group` has the authentication middleware.
    func addRoutes(to group: RouterGroup<MusitContext>) {
        group.get("friends", use: friends)
        group.post("friends/requests", use: requestFriend)
        group.post("friends/requests/:username/accept", use: accept)
        group.post("friends/requests/:username/decline", use: decline)
        group.delete("friends/:username", use: unfriend)
        group.post("messages", use: send)
        group.get("conversations/:username/messages", use: messages)
        group.post("conversations/:username/read", use: markRead)
        group.put("presence", use: setPresence)
    }

    @Sendable func friends(_ request: Request, context: MusitContext) async throws -> FriendsList {
        let me = try context.requireUser()
        let ids = try await social.friends(of: me.id)
        let known = Dictionary(try await users.users(ids: ids.friends + ids.incoming + ids.outgoing).map { ($0.id, $0) },
                               uniquingKeysWith: { a, _ in a })
        // A user deleted between the two reads is left out.
        let friends = ids.friends.compactMap { known[$0] }.sorted { $0.username.lowercased() < $1.username.lowercased() }
        let incoming = ids.incoming.compactMap { known[$0] }
        let outgoing = ids.outgoing.compactMap { known[$0] }
        let presence = try await presence.presence(of: friends.map(\.id))
        let now = Date()
        let window = self.presence.window
        return FriendsList(
            friends: friends.map { f in
                let p = presence[f.id]
                let online = p.map { now.timeIntervalSince($0.lastSeen) <= window } ?? false
                return FriendInfo(user: f.info, online: online, nowPlaying: online ? p?.nowPlaying : nil,
                                  lastSeen: p?.lastSeen.ISO8601Format())
            },
            incoming: incoming.map(\.info), outgoing: outgoing.map(\.info))
    }

    @Sendable func requestFriend(_ request: Request, context: MusitContext) async throws -> Response {
        let me = try context.requireUser()
        let body = try await request.decode(as: FriendRequestBody.self, context: context)
        guard let other = try await users.user(named: body.username) else { throw Problem.notFound("No user \(body.username)") }
        guard other.id != me.id else { throw Problem.badRequest("You cannot befriend yourself") }
        try friendChanges.check(me.id, what: "friend requests and removals")
        let (outcome, events) = try await social.requestFriend(from: me, to: other)
        await bus.announce(events)
        switch outcome {
        case .requested: return Response(status: .created)
        case .alreadyRequested: return Response(status: .accepted)
        case .alreadyFriends, .accepted: return Response(status: .ok)
        }
    }

    @Sendable func accept(_ request: Request, context: MusitContext) async throws -> Response {
        let me = try context.requireUser()
        let other = try await user(context)
        guard let events = try await social.acceptFriend(from: other, to: me) else {
            throw Problem.notFound("No friend request from \(other.username)")
        }
        await bus.announce(events)
        return Response(status: .ok)
    }

    @Sendable func decline(_ request: Request, context: MusitContext) async throws -> Response {
        let me = try context.requireUser()
        let other = try await user(context)
        guard let events = try await social.declineFriend(from: other, to: me) else {
            throw Problem.notFound("No friend request from \(other.username)")
        }
        await bus.announce(events)
        return Response(status: .noContent)
    }

    @Sendable func unfriend(_ request: Request, context: MusitContext) async throws -> Response {
        let me = try context.requireUser()
        let other = try await user(context)
        try friendChanges.check(me.id, what: "friend requests and removals")
        guard let events = try await social.removeFriend(me, other) else {
            throw Problem.notFound("\(other.username) is not a friend")
        }
        await bus.announce(events)
        return Response(status: .noContent)
    }

    @Sendable func send(_ request: Request, context: MusitContext) async throws -> EditedResponse<ChatMessage> {
        let me = try context.requireUser()
        let body = try await request.decode(as: SendMessage.self, context: context)
        try TextRules.check(body.body, "body", maxCharacters: APILimits.messageMaxLength, maxBytes: 4 * APILimits.messageMaxLength)
        let text = body.body.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw Problem.badRequest("Messages are 1 to \(APILimits.messageMaxLength) characters") }
        try TextRules.check(body.clientId, "clientId", maxCharacters: 64, maxBytes: 64)
        guard !body.clientId.isEmpty else { throw Problem.badRequest("clientId is 1 to 64 characters") }
        guard let other = try await users.user(named: body.to) else { throw Problem.notFound("No user \(body.to)") }
        switch try await social.sendMessage(from: me, to: other, clientID: body.clientId, body: text) {
        case .notFriends:
            throw Problem(status: 403, title: "Forbidden", detail: "You can only write to friends")
        case .stored(let stored, let isNew, let events):
            await bus.announce(events)
            let peer = stored.toID == other.id ? other.username : (try await users.user(id: stored.toID)?.username ?? "?")
            return EditedResponse(status: isNew ? .created : .ok, response: ChatMessage(stored, from: me.username, to: peer))
        }
    }

    @Sendable func messages(_ request: Request, context: MusitContext) async throws -> MessagesPage {
        let me = try context.requireUser()
        let other = try await user(context)
        let query = QueryParameters(request)
        let limit = try query.integer("limit", in: 1...200, default: 50)
        let before = try query.optionalInteger("before", in: 1...Int64.max)
        let stored = try await social.messages(between: me.id, other.id, before: before, limit: limit)
        let messages = stored.map {
            ChatMessage($0, from: $0.fromID == me.id ? me.username : other.username, to: $0.fromID == me.id ? other.username : me.username)
        }
        return MessagesPage(messages: messages, nextBefore: stored.count == limit ? stored.last?.id : nil)
    }

    @Sendable func markRead(_ request: Request, context: MusitContext) async throws -> Response {
        let me = try context.requireUser()
        let other = try await user(context)
        let body = try await request.decode(as: ReadReceipt.self, context: context)
        await bus.announce(try await social.markRead(reader: me, from: other, upTo: body.upTo))
        return Response(status: .noContent)
    }

    @Sendable func setPresence(_ request: Request, context: MusitContext) async throws -> Response {
        let me = try context.requireUser()
        let body = try await request.decode(as: NowPlayingInfo.self, context: context)
        for (field, value) in [("title", body.title), ("artist", body.artist)] {
            if let value { try TextRules.check(value, field, maxCharacters: 256, maxBytes: 1024) }
        }
        try await presence.set(userID: me.id, nowPlaying: body, seen: Date())
        try await presencePublisher.update(user: me.id, username: me.username)
        return Response(status: .noContent)
    }

    func user(_ context: MusitContext) async throws -> User {
        let name = context.parameters.get("username") ?? ""
        guard let user = try await users.user(named: name) else { throw Problem.notFound("No user \(name)") }
        return user
    }
}

/// The long-poll event stream.
struct EventsController: Sendable {
    let social: any SocialRepository
    let presence: any PresenceRepository
    let poll: LongPoll
    let pages: EncodedPages

    func addRoutes(to group: RouterGroup<MusitContext>) {
        group.get("events", use: events)
    }

    /// The route takes the polls `PollHandler` leaves to it: a HEAD, a conditional GET, or a
    /// poll pipelined behind a request the router is still answering.
    @Sendable func events(_ request: Request, context: MusitContext) async throws -> Response {
        let me = try context.requireUser()
        let (cursor, timeout) = try Self.parameters(request)
        try await arrived(me)
        let disconnect = timeout > 0 ? ClientDisconnectSignal.of(context.channel) : nil
        let page = try await poll.page(user: me.id, after: cursor, timeout: timeout, disconnect: disconnect)
        try await answered(me.id)
        return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                        body: .init(byteBuffer: try pages.body(user: me.id, after: cursor, page: page)))
    }

    /// `cursor` and `timeout` from the query; 400 when either is bad.
    static func parameters(_ request: Request) throws -> (cursor: Int64, timeout: Int) {
        let query = QueryParameters(request)
        return (try query.integer("cursor", in: 0...Int64.max, default: 0),
                try query.integer("timeout", in: 0...APILimits.maxPollSeconds, default: APILimits.defaultPollSeconds))
    }

    /// A poll marks its user online; friends learn when that is news.
    func arrived(_ me: User) async throws {
        if try await presence.touch(userID: me.id, seen: Date()) {
            let friends = try await social.friends(of: me.id).friends
            await poll.bus.announce(try await social.appendEvent(.draft(.presence, user: me.username, online: true), to: friends))
        }
    }

    /// A held poll keeps its user online.
    func answered(_ user: Int64) async throws {
        _ = try await presence.touch(userID: user, seen: Date())
    }
}

extension Problem {
    static func notFound(_ detail: String) -> Problem { Problem(status: 404, title: "Not Found", detail: detail) }
}

extension UserList: ResponseEncodable {}
extension FriendsList: ResponseEncodable {}
extension ChatMessage: ResponseEncodable {}
extension MessagesPage: ResponseEncodable {}
extension EventsPage: ResponseEncodable {}
