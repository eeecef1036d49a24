/// A key binding: the keys, what they do, and the words the help shows for it.
public struct KeyBinding<Action: Sendable>: Sendable {
    public let keys: [Key]
    public let action: Action
    public let summary: String

    public init(_ keys: [Key], _ action: Action, _ summary: String) {
        self.keys = keys
        self.action = action
        self.summary = summary
    }
}

/// One line of the help: keys as shown, and what they do.
public struct HelpEntry: Equatable, Sendable {
    public let keys: String
    public let summary: String
}

/// A titled group of the help: one pane's, one editor's, or the global keys.
public struct HelpSection: Equatable, Sendable {
    public let title: String
    public let entries: [HelpEntry]
}

/// The one place a set of keys is defined: the reducer looks keys up in it and the help is
/// written from it, so a key cannot work without being listed, or be listed without working.
public struct BindingTable<Action: Sendable>: Sendable {
    public let title: String
    public let bindings: [KeyBinding<Action>]
    private let lookup: [Key: Action]

    public init(_ title: String, _ bindings: [KeyBinding<Action>]) {
        self.title = title
        self.bindings = bindings
        var map: [Key: Action] = [:]
        for b in bindings {
            for k in b.keys where map[k] == nil { map[k] = b.action }
        }
        lookup = map
    }

    public func action(for key: Key) -> Action? { lookup[key] }

    /// The same table with the keys of some actions replaced (by action name).
    func rebound(_ overrides: [String: [Key]]) -> BindingTable where Action: RawRepresentable, Action.RawValue == String {
        guard !overrides.isEmpty else { return self }
        return BindingTable(title, bindings.map { b in
            overrides[b.action.rawValue].map { KeyBinding($0, b.action, b.summary) } ?? b
        })
    }

    public var help: HelpSection {
        HelpSection(title: title, entries: bindings.map {
            HelpEntry(keys: $0.keys.map(\.description).joined(separator: " "), summary: $0.summary)
        })
    }
}

/// Something that owns keys: a pane, an editor or an overlay. Its table decides which keys
/// it takes, and `perform` what they do; nil from `perform` gives the key up (to the global
/// keys), for a pane whose key means nothing in its current state.
protocol KeyOwner {
    associatedtype Action: RawRepresentable, CaseIterable, Sendable where Action.RawValue == String
    /// Its name in the settings file's `keys` section.
    static var id: String { get }
    /// Its bindings before the settings file has its say.
    static var standard: BindingTable<Action> { get }
    static func perform(_ action: Action, _ s: inout AppState) -> [Effect]?
}

extension KeyOwner {
    /// Its bindings as the settings file leaves them (`KeyConfig`).
    static var keys: BindingTable<Action> { standard.rebound(KeyConfig.overrides(for: id)) }

    /// What `key` does here; nil when it is not this owner's.
    static func handle(_ key: Key, _ s: inout AppState) -> [Effect]? {
        guard let action = keys.action(for: key) else { return nil }
        return perform(action, &s)
    }
}

/// The help, section by section, from the very tables that handle the keys.
public enum Help {
    /// A row of the help overlay: a section's title, or one of its entries.
    public enum Row: Equatable, Sendable {
        case title(String)
        case entry(HelpEntry)
    }

    /// Every row, sections one after another, a blank title between them.
    public static var rows: [Row] {
        var out: [Row] = []
        for (i, section) in sections.enumerated() {
            if i > 0 { out.append(.title("")) }
            out.append(.title(section.title))
            out += section.entries.map { .entry($0) }
        }
        return out
    }

    /// How the overlay lays the rows out in a terminal of `width` × `height`: columns of
    /// `perColumn` rows, and how far it can scroll (in rows).
    public static func layout(width: Int, height: Int) -> (columns: Int, perColumn: Int, maxScroll: Int) {
        let count = rows.count
        let perColumn = max(1, height - 4)
        let columns = max(1, min(3, (width - 4) / 40, (count + perColumn - 1) / perColumn))
        return (columns, perColumn, max(0, count - columns * perColumn))
    }

    public static var sections: [HelpSection] {
        [Reducer.keymap.help, QueuePane.keys.help, FriendsPane.keys.help, ChatPane.keys.help, ComposeEditor.keys.help,
         FilterEditor.keys.help, CommandLineEditor.keys.help, LineEditor.keys.help, SignInPane.keys.help,
         HelpPane.keys.help, OverlayPane.keys.help, ConfirmQuitPane.keys.help, mouse]
    }

    /// What a click does where (`Reducer.handleMouse`).
    static let mouse = HelpSection(title: "Mouse", entries: [
        HelpEntry(keys: "click", summary: "focus a pane; pick a queue row"),
        HelpEntry(keys: "click the bar", summary: "seek there (Now Playing)"),
        HelpEntry(keys: "click a friend", summary: "open the chat (a request: select it)"),
        HelpEntry(keys: "drag a border", summary: "resize the panes"),
        HelpEntry(keys: "wheel", summary: "scroll the queue"),
    ])
}
