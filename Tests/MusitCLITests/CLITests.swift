import Foundation
import MusitConfig
import MusitTestSupport
import MusitViewModel
import Testing

@Suite("musit-tui on the command line")
struct CLITests {
    @Test("--help and --version")
    func helpAndVersion() throws {
        let help = try Binary.run(["--help"])
        #expect(help.status == 0)
        for word in ["--headless", "--device", "--volume", "MUSIT_ALSA_DEVICE"] {
            #expect(help.stdout.contains(word), "help mentions \(word)")
        }
        let version = try Binary.run(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, "\(version.stdout)")
    }

    @Test("bad arguments get a clear error and exit 64")
    func badArguments() throws {
        let r = try Binary.run(["--volume", "150", "--headless", Fixtures.path("sine440.mp3")])
        #expect(r.status == 64)
        #expect(r.stderr.contains("--volume must be between 0 and 100"))
        let none = try Binary.run(["--headless"])
        #expect(none.status == 64)
        #expect(none.stderr.contains("needs at least one file"))
    }

    @Test("--headless prints one line per track and errors on stderr, then exits")
    func headless() throws {
        let (device, capture) = Fixtures.captureDevice()
        let r = try Binary.run(["--headless", "--device", device, Fixtures.path("tag_v24.mp3"),
                                Fixtures.path("random.mp3"), Fixtures.path("tag_v1.mp3")])
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 2, "\(r.stdout)")
        #expect(lines.first?.hasPrefix("[1/3] Artïst Four – Ωμέγα UTF-8 🎶 (0:01)") == true)
        #expect(lines.last?.hasPrefix("[3/3] Old Artist – Old Title (0:01)") == true)
        #expect(r.stderr == "musit-tui: error: \(Fixtures.path("random.mp3")): not an MP3: no MPEG audio frames found\n")
        #expect(r.status == 1, "a failed track makes the exit status 1")
        let pcm = try PCM(raw: capture)
        #expect(pcm.frames == 2 * 44100)
    }

    @Test("with no audio device it plays on in real time and stderr holds no ALSA noise")
    func noAudioDevice() throws {
        let r = try Binary.run(["--headless", "--device", "no-such-device", Fixtures.path("tag_v24.mp3")])
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix("[1/1] "))
        #expect(r.seconds >= 0.95 && r.seconds < 3, "a 1 s track took \(r.seconds) s")
        #expect(!r.stderr.contains("ALSA lib"))
        #expect(r.stderr == "musit-tui: no audio device (cannot open ALSA device \"no-such-device\"); playing on the null output in real time\n")
    }

    @Test("an unreadable file is reported (run as an unprivileged user)")
    func unreadable() throws {
        let file = Fixtures.path("unreadable.mp3")
        if getuid() == 0 {
            // root reads anything: drop to nobody for this run.
            let r = try Binary.run(["--headless", "--device", "testnull", file],
                                   prefix: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
            #expect(r.stderr == "musit-tui: error: \(file): cannot read: Permission denied\n", "\(r.stderr)")
            #expect(r.status == 1)
        } else {
            let r = try Binary.run(["--headless", "--device", "testnull", file])
            #expect(r.stderr.contains("cannot read: Permission denied"))
        }
    }

    @Test("the device comes from --device, then MUSIT_ALSA_DEVICE, then the config file")
    func devicePrecedence() throws {
        let dir = NSTemporaryDirectory() + "musit-config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/musit", withIntermediateDirectories: true)
        let fromFile = Fixtures.captureDevice("file")
        let fromEnv = Fixtures.captureDevice("env")
        let fromFlag = Fixtures.captureDevice("flag")
        try #"{"audio": {"device": "\#(fromFile.device)"}}"#.write(toFile: dir + "/musit/config.json", atomically: true, encoding: .utf8)
        let track = Fixtures.path("tag_v1.mp3")
        _ = try Binary.run(["--headless", track], environment: ["XDG_CONFIG_HOME": dir])
        #expect(FileManager.default.fileExists(atPath: fromFile.path))
        _ = try Binary.run(["--headless", track], environment: ["XDG_CONFIG_HOME": dir, "MUSIT_ALSA_DEVICE": fromEnv.device])
        #expect(FileManager.default.fileExists(atPath: fromEnv.path))
        _ = try Binary.run(["--headless", "--device", fromFlag.device, track],
                           environment: ["XDG_CONFIG_HOME": dir, "MUSIT_ALSA_DEVICE": fromEnv.device])
        #expect(FileManager.default.fileExists(atPath: fromFlag.path))
        #expect(try PCM(raw: fromFlag.path).frames == 44100)

        // A broken file is said once, and the player goes on with the defaults.
        try "{ not json".write(toFile: dir + "/musit/config.json", atomically: true, encoding: .utf8)
        let broken = try Binary.run(["--headless", "--device", "testnull", track], environment: ["XDG_CONFIG_HOME": dir])
        #expect(broken.status == 0)
        #expect(broken.stderr.contains("config file \(dir)/musit/config.json: not valid settings JSON"), "\(broken.stderr)")
        #expect(broken.stderr.contains("using the defaults"), "\(broken.stderr)")
        #expect(broken.stdout.contains("tag_v1"), "and it played: \(broken.stdout)")
    }

    @Test("--print-config: the settings in effect with their defaults, rebound keys included; each bad entry named once")
    func printConfig() throws {
        let dir = NSTemporaryDirectory() + "musit-config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/musit", withIntermediateDirectories: true)
        try #"{"audio": {"volume": 40}, "keys": {"global": {"togglePause": ["P"], "nope": ["x"]}, "queue": {"down": ["Ctrl-"], "up": ["K", "Ctrl-p"]}, "chat": {"older": ["u"], "newer": ["u"]}, "bogus": {}}}"#
            .write(toFile: dir + "/musit/config.json", atomically: true, encoding: .utf8)
        let r = try Binary.run(["--print-config"], environment: ["XDG_CONFIG_HOME": dir])
        #expect(r.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let keys = try #require(json["keys"] as? [String: [String: [String]]])
        let audio = try #require(json["audio"] as? [String: Any])
        #expect(audio["volume"] as? Int == 40 && audio["device"] as? String == "default", "\(audio)")
        #expect(keys["global"]?["togglePause"] == ["P"], "rebound")
        #expect(keys["global"]?["next"] == ["n"], "a default")
        #expect(keys["queue"]?["up"] == ["K", "Ctrl-p"] && keys["queue"]?["down"] == ["↓", "j"], "\(keys["queue"] ?? [:])")
        #expect(keys["chat"]?["newer"] == ["↓", "j"] || keys["chat"]?["older"] == ["↑", "k"], "one of the two given u keeps its default")
        for bad in ["keys.global.nope: no such action", "keys.queue.down: \"Ctrl-\" is not a key", "keys.bogus: no such section",
                    "is also given to"] {
            #expect(r.stderr.components(separatedBy: bad).count == 2, "\(bad) said once: \(r.stderr)")
        }
    }

    @Test("ReplayGain: --replaygain, then MUSIT_REPLAYGAIN, then the file; a bad value is said and plays off")
    func replayGainSetting() throws {
        let dir = NSTemporaryDirectory() + "musit-config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/musit", withIntermediateDirectories: true)
        try #"{"audio": {"replayGain": "album"}}"#.write(toFile: dir + "/musit/config.json", atomically: true, encoding: .utf8)
        func mode(_ args: [String], _ env: [String: String] = [:]) throws -> (String?, String) {
            let r = try Binary.run(["--print-config"] + args, environment: ["XDG_CONFIG_HOME": dir].merging(env) { a, _ in a })
            let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            return ((json?["audio"] as? [String: Any])?["replayGain"] as? String, r.stderr)
        }
        #expect(try mode([]).0 == "album", "the file")
        #expect(try mode([], ["MUSIT_REPLAYGAIN": "track"]).0 == "track", "the environment over the file")
        #expect(try mode(["--replaygain", "off"], ["MUSIT_REPLAYGAIN": "track"]).0 == "off", "the flag over both")
        let bad = try mode([], ["MUSIT_REPLAYGAIN": "loud"])
        #expect(bad.0 == "off" && bad.1.contains("MUSIT_REPLAYGAIN is off, track or album, not loud"), "\(bad)")
        let refused = try Binary.run(["--replaygain", "loud", "--print-config"], environment: ["XDG_CONFIG_HOME": dir])
        #expect(refused.status != 0 && refused.stderr.contains("--replaygain is off, track or album, not loud"), "\(refused.stderr)")
        // Played headless: the track gain halves a FLAC tagged -6.02 dB (its level on stdout is not
        // shown, so the capture device is read).
        let capture = NSTemporaryDirectory() + "musit-rg-\(UUID().uuidString).raw"
        defer { try? FileManager.default.removeItem(atPath: capture) }
        let r = try Binary.run(["--headless", "--replaygain", "track", "--device", "testfile:FILE=\(capture)", Fixtures.path("gain.flac")],
                               environment: ["ALSA_CONFIG_PATH": Fixtures.alsaConfig, "XDG_CONFIG_HOME": dir])
        #expect(r.status == 0, "\(r.stderr)")
        let pcm = try PCM(raw: capture)
        #expect(pcm.samples.max() == 8213, "half of the tone's 16424: \(pcm.samples.max() ?? 0)")
    }

    @Test("SIGTERM stops a headless run at once and cleanly")
    func sigterm() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Binary.path)
        p.arguments = ["--headless", "--device", "testnull", "--pace", Fixtures.path("sine440.mp3")]
        p.environment = ["ALSA_CONFIG_PATH": Fixtures.alsaConfig, "HOME": NSTemporaryDirectory()]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        Thread.sleep(forTimeInterval: 0.5)
        let start = Date()
        p.terminate()
        p.waitUntilExit()
        #expect(Date().timeIntervalSince(start) < 1, "exits promptly")
        #expect(p.terminationReason == .exit && p.terminationStatus == 0)
    }
}

@Suite("Settings")
struct SettingsTests {
    @Test("the look section: each entry checked alone; a bad one is named and keeps its default")
    func look() throws {
        let json = #"{"look": {"theme": "sepia", "cover": false, "visualizer": "yes", "sparkles": true}}"#
        let settings = try JSONDecoder().decode(MusitSettings.self, from: Data(json.utf8))
        let (look, problems) = LookSettings.resolve(settings.look, themes: ThemeName.allCases.map(\.rawValue))
        #expect(look.theme == "album" && look.cover == false && look.visualizer == false)
        #expect(problems.count == 3, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("look.theme: \"sepia\" is not a theme") })
        #expect(problems.contains { $0.hasPrefix("look.visualizer: \"yes\" is not true or false") })
        #expect(problems.contains { $0.hasPrefix("look.sparkles: no such setting") })
        let good = LookSettings.resolve(["theme": .string("ember"), "visualizer": .bool(true)], themes: ["album", "ember"])
        #expect(good.0.theme == "ember" && good.0.visualizer && good.0.cover && good.problems.isEmpty)
    }

    @Test("precedence and XDG paths")
    func precedence() {
        let s = MusitSettings(audio: .init(device: "fromfile"))
        #expect(s.audioDevice(flag: "flag", environment: ["MUSIT_ALSA_DEVICE": "env"]) == "flag")
        #expect(s.audioDevice(flag: nil, environment: ["MUSIT_ALSA_DEVICE": "env"]) == "env")
        #expect(s.audioDevice(flag: nil, environment: [:]) == "fromfile")
        #expect(MusitSettings().audioDevice(flag: nil, environment: [:]) == "default")
        let xdg = XDGPaths(environment: ["HOME": "/home/u", "XDG_DATA_HOME": "relative/ignored"])
        #expect(xdg.configHome == "/home/u/.config")
        #expect(xdg.dataHome == "/home/u/.local/share")
    }

    @Test("a missing default file is fine, a missing named file is an error")
    func missing() throws {
        let none = try MusitSettings.load(path: nil, environment: ["XDG_CONFIG_HOME": "/nonexistent"])
        #expect(none == MusitSettings())
        #expect(throws: MusitSettings.LoadError.self) {
            try MusitSettings.load(path: "/nonexistent/config.json", environment: [:])
        }
    }
}

@Suite("musit-tui --serve")
struct ServeTests {
    /// A port that was free a moment ago.
    static func freePort() -> Int { RawHTTP.freePort() }

    /// `musit-tui --serve` started on `port` with its data in `data` (plus `arguments`);
    /// stdout is dropped, and stderr too unless a pipe is given.
    static func launch(port: Int, data: String, _ arguments: [String] = [], stderr: Pipe? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Binary.path)
        p.arguments = ["--serve", "--port", "\(port)", "--data", data] + arguments
        p.environment = ["HOME": NSTemporaryDirectory(), "MUSIT_BCRYPT_COST": "4"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = stderr ?? FileHandle.nullDevice
        try p.run()
        return p
    }

    /// GET over a plain TCP socket, so the test needs no HTTP client library.
    static func get(port: Int, path: String) -> String? {
        request(port: port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    }

    static func post(port: Int, path: String, json: String, token: String? = nil) -> String? {
        let auth = token.map { "Authorization: Bearer \($0)\r\n" } ?? ""
        return request(port: port, "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\(auth)" +
                       "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)")
    }

    static func request(port: Int, _ text: String) -> String? {
        RawHTTP.request(port: port, text)
    }

    @Test("serves /healthz on the given port and stops cleanly on SIGTERM")
    func serveAndStop() throws {
        let port = Self.freePort()
        let data = NSTemporaryDirectory() + "musit-serve-\(UUID().uuidString)"
        let p = try Self.launch(port: port, data: data)
        var answer: String?
        let deadline = Date().addingTimeInterval(10)
        while answer == nil && Date() < deadline {
            answer = Self.get(port: port, path: "/healthz")
            if answer == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(answer?.hasPrefix("HTTP/1.1 200") == true, "\(answer ?? "no answer")")
        #expect(answer?.contains(#""status":"ok""#) == true)
        #expect(FileManager.default.fileExists(atPath: data + "/musit.sqlite"))
        let start = Date()
        p.terminate()
        p.waitUntilExit()
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(p.terminationStatus == 0)
    }

    @Test("SIGTERM answers a held long-poll before the server stops; logs are JSON lines with request ids")
    func gracefulWithHeldPoll() throws {
        let port = Self.freePort()
        let data = NSTemporaryDirectory() + "musit-serve-\(UUID().uuidString)"
        let err = Pipe()
        let p = try Self.launch(port: port, data: data, ["--log-format", "json"], stderr: err)
        var registered: String?
        let deadline = Date().addingTimeInterval(10)
        while registered == nil && Date() < deadline {
            registered = Self.post(port: port, path: "/api/v1/auth/register", json: #"{"username":"alice","password":"correct horse"}"#)
            if registered == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        let answer = try #require(registered)
        #expect(answer.hasPrefix("HTTP/1.1 201"), "\(answer)")
        let token = try #require(answer.range(of: #""accessToken":"([^"]+)""#, options: .regularExpression)
            .map { String(answer[$0].dropFirst(15).dropLast(1)) })
        let held = Locked<String?>(nil)
        let pollDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let r = Self.request(port: port, "GET /api/v1/events?cursor=0&timeout=30 HTTP/1.1\r\nHost: x\r\n" +
                                 "Authorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
            held.withLock { $0 = r }
            pollDone.signal()
        }
        Thread.sleep(forTimeInterval: 0.5)
        let start = Date()
        p.terminate()
        #expect(pollDone.wait(timeout: .now() + 5) == .success, "the held poll was answered")
        p.waitUntilExit()
        let took = Date().timeIntervalSince(start)
        #expect(took < 5, "stopped in \(took) s")
        #expect(p.terminationStatus == 0)
        #expect(held.withLock { $0 }?.hasPrefix("HTTP/1.1 200") == true, "\(held.withLock { $0 } ?? "nil")")
        let logs = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let lines = logs.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "not JSON: \(line)")
        }
        #expect(logs.contains("request.id"), "request ids in the logs")
    }

    @Test("--serve refuses files and bad ports")
    func badServeArguments() throws {
        #expect(try Binary.run(["--serve", "x.mp3"]).status == 64)
        let r = try Binary.run(["--serve", "--port", "70000"])
        #expect(r.status == 64)
        #expect(r.stderr.contains("--port must be between 0 and 65535"))
    }
}
