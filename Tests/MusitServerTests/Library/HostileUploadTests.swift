import Foundation
import Hummingbird
import HummingbirdTesting
import MusitAPI
@testable import MusitServer
import MusitTestSupport
import NIOCore
import Testing

/// Uploads made to cost the server (issue 23, item 5), over real HTTP: each is answered
/// with a problem at once, costs no more than a plain MP3 of its size, and stores nothing.
@Suite("Backend: hostile uploads are answered at once", .serialized)
struct HostileUploadTests {
    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func fixture(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(name)))
    }

    /// 100,000 empty ID3v2 headers one after another (1 MB), then a short real MP3: 25 s
    /// of the server's CPU, and accepted, before the walk of the tags went on from where
    /// it stopped instead of from the start.
    static func chainedTags() throws -> Data {
        let empty = Data("ID3".utf8) + Data([3, 0, 0, 0, 0, 0, 0])
        var d = Data(capacity: 100_000 * empty.count + 200_000)
        for _ in 0..<100_000 { d += empty }
        return d + (try fixture("sine440.mp3"))
    }

    /// `file` as the part named file of a form.
    static func form(_ file: Data, boundary: String = "musit-hostile") -> Data {
        Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\n".utf8)
            + file + Data("\r\n--\(boundary)--\r\n".utf8)
    }

    @Test("100,000 chained ID3v2 headers before a short MP3: 422 problem+json within a second (and in a form), at no more CPU a megabyte than twice a plain MP3's")
    func chainedHeaders() async throws {
        let c = T.config()
        let app = try await MusitBackend.makeApplication(c)
        let chained = try Self.chainedTags()
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            func post(_ body: Data, type: String) async throws -> (TestResponse, Double) {
                var headers = T.bearer(alice.pair.accessToken)
                headers[.contentType] = type
                let clock = ContinuousClock()
                let start = clock.now
                let r = try await http.execute(uri: "/api/v1/songs", method: .post, headers: headers, body: ByteBuffer(bytes: body))
                return (r, Self.seconds(clock.now - start))
            }
            let (r, took) = try await post(chained, type: "audio/mpeg")
            try T.expectProblem(r, .unprocessableContent)
            #expect(String(buffer: r.body).contains("more than 8 ID3v2 tags in a row"), "\(String(buffer: r.body))")
            #expect(took < 1, "answered after \(took) s")
            // The same in a form: the same answer (the form parser's own cost per byte, large
            // in a debug build, is a plain form's too, so it is not timed here).
            let (f, _) = try await post(Self.form(chained), type: "multipart/form-data; boundary=musit-hostile")
            try T.expectProblem(f, .unprocessableContent)
            #expect(String(buffer: f.body).contains("more than 8 ID3v2 tags in a row"), "form: \(String(buffer: f.body))")

            // CPU per megabyte: no more than twice a plain MP3's of about the same size (its
            // duplicates are walked and hashed in full, and answered 409 without a commit).
            let long = try Self.fixture("long20.mp3")
            let plain = long + long + long
            let first = try await post(plain, type: "audio/mpeg").0
            #expect(first.status == .created, "\(String(buffer: first.body))")
            var plainBest = Double.infinity, hostileBest = Double.infinity
            for _ in 0..<5 {
                let (dup, plainTook) = try await post(plain, type: "audio/mpeg")
                #expect(dup.status == .conflict)
                plainBest = min(plainBest, plainTook / Double(plain.count))
                let (refused, hostileTook) = try await post(chained, type: "audio/mpeg")
                #expect(refused.status == .unprocessableContent)
                hostileBest = min(hostileBest, hostileTook / Double(chained.count))
            }
            #expect(hostileBest <= 2 * plainBest,
                    "\(hostileBest * 1e9) ms/MB for the chained headers against \(plainBest * 1e9) ms/MB for a plain MP3")

            let list = try T.decode(SongsPage.self, try await alice.call(.get, "/api/v1/songs"))
            #expect(list.songs.count == 1, "only the plain MP3 is stored")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.dataDirectory + "/media/uploads").isEmpty)
    }

    @Test("other hostile uploads: a tag claiming 256 MB, a tag of 60,000 comments; each 422 within a second")
    func otherShapes() async throws {
        let c = T.config()
        let app = try await MusitBackend.makeApplication(c)
        let mp3 = try Self.fixture("sine440.mp3")
        func synchsafe(_ n: Int) -> Data {
            Data([UInt8((n >> 21) & 0x7F), UInt8((n >> 14) & 0x7F), UInt8((n >> 7) & 0x7F), UInt8(n & 0x7F)])
        }
        // A tag whose header claims 256 MB, in front of 121 KB.
        let claims = Data("ID3".utf8) + Data([3, 0, 0]) + synchsafe((1 << 28) - 1) + mp3
        // A tag of 60,000 comment frames, each with its own description: libmpg123 compares
        // each with every one before it (6 s).
        var comments = Data()
        for i in 0..<60_000 {
            let body = Data([0]) + Data("eng".utf8) + Data("d\(i)".utf8) + Data([0, 0x63])
            let size = withUnsafeBytes(of: UInt32(body.count).bigEndian) { Data($0) }
            comments += Data("COMM".utf8) + size + Data([0, 0]) + body
        }
        let manyComments = Data("ID3".utf8) + Data([3, 0, 0]) + synchsafe(comments.count) + comments + mp3
        try await app.test(.live) { http in
            let alice = try await Client.make(http, "alice")
            for (what, body, type, reason) in [
                ("a tag claiming 256 MB", claims, "audio/mpeg", "ID3v2 tags claim"),
                ("60,000 comments", manyComments, "audio/mpeg", "more than 256 text, comment and picture frames"),
            ] {
                var headers = T.bearer(alice.pair.accessToken)
                headers[.contentType] = type
                let clock = ContinuousClock()
                let start = clock.now
                let r = try await http.execute(uri: "/api/v1/songs", method: .post, headers: headers, body: ByteBuffer(bytes: body))
                let took = Self.seconds(clock.now - start)
                try T.expectProblem(r, .unprocessableContent)
                #expect(String(buffer: r.body).contains(reason), "\(what): \(String(buffer: r.body))")
                #expect(took < 1, "\(what): answered after \(took) s")
            }
            let list = try T.decode(SongsPage.self, try await alice.call(.get, "/api/v1/songs"))
            #expect(list.songs.isEmpty)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.dataDirectory + "/media/uploads").isEmpty)
    }

    /// The form parser (MultipartKit) calls back at every CR, which may start the boundary,
    /// with the bytes before it and then the CR alone. Each piece used to be handed on by
    /// itself, taken off the front of an array (a cost of the array's length): a chunk of
    /// 64 KiB of CRs was 65,536 pieces, 10 s of CPU for 256 KiB, each piece then hashed,
    /// walked and written to disk alone.
    @Test("a form whose file is all CRs comes through in one piece a chunk, not one a byte")
    func formOfCarriageReturns() async throws {
        let head = Array("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.mp3\"\r\n\r\n".utf8)
        let form = head + [UInt8](repeating: 0x0D, count: 128 * 1024) + Array("\r\n--b--\r\n".utf8)
        let chunks = stride(from: 0, to: form.count, by: 64 * 1024).map { ByteBuffer(bytes: form[$0..<min($0 + 64 * 1024, form.count)]) }
        let body = AsyncStream<ByteBuffer> { c in
            for chunk in chunks { c.yield(chunk) }
            c.finish()
        }
        var pieces = 0
        var file: [UInt8] = []
        for try await piece in MultipartFile(base: body, boundary: "b", limit: 1 << 20) {
            pieces += 1
            file += Array(buffer: piece)
        }
        #expect(file == [UInt8](repeating: 0x0D, count: 128 * 1024), "the file's bytes, all of them, in order")
        #expect(pieces <= chunks.count, "\(pieces) pieces from \(chunks.count) chunks")
    }
}
