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

/// What a key does in normal mode.
public enum Command: String, CaseIterable, Sendable {
    case up, down, pageUp, pageDown, top, bottom
    case play, togglePause, next, previous, seekBack, seekForward, volumeUp, volumeDown
    case cycleRepeat, toggleShuffle, stop, jumpToPlaying
    case focusNext, focusPrevious
    case filter, commandLine, help, quit
    case narrower, wider, shorter, taller, maximize, hidePane
    case toggleQueue, toggleNowPlaying, toggleFriends, toggleChat

    public var summary: String {
        switch self {
        case .up: return "move up"
        case .down: return "move down"
        case .pageUp: return "page up"
        case .pageDown: return "page down"
        case .top: return "first row"
        case .bottom: return "last row"
        case .play: return "play the selected track"
        case .togglePause: return "pause / resume"
        case .next: return "next track"
        case .previous: return "previous track"
        case .seekBack: return "seek back 5 s"
        case .seekForward: return "seek forward 5 s"
        case .volumeUp: return "volume up"
        case .volumeDown: return "volume down"
        case .cycleRepeat: return "repeat: off / all / one"
        case .toggleShuffle: return "shuffle on / off"
        case .stop: return "stop"
        case .jumpToPlaying: return "jump to the playing track"
        case .focusNext: return "focus the next pane"
        case .focusPrevious: return "focus the previous pane"
        case .filter: return "filter the queue"
        case .commandLine: return "command line (:add PATH, :layout reset, :q)"
        case .help: return "this help"
        case .quit: return "quit"
        case .narrower: return "focused pane narrower"
        case .wider: return "focused pane wider"
        case .shorter: return "focused pane shorter"
        case .taller: return "focused pane taller"
        case .maximize: return "maximize / restore the focused pane"
        case .hidePane: return "hide the focused pane"
        case .toggleQueue: return "show / hide Queue"
        case .toggleNowPlaying: return "show / hide Now Playing"
        case .toggleFriends: return "show / hide Friends"
        case .toggleChat: return "show / hide Chat"
        }
    }
}

/// Key bindings, cmus/musikcube style. One table drives both input and the help overlay.
public struct Keymap: Sendable {
    public struct Binding: Sendable {
        public let keys: [Key]
        public let command: Command
    }

    public let bindings: [Binding]
    private let lookup: [Key: Command]

    public init(_ bindings: [Binding]) {
        self.bindings = bindings
        var map: [Key: Command] = [:]
        for b in bindings { for k in b.keys { map[k] = b.command } }
        lookup = map
    }

    public func command(for key: Key) -> Command? { lookup[key] }

    public static let standard = Keymap([
        Binding(keys: [.up, .char("k")], command: .up),
        Binding(keys: [.down, .char("j")], command: .down),
        Binding(keys: [.pageUp, .ctrl("b")], command: .pageUp),
        Binding(keys: [.pageDown, .ctrl("f")], command: .pageDown),
        Binding(keys: [.home, .char("g")], command: .top),
        Binding(keys: [.end, .char("G")], command: .bottom),
        Binding(keys: [.enter], command: .play),
        Binding(keys: [.char(" ")], command: .togglePause),
        Binding(keys: [.char("n")], command: .next),
        Binding(keys: [.char("p")], command: .previous),
        Binding(keys: [.left, .char("h")], command: .seekBack),
        Binding(keys: [.right, .char("l")], command: .seekForward),
        Binding(keys: [.char("+"), .char("=")], command: .volumeUp),
        Binding(keys: [.char("-")], command: .volumeDown),
        Binding(keys: [.char("r")], command: .cycleRepeat),
        Binding(keys: [.char("s")], command: .toggleShuffle),
        Binding(keys: [.char("S")], command: .stop),
        Binding(keys: [.char("i")], command: .jumpToPlaying),
        Binding(keys: [.tab], command: .focusNext),
        Binding(keys: [.backTab], command: .focusPrevious),
        Binding(keys: [.char("/")], command: .filter),
        Binding(keys: [.char(":")], command: .commandLine),
        Binding(keys: [.char("?"), .function(1)], command: .help),
        Binding(keys: [.char("q")], command: .quit),
        Binding(keys: [.char("<")], command: .narrower),
        Binding(keys: [.char(">")], command: .wider),
        Binding(keys: [.char("{")], command: .shorter),
        Binding(keys: [.char("}")], command: .taller),
        Binding(keys: [.char("z")], command: .maximize),
        Binding(keys: [.char("x")], command: .hidePane),
        Binding(keys: [.char("1")], command: .toggleQueue),
        Binding(keys: [.char("2")], command: .toggleNowPlaying),
        Binding(keys: [.char("3")], command: .toggleFriends),
        Binding(keys: [.char("4")], command: .toggleChat),
    ])
}
