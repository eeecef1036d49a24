import CNcursesw
import Foundation
import MusitAudio
import Synchronization

/// A simple full-screen now-playing view: what plays, where it is, and the queue.
/// Keys: space pause, ←/→ seek 5 s, +/- volume, n/p next/previous, r repeat, s shuffle, q quit.
public final class NowPlayingScreen {
    private let player: Player
    private let tracks: [Track]
    private var failures: [Int: String] = [:]
    private let unicode: Bool
    private let stopFlag = StopFlag()
    private var signalSources: [DispatchSourceSignal] = []

    public init(player: Player, tracks: [Track]) {
        self.player = player
        self.tracks = tracks
        musit_setlocale_all()
        let codeset = String(cString: nl_langinfo(Int32(CODESET)))
        unicode = codeset.uppercased() == "UTF-8"
    }

    /// Runs until `q` or a terminating signal; always restores the terminal.
    public func run() {
        let failuresBox = Mutex<[Int: String]>([:])
        player.observe { event in
            if case .trackFailed(let index, let error) = event {
                failuresBox.withLock { $0[index] = error.message }
            }
        }
        installSignalHandlers()
        // A parent may have left SIGWINCH blocked; resizes depend on it.
        var winch = sigset_t()
        sigemptyset(&winch)
        sigaddset(&winch, SIGWINCH)
        pthread_sigmask(SIG_UNBLOCK, &winch, nil)
        initscr()
        defer { endwin() }
        cbreak()
        noecho()
        keypad(musit_stdscr(), true)
        curs_set(0)
        wtimeout(musit_stdscr(), 100)
        if has_colors() {
            start_color()
            use_default_colors()
            init_pair(1, Int16(COLOR_CYAN), -1)
            init_pair(2, Int16(COLOR_YELLOW), -1)
            init_pair(3, Int16(COLOR_RED), -1)
        }
        while !stopFlag.isSet {
            failures = failuresBox.withLock { $0 }
            draw(player.status)
            var ch: wint_t = 0
            let r = wget_wch(musit_stdscr(), &ch)
            if r == ERR { continue }
            if r == KEY_CODE_YES {
                handleKey(Int32(ch))
            } else if let scalar = Unicode.Scalar(ch) {
                if handleChar(Character(scalar)) { break }
            }
        }
    }

    private func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            let flag = stopFlag
            source.setEventHandler { flag.set() }
            source.resume()
            signalSources.append(source)
        }
    }

    private func handleKey(_ key: Int32) {
        switch key {
        case KEY_LEFT: player.send(.seekBy(-5))
        case KEY_RIGHT: player.send(.seekBy(5))
        case KEY_UP: player.send(.changeVolume(5))
        case KEY_DOWN: player.send(.changeVolume(-5))
        default: break
        }
    }

    /// Returns true to quit.
    private func handleChar(_ c: Character) -> Bool {
        switch c {
        case "q", "Q": return true
        case " ": player.send(.togglePause)
        case "+", "=": player.send(.changeVolume(5))
        case "-", "_": player.send(.changeVolume(-5))
        case "n": player.send(.next)
        case "p": player.send(.previous)
        case "r": player.send(.cycleRepeat)
        case "s": player.send(.toggleShuffle)
        case "S": player.send(.stop)
        case "h": player.send(.seekBy(-5))
        case "l": player.send(.seekBy(5))
        default: break
        }
        return false
    }

    private func put(_ y: Int32, _ x: Int32, _ text: String, width: Int, attrs: attr_t = 0) {
        guard width > 0 else { return }
        let clipped = ScreenText.fit(text, width: width, ellipsis: unicode ? "…" : "...")
        if attrs != 0 { wattron(musit_stdscr(), Int32(attrs)) }
        mvaddstr(y, x, clipped)
        if attrs != 0 { wattroff(musit_stdscr(), Int32(attrs)) }
    }

    private func draw(_ s: PlayerStatus) {
        erase()
        let rows = Int(musit_lines())
        let cols = Int(musit_cols())
        guard rows >= 6, cols >= 20 else {
            put(0, 0, "Terminal too small", width: cols)
            refresh()
            return
        }
        let w = cols - 4
        let title = s.metadata?.title ?? s.track.map { ($0.location as NSString).lastPathComponent } ?? "Nothing playing"
        put(0, 2, "Musit — Now Playing", width: w, attrs: musit_a_bold() | attr_t(musit_color_pair(1)))
        put(2, 2, title, width: w, attrs: musit_a_bold())
        put(3, 2, [s.metadata?.artist, s.metadata?.album].compactMap { $0 }.joined(separator: " · "), width: w)
        let duration = s.duration ?? 0
        let bar = ProgressBar.render(fraction: duration > 0 ? s.position / duration : 0, width: w, unicode: unicode)
        put(5, 2, bar, width: w, attrs: attr_t(musit_color_pair(1)))
        let stateText: String
        switch s.state {
        case .playing: stateText = unicode ? "▶ playing" : "> playing"
        case .paused: stateText = unicode ? "⏸ paused" : "|| paused"
        case .stopped: stateText = unicode ? "■ stopped" : "[] stopped"
        }
        let info = "\(stateText)   \(TimeText.clock(s.position)) / \(TimeText.clock(duration))   vol \(s.volume)%   repeat \(s.repeatMode.rawValue)   shuffle \(s.shuffle ? "on" : "off")"
        if rows > 6 { put(6, 2, info, width: w) }
        if s.noAudioDevice, rows > 7 {
            put(7, 2, "no audio device — playing silently in real time", width: w, attrs: attr_t(musit_color_pair(2)))
        }
        // The queue, as far as it fits.
        let top = 9
        if rows > top + 1 {
            put(Int32(top), 2, "Queue", width: w, attrs: musit_a_bold())
            for (i, t) in tracks.enumerated() where top + 1 + i < rows - 1 {
                let marker = i == s.trackIndex ? (unicode ? "♪ " : "> ") : "  "
                var line = marker + (t.location as NSString).lastPathComponent
                if let why = failures[i] { line += "  — \(why)" }
                let attrs: attr_t = failures[i] != nil ? attr_t(musit_color_pair(3)) : (i == s.trackIndex ? musit_a_bold() : 0)
                put(Int32(top + 1 + i), 2, line, width: w, attrs: attrs)
            }
        }
        put(Int32(rows - 1), 2, "space pause  ←/→ seek  +/- volume  n/p next/prev  r repeat  s shuffle  q quit", width: w,
            attrs: musit_a_dim())
        refresh()
    }
}

/// Text fitting by terminal cells: wide characters take two cells, long text ends in an ellipsis.
public enum ScreenText {
    public static func cellWidth(_ c: Character) -> Int {
        var total = 0
        for scalar in c.unicodeScalars {
            let w = musit_wcwidth(scalar.value)
            total = max(total, Int(w))
        }
        return max(total, c.unicodeScalars.first.map { $0.properties.isEmojiPresentation ? 2 : 0 } ?? 0)
    }

    public static func width(_ s: String) -> Int { s.reduce(0) { $0 + cellWidth($1) } }

    public static func fit(_ s: String, width: Int, ellipsis: String = "…") -> String {
        guard Self.width(s) > width else { return s }
        let room = width - Self.width(ellipsis)
        guard room > 0 else { return String(ellipsis.prefix(width)) }
        var out = ""
        var used = 0
        for c in s {
            let w = cellWidth(c)
            if used + w > room { break }
            out.append(c)
            used += w
        }
        return out + ellipsis
    }
}

public enum TimeText {
    public static func clock(_ seconds: Double) -> String {
        let total = max(0, Int(seconds.isFinite ? seconds : 0))
        let h = total / 3600
        let m = (total % 3600) / 60
        let s = total % 60
        return h > 0 ? String(format: "%d:%02d:%02d", h, m, s) : String(format: "%d:%02d", m, s)
    }
}

/// A smooth progress bar: full blocks plus an eighth-block glyph for the fractional cell.
public enum ProgressBar {
    static let eighths = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]

    public static func render(fraction: Double, width: Int, unicode: Bool = true) -> String {
        guard width > 0 else { return "" }
        let f = max(0, min(1, fraction.isFinite ? fraction : 0))
        if !unicode {
            let filled = Int((f * Double(width)).rounded(.down))
            return String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        }
        let units = Int((f * Double(width * 8)).rounded(.down))
        let full = units / 8
        let part = units % 8
        var s = String(repeating: "█", count: full)
        if full < width {
            s += part > 0 ? eighths[part] : "░"
            s += String(repeating: "░", count: width - full - 1)
        }
        return s
    }
}

/// Set from a signal handler's dispatch source, read by the drawing loop.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}
