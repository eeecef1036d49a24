import Foundation
import MusitTestSupport
import Testing

@Suite("The now-playing screen in a real terminal (tmux)", .serialized)
struct ScreenTests {
    @Test("plays, pauses, seeks, skips and restores the terminal on q")
    func nowPlaying() throws {
        let (device, capture) = Fixtures.captureDevice()
        let tmux = try TmuxSession(command: [Binary.path, "--device", device, "--pace",
                                             Fixtures.path("tag_v23_utf16.mp3"), Fixtures.path("sweep.mp3")],
                                   environment: ["ALSA_CONFIG_PATH": Fixtures.alsaConfig])
        defer { tmux.kill() }
        var r = try tmux.waitFor(text: "Now Playing")
        #expect(r.ok, "\(r.screen)")
        #expect(try tmux.paneValue("#{alternate_on}") == "1")
        r = try tmux.waitFor(text: "Ünïcødé Title – 東京")
        #expect(r.ok, "the UTF-16 title is drawn: \(r.screen)")
        #expect(r.screen.contains("Ærtist Ωμέγα · Albüm 🎵"))
        // The 1 s first track ends by itself; the sweep follows.
        r = try tmux.waitFor(text: "sweep.mp3")
        r = try tmux.waitFor { $0.contains("▶ playing") && $0.contains("0:00 / 0:06") == false && $0.contains("/ 0:06") }
        #expect(r.ok, "second track playing: \(r.screen)")
        try tmux.send("Space")
        r = try tmux.waitFor(text: "paused")
        #expect(r.ok, "\(r.screen)")
        let size = try FileManager.default.attributesOfItem(atPath: capture)[.size] as! Int
        Thread.sleep(forTimeInterval: 0.4)
        #expect(try FileManager.default.attributesOfItem(atPath: capture)[.size] as! Int == size, "nothing written while paused")
        try tmux.send("Right")
        try tmux.send("Right")
        try tmux.send("+")  // already at 100: stays
        try tmux.send("-")
        r = try tmux.waitFor { $0.contains("vol 95%") && $0.contains("0:05 / 0:06") }
        #expect(r.ok, "two 5 s seeks clamp near the end; volume down: \(r.screen)")
        try tmux.send("Left")
        try tmux.send("Space")
        r = try tmux.waitFor(text: "▶ playing")
        #expect(r.ok)
        try tmux.send("p")
        r = try tmux.waitFor { $0.contains("Ünïcødé Title") && $0.contains("/ 0:01") }
        #expect(r.ok, "p goes back to the first track: \(r.screen)")
        try tmux.send("n")
        r = try tmux.waitFor { $0.contains("/ 0:06") }
        #expect(r.ok, "n skips to the sweep: \(r.screen)")
        try tmux.send("q")
        r = try tmux.waitFor(text: "[exited 0]")
        #expect(r.ok, "\(r.screen)")
        #expect(try tmux.paneValue("#{alternate_on}") == "0", "alternate screen off after q")
    }

    @Test("survives a tiny window and resizes, and SIGTERM restores the terminal")
    func tinyAndSignals() throws {
        let tmux = try TmuxSession(command: [Binary.path, "--device", "testnull", "--pace", Fixtures.path("sine440.mp3")],
                                   width: 10, height: 4, environment: ["ALSA_CONFIG_PATH": Fixtures.alsaConfig])
        defer { tmux.kill() }
        var r = try tmux.waitFor(text: "Terminal")
        #expect(r.ok, "a 10×4 window says it is too small: \(r.screen)")
        for (w, h) in [(120, 40), (20, 6), (80, 24), (10, 4), (100, 30)] {
            try tmux.resize(width: w, height: h)
        }
        r = try tmux.waitFor(text: "Now Playing")
        #expect(r.ok, "redrawn after resizes: \(r.screen)")
        let pid = try tmux.paneValue("#{pane_pid}")
        // The pane runs a shell whose child is musit-tui.
        let children = try String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)
        let child = children.split(separator: " ").first.map(String.init) ?? ""
        #expect(!child.isEmpty)
        kill(pid_t(child) ?? 0, SIGTERM)
        r = try tmux.waitFor(text: "[exited 0]")
        #expect(r.ok, "exits on SIGTERM: \(r.screen)")
        #expect(try tmux.paneValue("#{alternate_on}") == "0")
    }
}
