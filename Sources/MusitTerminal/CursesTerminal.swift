import CNcursesw
import Foundation
import MusitArt
import MusitRender
import MusitViewModel
import Synchronization

/// Input as the view model understands it.
public enum TerminalInput: Sendable {
    case key(Key)
    case mouse(MouseEvent)
    case resize(width: Int, height: Int)
    /// The screen must be drawn again whole (its contents are unknown).
    case repaint
}

/// ncursesw behind one lock: curses sets the terminal up, restores it, and decodes keys and
/// mouse events on the input thread, which waits on stdin with ppoll() (never on Swift's
/// cooperative pool). Frames are drawn without curses: `FrameEncoder` turns each frame's
/// changes into one write, with the terminal's own control strings from terminfo. Keys are
/// read through a pad, which curses never refreshes, so curses never draws over a frame.
/// ncurses is not thread-safe, so every curses call holds `lock`.
public final class CursesTerminal: @unchecked Sendable {
    public let unicode: Bool
    public private(set) var depth: ColorDepth = .mono
    private let lock = NSLock()
    private var theme: Theme = Theme(depth: .mono)
    /// The theme of the last frame's album colours, rebuilt when they change (cross-fades).
    private var lookTheme: (look: AmbientLook, theme: Theme)?
    private var previous: ScreenBuffer?
    private var encoder: FrameEncoder?
    /// A frame's bytes, kept between frames.
    private var scratch: [UInt8] = []
    /// Where keys are read: a pad, so reading never refreshes (draws) anything.
    private var keys: UnsafeMutablePointer<WINDOW>?
    /// The kitty-protocol picture on screen, and where.
    private var placed: (key: String, rect: Rect)?
    private var placedStale = false
    private var nextImageID: UInt32 = 1
    private var inputThread: Thread?
    private let stopInput = Atomic<Bool>(false)
    private var started = false
    private var dragging = false

    public init() {
        musit_setlocale_all()
        let codeset = String(cString: nl_langinfo(Int32(CODESET)))
        unicode = codeset.uppercased() == "UTF-8"
    }

    public var size: (width: Int, height: Int) {
        lock.lock(); defer { lock.unlock() }
        return (Int(musit_cols()), Int(musit_lines()))
    }

    /// Enters curses mode: alternate screen, raw keys, mouse, colours.
    public func start() {
        lock.lock(); defer { lock.unlock() }
        musit_install_crash_restore()
        // SIGWINCH stays blocked everywhere (whatever a parent left): the input thread
        // takes it while it waits for keys (`musit_wait_input`).
        musit_block_winch()
        set_escdelay(25)
        initscr()
        cbreak()
        noecho()
        nonl()
        keys = newpad(1, 1)
        keypad(keys, true)
        nodelay(keys, true)
        curs_set(0)
        mouseinterval(0)
        mousemask(musit_all_mouse_events(), nil)
        let environment = ProcessInfo.processInfo.environment
        let noColor = environment["NO_COLOR"].map { !$0.isEmpty } ?? false
        // 24-bit colour that terminfo does not describe (COLORTERM on an xterm-256color
        // entry): the RGB sequences are written here, not through setaf.
        var rgbByHand = false
        if has_colors() && !noColor {
            start_color()
            use_default_colors()
            let colors = Int(musit_colors())
            depth = ColorDepth.from(colors: colors, hasColors: true, colorTerm: environment["COLORTERM"])
            rgbByHand = depth == .trueColor && colors < 0x1000000
        } else {
            depth = .mono
        }
        theme = Theme(depth: depth)
        encoder = FrameEncoder(codes: Self.codes(unicode: unicode, rgbByHand: rgbByHand))
        // Curses' one refresh: the alternate screen, cleared. Frames are drawn by `draw`.
        refresh()
        started = true
    }

    /// The terminal's control strings from its terminfo entry.
    /// `rgbByHand`: every colour is 0xRRGGBB (the 24-bit theme and pictures use no ANSI
    /// numbers), written as SGR 38;2 / 48;2, the form every COLORTERM=truecolor terminal takes.
    private static func codes(unicode: Bool, rgbByHand: Bool = false) -> TerminalCodes {
        func string(_ name: String) -> [CChar]? {
            musit_tigetstr(name).map { Array(UnsafeBufferPointer(start: $0, count: strlen($0) + 1)) }
        }
        func bytes(_ name: String) -> [UInt8] {
            string(name).map { $0.dropLast().map { UInt8(bitPattern: $0) } } ?? []
        }
        @Sendable func parameterised(_ cap: [CChar]?, _ a: Int, _ b: Int? = nil) -> [UInt8] {
            guard let cap else { return [] }
            let out = cap.withUnsafeBufferPointer { c -> UnsafePointer<CChar>? in
                if let b { return musit_tiparm2(c.baseAddress!, Int32(a), Int32(b)) }
                return musit_tiparm1(c.baseAddress!, Int32(a))
            }
            guard let out else { return [] }
            return Array(UnsafeRawBufferPointer(start: out, count: strlen(out)))
        }
        let cup = string("cup"), setaf = string("setaf"), setab = string("setab")
        @Sendable func rgb(_ base: Int, _ c: Int) -> [UInt8] {
            Array("\u{1B}[\(base);2;\(c >> 16 & 255);\(c >> 8 & 255);\(c & 255)m".utf8)
        }
        @Sendable func foreground(_ c: Int) -> [UInt8] { rgbByHand ? rgb(38, c) : parameterised(setaf, c) }
        @Sendable func background(_ c: Int) -> [UInt8] { rgbByHand ? rgb(48, c) : parameterised(setab, c) }
        return TerminalCodes(moveTo: { parameterised(cup, $0, $1) }, foreground: { foreground($0) },
                             background: { background($0) }, defaultColors: bytes("op"), reset: bytes("sgr0"),
                             bold: bytes("bold"), dim: bytes("dim"), reverse: bytes("rev"), underline: bytes("smul"),
                             clear: bytes("clear"),
                             bottomRightScrolls: musit_tigetflag("am") != 0 && musit_tigetflag("xenl") == 0,
                             utf8: unicode)
    }

    /// Leaves curses mode and restores the terminal. Idempotent.
    public func stop() {
        stopInput.store(true, ordering: .relaxed)
        inputThread = nil
        lock.lock(); defer { lock.unlock() }
        guard started else { return }
        started = false
        mousemask(0, nil)
        if let keys { delwin(keys) }
        keys = nil
        endwin()
    }

    /// Draws what changed since the last frame, in one write.
    public func draw(_ buffer: ScreenBuffer) {
        lock.lock(); defer { lock.unlock() }
        guard started, encoder != nil else { return }
        if previous.map({ $0.width != buffer.width || $0.height != buffer.height }) ?? true {
            previous = nil
            // A cleared screen may have taken a placed picture with it: place it again.
            placedStale = true
        }
        var frameTheme = theme
        if let look = buffer.look, depth == .trueColor {
            if lookTheme?.look != look { lookTheme = (look, Theme(look: look)) }
            frameTheme = lookTheme?.theme ?? theme
        }
        // Curses' idea of the size, which a resize changes before the frame for it comes.
        guard buffer.width <= Int(musit_cols()), buffer.height <= Int(musit_lines()) else { return }
        // The buffer is taken from `scratch` and given back, so it is never shared (and so
        // never copied) while written.
        var out: [UInt8] = []
        swap(&out, &scratch)
        out.removeAll(keepingCapacity: true)
        encoder?.encode(buffer, over: &previous, theme: frameTheme, into: &out)
        Self.writeAll(out)
        scratch = out
    }

    private static func writeAll(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            offset += n
        }
    }

    /// Shows `image` (the real cover, for a terminal that speaks the kitty graphics protocol)
    /// over the cells of its rectangle, or removes the one shown. Sent only when the picture
    /// or its place changes, or after a full repaint.
    public func showImage(_ image: (key: String, picture: Picture, rect: Rect)?) {
        lock.lock(); defer { lock.unlock() }
        guard started else { return }
        let same = placed.map { p in image.map { $0.key == p.key && $0.rect == p.rect } ?? false } ?? (image == nil)
        if same && !placedStale { return }
        placedStale = false
        var out = ""
        if placed != nil { out += KittyGraphics.delete(id: nextImageID) }
        placed = nil
        if let image, !image.rect.isEmpty {
            nextImageID = nextImageID % 0xFFFF + 1
            // Saved cursor, the rectangle's corner, the picture, the cursor back: curses
            // keeps its idea of where the cursor is.
            out += "\u{1B}7\u{1B}[\(image.rect.y + 1);\(image.rect.x + 1)H"
                + KittyGraphics.place(image.picture, id: nextImageID, columns: image.rect.width, rows: image.rect.height)
                + "\u{1B}8"
            placed = (image.key, image.rect)
        }
        Self.writeAll(Array(out.utf8))
    }

    /// Forgets the last frame so the next draw repaints everything.
    public func invalidate() {
        lock.lock(); defer { lock.unlock() }
        previous = nil
    }

    // MARK: Input

    /// Blocks SIGWINCH in the calling thread and every thread it starts later: call it
    /// first thing in main, so that resizes reach only the input thread's wait.
    public static func routeResizesToInput() { musit_block_winch() }

    /// Starts the input thread; `deliver` is called on it for every event.
    public func startInput(_ deliver: @escaping @Sendable (TerminalInput) -> Void) {
        stopInput.store(false, ordering: .relaxed)
        let thread = Thread { [self] in
            while !stopInput.load(ordering: .relaxed) {
                // Keys, or a resize (SIGWINCH interrupts only this wait): read what curses
                // has. A timeout reads nothing, so an idle screen costs one wake a second.
                let ready = musit_wait_input(STDIN_FILENO, 1000)
                if stopInput.load(ordering: .relaxed) { break }
                if ready == 0 { continue }
                if ready < 0 && errno == EINTR {
                    // A resize (its key follows) or a return from a suspend, after which
                    // the screen holds whatever the shell left: draw everything again.
                    invalidate()
                    deliver(.repaint)
                }
                for event in readAvailable() { deliver(event) }
            }
        }
        thread.name = "musit-input"
        inputThread = thread
        thread.start()
    }

    /// Reads every pending key without blocking (KEY_RESIZE included).
    private func readAvailable() -> [TerminalInput] {
        lock.lock(); defer { lock.unlock() }
        guard started else { return [] }
        var out: [TerminalInput] = []
        var budget = 4096
        while budget > 0 {
            budget -= 1
            var ch: wint_t = 0
            let r = wget_wch(keys, &ch)
            if r == ERR { break }
            if r == musit_key_code_yes() {
                let code = Int32(ch)
                if code == KEY_RESIZE {
                    previous = nil
                    out.append(.resize(width: Int(musit_cols()), height: Int(musit_lines())))
                } else if code == KEY_MOUSE {
                    if let m = readMouse() { out.append(.mouse(m)) }
                } else {
                    out.append(.key(Self.key(code)))
                }
            } else {
                out.append(.key(Self.key(char: UInt32(ch))))
            }
        }
        return out
    }

    private func readMouse() -> MouseEvent? {
        var ev = MEVENT()
        guard getmouse(&ev) == OK else { return nil }
        let x = Int(ev.x), y = Int(ev.y)
        let b = ev.bstate
        if b & musit_button4_pressed() != 0 { return MouseEvent(.scrollUp, x: x, y: y) }
        if b & musit_button5_pressed() != 0 { return MouseEvent(.scrollDown, x: x, y: y) }
        if b & musit_button1_pressed() != 0 { dragging = true; return MouseEvent(.press, x: x, y: y) }
        if b & musit_button1_released() != 0 { dragging = false; return MouseEvent(.release, x: x, y: y) }
        if b & musit_button1_clicked() != 0 { return MouseEvent(.press, x: x, y: y) }
        if b & musit_report_mouse_position() != 0 && dragging { return MouseEvent(.drag, x: x, y: y) }
        return nil
    }

    static func key(_ code: Int32) -> Key {
        switch code {
        case KEY_UP: return .up
        case KEY_DOWN: return .down
        case KEY_LEFT: return .left
        case KEY_RIGHT: return .right
        case KEY_PPAGE: return .pageUp
        case KEY_NPAGE: return .pageDown
        case KEY_HOME: return .home
        case KEY_END: return .end
        case KEY_ENTER: return .enter
        case KEY_BACKSPACE: return .backspace
        case KEY_DC: return .delete
        case KEY_BTAB: return .backTab
        default:
            for n in 1...12 where code == musit_key_f(Int32(n)) { return .function(n) }
            return .unknown(Int(code))
        }
    }

    static func key(char value: UInt32) -> Key {
        switch value {
        case 9: return .tab
        case 10, 13: return .enter
        case 27: return .escape
        case 8, 127: return .backspace
        case 1...26: return .ctrl(Character(Unicode.Scalar(value + 96)!))
        default:
            guard let scalar = Unicode.Scalar(value) else { return .unknown(Int(value)) }
            return .char(Character(scalar))
        }
    }
}
