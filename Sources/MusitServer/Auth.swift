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

/// Failed logins per account and per address within a window; past the limit, 429.
actor LoginThrottle {
    private var failures: [String: [Date]] = [:]
    let window: TimeInterval
    let perAccount: Int
    let perAddress: Int

    init(window: TimeInterval = 300, perAccount: Int = 5, perAddress: Int = 20) {
        self.window = window
        self.perAccount = perAccount
        self.perAddress = perAddress
    }

    /// Seconds to wait before trying again, or nil when allowed.
    func retryAfter(account: String, address: String, now: Date = Date()) -> Int? {
        let checks = [("user:" + account.lowercased(), perAccount), ("addr:" + address, perAddress)]
        var wait: TimeInterval?
        for (key, limit) in checks {
            let recent = (failures[key] ?? []).filter { now.timeIntervalSince($0) < window }
            failures[key] = recent
            if recent.count >= limit, let oldest = recent.first {
                wait = max(wait ?? 0, window - now.timeIntervalSince(oldest))
            }
        }
        return wait.map { max(1, Int($0.rounded(.up))) }
    }

    func failed(account: String, address: String, now: Date = Date()) {
        failures["user:" + account.lowercased(), default: []].append(now)
        failures["addr:" + address, default: []].append(now)
    }

    func succeeded(account: String) {
        failures["user:" + account.lowercased()] = nil
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
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Problem(status: 500, title: "Cannot write the signing key", detail: path) }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw Problem(status: 500, title: "Cannot write the signing key", detail: path) }
        fchmod(fd, 0o600)
        return bytes
    }
}
