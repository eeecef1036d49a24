import Crypto
import Foundation
import HummingbirdBcrypt
import JWTKit
import MusitAPI
import NIOPosix

/// Claims of an access token: who, what role, when issued, when it expires, and a unique id.
struct AccessClaims: JWTPayload, Equatable {
    var sub: SubjectClaim
    var role: String
    var iat: IssuedAtClaim
    var exp: ExpirationClaim
    var jti: IDClaim

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }

    var userID: Int64? { Int64(sub.value) }
}

/// Claims of a media URL token: one user, one song, a short life. Players drop headers,
/// so media URLs carry this in `?token=`.
struct MediaClaims: JWTPayload, Equatable {
    var sub: SubjectClaim
    var song: Int64
    var scope: String
    var exp: ExpirationClaim

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        guard scope == "media" else { throw JWTError.claimVerificationFailure(failedClaim: nil, reason: "not a media token") }
    }
}

/// Signs and verifies access tokens (JWT, HS256) and makes refresh tokens.
struct TokenService: Sendable {
    let keys: JWTKeyCollection
    let accessLifetime: TimeInterval
    let refreshLifetime: TimeInterval

    init(secret: [UInt8], accessLifetime: TimeInterval, refreshLifetime: TimeInterval) async {
        keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(key: SymmetricKey(data: secret)), digestAlgorithm: .sha256)
        self.accessLifetime = accessLifetime
        self.refreshLifetime = refreshLifetime
    }

    func accessToken(for user: User, now: Date = Date()) async throws -> String {
        // Whole seconds: a fractional exp is not a NumericDate every client reads.
        let issued = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let claims = AccessClaims(sub: .init(value: String(user.id)), role: user.role.rawValue, iat: .init(value: issued),
                                  exp: .init(value: issued.addingTimeInterval(accessLifetime)),
                                  jti: .init(value: UUID().uuidString))
        return try await keys.sign(claims)
    }

    /// The claims of a valid, unexpired token signed with our key; throws otherwise.
    func verify(_ token: String) async throws -> AccessClaims {
        try await keys.verify(token, as: AccessClaims.self)
    }

    func mediaToken(userID: Int64, song: Int64, lifetime: TimeInterval, now: Date = Date()) async throws -> String {
        let exp = Date(timeIntervalSince1970: (now.timeIntervalSince1970 + lifetime).rounded(.down))
        return try await keys.sign(MediaClaims(sub: .init(value: String(userID)), song: song, scope: "media", exp: .init(value: exp)))
    }

    func verifyMedia(_ token: String) async throws -> MediaClaims {
        try await keys.verify(token, as: MediaClaims.self)
    }

    /// A new random refresh token and the hash that is stored in its place.
    static func newRefreshToken() -> (token: String, hash: String) {
        var bytes = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = rng.next() }
        let token = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return (token, hash(token))
    }

    static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// bcrypt, run on NIO's thread pool so the event loops never wait on it.
struct PasswordHasher: Sendable {
    let cost: UInt8

    func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    func verify(_ password: String, hash: String) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
    }
}

/// Failed logins, throttled so that guessing is slow but the owner is never locked out.
///
/// - Per address and account: 5 failures in the window, then that address waits for that
///   account (the guesser is stopped, nobody else is).
/// - Per address: 20 failures in the window, then it waits for every account.
/// - Per account, across addresses: past 10 failures in the window each further attempt
///   waits a delay that doubles up to 30 s, instead of a lock: an attacker elsewhere can
///   slow the owner by seconds, never lock them out.
/// An attempt is counted when it begins, before bcrypt runs, so parallel guesses cannot all
/// slip through; a success takes its count back. The counts live where every instance
/// sees them: in memory for one instance on SQLite (`LoginThrottle`), in the database for
/// instances over PostgreSQL (`PostgresStore`), so a guesser gains nothing by spreading
/// guesses over instances.
protocol LoginThrottling: Sendable {
    /// Counts an attempt about to be checked; nil when it may go on, else the seconds to wait.
    func begin(account: String, address: String) async throws -> Int?
    /// The password was right: the attempt was not a guess.
    func succeeded(account: String, address: String) async throws
}

/// The rules of `LoginThrottling`, on the recent attempts under each key.
struct LoginRules: Sendable {
    var window: TimeInterval = 300
    var perPair = 5
    var perAddress = 20
    var accountFree = 10
    var maxDelay: TimeInterval = 30

    /// The keys an attempt counts under, in a fixed order.
    static func keys(account: String, address: String) -> (pair: String, address: String, user: String) {
        ("pair:" + address + "|" + account.lowercased(), "addr:" + address, "user:" + account.lowercased())
    }

    /// Seconds to wait, given the attempts within the window under each key (oldest first).
    func wait(pair: [Date], address: [Date], user: [Date], now: Date) -> Int? {
        var wait: TimeInterval = 0
        if pair.count >= perPair, let oldest = pair.first { wait = max(wait, window - now.timeIntervalSince(oldest)) }
        if address.count >= perAddress, let oldest = address.first { wait = max(wait, window - now.timeIntervalSince(oldest)) }
        if user.count >= accountFree, let last = user.last {
            let delay = min(maxDelay, pow(2, Double(user.count - accountFree)))
            wait = max(wait, delay - now.timeIntervalSince(last))
        }
        return wait > 0 ? max(1, Int(wait.rounded(.up))) : nil
    }
}

/// `LoginThrottling` in memory, for one instance. The table is bounded: entries expire with
/// the window, and past `capacity` keys the least recently used are dropped.
actor LoginThrottle: LoginThrottling {
    private struct Entry {
        var times: [Date]
        var last: Date
    }

    private var entries: [String: Entry] = [:]
    let rules: LoginRules
    let capacity: Int

    init(rules: LoginRules = LoginRules(), capacity: Int = 10_000) {
        self.rules = rules
        self.capacity = capacity
    }

    /// Keys held now (for tests and metrics).
    var count: Int { entries.count }

    func begin(account: String, address: String) -> Int? { begin(account: account, address: address, now: Date()) }

    func begin(account: String, address: String, now: Date) -> Int? {
        let k = LoginRules.keys(account: account, address: address)
        if let wait = rules.wait(pair: recent(k.pair, now), address: recent(k.address, now), user: recent(k.user, now), now: now) {
            return wait
        }
        for key in [k.pair, k.address, k.user] { record(key, now) }
        return nil
    }

    func succeeded(account: String, address: String) {
        let k = LoginRules.keys(account: account, address: address)
        entries[k.user] = nil
        entries[k.pair] = nil
        if entries[k.address]?.times.isEmpty == false { entries[k.address]?.times.removeLast() }
    }

    private func recent(_ key: String, _ now: Date) -> [Date] {
        guard var e = entries[key] else { return [] }
        e.times.removeAll { now.timeIntervalSince($0) >= rules.window }
        entries[key] = e.times.isEmpty ? nil : e
        return e.times
    }

    private func record(_ key: String, _ now: Date) {
        if entries[key] == nil, entries.count >= capacity { evict(now) }
        entries[key, default: Entry(times: [], last: now)].times.append(now)
        entries[key]?.last = now
    }

    /// Drops what expired; if that is not enough, the least recently used tenth.
    private func evict(_ now: Date) {
        entries = entries.filter { now.timeIntervalSince($0.value.last) < rules.window }
        guard entries.count >= capacity else { return }
        let drop = entries.sorted { $0.value.last < $1.value.last }.prefix(max(1, capacity / 10)).map(\.key)
        for key in drop { entries[key] = nil }
    }
}

/// The HMAC signing key: from configuration, or generated once and kept with mode 0600.
enum SigningKey {
    static func load(secret: String?, dataDirectory: String) throws -> [UInt8] {
        if let secret, !secret.isEmpty {
            let bytes = Array(secret.utf8)
            guard bytes.count >= 32 else {
                throw Problem(status: 500, title: "Signing key too short", detail: "MUSIT_JWT_SECRET needs at least 32 bytes")
            }
            return bytes
        }
        let path = dataDirectory + "/jwt.key"
        if let data = FileManager.default.contents(atPath: path), data.count >= 32 {
            return [UInt8](data)
        }
        var bytes = [UInt8](repeating: 0, count: 64)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = rng.next() }
        // Written aside and linked into place, which fails when the key exists: processes
        // that start together on one data directory (a gateway and Accounts) all end up
        // with the key that was linked first, never two keys.
        let aside = path + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(aside, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Problem(status: 500, title: "Cannot write the signing key", detail: path) }
        defer { unlink(aside) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fchmod(fd, 0o600)
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced else { throw Problem(status: 500, title: "Cannot write the signing key", detail: path) }
        if link(aside, path) == 0 { return bytes }
        if errno == EEXIST, let data = FileManager.default.contents(atPath: path), data.count >= 32 {
            return [UInt8](data)  // another process linked its key first
        }
        // A key cut short (left by a crash of a build that wrote it in place), or a file
        // system without hard links: the new key replaces it in one step.
        guard rename(aside, path) == 0 else { throw Problem(status: 500, title: "Cannot write the signing key", detail: path) }
        return bytes
    }
}
