import Foundation
import GRPCCore
import Hummingbird
import Logging
import MusitAPI
import MusitRPC
import ServiceLifecycle

/// The Social service, `musit.social.v1.Social`: friendships, chat and the event logs, over
/// its repository. Served alone by `--role social`; the gateway reaches it through
/// `RemoteSocial`. Inputs are checked here too: a caller other than the gateway gets the
/// same limits the public API has.
struct SocialService: Musit_Social_V1_Social.SimpleServiceProtocol {
    let social: any SocialRepository
    /// Where every committed change is told to the subscribed gateways.
    let feed: EventFeed

    init(social: any SocialRepository, feed: EventFeed = EventFeed()) {
        self.social = social
        self.feed = feed
    }

    /// `events` were committed: the subscribers hear of them (after the commit, never before).
    private func told(_ events: [CommittedEvent]?) -> [CommittedEvent]? {
        if let events { feed.announce(events) }
        return events
    }

    func requestFriend(request: Musit_Social_V1_PairRequest, context: ServerContext) async throws
        -> Musit_Social_V1_RequestFriendResponse {
        let (from, to) = try Self.pair(request.from, request.to)
        let (outcome, events) = try await Self.mapped { try await social.requestFriend(from: from, to: to) }
        _ = told(events)
        return try .with {
            $0.outcome = switch outcome {
            case .requested: .requested
            case .alreadyRequested: .alreadyRequested
            case .alreadyFriends: .alreadyFriends
            case .accepted: .accepted
            }
            $0.events = try events.map(SocialWire.event)
        }
    }

    func acceptFriend(request: Musit_Social_V1_PairRequest, context: ServerContext) async throws -> Musit_Social_V1_ChangeResponse {
        let (from, to) = try Self.pair(request.from, request.to)
        return try SocialWire.change(told(try await Self.mapped { try await social.acceptFriend(from: from, to: to) }))
    }

    func declineFriend(request: Musit_Social_V1_PairRequest, context: ServerContext) async throws -> Musit_Social_V1_ChangeResponse {
        let (from, to) = try Self.pair(request.from, request.to)
        return try SocialWire.change(told(try await Self.mapped { try await social.declineFriend(from: from, to: to) }))
    }

    func removeFriend(request: Musit_Social_V1_PairRequest, context: ServerContext) async throws -> Musit_Social_V1_ChangeResponse {
        let (from, to) = try Self.pair(request.from, request.to)
        return try SocialWire.change(told(try await Self.mapped { try await social.removeFriend(from, to) }))
    }

    func friends(request: Musit_Social_V1_UserRequest, context: ServerContext) async throws -> Musit_Social_V1_FriendsResponse {
        try Self.id(request.userID, "user_id")
        let ids = try await Self.mapped { try await social.friends(of: request.userID) }
        return .with {
            $0.friends = ids.friends
            $0.incoming = ids.incoming
            $0.outgoing = ids.outgoing
        }
    }

    func sendMessage(request: Musit_Social_V1_SendMessageRequest, context: ServerContext) async throws
        -> Musit_Social_V1_SendMessageResponse {
        let (from, to) = try Self.pair(request.from, request.to)
        guard !request.clientID.isEmpty, request.clientID.utf8.count <= 128 else {
            throw RPCError(code: .invalidArgument, message: "client_id is 1 to 128 bytes")
        }
        guard !request.body.isEmpty, request.body.utf8.count <= 4 * APILimits.messageMaxLength, !request.body.utf8.contains(0) else {
            throw RPCError(code: .invalidArgument, message: "body is 1 to \(4 * APILimits.messageMaxLength) bytes, without NUL")
        }
        switch try await Self.mapped({ try await social.sendMessage(from: from, to: to, clientID: request.clientID, body: request.body) }) {
        case .notFriends:
            throw RPCError(code: .failedPrecondition, message: "You can only message friends")
        case .stored(let message, let isNew, let events):
            _ = told(events)
            return try .with {
                $0.message = SocialWire.message(message)
                $0.isNew = isNew
                $0.events = try events.map(SocialWire.event)
            }
        }
    }

    func messages(request: Musit_Social_V1_MessagesRequest, context: ServerContext) async throws -> Musit_Social_V1_MessagesResponse {
        try Self.id(request.userID, "user_id")
        try Self.id(request.otherID, "other_id")
        guard (1...1000).contains(request.limit), request.before >= 0 else {
            throw RPCError(code: .invalidArgument, message: "limit is 1 to 1000; before is a message id or 0")
        }
        let page = try await Self.mapped {
            try await social.messages(between: request.userID, request.otherID, before: request.before == 0 ? nil : request.before,
                                      limit: Int(request.limit))
        }
        return .with { $0.messages = page.map(SocialWire.message) }
    }

    func markRead(request: Musit_Social_V1_MarkReadRequest, context: ServerContext) async throws -> Musit_Social_V1_ChangeResponse {
        let (reader, from) = try Self.pair(request.reader, request.from)
        guard request.upTo > 0 else { throw RPCError(code: .invalidArgument, message: "up_to is a message id") }
        return try SocialWire.change(told(try await Self.mapped { try await social.markRead(reader: reader, from: from, upTo: request.upTo) }))
    }

    func appendEvent(request: Musit_Social_V1_AppendEventRequest, context: ServerContext) async throws -> Musit_Social_V1_ChangeResponse {
        guard request.userIds.count <= Self.fanOutLimit, request.userIds.allSatisfy({ $0 > 0 }) else {
            throw RPCError(code: .invalidArgument, message: "user_ids: at most \(Self.fanOutLimit) ids above 0")
        }
        guard let event = try? JSONDecoder().decode(ServerEvent.self, from: request.eventJson) else {
            throw RPCError(code: .invalidArgument, message: "event_json is not a ServerEvent")
        }
        return try SocialWire.change(told(try await Self.mapped { try await social.appendEvent(event, to: request.userIds) }))
    }

    func applyLibraryChanges(request: Musit_Social_V1_LibraryChangesRequest, context: ServerContext) async throws
        -> Musit_Social_V1_ChangeResponse {
        guard request.changes.count <= 1000, request.changes.allSatisfy({ $0.outboxID > 0 && $0.user.utf8.count <= 256 }) else {
            throw RPCError(code: .invalidArgument, message: "changes: at most 1,000, each with an outbox_id above 0 and a user of at most 256 bytes")
        }
        let messages = request.changes.map {
            OutboxMessage(id: $0.outboxID, topic: .libraryChanged, subject: 0, payload: $0.user.isEmpty ? nil : $0.user)
        }
        return try SocialWire.change(told(try await Self.mapped { try await social.applyLibraryChanges(messages) }))
    }

    func forgetUsers(request: Musit_Social_V1_AccountChangesRequest, context: ServerContext) async throws
        -> Musit_Social_V1_ChangeResponse {
        let messages = try Self.accountChanges(request, .userDeletedSocial)
        return try SocialWire.change(told(try await Self.mapped { try await social.forgetUsers(messages) }))
    }

    func startLogs(request: Musit_Social_V1_AccountChangesRequest, context: ServerContext) async throws
        -> Musit_Social_V1_ChangeResponse {
        let messages = try Self.accountChanges(request, .userCreated)
        try await Self.mapped { try await social.startLogs(messages) }
        return .init()
    }

    static func accountChanges(_ request: Musit_Social_V1_AccountChangesRequest, _ topic: OutboxMessage.Topic) throws -> [OutboxMessage] {
        guard request.changes.count <= 1000,
              request.changes.allSatisfy({ $0.outboxID > 0 && $0.userID > 0 && $0.username.utf8.count <= 256 }) else {
            throw RPCError(code: .invalidArgument,
                           message: "changes: at most 1,000, each with an outbox_id and a user_id above 0 and a username of at most 256 bytes")
        }
        return request.changes.map { OutboxMessage(id: $0.outboxID, topic: topic, subject: $0.userID, payload: $0.username) }
    }

    func events(request: Musit_Social_V1_EventsRequest, context: ServerContext) async throws -> Musit_Social_V1_EventsResponse {
        try Self.id(request.userID, "user_id")
        guard request.after >= 0, (1...1000).contains(request.limit) else {
            throw RPCError(code: .invalidArgument, message: "after is 0 or more; limit is 1 to 1000")
        }
        let slice = try await Self.mapped { try await social.events(for: request.userID, after: request.after, limit: Int(request.limit)) }
        let encoder = JSONEncoder()
        return try .with {
            $0.eventsJson = try slice.events.map { try encoder.encode($0) }
            $0.head = slice.head
            $0.prunedThrough = slice.prunedThrough
        }
    }

    /// The gateway's subscription: notices as `EventFeed` hands them over, a heartbeat
    /// (a notice without news) every `heartbeat` when there are none, so that a gateway can
    /// tell a quiet Social from a lost one; until the gateway hangs up or Social stops
    /// (a graceful shutdown ends the stream at once: the server waits for calls in flight,
    /// and this one would never end by itself).
    func subscribe(request: Musit_Social_V1_SubscribeRequest, response: RPCWriter<Musit_Social_V1_Notice>,
                   context: ServerContext) async throws {
        try await cancelWhenGracefulShutdown {
            try await follow(request, response)
        }
    }

    private func follow(_ request: Musit_Social_V1_SubscribeRequest, _ response: RPCWriter<Musit_Social_V1_Notice>) async throws {
        var stream = request.stream
        var after = request.after
        while !Task.isCancelled {
            let notices = await feed.next(stream: stream, after: after, timeout: Self.heartbeat)
            guard let last = notices.last else {
                if Task.isCancelled { break }
                try await response.write(.with {
                    $0.stream = stream
                    $0.seq = after
                })
                continue
            }
            try await response.write(contentsOf: notices)
            stream = last.stream
            after = last.seq
        }
    }

    static let heartbeat = Duration.seconds(10)

    /// Users one event may go to in a call (the gateway's fan-outs are friends' lists).
    static let fanOutLimit = 100_000

    static func id(_ value: Int64, _ name: String) throws {
        guard value > 0 else { throw RPCError(code: .invalidArgument, message: "\(name) is an id above 0") }
    }

    static func pair(_ a: Musit_Social_V1_Person, _ b: Musit_Social_V1_Person) throws -> (User, User) {
        let pair = (try SocialWire.user(a), try SocialWire.user(b))
        guard pair.0.id != pair.1.id else { throw RPCError(code: .invalidArgument, message: "the two people are one") }
        return pair
    }

    /// The repository's errors as gRPC statuses: the store away is UNAVAILABLE (the gateway
    /// answers 503 with Retry-After), a problem the caller caused keeps its meaning.
    static func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let problem as Problem {
            let code: RPCError.Code = switch problem.status {
            case 503: .unavailable
            case 400, 422: .invalidArgument
            case 404: .notFound
            case 409: .failedPrecondition
            case 429: .resourceExhausted
            default: .internalError
            }
            throw RPCError(code: code, message: problem.detail ?? problem.title)
        }
    }
}

/// The messages of `musit.social.v1` to and from the server's own types.
enum SocialWire {
    static func person(_ user: User) -> Musit_Social_V1_Person {
        .with {
            $0.id = user.id
            $0.username = user.username
            $0.displayName = user.displayName
        }
    }

    /// A user as Social needs one: no password hash, role or bio crosses the wire.
    static func user(_ person: Musit_Social_V1_Person) throws -> User {
        guard person.id > 0, TextRules.isValidUsername(person.username), person.displayName.utf8.count <= 1024 else {
            throw RPCError(code: .invalidArgument, message: "a person is an id above 0 and a valid username")
        }
        return User(id: person.id, username: person.username, displayName: person.displayName.isEmpty ? person.username : person.displayName,
                    passwordHash: "", role: .user, bio: "")
    }

    static func event(_ c: CommittedEvent) throws -> Musit_Social_V1_CommittedEvent {
        try .with {
            $0.userID = c.userID
            $0.eventJson = try JSONEncoder().encode(c.event)
        }
    }

    static func committed(_ e: Musit_Social_V1_CommittedEvent) throws -> CommittedEvent {
        CommittedEvent(userID: e.userID, event: try JSONDecoder().decode(ServerEvent.self, from: e.eventJson))
    }

    static func change(_ events: [CommittedEvent]?) throws -> Musit_Social_V1_ChangeResponse {
        try .with {
            $0.found = events != nil
            $0.events = try (events ?? []).map(event)
        }
    }

    static func message(_ m: StoredMessage) -> Musit_Social_V1_Message {
        .with {
            $0.id = m.id
            $0.fromID = m.fromID
            $0.toID = m.toID
            $0.clientID = m.clientID
            $0.body = m.body
            $0.sentAt = m.sentAt.timeIntervalSince1970
            $0.readAt = m.readAt?.timeIntervalSince1970 ?? 0
        }
    }

    static func stored(_ m: Musit_Social_V1_Message) -> StoredMessage {
        StoredMessage(id: m.id, fromID: m.fromID, toID: m.toID, clientID: m.clientID, body: m.body,
                      sentAt: Date(timeIntervalSince1970: m.sentAt), readAt: m.readAt == 0 ? nil : Date(timeIntervalSince1970: m.readAt))
    }
}

/// Social reached over gRPC: the repository the gateway's routes use when `--social` names
/// the service. A failed call is the HTTP answer `ServiceLink` makes of it (503 with
/// Retry-After while Social is away). Reads are retried while the budget lasts, and so is a
/// message (stored once per client id, and answered the same way again). The other writes
/// are not: UNAVAILABLE may come after the commit (Social killed mid-answer), and a retry
/// would then find the request accepted already and answer 404 for what succeeded.
struct RemoteSocial: SocialRepository {
    let link: ServiceLink<any Musit_Social_V1_Social.ClientProtocol>

    func requestFriend(from: User, to: User) async throws -> (FriendRequestOutcome, [CommittedEvent]) {
        let request = Self.pair(from, to)
        let answer = try await link.call { try await $0.requestFriend(request, options: $1) }
        let outcome: FriendRequestOutcome = switch answer.outcome {
        case .requested: .requested
        case .alreadyRequested: .alreadyRequested
        case .alreadyFriends: .alreadyFriends
        case .accepted: .accepted
        case .unspecified, .UNRECOGNIZED: throw HTTPError(.badGateway, message: "Social answered an unknown outcome")
        }
        return (outcome, try answer.events.map(SocialWire.committed))
    }

    func acceptFriend(from: User, to: User) async throws -> [CommittedEvent]? {
        let request = Self.pair(from, to)
        return try Self.events(try await link.call { try await $0.acceptFriend(request, options: $1) })
    }

    func declineFriend(from: User, to: User) async throws -> [CommittedEvent]? {
        let request = Self.pair(from, to)
        return try Self.events(try await link.call { try await $0.declineFriend(request, options: $1) })
    }

    func removeFriend(_ me: User, _ other: User) async throws -> [CommittedEvent]? {
        let request = Self.pair(me, other)
        return try Self.events(try await link.call { try await $0.removeFriend(request, options: $1) })
    }

    func friends(of user: Int64) async throws -> FriendIDs {
        let answer = try await link.call(idempotent: true) { try await $0.friends(.with { $0.userID = user }, options: $1) }
        return FriendIDs(friends: answer.friends, incoming: answer.incoming, outgoing: answer.outgoing)
    }

    func sendMessage(from: User, to: User, clientID: String, body: String) async throws -> SendOutcome {
        let request = Musit_Social_V1_SendMessageRequest.with {
            $0.from = SocialWire.person(from)
            $0.to = SocialWire.person(to)
            $0.clientID = clientID
            $0.body = body
        }
        // Not friends is an answer, not a failure: caught before the link makes it one.
        let answer: Musit_Social_V1_SendMessageResponse? = try await link.call(idempotent: true) { client, options in
            do {
                return try await client.sendMessage(request, options: options)
            } catch let error as RPCError where error.code == .failedPrecondition {
                return nil
            }
        }
        guard let answer else { return .notFriends }
        return .stored(SocialWire.stored(answer.message), isNew: answer.isNew, events: try answer.events.map(SocialWire.committed))
    }

    func messages(between a: Int64, _ b: Int64, before: Int64?, limit: Int) async throws -> [StoredMessage] {
        let request = Musit_Social_V1_MessagesRequest.with {
            $0.userID = a
            $0.otherID = b
            $0.before = before ?? 0
            $0.limit = Int32(clamping: limit)
        }
        return try await link.call(idempotent: true) { try await $0.messages(request, options: $1) }.messages.map(SocialWire.stored)
    }

    func markRead(reader: User, from: User, upTo: Int64) async throws -> [CommittedEvent] {
        let request = Musit_Social_V1_MarkReadRequest.with {
            $0.reader = SocialWire.person(reader)
            $0.from = SocialWire.person(from)
            $0.upTo = upTo
        }
        return try Self.events(try await link.call { try await $0.markRead(request, options: $1) }) ?? []
    }

    func appendEvent(_ event: ServerEvent, to users: [Int64]) async throws -> [CommittedEvent] {
        guard !users.isEmpty else { return [] }
        let request = try Musit_Social_V1_AppendEventRequest.with {
            $0.eventJson = try JSONEncoder().encode(event)
            $0.userIds = users
        }
        // Not retried: each call appends anew.
        return try Self.events(try await link.call { try await $0.appendEvent(request, options: $1) }) ?? []
    }

    func applyLibraryChanges(_ messages: [OutboxMessage]) async throws -> [CommittedEvent] {
        let changes = messages.filter { $0.topic == .libraryChanged }
        guard !changes.isEmpty else { return [] }
        let request = Musit_Social_V1_LibraryChangesRequest.with {
            $0.changes = changes.map { m in
                .with {
                    $0.outboxID = m.id
                    $0.user = m.payload ?? ""
                }
            }
        }
        // Idempotent (Social records what it applied): retried while the budget lasts.
        return try Self.events(try await link.call(idempotent: true) { try await $0.applyLibraryChanges(request, options: $1) }) ?? []
    }

    func forgetUsers(_ messages: [OutboxMessage]) async throws -> [CommittedEvent] {
        guard let request = Self.accountChanges(messages, .userDeletedSocial) else { return [] }
        // Idempotent (Social records what it applied): retried while the budget lasts.
        return try Self.events(try await link.call(idempotent: true) { try await $0.forgetUsers(request, options: $1) }) ?? []
    }

    func startLogs(_ messages: [OutboxMessage]) async throws {
        guard let request = Self.accountChanges(messages, .userCreated) else { return }
        // Idempotent (Social records what it applied): retried while the budget lasts.
        _ = try await link.call(idempotent: true) { try await $0.startLogs(request, options: $1) }
    }

    static func accountChanges(_ messages: [OutboxMessage], _ topic: OutboxMessage.Topic) -> Musit_Social_V1_AccountChangesRequest? {
        let changes = messages.filter { $0.topic == topic }
        guard !changes.isEmpty else { return nil }
        return .with {
            $0.changes = changes.map { m in
                .with {
                    $0.outboxID = m.id
                    $0.userID = m.subject
                    $0.username = m.payload ?? ""
                }
            }
        }
    }

    func events(for user: Int64, after cursor: Int64, limit: Int) async throws -> EventSlice {
        let request = Musit_Social_V1_EventsRequest.with {
            $0.userID = user
            $0.after = cursor
            $0.limit = Int32(clamping: limit)
        }
        let answer = try await link.call(idempotent: true) { try await $0.events(request, options: $1) }
        let decoder = JSONDecoder()
        return EventSlice(events: try answer.eventsJson.map { try decoder.decode(ServerEvent.self, from: $0) },
                          head: answer.head, prunedThrough: answer.prunedThrough)
    }

    /// Pruning is the Social service's own work, not the gateway's.
    func pruneEvents(before date: Date) async throws -> Int { 0 }

    static func pair(_ a: User, _ b: User) -> Musit_Social_V1_PairRequest {
        .with {
            $0.from = SocialWire.person(a)
            $0.to = SocialWire.person(b)
        }
    }

    static func events(_ answer: Musit_Social_V1_ChangeResponse) throws -> [CommittedEvent]? {
        answer.found ? try answer.events.map(SocialWire.committed) : nil
    }
}
