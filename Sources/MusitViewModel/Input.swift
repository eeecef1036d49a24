/// A key as the terminal delivers it.
public enum Key: Hashable, Sendable, CustomStringConvertible {
    case char(Character)
    case up, down, left, right, pageUp, pageDown, home, end
    case enter, tab, backTab, backspace, delete, escape
    case function(Int)
    case ctrl(Character)
    /// A key code the keymap does not know.
    case unknown(Int)

    public var description: String {
        switch self {
        case .char(" "): return "Space"
        case .char(let c): return String(c)
        case .up: return "↑"
        case .down: return "↓"
        case .left: return "←"
        case .right: return "→"
        case .pageUp: return "PgUp"
        case .pageDown: return "PgDn"
        case .home: return "Home"
        case .end: return "End"
        case .enter: return "Enter"
        case .tab: return "Tab"
        case .backTab: return "Shift-Tab"
        case .backspace: return "Backspace"
        case .delete: return "Delete"
        case .escape: return "Esc"
        case .function(let n): return "F\(n)"
        case .ctrl(let c): return "Ctrl-\(c)"
        case .unknown(let code): return "key \(code)"
        }
    }
}

public struct MouseEvent: Equatable, Sendable {
    public enum Kind: Equatable, Sendable { case press, release, drag, scrollUp, scrollDown }
    public var kind: Kind
    public var x: Int
    public var y: Int

    public init(_ kind: Kind, x: Int, y: Int) {
        self.kind = kind
        self.x = x
        self.y = y
    }
}

/// What a global key does: the keys that mean the same in every pane.
public enum Command: String, CaseIterable, Sendable {
    case togglePause, next, previous, seekBack, seekForward, volumeUp, volumeDown
    case cycleRepeat, toggleShuffle, stop, jumpToPlaying
    case focusNext, focusPrevious
    case filter, commandLine, help, quit
    case narrower, wider, shorter, taller, maximize, hidePane
    case toggleQueue, toggleNowPlaying, toggleFriends, toggleChat
    case toggleVisualizer
}

/// The global keys, cmus/musikcube style; a pane's own table is asked first.
public typealias Keymap = BindingTable<Command>

extension BindingTable where Action == Command {
    public static let standard = Keymap("Everywhere", [
        KeyBinding([.char(" ")], .togglePause, "pause / resume"),
        KeyBinding([.char("n")], .next, "next track"),
        KeyBinding([.char("p")], .previous, "previous track"),
        KeyBinding([.left, .char("h")], .seekBack, "seek back 5 s"),
        KeyBinding([.right, .char("l")], .seekForward, "seek forward 5 s"),
        KeyBinding([.char("+"), .char("=")], .volumeUp, "volume up"),
        KeyBinding([.char("-")], .volumeDown, "volume down"),
        KeyBinding([.char("r")], .cycleRepeat, "repeat: off / all / one"),
        KeyBinding([.char("s")], .toggleShuffle, "shuffle on / off"),
        KeyBinding([.char("S")], .stop, "stop"),
        KeyBinding([.char("i")], .jumpToPlaying, "jump to the playing track"),
        KeyBinding([.tab], .focusNext, "focus the next pane"),
        KeyBinding([.backTab], .focusPrevious, "focus the previous pane"),
        KeyBinding([.char("/")], .filter, "filter the queue"),
        KeyBinding([.char(":")], .commandLine, "command line (:add PATH, :chat NAME, :q)"),
        KeyBinding([.char("?"), .function(1)], .help, "this help"),
        KeyBinding([.char("q")], .quit, "quit"),
        KeyBinding([.char("<")], .narrower, "focused pane narrower"),
        KeyBinding([.char(">")], .wider, "focused pane wider"),
        KeyBinding([.char("{")], .shorter, "focused pane shorter"),
        KeyBinding([.char("}")], .taller, "focused pane taller"),
        KeyBinding([.char("z")], .maximize, "maximize / restore the focused pane"),
        KeyBinding([.char("x")], .hidePane, "hide the focused pane"),
        KeyBinding([.char("1")], .toggleQueue, "show / hide Queue"),
        KeyBinding([.char("2")], .toggleNowPlaying, "show / hide Now Playing"),
        KeyBinding([.char("3")], .toggleFriends, "show / hide Friends"),
        KeyBinding([.char("4")], .toggleChat, "show / hide Chat"),
        KeyBinding([.char("v")], .toggleVisualizer, "visualizer on / off"),
    ])
}
