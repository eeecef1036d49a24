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
}

/// ncursesw behind one lock: the drawing thread applies screen-buffer diffs, the input
/// thread waits on stdin with poll() (never on Swift's cooperative pool) and decodes keys
/// and mouse events. ncurses is not thread-safe, so every curses call holds `lock`.
public final class CursesTerminal: @unchecked Sendable {
    public let unicode: Bool
    public private(set) var depth: ColorDepth = .mono
    private let lock = NSLock()
    private var theme: Theme = Theme(depth: .mono)
    /// The theme of the last frame's album colours, rebuilt when they change (cross-fades).
    private var lookTheme: (look: AmbientLook, theme: Theme)?
    private var previous: ScreenBuffer?
    /// The wide characters of one stretch of a frame, kept between frames.
    private var scratch: [wchar_t] = []
    /// The kitty-protocol picture on screen, and where.
    private var placed: (key: String, rect: Rect)?
    private var placedStale = false
    private var nextImageID: UInt32 = 1
    private var pairs: [Int64: Int32] = [:]
    private var nextPair: Int32 = 1
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
        keypad(musit_stdscr(), true)
        nodelay(musit_stdscr(), true)
        curs_set(0)
        mouseinterval(0)
        mousemask(musit_all_mouse_events(), nil)
        let noColor = ProcessInfo.processInfo.environment["NO_COLOR"].map { !$0.isEmpty } ?? false
        if has_colors() && !noColor {
            start_color()
            use_default_colors()
            depth = ColorDepth.from(colors: Int(musit_colors()), hasColors: true)
        } else {
            depth = .mono
        }
        theme = Theme(depth: depth)
        started = true
    }

    /// Leaves curses mode and restores the terminal. Idempotent.
    public func stop() {
        stopInput.store(true, ordering: .relaxed)
        inputThread = nil
        lock.lock(); defer { lock.unlock() }
        guard started else { return }
        started = false
        mousemask(0, nil)
        endwin()
    }

    /// Draws what changed since the last frame.
    public func draw(_ buffer: ScreenBuffer) {
        lock.lock(); defer { lock.unlock() }
        guard started else { return }
        if previous.map({ $0.width != buffer.width || $0.height != buffer.height }) ?? true {
            erase()
            previous = nil
            // A cleared screen may have taken a placed picture with it: place it again.
            placedStale = true
        }
        var frameTheme = theme
        if let look = buffer.look, depth == .trueColor {
            if lookTheme?.look != look { lookTheme = (look, Theme(look: look)) }
            frameTheme = lookTheme?.theme ?? theme
        }
        // Colour pairs are finite (covers and cross-fades use many): when a frame might not
        // fit in what is left, start over and repaint everything with fresh pairs.
        if Int(nextPair) + buffer.width * buffer.height >= Int(musit_color_pairs()) && depth != .mono {
            pairs.removeAll(keepingCapacity: true)
            nextPair = 1
            previous = nil
        }
        let maxX = Int(musit_cols()), maxY = Int(musit_lines())
        // Cells of one style and paint go to curses as one string: one call and one
        // attribute change per stretch of text instead of per cell.
        var text = scratch
        text.removeAll(keepingCapacity: true)
        for run in buffer.diff(from: previous) where run.y < maxY {
            var x = run.x, start = run.x
            var current: (style: Style, paint: Paint)?
            func flush() {
                guard !text.isEmpty else { return }
                text.append(0)
                mvaddnwstr(Int32(run.y), Int32(start), text, Int32(text.count - 1))
                text.removeAll(keepingCapacity: true)
            }
            for cell in run.cells {
                defer { x += 1 }
                // The right half of a wide character: curses moved past it already.
                if cell.continuation { continue }
                if x >= maxX { break }
                if current?.style != cell.style || current?.paint != cell.paint {
                    flush()
                    apply(frameTheme.spec(cell.style, cell.paint))
                    current = (cell.style, cell.paint)
                    start = x
                }
                let code = cell.code
                if code >= 0x20 && code < 0x7F {
                    text.append(wchar_t(code))
                    continue
                }
                let width = TextWidth.of(code: code)
                if x + 1 >= maxX && width == 2 {
                    text.append(wchar_t(32))
                    continue
                }
                let first: UInt32
                if code < GlyphCodes.clusterBase {
                    text.append(wchar_t(bitPattern: code))
                    first = code
                } else {
                    let scalars = GlyphCodes.character(code).unicodeScalars
                    for scalar in scalars { text.append(wchar_t(bitPattern: scalar.value)) }
                    first = scalars.first?.value ?? 0x20
                }
                // Where the C library measures a character differently, what follows it
                // is placed by position, so one odd glyph cannot shift the rest of the row.
                if Int(wcwidth(wchar_t(bitPattern: first))) != width {
                    flush()
                    current = nil
                }
            }
            flush()
        }
        scratch = text
        musit_set_style(0, 0)
        previous = buffer
        refresh()
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
        let bytes = Array(out.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            offset += n
        }
    }

    /// Forgets the last frame so the next draw repaints everything.
    public func invalidate() {
        lock.lock(); defer { lock.unlock() }
        previous = nil
    }

    private func apply(_ spec: StyleSpec) {
        var attrs: attr_t = 0
        if spec.bold { attrs |= musit_a_bold() }
        if spec.dim { attrs |= musit_a_dim() }
        if spec.reverse { attrs |= musit_a_reverse() }
        if spec.underline { attrs |= musit_a_underline() }
        musit_set_style(attrs, pair(fg: spec.fg, bg: spec.bg))
    }

    private func pair(fg: Int?, bg: Int?) -> Int32 {
        if fg == nil && bg == nil || depth == .mono { return 0 }
        let key = Int64(fg ?? -1) << 32 | Int64(UInt32(bitPattern: Int32(bg ?? -1)))
        if let p = pairs[key] { return p }
        let p = nextPair
        guard init_extended_pair(p, Int32(fg ?? -1), Int32(bg ?? -1)) == OK else { return 0 }
        nextPair += 1
        pairs[key] = p
        return p
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
            let r = wget_wch(musit_stdscr(), &ch)
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
