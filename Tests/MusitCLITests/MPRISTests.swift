import Foundation
import MusitTestSupport
import Testing

/// A private session bus (dbus-daemon), with playerctl and dbus-monitor as the desktop's side.
final class SessionBus: @unchecked Sendable {
    let directory = NSTemporaryDirectory() + "musit-bus-\(UUID().uuidString.prefix(8))"
    let address: String
    private let daemon = Process()
    private var monitor: Process?
    private var monitorFile: String { directory + "/monitor.txt" }

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        address = "unix:path=\(directory)/bus"
        // A child of the test, not forked off: a forked daemon keeps the pipes it inherited,
        // and it ends with the test.
        daemon.executableURL = URL(fileURLWithPath: "/usr/bin/dbus-daemon")
        daemon.arguments = ["--session", "--nofork", "--nopidfile", "--address=\(address)"]
        daemon.standardOutput = FileHandle.nullDevice
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        let socket = directory + "/bus"
        let deadline = Date().addingTimeInterval(5)
        while !FileManager.default.fileExists(atPath: socket) && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        #expect(FileManager.default.fileExists(atPath: socket), "dbus-daemon listens")
    }

    /// Ends the daemon and the monitor and waits for them. Called by each test's `defer`:
    /// the bus must not outlive its test even when something still holds the object.
    func close() {
        // SIGKILL: the children inherit the signal mask of the thread that spawned them, and
        // the test runner's threads block SIGTERM, so terminate() would go unheard.
        for p in [monitor, daemon].compactMap({ $0 }) where p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { close() }

    var environment: [String: String] { ["DBUS_SESSION_BUS_ADDRESS": address] }

    /// playerctl on this bus; its stdout, trimmed.
    @discardableResult
    func ctl(_ args: String...) throws -> String {
        let r = try Binary.run(args, environment: environment, executable: "/usr/bin/playerctl")
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Records every signal from the player's object path from now on.
    func startMonitor() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/dbus-monitor")
        p.arguments = ["--address", address, "type='signal',path='/org/mpris/MediaPlayer2'"]
        FileManager.default.createFile(atPath: monitorFile, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: monitorFile))
        p.standardError = FileHandle.nullDevice
        try p.run()
        monitor = p
        Thread.sleep(forTimeInterval: 0.3)
    }

    /// What the monitor has seen so far.
    var signals: String { (try? String(contentsOfFile: monitorFile, encoding: .utf8)) ?? "" }

    func count(_ needle: String, in text: String? = nil) -> Int { (text ?? signals).components(separatedBy: needle).count - 1 }

    func waitFor(_ timeout: Double = 5, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return try condition()
    }
}

/// A headless musit-tui running in the background.
final class Background: @unchecked Sendable {
    let process = Process()
    let stderrFile = NSTemporaryDirectory() + "musit-bg-\(UUID().uuidString.prefix(8)).err"

    init(_ args: [String], environment: [String: String]) throws {
        process.executableURL = URL(fileURLWithPath: Binary.path)
        process.arguments = args
        process.environment = ["ALSA_CONFIG_PATH": Fixtures.alsaConfig, "HOME": NSTemporaryDirectory(),
                               "XDG_CACHE_HOME": NSTemporaryDirectory() + "musit-cache-\(UUID().uuidString.prefix(8))"]
            .merging(environment) { _, b in b }
        process.standardOutput = FileHandle.nullDevice
        FileManager.default.createFile(atPath: stderrFile, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrFile))
        try process.run()
    }

    var stderr: String { (try? String(contentsOfFile: stderrFile, encoding: .utf8)) ?? "" }

    deinit {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(atPath: stderrFile)
    }
}

@Suite("MPRIS on the session bus: playerctl and dbus-monitor drive and watch the player", .serialized)
struct MPRISTests {
    static let queue = [Fixtures.path("long20.mp3"), Fixtures.path("tagged.flac")]

    @Test("status, exact length and tags; pause and play each announced once; no Position or Seeked while playing; one Seeked per seek")
    func headlessOverTheBus() throws {
        let bus = try SessionBus()
        defer { bus.close() }
        try bus.startMonitor()
        let musit = try Background(["--headless", "--pace", "--device", "testnull"] + Self.queue, environment: bus.environment)
        #expect(bus.waitFor { (try? bus.ctl("-p", "musit", "status")) == "Playing" }, "playing on the bus: \(musit.stderr)")
        #expect(try bus.ctl("-l").split(separator: "\n").contains("musit"))
        #expect(try bus.ctl("-p", "musit", "metadata", "title") == "Long Sweep")
        #expect(try bus.ctl("-p", "musit", "metadata", "artist") == "Fixture")
        // The gapless length in microseconds: 20 s of frames at 44.1 kHz.
        #expect(try bus.ctl("-p", "musit", "metadata", "mpris:length") == "20000000")
        #expect(try bus.ctl("-p", "musit", "metadata", "mpris:trackid").trimmingCharacters(in: CharacterSet(charactersIn: "'")) == "/org/musit/Track/0")
        #expect(try bus.ctl("-p", "musit", "metadata", "xesam:url") == URL(fileURLWithPath: Self.queue[0]).absoluteString)

        // Two seconds of play: the position moves, and nothing is announced for it.
        let before = bus.signals
        let p1 = Double(try bus.ctl("-p", "musit", "position")) ?? -1
        Thread.sleep(forTimeInterval: 2)
        let p2 = Double(try bus.ctl("-p", "musit", "position")) ?? -1
        #expect(p2 - p1 > 1.5 && p2 - p1 < 2.5, "position read when asked: \(p1) then \(p2)")
        let quiet = String(bus.signals.dropFirst(before.count))
        #expect(bus.count("Seeked", in: quiet) == 0 && bus.count("\"Position\"", in: quiet) == 0, "\(quiet)")

        // One pause, one PropertiesChanged for PlaybackStatus; the same for play.
        let statusBefore = bus.count("string \"PlaybackStatus\"")
        try bus.ctl("-p", "musit", "pause")
        #expect(bus.waitFor { (try? bus.ctl("-p", "musit", "status")) == "Paused" })
        try bus.ctl("-p", "musit", "play")
        #expect(bus.waitFor { (try? bus.ctl("-p", "musit", "status")) == "Playing" })
        Thread.sleep(forTimeInterval: 0.3)
        #expect(bus.count("string \"PlaybackStatus\"") - statusBefore == 2, "one change each: \(bus.signals)")

        // A seek: one Seeked, with where it landed.
        let seekedBefore = bus.count("member=Seeked")
        try bus.ctl("-p", "musit", "position", "12")
        #expect(bus.waitFor { bus.count("member=Seeked") == seekedBefore + 1 }, "Seeked emitted")
        let position = Double(try bus.ctl("-p", "musit", "position")) ?? -1
        #expect(position >= 12 && position < 13, "\(position)")
        Thread.sleep(forTimeInterval: 0.3)
        #expect(bus.count("member=Seeked") == seekedBefore + 1, "and only one")

        // Volume, loop and shuffle are served and read back.
        try bus.ctl("-p", "musit", "volume", "0.5")
        #expect(bus.waitFor { (try? bus.ctl("-p", "musit", "volume")).flatMap(Double.init) == 0.5 })
        try bus.ctl("-p", "musit", "loop", "Playlist")
        #expect(bus.waitFor { (try? bus.ctl("-p", "musit", "loop")) == "Playlist" })
        try bus.ctl("-p", "musit", "shuffle", "On")
        #expect(bus.waitFor { (try? bus.ctl("-p", "musit", "shuffle")) == "On" })
        try bus.ctl("-p", "musit", "shuffle", "Off")
        // Rate 1.0 is accepted (it was refused when the setter left the value unread); a NaN
        // volume is taken as 0, not a crash.
        func set(_ property: String, _ value: String) throws -> Int32 {
            try Binary.run(["--address=\(bus.address)", "set-property", "org.mpris.MediaPlayer2.musit", "/org/mpris/MediaPlayer2",
                            "org.mpris.MediaPlayer2.Player", property, "d", value], executable: "/usr/bin/busctl").status
        }
        #expect(try set("Rate", "1.0") == 0)
        #expect(try set("Volume", "nan") == 0)
        #expect(bus.waitFor { (try? bus.ctl("-p", "musit", "volume")).flatMap(Double.init) == 0 }, "NaN is 0")
        #expect(musit.process.isRunning, "still playing: \(musit.stderr)")

        // Next: the FLAC, its Vorbis comments and its cover as a file.
        try bus.ctl("-p", "musit", "next")
        #expect(bus.waitFor { (try? bus.ctl("-p", "musit", "metadata", "title")) == "Fläc Title – 東京" })
        #expect(try bus.ctl("-p", "musit", "metadata", "mpris:length") == "1000000")
        #expect(bus.waitFor {
            let art = (try? bus.ctl("-p", "musit", "metadata", "mpris:artUrl")) ?? ""
            guard let url = URL(string: art), url.isFileURL, let data = FileManager.default.contents(atPath: url.path) else { return false }
            return data == FileManager.default.contents(atPath: Fixtures.path("cover.png"))
        }, "the cover, as a file:// URL with the picture's bytes")

        // Quit stops it as SIGTERM does.
        _ = try Binary.run(["--dest=org.mpris.MediaPlayer2.musit", "--type=method_call", "/org/mpris/MediaPlayer2",
                            "org.mpris.MediaPlayer2.Quit"], environment: bus.environment, executable: "/usr/bin/dbus-send")
        #expect(bus.waitFor { !musit.process.isRunning }, "Quit ends the player")
    }

    @Test("a second player takes an instance name; --no-mpris stays off the bus; no bus is not worth a line")
    func namesAndNoBus() throws {
        let bus = try SessionBus()
        defer { bus.close() }
        let first = try Background(["--headless", "--pace", "--device", "testnull", Self.queue[0]], environment: bus.environment)
        #expect(bus.waitFor { (try? bus.ctl("-l")) == "musit" }, "\(first.stderr)")
        let second = try Background(["--headless", "--pace", "--device", "testnull", Self.queue[0]], environment: bus.environment)
        let instance = "musit.instance\(second.process.processIdentifier)"
        #expect(bus.waitFor { (try? bus.ctl("-l"))?.split(separator: "\n").contains(Substring(instance)) == true },
                "\((try? bus.ctl("-l")) ?? "")")
        let off = try Background(["--headless", "--pace", "--no-mpris", "--device", "testnull", Self.queue[0]], environment: bus.environment)
        Thread.sleep(forTimeInterval: 1)
        #expect(try bus.ctl("-l").split(separator: "\n").count == 2, "--no-mpris: not on the bus")
        #expect(off.process.isRunning)
        // No bus at all: it plays, and says nothing about it.
        let r = try Binary.run(["--headless", "--device", "testnull", Fixtures.path("sine440.mp3")],
                               environment: ["ALSA_CONFIG_PATH": Fixtures.alsaConfig, "DBUS_SESSION_BUS_ADDRESS": "",
                                             "XDG_RUNTIME_DIR": NSTemporaryDirectory()])
        #expect(r.status == 0 && !r.stderr.contains("MPRIS"), "\(r.stderr)")
    }

    @Test("in the TUI: playerctl pauses, plays, skips and sets the volume, and the screen shows it")
    func drivesTheTUI() throws {
        let bus = try SessionBus()
        defer { bus.close() }
        let tmux = try TmuxSession(command: [Binary.path, "--offline", "--device", "testnull", "--pace"] + Self.queue,
                                   width: 100, height: 30,
                                   environment: ["ALSA_CONFIG_PATH": Fixtures.alsaConfig,
                                                 "XDG_CONFIG_HOME": NSTemporaryDirectory() + "musit-xdg-\(UUID().uuidString)"]
                                       .merging(bus.environment) { _, b in b })
        defer { tmux.kill() }
        var r = try tmux.waitFor { $0.contains("▶ playing") && $0.contains("Long Sweep") }
        #expect(r.ok, "\(r.screen)")
        #expect(bus.waitFor { (try? bus.ctl("-l")) == "musit" }, "on the bus")
        try bus.ctl("-p", "musit", "pause")
        r = try tmux.waitFor(text: "⏸ paused")
        #expect(r.ok, "paused from the bus: \(r.screen)")
        try bus.ctl("-p", "musit", "play")
        r = try tmux.waitFor(text: "▶ playing")
        #expect(r.ok, "playing again: \(r.screen)")
        try bus.ctl("-p", "musit", "volume", "0.4")
        r = try tmux.waitFor(text: "vol 40%")
        #expect(r.ok, "the volume from the bus: \(r.screen)")
        try bus.ctl("-p", "musit", "next")
        r = try tmux.waitFor { $0.contains("Fläc Title") && $0.contains("▶ playing") }
        #expect(r.ok, "the next track: \(r.screen)")
        // The screen and the bus are told apart: the title reaches the bus within a moment.
        #expect(bus.waitFor { (try? bus.ctl("-p", "musit", "metadata", "title")) == "Fläc Title – 東京" },
                "\((try? bus.ctl("-p", "musit", "metadata", "title")) ?? "no title")")
    }
}
