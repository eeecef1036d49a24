import Foundation
import Logging
import MusitAPI
import MusitClient
import MusitServer
import NIOCore

/// The backend in this process: loopback, a port the kernel picks, SQLite under the XDG
/// data directory. Quiet: its logs would draw over the UI.
enum EmbeddedBackend {
    struct StartError: Error, CustomStringConvertible {
        let description: String
    }

    /// Starts it and returns its base URL once it listens.
    static func start(dataDirectory: String, environment: [String: String]) throws -> String {
        var config = ServerConfiguration(dataDirectory: dataDirectory)
        config.host = "127.0.0.1"
        config.port = 0
        if let cost = environment["MUSIT_BCRYPT_COST"].flatMap(UInt8.init), (4...31).contains(cost) { config.bcryptCost = cost }
        let port = Locked<Int?>(nil)
        let failure = Locked<String?>(nil)
        let ready = DispatchSemaphore(value: 0)
        var logger = Logger(label: "musit.embedded")
        logger.logLevel = .critical
        let configuration = config
        Task {
            do {
                try await MusitBackend.run(configuration, logger: logger, shutdownSignals: []) { channel in
                    port.set(channel.localAddress?.port)
                    ready.signal()
                }
            } catch {
                failure.set("\(error)")
                ready.signal()
            }
        }
        guard ready.wait(timeout: .now() + 30) == .success else {
            throw StartError(description: "the embedded backend did not start in 30 s")
        }
        if let why = failure.get() { throw StartError(description: "the embedded backend failed: \(why)") }
        guard let p = port.get() else { throw StartError(description: "the embedded backend has no port") }
        return "http://127.0.0.1:\(p)"
    }
}

/// The embedded backend's one user: named after the login, with a random password kept
/// 0600 beside the database. The first start registers it (first user: admin).
struct LocalUser: Codable {
    var username: String
    var password: String

    static func load(dataDirectory: String, environment: [String: String]) -> (user: LocalUser, isNew: Bool) {
        let path = dataDirectory + "/local-user.json"
        if let data = FileManager.default.contents(atPath: path), let user = try? JSONDecoder().decode(LocalUser.self, from: data) {
            return (user, false)
        }
        let raw = environment["USER"] ?? "me"
        var name = String(raw.filter { $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }.prefix(32))
        if name.count < 3 { name = "local-\(name)" }
        var bytes = [UInt8](repeating: 0, count: 24)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        let user = LocalUser(username: name, password: Data(bytes).base64EncodedString())
        if let data = try? JSONEncoder().encode(user) { PrivateFile.write(data, to: path) }
        return (user, true)
    }

    /// Signs in, registering on first use and then uploading the demo tracks.
    func signIn(_ client: APIClient, isNew: Bool, demo: [String]) async throws(ClientError) {
        do {
            _ = try await client.login(username: username, password: password)
        } catch where error.status == 401 {
            _ = try await client.register(username: username, password: password, displayName: username)
            for path in demo { _ = try? await client.upload(path: path) { _, _ in } }
        }
    }
}
