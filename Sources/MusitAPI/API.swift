/// Requests and responses of the Musit HTTP API (see `openapi.yaml`), shared by the
/// server and its clients. JSON keys are camelCase.

/// An error answer, RFC 9457 (`application/problem+json`).
public struct Problem: Codable, Error, Equatable, Sendable {
    public var type: String
    public var title: String
    public var status: Int
    public var detail: String?

    public init(status: Int, title: String, detail: String? = nil, type: String = "about:blank") {
        self.type = type
        self.title = title
        self.status = status
        self.detail = detail
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
    public static let usernamePattern = "^[A-Za-z0-9_.-]{3,32}$"
    public static let passwordMinLength = 8
    public static let passwordMaxLength = 72  // bcrypt reads 72 bytes at most
    public static let displayNameMaxLength = 64
    public static let bioMaxLength = 500
}
