import Foundation
import Hummingbird
import HummingbirdTesting
import MusitAPI
import MusitCodecs
@testable import MusitServer
import MusitTestSupport
import NIOCore
import Testing

/// FLAC, Ogg Vorbis and Ogg Opus in the library beside MP3: told from their bytes, decoded
/// whole before they are accepted, served by Range with their own types.
@Suite("Backend: FLAC, Vorbis and Opus songs", .serialized)
struct FormatTests {
    /// Samples per channel the reference decoder (flac -d, oggdec -R, opusdec) wrote for `name`.
    static func referenceFrames(_ name: String, channels: Int = 2) throws -> Int {
        try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(name + ".raw"))).count / (2 * channels)
    }

    @Test("uploads of each format: format, exact length, rate, channels, depth and tags stored; whole and ranged GETs with the format's type; HLS 415")
    func formats() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            // The request's type is a hint at most: octet-stream and a wrong audio type are
            // accepted, the bytes decide.
            let cases: [(file: String, type: String, format: String, rate: Int, depth: Int?, frames: Int, mediaType: String)] = [
                ("sweep_a.flac", "audio/flac", "flac", 44_100, 16, try Self.referenceFrames("sweep_a.flac"), "audio/flac"),
                ("hires96.flac", "application/octet-stream", "flac", 96_000, 24, 96_000, "audio/flac"),
                ("sweep_a.ogg", "audio/ogg", "vorbis", 44_100, nil, try Self.referenceFrames("sweep_a.ogg"), "audio/ogg"),
                ("sweep48_a.opus", "audio/mpeg", "opus", 48_000, nil, try Self.referenceFrames("sweep48_a.opus"),
                 "audio/ogg; codecs=opus"),
            ]
            for c in cases {
                let r = try await alice.upload(c.file, type: c.type)
                #expect(r.status == .created, "\(c.file): \(String(buffer: r.body))")
                let posted = try T.decode(Song.self, r)
                // What the list says comes from the database, not from the upload's memory.
                let song = try T.decode(Song.self, try await alice.call(.get, "/api/v1/songs/\(posted.id)"))
                #expect(song == posted)
                #expect(song.format == c.format && song.sampleRate == c.rate && song.channels == 2 && song.bitDepth == c.depth,
                        "\(c.file): \(song)")
                #expect(abs(song.duration - Double(c.frames) / Double(c.rate)) < 1e-9, "\(c.file): \(song.duration) s")
                let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(c.file))))
                let whole = try await alice.call(.get, "/api/v1/songs/\(song.id)/audio")
                #expect(whole.status == .ok && [UInt8](buffer: whole.body) == file)
                #expect(whole.headers[.contentType] == c.mediaType)
                // Ranged through the router, then (asked for again with a media token) from memory.
                let urls = try T.decode(StreamURLs.self, try await alice.call(.get, "/api/v1/songs/\(song.id)/stream"))
                for _ in 0..<3 {
                    let part = try await http.execute(uri: urls.audio, method: .get, headers: [.range: "bytes=100-4195"])
                    #expect(part.status == .partialContent && [UInt8](buffer: part.body) == Array(file[100...4195]))
                    #expect(part.headers[.contentType] == c.mediaType)
                }
                if c.format != "flac" {
                    try T.expectProblem(try await http.execute(uri: urls.hls, method: .get), .unsupportedMediaType)
                    try T.expectProblem(try await alice.call(.get, "/api/v1/songs/\(song.id)/hls/0.mp3"), .unsupportedMediaType)
                }
            }
            let tagged = try T.decode(Song.self, try await alice.upload("tagged.flac", type: "audio/x-flac"))
            #expect(tagged.title == "Fläc Title – 東京" && tagged.artist == "Vorbis Ärtist" && tagged.album == "Lossless 🎵")
            #expect(tagged.trackNumber == 4 && tagged.year == 2003 && tagged.hasCover)
            let cover = try await alice.call(.get, "/api/v1/songs/\(tagged.id)/cover")
            #expect([UInt8](buffer: cover.body) == [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("cover.png")))))
            // An MP3 says what it is too.
            let mp3 = try T.decode(Song.self, try await alice.upload("sine440.mp3"))
            #expect(mp3.format == "mp3" && mp3.channels != nil && mp3.bitDepth == nil)
            #expect(try await alice.call(.get, "/api/v1/songs/\(mp3.id)/hls/index.m3u8").status == .ok)
        }
    }

    @Test("damaged FLAC, Vorbis and Opus uploads are refused with the reason and leave nothing")
    func damaged() async throws {
        let c = T.config()
        let app = try await MusitBackend.makeApplication(c)
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            func post(_ name: String, _ edit: (inout [UInt8]) -> Void) async throws -> String {
                var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(name))))
                edit(&bytes)
                var headers = T.bearer(alice.pair.accessToken)
                headers[.contentType] = "application/octet-stream"
                let r = try await http.execute(uri: "/api/v1/songs", method: .post, headers: headers, body: ByteBuffer(bytes: bytes))
                try T.expectProblem(r, .unprocessableContent)
                return try T.decode(Problem.self, r).detail ?? ""
            }
            let cutFLAC = try await post("sweep.flac") { $0.removeLast($0.count / 3) }
            #expect(cutFLAC.hasPrefix("Not a playable FLAC file") && cutFLAC.contains("truncated FLAC: audio ends at"), "\(cutFLAC)")
            let signature = try await post("sweep.flac") { $0[4 + 4 + 18 + 3] ^= 0x01 }
            #expect(signature.contains("does not match its MD5 signature"), "\(signature)")
            let flipped = try await post("sweep_a.ogg") { $0[$0.count / 2] ^= 0x40 }
            #expect(flipped.hasPrefix("Not a playable Ogg Vorbis file") && flipped.contains("checksum does not match"), "\(flipped)")
            let junk = try await post("sweep48_a.opus") { $0 += Array(repeating: 0x55, count: 1000) }
            #expect(junk.hasPrefix("Not a playable Ogg Opus file") && junk.contains("not Ogg pages"), "\(junk)")
        }
        let store = try await T.store(c)
        #expect(try await store.songs(after: 0, limit: 10, query: nil).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.dataDirectory + "/media/uploads").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.dataDirectory + "/media").filter { $0 != "uploads" }.isEmpty)
    }

    @Test("FLAC over HLS: fragmented MP4 of the file's own frames (EXT-X-MAP), which ffmpeg decodes bit for bit, 16 and 24 bits",
          arguments: [("long20.flac", "s16le"), ("hires96.flac", "s32le")])
    func flacHLS(name: String, pcm: String) async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let song = try T.decode(Song.self, try await alice.upload(name, type: "audio/flac"))
            let urls = try T.decode(StreamURLs.self, try await alice.call(.get, "/api/v1/songs/\(song.id)/stream"))
            let playlist = String(buffer: try await http.execute(uri: urls.hls, method: .get).body)
            let lines = playlist.split(separator: "\n").map(String.init)
            #expect(lines.contains("#EXT-X-VERSION:7") && lines.last == "#EXT-X-ENDLIST")
            #expect(lines.contains { $0.hasPrefix("#EXT-X-MAP:URI=\"init.mp4?token=") }, "\(playlist)")
            let durations = lines.filter { $0.hasPrefix("#EXTINF:") }.map { Double($0.dropFirst(8).dropLast())! }
            #expect(abs(durations.reduce(0, +) - song.duration) < 1e-3, "\(durations) vs \(song.duration)")
            #expect(durations.count == Int((song.duration / 6).rounded(.up)), "about 6 s a segment: \(durations)")
            let segments = lines.filter { !$0.hasPrefix("#") }
            #expect(segments.allSatisfy { $0.contains(".m4s?token=") })
            // The initialization segment: ftyp, then a moov whose sample entry is fLaC with dfLa.
            let initBody = [UInt8](buffer: try await http.execute(uri: "/api/v1/songs/\(song.id)/hls/init.mp4?token=\(urls.token)",
                                                                  method: .get).body)
            #expect(Array(initBody[4..<8]) == Array("ftyp".utf8))
            #expect(initBody.firstRange(of: Array("fLaC".utf8)) != nil && initBody.firstRange(of: Array("dfLa".utf8)) != nil)

            // The multivariant playlist names the codec, for a player to choose before loading.
            let masterURI = urls.hls.replacingOccurrences(of: "index.m3u8", with: "master.m3u8")
            let master = String(buffer: try await http.execute(uri: masterURI, method: .get).body)
            #expect(master.contains("CODECS=\"fLaC\"") && master.contains("\nindex.m3u8?token="), "\(master)")

            // ffprobe and ffmpeg, independent clients, over HTTP from the multivariant playlist:
            // FLAC, and every sample the file's.
            let url = "http://127.0.0.1:\(http.port ?? 0)\(masterURI)"
            let probe = try Tool.run("/usr/bin/ffprobe", ["-v", "error", "-select_streams", "a", "-show_entries", "stream=codec_name",
                                                          "-of", "csv=p=0", url])
            let codecs = probe.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(!codecs.isEmpty && codecs.allSatisfy { $0 == "flac" }, "\(probe.stdout) \(probe.stderr)")
            let dir = NSTemporaryDirectory() + "musit-flachls-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let decoded = try Tool.run("/usr/bin/ffmpeg", ["-v", "error", "-i", url, "-f", pcm, "-c:a", "pcm_" + pcm, "-y", dir + "/hls.raw"])
            #expect(decoded.status == 0, "\(decoded.stderr)")
            // The reference: flac -d for 16 bits; ffmpeg's own s32 decode of the file for 24.
            let reference = dir + "/ref.raw"
            let ref = pcm == "s16le"
                ? try Tool.run("/usr/bin/flac", ["-d", "-s", "-f", "--force-raw-format", "--endian=little", "--sign=signed", "-o", reference,
                                                 Fixtures.path(name)])
                : try Tool.run("/usr/bin/ffmpeg", ["-v", "error", "-i", Fixtures.path(name), "-f", pcm, "-c:a", "pcm_" + pcm, "-y", reference])
            #expect(ref.status == 0, "\(ref.stderr)")
            let got = try Data(contentsOf: URL(fileURLWithPath: dir + "/hls.raw"))
            let want = try Data(contentsOf: URL(fileURLWithPath: reference))
            #expect(got.count == want.count && got == want, "HLS decoded \(got.count) bytes, the file \(want.count): bit for bit")
        }
    }

    @Test("mutagen's FLAC and Ogg test data uploaded: each stored or refused with its reason, never a server error")
    func thirdPartyUploads() async throws {
        let dir = Fixtures.path("mutagen")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        try #require(names.count >= 10)
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            var stored = 0, refused = 0
            for name in names {
                let r = try await alice.upload("mutagen/" + name, type: "application/octet-stream")
                if r.status == .created {
                    let song = try T.decode(Song.self, r)
                    #expect(song.duration > 0 && song.format != nil, "\(name): \(song)")
                    stored += 1
                } else if r.status == .conflict {
                    stored += 1  // the same bytes as a file stored before it
                } else {
                    try T.expectProblem(r, .unprocessableContent)
                    let detail = try T.decode(Problem.self, r).detail ?? ""
                    #expect(detail.hasPrefix("Not a playable") && detail.count > 30, "\(name): \(detail)")
                    refused += 1
                }
            }
            #expect(stored >= 5 && refused >= 3, "\(stored) stored, \(refused) refused")
            #expect(try await http.execute(uri: "/healthz", method: .get).status == .ok)
        }
    }
}
