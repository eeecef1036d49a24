import MusitArt
import MusitViewModel

/// Glyphs for UTF-8 terminals and their ASCII stand-ins.
public struct Glyphs: Sendable {
    public var topLeft, top, topRight, side, bottomLeft, bottomRight: Character
    public var playing: String, ellipsis: String
    public var statePlaying: String, statePaused: String, stateStopped: String
    public var unicode: Bool

    public static let unicode = Glyphs(topLeft: "┌", top: "─", topRight: "┐", side: "│", bottomLeft: "└", bottomRight: "┘",
                                       playing: "♪", ellipsis: "…", statePlaying: "▶", statePaused: "⏸",
                                       stateStopped: "■", unicode: true)
    public static let ascii = Glyphs(topLeft: "+", top: "-", topRight: "+", side: "|", bottomLeft: "+", bottomRight: "+",
                                     playing: ">", ellipsis: "...", statePlaying: ">", statePaused: "||",
                                     stateStopped: "[]", unicode: false)
}

/// State in, screen buffer out. Pure: drawing cost depends on the screen size, not the queue's.
public struct Renderer: Sendable {
    public var glyphs: Glyphs

    public init(unicode: Bool = true) {
        glyphs = unicode ? .unicode : .ascii
    }

    /// The panes draw themselves (Panes/): each pane's type owns its keys, mouse and drawing.
    var pen: Pen { Pen(glyphs: glyphs) }

    public func render(_ s: AppState) -> ScreenBuffer {
        var b = ScreenBuffer(width: s.width, height: s.height)
        b.look = s.appearance.currentLook(at: s.clock)
        guard b.width > 0, b.height > 0 else { return b }
        if s.isTooSmall {
            b.put("Terminal too small", x: 0, y: 0, style: .warning, ellipsis: glyphs.ellipsis)
            b.put("need \(AppState.minimumSize.width)x\(AppState.minimumSize.height)", x: 0, y: 1, style: .dim,
                  ellipsis: glyphs.ellipsis)
            return b
        }
        for (pane, frame) in s.frames.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            Self.view(pane).draw(&b, frame, s, pen)
        }
        drawStatusBar(&b, s)
        switch s.mode {
        case .help: HelpPane.draw(&b, s, pen)
        case .confirmQuit: ConfirmQuitPane.draw(&b, s, pen)
        case .signIn: SignInPane.draw(&b, s, pen)
        case .stats, .profile: OverlayPane.draw(&b, s, pen)
        default: break
        }
        return b
    }

    /// The frame for `s`, given the last frame drawn and the state it was drawn from. When
    /// only time has moved since (the clock, the position, the visualizer's bands), only the
    /// panes that show time are drawn again over the last frame; otherwise the whole screen
    /// is. Either way the cells are those `render(s)` gives: panes never draw outside their
    /// frames, and everything else on screen is a function of what is compared here.
    ///
    /// The frame is drawn over in place: one held nowhere else (the terminal keeps its own
    /// copy) is not copied.
    public func render(_ s: AppState, over b: inout ScreenBuffer, drawnFrom last: AppState) {
        // A cross-fade recolours every style: the whole screen changes.
        guard let panes = Self.panesShowingTime(from: last, to: s), b.look == s.appearance.currentLook(at: s.clock) else {
            b = render(s)
            return
        }
        let frames = s.frames
        for pane in panes {
            guard let f = frames[pane] else { continue }
            if pane == .nowPlaying {
                NowPlayingPane.redrawTime(&b, f, from: last, to: s, pen)
                continue
            }
            b.fill((f.x, f.y, f.width, f.height), style: .normal)
            Self.view(pane).draw(&b, f, s, pen)
        }
    }

    /// The frame for `s` over the one drawn from `last`, when the caller knows that only the
    /// visualizer's bands have changed since (no clock tick, no event, no key): just the bars
    /// are drawn again, in place, without comparing the states (checked in debug builds).
    public func redrawBands(_ s: AppState, over b: inout ScreenBuffer, drawnFrom last: AppState) {
        assert({
            var old = last
            old.appearance.spectrum = s.appearance.spectrum
            return old == s
        }(), "more than the bands changed")
        // Something drawn over the panes (help, a dialog) may cover the bars.
        guard !Self.overlaid(s) else {
            b = render(s)
            return
        }
        guard let f = s.frames[.nowPlaying] else { return }
        NowPlayingPane.redrawBands(&b, f, from: last, to: s, pen)
    }

    /// The type that draws `pane`.
    static func view(_ pane: PaneID) -> any PaneView.Type {
        switch pane {
        case .queue: return QueuePane.self
        case .nowPlaying: return NowPlayingPane.self
        case .friends: return FriendsPane.self
        case .chat: return ChatPane.self
        }
    }

    /// Whether something is drawn over the panes.
    static func overlaid(_ s: AppState) -> Bool {
        switch s.mode {
        case .normal, .filter, .command, .compose: return false
        case .help, .confirmQuit, .signIn, .stats, .profile: return true
        }
    }

    /// The panes to draw again when `new` differs from `old` only in time, or nil when
    /// anything else changed (or something is drawn over the panes).
    static func panesShowingTime(from old: AppState, to new: AppState) -> [PaneID]? {
        guard !overlaid(new) else { return nil }
        func timeless(_ s: AppState) -> AppState {
            var s = s
            s.social.clock = 0
            s.nowPlaying.position = 0
            s.nowPlaying.stamp = 0
            s.appearance.spectrum = []
            return s
        }
        guard timeless(old) == timeless(new) else { return nil }
        var panes: [PaneID] = [.nowPlaying]
        // Friends' positions move with the clock too.
        if new.social.friends.contains(where: { $0.playing != nil }) { panes.append(.friends) }
        return panes
    }

    // MARK: Status bar

    private func drawStatusBar(_ b: inout ScreenBuffer, _ s: AppState) {
        let y = s.height - 1
        b.fill((0, y, s.width, 1), style: .statusBar)
        let text: String
        switch s.mode {
        case .filter(let f): text = "/" + f + (glyphs.unicode ? "▏" : "_")
        case .command(let c): text = ":" + c + (glyphs.unicode ? "▏" : "_")
        case .compose: text = "writing to \(s.social.chat.peer ?? ""): Enter sends, Esc stops"
        default:
            text = s.message ?? "? help  q quit  / filter  : command  Tab focus  Space pause  Enter play"
        }
        if s.social.connection != .none, s.width >= 50 {
            let me = s.social.me.map { "\($0) · " } ?? ""
            let tag = " \(me)\(s.social.connection.label) "
            let w = min(TextWidth.of(tag), s.width / 2)
            b.put(tag, x: s.width - w, y: y, maxWidth: w, style: s.social.connection == .online ? .statusBar : .warning,
                  ellipsis: glyphs.ellipsis)
            b.put(text, x: 0, y: y, maxWidth: s.width - w - 1, style: s.message != nil && s.mode == .normal ? .warning : .statusBar,
                  ellipsis: glyphs.ellipsis)
            return
        }
        b.put(text, x: 0, y: y, maxWidth: s.width, style: s.message != nil && s.mode == .normal ? .warning : .statusBar,
              ellipsis: glyphs.ellipsis)
    }
}

public enum Clock {
    public static func format(_ seconds: Double) -> String {
        let total = max(0, Int(seconds.isFinite ? seconds : 0))
        let h = total / 3600, m = (total % 3600) / 60, s = total % 60
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return h > 0 ? "\(h):\(two(m)):\(two(s))" : "\(m):\(two(s))"
    }
}

/// A line too long for its place, scrolling: it rests at its start, then moves left four
/// cells a second and comes round again.
public enum Marquee {
    public static let speed = 4.0
    public static let rest = 2.0
    static let gap = "   •   "

    public static func frame(_ text: String, width: Int, clock: Double) -> String {
        guard width > 0, TextWidth.of(text) > width else { return text }
        let loop = Array(text + gap)
        let offset = step(text, width: width, clock: clock)
        let rotated = String(loop[offset...] + loop[..<offset])
        return TextWidth.fit(rotated, width: width, ellipsis: "")
    }

    /// How many characters the title has scrolled by at `clock` (0 when it fits).
    public static func step(_ text: String, width: Int, clock: Double) -> Int {
        guard width > 0, TextWidth.of(text) > width else { return 0 }
        let count = text.count + gap.count
        let cycle = Double(count) / speed + rest
        let t = clock.truncatingRemainder(dividingBy: cycle)
        return t < rest ? 0 : min(count - 1, Int((t - rest) * speed))
    }

    /// Seconds until the frame changes, from `clock`.
    public static func nextChange(_ text: String, width: Int, clock: Double) -> Double? {
        guard width > 0, TextWidth.of(text) > width else { return nil }
        let cycle = Double(Array(text + gap).count) / speed + rest
        let t = clock.truncatingRemainder(dividingBy: cycle)
        return t < rest ? rest - t : 1 / speed - (t - rest).truncatingRemainder(dividingBy: 1 / speed)
    }
}

/// A smooth progress bar: full blocks and an eighth-block glyph for the partial cell.
public enum ProgressBar {
    static let eighths = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]

    /// The eighths of a cell filled at `fraction`.
    public static func units(fraction: Double, width: Int) -> Int {
        let f = max(0, min(1, fraction.isFinite ? fraction : 0))
        return Int((f * Double(max(0, width) * 8)).rounded(.down))
    }

    public static func render(fraction: Double, width: Int, unicode: Bool = true) -> String {
        guard width > 0 else { return "" }
        let f = max(0, min(1, fraction.isFinite ? fraction : 0))
        if !unicode {
            let filled = Int((f * Double(width)).rounded(.down))
            return String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        }
        let units = units(fraction: f, width: width)
        let full = units / 8, part = units % 8
        var s = String(repeating: "█", count: full)
        if full < width {
            s += part > 0 ? eighths[part] : "░"
            s += String(repeating: "░", count: width - full - 1)
        }
        return s
    }
}
