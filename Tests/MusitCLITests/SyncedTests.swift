import Foundation
import MusitTestSupport
import Testing

/// `musit-tui --serve` as a child process that can be killed (SIGKILL) and started again
/// on the same port and data directory.
final class ServerProcess: @unchecked Sendable {
    let port = ServeTests.freePort()
    let data = NSTemporaryDirectory() + "musit-synced-\(UUID().uuidString)"
    private var process: Process?

    var url: String { "http://127.0.0.1:\(port)" }

    func start() throws {
        process = try ServeTests.launch(port: port, data: data)
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if ServeTests.get(port: port, path: "/healthz")?.hasPrefix("HTTP/1.1 200") == true { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        Issue.record("the server did not come up on \(port)")
    }

    func killHard() {
        guard let p = process else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    deinit { killHard() }
}

extension TmuxSession {
    /// A player signed up as `name` against `server`, in a 120×36 window.
    static func player(_ name: String, server: String, device: String = "testnull", config: String? = nil,
                       term: String? = nil) throws -> TmuxSession {
        let tmux = try TmuxSession.musit(["--device", device, "--pace", "--server", server], width: 120, height: 36, config: config,
                                         term: term)
        try tmux.press(until: "Sign in", "the sign-in screen")
        try tmux.send("-l", name)
        try tmux.send("Enter")
        try tmux.send("-l", "correct horse")
        try tmux.send("C-r")
        try tmux.press("Enter", until: "\(name) · online", "registered and synced")
        return tmux
    }

    func command(_ line: String) throws {
        try send(":")
        try send("-l", line)
        try send("Enter")
    }

    func count(_ text: String) throws -> Int {
        try screen().components(separatedBy: text).count - 1
    }
}

@Suite("Two players and one backend, in tmux", .serialized)
struct SyncedTests {
    @Test("friends, chat, presence and a shared library between two real players; a SIGKILLed server loses no message")
    func twoPlayers() throws {
        let server = ServerProcess()
        try server.start()
        let a = try TmuxSession.player("alice", server: server.url)
        defer { a.kill() }
        let b = try TmuxSession.player("bob", server: server.url)
        defer { b.kill() }

        // Friends: A asks, B sees the request arrive by long-poll and accepts.
        try a.command("friend bob")
        try a.press(until: "(request sent)", "A's pane lists the outgoing request")
        try b.press(until: "wants to be friends", "the request reached B")
        try b.command("accept alice")
        try a.press(until: "bob is now a friend", "the acceptance reached A")

        // Chat: B opens the conversation; A's message is drawn on B's screen.
        try b.command("chat alice")
        try b.press(until: "Chat: alice", "B's chat pane is on alice")
        try a.command("chat bob hello from A ✓ 東京")
        try b.press(until: "alice: hello from A ✓ 東京", "A's message on B's screen")

        // Library: B uploads; the song appears in A's queue.
        try b.command("upload \(Fixtures.path("long20.mp3"))")
        try b.press(until: "uploaded 1 of 1", "B's upload finished")
        try a.press(until: "Long Sweep", "B's song in A's library")

        // Presence: A plays it; B's friends pane shows it within a second.
        // (Chat took the focus; hiding and showing the queue gives it back.)
        try a.send("1")
        try a.send("1")
        let pressed = Date()
        try a.send("Enter")
        let seen = try b.waitFor(timeout: 5) { $0.contains("▶ Long Sweep – Fixture") }
        let delay = Date().timeIntervalSince(pressed)
        #expect(seen.ok, "B's friends pane shows what A plays: \(seen.screen)")
        #expect(delay < 1.0, "shown \(delay) s after A pressed Enter")
        try a.send("Space")
        try b.press(until: "⏸ Long Sweep – Fixture", "A's pause reaches B")
        try a.send("Space")
        try b.press(until: "▶ Long Sweep – Fixture", "and the resume")

        // Profiles: B edits a bio, A reads it.
        try b.command("bio Ünïcode bio 🎵")
        try b.press(until: "Ünïcode bio 🎵", "B's profile shows the new bio")
        try b.send("Escape")
        try a.command("profile bob")
        try a.press(until: "Ünïcode bio 🎵", "A reads B's bio")
        try a.send("Escape")

        // Statistics: alice registered first, so she is admin; bob is not.
        try a.command("stats")
        try a.press(until: "1. Long Sweep – Fixture (1)", "A's play is counted in the Stats pane")
        #expect(try a.screen().contains("plays per day"))
        try a.send("Escape")
        try b.command("stats")
        try b.press(until: "statistics are for admins", "not for bob")

        // Outage: the server dies; A writes meanwhile; the message arrives once after a restart.
        server.killHard()
        try a.press(until: "reconnecting", "A notices the outage")
        try a.command("chat bob written during the outage")
        try a.press(until: "written during the outage", "A's line is shown, queued")
        Thread.sleep(forTimeInterval: 1)
        try server.start()
        try a.press(until: "alice · online", "A reconnects")
        let arrived = try b.waitFor(timeout: 20) { $0.contains("written during the outage") && $0.contains("bob · online") }
        #expect(arrived.ok, "the outage message reached B: \(arrived.screen)")
        Thread.sleep(forTimeInterval: 1.5)
        let screenA = try a.screen(), screenB = try b.screen()
        #expect(try b.count("written during the outage") == 1, "exactly once on B: \(screenB)")
        #expect(try a.count("written during the outage") == 1, "exactly once on A: \(screenA)")
        #expect(try b.count("hello from A") == 1, "the earlier message was not repeated")

        // The same file again is reported as a duplicate; deleting it empties A's library.
        try b.command("upload \(Fixtures.path("long20.mp3"))")
        try b.press(until: "1 already in the library", "duplicate reported")
        try b.command("delete")
        try b.press(until: "deleted Long Sweep", "B deleted its song")
        try a.press(until: "empty: add music with :upload", "the deletion reached A's library")
    }

    @Test("server unreachable at start: a clear error and retries; then a wrong password; then it works")
    func unreachableThenWrongPassword() throws {
        let server = ServerProcess()
        let tmux = try TmuxSession.musit(["--device", "testnull", "--server", server.url], width: 100, height: 30)
        defer { tmux.kill() }
        try tmux.press(until: "Sign in", "the sign-in screen while nothing listens")
        try tmux.send("-l", "carl")
        try tmux.send("Enter")
        try tmux.send("-l", "correct horse")
        let started = Date()
        try tmux.press("Enter", until: "server unreachable", "a clear error")
        #expect(Date().timeIntervalSince(started) < 5, "reported within seconds")
        // The screen stays responsive: Ctrl-R switches to registering at once.
        try tmux.press("C-r", until: "Register", "the form still takes keys")
        try server.start()
        try tmux.send("-l", "correct horse")
        try tmux.press("Enter", until: "carl · online", "registered once the server is up")
        // Sign out, then a wrong password is refused with the server's words.
        try tmux.command("signout")
        let out = try tmux.press(until: "Sign in", "signed out")
        #expect(out.contains("Username: carl"), "the name is kept; the password field has the focus")
        try tmux.send("-l", "wrong password")
        try tmux.press("Enter", until: "Wrong username or password", "wrong password refused")
        #expect(!(try tmux.screen()).contains("carl · online"))
        try tmux.send("-l", "correct horse")
        try tmux.press("Enter", until: "carl · online", "the right password works")
    }

    @Test("a stalled link while streaming: 'buffering' shows, the UI keeps answering keys, playback resumes")
    func stalledLinkStaysResponsive() throws {
        let server = ServerProcess()
        try server.start()
        let proxy = SlowProxy(upstream: server.port, bytesPerSecond: 50_000_000)
        defer { proxy.close() }
        let tmux = try TmuxSession.player("dora", server: "http://127.0.0.1:\(proxy.port)")
        defer { tmux.kill() }
        try tmux.command("upload \(Fixtures.path("long20.mp3"))")
        try tmux.press(until: "Long Sweep", "uploaded and listed")
        proxy.setRate(0)
        try tmux.send("Enter")
        try tmux.press(until: "buffering", "the stalled stream says so")
        let asked = Date()
        try tmux.press("?", until: "Help: keys", "help opens while the stream is stalled")
        #expect(Date().timeIntervalSince(asked) < 1, "answered in \(Date().timeIntervalSince(asked)) s")
        try tmux.press("Escape", until: "Now Playing")
        proxy.setRate(50_000_000)
        let resumed = try tmux.waitFor(timeout: 15) { $0.contains("▶ playing") && !$0.contains("buffering") }
        #expect(resumed.ok, "playback resumed: \(resumed.screen)")
    }

    @Test("a refused refresh token returns to the sign-in screen; a server answering 500s keeps the UI usable")
    func refusedSessionAndBrokenServer() throws {
        let server = ServerProcess()
        try server.start()
        let config = NSTemporaryDirectory() + "musit-xdg-\(UUID().uuidString)"
        let first = try TmuxSession.player("erin", server: server.url, config: config)
        first.kill()
        // The stored access token has expired and the refresh token is not one the server knows.
        let path = config + "/musit/session.json"
        var session = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        session["expiresAt"] = Date().timeIntervalSince1970 - 10
        session["refreshToken"] = "forged-refresh-token"
        try JSONSerialization.data(withJSONObject: session).write(to: URL(fileURLWithPath: path))
        let again = try TmuxSession.musit(["--device", "testnull", "--server", server.url], width: 100, height: 30, config: config)
        defer { again.kill() }
        try again.press(until: "the session expired; sign in again", "back to sign-in")
        try again.send("-l", "correct horse")
        try again.press("Enter", until: "erin · online", "signing in again works")

        // A server that answers every request with 500.
        let port = ServeTests.freePort()
        // Spawned and reaped by hand: Foundation's Process may never see the child exit when
        // the runner's threads block SIGCHLD, and its waitUntilExit() then waits forever.
        let code = """
            import http.server
            class H(http.server.BaseHTTPRequestHandler):
                def answer(self):
                    self.send_response(500); self.send_header("Content-Type", "text/html"); self.end_headers()
                    self.wfile.write(b"<h1>oops</h1>")
                do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer
                def log_message(self, *a): pass
            http.server.ThreadingHTTPServer(("127.0.0.1", \(port)), H).serve_forever()
            """
        let words: [String] = ["/usr/bin/python3", "-c", code]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in [0, 1, 2] { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        var brokenPID: pid_t = 0
        #expect(posix_spawn(&brokenPID, "/usr/bin/python3", &actions, nil, argv, environ) == 0, "the broken server started")
        defer {
            kill(brokenPID, SIGKILL)
            var status: Int32 = 0
            while waitpid(brokenPID, &status, 0) < 0 && errno == EINTR {}
        }
        Thread.sleep(forTimeInterval: 0.5)
        let tmux = try TmuxSession.musit(["--device", "testnull", "--server", "http://127.0.0.1:\(port)"], width: 100, height: 30)
        defer { tmux.kill() }
        try tmux.press(until: "Sign in", "the sign-in screen")
        try tmux.send("-l", "frank")
        try tmux.send("Enter")
        try tmux.send("-l", "correct horse")
        try tmux.press("Enter", until: "500", "the failure is shown")
        try tmux.press("C-r", until: "Register", "still taking keys")
        try tmux.press("Escape", until: "[exited 0]", "and it quits cleanly")
    }
    @Test("messages typed in quick succession reach the server in the order typed, burst after burst")
    func orderedSends() throws {
        let server = ServerProcess()
        try server.start()
        let registered = try #require(ServeTests.post(port: server.port, path: "/api/v1/auth/register",
                                                     json: #"{"username":"bob","password":"correct horse"}"#))
        let token = try #require(registered.range(of: #""accessToken":"([^"]+)""#, options: .regularExpression)
            .map { String(registered[$0].dropFirst(15).dropLast(1)) })
        let a = try TmuxSession.player("alice", server: server.url)
        defer { a.kill() }
        try a.command("friend bob")
        let deadline = Date().addingTimeInterval(10)
        var accepted = ""
        while !accepted.hasPrefix("HTTP/1.1 2"), Date() < deadline {
            accepted = ServeTests.post(port: server.port, path: "/api/v1/friends/requests/alice/accept", json: "", token: token) ?? ""
            if !accepted.hasPrefix("HTTP/1.1 2") { Thread.sleep(forTimeInterval: 0.1) }
        }
        try a.press(until: "bob is now a friend", "the acceptance reached A")
        try a.command("chat bob")
        try a.press(until: "Chat: bob", "A's chat pane is on bob")
        try a.send("c")
        // Four bursts of ten, each typed in one go: the UI reads them back to back.
        let bodies = (1...40).map { String(format: "o%02d", $0) }
        for burst in 0..<4 {
            try a.send(bodies[burst * 10..<(burst + 1) * 10].flatMap { [$0, "Enter"] })
            Thread.sleep(forTimeInterval: 0.2)
        }
        var stored: [String] = []
        let until = Date().addingTimeInterval(20)
        while stored.count < bodies.count, Date() < until {
            let page = RawHTTP.request(port: server.port, "GET /api/v1/conversations/alice/messages?limit=100 HTTP/1.1\r\n" +
                                       "Host: x\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n") ?? ""
            // Newest first; the stored order is the order the server took them in.
            stored = page.matches(of: /"body":"(o\d\d)"/).map { String($0.output.1) }.reversed()
            if stored.count < bodies.count { Thread.sleep(forTimeInterval: 0.2) }
        }
        #expect(stored == bodies, "the server took them in the order typed: \(stored)")
    }
}
