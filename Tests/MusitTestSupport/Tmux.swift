import Foundation

/// Drives a real program in a detached tmux session: keys in, screen text out.
public final class TmuxSession: @unchecked Sendable {
    public let socket: String
    public let name = "musit"

    /// Starts `command` in a `width`×`height` window with a UTF-8 locale and a 256-colour TERM.
    public init(command: [String], width: Int = 100, height: Int = 30, environment: [String: String] = [:],
                after: String = "") throws {
        socket = "musit-test-\(getpid())-\(UUID().uuidString.prefix(8))"
        var args = ["new-session", "-d", "-s", name, "-x", "\(width)", "-y", "\(height)",
                    "-e", "TERM=tmux-256color", "-e", "LANG=C.UTF-8", "-e", "LC_ALL=C.UTF-8"]
        var environment = environment
        // A private data directory (the embedded backend's database) unless the test shares one.
        if environment["XDG_DATA_HOME"] == nil { environment["XDG_DATA_HOME"] = NSTemporaryDirectory() + "musit-data-\(UUID().uuidString)" }
        // The tags of local files are cached here: a session's own, not the runner's home.
        if environment["XDG_CACHE_HOME"] == nil { environment["XDG_CACHE_HOME"] = NSTemporaryDirectory() + "musit-cache-\(UUID().uuidString)" }
        if environment["MUSIT_BCRYPT_COST"] == nil { environment["MUSIT_BCRYPT_COST"] = "4" }
        for (k, v) in environment { args += ["-e", "\(k)=\(v)"] }
        // Keep the pane after the program exits so its last screen can be read.
        args.append(command.map(Self.quote).joined(separator: " ") + "; echo \"[exited $?]\"; \(after) sleep 30")
        try tmux(args)
    }

    static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// Runs one tmux command. Spawned with posix_spawn and reaped with waitpid:
    /// Foundation's Process waits for descriptors that the daemonized tmux server inherits.
    @discardableResult
    public func tmux(_ args: [String]) throws -> String {
        let file = NSTemporaryDirectory() + "\(socket)-\(UUID().uuidString.prefix(8)).out"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let argv = ["/usr/bin/tmux", "-L", socket] + args
        var cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // The tmux server lives on: it must not keep other descriptors of this process
        // (such as Foundation's pipes to a concurrently running child) open.
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.compactMap { Int32($0) } ?? []
        for fd in open where fd > 2 && fcntl(fd, F_GETFD) >= 0 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
        // Test runner threads block signals; the tmux server must not inherit that mask.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let r = posix_spawn(&pid, "/usr/bin/tmux", &actions, &attr, &cargs, environ)
        guard r == 0 else { throw CocoaError(.executableLoad) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
    }

    public func send(_ keys: String...) throws { try tmux(["send-keys", "-t", name] + keys) }

    public func sendRaw(hex bytes: [UInt8]) throws {
        try tmux(["send-keys", "-t", name, "-H"] + bytes.map { String(format: "%02x", $0) })
    }

    public func screen() throws -> String { try tmux(["capture-pane", "-p", "-t", name]) }

    public func resize(width: Int, height: Int) throws {
        try tmux(["resize-window", "-t", name, "-x", "\(width)", "-y", "\(height)"])
    }

    public func paneValue(_ format: String) throws -> String {
        try tmux(["display-message", "-p", "-t", name, format]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Waits until the screen satisfies `predicate`; returns the last screen either way.
    @discardableResult
    public func waitFor(timeout: Double = 10, _ predicate: (String) -> Bool) throws -> (ok: Bool, screen: String) {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < deadline {
            last = try screen()
            if predicate(last) { return (true, last) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return (false, last)
    }

    public func waitFor(text: String, timeout: Double = 10) throws -> (ok: Bool, screen: String) {
        try waitFor(timeout: timeout) { $0.contains(text) }
    }

    public func kill() {
        _ = try? tmux(["kill-server"])
    }

    deinit { kill() }
}
