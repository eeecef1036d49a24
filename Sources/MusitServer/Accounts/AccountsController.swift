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
        let accounts = s.accounts
        auth.post("register") { request, context in
            let body = try await request.decode(as: RegisterRequest.self, context: context)
            let session = try await accounts.register(username: body.username, password: body.password, displayName: body.displayName)
            // The user's event log starts in Social, from the outbox: delivered before the
            // answer, so every event for everyone reaches them from their first request
            // (with Social down, from its return).
            await s.outbox.deliverNow()
            return EditedResponse(status: .created, response: session)
        }

        auth.post("login") { request, context in
            let body = try await request.decode(as: LoginRequest.self, context: context)
            return try await accounts.login(username: body.username, password: body.password,
                                            address: context.clientAddress(request, trusting: s.config.trustedProxies))
        }

        auth.post("refresh") { request, context in
            let body = try await request.decode(as: RefreshRequest.self, context: context)
            return try await accounts.refresh(body.refreshToken)
        }

        auth.post("logout") { request, context in
            let body = try await request.decode(as: RefreshRequest.self, context: context)
            try await accounts.logout(body.refreshToken)
            return Response(status: .noContent)
        }

        signedIn.get("me") { _, context in try context.requireUser().info }
        let profiles = ProfileRoutes(accounts: accounts)
        signedIn.patch("me", use: profiles.updateProfile)
        signedIn.get("users", use: profiles.searchUsers)
        signedIn.get("users/:username") { _, context in
            let name = context.parameters.get("username") ?? ""
            guard let user = try await s.users.user(named: name) else { throw Problem.notFound("No user \(name)") }
            return user.info
        }

        signedIn.delete("me") { request, context in
            let me = try context.requireUser()
            let body = try await request.decode(as: DeleteAccountRequest.self, context: context)
            try await accounts.deleteAccount(userID: me.id, password: body.password,
                                             address: context.clientAddress(request, trusting: s.config.trustedProxies))
            // Library deletes the user's songs and files, Social their friendships, messages
            // and log (telling each friend), Stats their plays: from the outbox, delivered
            // here before the answer, so all of it is done when the client hears 204 (or,
            // with a service down, as soon as it is back).
            await s.outbox.deliverNow()
            // Media tokens the user was given stop at once.
            s.mediaCache.forget(user: me.id)
            await s.presence.remove(userID: me.id)
            await s.bus.remove(user: me.id)
            return Response(status: .noContent)
        }
    }
}

/// Puts the user behind a valid `Authorization: Bearer` access token in the context; 401
/// otherwise. Every route behind it can rely on `context.requireUser()`.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = MusitContext
    let tokens: TokenService
    let users: any UserDirectory

    func handle(_ request: Request, context: MusitContext, next: (Request, MusitContext) async throws -> Response) async throws -> Response {
        var context = context
        context.user = try await Self.user(request, tokens: tokens, users: users)
        return try await next(request, context)
    }

    static func user(_ request: Request, tokens: TokenService, users: any UserDirectory) async throws -> User {
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
    let accounts: any AccountsAPI

    @Sendable func updateProfile(_ request: Request, context: MusitContext) async throws -> UserInfo {
        let me = try context.requireUser()
        let body = try await request.decode(as: ProfileUpdate.self, context: context)
        let name = try LocalAccounts.checkProfile(displayName: body.displayName, bio: body.bio)
        guard let user = try await accounts.updateProfile(userID: me.id, displayName: name, bio: body.bio) else {
            throw Problem.unauthorized("No such user")
        }
        return user.info
    }

    @Sendable func searchUsers(_ request: Request, context: MusitContext) async throws -> UserList {
        _ = try context.requireUser()
        let query = try QueryParameters(request).text("query", maxCharacters: 64, maxBytes: 256) ?? ""
        return UserList(users: try await accounts.directory.searchUsers(query, limit: 50).map(\.info))
    }
}
