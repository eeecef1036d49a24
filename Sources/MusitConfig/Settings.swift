import Foundation

/// Settings read from `$XDG_CONFIG_HOME/musit/config.json` (or `--config PATH`).
/// Precedence everywhere: command-line flag, then `MUSIT_*` environment, then this file, then defaults.
public struct MusitSettings: Codable, Equatable, Sendable {
    public struct Audio: Codable, Equatable, Sendable {
        /// ALSA device name.
        public var device: String?
        /// Initial volume, 0–100.
        public var volume: Int?
        /// ReplayGain: off, track or album.
        public var replayGain: String?

        public init(device: String? = nil, volume: Int? = nil, replayGain: String? = nil) {
            self.device = device
            self.volume = volume
            self.replayGain = replayGain
        }
    }

    public struct Server: Codable, Equatable, Sendable {
        /// The backend the player uses (http://host:port); none means the embedded one.
        public var url: String?
        public var host: String?
        public var port: Int?
        /// Data directory (database, signing key, media).
        public var data: String?
        public var admin: String?
        /// Seconds from a request's first byte to the end of its header.
        public var headerTimeout: Double?
        /// Seconds a connection may stay idle (or a request body stall) before it is closed.
        public var idleTimeout: Double?
        /// Open connections at most.
        public var maxConnections: Int?
        /// Origins whose pages may call the API from a browser (CORS); `*` for any.
        public var corsOrigins: [String]?
        /// Addresses of the proxies in front, whose `X-Forwarded-For` names the client.
        public var trustedProxies: [String]?
        /// `postgres://user:password@host:port/database`; SQLite in the data directory when absent.
        public var database: String?
        /// Connections to PostgreSQL at most, per instance (default 20).
        public var databasePool: Int?
        /// Song files, shared by instances over one database; default `media` in the data directory.
        public var media: String?
        /// The key that signs access tokens (32 bytes or more); instances over one database share it.
        public var jwtSecret: String?
        /// What this process runs: all (default), gateway, accounts, library, social, stats.
        public var role: String?
        /// A service role's gRPC port.
        public var grpcPort: Int?
        /// Where the gateway reaches each service, host:port; absent, it runs in the gateway.
        public var accounts: String?
        public var library: String?
        public var social: String?
        public var stats: String?
    }

    public var audio: Audio?
    public var server: Server?
    /// Keys rebound, by section and action: `{"queue": {"down": ["j", "Ctrl-n"]}}`.
    public var keys: [String: [String: [String]]]?
    /// The look: `{"theme": "album", "cover": true, "visualizer": false}`; read entry by
    /// entry (`LookSettings.resolve`) so one bad value does not cost the others.
    public var look: [String: SettingValue]?

    public init(audio: Audio? = nil, server: Server? = nil, keys: [String: [String: [String]]]? = nil,
                look: [String: SettingValue]? = nil) {
        self.audio = audio
        self.server = server
        self.keys = keys
        self.look = look
    }

    public struct LoadError: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "config file \(path): \(reason)" }
    }

    /// Loads the file at `path`; a missing default file gives empty settings, a broken one an error.
    public static func load(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> MusitSettings {
        let explicit = path ?? environment["MUSIT_CONFIG"]
        let file = explicit ?? XDGPaths(environment: environment).configHome + "/musit/config.json"
        guard FileManager.default.fileExists(atPath: file) else {
            if let explicit { throw LoadError(path: explicit, reason: "no such file") }
            return MusitSettings()
        }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            return try JSONDecoder().decode(MusitSettings.self, from: data)
        } catch let error as DecodingError {
            throw LoadError(path: file, reason: "not valid settings JSON (\(Self.describe(error)))")
        } catch {
            throw LoadError(path: file, reason: error.localizedDescription)
        }
    }

    /// The ALSA device: `--device`, then `MUSIT_ALSA_DEVICE`, then the file, then `default`.
    public func audioDevice(flag: String?, environment: [String: String]) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let env = environment["MUSIT_ALSA_DEVICE"], !env.isEmpty { return env }
        if let device = audio?.device, !device.isEmpty { return device }
        return "default"
    }

    /// ReplayGain: `--replaygain`, then `MUSIT_REPLAYGAIN`, then the file, then off. A bad
    /// value from the environment or the file is a problem to say, and off.
    public func replayGain(flag: String?, environment: [String: String]) -> (mode: String, problem: String?) {
        let modes = ["off", "track", "album"]
        if let flag { return (flag, nil) }
        for (value, source) in [(environment["MUSIT_REPLAYGAIN"], "MUSIT_REPLAYGAIN"), (audio?.replayGain, "audio.replayGain")] {
            guard let value, !value.isEmpty else { continue }
            if modes.contains(value.lowercased()) { return (value.lowercased(), nil) }
            return ("off", "\(source) is off, track or album, not \(value); using off")
        }
        return ("off", nil)
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c), .dataCorrupted(let c):
            let path = c.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? c.debugDescription : "\(path): \(c.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

/// A settings value of whatever JSON type the file gave, checked by whoever reads it.
public enum SettingValue: Codable, Equatable, Sendable, CustomStringConvertible {
    case bool(Bool), number(Double), string(String), other

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else { self = .other }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .bool(let b): try c.encode(b)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .other: try c.encodeNil()
        }
    }

    public var description: String {
        switch self {
        case .bool(let b): return "\(b)"
        case .number(let n): return "\(n)"
        case .string(let s): return "\"\(s)\""
        case .other: return "a list or object"
        }
    }
}

/// The `look` section in effect: each entry checked on its own; a bad one is named and
/// keeps its default.
public struct LookSettings: Equatable, Sendable {
    public var theme = "album"
    public var cover = true
    public var visualizer = false
    /// Draw the real cover with the kitty graphics protocol (also when the terminal says it
    /// is kitty).
    public var kitty = false

    public init() {}

    public static func resolve(_ raw: [String: SettingValue]?, themes: [String]) -> (LookSettings, problems: [String]) {
        var out = LookSettings()
        var problems: [String] = []
        for (key, value) in (raw ?? [:]).sorted(by: { $0.key < $1.key }) {
            switch (key, value) {
            case ("theme", .string(let t)) where themes.contains(t): out.theme = t
            case ("theme", _):
                problems.append("look.theme: \(value) is not a theme (\(themes.joined(separator: ", "))); using album")
            case ("cover", .bool(let b)): out.cover = b
            case ("visualizer", .bool(let b)): out.visualizer = b
            case ("kitty", .bool(let b)): out.kitty = b
            case ("cover", _), ("visualizer", _), ("kitty", _):
                problems.append("look.\(key): \(value) is not true or false; using \(key == "cover" ? "true" : "false")")
            default:
                problems.append("look.\(key): no such setting (theme, cover, visualizer, kitty)")
            }
        }
        return (out, problems)
    }
}

/// XDG base directories.
public struct XDGPaths: Sendable {
    public let configHome: String
    public let dataHome: String
    /// What can be made again: the tags read from local files.
    public let cacheHome: String

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let home = environment["HOME"] ?? NSHomeDirectory()
        func pick(_ key: String, _ fallback: String) -> String {
            if let v = environment[key], v.hasPrefix("/") { return v }
            return home + "/" + fallback
        }
        configHome = pick("XDG_CONFIG_HOME", ".config")
        dataHome = pick("XDG_DATA_HOME", ".local/share")
        cacheHome = pick("XDG_CACHE_HOME", ".cache")
    }
}
