import ArgumentParser
import Foundation
import MusitAudio
import MusitCodecs
import MusitConfig
import MusitMPRIS
import MusitRender
import MusitViewModel
import MusitTerminal
import MusitApp
import MusitClient
import Synchronization

@main
struct MusitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "musit-tui",
        abstract: "A keyboard-driven terminal music player.",
        discussion: """
            Plays MP3 files over ALSA. Keys: space pause, ←/→ seek 5 s, +/- volume, \
            n/p next/previous, r repeat, s shuffle, q quit.
            The ALSA device comes from --device, then MUSIT_ALSA_DEVICE, then the config file \
            ($XDG_CONFIG_HOME/musit/config.json: {"audio": {"device": "..."}}), then "default".
            """,
        version: MusitVersion.string)

    @Flag(help: "Play with no UI, one line per track on stdout, and exit at the end.")
    var headless = false

    @Flag(help: "Run the backend server instead of the player.")
    var serve = false

    @Option(help: ArgumentHelp("GET this http:// URL and exit 0 when it answers 200 within 3 s (a container's health check).",
                               valueName: "url"))
    var probe: String?

    @Option(help: ArgumentHelp("--serve: address to listen on (default 127.0.0.1, or MUSIT_HOST).", valueName: "address"))
    var host: String?

    @Option(help: ArgumentHelp("--serve: port (default 8080, or MUSIT_PORT).", valueName: "port"))
    var port: Int?

    @Option(help: ArgumentHelp("--serve: data directory (default $XDG_DATA_HOME/musit, or MUSIT_DATA).", valueName: "dir"))
    var data: String?

    @Option(help: ArgumentHelp("--serve: this username becomes admin when it registers (or MUSIT_ADMIN).", valueName: "name"))
    var admin: String?

    @Option(help: ArgumentHelp("--serve: log as text or json (or MUSIT_LOG_FORMAT).", valueName: "format"))
    var logFormat: String?

    @Option(help: ArgumentHelp("--serve: postgres://user:password@host:port/db for PostgreSQL (or MUSIT_DATABASE_URL); default SQLite in the data directory.",
                               valueName: "url"))
    var database: String?

    @Option(help: ArgumentHelp("--serve: song files (or MUSIT_MEDIA); instances over one database share it. Default: media in the data directory.",
                               valueName: "dir"))
    var media: String?

    @Option(help: ArgumentHelp("--serve: what this process runs: all (default), gateway, or a service: accounts, library, social, stats (or MUSIT_ROLE).",
                               valueName: "role"))
    var role: String?

    @Option(help: ArgumentHelp("--serve --role <service>: the service's gRPC port (or MUSIT_GRPC_PORT).", valueName: "port"))
    var grpcPort: Int?

    @Option(help: ArgumentHelp("--serve --role gateway: the Accounts service, host:port (or MUSIT_ACCOUNTS_ADDR).", valueName: "host:port"))
    var accounts: String?

    @Option(help: ArgumentHelp("--serve --role gateway: the Library service, host:port (or MUSIT_LIBRARY_ADDR).", valueName: "host:port"))
    var library: String?

    @Option(help: ArgumentHelp("--serve --role gateway: the Social service, host:port (or MUSIT_SOCIAL_ADDR).", valueName: "host:port"))
    var social: String?

    @Option(help: ArgumentHelp("--serve --role gateway: the Stats service, host:port (or MUSIT_STATS_ADDR).", valueName: "host:port"))
    var stats: String?

    @Option(help: ArgumentHelp("ALSA device to play on.", valueName: "name"))
    var device: String?

    @Option(help: ArgumentHelp("Settings file (JSON); default $XDG_CONFIG_HOME/musit/config.json.", valueName: "path"))
    var config: String?

    @Option(help: ArgumentHelp("Initial volume, 0–100.", valueName: "percent"))
    var volume: Int?

    @Option(name: .customLong("replaygain"),
            help: ArgumentHelp("Loudness from the tags' ReplayGain: off, track or album (or MUSIT_REPLAYGAIN, or \"audio\": {\"replayGain\"}).",
                               valueName: "mode"))
    var replayGain: String?

    @Flag(help: "Print the settings in effect (the file's, then the defaults), keys included, as JSON, and exit.")
    var printConfig = false

    @Flag(help: "Pace output by the clock, for ALSA devices that do not (such as type null).")
    var pace = false

    @Option(help: ArgumentHelp("Backend to sign in to (or MUSIT_SERVER, or \"server\": {\"url\"} in the config file); default: an embedded one.",
                               valueName: "url"))
    var server: String?

    @Flag(help: "No backend: local files only, no friends or chat.")
    var offline = false

    @Flag(name: .customLong("no-mpris"), help: "Do not offer the player on the session bus (MPRIS: media keys, playerctl).")
    var noMPRIS = false

    @Argument(help: "Audio files (MP3, FLAC, Ogg Vorbis, Opus) and folders to play, in order (folders are scanned for them).")
    var files: [String] = []

    func validate() throws {
        if let volume, !(0...100).contains(volume) {
            throw ValidationError("--volume must be between 0 and 100, not \(volume).")
        }
        if let replayGain, ReplayGainMode(rawValue: replayGain) == nil {
            throw ValidationError("--replaygain is off, track or album, not \(replayGain).")
        }
        if serve && (headless || !files.isEmpty) {
            throw ValidationError("--serve takes no files and no --headless.")
        }
        if let port, !(0...65535).contains(port) {
            throw ValidationError("--port must be between 0 and 65535, not \(port).")
        }
        if let grpcPort, !(0...65535).contains(grpcPort) {
            throw ValidationError("--grpc-port must be between 0 and 65535, not \(grpcPort).")
        }
        if !serve && (role != nil || grpcPort != nil || [accounts, library, social, stats].contains(where: { $0 != nil })) {
            throw ValidationError("--role, --grpc-port, --accounts, --library, --social and --stats are for --serve.")
        }
        if headless && files.isEmpty {
            throw ValidationError("--headless needs at least one file to play.")
        }
        if let server, URL(string: server)?.scheme.map({ ["http", "https"].contains($0) }) != true {
            throw ValidationError("--server takes an http:// or https:// URL, not \(server).")
        }
        if serve && (server != nil || offline) {
            throw ValidationError("--serve is the backend; --server and --offline are for the player.")
        }
    }

    func run() throws {
        if let probe {
            throw ExitCode(Probe.check(probe) ? 0 : 1)
        }
        let environment = ProcessInfo.processInfo.environment
        if serve {
            try ServeCommand(host: host, port: port, data: data, admin: admin, config: config, logFormat: logFormat, database: database, media: media,
                             role: role, grpcPort: grpcPort,
                             addresses: ServeCommand.Addresses(accounts: accounts, library: library, social: social, stats: stats))
                .run(environment: environment)
            return
        }
        // A broken settings file, or a bad entry in it, is said once and its part falls back
        // to the defaults: the player still starts.
        var problems: [String] = []
        var settings = MusitSettings()
        do {
            settings = try MusitSettings.load(path: config, environment: environment)
        } catch {
            problems.append("\(error); using the defaults")
        }
        problems += KeyConfig.apply(settings.keys ?? [:])
        let (look, lookProblems) = LookSettings.resolve(settings.look, themes: ThemeName.allCases.map(\.rawValue))
        problems += lookProblems
        let gain = settings.replayGain(flag: replayGain, environment: environment)
        if let problem = gain.problem { problems.append(problem) }
        if printConfig {
            for p in problems { Output.error("musit-tui: \(p)") }
            Output.line(SettingsReport.json(settings, look: look, device: settings.audioDevice(flag: device, environment: environment),
                                            volume: volume ?? settings.audio?.volume ?? 100, replayGain: gain.mode,
                                            server: server ?? environment["MUSIT_SERVER"] ?? settings.server?.url))
            return
        }
        for p in problems { Output.error("musit-tui: \(p)") }
        let notice = problems.first.map { problems.count > 1 ? "\($0) (and \(problems.count - 1) more)" : $0 }
        SignalWatcher.blockTerminationSignals()
        CursesTerminal.routeResizesToInput()
        var playerConfig = PlayerConfiguration(device: settings.audioDevice(flag: device, environment: environment))
        playerConfig.paceDevice = pace
        playerConfig.initialVolume = volume ?? settings.audio?.volume ?? 100
        playerConfig.replayGain = ReplayGainMode(rawValue: gain.mode) ?? .off
        var paths = files
        if paths.isEmpty { paths = DemoMusic.paths() }

        if headless {
            let failed = HeadlessRun(configuration: playerConfig, tracks: paths.map(Track.init)) { player in
                startMPRIS(player, environment: environment, say: { Output.error("musit-tui: MPRIS: \($0)") })
            }.run()
            if failed > 0 { throw ExitCode(1) }
        } else if offline {
            let player = Player(configuration: playerConfig)
            let mpris = startMPRIS(player, environment: environment, say: { _ in })
            TerminalApp(player: player, paths: paths, notice: notice, look: look).run()
            mpris?.stop()
            player.shutdown()
        } else {
            try runSynced(playerConfig, settings: settings, look: look, notice: notice, environment: environment)
        }
    }

    /// The player on the session bus (MPRIS), unless `--no-mpris`. Quit from the bus stops
    /// Musit as SIGTERM does (the terminal restored). No bus is not worth a line; any other
    /// failure is said once through `say` (the TUI says nothing over its screen).
    private func startMPRIS(_ player: Player, environment: [String: String], say: (String) -> Void) -> MPRISService? {
        guard !noMPRIS else { return nil }
        let covers = XDGPaths(environment: environment).cacheHome + "/musit/mpris"
        return MPRISService.start(player: player, coverDirectory: covers, quit: { kill(getpid(), SIGTERM) }) { why in
            if why != "no session bus" { say(why) }
        }
    }

    /// The player with a backend: the one named, else an embedded one with a local user.
    /// Files on the command line make the queue; without them it is the server's library.
    private func runSynced(_ playerConfig: PlayerConfiguration, settings: MusitSettings, look: LookSettings, notice: String?,
                           environment: [String: String]) throws {
        let xdg = XDGPaths(environment: environment)
        let remote = server ?? environment["MUSIT_SERVER"].flatMap { $0.isEmpty ? nil : $0 } ?? settings.server?.url
        let base: String, key: String, name: String
        var autoSignIn: (@Sendable (APIClient) async throws(ClientError) -> Void)?
        if let remote {
            (base, key, name) = (remote, remote, remote)
        } else {
            let data = xdg.dataHome + "/musit/embedded"
            do {
                base = try EmbeddedBackend.start(dataDirectory: data, environment: environment)
            } catch {
                Output.error("musit-tui: \(error); use --offline to play local files only")
                throw ExitCode(1)
            }
            (key, name) = ("embedded:" + data, "embedded (\(base))")
            let (user, isNew) = LocalUser.load(dataDirectory: data, environment: environment)
            let demo = files.isEmpty ? DemoMusic.paths() : []
            autoSignIn = { client throws(ClientError) in try await user.signIn(client, isNew: isNew, demo: demo) }
        }
        let inbox = Inbox()
        let client = APIClient(baseURL: base, serverKey: key, sessionFile: SessionFile(path: xdg.configHome + "/musit/session.json"))
        let opener = StreamOpener(client: client)
        var config = playerConfig
        config.openSource = opener.openSource
        let player = Player(configuration: config)
        let mpris = startMPRIS(player, environment: environment, say: { _ in })
        defer { mpris?.stop() }
        let session = Session(client: client, opener: opener, dataDirectory: xdg.dataHome + "/musit/client", player: player,
                              autoSignIn: autoSignIn, libraryIsQueue: files.isEmpty, post: inbox.post)
        TerminalApp(player: player, paths: files, session: session, serverName: name, inbox: inbox, notice: notice,
                    look: look).run()
        player.shutdown()
    }
}

/// `--print-config`: every setting the player reads, as it is in effect.
enum SettingsReport {
    static func json(_ settings: MusitSettings, look: LookSettings, device: String, volume: Int, replayGain: String,
                     server: String?) -> String {
        let report: [String: Any] = [
            "audio": ["device": device, "volume": volume, "replayGain": replayGain],
            "look": ["theme": look.theme, "cover": look.cover, "visualizer": look.visualizer, "kitty": look.kitty],
            "server": ["url": server ?? "(embedded)"],
            "keys": KeyConfig.effective,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

enum MusitVersion {
    static let string = "0.1.0"
}

/// The demo tracks shipped in Resources/demo, found beside the executable's package.
enum DemoMusic {
    static func paths() -> [String] {
        var candidates: [String] = []
        if let dir = ProcessInfo.processInfo.environment["MUSIT_DEMO_DIR"] { candidates.append(dir) }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(exe.deletingLastPathComponent().appendingPathComponent("../../../Resources/demo").standardized.path)
        candidates.append(FileManager.default.currentDirectoryPath + "/Resources/demo")
        for dir in candidates {
            if let names = try? FileManager.default.contentsOfDirectory(atPath: dir) {
                let mp3s = names.filter { $0.lowercased().hasSuffix(".mp3") }.sorted()
                if !mp3s.isEmpty { return mp3s.map { dir + "/" + $0 } }
            }
        }
        return []
    }
}

/// `--headless`: plays the queue to the device with one line per track on stdout, errors on stderr.
struct HeadlessRun {
    let configuration: PlayerConfiguration
    let tracks: [Track]
    /// What else serves the player while it plays (MPRIS); kept until the run ends.
    var attach: (Player) -> AnyObject? = { _ in nil }

    /// Returns how many tracks failed.
    func run() -> Int {
        let player = Player(configuration: configuration)
        let device = configuration.device
        let attached = attach(player)
        defer { withExtendedLifetime(attached) {} }
        let done = DispatchSemaphore(value: 0)
        let failures = Atomic<Int>(0)
        let total = tracks.count
        player.observe { event in
            switch event {
            case .trackStarted(let index, let track, let meta):
                let length = meta.duration.map { " (\(Clock.format($0)))" } ?? ""
                Output.line("[\(index + 1)/\(total)] \(meta.displayTitle(location: track.location))\(length) — \(track.location)")
                if let damage = meta.damage {
                    Output.error("musit-tui: warning: \(track.location): \(damage); playing what is there")
                }
            case .trackFailed(_, let error):
                failures.add(1, ordering: .relaxed)
                Output.error("musit-tui: error: \(error)")
            case .outputChanged(let name, let isNull):
                if isNull {
                    Output.error("musit-tui: \(name) (cannot open ALSA device \"\(device)\"); playing on the null output in real time")
                }
            case .outputReopened(let format, let ms):
                // Said once per change: the only gap a queue of mixed formats has.
                Output.error(String(format: "musit-tui: output reopened for %@ in %.1f ms", format.description, ms))
            case .queueFinished:
                done.signal()
            default:
                break
            }
        }
        let signals = SignalWatcher { done.signal() }
        defer { _ = signals }
        player.send(.load(tracks, startAt: 0, autoplay: true))
        done.wait()
        player.shutdown()
        return failures.load(ordering: .relaxed)
    }
}

enum Output {
    static func line(_ s: String) {
        FileHandle.standardOutput.write(Data((s + "\n").utf8))
    }

    static func error(_ s: String) {
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }
}
