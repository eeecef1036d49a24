import Foundation
import MusitRender
@testable import MusitViewModel
import Testing

extension Script {
    func session(_ events: SessionEvent...) {
        for e in events { store.send(.session(e)) }
        pump()
    }

    var sessionEffects: [SessionEffect] {
        effects.compactMap { if case .session(let e) = $0 { e } else { nil } }
    }

    /// Signed in as `me` with friends bob (online), carol (offline) and a request from dave.
    static func signedIn(width: Int = 120, height: Int = 40, me: String = "alice", admin: Bool = false) -> Script {
        let s = Script(width: width, height: height, rows: 3)
        s.session(.connection(.online), .signedIn(username: me, admin: admin),
                  .friends([Friend(username: "bob", displayName: "Bob", relation: .friend, online: true),
                            Friend(username: "carol", displayName: "Carol", relation: .friend),
                            Friend(username: "dave", displayName: "Dave", relation: .incoming)]))
        return s
    }

    /// Focuses a pane by pressing Tab (at most once per pane).
    func focus(_ pane: PaneID) {
        for _ in 0..<4 where state.focus != pane { keys(.tab) }
    }

    func line(_ id: Int64?, _ from: String, _ to: String, _ body: String, _ d: ChatLine.Delivery = .sent) -> ChatLine {
        ChatLine(id: id, clientId: "c\(id ?? 0)-\(body.hashValue)", from: from, to: to, body: body, delivery: d)
    }
}

@Suite("View model: sign-in, friends and chat, by key scripts")
struct SocialTests {
    @Test("mouse: a click on the progress bar seeks there; a click on a friend opens the chat; on a request, selects it")
    func mouseTargets() {
        let s = Script.signedIn()
        var np = NowPlaying()
        np.state = .playing
        np.title = "Track"
        np.duration = 200
        np.position = 20
        s.store.send(.nowPlaying(np))
        // Found on the screen as drawn: the progress bar's row and its ends.
        let lines = s.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let row = lines.firstIndex { $0.contains("▏") || $0.contains("░░░") }!
        let chars = Array(lines[row])
        let first = chars.firstIndex { "█▏▎▍▌▋▊▉░".contains($0) }!
        let last = chars.lastIndex { "█▏▎▍▌▋▊▉░".contains($0) }!
        for (x, want) in [(first, 0.0), (last, 200.0), ((first + last) / 2, 100.0)] {
            s.store.send(.mouse(MouseEvent(.press, x: x, y: row)))
            guard case .player(.seekTo(let t)) = s.effects.last else {
                Issue.record("no seek for a click at \(x) on row \(row): \(String(describing: s.effects.last))")
                continue
            }
            #expect(abs(t - want) <= 200.0 / Double(last - first), "clicked at \(x): seek to \(t), want about \(want)")
        }
        // A click beside the bar seeks nowhere.
        let before = s.effects.count
        s.store.send(.mouse(MouseEvent(.press, x: first, y: row + 1)))
        #expect(s.effects.count == before)
        // Friends, as drawn: a click on the request selects it; on bob, opens the chat.
        let text = s.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let daveRow = text.firstIndex { $0.contains("dave  wants") }!
        let daveX = text[daveRow].distance(from: text[daveRow].startIndex, to: text[daveRow].range(of: "dave  wants")!.lowerBound)
        s.store.send(.mouse(MouseEvent(.press, x: daveX, y: daveRow)))
        #expect(s.state.social.selectedFriend?.username == "dave" && s.state.focus == .friends)
        #expect(!s.sessionEffects.contains(.openConversation("dave")))
        let bobRow = text.firstIndex { $0.contains("● bob") }!
        let bobX = text[bobRow].distance(from: text[bobRow].startIndex, to: text[bobRow].range(of: "● bob")!.lowerBound)
        s.store.send(.mouse(MouseEvent(.press, x: bobX, y: bobRow + 1)))  // the row under the name is bob's too
        #expect(s.sessionEffects.last == .openConversation("bob"))
        #expect(s.state.focus == .chat && s.text.contains("Chat: bob"))
    }

    @Test("conversations: the Chat title lists the others with unread counts; [ and ] switch between them")
    func conversations() {
        let s = Script.signedIn()
        s.focus(.friends)
        s.keys(.down, .enter)
        #expect(s.state.social.chat.peer == "bob")
        #expect(!s.text.contains("Chat: bob  ["), "one conversation: nothing to switch to")
        s.session(.message(s.line(7, "carol", "alice", "psst")))
        #expect(s.text.contains("Chat: bob  [ carol (1) ]"), "\(s.text)")
        s.keys(.char("]"))
        #expect(s.state.social.chat.peer == "carol" && s.sessionEffects.last == .openConversation("carol"))
        #expect(s.text.contains("Chat: carol  [ bob ]"), "carol's unread are read once open: \(s.text)")
        #expect(s.state.social.unread("carol") == 0)
        s.keys(.char("]"))
        #expect(s.state.social.chat.peer == "bob", "round and round, in the title's order")
        s.keys(.char("["))
        #expect(s.state.social.chat.peer == "carol")
        s.keys(.char("["))
        #expect(s.state.social.chat.peer == "bob")
    }

    @Test("the sign-in screen: typing, a masked password, register, errors; what is sent is what was typed")
    func signIn() {
        let s = Script(width: 100, height: 30, rows: 0)
        s.store.send(.session(.signedOut("the session expired; sign in again")))
        #expect(s.text.contains("Sign in"))
        #expect(s.text.contains("the session expired; sign in again"))
        s.type("alicé")
        s.keys(.backspace)
        s.type("e")
        s.keys(.enter)
        s.type("pässwörd 🔑")
        #expect(s.text.contains("Username: alice"))
        #expect(s.text.contains("Password: **********▏"), "one star per character: \(s.text)")
        #expect(!s.text.contains("pässwörd"), "the password is never drawn")
        s.keys(.ctrl("r"))
        #expect(s.text.contains("Register"))
        s.keys(.enter)
        #expect(s.sessionEffects.last == .signIn(username: "alice", password: "pässwörd 🔑", register: true))
        // Busy: keys do nothing until the answer.
        s.type("zzz")
        guard case .signIn(let form) = s.state.mode else { Issue.record("left the form"); return }
        #expect(form.busy && form.password.text == "pässwörd 🔑")
        s.session(.signInFailed("409 Conflict: the name is taken"))
        #expect(s.text.contains("the name is taken"))
        guard case .signIn(let again) = s.state.mode else { Issue.record("left the form"); return }
        #expect(again.password.text.isEmpty && !again.busy, "a failed attempt clears the password")
        s.session(.signedIn(username: "alice", admin: false))
        #expect(s.state.mode == .normal && s.state.signedIn)
        // Signed out, the name is kept; an empty password is refused on the spot, and so is
        // an empty name.
        s.store.send(.session(.signedOut("")))
        #expect(s.text.contains("Username: alice"))
        s.keys(.enter)
        #expect(s.text.contains("enter a password"))
        s.keys(.tab, .ctrl("u"), .enter, .enter)
        #expect(s.text.contains("enter a username"), "\(s.text)")
    }

    @Test("friends pane: online first, requests on top; Enter opens a chat, a accepts, d declines")
    func friendsPane() {
        let s = Script.signedIn()
        let names = s.state.social.friends.map(\.username)
        #expect(names == ["dave", "bob", "carol"], "request, online, offline: \(names)")
        #expect(s.text.contains("dave  wants to be friends"))
        #expect(s.text.contains("● bob") && s.text.contains("○ carol"))
        s.focus(.friends)
        s.keys(.char("a"))
        #expect(s.sessionEffects.last == .acceptFriend("dave"))
        s.keys(.char("d"))
        #expect(s.sessionEffects.last == .declineFriend("dave"))
        s.keys(.down)
        s.keys(.enter)
        #expect(s.sessionEffects.last == .openConversation("bob"))
        #expect(s.state.focus == .chat)
        #expect(s.text.contains("Chat: bob"))
        // Presence moves under the name and advances with the clock while playing.
        s.store.send(.tick(1000))
        s.session(.presence(user: "carol", online: true,
                            playing: FriendPlaying(state: .playing, title: "Song", artist: "Artist", position: 10, duration: 180,
                                                   reportedAt: 1000)))
        #expect(s.text.contains("▶ Song – Artist 0:10/3:00"), "\(s.text)")
        s.store.send(.tick(1005))
        #expect(s.text.contains("▶ Song – Artist 0:15/3:00"))
        #expect(s.state.social.friends.map(\.username) == ["dave", "bob", "carol"] || s.state.social.friends[1].online)
    }

    @Test("a request's answer after the acceptance's event says nothing; before it, shows the request as pending")
    func requestAnswerAfterAcceptance() {
        let s = Script.signedIn()
        // In order: the answer, then the acceptance.
        s.session(.friendRequestSent(to: "erin"))
        #expect(s.state.social.friends.first { $0.username == "erin" }?.relation == .outgoing)
        #expect(s.text.contains("friend request sent to erin"), "\(s.text)")
        s.session(.friendAccepted(by: "erin"))
        #expect(s.text.contains("erin is now a friend"))
        // Out of order: they accepted while our request's answer was on its way.
        s.session(.friends(s.state.social.friends + [Friend(username: "fay", displayName: "Fay", relation: .outgoing)]))
        s.session(.friendAccepted(by: "fay"), .friendRequestSent(to: "fay"))
        #expect(s.state.social.friends.first { $0.username == "fay" }?.relation == .friend)
        #expect(s.text.contains("fay is now a friend") && !s.text.contains("friend request sent to fay"), "\(s.text)")
        // Out of order before any reload knew of them: the acceptance came first.
        s.session(.friendAccepted(by: "gus"), .friendRequestSent(to: "gus"))
        #expect(s.state.social.friends.first { $0.username == "gus" }?.relation == .friend)
        #expect(s.text.contains("gus is now a friend") && !s.text.contains("friend request sent to gus"), "\(s.text)")
    }

    @Test("compose: full UTF-8 editing by grapheme, Enter sends exactly the text, delivery marks follow the server")
    func compose() {
        let s = Script.signedIn()
        s.store.send(.key(.char(":")))
        s.type("chat bob")
        s.keys(.enter)
        s.session(.history(peer: "bob", lines: [s.line(1, "bob", "alice", "hi alice")], olderBefore: nil, older: false))
        #expect(s.sessionEffects.contains(.markRead(peer: "bob", upTo: 1)))
        #expect(s.text.contains("bob: hi alice"))
        s.keys(.enter)  // compose
        #expect(s.state.mode == .compose)
        s.type("héllo 👍🏽 名前 wörld")
        s.keys(.ctrl("w"))  // drops "wörld"
        s.keys(.left, .left, .backspace)  // drops "名" before "前 "? cursor: after "前 " → left twice → before "前"; backspace removes "名"
        s.keys(.home, .delete)  // drops "h"
        s.keys(.end)
        s.type("!")
        #expect(s.state.social.chat.compose.text == "éllo 👍🏽 前 !", "\(s.state.social.chat.compose.text)")
        s.keys(.enter)
        #expect(s.sessionEffects.last == .sendChat(to: "bob", body: "éllo 👍🏽 前 !"))
        #expect(s.state.social.chat.compose.text.isEmpty)
        // The app queues it (on disk) and reports each step.
        var mine = ChatLine(id: nil, clientId: "k1", from: "alice", to: "bob", body: "éllo 👍🏽 前 !", delivery: .queued)
        s.session(.queued(mine))
        #expect(s.text.contains("me: éllo 👍🏽 前 !") && s.text.contains("◷"))
        s.session(.delivery(clientId: "k1", id: 7, .sent))
        #expect(s.text.contains("✓") && !s.text.contains("◷"))
        // The same message echoed by the sync loop does not appear twice.
        mine.id = 7
        mine.delivery = .sent
        s.session(.message(mine))
        #expect(s.state.social.chat.lines.filter { $0.clientId == "k1" }.count == 1)
        s.session(.read(by: "bob", upTo: 7))
        #expect(s.text.contains("✓✓"))
        // Esc leaves compose; keys are global again.
        s.keys(.escape)
        #expect(s.state.mode == .normal)
    }

    @Test("unread counts, a message in another conversation, and history that loads as you scroll up")
    func unreadAndHistory() {
        let s = Script.signedIn(width: 100, height: 30)
        s.session(.message(s.line(3, "carol", "alice", "psst")))
        #expect(s.text.contains("carol  (1 new)"), "\(s.text)")
        #expect(s.state.message == "carol: psst")
        s.session(.message(s.line(4, "carol", "alice", "again")))
        #expect(s.text.contains("carol  (2 new)"))
        s.store.send(.key(.char(":")))
        s.type("chat carol")
        s.keys(.enter)
        #expect(!s.text.contains("(2 new)"), "opening the chat clears the count")
        // The newest 50 of a long conversation; scrolling up asks once for the page before.
        let page: [ChatLine] = (51...100).map { (n: Int) -> ChatLine in
            let theirs = n % 2 == 0
            return s.line(Int64(n), theirs ? "carol" : "alice", theirs ? "alice" : "carol", "m\(n)")
        }
        s.session(.history(peer: "carol", lines: page, olderBefore: 51, older: false))
        #expect(s.text.contains("m100") && !s.text.contains("m51 "))
        for _ in 0..<60 { s.keys(.up) }
        let loads = s.sessionEffects.filter { if case .loadOlder = $0 { true } else { false } }
        #expect(loads == [.loadOlder(peer: "carol", before: 51)], "one request for older messages: \(loads)")
        let older = (1...50).map { s.line(Int64($0), "carol", "alice", "m\($0)") }
        s.session(.history(peer: "carol", lines: older, olderBefore: nil, older: true))
        for _ in 0..<200 { s.keys(.up) }
        #expect(s.text.contains("carol: m1\n") || s.text.contains("carol: m1 "), "scrolled to the very first message: \(s.text)")
        #expect(s.sessionEffects.filter { if case .loadOlder = $0 { true } else { false } }.count == 1, "no request past the start")
        s.keys(.char("G"))
        #expect(s.text.contains("m100"))
    }

    @Test("commands: :friend, :upload, :bio, :stats for admins only, :signout; they need a session")
    func commands() {
        let offline = Script(width: 100, height: 30, rows: 3)
        offline.store.send(.key(.char(":")))
        offline.type("friend bob")
        offline.keys(.enter)
        #expect(offline.sessionEffects.isEmpty)
        #expect(offline.state.message?.contains("sign in first") == true)

        let s = Script.signedIn()
        func run(_ line: String) {
            s.store.send(.key(.char(":")))
            s.type(line)
            s.keys(.enter)
        }
        run("friend erin")
        #expect(s.sessionEffects.last == .requestFriend("erin"))
        run("upload /music/a.mp3 /music/b")
        #expect(s.sessionEffects.last == .upload(["/music/a.mp3", "/music/b"]))
        run("bio Listening to ünïcode")
        #expect(s.sessionEffects.last == .updateBio("Listening to ünïcode"))
        run("stats")
        #expect(s.state.message == "statistics are for admins")
        run("signout")
        #expect(s.sessionEffects.last == .signOut)

        let admin = Script.signedIn(admin: true)
        admin.store.send(.key(.char(":")))
        admin.type("stats")
        admin.keys(.enter)
        #expect(admin.sessionEffects.last == .loadStats)
        let days = (0..<30).map { (day: "2026-10-\($0 + 1)", plays: $0 == 29 ? 8 : $0 % 3) }
        admin.session(.stats(StatsView(users: 3, songs: 12, storageBytes: 45_000_000, playsPerDay: days,
                                       topSongs: [(title: "Long Sweep – Fixture", plays: 8)], listenersNow: 2)))
        #expect(admin.text.contains("Stats"))
        #expect(admin.text.contains("users 3  songs 12  storage 45 MB  listeners now 2"))
        #expect(admin.text.contains("1. Long Sweep – Fixture (8)"))
        #expect(admin.text.contains("█"), "a bar chart")
        admin.keys(.escape)
        #expect(admin.state.mode == .normal)
    }

    @Test("10,000 random keys while signed in, with chat traffic, at sizes down to 10x4")
    func socialStorm() {
        var rng = SplitMix(seed: 99)
        for (w, h) in [(120, 40), (40, 10), (10, 4)] {
            let s = Script.signedIn(width: w, height: h)
            let alphabet: [Key] = [.up, .down, .enter, .tab, .backTab, .escape, .backspace, .left, .right, .home, .end,
                                   .char("a"), .char("d"), .char("c"), .char("é"), .char("👍"), .char(":"), .ctrl("w"),
                                   .ctrl("u"), .pageUp, .pageDown, .char("j"), .char("k"), .char("G")]
            for i in 0..<10_000 {
                s.keys(alphabet[Int(rng.next() % UInt64(alphabet.count))], pumping: false)
                if i % 500 == 0 {
                    s.store.send(.session(.message(s.line(Int64(i + 1), "bob", "alice", String(repeating: "長", count: i % 97)))))
                }
            }
            if case .signIn = s.state.mode { Issue.record("a key storm must not sign out") }
            #expect(s.screen.width == w && s.screen.height == h)
            #expect(s.state.social.friendCursor >= 0 && s.state.social.friendCursor < s.state.social.friends.count)
        }
    }
}
