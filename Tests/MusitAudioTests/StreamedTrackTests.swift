import Foundation
@testable import MusitAudio
@testable import MusitCodecs
import MusitTestSupport
import Testing

/// StreamedTrack over a feed of HLS segments cut from a local file (no network).
@Suite("Streamed tracks: segments through the feed-mode decoder")
struct StreamedTrackTests {
    /// A feed holding every segment of `name`, and the playlist's start times.
    static func feed(_ name: String) throws -> (StreamFeed, [Double], HLSSegmenter.Index) {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(name)))
        let index = try HLSSegmenter.index(data)
        let feed = StreamFeed(readAhead: 1 << 30)
        let starts = index.segments.map { Double($0.startSample) / Double(index.sampleRate) }
        feed.setPlaylist(starts: starts)
        let bytes = [UInt8](data)
        Task {
            while let (generation, segment) = feed.nextRequest() {
                if segment < index.segments.count {
                    let s = index.segments[segment]
                    feed.append(Array(bytes[s.offset..<(s.offset + s.length)]), segment: segment, generation: generation)
                } else {
                    await feed.waitForSpace(generation: generation)
                }
            }
        }
        return (feed, starts, index)
    }

    static func readAll(_ source: any PCMSource, limit: Int = .max) throws -> [Int16] {
        var out: [Int16] = []
        var buffer = [Int16](repeating: 0, count: 4096)
        while out.count / 2 < limit {
            let n = try buffer.withUnsafeMutableBufferPointer { b -> Int in
                while true {
                    do throws(AudioError) {
                        return try source.read(into: b)
                    } catch {
                        if error.reason != .stalled { throw error }
                    }
                }
            }
            if n == 0 { break }
            out += buffer[0..<(n * 2)]
        }
        return out
    }

    @Test("a seek in the middle of a stream lands on the same samples as a seek in the file")
    func midStreamSeek() throws {
        let (feed, starts, _) = try Self.feed("long20.mp3")
        let track = try StreamedTrack(location: "stream", feed: feed, format: PCMFormat(sampleRate: 44100, channels: 2),
                                      hint: TrackMetadata(), timeout: 5)
        _ = try Self.readAll(track, limit: 44100)  // play a second, so the decoder has seen the Info tag
        #expect(starts.count >= 3)
        let target: Int64 = 13 * 44100 + 123
        try track.seek(toFrame: target)
        let streamed = try Self.readAll(track)
        let file = try FileTrack(path: Fixtures.path("long20.mp3"))
        try file.seek(toFrame: target)
        let local = try Self.readAll(file)
        #expect(abs(streamed.count - local.count) <= 2, "to the end of the audio: \(streamed.count / 2) vs \(local.count / 2) frames")
        // After the first frames (decoded without their bit reservoir) the samples agree.
        let a = PCM(samples: Array(streamed.dropFirst(2 * 4096))).channel(0, count: 8192)
        let b = PCM(samples: local).channel(0)
        let match = Signal.bestLag(probe: a, reference: b, expectedStart: 4096, maxLag: 2400)
        #expect(match.lag == 0, "landed \(match.lag) frames from the file's seek")
        #expect(match.correlation > 0.9999, "\(match.correlation)")
    }
}
