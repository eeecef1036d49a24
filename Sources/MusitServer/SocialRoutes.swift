import Foundation
import Hummingbird
import MusitAPI

/// Profiles, friends, chat, presence and the long-poll event stream.
enum SocialRoutes {
    static func register(on router: Router<MusitContext>, services s: Services) {
        let social = s.social
        let publisher = EventPublisher(store: social, bus: s.bus)

        router.patch("/api/v1/me") { request, context in
            let me = try await Routes.authenticate(request, services: s)
            let body = try await request.decode(as: ProfileUpdate.self, context: context)
            if let bio = body.bio, bio.count > APILimits.bioMaxLength {
                throw Problem.badRequest("A bio is at most \(APILimits.bioMaxLength) characters; this one has \(bio.count)")
            }
            let name = body.displayName?.trimmingCharacters(in: .whitespacesAndNewlines)
            if let name, name.isEmpty || name.count > APILimits.displayNameMaxLength {
                throw Problem.badRequest("Display names are 1 to \(APILimits.displayNameMaxLength) characters")
            }
            guard let user = try await social.updateProfile(userID: me.id, displayName: name, bio: body.bio) else {
                throw Problem.unauthorized("No such user")
            }
            return user.info
        }

        router.get("/api/v1/users") { request, _ in
            _ = try await Routes.authenticate(request, services: s)
            let query = request.uri.queryParameters.get("query") ?? ""
            guard query.count <= 64 else { throw Problem.badRequest("Search for at most 64 characters") }
            return UserList(users: try await social.searchUsers(query, limit: 50).map(\.info))
        }

        router.get("/api/v1/users/:username") { request, context in
            _ = try await Routes.authenticate(request, services: s)
            return try await user(context, s).info
        }

        router.get("/api/v1/friends") { request, _ in
            let me = try await Routes.authenticate(request, services: s)
            let (friends, incoming, outgoing) = try await social.friends(of: me.id)
            let presence = s.presence.presence(of: friends.map(\.id))
            let now = Date()
            let window = s.presence.window
            return FriendsList(
                friends: friends.map { f in
                    let p = presence[f.id]
                    let online = p.map { now.timeIntervalSince($0.lastSeen) <= window } ?? false
                    return FriendInfo(user: f.info, online: online, nowPlaying: online ? p?.nowPlaying : nil,
                                      lastSeen: p?.lastSeen.ISO8601Format())
                },
                incoming: incoming.map(\.info), outgoing: outgoing.map(\.info))
        }

        router.post("/api/v1/friends/requests") { request, context in
            let me = try await Routes.authenticate(request, services: s)
            let body = try await request.decode(as: FriendRequestBody.self, context: context)
            guard let other = try await s.users.user(named: body.username) else { throw Problem.notFound("No user \(body.username)") }
            guard other.id != me.id else { throw Problem.badRequest("You cannot befriend yourself") }
            switch try await social.friendState(me.id, other.id) {
            case .friends:
                return Response(status: .ok)
            case .outgoing:
                return Response(status: .accepted)
            case .incoming:
                // They asked first: asking back accepts.
                _ = try await social.acceptFriend(from: other.id, to: me.id)
                try await publisher.publish(EventPublisher.event(.friendAccepted, user: me.username), to: [other.id])
                return Response(status: .ok)
            case .none:
                try await social.requestFriend(from: me.id, to: other.id)
                try await publisher.publish(EventPublisher.event(.friendRequest, user: me.username), to: [other.id])
                return Response(status: .created)
            }
        }

        router.post("/api/v1/friends/requests/:username/accept") { request, context in
            let me = try await Routes.authenticate(request, services: s)
            let other = try await user(context, s)
            guard try await social.acceptFriend(from: other.id, to: me.id) else {
                throw Problem.notFound("No friend request from \(other.username)")
            }
            try await publisher.publish(EventPublisher.event(.friendAccepted, user: me.username), to: [other.id])
            return Response(status: .ok)
        }

        router.post("/api/v1/friends/requests/:username/decline") { request, context in
            let me = try await Routes.authenticate(request, services: s)
            let other = try await user(context, s)
            guard try await social.friendState(me.id, other.id) == .incoming,
                  try await social.removeFriendship(me.id, other.id) else {
                throw Problem.notFound("No friend request from \(other.username)")
            }
            return Response(status: .noContent)
        }

        router.delete("/api/v1/friends/:username") { request, context in
            let me = try await Routes.authenticate(request, services: s)
            let other = try await user(context, s)
            guard try await social.removeFriendship(me.id, other.id) else {
                throw Problem.notFound("\(other.username) is not a friend")
            }
            try await publisher.publish(EventPublisher.event(.friendRemoved, user: me.username), to: [other.id])
            return Response(status: .noContent)
        }

        router.post("/api/v1/messages") { request, context in
            let me = try await Routes.authenticate(request, services: s)
            let body = try await request.decode(as: SendMessage.self, context: context)
            let text = body.body.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty, text.count <= APILimits.messageMaxLength else {
                throw Problem.badRequest("Messages are 1 to \(APILimits.messageMaxLength) characters")
            }
            guard !body.clientId.isEmpty, body.clientId.count <= 64 else { throw Problem.badRequest("clientId is 1 to 64 characters") }
            guard let other = try await s.users.user(named: body.to) else { throw Problem.notFound("No user \(body.to)") }
            guard try await social.friendState(me.id, other.id) == .friends else {
                throw Problem(status: 403, title: "Forbidden", detail: "You can only write to friends")
            }
            let (stored, isNew) = try await social.insertMessage(from: me.id, to: other.id, clientID: body.clientId, body: text)
            let message = chat(stored, from: me, to: other)
            if isNew {
                try await publisher.publish(EventPublisher.event(.chatMessage, user: me.username, message: message), to: [other.id, me.id])
            }
            return EditedResponse(status: isNew ? .created : .ok, response: message)
        }

        router.get("/api/v1/conversations/:username/messages") { request, context in
            let me = try await Routes.authenticate(request, services: s)
            let other = try await user(context, s)
            let limit = request.uri.queryParameters.get("limit", as: Int.self) ?? 50
            guard (1...200).contains(limit) else { throw Problem.badRequest("limit is 1 to 200") }
            let before = request.uri.queryParameters.get("before", as: Int64.self)
            let stored = try await social.messages(between: me.id, other.id, before: before, limit: limit)
            let messages = stored.map { chat($0, from: $0.fromID == me.id ? me : other, to: $0.fromID == me.id ? other : me) }
            return MessagesPage(messages: messages, nextBefore: stored.count == limit ? stored.last?.id : nil)
        }

        router.post("/api/v1/conversations/:username/read") { request, context in
            let me = try await Routes.authenticate(request, services: s)
            let other = try await user(context, s)
            let body = try await request.decode(as: ReadReceipt.self, context: context)
            let changed = try await social.markRead(reader: me.id, from: other.id, upTo: body.upTo)
            if changed > 0 {
                try await publisher.publish(EventPublisher.event(.messageRead, user: me.username, readUpTo: body.upTo), to: [other.id])
            }
            return Response(status: .noContent)
        }

        router.put("/api/v1/presence") { request, context in
            let me = try await Routes.authenticate(request, services: s)
            let body = try await request.decode(as: NowPlayingInfo.self, context: context)
            s.presence.set(userID: me.id, nowPlaying: body, seen: Date())
            let friends = try await social.friends(of: me.id).friends.map(\.id)
            try await publisher.publish(EventPublisher.event(.presence, user: me.username, nowPlaying: body, online: true), to: friends)
            return Response(status: .noContent)
        }

        router.get("/api/v1/events") { request, _ -> Response in
            let me = try await Routes.authenticate(request, services: s)
            let params = request.uri.queryParameters
            let cursor = params.get("cursor", as: Int64.self) ?? 0
            let timeout = params.get("timeout", as: Int.self) ?? APILimits.defaultPollSeconds
            guard cursor >= 0 else { throw Problem.badRequest("cursor is an event id, 0 or more") }
            guard (0...APILimits.maxPollSeconds).contains(timeout) else {
                throw Problem.badRequest("timeout is 0 to \(APILimits.maxPollSeconds) seconds")
            }
            if s.presence.touch(userID: me.id, seen: Date()) {
                let friends = try await social.friends(of: me.id).friends.map(\.id)
                try await publisher.publish(EventPublisher.event(.presence, user: me.username, online: true), to: friends)
            }
            let horizon = try await social.prunedThrough(for: me.id)
            if cursor < horizon {
                throw Problem(status: 410, title: "Gone",
                              detail: "Events after \(cursor) are no longer kept; reload state and resume from \(horizon)",
                              type: "https://musit.invalid/problems/resync", resumeFrom: horizon)
            }
            // Read the version first, then storage: an event stored in between bumps the version.
            let version = await s.bus.version(of: me.id)
            func stored() async throws -> [ServerEvent] {
                try await social.events(for: me.id, after: cursor, limit: 500).compactMap { e -> ServerEvent? in
                    guard var event = try? JSONDecoder().decode(ServerEvent.self, from: e.payload) else { return nil }
                    event.id = e.id
                    event.createdAt = e.createdAt.ISO8601Format()
                    return event
                }
            }
            var events = try await stored()
            if events.isEmpty {
                // Woken by a publish: its events are usually still in memory.
                if let fresh = await s.bus.wait(user: me.id, since: version, timeout: Double(timeout)) {
                    events = fresh.filter { $0.id > cursor }
                } else {
                    events = try await stored()
                }
                _ = s.presence.touch(userID: me.id, seen: Date())
            }
            let page = EventsPage(events: events, cursor: events.last?.id ?? cursor)
            return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                            body: .init(byteBuffer: try s.pages.body(user: me.id, after: cursor, page: page)))
        }
    }

    static func user(_ context: MusitContext, _ s: Services) async throws -> User {
        let name = context.parameters.get("username") ?? ""
        guard let user = try await s.users.user(named: name) else { throw Problem.notFound("No user \(name)") }
        return user
    }

    static func chat(_ m: StoredMessage, from: User, to: User) -> ChatMessage {
        ChatMessage(id: m.id, from: from.username, to: to.username, body: m.body, clientId: m.clientID,
                    sentAt: m.sentAt.ISO8601Format(), readAt: m.readAt?.ISO8601Format())
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
