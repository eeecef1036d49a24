import Foundation
import Hummingbird
import HummingbirdTesting
import MusitAPI
import MusitCodecs
@testable import MusitServer
import MusitTestSupport
import NIOCore
import Testing

extension Client {
    func upload(_ fixture: String, type: String = "audio/mpeg") async throws -> TestResponse {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(fixture)))
        var headers = T.bearer(pair.accessToken)
        headers[.contentType] = type
        return try await http.execute(uri: "/api/v1/songs", method: .post, headers: headers, body: ByteBuffer(bytes: bytes))
    }
}

@Suite("Backend: songs, Range and HLS streaming", .serialized)
struct SongTests {
    @Test("upload reads tags and cover; duplicates, listing, search, and deletion by owner or admin")
    func library() async throws {
        let c = T.config()
        let app = try await MusitBackend.makeApplication(c)
        try await app.test(.live) { http in
            let admin = try await Client.make(http, "admin")
            let alice = try await Client.make(http, "alice")
            let bob = try await Client.make(http, "bob")
            let r = try await alice.upload("tag_v24.mp3")
            #expect(r.status == .created, "\(String(buffer: r.body))")
            let song = try T.decode(Song.self, r)
            #expect(song.title == "Ωμέγα UTF-8 🎶" && song.artist == "Artïst Four" && song.album == "Album v2.4")
            #expect(song.trackNumber == 11 && song.year == 2021 && song.hasCover && song.owner == "alice")
            #expect(abs(song.duration - 1.0) < 0.001)
            let cover = try await alice.call(.get, "/api/v1/songs/\(song.id)/cover")
            #expect(cover.headers[.contentType] == "image/png")
            #expect(Data(String(buffer: cover.body).utf8).count > 0)
            #expect([UInt8](buffer: cover.body) == [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("cover.png")))))
            let dup = try await bob.upload("tag_v24.mp3")
            try T.expectProblem(dup, .conflict)
            #expect(String(buffer: dup.body).contains("song \(song.id)"))

            let second = try T.decode(Song.self, try await bob.upload("tag_v1.mp3"))
            let third = try T.decode(Song.self, try await bob.upload("sine440.mp3"))
            var page = try T.decode(SongsPage.self, try await alice.call(.get, "/api/v1/songs?limit=2"))
            #expect(page.songs.map(\.id) == [song.id, second.id])
            page = try T.decode(SongsPage.self, try await alice.call(.get, "/api/v1/songs?limit=2&cursor=\(page.nextCursor ?? 0)"))
            #expect(page.songs.map(\.id) == [third.id] && page.nextCursor == nil)
            page = try T.decode(SongsPage.self, try await alice.call(.get, "/api/v1/songs?query=old%20artist"))
            #expect(page.songs.map(\.title) == ["Old Title"])
            page = try T.decode(SongsPage.self, try await alice.call(.get, "/api/v1/songs?query=%25"))
            #expect(page.songs.isEmpty, "% matches only a literal %")

            try T.expectProblem(try await alice.call(.delete, "/api/v1/songs/\(second.id)"), .forbidden)
            #expect(try await bob.call(.delete, "/api/v1/songs/\(second.id)").status == .noContent)
            #expect(try await admin.call(.delete, "/api/v1/songs/\(third.id)").status == .noContent)
            try T.expectProblem(try await bob.call(.get, "/api/v1/songs/\(second.id)"), .notFound)
            #expect(!FileManager.default.fileExists(atPath: c.dataDirectory + "/media/\(second.id).mp3"))
            #expect(FileManager.default.fileExists(atPath: c.dataDirectory + "/media/\(song.id).mp3"))
            let events = try await alice.poll(after: 0, timeout: 0).events
            #expect(events.filter { $0.kind == .libraryChanged }.count == 5, "3 uploads and 2 deletions")
        }
    }

    /// Each case says what was uploaded; none may store anything or leave a temp file.
    @Test("uploads that are not MP3, too large, or abandoned are refused and leave nothing")
    func badUploads() async throws {
        var c = T.config()
        c.uploadLimit = 200_000
        let app = try await MusitBackend.makeApplication(c)
        let port = try await app.test(.live) { http -> Int in
            let alice = try await Client.make(http, "alice")
            for (what, fixture, status) in [("a WAV named .mp3", "wav_named.mp3", HTTPResponse.Status.contentTooLarge),
                                            ("random bytes", "random.mp3", .unprocessableContent),
                                            ("an ID3 tag alone", "tag_only.mp3", .unprocessableContent),
                                            ("an empty file", "empty.mp3", .unprocessableContent),
                                            ("242 KB over a 200 KB limit", "sweep.mp3", .contentTooLarge)] {
                let r = try await alice.upload(fixture)
                #expect(r.status == status, "\(what): \(r.status) \(String(buffer: r.body))")
                #expect(r.headers[.contentType] == "application/problem+json", "\(what)")
            }
            let tagged = try await alice.upload("tone.wav")
            #expect(tagged.status == .unprocessableContent)
            #expect(String(buffer: tagged.body).contains("WAV"), "the reason is given")
            try T.expectProblem(try await alice.upload("sine440.mp3", type: "text/plain"), .unsupportedMediaType)
            try T.expectProblem(try await http.execute(uri: "/api/v1/songs", method: .post, headers: [.contentType: "audio/mpeg"],
                                                       body: ByteBuffer(string: "x")), .unauthorized)
            return http.port ?? 0
        }
        _ = port
        let store = try await T.store(c)
        #expect(try await store.songs(after: 0, limit: 10, query: nil).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.dataDirectory + "/media/uploads").isEmpty)
    }

    @Test("multipart/form-data uploads: the part named file is the song; broken forms are refused and leave nothing")
    func multipartUploads() async throws {
        var c = T.config()
        c.uploadLimit = 200_000
        let app = try await MusitBackend.makeApplication(c)
        let out = c.dataDirectory + "/curl-answer.json"
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let port = try #require(http.port)
            let path = Fixtures.path("tag_v24.mp3")
            let mp3 = try Data(contentsOf: URL(fileURLWithPath: path))

            // curl -F, a real multipart client, with a text field before the file.
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            curl.arguments = ["-sS", "-o", out, "-w", "%{http_code}", "-H", "Authorization: Bearer \(alice.pair.accessToken)",
                              "-F", "note=from a form", "-F", "file=@\(path);type=audio/mpeg", "http://127.0.0.1:\(port)/api/v1/songs"]
            let pipe = Pipe()
            curl.standardOutput = pipe
            try curl.run()
            let code = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            curl.waitUntilExit()
            #expect(code == "201", "curl -F: \(code) \((try? String(contentsOfFile: out, encoding: .utf8)) ?? "")")
            let song = try JSONDecoder().decode(Song.self, from: Data(contentsOf: URL(fileURLWithPath: out)))
            #expect(song.title == "Ωμέγα UTF-8 🎶" && song.bytes == Int64(mp3.count))
            // Stored byte for byte: the same file sent as audio/mpeg is a duplicate, and the audio is the file.
            try T.expectProblem(try await alice.upload("tag_v24.mp3"), .conflict)
            let audio = try await alice.call(.get, "/api/v1/songs/\(song.id)/audio")
            #expect(Data(buffer: audio.body) == mp3)

            func form(_ parts: [(name: String, body: Data)], boundary: String = "musit-XyZ", end: Bool = true) -> ByteBuffer {
                var d = Data()
                for p in parts {
                    d += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(p.name)\"; filename=\"x.mp3\"\r\n\r\n".utf8)
                    d += p.body + Data("\r\n".utf8)
                }
                if end { d += Data("--\(boundary)--\r\n".utf8) }
                return ByteBuffer(bytes: d)
            }
            func post(_ body: ByteBuffer, type: String = "multipart/form-data; boundary=musit-XyZ") async throws -> TestResponse {
                var headers = T.bearer(alice.pair.accessToken)
                headers[.contentType] = type
                return try await http.execute(uri: "/api/v1/songs", method: .post, headers: headers, body: body)
            }
            let sine = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("sine440.mp3")))
            let cases: [(String, ByteBuffer, String, HTTPResponse.Status)] = [
                ("no part named file", form([("note", Data("hi".utf8))]), "multipart/form-data; boundary=musit-XyZ", .badRequest),
                ("the file part is not an MP3", form([("file", Data("not an mp3".utf8))]), "multipart/form-data; boundary=musit-XyZ",
                 .unprocessableContent),
                ("the body ends inside the file part", form([("file", sine)], end: false).getSlice(at: 0, length: 5000)!,
                 "multipart/form-data; boundary=musit-XyZ", .badRequest),
                ("no boundary in the content type", form([("file", sine)]), "multipart/form-data", .badRequest),
                ("a quoted boundary that is not in the body", form([("file", sine)]), "multipart/form-data; boundary=\"other\"",
                 .badRequest),
                ("a file over the 200 KB limit", form([("file", Data(repeating: 0xFF, count: 250_000))]),
                 "multipart/form-data; boundary=musit-XyZ", .contentTooLarge),
            ]
            for (what, body, type, status) in cases {
                let r = try await post(body, type: type)
                #expect(r.status == status, "\(what): \(r.status) \(String(buffer: r.body))")
                #expect(r.headers[.contentType] == "application/problem+json", "\(what)")
            }
            // A quoted boundary and the file after another part are read as well.
            let second = try await post(form([("note", Data("hi".utf8)), ("file", sine)], boundary: "a b"),
                                        type: "multipart/form-data; boundary=\"a b\"")
            #expect(second.status == .created, "\(String(buffer: second.body))")
            let list = try T.decode(SongsPage.self, try await alice.call(.get, "/api/v1/songs"))
            #expect(list.songs.count == 2)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.dataDirectory + "/media/uploads").isEmpty)
    }

    @Test("a form's other parts are skipped, and may not outgrow their allowance even when chunked")
    func multipartAllowance() async throws {
        let form = "--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n" + String(repeating: "a", count: 100_000)
            + "\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.mp3\"\r\n\r\nthe file\r\n--b--\r\n"
        // In 8 KiB pieces, as a chunked body (no Content-Length to refuse it up front) arrives.
        func body() -> AsyncStream<ByteBuffer> {
            let bytes = Array(form.utf8)
            return AsyncStream { c in
                for start in stride(from: 0, to: bytes.count, by: 8192) {
                    c.yield(ByteBuffer(bytes: bytes[start..<min(start + 8192, bytes.count)]))
                }
                c.finish()
            }
        }
        var file: [UInt8] = []
        for try await piece in MultipartFile(base: body(), boundary: "b", limit: 200_000) { file += Array(buffer: piece) }
        #expect(String(decoding: file, as: UTF8.self) == "the file", "only the part named file comes through")
        await #expect {
            for try await _ in MultipartFile(base: body(), boundary: "b", limit: 50_000) {}
        } throws: { ($0 as? Problem)?.status == 413 }
    }

    @Test("a client that disconnects mid-upload leaves no song and no temp file")
    func disconnectMidUpload() async throws {
        let c = T.config()
        let app = try await MusitBackend.makeApplication(c)
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let port = try #require(http.port)
            // Promise 400 KB, send 50 KB, hang up.
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("long20.mp3"))))
            let head = "POST /api/v1/songs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(alice.pair.accessToken)\r\n" +
                "Content-Type: audio/mpeg\r\nContent-Length: \(bytes.count)\r\n\r\n"
            RawHTTP.sendAndHangUp(port: port, bytes: Array(head.utf8) + bytes.prefix(50_000))
            try await Task.sleep(for: .milliseconds(300))
            let list = try T.decode(SongsPage.self, try await alice.call(.get, "/api/v1/songs"))
            #expect(list.songs.isEmpty)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.dataDirectory + "/media/uploads").isEmpty)
    }

    @Test("Range, If-Range and ETag: suffix, open-ended, past the end, several ranges, 304")
    func ranges() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let song = try T.decode(Song.self, try await alice.upload("sine440.mp3"))
            let file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("sine440.mp3"))))
            let uri = "/api/v1/songs/\(song.id)/audio"
            func get(_ headers: HTTPFields) async throws -> TestResponse {
                var h = T.bearer(alice.pair.accessToken)
                for f in headers { h.append(f) }
                return try await http.execute(uri: uri, method: .get, headers: h)
            }
            let full = try await get([:])
            #expect(full.status == .ok && [UInt8](buffer: full.body) == file)
            #expect(full.headers[.acceptRanges] == "bytes")
            let etag = try #require(full.headers[.eTag])
            var r = try await get([.range: "bytes=0-99"])
            #expect(r.status == .partialContent && [UInt8](buffer: r.body) == Array(file[0...99]))
            #expect(r.headers[.contentRange] == "bytes 0-99/\(file.count)")
            r = try await get([.range: "bytes=-5"])
            #expect(r.status == .partialContent && [UInt8](buffer: r.body) == Array(file.suffix(5)), "suffix range: the last 5 bytes")
            r = try await get([.range: "bytes=100000-"])
            #expect([UInt8](buffer: r.body) == Array(file[100_000...]))
            r = try await get([.range: "bytes=0-10000000"])
            #expect(r.status == .partialContent && [UInt8](buffer: r.body).count == file.count)
            r = try await get([.range: "bytes=\(file.count)-"])
            #expect(r.status == .rangeNotSatisfiable && r.headers[.contentRange] == "bytes */\(file.count)")
            r = try await get([.range: "bytes=0-9,20-29"])
            #expect(r.status == .ok && [UInt8](buffer: r.body) == file, "several ranges: the whole file")
            r = try await get([.range: "bytes=10-19", .ifRange: etag])
            #expect(r.status == .partialContent)
            r = try await get([.range: "bytes=10-19", .ifRange: "\"stale\""])
            #expect(r.status == .ok && [UInt8](buffer: r.body) == file, "If-Range mismatch: the whole file")
            r = try await get([.ifNoneMatch: etag])
            #expect(r.status == .notModified)
            // From the second range request on, the song is served from memory: same bytes.
            for start in stride(from: 0, to: file.count - 4096, by: 7919) {
                r = try await get([.range: "bytes=\(start)-\(start + 4095)"])
                #expect(r.status == .partialContent && [UInt8](buffer: r.body) == Array(file[start..<(start + 4096)]))
            }
            // Deleted: not served from memory or from an open file.
            let deleted = try await http.execute(uri: "/api/v1/songs/\(song.id)", method: .delete, headers: T.bearer(alice.pair.accessToken))
            #expect(deleted.status == .noContent)
            r = try await get([.range: "bytes=0-99"])
            #expect(r.status == .notFound, "a deleted song is gone from every cache")
        }
    }

    @Test("the Range header, read as RFC 9110 writes it: one range or the whole file, 416 only for a range that misses")
    func rangeGrammar() throws {
        enum Want: Equatable { case range(ClosedRange<Int>), whole, unsatisfiable }
        func read(_ header: String, size: Int = 1000) -> Want {
            switch Result(catching: { try SongRoutes.parseRange(header, size: size) }) {
            case .success(let range): return range.map(Want.range) ?? .whole
            case .failure(let error):
                let refusal = error as? HTTPError
                #expect(refusal?.status == .rangeNotSatisfiable && refusal?.headers[.contentRange] == "bytes */\(size)", "\(error)")
                return .unsatisfiable
            }
        }
        let table: [(String, Want)] = [
            ("bytes=0-99", .range(0...99)), ("bytes=0-0", .range(0...0)), ("bytes=999-999", .range(999...999)),
            ("bytes=500-", .range(500...999)), ("bytes=-5", .range(995...999)), ("bytes=-5000", .range(0...999)),
            ("bytes=10-5000", .range(10...999)), ("bytes= 1-2\t", .range(1...2)),
            ("bytes=1000-", .unsatisfiable), ("bytes=1000-1001", .unsatisfiable), ("bytes=-0", .unsatisfiable),
            ("bytes=-", .unsatisfiable),
            // Not a single well-formed byte range: the whole file, as if there were no header.
            ("bytes=0-9,20-29", .whole), ("bytes=5-1", .whole), ("bytes=a-b", .whole), ("bytes=1-2-3", .whole),
            ("bytes=+1-2", .whole), ("bytes=1 -2", .whole), ("bytes=-+5", .whole), ("bytes=", .whole),
            ("items=0-1", .whole), ("Bytes=0-1", .whole), ("bytes=0x10-20", .whole),
            ("bytes=1234567890123456789-", .whole), ("bytes=0-1234567890123456789", .whole), ("", .whole),
        ]
        for (header, want) in table {
            #expect(read(header) == want, "\(header)")
        }
        #expect(read("bytes=-1", size: 0) == .unsatisfiable, "nothing to send from an empty file")
        #expect(read("bytes=0-", size: 0) == .unsatisfiable)
    }

    @Test("media URLs carry a token for one song; without one, a bearer header is needed")
    func mediaTokens() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let a = try T.decode(Song.self, try await alice.upload("sine440.mp3"))
            let b = try T.decode(Song.self, try await alice.upload("tag_v1.mp3"))
            let urls = try T.decode(StreamURLs.self, try await alice.call(.get, "/api/v1/songs/\(a.id)/stream"))
            #expect(try await http.execute(uri: urls.audio, method: .get).status == .ok)
            #expect(try await http.execute(uri: urls.hls, method: .get).status == .ok)
            try T.expectProblem(try await http.execute(uri: "/api/v1/songs/\(b.id)/audio?token=\(urls.token)", method: .get), .unauthorized)
            try T.expectProblem(try await http.execute(uri: "/api/v1/songs/\(a.id)/audio", method: .get), .unauthorized)
            try T.expectProblem(try await http.execute(uri: "/api/v1/songs/\(a.id)/audio?token=\(alice.pair.accessToken)", method: .get),
                                .unauthorized)
        }
    }

    @Test("a hot song's ranges come from memory below the router with the route's very answer; a deleted song's do not")
    func rangesFromMemory() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let song = try T.decode(Song.self, try await alice.upload("long20.mp3"))
            let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("long20.mp3"))))
            let urls = try T.decode(StreamURLs.self, try await alice.call(.get, "/api/v1/songs/\(song.id)/stream"))
            // Asked for by range twice, the song is held in memory; then a range is answered there.
            for _ in 0..<3 { _ = try await http.execute(uri: urls.audio, method: .get, headers: [.range: "bytes=0-99"]) }
            for (header, range) in [("bytes=1000-70000", 1000...70000), ("bytes=-100", (file.count - 100)...(file.count - 1)),
                                    ("bytes=400000-", 400_000...(file.count - 1))] {
                let fast = try await http.execute(uri: urls.audio, method: .get, headers: [.range: header])
                // An Origin (CORS is off) sends the same request through the router.
                let routed = try await http.execute(uri: urls.audio, method: .get, headers: [.range: header, .origin: "http://x"])
                #expect(fast.status == .partialContent && routed.status == .partialContent)
                #expect([UInt8](buffer: fast.body) == Array(file[range]), "\(header)")
                #expect([UInt8](buffer: routed.body) == Array(file[range]))
                var a = fast.headers, b = routed.headers
                a[.date] = nil
                b[.date] = nil
                #expect(a == b, "\(header): \(a) vs \(b)")
            }
            let metrics = String(buffer: try await http.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.contains(#"hb_requests_total{http_route="/api/v1/songs/{id}/audio",http_request_method="GET",http_response_status_code="206"}"#))
            #expect(try await alice.call(.delete, "/api/v1/songs/\(song.id)").status == .noContent)
            let gone = try await http.execute(uri: urls.audio, method: .get, headers: [.range: "bytes=1000-70000"])
            #expect(gone.status == .unauthorized || gone.status == .notFound, "\(gone.status)")
        }
    }

    @Test("HLS: a VOD playlist of packed-audio segments, each with its PRIV timestamp, that ffmpeg plays end to end")
    func hls() async throws {
        let app = try await MusitBackend.makeApplication(T.config())
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let song = try T.decode(Song.self, try await alice.upload("long20.mp3"))
            let urls = try T.decode(StreamURLs.self, try await alice.call(.get, "/api/v1/songs/\(song.id)/stream"))
            let playlist = String(buffer: try await http.execute(uri: urls.hls, method: .get).body)
            let lines = playlist.split(separator: "\n").map(String.init)
            #expect(lines.first == "#EXTM3U" && lines.last == "#EXT-X-ENDLIST")
            #expect(lines.contains("#EXT-X-PLAYLIST-TYPE:VOD"))
            let target = Int(lines.first { $0.hasPrefix("#EXT-X-TARGETDURATION:") }!.split(separator: ":")[1])!
            let durations = lines.filter { $0.hasPrefix("#EXTINF:") }.map { Double($0.dropFirst(8).dropLast())! }
            #expect(durations.count == 4, "20 s in about 6 s segments: \(durations)")
            #expect(durations.allSatisfy { $0 <= Double(target) && $0 > 0 })
            #expect(abs(durations.reduce(0, +) - song.duration) < 0.1, "\(durations.reduce(0, +)) vs \(song.duration)")

            // Every segment: an ID3 PRIV timestamp, then MP3 frames; together, exactly the file's frames.
            let file = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("long20.mp3")))
            let index = try HLSSegmenter.index(file)
            var joined: [UInt8] = []
            var lastPTS: UInt64 = 0
            let segmentURIs = lines.filter { !$0.hasPrefix("#") }
            for (i, name) in segmentURIs.enumerated() {
                let body = [UInt8](buffer: try await http.execute(uri: "/api/v1/songs/\(song.id)/hls/\(name)", method: .get).body)
                #expect(Array(body.prefix(3)) == Array("ID3".utf8), "segment \(i) starts with ID3")
                let owner = Array("com.apple.streaming.transportStreamTimestamp".utf8)
                #expect(Array(body[20..<(20 + owner.count)]) == owner, "segment \(i) PRIV owner")
                let tagSize = body.withUnsafeBytes { MP3Probe.id3v2Size($0) }
                let ptsBytes = body[(tagSize - 8)..<tagSize]
                let pts = ptsBytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                #expect(i == 0 ? pts == 0 : pts > lastPTS, "timestamps grow")
                #expect(pts == UInt64((Double(index.segments[i].startSample) * 90_000 / 44_100).rounded()))
                lastPTS = pts
                joined += body[tagSize...]
            }
            #expect(joined == [UInt8](file[index.audioOffset..<(index.audioOffset + index.audioLength)]),
                    "segments concatenated are exactly the song's MP3 frames")

            // ffprobe and ffmpeg, independent clients, read it over HTTP.
            let url = "http://127.0.0.1:\(http.port ?? 0)\(urls.hls)"
            let probe = try Tool.run("/usr/bin/ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", url])
            let probed = Double(probe.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            #expect(abs(probed - song.duration) <= 0.1, "ffprobe duration \(probed) vs \(song.duration): \(probe.stderr)")
            let decode = try Tool.run("/usr/bin/ffmpeg", ["-v", "error", "-i", url, "-f", "s16le", "-ac", "2", "-ar", "44100", "-"],
                                      captureBytes: true)
            let seconds = Double(decode.bytes) / (44_100 * 4)
            #expect(decode.status == 0, "\(decode.stderr)")
            #expect(abs(seconds - song.duration) <= 0.1, "ffmpeg decoded \(seconds) s")
        }
    }
}

enum Tool {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var bytes: Int
    }

    static func run(_ path: String, _ args: [String], captureBytes: Bool = false) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        // Drain stderr beside stdout so neither pipe fills up and stalls the tool.
        let errBox = Locked<Data>(Data())
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            let d = err.fileHandleForReading.readDataToEndOfFile()
            errBox.withLock { $0 = d }
            group.leave()
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        let errData = errBox.withLock { $0 }
        return Result(status: p.terminationStatus, stdout: captureBytes ? "" : String(decoding: data, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self), bytes: data.count)
    }
}

extension Array where Element == UInt8 {
    init(buffer: ByteBuffer) {
        self = buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? []
    }
}

@Suite("Backend: quota and deleting a song while it streams", .serialized)
struct SongLimitTests {
    @Test("the per-user quota refuses an upload that would exceed it, and stores nothing")
    func quota() async throws {
        var c = T.config()
        c.quota = 150_000
        let app = try await MusitBackend.makeApplication(c)
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let bob = try await Client.make(http, "bob")
            #expect(try await alice.upload("sine440.mp3").status == .created)   // 121,625 bytes
            #expect(try await alice.upload("tag_v1.mp3").status == .created)    // 17,263 more
            let over = try await alice.upload("sweep_a.mp3")                     // 110,758 more: over
            try T.expectProblem(over, .contentTooLarge)
            #expect(String(buffer: over.body).contains("quota"))
            #expect(try await bob.upload("sweep_a.mp3").status == .created, "the quota is per user")
            let page = try T.decode(SongsPage.self, try await alice.call(.get, "/api/v1/songs"))
            #expect(page.songs.count == 3)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.dataDirectory + "/media/uploads").isEmpty)
    }

    @Test("a stream that is running when its song is deleted ends cleanly with every byte")
    func deleteWhileStreaming() async throws {
        let c = T.config()
        let app = try await MusitBackend.makeApplication(c)
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            let song = try T.decode(Song.self, try await alice.upload("long20.mp3"))
            let port = try #require(http.port)
            let fd = RawHTTP.connect(port: port, receiveBuffer: 4096)
            #expect(fd >= 0)
            defer { close(fd) }
            RawHTTP.send(fd, Array(("GET /api/v1/songs/\(song.id)/audio HTTP/1.1\r\nHost: x\r\n" +
                                    "Authorization: Bearer \(alice.pair.accessToken)\r\nConnection: close\r\n\r\n").utf8))
            // Read a little, delete the song, then read the rest.
            var received = RawHTTP.receive(fd, limit: 20_000)
            #expect(try await alice.call(.delete, "/api/v1/songs/\(song.id)").status == .noContent)
            try T.expectProblem(try await alice.call(.get, "/api/v1/songs/\(song.id)/audio"), .notFound)
            received += RawHTTP.receive(fd)
            let text = String(decoding: received.prefix(400), as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200"))
            let headerEnd = try #require(received.firstRange(of: Array("\r\n\r\n".utf8)))
            let body = Array(received[headerEnd.upperBound...])
            let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("long20.mp3"))))
            #expect(body == file, "every byte: \(body.count) of \(file.count)")
        }
    }

    @Test("songs stored with an estimated duration get their true one from the frames at the next start",
          .enabled(if: !T.onPostgres, "edits the SQLite file the way the previous version wrote it"))
    func rescanAtStart() async throws {
        let c = T.config()
        let id = try await MusitBackend.makeApplication(c).test(.live) { http -> Int64 in
            let alice = try await Client.make(http, "alice")
            let r = try await alice.upload("durations/big_cover.mp3")
            return try JSONDecoder().decode(Song.self, from: Data(buffer: r.body)).id
        }
        // As the previous version stored it: libmpg123's estimate, and an index that says so.
        let store = try SQLiteStore(path: c.dataDirectory + "/musit.sqlite")
        try await store.pool.write { db in
            try db.execute(sql: "UPDATE song SET duration = 35.21968, scanVersion = 0 WHERE id = ?", arguments: [id])
        }
        try await MusitBackend.makeApplication(c).test(.live) { http in
            let alice = try await Client.make(http, "bob")
            let song = try JSONDecoder().decode(Song.self, from: Data(buffer: try await alice.call(.get, "/api/v1/songs/\(id)").body))
            #expect(abs(song.duration - 10.03102) < 0.0001, "\(song.duration)")
        }
        #expect(try await store.songsToRescan().isEmpty)
    }
}
