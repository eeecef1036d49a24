import Foundation
import GRPCCore
import Hummingbird
import MusitAPI
import MusitRPC
import Synchronization

/// The Accounts service, `musit.accounts.v1.Accounts`, over `LocalAccounts`: served alone
/// by `--role accounts`; the gateway reaches it through `RemoteAccounts`. The public API's
/// failures become gRPC statuses here and HTTP answers again in the gateway, with the same
/// messages (a login throttled says how long to wait in `retry-after`).
struct AccountsService: Musit_Accounts_V1_Accounts.SimpleServiceProtocol {
    let accounts: LocalAccounts

    func register(request: Musit_Accounts_V1_RegisterRequest, context: ServerContext) async throws -> Musit_Accounts_V1_Session {
        try await Self.mapped {
            AccountsWire.session(try await accounts.register(username: request.username, password: request.password,
                                                             displayName: request.displayName.isEmpty ? nil : request.displayName))
        }
    }

    func login(request: Musit_Accounts_V1_LoginRequest, context: ServerContext) async throws -> Musit_Accounts_V1_Session {
        try await Self.mapped {
            AccountsWire.session(try await accounts.login(username: request.username, password: request.password,
                                                          address: request.clientAddress))
        }
    }

    func refresh(request: Musit_Accounts_V1_RefreshRequest, context: ServerContext) async throws -> Musit_Accounts_V1_Session {
        try Self.token(request.refreshToken)
        return try await Self.mapped { AccountsWire.session(try await accounts.refresh(request.refreshToken)) }
    }

    func logout(request: Musit_Accounts_V1_RefreshRequest, context: ServerContext) async throws -> Musit_Accounts_V1_LogoutResponse {
        try Self.token(request.refreshToken)
        try await Self.mapped { try await accounts.logout(request.refreshToken) }
        return .init()
    }

    func deleteAccount(request: Musit_Accounts_V1_DeleteAccountRequest, context: ServerContext) async throws
        -> Musit_Accounts_V1_DeleteAccountResponse {
        guard request.userID > 0 else { throw RPCError(code: .invalidArgument, message: "user_id is an id above 0") }
        guard request.password.utf8.count <= APILimits.passwordMaxLength else {
            throw RPCError(code: .invalidArgument, message: "password is at most \(APILimits.passwordMaxLength) bytes")
        }
        try await Self.mapped {
            try await accounts.deleteAccount(userID: request.userID, password: request.password, address: request.clientAddress)
        }
        return .init()
    }

    func updateProfile(request: Musit_Accounts_V1_UpdateProfileRequest, context: ServerContext) async throws
        -> Musit_Accounts_V1_UserResponse {
        guard request.userID > 0 else { throw RPCError(code: .invalidArgument, message: "user_id is an id above 0") }
        let bio = request.hasBio ? request.bio : nil
        let user = try await Self.mapped {
            // The public API's limits, for a caller other than the gateway.
            let name = try LocalAccounts.checkProfile(displayName: request.hasDisplayName ? request.displayName : nil, bio: bio)
            return try await accounts.updateProfile(userID: request.userID, displayName: name, bio: bio)
        }
        return AccountsWire.found(user)
    }

    func getUsers(request: Musit_Accounts_V1_GetUsersRequest, context: ServerContext) async throws -> Musit_Accounts_V1_UsersResponse {
        guard request.ids.count <= Self.idsLimit, request.ids.allSatisfy({ $0 > 0 }) else {
            throw RPCError(code: .invalidArgument, message: "ids: at most \(Self.idsLimit), each above 0")
        }
        let users = try await Self.mapped { try await accounts.users.users(ids: request.ids) }
        return .with { $0.users = users.map(AccountsWire.user) }
    }

    func findUser(request: Musit_Accounts_V1_FindUserRequest, context: ServerContext) async throws -> Musit_Accounts_V1_UserResponse {
        // A name no account can have is no one's: not an error, and no query.
        guard TextRules.isValidUsername(request.username) else { return .init() }
        return AccountsWire.found(try await Self.mapped { try await accounts.users.user(named: request.username) })
    }

    func searchUsers(request: Musit_Accounts_V1_SearchUsersRequest, context: ServerContext) async throws
        -> Musit_Accounts_V1_UsersResponse {
        guard (1...1000).contains(request.limit), request.query.utf8.count <= 256 else {
            throw RPCError(code: .invalidArgument, message: "limit is 1 to 1000; query at most 256 bytes")
        }
        let users = try await Self.mapped { try await accounts.users.searchUsers(request.query, limit: Int(request.limit)) }
        return .with { $0.users = users.map(AccountsWire.user) }
    }

    func countUsers(request: Musit_Accounts_V1_CountUsersRequest, context: ServerContext) async throws
        -> Musit_Accounts_V1_CountUsersResponse {
        let count = try await Self.mapped { try await accounts.users.userCount() }
        return .with { $0.count = Int64(count) }
    }

    /// Ids one GetUsers call may ask for (a friends list, a page of owners).
    static let idsLimit = 100_000

    static func token(_ token: String) throws {
        guard !token.isEmpty, token.utf8.count <= 512 else {
            throw RPCError(code: .invalidArgument, message: "refresh_token is 1 to 512 bytes")
        }
    }

    static func mapped<T>(_ body: () async throws -> T) async throws -> T { try await RPCProblems.mapped(body) }
}

/// The messages of `musit.accounts.v1` to and from the server's own types.
enum AccountsWire {
    static func user(_ u: User) -> Musit_Accounts_V1_User {
        .with {
            $0.id = u.id
            $0.username = u.username
            $0.displayName = u.displayName
            $0.role = u.role.rawValue
            $0.bio = u.bio
        }
    }

    /// A user as the gateway knows one: no password hash crosses the wire.
    static func user(_ u: Musit_Accounts_V1_User) -> User {
        User(id: u.id, username: u.username, displayName: u.displayName, passwordHash: "", role: Role(rawValue: u.role) ?? .user,
             bio: u.bio)
    }

    static func session(_ pair: TokenPair) -> Musit_Accounts_V1_Session {
        .with {
            $0.accessToken = pair.accessToken
            $0.refreshToken = pair.refreshToken
            $0.expiresIn = Int64(pair.expiresIn)
            $0.user = .with {
                $0.id = pair.user.id
                $0.username = pair.user.username
                $0.displayName = pair.user.displayName
                $0.role = pair.user.role.rawValue
                $0.bio = pair.user.bio
            }
        }
    }

    static func pair(_ s: Musit_Accounts_V1_Session) -> TokenPair {
        TokenPair(accessToken: s.accessToken, refreshToken: s.refreshToken, expiresIn: Int(s.expiresIn), user: user(s.user).info)
    }

    static func found(_ user: User?) -> Musit_Accounts_V1_UserResponse {
        .with {
            $0.found = user != nil
            if let user { $0.user = Self.user(user) }
        }
    }
}

/// Accounts reached over gRPC: the `AccountsAPI` and `UserDirectory` the gateway uses when
/// `--accounts` names the service. A failed call is the HTTP answer `ServiceLink` makes of
/// it. Reads and logout are retried while the budget lasts; register, login, refresh and
/// deletion are not (UNAVAILABLE may come after the commit).
///
/// Every signed-in request asks who its token's user is, and every message who its
/// recipient is, so users are kept for `fresh`, by id and by name (a profile edited or an account deleted through another gateway shows after that long;
/// through this one, or on PostgreSQL through any, at once). While Accounts is
/// unavailable, a user seen within an access token's life is answered from here, so the routes that need only the user keep working; sign-in and
/// the account routes answer 503.
final class RemoteAccounts: AccountsAPI, UserDirectory {
    let link: ServiceLink<any Musit_Accounts_V1_Accounts.ClientProtocol>
    let fresh: Duration
    /// Users kept at most; past it the cache starts over (a miss costs a call).
    static let cacheLimit = 10_000

    private struct Kept {
        let user: User
        let at: ContinuousClock.Instant
    }

    private struct Table {
        var byID: [Int64: Kept] = [:]
        /// Lowercased names of the users in `byID`.
        var byName: [String: Int64] = [:]
        /// Counts forgets: a lookup that a forget overtook answers what it found but keeps
        /// none of it (it may be the row just deleted or edited).
        var forgets: UInt64 = 0
    }

    /// How long a kept user may answer for while Accounts is away: an access token's life.
    let staleLimit: Duration

    private let state = Mutex(Table())

    init(link: ServiceLink<any Musit_Accounts_V1_Accounts.ClientProtocol>, fresh: Duration = .seconds(2),
         staleLimit: Duration = .seconds(15 * 60)) {
        self.link = link
        self.fresh = fresh
        self.staleLimit = staleLimit
    }

    var directory: any UserDirectory { self }

    func register(username: String, password: String, displayName: String?) async throws -> TokenPair {
        let request = Musit_Accounts_V1_RegisterRequest.with {
            $0.username = username
            $0.password = password
            $0.displayName = displayName ?? ""
        }
        return AccountsWire.pair(try await link.call { try await $0.register(request, options: $1) })
    }

    func login(username: String, password: String, address: String) async throws -> TokenPair {
        let request = Musit_Accounts_V1_LoginRequest.with {
            $0.username = username
            $0.password = password
            $0.clientAddress = address
        }
        return AccountsWire.pair(try await link.call { try await $0.login(request, options: $1) })
    }

    func refresh(_ refreshToken: String) async throws -> TokenPair {
        guard !refreshToken.isEmpty, refreshToken.utf8.count <= 512 else { throw Problem.unauthorized("Unknown refresh token") }
        let request = Musit_Accounts_V1_RefreshRequest.with { $0.refreshToken = refreshToken }
        return AccountsWire.pair(try await link.call { try await $0.refresh(request, options: $1) })
    }

    func logout(_ refreshToken: String) async throws {
        guard !refreshToken.isEmpty, refreshToken.utf8.count <= 512 else { return }
        let request = Musit_Accounts_V1_RefreshRequest.with { $0.refreshToken = refreshToken }
        _ = try await link.call(idempotent: true) { try await $0.logout(request, options: $1) }
    }

    func deleteAccount(userID: Int64, password: String, address: String) async throws {
        let request = Musit_Accounts_V1_DeleteAccountRequest.with {
            $0.userID = userID
            $0.password = password
            $0.clientAddress = address
        }
        _ = try await link.call { try await $0.deleteAccount(request, options: $1) }
        forget(userID)
    }

    func updateProfile(userID: Int64, displayName: String?, bio: String?) async throws -> User? {
        let request = Musit_Accounts_V1_UpdateProfileRequest.with {
            $0.userID = userID
            if let displayName { $0.displayName = displayName }
            if let bio { $0.bio = bio }
        }
        let answer = try await link.call { try await $0.updateProfile(request, options: $1) }
        forget(userID)
        return answer.found ? AccountsWire.user(answer.user) : nil
    }

    func user(named username: String) async throws -> User? {
        guard TextRules.isValidUsername(username) else { return nil }
        // Every message names its recipient: a name looked up lately is not asked again.
        let key = username.lowercased()
        let (kept, generation) = state.withLock { s in (s.byName[key].flatMap { s.byID[$0] }, s.forgets) }
        if let kept, ContinuousClock.now - kept.at < fresh { return kept.user }
        let request = Musit_Accounts_V1_FindUserRequest.with { $0.username = username }
        do {
            let answer = try await link.call(idempotent: true) { try await $0.findUser(request, options: $1) }
            guard answer.found else {
                if let kept { forget(kept.user.id) }
                return nil
            }
            return keep(AccountsWire.user(answer.user), lookedUpAt: generation)
        } catch let error as HTTPError where error.status == .serviceUnavailable {
            // Accounts away: a name seen lately (a friend to message) is still known.
            guard let kept, ContinuousClock.now - kept.at < staleLimit else { throw error }
            return kept.user
        }
    }

    func user(id: Int64) async throws -> User? {
        if let kept = state.withLock({ $0.byID[id] }), ContinuousClock.now - kept.at < fresh { return kept.user }
        // Accounts away: `users(ids:)` answers the user as last seen, so signed-in routes
        // keep working.
        return try await users(ids: [id]).first
    }

    func users(ids: [Int64]) async throws -> [User] {
        guard !ids.isEmpty else { return [] }
        let request = Musit_Accounts_V1_GetUsersRequest.with { $0.ids = ids }
        let generation = state.withLock { $0.forgets }
        let answer: Musit_Accounts_V1_UsersResponse
        do {
            answer = try await link.call(idempotent: true) { try await $0.getUsers(request, options: $1) }
        } catch let error as HTTPError where error.status == .serviceUnavailable {
            // Accounts away: the users as last seen, when every one was seen lately.
            let now = ContinuousClock.now
            let kept = state.withLock { table in ids.compactMap { table.byID[$0] }.filter { now - $0.at < staleLimit } }
            guard kept.count == ids.count else { throw error }
            return kept.map(\.user)
        }
        let users = answer.users.map(AccountsWire.user)
        for u in users { _ = keep(u, lookedUpAt: generation) }
        // Asked for and not there: gone (deleted through another gateway).
        let found = Set(users.map(\.id))
        for id in ids where !found.contains(id) { forget(id) }
        return users
    }

    func userCount() async throws -> Int {
        Int(try await link.call(idempotent: true) { try await $0.countUsers(.init(), options: $1) }.count)
    }

    func searchUsers(_ query: String, limit: Int) async throws -> [User] {
        let request = Musit_Accounts_V1_SearchUsersRequest.with {
            $0.query = query
            $0.limit = Int32(clamping: limit)
        }
        return try await link.call(idempotent: true) { try await $0.searchUsers(request, options: $1) }.users.map(AccountsWire.user)
    }

    private func keep(_ user: User, lookedUpAt generation: UInt64) -> User {
        state.withLock {
            guard $0.forgets == generation else { return }
            if $0.byID.count >= Self.cacheLimit, $0.byID[user.id] == nil {
                $0.byID.removeAll(keepingCapacity: true)
                $0.byName.removeAll(keepingCapacity: true)
            }
            $0.byID[user.id] = Kept(user: user, at: .now)
            $0.byName[user.username.lowercased()] = user.id
        }
        return user
    }

    /// `id` was deleted or edited (here, or on another instance: `PostgresEventRelay`).
    func forget(_ id: Int64) {
        state.withLock {
            $0.forgets &+= 1
            if let gone = $0.byID.removeValue(forKey: id) { $0.byName[gone.user.username.lowercased()] = nil }
        }
    }
}
