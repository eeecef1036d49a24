/// The reducer's social half: session events, the friends and chat panes, sign-in, commands.
extension Reducer {
    static func reduceSession(_ s: inout AppState, _ event: SessionEvent) -> [Effect] {
        switch event {
        case .connection(let c):
            s.social.connection = c
            return []
        case .signedIn(let name, let admin):
            s.social.me = name
            s.social.isAdmin = admin
            s.signedIn = true
            if case .signIn = s.mode { s.mode = .normal }
            return []
        case .signedOut(let reason):
            let previous = s.social.me ?? ""
            s.signedIn = false
            s.social = SocialState()
            s.social.connection = .signedOut
            var form = SignInForm(server: s.serverName, username: previous)
            form.error = reason
            s.mode = .signIn(form)
            return []
        case .signInFailed(let reason):
            if case .signIn(var form) = s.mode {
                form.busy = false
                form.error = reason
                form.password.clear()
                form.field = .password
                s.mode = .signIn(form)
            }
            return []
        case .friends(let list):
            let selected = s.social.selectedFriend?.username
            let unread = Dictionary(s.social.friends.map { ($0.username, $0.unread) }, uniquingKeysWith: { a, _ in a })
            s.social.friends = list.map { f in
                var f = f
                f.unread = max(f.unread, unread[f.username] ?? 0)
                return f
            }
            s.social.sortFriends(keeping: .some(selected))
            return []
        case .presence(let user, let online, let playing):
            s.social.updateFriend(user) { f in
                f.online = online
                if let playing { f.playing = playing }
            }
            s.social.sortFriends()
            return []
        case .friendRequest(let from):
            if !s.social.friends.contains(where: { $0.username == from }) {
                s.social.friends.append(Friend(username: from, displayName: from, relation: .incoming))
                s.social.sortFriends()
            }
            s.message = "\(from) wants to be friends: select them in Friends and press a"
            return []
        case .friendRequestSent(let to):
            if s.social.friends.contains(where: { $0.username == to && $0.relation == .friend }) { return [] }
            if !s.social.friends.contains(where: { $0.username == to }) {
                s.social.friends.append(Friend(username: to, displayName: to, relation: .outgoing))
                s.social.sortFriends()
            }
            s.message = "friend request sent to \(to)"
            return []
        case .friendAccepted(let by):
            // The acceptance can overtake our own request's answer (they accepted at once):
            // they are a friend already, and the answer, when it comes, says nothing.
            if s.social.friends.contains(where: { $0.username == by }) {
                s.social.updateFriend(by) { $0.relation = .friend }
            } else {
                s.social.friends.append(Friend(username: by, displayName: by, relation: .friend))
            }
            s.social.sortFriends()
            s.message = "\(by) is now a friend"
            return []
        case .friendRemoved(let name):
            s.social.friends.removeAll { $0.username == name }
            s.social.sortFriends()
            return []
        case .message(let line):
            return receive(&s, line)
        case .queued(let line):
            if s.social.chat.peer == line.to { s.social.chat.lines.append(line) }
            return []
        case .delivery(let clientId, let id, let delivery):
            if let i = s.social.chat.lines.lastIndex(where: { $0.clientId == clientId }) {
                if let id { s.social.chat.lines[i].id = id }
                if s.social.chat.lines[i].delivery != .read { s.social.chat.lines[i].delivery = delivery }
            }
            if case .failed(let why) = delivery { s.message = "message not sent: \(why)" }
            return []
        case .read(let by, let upTo):
            guard s.social.chat.peer == by else { return [] }
            for i in s.social.chat.lines.indices where s.social.chat.lines[i].to == by {
                if let id = s.social.chat.lines[i].id, id <= upTo { s.social.chat.lines[i].delivery = .read }
            }
            return []
        case .history(let peer, let lines, let olderBefore, let older):
            guard s.social.chat.peer == peer else { return [] }
            var chat = s.social.chat
            let known = Set(chat.lines.compactMap(\.id))
            let fresh = lines.filter { $0.id.map { !known.contains($0) } ?? true }
            if older {
                chat.lines.insert(contentsOf: fresh, at: 0)
                chat.scroll += fresh.count
            } else {
                // The newest page: keep lines queued here that the server has not seen yet.
                let pending = chat.lines.filter { $0.id == nil }
                chat.lines = lines + pending.filter { p in !lines.contains { $0.clientId == p.clientId } }
            }
            chat.olderBefore = olderBefore
            chat.reachedStart = olderBefore == nil
            chat.loadingOlder = false
            s.social.chat = chat
            return markRead(&s)
        case .unread(let counts):
            for i in s.social.friends.indices {
                s.social.friends[i].unread = s.social.friends[i].username == s.social.chat.peer
                    ? 0 : counts[s.social.friends[i].username] ?? 0
            }
            return []
        case .stats(let v):
            s.social.stats = v
            s.mode = .stats
            return []
        case .profile(let p):
            s.social.profile = p
            s.mode = .profile
            return []
        case .upload(let p):
            s.social.upload = p
            return []
        }
    }

    private static func receive(_ s: inout AppState, _ line: ChatLine) -> [Effect] {
        let me = s.social.me
        let peer = line.from == me ? line.to : line.from
        if s.social.chat.peer == peer {
            if let i = s.social.chat.lines.firstIndex(where: { $0.clientId == line.clientId && $0.from == line.from }) {
                // Our own line coming back from the server: now sent (or read already).
                if s.social.chat.lines[i].delivery != .read { s.social.chat.lines[i] = line }
            } else if let id = line.id, s.social.chat.lines.contains(where: { $0.id == id }) {
                return []
            } else {
                s.social.chat.lines.append(line)
            }
            return line.from != me && s.focus == .chat ? markRead(&s) : []
        }
        if line.from != me {
            s.social.updateFriend(peer) { $0.unread += 1 }
            // Kept after the open one, so [ and ] reach it.
            if !s.social.conversations.contains(peer) {
                s.social.conversations.insert(peer, at: min(1, s.social.conversations.count))
                if s.social.conversations.count > SocialState.conversationsLimit { s.social.conversations.removeLast() }
            }
            s.message = "\(peer): \(line.body)"
        }
        return []
    }

    private static func markRead(_ s: inout AppState) -> [Effect] {
        guard let peer = s.social.chat.peer,
              let last = s.social.chat.lines.last(where: { $0.from == peer && $0.id != nil })?.id else { return [] }
        s.social.updateFriend(peer) { $0.unread = 0 }
        return [.session(.markRead(peer: peer, upTo: last))]
    }

    static func openChat(_ s: inout AppState, with peer: String) -> [Effect] {
        if s.social.chat.peer != peer {
            s.social.chat = ChatState()
            s.social.chat.peer = peer
        }
        s.social.updateFriend(peer) { $0.unread = 0 }
        s.social.remember(conversation: peer)
        s.layout.hidden.remove(.chat)
        s.focus = .chat
        return [.session(.openConversation(peer))]
    }

    // MARK: The chat pane (its keys: `ChatPane`)

    /// Rows of the chat pane that hold messages (one is the compose line).
    static func chatRows(_ s: AppState) -> Int {
        guard let f = s.frames[.chat] else { return 1 }
        return max(1, f.height - 3)
    }

    static func scrollChat(_ s: inout AppState, by delta: Int) -> [Effect] {
        var chat = s.social.chat
        let maxScroll = max(0, chat.lines.count - chatRows(s))
        chat.scroll = max(0, min(maxScroll, chat.scroll + delta))
        var effects: [Effect] = []
        // Near the top of what is loaded: fetch the page before it.
        if delta > 0, chat.scroll >= maxScroll - 2, !chat.reachedStart, !chat.loadingOlder, let before = chat.olderBefore,
           let peer = chat.peer {
            chat.loadingOlder = true
            effects.append(.session(.loadOlder(peer: peer, before: before)))
        }
        s.social.chat = chat
        return effects
    }

    /// `:` commands of the social side; nil when the name is not one of them.
    static func socialCommand(_ s: inout AppState, _ name: String, _ rest: String) -> [Effect]? {
        let needsSession = ["friend", "accept", "decline", "unfriend", "chat", "msg", "upload", "delete", "bio", "profile",
                            "stats", "signout", "logout"]
        guard needsSession.contains(name) else { return nil }
        guard s.signedIn else {
            s.message = "sign in first (:\(name) needs the server)"
            return []
        }
        func usage(_ text: String) -> [Effect] {
            s.message = "usage: \(text)"
            return []
        }
        switch name {
        case "friend": return rest.isEmpty ? usage(":friend NAME") : [.session(.requestFriend(rest))]
        case "accept": return rest.isEmpty ? usage(":accept NAME") : [.session(.acceptFriend(rest))]
        case "decline": return rest.isEmpty ? usage(":decline NAME") : [.session(.declineFriend(rest))]
        case "unfriend": return rest.isEmpty ? usage(":unfriend NAME") : [.session(.removeFriend(rest))]
        case "chat", "msg":
            let (peer, text) = rest.splitOnce(" ")
            guard !peer.isEmpty else { return usage(":chat NAME [MESSAGE]") }
            var effects = openChat(&s, with: peer)
            if !text.isEmpty { effects.append(.session(.sendChat(to: peer, body: text))) }
            return effects
        case "upload":
            let paths = rest.split(separator: " ").map(String.init)
            return paths.isEmpty ? usage(":upload PATH...") : [.session(.upload(paths))]
        case "delete":
            guard let item = s.queue.selected else { return usage(":delete (deletes the selected song)") }
            return [.session(.deleteSong(index: item.index))]
        case "bio":
            return [.session(.updateBio(rest))]
        case "profile":
            return [.session(.loadProfile(rest.isEmpty ? s.social.me ?? "" : rest))]
        case "stats":
            guard s.social.isAdmin else {
                s.message = "statistics are for admins"
                return []
            }
            return [.session(.loadStats)]
        case "signout", "logout":
            return [.session(.signOut)]
        default:
            return nil
        }
    }
}
