import Foundation
@testable import MusitAudio
@testable import MusitCodecs
import MusitTestSupport
import Testing

/// A track's duration is the number of samples the decoder really plays: these tests
/// decode each file to the end and count.
@Suite("True durations from the frames")
struct DurationTests {
    static let files = [
        "sine440.mp3", "sweep.mp3", "sweep_a.mp3", "sweep_b.mp3", "long20.mp3", "sine1k_48k.mp3",
        "tag_v23_utf16.mp3", "tag_v24.mp3", "tag_v1.mp3",
        "durations/no_info_tag.mp3", "durations/lame_vbr.mp3", "durations/mpeg2_mono.mp3", "durations/lame_48k.mp3",
        "durations/ffmpeg.mp3", "durations/ffmpeg_no_xing.mp3", "durations/big_cover.mp3", "durations/two_hours_32k.mp3",
    ]

    /// Decodes `path` to the end; the samples per channel it played.
    static func decodedFrames(_ path: String) throws -> Int64 {
        let track = try FileTrack(path: path)
        var buffer = [Int16](repeating: 0, count: 16384)
        var total: Int64 = 0
        while true {
            let n = try buffer.withUnsafeMutableBufferPointer { try track.read(into: $0) }
            if n == 0 { return total }
            total += Int64(n)
        }
    }

    @Test("the duration is exactly what the decoder plays, for every encoder and layout", arguments: files)
    func exact(file: String) throws {
        let path = Fixtures.path(file)
        let meta = try FileTrack.readMetadata(path: path)
        let played = try Self.decodedFrames(path)
        #expect(meta.totalFrames == played, "\(file): said \(meta.totalFrames ?? -1), played \(played)")
        // The HLS index the server serves adds up to the same.
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let index = try HLSSegmenter.index(data)
        #expect(index.segments.reduce(0) { $0 + $1.samples } == Int(played), "\(file): HLS total")
        // And the stream fed in small pieces, as an upload arrives, gives the same walk.
        var scanner = MP3Scanner()
        data.withUnsafeBytes { b in
            var i = 0
            while i < b.count {
                let n = min(b.count - i, 1 + (i * 7919) % 3000)
                scanner.consume(UnsafeRawBufferPointer(rebasing: b[i..<(i + n)]))
                i += n
            }
        }
        let chunked = try scanner.finish()
        #expect(chunked.samples == played && chunked.index == index, "\(file): chunked walk")
        // The player's walk keeps no table of frames, and sums up the same, also for the
        // file cut in the middle of a frame (the cut frame does not count).
        for cut in [data.count, data.count - 300] {
            let bytes = data.prefix(cut)
            let withSegments = bytes.withUnsafeBytes { b in try? MP3Scanner.scan(b) }
            var counting = MP3Scanner()
            counting.keepsSegments = false
            bytes.withUnsafeBytes { counting.consume($0) }
            var counted = try? counting.finish()
            #expect(counted?.index.segments.isEmpty ?? true, "\(file): no segments kept")
            counted?.index.segments = withSegments?.index.segments ?? []
            let same = counted == withSegments
            #expect(same, "\(file) cut at \(cut): \(counted?.samples ?? -1) samples in \(counted?.audioFrames ?? -1) frames without the table, \(withSegments?.samples ?? -1) in \(withSegments?.audioFrames ?? -1) with it")
        }
    }

    @Test("the durations libmpg123 estimated wrongly are now true")
    func knownCases() throws {
        let cover = try FileTrack.readMetadata(path: Fixtures.path("durations/big_cover.mp3"))
        #expect(abs((cover.duration ?? 0) - 10) < 0.1, "400 KB cover: \(cover.duration ?? -1) s")
        // Two hours of constant 32 kbps frames and nothing else: bytes × 8 / 32,000 seconds.
        let path = Fixtures.path("durations/two_hours_32k.mp3")
        let long = try FileTrack.readMetadata(path: path)
        let bytes = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
        #expect(abs((long.duration ?? 0) - Double(bytes) * 8 / 32000) < 0.05, "2 h at 32 kbps: \(long.duration ?? -1) s")
    }

    @Test("a file the Info header says is longer opens as what it has, saying so; with no samples it is refused")
    func refused() throws {
        // The player takes a half-downloaded file as mpg123 and cmus do; its metadata says
        // what is missing. The server's scan still refuses it (`SongTests`).
        let cut = try FileTrack(path: Fixtures.path("truncated.mp3")).metadata
        let duration = try #require(cut.duration)
        #expect(duration > 1.5 && duration < 2.5, "plays \(duration) s")
        let said = try #require(cut.damage)
        let match = try #require(said.wholeMatch(of: /truncated MP3: audio ends at (\d+\.\d) s of 5\.0 s/), "\(said)")
        #expect(abs((Double(match.1) ?? 0) - duration) < 0.1, "\(said), for \(duration) s played")
        let fd = open(Fixtures.path("truncated.mp3"), O_RDONLY)
        defer { close(fd) }
        #expect(throws: AudioError.Reason.self) { try MP3Scanner.scan(fd: fd) }
        do {
            _ = try FileTrack(path: Fixtures.path("no_samples.mp3"))
            Issue.record("no_samples.mp3 was accepted")
        } catch {
            #expect(error.reason == .noSamples, "\(error.message)")
        }
    }
}
