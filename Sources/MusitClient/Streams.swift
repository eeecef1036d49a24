import Foundation
import MusitAPI
import MusitAudio
import MusitCodecs
import NIOCore
import Synchronization

/// Queue entries that live on the server are tracks at `musit:song:<id>`.
public enum SongLocation {
    public static let prefix = "musit:song:"

    public static func make(_ id: Int64) -> String { prefix + String(id) }

    public static func id(of location: String) -> Int64? {
        guard location.hasPrefix(prefix) else { return nil }
        return Int64(location.dropFirst(prefix.count))
    }
}

/// An HLS media playlist reduced to what the player needs.
public struct MediaPlaylist: Equatable, Sendable {
    public var segmentURIs: [String]
    public var durations: [Double]

    public var starts: [Double] {
        var t = 0.0
        return durations.map { d in defer { t += d }; return t }
    }

    /// Parses `#EXTINF` lines and the URI after each; throws on anything that is not a playlist.
    public static func parse(_ text: String) throws(ClientError) -> MediaPlaylist {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard lines.first == "#EXTM3U" else { throw .badResponse("not an HLS playlist") }
        var uris: [String] = [], durations: [Double] = []
        var pending: Double?
        for line in lines.dropFirst() where !line.isEmpty {
            if line.hasPrefix("#EXTINF:") {
                let value = line.dropFirst(8).split(separator: ",", maxSplits: 1).first.map(String.init) ?? ""
                guard let d = Double(value), d >= 0 else { throw .badResponse("bad EXTINF: \(line)") }
                pending = d
            } else if !line.hasPrefix("#") {
                guard let d = pending else { throw .badResponse("segment without EXTINF: \(line)") }
                uris.append(line)
                durations.append(d)
                pending = nil
            }
        }
        guard !uris.isEmpty else { throw .badResponse("playlist has no segments") }
        return MediaPlaylist(segmentURIs: uris, durations: durations)
    }
}

/// Opens server songs for the audio engine: fetches the HLS playlist, then feeds segments
/// to a `StreamedTrack` from a producer task, a few hundred KiB ahead of the decoder.
/// Memory per track is the read-ahead, whatever the song's length.
public final class StreamOpener: Sendable {
    private let client: APIClient
    private let readAhead: Int
    private let hints = Mutex<[Int64: Song]>([:])
    /// Waiting for the first bytes of a stream, before the player gives up on it.
    public let openTimeout: Double

    public init(client: APIClient, readAhead: Int = 384 * 1024, openTimeout: Double = 15) {
        self.client = client
        self.readAhead = readAhead
        self.openTimeout = openTimeout
    }

    /// Songs the player may ask for: their tags stand in for the file's (segments carry none).
    public func remember(_ songs: [Song]) {
        hints.withLock { h in for s in songs { h[s.id] = s } }
    }

    public func song(_ id: Int64) -> Song? { hints.withLock { $0[id] } }

    /// For `PlayerConfiguration.openSource`: server songs stream, anything else is a local file.
    public var openSource: @Sendable (Track) throws(AudioError) -> any PCMSource {
        { [self] track throws(AudioError) -> any PCMSource in
            if SongLocation.id(of: track.location) != nil { return try open(track.location) }
            return try AudioFiles.open(path: track.location)
        }
    }

    /// Called on the audio thread. An MP3 streams by HLS: when the server told the song's
    /// sample rate it returns at once (a slow start is "buffering"); otherwise it waits for
    /// the first frames. FLAC, Vorbis and Opus are read by Range (`openRanged`).
    public func open(_ location: String) throws(AudioError) -> any PCMSource {
        guard let id = SongLocation.id(of: location) else { throw AudioError(location, .notFound) }
        if let song = song(id), let format = song.format, format != "mp3" {
            return try openRanged(location, song: song, format: format)
        }
        let feed = StreamFeed(readAhead: readAhead)
        let client = self.client
        Task { await Self.produce(feed: feed, song: id, client: client) }
        var hint = TrackMetadata()
        let song = song(id)
        if let song {
            hint.title = song.title
            hint.artist = song.artist
            hint.album = song.album
            hint.trackNumber = song.trackNumber
            hint.year = song.year
            hint.totalFrames = Int64(song.duration * Double(hint.format.sampleRate))
        }
        // The decoder always delivers stereo S16 at the stream's own rate.
        let format = song?.sampleRate.map { PCMFormat(sampleRate: $0, channels: 2) }
        return try StreamedTrack(location: location, feed: feed, format: format, hint: hint, timeout: openTimeout)
    }

    /// A FLAC or Ogg song read by its decoder through callbacks from a `RemoteFile`, which a
    /// producer task fills by Range GETs of /audio a few blocks ahead of the read position.
    /// With the format the server stored it returns at once (`RemoteTrack` opens the decoder
    /// when its bytes are here: a slow start is "buffering"); without it, it opens now,
    /// waiting up to `openTimeout` for the headers.
    func openRanged(_ location: String, song: Song, format: String) throws(AudioError) -> any PCMSource {
        guard let kind = AudioFiles.Kind(rawValue: format), kind != .mp3 else {
            throw AudioError(location, .decode("the server's song is \(format), which this player does not know"))
        }
        let remote = RemoteFile(size: Int(song.bytes), readAhead: readAhead / RemoteFile.blockSize)
        let client = self.client
        Task { await Self.produce(remote: remote, song: song.id, client: client) }
        if let rate = song.sampleRate, let channels = song.channels {
            var hint = TrackMetadata(title: song.title, artist: song.artist, album: song.album, trackNumber: song.trackNumber,
                                     year: song.year)
            // What the decoders deliver: Opus at 48 kHz, more than two channels mixed to two;
            // FLAC wider than 16 bits as 32-bit samples.
            hint.format = kind == .opus
                ? PCMFormat(sampleRate: 48_000, channels: channels > 2 ? 2 : max(1, channels))
                : PCMFormat(sampleRate: rate, channels: channels, sampleBits: (song.bitDepth ?? 16) > 16 ? 32 : 16)
            hint.totalFrames = Int64((song.duration * Double(hint.format.sampleRate)).rounded())
            return RemoteTrack(remote: remote, kind: kind, location: location, hint: hint, timeout: openTimeout)
        }
        do throws(AudioError) {
            return try AudioFiles.open(remote: remote, kind: kind, location: location, timeout: openTimeout)
        } catch {
            remote.close()
            throw error
        }
    }

    /// Fetches the blocks a `RemoteFile` wants, by Range, with a media token asked for again
    /// when it runs out. Failures are retried with backoff for up to a minute.
    static func produce(remote: RemoteFile, song id: Int64, client: APIClient) async {
        var url: String?
        while let blocks = await remote.nextBlocks() {
            let start = blocks.lowerBound * RemoteFile.blockSize
            let range = start...(min(remote.size, blocks.upperBound * RemoteFile.blockSize) - 1)
            var delay = 0.2, waited = 0.0, renewed = false
            while !remote.isClosed {
                do throws(ClientError) {
                    if url == nil { url = try await client.streamURLs(song: id).audio }
                    let bytes = Array(buffer: try await client.fetchMedia(url!, range: range))
                    for (i, block) in blocks.enumerated() {
                        let from = i * RemoteFile.blockSize
                        remote.store(block, Array(bytes[from..<min(bytes.count, from + RemoteFile.blockSize)]))
                    }
                    break
                } catch {
                    // An expired media token: a fresh one, at once.
                    if error.status == 401, url != nil, !renewed {
                        renewed = true
                        url = nil
                        continue
                    }
                    guard error.isTransient, waited < 60 else {
                        remote.fail(error.status == 404 ? "no longer on the server" : error.description)
                        return
                    }
                    try? await Task.sleep(for: .seconds(delay))
                    waited += delay
                    delay = min(2, delay * 2)
                }
            }
        }
    }

    /// Fetches the playlist, then segments in order while the feed wants them. Failures are
    /// retried with backoff for up to a minute before the track ends with the reason.
    static func produce(feed: StreamFeed, song id: Int64, client: APIClient) async {
        let playlist: MediaPlaylist, playlistURL: String
        do throws(ClientError) {
            (playlist, playlistURL) = try await retrying(feed: feed) { () throws(ClientError) in
                let urls = try await client.streamURLs(song: id)
                let body = try await client.fetchMedia(urls.hls, maxBytes: 4 << 20)
                return (try MediaPlaylist.parse(String(buffer: body)), urls.hls)
            }
        } catch {
            feed.fail(error.status == 404 ? "no longer on the server" : error.description)
            return
        }
        feed.setPlaylist(starts: playlist.starts)
        let base = playlistURL.split(separator: "?", maxSplits: 1)[0]
        let dir = base[..<(base.lastIndex(of: "/").map { base.index(after: $0) } ?? base.endIndex)]
        let urls = playlist.segmentURIs.map { $0.hasPrefix("/") || $0.hasPrefix("http") ? $0 : String(dir) + $0 }
        while let (generation, segment) = feed.nextRequest() {
            await feed.waitForSpace(generation: generation)
            guard let now = feed.nextRequest(), now == (generation, segment), segment < urls.count else { continue }
            do throws(ClientError) {
                let bytes = try await retrying(feed: feed, while: { feed.nextRequest().map { $0 == (generation, segment) } ?? false }) {
                    () throws(ClientError) in try await client.fetchMedia(urls[segment])
                }
                feed.append(Self.audio(of: Array(buffer: bytes)), segment: segment, generation: generation)
            } catch {
                feed.fail(error.description, generation: generation)
            }
        }
    }

    /// Runs `body` until it succeeds, a permanent error, a minute of failures, or `still` is false.
    static func retrying<T>(feed: StreamFeed, while still: () -> Bool = { true },
                            _ body: () async throws(ClientError) -> T) async throws(ClientError) -> T {
        var delay = 0.2, waited = 0.0
        while true {
            do throws(ClientError) {
                return try await body()
            } catch {
                guard error.isTransient, waited < 60, still(), feed.nextRequest() != nil else { throw error }
                try? await Task.sleep(for: .seconds(delay))
                waited += delay
                delay = min(2, delay * 2)
            }
        }
    }

    /// A packed-audio segment less its leading ID3 tag (the PRIV timestamp, RFC 8216 §3.4):
    /// the decoder then sees the file's frames back to back, as from the file, so the bit
    /// reservoir carries across segment joins and the samples match the file's exactly.
    static func audio(of segment: [UInt8]) -> [UInt8] {
        let tag = segment.withUnsafeBytes { MP3Probe.id3v2Size($0) }
        return tag > 0 && tag <= segment.count ? Array(segment[tag...]) : segment
    }
}
