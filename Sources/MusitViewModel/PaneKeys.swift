/// The keys of each pane, editor and overlay: each type owns its table (what the help
/// lists) and what its actions do; a pane also answers mouse presses in its frame, and
/// MusitRender extends it with its drawing (`PaneView`). `Reducer.handleKey` asks the focused pane, or the mode's
/// owner, first; the global keys (`Keymap.standard`) come after a pane gives a key up.

// MARK: Panes

/// A pane's answer to a mouse press at (x, y) inside its `frame` (the pane has the focus).
protocol MouseOwner {
    static func press(x: Int, y: Int, frame: Rect, _ s: inout AppState) -> [Effect]
}

public enum QueuePane: KeyOwner, MouseOwner {
    enum Action: String, Sendable, CaseIterable { case up, down, pageUp, pageDown, top, bottom, play, order }

    static let id = "queue"
    static let standard = BindingTable<Action>("Queue", [
        KeyBinding([.up, .char("k")], .up, "move up"),
        KeyBinding([.down, .char("j")], .down, "move down"),
        KeyBinding([.pageUp, .ctrl("b")], .pageUp, "page up"),
        KeyBinding([.pageDown, .ctrl("f")], .pageDown, "page down"),
        KeyBinding([.home, .char("g")], .top, "first row"),
        KeyBinding([.end, .char("G")], .bottom, "last row"),
        KeyBinding([.enter], .play, "play the selected track"),
        KeyBinding([.char("o")], .order, "order: folder, then by album and track (:sort path|album)"),
    ])

    static func perform(_ action: Action, _ s: inout AppState) -> [Effect]? {
        let rows = s.queueRows
        let requests: [QueuePageRequest]
        switch action {
        case .up: requests = s.queue.move(by: -1, visibleRows: rows)
        case .down: requests = s.queue.move(by: 1, visibleRows: rows)
        case .pageUp: requests = s.queue.move(by: -rows, visibleRows: rows)
        case .pageDown: requests = s.queue.move(by: rows, visibleRows: rows)
        case .top: requests = s.queue.setCursor(0, visibleRows: rows)
        case .bottom: requests = s.queue.setCursor(s.queue.count - 1, visibleRows: rows)
        case .play:
            guard let item = s.queue.selected else { return [] }
            return [.player(.play(index: item.index))]
        case .order:
            let all = QueueSort.allCases
            return Reducer.sortQueue(&s, all[(all.firstIndex(of: s.queue.sort)! + 1) % all.count])
        }
        return requests.map { .fetch($0) }
    }

    /// A press on a row selects it.
    static func press(x: Int, y: Int, frame: Rect, _ s: inout AppState) -> [Effect] {
        guard y > frame.y && y < frame.maxY - 1 else { return [] }
        return Reducer.fetches(s.queue.setCursor(s.queue.top + (y - frame.y - 1), visibleRows: s.queueRows))
    }
}

/// Now Playing has no keys of its own (the player's are global); it answers the mouse.
public enum NowPlayingPane: MouseOwner {
    /// A press on the progress bar seeks there.
    static func press(x: Int, y: Int, frame: Rect, _ s: inout AppState) -> [Effect] {
        guard let bar = PaneGeometry.progressBar(PaneGeometry.nowPlayingText(PaneGeometry.inner(frame), s)),
              bar.contains(x: x, y: y), let duration = s.nowPlaying.duration, duration > 0,
              s.nowPlaying.state != .stopped else { return [] }
        let fraction = Double(x - bar.x) / Double(max(1, bar.width - 1))
        return [.player(.seekTo((fraction * duration * 10).rounded() / 10))]
    }
}

public enum FriendsPane: KeyOwner, MouseOwner {
    enum Action: String, Sendable, CaseIterable { case up, down, open, accept, decline, add, profile }

    static let id = "friends"
    static let standard = BindingTable<Action>("Friends", [
        KeyBinding([.up, .char("k")], .up, "previous friend"),
        KeyBinding([.down, .char("j")], .down, "next friend"),
        KeyBinding([.enter], .open, "chat with the friend (accept a request)"),
        KeyBinding([.char("a")], .accept, "accept the request"),
        KeyBinding([.char("d")], .decline, "decline the request"),
        KeyBinding([.char("f")], .add, "add a friend by name"),
        KeyBinding([.char("v")], .profile, "view the profile"),
    ])

    static func perform(_ action: Action, _ s: inout AppState) -> [Effect]? {
        guard s.signedIn else { return nil }
        switch action {
        case .up:
            s.social.friendCursor = max(0, s.social.friendCursor - 1)
        case .down:
            s.social.friendCursor = max(0, min(s.social.friends.count - 1, s.social.friendCursor + 1))
        case .open:
            guard let f = s.social.selectedFriend else { return [] }
            switch f.relation {
            case .friend: return Reducer.openChat(&s, with: f.username)
            case .incoming: return [.session(.acceptFriend(f.username))]
            case .outgoing: s.message = "waiting for \(f.username) to accept"
            }
        case .accept:
            guard let f = s.social.selectedFriend, f.relation == .incoming else { return [] }
            return [.session(.acceptFriend(f.username))]
        case .decline:
            guard let f = s.social.selectedFriend, f.relation == .incoming else { return [] }
            return [.session(.declineFriend(f.username))]
        case .add:
            s.mode = .command("friend ")
        case .profile:
            guard let f = s.social.selectedFriend else { return [] }
            return [.session(.loadProfile(f.username))]
        }
        return []
    }

    /// A press on a friend opens the chat; on a request, selects it (a / d answer it).
    static func press(x: Int, y: Int, frame: Rect, _ s: inout AppState) -> [Effect] {
        let inner = PaneGeometry.inner(frame)
        guard s.signedIn, inner.contains(x: x, y: y) else { return [] }
        let (perRow, top) = PaneGeometry.friends(inner, count: s.social.friends.count, cursor: s.social.friendCursor)
        let i = top + (y - inner.y) / perRow
        guard s.social.friends.indices.contains(i) else { return [] }
        s.social.friendCursor = i
        let f = s.social.friends[i]
        return f.relation == .friend ? Reducer.openChat(&s, with: f.username) : []
    }
}

public enum ChatPane: KeyOwner, MouseOwner {
    enum Action: String, Sendable, CaseIterable { case compose, older, newer, pageOlder, pageNewer, newest, previousConversation, nextConversation }

    static let id = "chat"
    static let standard = BindingTable<Action>("Chat", [
        KeyBinding([.enter, .char("c")], .compose, "write a message (Enter: open the selected friend's chat)"),
        KeyBinding([.up, .char("k")], .older, "scroll to older messages"),
        KeyBinding([.down, .char("j")], .newer, "scroll to newer messages"),
        KeyBinding([.pageUp], .pageOlder, "a page older"),
        KeyBinding([.pageDown], .pageNewer, "a page newer"),
        KeyBinding([.end, .char("G")], .newest, "the newest message"),
        KeyBinding([.char("[")], .previousConversation, "the previous conversation (in the title)"),
        KeyBinding([.char("]")], .nextConversation, "the next conversation"),
    ])

    static func perform(_ action: Action, _ s: inout AppState) -> [Effect]? {
        guard s.signedIn else { return nil }
        guard s.social.chat.peer != nil else {
            // No conversation yet: Enter opens the one with the friend selected in Friends.
            if case .compose = action, let f = s.social.selectedFriend, f.relation == .friend {
                return Reducer.openChat(&s, with: f.username)
            }
            return nil
        }
        switch action {
        case .compose:
            s.mode = .compose
            return []
        case .older: return Reducer.scrollChat(&s, by: 1)
        case .newer: return Reducer.scrollChat(&s, by: -1)
        case .pageOlder: return Reducer.scrollChat(&s, by: max(1, Reducer.chatRows(s) - 1))
        case .pageNewer: return Reducer.scrollChat(&s, by: -max(1, Reducer.chatRows(s) - 1))
        case .newest:
            s.social.chat.scroll = 0
            return []
        case .previousConversation, .nextConversation:
            // In title order, which stays put while switching (the list is reordered only
            // when a conversation is opened from elsewhere).
            let list = s.social.conversations
            guard list.count > 1, let peer = s.social.chat.peer, let i = list.firstIndex(of: peer) else { return [] }
            let next = list[(i + (action == .nextConversation ? 1 : list.count - 1)) % list.count]
            let effects = Reducer.openChat(&s, with: next)
            s.social.conversations = list
            return effects
        }
    }

    /// A press only focuses the chat.
    static func press(x: Int, y: Int, frame: Rect, _ s: inout AppState) -> [Effect] { [] }
}

/// Where the panes draw what a click can hit: one answer for the renderer and the reducer.
public enum PaneGeometry {
    /// Inside a pane's border.
    public static func inner(_ frame: Rect) -> Rect {
        Rect(x: frame.x + 1, y: frame.y + 1, width: max(0, frame.width - 2), height: max(0, frame.height - 2))
    }

    /// Now Playing's progress bar (under the title and the artist line), in `inner`.
    public static func progressBar(_ inner: Rect) -> Rect? {
        let r = Rect(x: inner.x + 1, y: inner.y + 2, width: max(0, inner.width - 2), height: 1)
        return r.y < inner.maxY && r.width > 0 ? r : nil
    }

    /// The Friends list: rows per friend (name, then what they play, when there is room),
    /// and the first friend shown.
    public static func friends(_ inner: Rect, count: Int, cursor: Int) -> (perRow: Int, top: Int) {
        let perRow = inner.height >= 2 * count || inner.height >= 6 ? 2 : 1
        let visible = max(1, inner.height / perRow)
        return (perRow, max(0, min(cursor - visible + 1, count - visible)))
    }
}

// MARK: Editors

/// Writing a chat message; other keys edit the line (`LineEditor.keys`).
enum ComposeEditor: KeyOwner {
    enum Action: String, Sendable, CaseIterable { case send, cancel }

    static let id = "compose"
    static let standard = BindingTable<Action>("Chat: writing", [
        KeyBinding([.enter], .send, "send the message"),
        KeyBinding([.escape], .cancel, "stop writing (the text stays)"),
    ])

    static func perform(_ action: Action, _ s: inout AppState) -> [Effect]? {
        switch action {
        case .cancel:
            s.mode = .normal
            return []
        case .send:
            let text = s.social.chat.compose.text.trimmingCharacters(in: .whitespaces)
            guard let peer = s.social.chat.peer, !text.isEmpty else { return [] }
            s.social.chat.compose.clear()
            s.social.chat.scroll = 0
            return [.session(.sendChat(to: peer, body: text))]
        }
    }
}

/// Typing a filter after `/`; characters narrow the queue as they are typed.
enum FilterEditor: KeyOwner {
    enum Action: String, Sendable, CaseIterable { case keep, clear, erase, eraseAll }

    static let id = "filter"
    static let standard = BindingTable<Action>("Filter (/)", [
        KeyBinding([.enter], .keep, "keep the filter"),
        KeyBinding([.escape], .clear, "clear the filter"),
        KeyBinding([.backspace, .delete], .erase, "erase a character"),
        KeyBinding([.ctrl("u")], .eraseAll, "erase the line"),
    ])

    static func perform(_ action: Action, _ s: inout AppState) -> [Effect]? {
        guard case .filter(let text) = s.mode else { return nil }
        let new: String
        switch action {
        case .keep:
            s.mode = .normal
            return []
        case .clear:
            s.mode = .normal
            new = ""
        case .erase:
            new = String(text.dropLast())
            s.mode = .filter(new)
        case .eraseAll:
            new = ""
            s.mode = .filter(new)
        }
        return s.queue.reset(filter: new, visibleRows: s.queueRows).map { .fetch($0) }
    }
}

/// Typing a command after `:`.
enum CommandLineEditor: KeyOwner {
    enum Action: String, Sendable, CaseIterable { case run, cancel, erase, eraseAll }

    static let id = "commandLine"
    static let standard = BindingTable<Action>("Command line (:)", [
        KeyBinding([.enter], .run, "run it (:add PATH, :chat NAME [TEXT], :friend NAME, :seek S, :vol N, :q)"),
        KeyBinding([.escape], .cancel, "cancel"),
        KeyBinding([.backspace, .delete], .erase, "erase a character (on an empty line: cancel)"),
        KeyBinding([.ctrl("u")], .eraseAll, "erase the line"),
    ])

    static func perform(_ action: Action, _ s: inout AppState) -> [Effect]? {
        guard case .command(let text) = s.mode else { return nil }
        switch action {
        case .run:
            s.mode = .normal
            return Reducer.execute(&s, text)
        case .cancel:
            s.mode = .normal
        case .erase:
            s.mode = text.isEmpty ? .normal : .command(String(text.dropLast()))
        case .eraseAll:
            s.mode = .command("")
        }
        return []
    }
}

extension LineEditor {
    public enum EditAction: String, Sendable, CaseIterable { case backspace, delete, left, right, home, end, clearBefore, clearAfter, deleteWord }

    /// The editing keys of every text field (chat, sign-in); characters are typed as they are.
    /// The editing keys as the settings file leaves them (`KeyConfig`).
    public static var keys: BindingTable<EditAction> { standard.rebound(KeyConfig.overrides(for: "editing")) }

    public static let standard = BindingTable<EditAction>("Editing text (chat, sign-in)", [
        KeyBinding([.backspace], .backspace, "erase before the cursor"),
        KeyBinding([.delete, .ctrl("d")], .delete, "erase under the cursor"),
        KeyBinding([.left, .ctrl("b")], .left, "cursor left"),
        KeyBinding([.right, .ctrl("f")], .right, "cursor right"),
        KeyBinding([.home, .ctrl("a")], .home, "start of the line"),
        KeyBinding([.end, .ctrl("e")], .end, "end of the line"),
        KeyBinding([.ctrl("u")], .clearBefore, "erase to the start"),
        KeyBinding([.ctrl("k")], .clearAfter, "erase to the end"),
        KeyBinding([.ctrl("w")], .deleteWord, "erase the word before"),
    ])
}

// MARK: Screens and overlays

public enum SignInPane: KeyOwner {
    enum Action: String, Sendable, CaseIterable { case switchField, toggleRegister, submit, quit }

    static let id = "signIn"
    static let standard = BindingTable<Action>("Sign in", [
        KeyBinding([.tab, .backTab, .up, .down], .switchField, "the other field"),
        KeyBinding([.ctrl("r"), .function(2)], .toggleRegister, "sign in / register a new account"),
        KeyBinding([.enter], .submit, "next field, then sign in"),
        KeyBinding([.escape], .quit, "quit"),
    ])

    static func perform(_ action: Action, _ s: inout AppState) -> [Effect]? {
        guard case .signIn(var form) = s.mode else { return nil }
        guard !form.busy else { return [] }
        switch action {
        case .quit:
            s.quitting = true
            return [.quit]
        case .switchField:
            form.field = form.field == .username ? .password : .username
        case .toggleRegister:
            form.register.toggle()
            form.error = nil
        case .submit:
            if form.field == .username {
                form.field = .password
            } else if form.username.text.isEmpty {
                form.field = .username
                form.error = "enter a username"
            } else if form.password.text.isEmpty {
                form.error = "enter a password"
            } else {
                form.busy = true
                form.error = nil
                s.mode = .signIn(form)
                return [.session(.signIn(username: form.username.text, password: form.password.text, register: form.register))]
            }
        }
        s.mode = .signIn(form)
        return []
    }
}

public enum HelpPane: KeyOwner {
    enum Action: String, Sendable, CaseIterable { case close, up, down, pageUp, pageDown }

    static let id = "help"
    static let standard = BindingTable<Action>("Help", [
        KeyBinding([.escape, .char("q"), .char("?"), .enter, .function(1)], .close, "close the help"),
        KeyBinding([.up, .char("k")], .up, "scroll up"),
        KeyBinding([.down, .char("j")], .down, "scroll down"),
        KeyBinding([.pageUp, .ctrl("b")], .pageUp, "page up"),
        KeyBinding([.pageDown, .ctrl("f"), .char(" ")], .pageDown, "page down"),
    ])

    static func perform(_ action: Action, _ s: inout AppState) -> [Effect]? {
        let layout = Help.layout(width: s.width, height: s.height)
        let page = layout.perColumn
        switch action {
        case .close:
            s.mode = .normal
            s.helpScroll = 0
            return []
        case .up: s.helpScroll -= 1
        case .down: s.helpScroll += 1
        case .pageUp: s.helpScroll -= page
        case .pageDown: s.helpScroll += page
        }
        s.helpScroll = max(0, min(layout.maxScroll, s.helpScroll))
        return []
    }
}

/// Statistics and profiles, drawn over the panes.
public enum OverlayPane: KeyOwner {
    enum Action: String, Sendable, CaseIterable { case close }

    static let id = "overlay"
    static let standard = BindingTable<Action>("Statistics and profiles", [
        KeyBinding([.escape, .char("q"), .enter], .close, "close"),
    ])

    static func perform(_ action: Action, _ s: inout AppState) -> [Effect]? {
        s.mode = .normal
        return []
    }
}

public enum ConfirmQuitPane: KeyOwner {
    enum Action: String, Sendable, CaseIterable { case quit }

    static let id = "confirmQuit"
    static let standard = BindingTable<Action>("Quit while playing?", [
        KeyBinding([.char("y"), .char("Y"), .enter], .quit, "quit (any other key stays)"),
    ])

    static func perform(_ action: Action, _ s: inout AppState) -> [Effect]? {
        s.quitting = true
        return [.quit]
    }
}
