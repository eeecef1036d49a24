import Foundation
import MusitAPI
import MusitAudio
import MusitCodecs
import MusitClient
import MusitLibrary
import MusitViewModel
import Synchronization

/// The player's link to its backend: signs in, keeps the sync loop running, sends chat
/// through the on-disk outbox, publishes now-playing, uploads, and turns every answer and
/// event into an action for the UI. Runs on Swift tasks; the UI thread only posts effects.
public final class Session: Sendable {
    public let client: APIClient
    public let opener: StreamOpener
    let outbox: Outbox
    let library: ServerLibrary
    private let player: Player
    private let post: @Sendable (Action) -> Void
    private let sync = Mutex<Task<Void, Never>?>(nil)
    /// The play being reported: its queue place, song, the server's id for it, and the last
    /// position heard of it (what its end report says, once the next track has started).
    private let plays = Mutex<Play?>(nil)
    private struct Play {
        let index: Int
        let songID: Int64
        /// The start report; its answer is the server's id for the play.
        let started: Task<Int64?, Never>
        var lastPosition: Double = 0
    }
    /// The UI's effects, run one after another in the order they came (see `handle`).
    private let effects: AsyncStream<SessionEffect>.Continuation
    /// What was last published, with its queue place: two tracks may share a title.
    private let lastPublished = Mutex<(info: NowPlayingInfo, index: Int?)?>(nil)
    /// A queue cued at start is paused at 0:00; friends hear of it only once something played.
    private let hasPlayed = Atomic<Bool>(false)
    /// Friends-list reloads started, and the newest whose answer was shown.
    private let friendReloads = Mutex<(started: Int, shown: Int)>((0, 0))
    /// Signs the embedded backend's local user in without a screen.
    private let autoSignIn: (@Sendable (APIClient) async throws(ClientError) -> Void)?
    /// The queue is the server's library (no files were named on the command line).
    public let libraryIsQueue: Bool

    public init(client: APIClient, opener: StreamOpener, dataDirectory: String, player: Player,
                autoSignIn: (@Sendable (APIClient) async throws(ClientError) -> Void)? = nil, libraryIsQueue: Bool = true,
                post: @escaping @Sendable (Action) -> Void) {
        self.libraryIsQueue = libraryIsQueue
        self.client = client
        self.player = player
        self.post = post
        self.autoSignIn = autoSignIn
        self.opener = opener
        outbox = Outbox(path: dataDirectory + "/outbox.json", client: client)
        library = ServerLibrary(client: client, opener: opener, player: player, post: post)
        let (stream, continuation) = AsyncStream.makeStream(of: SessionEffect.self)
        effects = continuation
        Task { [weak self] in
            for await effect in stream {
                guard let self else { return }
                await self.perform(effect)
            }
        }
    }

    deinit {
        effects.finish()
    }

    /// The queue's source when `libraryIsQueue`.
    public var queueSource: QueueDataSource { ServerQueueSource(library) }

    /// Resumes a stored session, signs the local user in, or asks for the sign-in screen.
    public func start() {
        Task {
            if let autoSignIn {
                // The embedded backend's local user signs in afresh each start (its tokens may
                // belong to a database that was since replaced); the stored cursor is kept.
                post(.session(.connection(.connecting)))
                var attempt = 0
                while true {
                    do throws(ClientError) {
                        try await autoSignIn(client)
                        break
                    } catch {
                        attempt += 1
                        let delay = SyncLoop.backoff(attempt: attempt, cap: 8)
                        post(.session(.connection(.retrying(seconds: Int(delay.rounded(.up)), reason: error.description))))
                        try? await Task.sleep(for: .seconds(delay))
                    }
                }
            }
            if let user = await client.user {
                await signedIn(user)
            } else {
                post(.session(.signedOut("")))
            }
        }
    }

    private func signedIn(_ user: UserInfo) async {
        post(.session(.signedIn(username: user.username, admin: user.role == .admin)))
        // Signed in: the library's first pages can be asked for now.
        if libraryIsQueue { post(.queueChanged(total: 0, hasMore: true)) }
        startSync()
    }

    private func startSync() {
        let loop = SyncLoop(client: client, handlers: .init(
            state: { [post] state in
                switch state {
                case .connecting: post(.session(.connection(.connecting)))
                case .online: post(.session(.connection(.online)))
                case .retrying(_, let seconds, let reason):
                    post(.session(.connection(.retrying(seconds: max(1, Int(seconds.rounded(.up))), reason: reason))))
                case .signedOut(let why): post(.session(.signedOut(why)))
                }
            },
            events: { [weak self] events in await self?.handle(events) },
            resync: { [weak self] in await self?.resync() }))
        let task = Task { await loop.run() }
        sync.withLock { old in
            old?.cancel()
            old = task
        }
    }

    /// After (re)connecting: state that events may have missed, and what waited offline.
    private func resync() async {
        await reloadFriends()
        if libraryIsQueue { await library.retry() }
        await flushOutbox()
        if let info = lastPublished.withLock({ $0?.info }) { try? await client.setPresence(info) }
    }

    private func reloadFriends() async {
        // Reloads run from the effect task and the sync loop at once; an answer older than
        // one already shown is dropped, or a list read before an acceptance could land after
        // the acceptance's reload and show the friend as pending again.
        let ticket = friendReloads.withLock { r -> Int in
            r.started += 1
            return r.started
        }
        do throws(ClientError) {
            let list = try await client.friends()
            let friends = Self.friends(list)
            // Posted under the lock: `post` only enqueues, and two fresh answers must reach
            // the UI in ticket order.
            friendReloads.withLock { r in
                guard ticket > r.shown else { return }
                r.shown = ticket
                post(.session(.friends(friends)))
            }
        } catch {
            post(.message("friends: \(error)"))
        }
    }

    private func flushOutbox() async {
        await outbox.flush { [post] outcome in
            switch outcome {
            case .sent(let clientId, let m): post(.session(.delivery(clientId: clientId, id: m.id, m.readAt == nil ? .sent : .read)))
            case .rejected(let clientId, let reason): post(.session(.delivery(clientId: clientId, id: nil, .failed(reason))))
            }
        }
    }

    private func handle(_ events: [ServerEvent]) async {
        var friendsChanged = false
        for e in events {
            switch e.kind {
            case .chatMessage:
                if let m = e.message { post(.session(.message(Self.line(m)))) }
            case .messageRead:
                if let user = e.user, let upTo = e.readUpTo { post(.session(.read(by: user, upTo: upTo))) }
            case .friendRequest:
                if let user = e.user { post(.session(.friendRequest(from: user))) }
                friendsChanged = true
            case .friendAccepted:
                if let user = e.user { post(.session(.friendAccepted(by: user))) }
                friendsChanged = true
            case .friendRemoved:
                if let user = e.user { post(.session(.friendRemoved(user))) }
                // A reload already on its way could otherwise bring them back.
                friendsChanged = true
            case .presence:
                if let user = e.user {
                    post(.session(.presence(user: user, online: e.online ?? true, playing: e.nowPlaying.map(Self.playing))))
                }
            case .libraryChanged:
                if libraryIsQueue { await library.refresh() }
            }
        }
        if friendsChanged { await reloadFriends() }
    }

    // MARK: Effects from the UI

    /// Takes an effect from the UI. One task runs them all, in order: with a task each, two
    /// messages sent in quick succession could reach the outbox in either order, and a
    /// sign-out could overtake the request before it.
    public func handle(_ effect: SessionEffect) {
        effects.yield(effect)
    }

    private func perform(_ effect: SessionEffect) async {
        let client = self.client
        let post = self.post
        do throws(ClientError) {
                switch effect {
                case .signIn(let username, let password, let register):
                    do throws(ClientError) {
                        let user = register ? try await client.register(username: username, password: password)
                            : try await client.login(username: username, password: password)
                        await signedIn(user)
                    } catch {
                        post(.session(.signInFailed(error.description)))
                    }
                case .signOut:
                    sync.withLock { $0?.cancel() }
                    await client.signOut()
                    post(.session(.signedOut("signed out")))
                case .sendChat(let to, let body):
                    let p = await outbox.enqueue(to: to, body: body)
                    let me = await client.user?.username ?? ""
                    post(.session(.queued(ChatLine(id: nil, clientId: p.message.clientId, from: me, to: to, body: body, delivery: .queued))))
                    await flushOutbox()
                case .openConversation(let peer):
                    let page = try await client.messages(with: peer)
                    post(.session(.history(peer: peer, lines: page.messages.reversed().map(Self.line), olderBefore: page.nextBefore,
                                           older: false)))
                case .loadOlder(let peer, let before):
                    let page = try await client.messages(with: peer, before: before)
                    post(.session(.history(peer: peer, lines: page.messages.reversed().map(Self.line), olderBefore: page.nextBefore,
                                           older: true)))
                case .markRead(let peer, let upTo):
                    try await client.markRead(with: peer, upTo: upTo)
                case .requestFriend(let name):
                    try await client.requestFriend(name)
                    post(.session(.friendRequestSent(to: name)))
                    await reloadFriends()
                case .acceptFriend(let name):
                    try await client.acceptFriend(name)
                    await reloadFriends()
                case .declineFriend(let name):
                    try await client.declineFriend(name)
                    await reloadFriends()
                case .removeFriend(let name):
                    try await client.removeFriend(name)
                    await reloadFriends()
                case .upload(let paths):
                    // Minutes long: it runs beside the runner, so chat goes on meanwhile.
                    Task { await self.upload(paths) }
                case .deleteSong(let index):
                    guard libraryIsQueue, let song = await library.song(at: index) else {
                        post(.message("the queue holds local files: :delete removes songs of the server's library"))
                        return
                    }
                    try await client.deleteSong(song.id)
                    await library.refresh()
                    post(.message("deleted \(song.title)"))
                case .loadStats:
                    post(.session(.stats(Self.stats(try await client.stats()))))
                case .loadProfile(let name):
                    let u = try await client.profile(name)
                    post(.session(.profile(ProfileView(username: u.username, displayName: u.displayName, bio: u.bio))))
                case .updateBio(let bio):
                    let u = try await client.updateProfile(ProfileUpdate(bio: bio))
                    post(.session(.profile(ProfileView(username: u.username, displayName: u.displayName, bio: u.bio))))
                }
            } catch {
                post(.message("\(error)"))
            }
    }

    /// Files and folders (scanned for the audio files the player lists: MP3, FLAC, Ogg,
    /// Opus), one after the other, with progress.
    private func upload(_ paths: [String]) async {
        var files: [String] = []
        for p in paths {
            let path = (p as NSString).expandingTildeInPath
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                post(.message("upload: no such file: \(p)"))
                continue
            }
            if isDir.boolValue {
                let found = (FileManager.default.enumerator(atPath: path)?.compactMap { $0 as? String } ?? [])
                    .filter { LocalLibrary.audioExtensions.contains(($0 as NSString).pathExtension.lowercased()) }
                    .sorted().map { path + "/" + $0 }
                files += found
            } else {
                files.append(path)
            }
        }
        var added = 0, duplicates = 0, failed: [String] = []
        let count = files.count
        for (i, file) in files.enumerated() {
            let name = (file as NSString).lastPathComponent
            post(.session(.upload(UploadProgress(file: name, fileIndex: i, fileCount: files.count, fraction: 0))))
            do throws(ClientError) {
                _ = try await client.upload(path: file) { [post] sent, total in
                    let f = total > 0 ? Double(sent) / Double(total) : 1
                    post(.session(.upload(UploadProgress(file: name, fileIndex: i, fileCount: count, fraction: f))))
                }
                added += 1
            } catch {
                if error.status == 409 { duplicates += 1 } else { failed.append("\(name): \(error)") }
            }
        }
        post(.session(.upload(nil)))
        var summary = "uploaded \(added) of \(files.count)"
        if duplicates > 0 { summary += ", \(duplicates) already in the library" }
        if let first = failed.first { summary += ", \(failed.count) failed (\(first))" }
        post(.message(summary))
        if libraryIsQueue { await library.refresh() }
    }

    // MARK: Now playing

    /// Publishes what plays when the track, the state or the position (a seek) changed.
    public func playerChanged(_ status: PlayerStatus, seeked: Bool) {
        if status.state == .playing { hasPlayed.store(true, ordering: .relaxed) }
        guard hasPlayed.load(ordering: .relaxed) else { return }
        let songID = status.track.flatMap { SongLocation.id(of: $0.location) }
        let state: NowPlayingInfo.State = status.state == .playing ? .playing : status.state == .paused ? .paused : .stopped
        let info = NowPlayingInfo(state: state, title: status.metadata?.title, artist: status.metadata?.artist,
                                  position: (status.position * 10).rounded() / 10, duration: status.duration)
        let changed = lastPublished.withLock { last -> Bool in
            let differs = last?.info.state != info.state || last?.info.title != info.title || last?.info.artist != info.artist
                || last?.index != status.trackIndex || seeked
            if differs { last = (info, status.trackIndex) }
            return differs
        }
        guard changed else { return }
        let client = self.client
        Task { try? await client.setPresence(info) }
        reportPlay(index: status.trackIndex, songID: songID, position: status.position, state: status.state)
    }

    /// The player's position moved on: remembered for the end report of the play at `index`.
    public func playerProgress(index: Int?, position: Double) {
        plays.withLock { play in
            if let index, play?.index == index { play?.lastPosition = position }
        }
    }

    private func reportPlay(index: Int?, songID: Int64?, position: Double, state: PlaybackState) {
        let client = self.client
        let previous = plays.withLock { current -> Play? in
            guard current?.index != index || state == .stopped else { return nil }
            defer { current = nil }
            return current
        }
        if let previous {
            // On a track change `position` is already the next track's.
            let end = previous.index == index ? position : previous.lastPosition
            Task {
                // A track skipped at once ends after its start has been answered.
                guard let id = await previous.started.value else { return }
                _ = try? await client.reportPlay(PlayReport(songId: previous.songID, event: .end, position: end, playId: id))
            }
        }
        guard state == .playing, let index, let songID, plays.withLock({ $0 == nil }) else { return }
        let started = Task { try? await client.reportPlay(PlayReport(songId: songID, event: .start, position: 0))?.playId }
        plays.withLock { $0 = Play(index: index, songID: songID, started: started) }
    }

    public func stop() {
        sync.withLock { $0?.cancel() }
    }

    // MARK: API → view model

    static func line(_ m: ChatMessage) -> ChatLine {
        ChatLine(id: m.id, clientId: m.clientId, from: m.from, to: m.to, body: m.body, delivery: m.readAt == nil ? .sent : .read)
    }

    static func playing(_ n: NowPlayingInfo) -> FriendPlaying {
        let state: FriendPlaying.State = n.state == .playing ? .playing : n.state == .paused ? .paused : .stopped
        return FriendPlaying(state: state, title: n.title, artist: n.artist, position: n.position ?? 0, duration: n.duration,
                             reportedAt: ProcessInfo.processInfo.systemUptime)
    }

    static func friends(_ list: FriendsList) -> [Friend] {
        list.incoming.map { Friend(username: $0.username, displayName: $0.displayName, relation: .incoming) }
            + list.friends.map { f in
                Friend(username: f.user.username, displayName: f.user.displayName, relation: .friend, online: f.online,
                       playing: f.nowPlaying.map(playing))
            }
            + list.outgoing.map { Friend(username: $0.username, displayName: $0.displayName, relation: .outgoing) }
    }

    static func stats(_ s: AdminStats) -> StatsView {
        StatsView(users: s.users, songs: s.songs, storageBytes: s.storageBytes,
                  playsPerDay: s.playsPerDay.map { (day: $0.day, plays: $0.plays) },
                  topSongs: s.topSongs.map { (title: [$0.title, $0.artist].compactMap { $0 }.joined(separator: " – "), plays: $0.plays) },
                  listenersNow: s.listenersNow)
    }
}
