import Foundation
import Hummingbird
import MusitAPI

/// What the gateway asks of Accounts: the account routes' work, and the users every route
/// looks up. `LocalAccounts` does it over the store (all-in-one, and `--role accounts`
/// serving it); `RemoteAccounts` asks the Accounts service over gRPC. Failures are the
/// public API's answers (`Problem`, or `HTTPError` with Retry-After), whichever side runs.
protocol AccountsAPI: Sendable {
    var directory: any UserDirectory { get }
    func register(username: String, password: String, displayName: String?) async throws -> TokenPair
    func login(username: String, password: String, address: String) async throws -> TokenPair
    func refresh(_ refreshToken: String) async throws -> TokenPair
    func logout(_ refreshToken: String) async throws
    /// Deletes the account of `userID` when `password` is its password (throttled like a
    /// login). What the other services keep of the user goes through the outbox.
    func deleteAccount(userID: Int64, password: String, address: String) async throws
    /// The user as now stored; nil when there is none.
    func updateProfile(userID: Int64, displayName: String?, bio: String?) async throws -> User?
}

/// Accounts over the store: bcrypt, the login throttle, tokens and their families.
struct LocalAccounts: AccountsAPI {
    let users: any UserRepository
    let refreshTokens: any RefreshTokenRepository
    let tokens: TokenService
    let hasher: PasswordHasher
    let throttle: any LoginThrottling
    /// This name becomes admin when it registers (the first user does anyway).
    let admin: String?
    /// A hash of a random password, checked when the user does not exist, so a login's
    /// timing does not tell whether the account exists. Hashed in the background: at the
    /// default cost it takes a tenth of a second, which start-up (and with it the embedded
    /// player's first screen) need not wait for.
    let dummyHash: Task<String, any Error>

    init(users: any UserRepository, refreshTokens: any RefreshTokenRepository, tokens: TokenService, hasher: PasswordHasher,
         throttle: any LoginThrottling, admin: String?) {
        self.users = users
        self.refreshTokens = refreshTokens
        self.tokens = tokens
        self.hasher = hasher
        self.throttle = throttle
        self.admin = admin
        dummyHash = Task { try await hasher.hash(UUID().uuidString) }
    }

    var directory: any UserDirectory { users }

    func register(username: String, password: String, displayName: String?) async throws -> TokenPair {
        try Self.validate(username: username, password: password, displayName: displayName)
        let hash = try await hasher.hash(password)
        let role: Role = admin.map { $0.caseInsensitiveCompare(username) == .orderedSame } == true ? .admin : .user
        let display = displayName?.trimmingCharacters(in: .whitespacesAndNewlines)
        let user: User
        do {
            user = try await users.createUser(username: username, displayName: display?.isEmpty == false ? display! : username,
                                              passwordHash: hash, role: role, firstIsAdmin: true)
        } catch StorageError.usernameTaken {
            throw Problem.conflict("The username \(username) is taken")
        }
        return try await issue(for: user, family: nil)
    }

    func login(username: String, password: String, address: String) async throws -> TokenPair {
        // A name no account can have: refused before any work, and kept in no table.
        guard TextRules.isValidUsername(username) else { throw Problem.unauthorized("Wrong username or password") }
        if let wait = try await throttle.begin(account: username, address: address) {
            throw HTTPError(.tooManyRequests, headers: [.retryAfter: String(wait)],
                            message: "Too many failed logins; try again in \(wait) s")
        }
        // Verify against a dummy hash for unknown users, so timing does not reveal who exists.
        let user = try await users.user(named: username)
        let hash: String
        if let user { hash = user.passwordHash } else { hash = try await dummyHash.value }
        let ok = try await hasher.verify(password, hash: hash)
        guard let user, ok else {
            throw Problem.unauthorized("Wrong username or password")
        }
        try await throttle.succeeded(account: username, address: address)
        return try await issue(for: user, family: nil)
    }

    func refresh(_ refreshToken: String) async throws -> TokenPair {
        let now = Date()
        guard let stored = try await refreshTokens.consumeRefreshToken(hash: TokenService.hash(refreshToken), at: now) else {
            throw Problem.unauthorized("Unknown refresh token")
        }
        if stored.usedAt != nil {
            // A rotated token came back: it was stolen or replayed. End the whole family.
            try await refreshTokens.revokeFamily(stored.family, at: now)
            throw Problem.unauthorized("Refresh token already used; this session has been signed out")
        }
        guard stored.revokedAt == nil else { throw Problem.unauthorized("Refresh token revoked") }
        guard stored.expiresAt > now else { throw Problem.unauthorized("Refresh token expired") }
        guard let user = try await users.user(id: stored.userID) else { throw Problem.unauthorized("No such user") }
        return try await issue(for: user, family: stored.family)
    }

    func logout(_ refreshToken: String) async throws {
        _ = try await refreshTokens.revokeToken(hash: TokenService.hash(refreshToken), at: Date())
    }

    // Deleting an account asks for its password again, throttled like a login: a stolen
    // access token alone must not be enough to destroy it.
    func deleteAccount(userID: Int64, password: String, address: String) async throws {
        guard let me = try await users.user(id: userID) else { throw Problem.unauthorized("No such user") }
        if let wait = try await throttle.begin(account: me.username, address: address) {
            throw HTTPError(.tooManyRequests, headers: [.retryAfter: String(wait)],
                            message: "Too many wrong passwords; try again in \(wait) s")
        }
        guard try await hasher.verify(password, hash: me.passwordHash) else {
            throw Problem(status: 403, title: "Forbidden", detail: "Wrong password: the account was not deleted")
        }
        try await throttle.succeeded(account: me.username, address: address)
        try await users.deleteUser(me)
    }

    func updateProfile(userID: Int64, displayName: String?, bio: String?) async throws -> User? {
        try await users.updateProfile(userID: userID, displayName: displayName, bio: bio)
    }

    /// A profile edit within the public API's limits: the display name trimmed (nil when not
    /// given). Checked by the route, and again by the service for other callers.
    static func checkProfile(displayName: String?, bio: String?) throws -> String? {
        if let bio {
            try TextRules.check(bio, "bio", maxCharacters: APILimits.bioMaxLength, maxBytes: 4 * APILimits.bioMaxLength)
        }
        let name = displayName?.trimmingCharacters(in: .whitespacesAndNewlines)
        if let name {
            guard !name.isEmpty else { throw Problem.badRequest("Display names are 1 to \(APILimits.displayNameMaxLength) characters") }
            try TextRules.checkDisplayName(name)
        }
        return name
    }

    static func validate(username: String, password: String, displayName: String?) throws {
        guard TextRules.isValidUsername(username) else {
            throw Problem.badRequest("Usernames are 3 to 32 letters, digits, dots, dashes or underscores")
        }
        let length = password.utf8.count
        guard length >= APILimits.passwordMinLength, length <= APILimits.passwordMaxLength else {
            throw Problem.badRequest("Passwords are \(APILimits.passwordMinLength) to \(APILimits.passwordMaxLength) bytes")
        }
        if let displayName { try TextRules.checkDisplayName(displayName) }
    }

    /// A new access token and a new refresh token (in `family`, or a new family at login).
    func issue(for user: User, family: String?) async throws -> TokenPair {
        let access = try await tokens.accessToken(for: user)
        let refresh = TokenService.newRefreshToken()
        try await refreshTokens.insertRefreshToken(hash: refresh.hash, userID: user.id, family: family ?? UUID().uuidString,
                                                   expiresAt: Date().addingTimeInterval(tokens.refreshLifetime))
        return TokenPair(accessToken: access, refreshToken: refresh.token, expiresIn: Int(tokens.accessLifetime),
                         user: user.info)
    }
}
