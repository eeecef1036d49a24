/// The multi-user side of the UI as data: connection, friends, chat, sign-in, stats.
/// Filled by `Action.session` from the sync loop and API answers; no networking here.

public enum Connection: Equatable, Sendable {
    /// Playing local files with no backend.
    case none
    case connecting
    case online
    case retrying(seconds: Int, reason: String)
    case signedOut

    public var label: String {
        switch self {
        case .none: return "offline"
        case .connecting: return "connecting"
        case .online: return "online"
        case .retrying(let s, let reason): return "reconnecting in \(s) s (\(reason))"
        case .signedOut: return "signed out"
        }
    }
}

/// What a friend's client last said it plays.
public struct FriendPlaying: Equatable, Sendable {
    public enum State: String, Sendable { case playing, paused, stopped }
    public var state: State
    public var title: String?
    public var artist: String?
    public var position: Double
    public var duration: Double?
    /// Seconds on the UI clock when this was reported (to advance the position while playing).
    public var reportedAt: Double

    public init(state: State, title: String?, artist: String?, position: Double, duration: Double?, reportedAt: Double) {
        self.state = state
        self.title = title
        self.artist = artist
        self.position = position
        self.duration = duration
        self.reportedAt = reportedAt
    }
}

public struct Friend: Equatable, Sendable {
    public enum Relation: Equatable, Sendable { case friend, incoming, outgoing }
    public var username: String
    public var displayName: String
    public var relation: Relation
    public var online: Bool
    public var playing: FriendPlaying?
    public var unread: Int

    public init(username: String, displayName: String, relation: Relation, online: Bool = false,
                playing: FriendPlaying? = nil, unread: Int = 0) {
        self.username = username
        self.displayName = displayName
        self.relation = relation
        self.online = online
        self.playing = playing
        self.unread = unread
    }
}

public struct ChatLine: Equatable, Sendable {
    public enum Delivery: Equatable, Sendable {
        /// Written here, not yet accepted by the server (kept on disk meanwhile).
        case queued
        case sent
        case read
        case failed(String)
    }
    public var id: Int64?
    public var clientId: String
    public var from: String
    public var to: String
    public var body: String
    public var delivery: Delivery

    public init(id: Int64?, clientId: String, from: String, to: String, body: String, delivery: Delivery) {
        self.id = id
        self.clientId = clientId
        self.from = from
        self.to = to
        self.body = body
        self.delivery = delivery
    }
}

/// A one-line text editor over grapheme clusters (so é, 名 and 👍🏽 each move as one).
public struct LineEditor: Equatable, Sendable {
    public private(set) var characters: [Character] = []
    public private(set) var cursor = 0
    public var maxLength: Int

    public init(_ text: String = "", maxLength: Int = 4000) {
        characters = Array(text)
        cursor = characters.count
        self.maxLength = maxLength
    }

    public var text: String { String(characters) }

    /// Applies an editing key (a character, or one of `LineEditor.keys`); false when the key
    /// is not an editing key.
    public mutating func apply(_ key: Key) -> Bool {
        if case .char(let c) = key {
            guard characters.count < maxLength else { return true }
            characters.insert(c, at: cursor)
            cursor += 1
            return true
        }
        guard let action = Self.keys.action(for: key) else { return false }
        switch action {
        case .backspace:
            if cursor > 0 {
                characters.remove(at: cursor - 1)
                cursor -= 1
            }
        case .delete:
            if cursor < characters.count { characters.remove(at: cursor) }
        case .left: cursor = max(0, cursor - 1)
        case .right: cursor = min(characters.count, cursor + 1)
        case .home: cursor = 0
        case .end: cursor = characters.count
        case .clearBefore:
            characters.removeFirst(cursor)
            cursor = 0
        case .clearAfter:
            characters.removeLast(characters.count - cursor)
        case .deleteWord:
            var i = cursor
            while i > 0 && characters[i - 1].isWhitespace { i -= 1 }
            while i > 0 && !characters[i - 1].isWhitespace { i -= 1 }
            characters.removeSubrange(i..<cursor)
            cursor = i
        }
        return true
    }

    public mutating func clear() {
        characters = []
        cursor = 0
    }
}

public struct ChatState: Equatable, Sendable {
    public var peer: String?
    /// Oldest first.
    public var lines: [ChatLine] = []
    /// Pass to load older messages; nil when the start is reached.
    public var olderBefore: Int64?
    public var loadingOlder = false
    public var reachedStart = false
    /// Lines scrolled up from the newest.
    public var scroll = 0
    public var compose = LineEditor()

    public init() {}
}

public struct SignInForm: Equatable, Sendable {
    public enum Field: Equatable, Sendable { case username, password }
    public var username = LineEditor(maxLength: 32)
    public var password = LineEditor(maxLength: 72)
    public var field = Field.username
    public var register = false
    public var busy = false
    public var error: String?
    public var server: String

    public init(server: String, username: String = "") {
        self.server = server
        self.username = LineEditor(username, maxLength: 32)
        if !username.isEmpty { field = .password }
    }
}

public struct StatsView: Equatable, Sendable {
    public var users: Int
    public var songs: Int
    public var storageBytes: Int64
    public var playsPerDay: [(day: String, plays: Int)]
    public var topSongs: [(title: String, plays: Int)]
    public var listenersNow: Int

    public init(users: Int, songs: Int, storageBytes: Int64, playsPerDay: [(day: String, plays: Int)],
                topSongs: [(title: String, plays: Int)], listenersNow: Int) {
        self.users = users
        self.songs = songs
        self.storageBytes = storageBytes
        self.playsPerDay = playsPerDay
        self.topSongs = topSongs
        self.listenersNow = listenersNow
    }

    public static func == (a: StatsView, b: StatsView) -> Bool {
        a.users == b.users && a.songs == b.songs && a.storageBytes == b.storageBytes && a.listenersNow == b.listenersNow
            && a.playsPerDay.map(\.day) == b.playsPerDay.map(\.day) && a.playsPerDay.map(\.plays) == b.playsPerDay.map(\.plays)
            && a.topSongs.map(\.title) == b.topSongs.map(\.title) && a.topSongs.map(\.plays) == b.topSongs.map(\.plays)
    }
}

public struct ProfileView: Equatable, Sendable {
    public var username: String
    public var displayName: String
    public var bio: String

    public init(username: String, displayName: String, bio: String) {
        self.username = username
        self.displayName = displayName
        self.bio = bio
    }
}

public struct UploadProgress: Equatable, Sendable {
    public var file: String
    public var fileIndex: Int
    public var fileCount: Int
    public var fraction: Double

    public init(file: String, fileIndex: Int, fileCount: Int, fraction: Double) {
        self.file = file
        self.fileIndex = fileIndex
        self.fileCount = fileCount
        self.fraction = fraction
    }
}

public struct SocialState: Equatable, Sendable {
    public var connection = Connection.none
    public var me: String?
    public var isAdmin = false
    /// Incoming requests first, then friends online, then the rest; by name within each.
    public var friends: [Friend] = []
    public var friendCursor = 0
    public var chat = ChatState()
    /// Conversations to switch between in the Chat pane (`[` and `]`): those opened, and
    /// those with messages unread; the most recent first, at most `conversationsLimit`.
    public var conversations: [String] = []
    static let conversationsLimit = 12
    public var stats: StatsView?
    public var profile: ProfileView?
    public var upload: UploadProgress?
    /// Seconds on the UI clock (advanced by `.tick`), for friends' live positions.
    public var clock = 0.0

    public init() {}

    public var selectedFriend: Friend? { friends.indices.contains(friendCursor) ? friends[friendCursor] : nil }

    /// Puts `peer` first among the conversations.
    mutating func remember(conversation peer: String) {
        conversations.removeAll { $0 == peer }
        conversations.insert(peer, at: 0)
        if conversations.count > Self.conversationsLimit { conversations.removeLast() }
    }

    /// Unread messages from `peer`.
    public func unread(_ peer: String) -> Int { friends.first { $0.username == peer }?.unread ?? 0 }

    /// Sorts, keeping the cursor on `selected` (by default whoever it is on now).
    mutating func sortFriends(keeping selected: String?? = .none) {
        let selected = selected ?? selectedFriend?.username
        func rank(_ f: Friend) -> Int {
            switch f.relation {
            case .incoming: return 0
            case .friend: return f.online ? 1 : 2
            case .outgoing: return 3
            }
        }
        friends.sort { (rank($0), $0.username.lowercased()) < (rank($1), $1.username.lowercased()) }
        if let selected, let i = friends.firstIndex(where: { $0.username == selected }) { friendCursor = i } else if selected == nil {
            friendCursor = 0
        }
        friendCursor = max(0, min(friendCursor, friends.count - 1))
    }

    mutating func updateFriend(_ name: String, _ change: (inout Friend) -> Void) {
        guard let i = friends.firstIndex(where: { $0.username == name }) else { return }
        change(&friends[i])
    }
}

/// Everything the backend side reports to the UI.
public enum SessionEvent: Equatable, Sendable {
    case connection(Connection)
    case signedIn(username: String, admin: Bool)
    /// Back to the sign-in screen, with the reason.
    case signedOut(String)
    case signInFailed(String)
    case friends([Friend])
    case presence(user: String, online: Bool, playing: FriendPlaying?)
    case friendRequest(from: String)
    /// Our request to them was stored. Its answer can come after their acceptance's event
    /// (they accepted while the answer was on its way): then it says nothing.
    case friendRequestSent(to: String)
    case friendAccepted(by: String)
    case friendRemoved(String)
    /// A message from the server (theirs, or ours sent from anywhere).
    case message(ChatLine)
    /// A line written here was queued with this client id.
    case queued(ChatLine)
    case delivery(clientId: String, id: Int64?, ChatLine.Delivery)
    /// They read our messages up to `upTo`.
    case read(by: String, upTo: Int64)
    /// History of the open conversation: newest page first, or an older page.
    case history(peer: String, lines: [ChatLine], olderBefore: Int64?, older: Bool)
    case unread([String: Int])
    case stats(StatsView)
    case profile(ProfileView)
    case upload(UploadProgress?)
}

/// Requests for the session (API calls); answers come back as `SessionEvent`s.
public enum SessionEffect: Equatable, Sendable {
    case signIn(username: String, password: String, register: Bool)
    case signOut
    case sendChat(to: String, body: String)
    case openConversation(String)
    case loadOlder(peer: String, before: Int64)
    case markRead(peer: String, upTo: Int64)
    case requestFriend(String)
    case acceptFriend(String)
    case declineFriend(String)
    case removeFriend(String)
    case upload([String])
    case deleteSong(index: Int)
    case loadStats
    case loadProfile(String)
    case updateBio(String)
}
