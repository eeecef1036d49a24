import Foundation
import MusitTestSupport
import Testing

/// `scripts/cluster.sh`: PostgreSQL, two `--serve` instances and nginx round-robin in front.
final class Cluster: @unchecked Sendable {
    let dir = NSTemporaryDirectory() + "musit-cluster-\(UUID().uuidString)"
    private(set) var url = ""

    static var available: Bool {
        ProcessInfo.processInfo.environment["MUSIT_TEST_CLUSTER"] == "1"
            && FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx")
    }

    /// Runs `scripts/cluster.sh` with posix_spawn and waitpid: Foundation's Process waits
    /// for every descendant that inherited its bookkeeping descriptors, and the script's
    /// daemons (nginx, PostgreSQL, the instances) never exit.
    @discardableResult
    func script(_ arguments: [String]) throws -> Int32 {
        let path = Fixtures.packageRoot.appendingPathComponent("scripts/cluster.sh").path
        let argv = ["/bin/bash", path] + arguments
        var env = ProcessInfo.processInfo.environment
        env["MUSIT_CLUSTER_DIR"] = dir
        env["MUSIT_BIN"] = Binary.path
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in [0, 1, 2] { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/bin/bash", &actions, nil, cArgs, cEnv) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status >> 8) & 0xFF
    }

    func up() throws {
        #expect(try script(["up"]) == 0, "the cluster came up")
        url = try String(contentsOfFile: dir + "/url", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    deinit { _ = try? script(["down"]) }
}

@Suite("Two players and two instances behind nginx, in tmux", .serialized, .enabled(if: Cluster.available))
struct ClusterTests {
    @Test("players chat and see each other play through nginx over two instances; one is SIGKILLed, they carry on; it rejoins")
    func killOneInstance() throws {
        let cluster = Cluster()
        try cluster.up()
        let a = try TmuxSession.player("alice", server: cluster.url)
        defer { a.kill() }
        let b = try TmuxSession.player("bob", server: cluster.url)
        defer { b.kill() }
        try a.command("friend bob")
        try b.press(until: "wants to be friends", "the request reached B")
        try b.command("accept alice")
        try a.press(until: "bob is now a friend", "the acceptance reached A")
        try b.command("chat alice")
        try b.press(until: "Chat: alice", "B's chat pane is on alice")
        for i in 1...3 {
            try a.command("chat bob before \(i)")
            try b.press(until: "alice: before \(i)", "message \(i) on B's screen")
        }
        // Instance a dies; nginx sends everything to b; the players carry on.
        try cluster.script(["kill", "a"])
        for i in 1...3 {
            try a.command("chat bob during \(i)")
            try b.press(until: "alice: during \(i)", "message \(i) sent while a was dead")
        }
        // A's library gets B's upload through the survivor.
        try b.command("upload \(Fixtures.path("long20.mp3"))")
        try b.press(until: "uploaded 1 of 1", "B's upload finished")
        try a.press(until: "Long Sweep", "B's song in A's library")
        // A plays it; B's friends pane shows it (chat took A's focus: hiding and showing the
        // queue gives it back).
        try a.send("1")
        try a.send("1")
        try a.send("Enter")
        try b.press(until: "▶ Long Sweep – Fixture", "what A plays, on B's friends pane")
        // a comes back and takes its share again; presence goes through both.
        #expect(try cluster.script(["start", "a"]) == 0, "instance a rejoined")
        for (key, shown) in [("Space", "⏸ Long Sweep – Fixture"), ("Space", "▶ Long Sweep – Fixture"), ("Space", "⏸ Long Sweep – Fixture")] {
            try a.send(key)
            try b.press(until: shown, "A's pause or resume on B's friends pane, with a back")
        }
        for i in 1...3 {
            try b.command("chat alice after \(i)")
            try a.press(until: "bob: after \(i)", "B's message \(i) after a rejoined")
        }
        Thread.sleep(forTimeInterval: 1.5)
        for (screen, lines) in [(b, ["before 1", "before 2", "before 3", "during 1", "during 2", "during 3"]),
                                (a, ["after 1", "after 2", "after 3"])] {
            let text = try screen.screen()
            for line in lines {
                #expect(try screen.count(line) == 1, "\(line) exactly once: \(text)")
            }
        }
    }
}
