import Foundation
import GRPCCore
import Hummingbird
import MusitAPI
import MusitCodecs
import MusitRPC

/// The Library service, `musit.library.v1.Library`, over `LocalLibrary`: served alone by
/// `--role library`; the gateway reaches it through `RemoteLibrary`. The public API's
/// failures travel with their status (`RPCProblems`).
struct LibraryService: Musit_Library_V1_Library.SimpleServiceProtocol {
    let library: LocalLibrary

    func addSong(request: Musit_Library_V1_AddSongRequest, context: ServerContext) async throws -> Musit_Library_V1_AddSongResponse {
        guard LocalLibrary.isUploadName(request.upload) else {
            throw RPCError(code: .invalidArgument, message: "upload is the name of a file in uploads/: a UUID and .part")
        }
        guard request.ownerID > 0, TextRules.isValidUsername(request.ownerName) else {
            throw RPCError(code: .invalidArgument, message: "owner_id is an id above 0 and owner_name a username")
        }
        let owner = User(id: request.ownerID, username: request.ownerName, displayName: request.ownerName, passwordHash: "",
                         role: .user, bio: "")
        let song = try await RPCProblems.mapped {
            try await library.addSong(upload: request.upload, owner: owner, measured: nil)
        }
        return try .with { $0.song = try LibraryWire.song(song) }
    }

    func getSong(request: Musit_Library_V1_GetSongRequest, context: ServerContext) async throws -> Musit_Library_V1_SongResponse {
        guard let song = try await RPCProblems.mapped({ try await library.song(id: request.id) }) else { return .init() }
        return try .with {
            $0.found = true
            $0.song = try LibraryWire.song(song)
        }
    }

    func listSongs(request: Musit_Library_V1_ListSongsRequest, context: ServerContext) async throws -> Musit_Library_V1_SongsResponse {
        guard (1...200).contains(request.limit), request.after >= 0 else {
            throw RPCError(code: .invalidArgument, message: "limit is 1 to 200 and after 0 or more")
        }
        guard request.query.count <= 100, request.query.utf8.count <= 400 else {
            throw RPCError(code: .invalidArgument, message: "query is at most 100 characters and 400 bytes")
        }
        let songs = try await RPCProblems.mapped {
            try await library.songs(after: request.after, limit: Int(request.limit), query: request.query.isEmpty ? nil : request.query)
        }
        return try .with { $0.songs = try songs.map { try LibraryWire.song($0, index: false) } }
    }

    func deleteSong(request: Musit_Library_V1_DeleteSongRequest, context: ServerContext) async throws
        -> Musit_Library_V1_DeleteSongResponse {
        guard request.id > 0, request.userID > 0, TextRules.isValidUsername(request.username) else {
            throw RPCError(code: .invalidArgument, message: "id and user_id are ids above 0, username a username")
        }
        let user = User(id: request.userID, username: request.username, displayName: request.username, passwordHash: "",
                        role: request.admin ? .admin : .user, bio: "")
        try await RPCProblems.mapped { try await library.deleteSong(id: request.id, by: user) }
        return .init()
    }

    func deleteOwnerSongs(request: Musit_Library_V1_DeleteOwnerSongsRequest, context: ServerContext) async throws
        -> Musit_Library_V1_DeleteOwnerSongsResponse {
        guard request.ownerID > 0, request.ownerName.isEmpty || TextRules.isValidUsername(request.ownerName) else {
            throw RPCError(code: .invalidArgument, message: "owner_id is an id above 0, owner_name a username")
        }
        let ids = try await RPCProblems.mapped { try await library.deleteSongs(ownedBy: request.ownerID, name: request.ownerName) }
        return .with { $0.songIds = ids }
    }

    func getTotals(request: Musit_Library_V1_GetTotalsRequest, context: ServerContext) async throws -> Musit_Library_V1_TotalsResponse {
        let totals = try await RPCProblems.mapped { try await library.totals() }
        return .with {
            $0.songs = Int64(totals.songs)
            $0.bytes = totals.bytes
        }
    }
}

/// The messages of `musit.library.v1` to and from the server's own types.
enum LibraryWire {
    /// `index` false leaves the HLS index out (a page of songs; see the contract).
    static func song(_ s: StoredSong, index withIndex: Bool = true) throws -> Musit_Library_V1_Song {
        let index = withIndex ? try JSONEncoder().encode(s.hls) : Data()
        return .with {
            $0.id = s.id
            $0.ownerID = s.ownerID
            $0.sha256 = s.sha256
            $0.title = s.title
            if let artist = s.artist { $0.artist = artist }
            if let album = s.album { $0.album = album }
            if let track = s.trackNumber { $0.trackNumber = Int32(clamping: track) }
            if let year = s.year { $0.year = Int32(clamping: year) }
            $0.duration = s.duration
            $0.bytes = s.bytes
            if let mime = s.coverMime { $0.coverMime = mime }
            $0.hlsIndexJson = index
            $0.createdAtMs = Int64((s.createdAt.timeIntervalSince1970 * 1000).rounded())
            $0.format = s.format.rawValue
            if let channels = s.channels { $0.channels = Int32(clamping: channels) }
            if let depth = s.bitDepth { $0.bitDepth = Int32(clamping: depth) }
            $0.sampleRate = Int32(clamping: s.hls.sampleRate)
        }
    }

    /// A song as Library sent it; a message this gateway cannot read (another version's) is
    /// Library failing, 502, not the client's request.
    static func song(_ m: Musit_Library_V1_Song) throws -> StoredSong {
        let index: HLSSegmenter.Index
        do {
            index = m.hlsIndexJson.isEmpty
                ? HLSSegmenter.Index(sampleRate: Int(m.sampleRate), segments: [], audioOffset: 0, audioLength: Int(m.bytes))
                : try JSONDecoder().decode(HLSSegmenter.Index.self, from: m.hlsIndexJson)
        } catch {
            throw HTTPError(.badGateway, message: "Library sent a song this gateway cannot read")
        }
        guard let format = AudioFiles.Kind(rawValue: m.format) else {
            throw HTTPError(.badGateway, message: "Library sent a song of a format this gateway does not know: \(m.format)")
        }
        return StoredSong(id: m.id, ownerID: m.ownerID, sha256: m.sha256, title: m.title, artist: m.hasArtist ? m.artist : nil,
                   album: m.hasAlbum ? m.album : nil, trackNumber: m.hasTrackNumber ? Int(m.trackNumber) : nil,
                   year: m.hasYear ? Int(m.year) : nil, duration: m.duration, bytes: m.bytes,
                   coverMime: m.hasCoverMime ? m.coverMime : nil,
                   hls: index,
                   createdAt: Date(timeIntervalSince1970: Double(m.createdAtMs) / 1000),
                   format: format,
                   channels: m.hasChannels ? Int(m.channels) : nil, bitDepth: m.hasBitDepth ? Int(m.bitDepth) : nil)
    }
}

/// Library reached over gRPC: the `LibraryAPI` the gateway uses when `--library` names the
/// service. A failed call is the HTTP answer `ServiceLink` makes of it. Reads are retried
/// while the budget lasts; an upload and a deletion are not (UNAVAILABLE may come after
/// the commit: a retried upload then answers 409 with the song, a deletion 404).
struct RemoteLibrary: LibraryAPI {
    let link: ServiceLink<any Musit_Library_V1_Library.ClientProtocol>
    /// An upload's validation decodes the whole file: up to a few seconds for the largest.
    static let addBudget: Duration = .seconds(120)

    func addSong(upload: String, owner: User, measured: UploadMeter?) async throws -> StoredSong {
        let request = Musit_Library_V1_AddSongRequest.with {
            $0.upload = upload
            $0.ownerID = owner.id
            $0.ownerName = owner.username
        }
        let answer = try await link.call(budget: Self.addBudget) { try await $0.addSong(request, options: $1) }
        return try LibraryWire.song(answer.song)
    }

    func song(id: Int64) async throws -> StoredSong? {
        guard id > 0 else { return nil }
        let request = Musit_Library_V1_GetSongRequest.with { $0.id = id }
        let answer = try await link.call(idempotent: true) { try await $0.getSong(request, options: $1) }
        return answer.found ? try LibraryWire.song(answer.song) : nil
    }

    func songs(after: Int64, limit: Int, query: String?) async throws -> [StoredSong] {
        let request = Musit_Library_V1_ListSongsRequest.with {
            $0.after = after
            $0.limit = Int32(clamping: limit)
            $0.query = query ?? ""
        }
        return try await link.call(idempotent: true) { try await $0.listSongs(request, options: $1) }.songs.map(LibraryWire.song)
    }

    func deleteSong(id: Int64, by user: User) async throws {
        let request = Musit_Library_V1_DeleteSongRequest.with {
            $0.id = id
            $0.userID = user.id
            $0.admin = user.role == .admin
            $0.username = user.username
        }
        _ = try await link.call { try await $0.deleteSong(request, options: $1) }
    }

    func deleteSongs(ownedBy owner: Int64, name: String) async throws -> [Int64] {
        let request = Musit_Library_V1_DeleteOwnerSongsRequest.with {
            $0.ownerID = owner
            $0.ownerName = name
        }
        // Idempotent: the songs are gone the second time.
        return try await link.call(idempotent: true) { try await $0.deleteOwnerSongs(request, options: $1) }.songIds
    }

    func totals() async throws -> (songs: Int, bytes: Int64) {
        let answer = try await link.call(idempotent: true) { try await $0.getTotals(.init(), options: $1) }
        return (Int(answer.songs), answer.bytes)
    }
}
