/// Requests and responses of the Musit HTTP API (see `openapi.yaml`), shared by the
/// server and its clients. JSON keys are camelCase.

/// An error answer, RFC 9457 (`application/problem+json`).
public struct Problem: Codable, Error, Equatable, Sendable {
    public var type: String
    public var title: String
    public var status: Int
    public var detail: String?
    /// On 410 from `/events`: the cursor to resume from after reloading state.
    public var resumeFrom: Int64?

    public init(status: Int, title: String, detail: String? = nil, type: String = "about:blank", resumeFrom: Int64? = nil) {
        self.type = type
        self.title = title
        self.status = status
        self.detail = detail
        self.resumeFrom = resumeFrom
    }
}

public struct Health: Codable, Equatable, Sendable {
    public var status: String
    public var version: String

    public init(status: String, version: String) {
        self.status = status
        self.version = version
    }
}

public struct RegisterRequest: Codable, Equatable, Sendable {
    public var username: String
    public var password: String
    public var displayName: String?

    public init(username: String, password: String, displayName: String? = nil) {
        self.username = username
        self.password = password
        self.displayName = displayName
    }
}

/// `DELETE /api/v1/me`: the account's password, asked again before it is deleted.
public struct DeleteAccountRequest: Codable, Equatable, Sendable {
    public var password: String

    public init(password: String) {
        self.password = password
    }
}

public struct LoginRequest: Codable, Equatable, Sendable {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}

public struct RefreshRequest: Codable, Equatable, Sendable {
    public var refreshToken: String

    public init(refreshToken: String) {
        self.refreshToken = refreshToken
    }
}

public enum Role: String, Codable, Sendable {
    case user, admin
}

public struct UserInfo: Codable, Equatable, Sendable {
    public var id: Int64
    public var username: String
    public var displayName: String
    public var role: Role
    public var bio: String

    public init(id: Int64, username: String, displayName: String, role: Role, bio: String) {
        self.id = id
        self.username = username
        self.displayName = displayName
        self.role = role
        self.bio = bio
    }
}

/// What register, login and refresh answer.
public struct TokenPair: Codable, Equatable, Sendable {
    public var accessToken: String
    public var refreshToken: String
    public var tokenType: String
    /// Seconds until the access token expires.
    public var expiresIn: Int
    public var user: UserInfo

    public init(accessToken: String, refreshToken: String, expiresIn: Int, user: UserInfo) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        tokenType = "Bearer"
        self.expiresIn = expiresIn
        self.user = user
    }
}

/// Limits every client and the server agree on.
public enum APILimits {
    public static let usernamePattern = #"^[A-Za-z0-9_.-]{3,32}\z"#
    public static let passwordMinLength = 8
    public static let passwordMaxLength = 72  // bcrypt reads 72 bytes at most
    public static let displayNameMaxLength = 64
    public static let bioMaxLength = 500
}

// MARK: Profiles and friends

public struct ProfileUpdate: Codable, Equatable, Sendable {
    public var displayName: String?
    public var bio: String?

    public init(displayName: String? = nil, bio: String? = nil) {
        self.displayName = displayName
        self.bio = bio
    }
}

public struct UserList: Codable, Equatable, Sendable {
    public var users: [UserInfo]

    public init(users: [UserInfo]) {
        self.users = users
    }
}

public struct FriendRequestBody: Codable, Equatable, Sendable {
    public var username: String

    public init(username: String) {
        self.username = username
    }
}

/// What a friend is listening to, as their client last said.
public struct NowPlayingInfo: Codable, Equatable, Sendable {
    public enum State: String, Codable, Sendable { case playing, paused, stopped }
    public var state: State
    public var title: String?
    public var artist: String?
    public var position: Double?
    public var duration: Double?

    public init(state: State, title: String? = nil, artist: String? = nil, position: Double? = nil, duration: Double? = nil) {
        self.state = state
        self.title = title
        self.artist = artist
        self.position = position
        self.duration = duration
    }
}

public struct FriendInfo: Codable, Equatable, Sendable {
    public var user: UserInfo
    /// Synced within the last `APILimits.onlineSeconds`.
    public var online: Bool
    public var nowPlaying: NowPlayingInfo?
    /// ISO 8601, when the friend's client last synced.
    public var lastSeen: String?

    public init(user: UserInfo, online: Bool, nowPlaying: NowPlayingInfo? = nil, lastSeen: String? = nil) {
        self.user = user
        self.online = online
        self.nowPlaying = nowPlaying
        self.lastSeen = lastSeen
    }
}

public struct FriendsList: Codable, Equatable, Sendable {
    public var friends: [FriendInfo]
    /// Requests others sent to you.
    public var incoming: [UserInfo]
    /// Requests you sent.
    public var outgoing: [UserInfo]

    public init(friends: [FriendInfo], incoming: [UserInfo], outgoing: [UserInfo]) {
        self.friends = friends
        self.incoming = incoming
        self.outgoing = outgoing
    }
}

// MARK: Chat

public struct SendMessage: Codable, Equatable, Sendable {
    public var to: String
    public var body: String
    /// Chosen by the client; sending the same id twice stores one message.
    public var clientId: String

    public init(to: String, body: String, clientId: String) {
        self.to = to
        self.body = body
        self.clientId = clientId
    }
}

public struct ChatMessage: Codable, Equatable, Sendable {
    public var id: Int64
    public var from: String
    public var to: String
    public var body: String
    public var clientId: String
    /// ISO 8601.
    public var sentAt: String
    public var readAt: String?

    public init(id: Int64, from: String, to: String, body: String, clientId: String, sentAt: String, readAt: String? = nil) {
        self.id = id
        self.from = from
        self.to = to
        self.body = body
        self.clientId = clientId
        self.sentAt = sentAt
        self.readAt = readAt
    }
}

public struct MessagesPage: Codable, Equatable, Sendable {
    /// Newest first.
    public var messages: [ChatMessage]
    /// Pass as `before` for older messages; absent at the beginning of the conversation.
    public var nextBefore: Int64?

    public init(messages: [ChatMessage], nextBefore: Int64? = nil) {
        self.messages = messages
        self.nextBefore = nextBefore
    }
}

public struct ReadReceipt: Codable, Equatable, Sendable {
    /// Every message up to this id from the other side is read.
    public var upTo: Int64

    public init(upTo: Int64) {
        self.upTo = upTo
    }
}

// MARK: Sync

/// One event for one user. Ids only grow; a client resumes from the last id it saw.
public struct ServerEvent: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case chatMessage = "chat.message"
        case messageRead = "chat.read"
        case friendRequest = "friend.request"
        case friendAccepted = "friend.accepted"
        case friendRemoved = "friend.removed"
        case presence = "presence"
        case libraryChanged = "library.changed"
    }

    public var id: Int64
    public var kind: Kind
    /// ISO 8601.
    public var createdAt: String
    /// The other user the event is about.
    public var user: String?
    public var message: ChatMessage?
    public var nowPlaying: NowPlayingInfo?
    public var readUpTo: Int64?
    public var online: Bool?

    public init(id: Int64, kind: Kind, createdAt: String, user: String? = nil, message: ChatMessage? = nil, nowPlaying: NowPlayingInfo? = nil, readUpTo: Int64? = nil, online: Bool? = nil) {
        self.id = id
        self.kind = kind
        self.createdAt = createdAt
        self.user = user
        self.message = message
        self.nowPlaying = nowPlaying
        self.readUpTo = readUpTo
        self.online = online
    }
}

public struct EventsPage: Codable, Equatable, Sendable {
    public var events: [ServerEvent]
    /// The cursor for the next poll: the last event's id, or the one given when there were none.
    public var cursor: Int64

    public init(events: [ServerEvent], cursor: Int64) {
        self.events = events
        self.cursor = cursor
    }
}

extension APILimits {
    public static let onlineSeconds = 90.0
    public static let messageMaxLength = 4000
    public static let maxPollSeconds = 60
    public static let defaultPollSeconds = 30
}

// MARK: Songs

public struct Song: Codable, Equatable, Sendable {
    public var id: Int64
    public var title: String
    public var artist: String?
    public var album: String?
    public var trackNumber: Int?
    public var year: Int?
    /// Seconds.
    public var duration: Double
    public var bytes: Int64
    public var owner: String
    public var hasCover: Bool
    public var sha256: String
    /// ISO 8601.
    public var createdAt: String
    /// Of the decoded audio (Hz): a player can set up its output before the first segment.
    public var sampleRate: Int?
    /// What the bytes are: "mp3", "flac", "vorbis" or "opus" (absent from older servers: MP3).
    public var format: String?
    public var channels: Int?
    /// Bits per sample of lossless audio (FLAC).
    public var bitDepth: Int?

    public init(id: Int64, title: String, artist: String?, album: String?, trackNumber: Int?, year: Int?, duration: Double,
                bytes: Int64, owner: String, hasCover: Bool, sha256: String, createdAt: String, sampleRate: Int? = nil,
                format: String? = nil, channels: Int? = nil, bitDepth: Int? = nil) {
        self.sampleRate = sampleRate
        self.format = format
        self.channels = channels
        self.bitDepth = bitDepth
        self.id = id
        self.title = title
        self.artist = artist
        self.album = album
        self.trackNumber = trackNumber
        self.year = year
        self.duration = duration
        self.bytes = bytes
        self.owner = owner
        self.hasCover = hasCover
        self.sha256 = sha256
        self.createdAt = createdAt
    }
}

public struct SongsPage: Codable, Equatable, Sendable {
    public var songs: [Song]
    /// Pass as `cursor` for the next page; absent on the last page.
    public var nextCursor: Int64?

    public init(songs: [Song], nextCursor: Int64?) {
        self.songs = songs
        self.nextCursor = nextCursor
    }
}

/// URLs a player can open without headers: they carry a short-lived media token.
public struct StreamURLs: Codable, Equatable, Sendable {
    public var hls: String
    public var audio: String
    public var token: String
    public var expiresIn: Int

    public init(hls: String, audio: String, token: String, expiresIn: Int) {
        self.hls = hls
        self.audio = audio
        self.token = token
        self.expiresIn = expiresIn
    }
}

extension APILimits {
    public static let defaultUploadLimit = 200 * 1024 * 1024
    public static let defaultQuota: Int64 = 2 * 1024 * 1024 * 1024
}

// MARK: Plays and statistics

public struct PlayReport: Codable, Equatable, Sendable {
    public enum Event: String, Codable, Sendable { case start, progress, end }
    public var songId: Int64
    public var event: Event
    /// Seconds into the song.
    public var position: Double
    /// From the answer to `start`; required for `progress` and `end`.
    public var playId: Int64?

    public init(songId: Int64, event: Event, position: Double, playId: Int64? = nil) {
        self.songId = songId
        self.event = event
        self.position = position
        self.playId = playId
    }
}

public struct PlayStarted: Codable, Equatable, Sendable {
    public var playId: Int64

    public init(playId: Int64) {
        self.playId = playId
    }
}

public struct AdminStats: Codable, Equatable, Sendable {
    public struct Day: Codable, Equatable, Sendable {
        public var day: String
        public var plays: Int
        public init(day: String, plays: Int) { self.day = day; self.plays = plays }
    }

    public struct TopSong: Codable, Equatable, Sendable {
        public var songId: Int64
        public var title: String
        public var artist: String?
        public var plays: Int
        public init(songId: Int64, title: String, artist: String?, plays: Int) {
            self.songId = songId; self.title = title; self.artist = artist; self.plays = plays
        }
    }

    public struct TopArtist: Codable, Equatable, Sendable {
        public var artist: String
        public var plays: Int
        public init(artist: String, plays: Int) { self.artist = artist; self.plays = plays }
    }

    public struct RouteCount: Codable, Equatable, Sendable {
        public var route: String
        public var requests: Int
        public init(route: String, requests: Int) { self.route = route; self.requests = requests }
    }

    public var users: Int
    public var songs: Int
    public var storageBytes: Int64
    /// The last 30 days, oldest first, days without plays included.
    public var playsPerDay: [Day]
    public var topSongs: [TopSong]
    public var topArtists: [TopArtist]
    /// Friends-visible listeners: online and playing now.
    public var listenersNow: Int
    public var requestsPerRoute: [RouteCount]

    public init(users: Int, songs: Int, storageBytes: Int64, playsPerDay: [Day], topSongs: [TopSong], topArtists: [TopArtist],
                listenersNow: Int, requestsPerRoute: [RouteCount]) {
        self.users = users
        self.songs = songs
        self.storageBytes = storageBytes
        self.playsPerDay = playsPerDay
        self.topSongs = topSongs
        self.topArtists = topArtists
        self.listenersNow = listenersNow
        self.requestsPerRoute = requestsPerRoute
    }
}
