import Foundation
import MusitAPI
import MusitAudio
import MusitCodecs
import MusitClient
import MusitViewModel

/// The server's songs as the queue: cursor pages fetched as the view scrolls, searches
/// by the server, and every song shown also in the player's queue (same index), so Enter
/// plays what is selected and the next track follows the list.
public actor ServerLibrary {
    private struct Listing {
        var songs: [Song] = []
        var exhausted = false
    }

    private let client: APIClient
    private let opener: StreamOpener
    private let player: Player
    private let post: @Sendable (Action) -> Void
    private let pageSize = 100
    private var all = Listing()
    private var searches: [String: Listing] = [:]
    /// Player queue index of each song.
    private var indexOf: [Int64: Int] = [:]
    private var playerSongs: [Song] = []
    /// Requests that failed (offline): served again on `retry()`.
    private var failed: [QueuePageRequest] = []

    public init(client: APIClient, opener: StreamOpener, player: Player, post: @escaping @Sendable (Action) -> Void) {
        self.client = client
        self.opener = opener
        self.player = player
        self.post = post
    }

    /// The song at a player queue index.
    public func song(at index: Int) -> Song? { playerSongs.indices.contains(index) ? playerSongs[index] : nil }

    public func serve(_ request: QueuePageRequest) async {
        let filter = request.filter.trimmingCharacters(in: .whitespaces)
        var list = filter.isEmpty ? all : searches[filter] ?? Listing()
        do throws(ClientError) {
            while list.songs.count < request.offset + request.limit && !list.exhausted {
                let page = try await client.songs(cursor: list.songs.last?.id, limit: pageSize, query: filter.isEmpty ? nil : filter)
                let known = Set(list.songs.map(\.id))
                list.songs += page.songs.filter { !known.contains($0.id) }
                list.exhausted = page.nextCursor == nil
                adopt(page.songs)
            }
        } catch {
            // Answered again after (re)connecting; before sign-in there is nothing to say.
            failed.append(request)
            if case .signedOut = error { return }
            post(.message("library: \(error)"))
            return
        }
        if filter.isEmpty { all = list } else { searches[filter] = list }
        let end = min(list.songs.count, request.offset + request.limit)
        let slice = request.offset < end ? Array(list.songs[request.offset..<end]) : []
        let items = slice.map { song in
            QueueItem(index: indexOf[song.id] ?? 0, title: song.title,
                      detail: [song.artist, song.album].compactMap { $0 }.joined(separator: " · "), duration: song.duration)
        }
        post(.pageLoaded(QueuePage(request: request, items: items, total: list.exhausted ? list.songs.count : nil,
                                   hasMore: !list.exhausted)))
    }

    /// Songs get a place in the player's queue the first time they are listed.
    private func adopt(_ songs: [Song]) {
        let fresh = songs.filter { indexOf[$0.id] == nil }
        guard !fresh.isEmpty else { return }
        opener.remember(fresh)
        let first = playerSongs.isEmpty
        for s in fresh {
            indexOf[s.id] = playerSongs.count
            playerSongs.append(s)
        }
        let tracks = fresh.map { Track(SongLocation.make($0.id)) }
        player.send(first ? .load(tracks, startAt: 0, autoplay: false) : .append(tracks))
    }

    /// The library changed on the server (uploads, deletions): the listing is read again as
    /// far as it was loaded, searches start over, and the view reloads what it shows.
    public func refresh() async {
        var fresh = Listing()
        let wanted = max(all.songs.count, pageSize)
        do throws(ClientError) {
            while !fresh.exhausted && fresh.songs.count < wanted + pageSize {
                let page = try await client.songs(cursor: fresh.songs.last?.id, limit: pageSize)
                fresh.songs += page.songs
                fresh.exhausted = page.nextCursor == nil
                adopt(page.songs)
            }
        } catch {
            return
        }
        all = fresh
        searches = [:]
        post(.queueInvalidated(total: all.songs.count, hasMore: !all.exhausted))
    }

    /// After reconnecting: answer what failed while offline.
    public func retry() async {
        let again = failed
        failed = []
        for r in again { await serve(r) }
    }
}

/// Hands the view model's page requests to the actor.
final class ServerQueueSource: QueueDataSource, Sendable {
    let library: ServerLibrary
    init(_ library: ServerLibrary) { self.library = library }
    func request(_ request: QueuePageRequest) {
        let library = self.library
        Task { await library.serve(request) }
    }
}
