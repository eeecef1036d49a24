import Foundation
import Hummingbird
import MusitAPI
import NIOCore

/// Health, the API document, and accounts: register, login, refresh, logout, me.
struct AccountsController: Sendable {
    let services: Services

    func addRoutes(to router: Router<MusitContext>, open: RouterGroup<MusitContext>, signedIn: RouterGroup<MusitContext>) {
        let s = services
        router.get("/healthz") { _, _ in Health(status: "ok", version: MusitServerVersion.string) }
        router.get("/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"],
                     body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }

        let auth = open.group("auth")
        auth.post("register") { request, context in
            let body = try await request.decode(as: RegisterRequest.self, context: context)
            try Self.validate(body)
            let hash = try await s.hasher.hash(body.password)
            let role: Role = s.config.admin.map { $0.caseInsensitiveCompare(body.username) == .orderedSame } == true ? .admin : .user
            let display = body.displayName?.trimmingCharacters(in: .whitespacesAndNewlines)
            let user: User
            do {
                user = try await s.users.createUser(username: body.username,
                                                    displayName: display?.isEmpty == false ? display! : body.username,
                                                    passwordHash: hash, role: role, firstIsAdmin: true)
            } catch StorageError.usernameTaken {
                throw Problem.conflict("The username \(body.username) is taken")
            }
            return EditedResponse(status: .created, response: try await Self.issue(for: user, family: nil, services: s))
        }

        auth.post("login") { request, context in
            let body = try await request.decode(as: LoginRequest.self, context: context)
            // A name no account can have: refused before any work, and kept in no table.
            guard TextRules.isValidUsername(body.username) else { throw Problem.unauthorized("Wrong username or password") }
            let address = context.clientAddress(request, trusting: s.config.trustedProxies)
            if let wait = try await s.throttle.begin(account: body.username, address: address) {
                throw HTTPError(.tooManyRequests, headers: [.retryAfter: String(wait)],
                                message: "Too many failed logins; try again in \(wait) s")
            }
            // Verify against a dummy hash for unknown users, so timing does not reveal who exists.
            let user = try await s.users.user(named: body.username)
            let hash: String
            if let user { hash = user.passwordHash } else { hash = try await s.dummyHash.value }
            let ok = try await s.hasher.verify(body.password, hash: hash)
            guard let user, ok else {
                throw Problem.unauthorized("Wrong username or password")
            }
            try await s.throttle.succeeded(account: body.username, address: address)
            return try await Self.issue(for: user, family: nil, services: s)
        }

        auth.post("refresh") { request, context in
            let body = try await request.decode(as: RefreshRequest.self, context: context)
            let now = Date()
            guard let stored = try await s.refreshTokens.consumeRefreshToken(hash: TokenService.hash(body.refreshToken), at: now) else {
                throw Problem.unauthorized("Unknown refresh token")
            }
            if stored.usedAt != nil {
                // A rotated token came back: it was stolen or replayed. End the whole family.
                try await s.refreshTokens.revokeFamily(stored.family, at: now)
                throw Problem.unauthorized("Refresh token already used; this session has been signed out")
            }
            guard stored.revokedAt == nil else { throw Problem.unauthorized("Refresh token revoked") }
            guard stored.expiresAt > now else { throw Problem.unauthorized("Refresh token expired") }
            guard let user = try await s.users.user(id: stored.userID) else { throw Problem.unauthorized("No such user") }
            return try await Self.issue(for: user, family: stored.family, services: s)
        }

        auth.post("logout") { request, context in
            let body = try await request.decode(as: RefreshRequest.self, context: context)
            _ = try await s.refreshTokens.revokeToken(hash: TokenService.hash(body.refreshToken), at: Date())
            return Response(status: .noContent)
        }

        signedIn.get("me") { _, context in try context.requireUser().info }
        let profiles = ProfileRoutes(users: s.users)
        signedIn.patch("me", use: profiles.updateProfile)
        signedIn.get("users", use: profiles.searchUsers)
        signedIn.get("users/:username") { _, context in
            let name = context.parameters.get("username") ?? ""
            guard let user = try await s.users.user(named: name) else { throw Problem.notFound("No user \(name)") }
            return user.info
        }

        // Deleting an account asks for its password again, throttled like a login: a
        // stolen access token alone must not be enough to destroy it.
        signedIn.delete("me") { request, context in
            let me = try context.requireUser()
            let body = try await request.decode(as: DeleteAccountRequest.self, context: context)
            let address = context.clientAddress(request, trusting: s.config.trustedProxies)
            if let wait = try await s.throttle.begin(account: me.username, address: address) {
                throw HTTPError(.tooManyRequests, headers: [.retryAfter: String(wait)],
                                message: "Too many wrong passwords; try again in \(wait) s")
            }
            guard try await s.hasher.verify(body.password, hash: me.passwordHash) else {
                throw Problem(status: 403, title: "Forbidden", detail: "Wrong password: the account was not deleted")
            }
            try await s.throttle.succeeded(account: me.username, address: address)
            let (events, songs) = try await s.users.deleteUser(me)
            s.outbox.poke()
            // Everything cached for the user goes with the row: media tokens they were
            // given stop at once, and their songs' rows, open files and bytes are dropped.
            s.mediaCache.forget(user: me.id)
            for id in songs {
                s.mediaCache.forget(song: id)
                try? FileManager.default.removeItem(atPath: SongRoutes.audioPath(s.config.media, id))
                try? FileManager.default.removeItem(atPath: SongRoutes.coverPath(s.config.media, id))
            }
            await s.presence.remove(userID: me.id)
            await s.bus.remove(user: me.id)
            await s.bus.announce(events)
            return Response(status: .noContent)
        }
    }

    static func validate(_ r: RegisterRequest) throws {
        guard TextRules.isValidUsername(r.username) else {
            throw Problem.badRequest("Usernames are 3 to 32 letters, digits, dots, dashes or underscores")
        }
        let length = r.password.utf8.count
        guard length >= APILimits.passwordMinLength, length <= APILimits.passwordMaxLength else {
            throw Problem.badRequest("Passwords are \(APILimits.passwordMinLength) to \(APILimits.passwordMaxLength) bytes")
        }
        if let d = r.displayName { try TextRules.checkDisplayName(d) }
    }

    /// A new access token and a new refresh token (in `family`, or a new family at login).
    static func issue(for user: User, family: String?, services s: Services) async throws -> TokenPair {
        let access = try await s.tokens.accessToken(for: user)
        let refresh = TokenService.newRefreshToken()
        try await s.refreshTokens.insertRefreshToken(hash: refresh.hash, userID: user.id, family: family ?? UUID().uuidString,
                                                     expiresAt: Date().addingTimeInterval(s.tokens.refreshLifetime))
        return TokenPair(accessToken: access, refreshToken: refresh.token, expiresIn: Int(s.tokens.accessLifetime),
                         user: user.info)
    }
}

/// Puts the user behind a valid `Authorization: Bearer` access token in the context; 401
/// otherwise. Every route behind it can rely on `context.requireUser()`.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = MusitContext
    let tokens: TokenService
    let users: any UserRepository

    func handle(_ request: Request, context: MusitContext, next: (Request, MusitContext) async throws -> Response) async throws -> Response {
        var context = context
        context.user = try await Self.user(request, tokens: tokens, users: users)
        return try await next(request, context)
    }

    static func user(_ request: Request, tokens: TokenService, users: any UserRepository) async throws -> User {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            throw Problem.unauthorized("Sign in: send Authorization: Bearer <access token>")
        }
        let token = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        let claims: AccessClaims
        do {
            claims = try await tokens.verify(token)
        } catch {
            throw Problem.unauthorized("Invalid or expired access token")
        }
        guard let id = claims.userID, let user = try await users.user(id: id) else {
            throw Problem.unauthorized("No such user")
        }
        return user
    }
}

extension SocketAddress {
    var ipAddress: String? {
        switch self {
        case .v4(let a): return a.host
        case .v6(let a): return a.host
        default: return nil
        }
    }
}

/// Profiles: a user's own, and the search for others.
struct ProfileRoutes: Sendable {
    let users: any UserRepository

    @Sendable func updateProfile(_ request: Request, context: MusitContext) async throws -> UserInfo {
        let me = try context.requireUser()
        let body = try await request.decode(as: ProfileUpdate.self, context: context)
        if let bio = body.bio {
            try TextRules.check(bio, "bio", maxCharacters: APILimits.bioMaxLength, maxBytes: 4 * APILimits.bioMaxLength)
        }
        let name = body.displayName?.trimmingCharacters(in: .whitespacesAndNewlines)
        if let name {
            guard !name.isEmpty else { throw Problem.badRequest("Display names are 1 to \(APILimits.displayNameMaxLength) characters") }
            try TextRules.checkDisplayName(name)
        }
        guard let user = try await users.updateProfile(userID: me.id, displayName: name, bio: body.bio) else {
            throw Problem.unauthorized("No such user")
        }
        return user.info
    }

    @Sendable func searchUsers(_ request: Request, context: MusitContext) async throws -> UserList {
        _ = try context.requireUser()
        let query = try QueryParameters(request).text("query", maxCharacters: 64, maxBytes: 256) ?? ""
        return UserList(users: try await users.searchUsers(query, limit: 50).map(\.info))
    }
}
