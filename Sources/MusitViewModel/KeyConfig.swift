import Synchronization

/// Keys rebound in the settings file: `{"keys": {"queue": {"down": ["j", "Ctrl-n"]}}}`
/// gives the Queue's "down" those keys instead of its own. Sections are the owners' ids
/// (`global`, `queue`, `friends`, `chat`, `compose`, `filter`, `commandLine`, `editing`,
/// `signIn`, `help`, `overlay`, `confirmQuit`), actions their names, keys as the help
/// writes them. A bad entry is refused with one message naming it, and keeps its default.
public enum KeyConfig {
    private static let table = Mutex<[String: [String: [Key]]]>([:])

    static func overrides(for id: String) -> [String: [Key]] { table.withLock { $0[id] ?? [:] } }

    /// Every section with its actions, in the order the help shows them.
    public static let sections: [(id: String, actions: [String])] = [
        ("global", Command.allCases.map(\.rawValue)),
        (QueuePane.id, QueuePane.Action.allCases.map(\.rawValue)),
        (FriendsPane.id, FriendsPane.Action.allCases.map(\.rawValue)),
        (ChatPane.id, ChatPane.Action.allCases.map(\.rawValue)),
        (ComposeEditor.id, ComposeEditor.Action.allCases.map(\.rawValue)),
        (FilterEditor.id, FilterEditor.Action.allCases.map(\.rawValue)),
        (CommandLineEditor.id, CommandLineEditor.Action.allCases.map(\.rawValue)),
        ("editing", LineEditor.EditAction.allCases.map(\.rawValue)),
        (SignInPane.id, SignInPane.Action.allCases.map(\.rawValue)),
        (HelpPane.id, HelpPane.Action.allCases.map(\.rawValue)),
        (OverlayPane.id, OverlayPane.Action.allCases.map(\.rawValue)),
        (ConfirmQuitPane.id, ConfirmQuitPane.Action.allCases.map(\.rawValue)),
    ]

    /// Takes the settings file's `keys`; returns one message per entry refused.
    @discardableResult
    public static func apply(_ raw: [String: [String: [String]]]) -> [String] {
        var problems: [String] = []
        var accepted: [String: [String: [Key]]] = [:]
        for (section, actions) in raw.sorted(by: { $0.key < $1.key }) {
            guard let known = sections.first(where: { $0.id == section }) else {
                problems.append("keys.\(section): no such section (one of \(sections.map(\.id).joined(separator: ", ")))")
                continue
            }
            for (action, names) in actions.sorted(by: { $0.key < $1.key }) {
                let path = "keys.\(section).\(action)"
                guard known.actions.contains(action) else {
                    problems.append("\(path): no such action (one of \(known.actions.joined(separator: ", ")))")
                    continue
                }
                let keys = names.map { ($0, KeyNames.parse($0)) }
                if let bad = keys.first(where: { $0.1 == nil }) {
                    problems.append("\(path): \"\(bad.0)\" is not a key (a character, Enter, Space, Tab, Esc, Up, PgDn, F1, Ctrl-x…)")
                    continue
                }
                accepted[section, default: [:]][action] = keys.compactMap(\.1)
            }
        }
        // A key given to two actions of one section would do only one of them.
        for (section, actions) in accepted {
            var owner: [Key: String] = [:]
            for (action, keys) in actions.sorted(by: { $0.key < $1.key }) {
                for k in keys {
                    if let other = owner[k] {
                        problems.append("keys.\(section).\(action): \(k) is also given to \(other); \(action) keeps its default")
                        accepted[section]?[action] = nil
                    } else {
                        owner[k] = action
                    }
                }
            }
        }
        table.withLock { $0 = accepted }
        return problems
    }

    /// Every action's keys as they are now, for `--print-config`.
    public static var effective: [String: [String: [String]]] {
        func names<A>(_ t: BindingTable<A>) -> [String: [String]] where A: RawRepresentable, A.RawValue == String {
            Dictionary(t.bindings.map { ($0.action.rawValue, $0.keys.map(\.description)) }, uniquingKeysWith: { a, _ in a })
        }
        return [
            "global": names(Reducer.keymap), QueuePane.id: names(QueuePane.keys), FriendsPane.id: names(FriendsPane.keys),
            ChatPane.id: names(ChatPane.keys), ComposeEditor.id: names(ComposeEditor.keys), FilterEditor.id: names(FilterEditor.keys),
            CommandLineEditor.id: names(CommandLineEditor.keys), "editing": names(LineEditor.keys), SignInPane.id: names(SignInPane.keys),
            HelpPane.id: names(HelpPane.keys), OverlayPane.id: names(OverlayPane.keys), ConfirmQuitPane.id: names(ConfirmQuitPane.keys),
        ]
    }
}

/// Key names as the help writes them (`Key.description`), plus a few spellings people use.
public enum KeyNames {
    static let named: [String: Key] = {
        var map: [String: Key] = [:]
        let keys: [Key] = [.up, .down, .left, .right, .pageUp, .pageDown, .home, .end, .enter, .tab, .backTab, .backspace,
                           .delete, .escape, .char(" ")] + (1...12).map { .function($0) }
        for k in keys { map[k.description.lowercased()] = k }
        let aliases: [String: Key] = ["up": .up, "down": .down, "left": .left, "right": .right, "pageup": .pageUp,
                                      "pagedown": .pageDown, "return": .enter, "escape": .escape, "space": .char(" "),
                                      "backtab": .backTab, "del": .delete]
        map.merge(aliases) { a, _ in a }
        return map
    }()

    /// The key named `text`: one character, a name (`Enter`, `PgDn`, `F5`, `↑`…) or
    /// `Ctrl-x`; nil when it names none.
    public static func parse(_ text: String) -> Key? {
        if text.count == 1, let c = text.first { return .char(c) }
        let lower = text.lowercased()
        if lower.hasPrefix("ctrl-"), text.count == 6, let c = lower.last, c.isLetter { return .ctrl(c) }
        return named[lower]
    }
}
