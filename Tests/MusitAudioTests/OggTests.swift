import Foundation
@testable import MusitAudio
@testable import MusitCodecs
import MusitTestSupport
import Testing

/// Ogg Vorbis and Ogg Opus: lossy, so compared with their sources by correlation; their
/// lengths are exact (granule positions), so frame counts are compared exactly.
@Suite("Ogg Vorbis and Opus: gapless halves, tags, seeking, bytes not names")
struct OggTests {
    @Test("two halves of one sweep join into the sweep with its exact length, in one device stream",
          arguments: [("sweep_a.ogg", "sweep_b.ogg", "sweep.wav", 119_070, 44_100),
                      ("sweep48_a.opus", "sweep48_b.opus", "sweep48.wav", 100_001, 48_000)])
    func gaplessHalves(a: String, b: String, wav: String, join: Int, rate: Int) async throws {
        let (device, capture) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device)
        h.play([a, b])
        await h.waitForQueueEnd()
        let pcm = try PCM(raw: capture)
        let source = try PCM(wav: Fixtures.path(wav))
        #expect(pcm.frames == source.frames, "no inserted or dropped frames: \(pcm.frames) vs \(source.frames)")
        for c in 0..<2 {
            let whole = Signal.correlation(pcm.channel(c), source.channel(c))
            let around = Signal.correlation(pcm.channel(c, from: join - 2048, count: 4096),
                                            source.channel(c, from: join - 2048, count: 4096))
            #expect(whole >= 0.999, "channel \(c) correlation \(whole)")
            #expect(around >= 0.999, "channel \(c) correlation across the join \(around)")
        }
        let outputs = h.events.filter { if case .outputChanged = $0 { true } else { false } }
        #expect(outputs.count == 1, "joined without reopening the device")
        let formats = h.events.compactMap { if case .trackStarted(_, _, let m) = $0 { m.format.sampleRate } else { nil } }
        #expect(formats == [rate, rate])
        #expect(h.started == [0, 1] && h.failures.isEmpty, "\(h.failures)")
    }

    @Test("what the device gets is what the reference decoder writes, byte for byte (flac -d, oggdec -R, opusdec --no-dither)",
          arguments: ["sweep_a.flac", "sweep_a.ogg", "sweep_b.ogg", "sweep48_a.opus", "sweep48_b.opus"])
    func equalsReferenceDecoder(file: String) async throws {
        let (device, capture) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device)
        h.play([file])
        await h.waitForQueueEnd()
        #expect(h.failures.isEmpty, "\(h.failures)")
        let played = try Data(contentsOf: URL(fileURLWithPath: capture))
        let reference = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(file + ".raw")))
        #expect(played.count == reference.count, "\(played.count) bytes played, \(reference.count) from the reference")
        let first = zip(played, reference).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(first == nil, "first differing byte at \(first ?? -1)")
        if file.hasSuffix(".flac") {
            // FLAC carries the MD5 of its audio: what played has it.
            func output(_ tool: String, _ args: [String]) throws -> String {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: tool)
                p.arguments = args
                let out = Pipe()
                p.standardOutput = out
                try p.run()
                let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                p.waitUntilExit()
                return text.split(separator: " ").first.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
            }
            let signature = try output("/usr/bin/metaflac", ["--show-md5sum", Fixtures.path(file)])
            #expect(signature.count == 32 && signature != String(repeating: "0", count: 32))
            #expect(try output("/usr/bin/md5sum", [capture]) == signature, "the played audio's MD5 is STREAMINFO's")
        }
    }

    @Test("Vorbis comments and the METADATA_BLOCK_PICTURE cover; exact lengths", arguments: [
        ("tagged.ogg", "ogg", 44_100, 44_100), ("tagged.opus", "opus", 48_000, 48_000),
    ])
    func tags(file: String, kind: String, rate: Int, frames: Int64) throws {
        let meta = try AudioFiles.readMetadata(path: Fixtures.path(file))
        #expect(meta.title == "Ogg Title – \(kind)")
        #expect(meta.artist == "Xiph Ärtist" && meta.album == "Open Formats")
        #expect(meta.trackNumber == 2 && meta.year == 2012)
        #expect(meta.format == PCMFormat(sampleRate: rate, channels: 2))
        #expect(meta.totalFrames == frames, "1 s exactly")
        let cover = try #require(meta.cover)
        #expect(cover.data == [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("cover.png")))))
        #expect(cover.mimeType == "image/png" && cover.pictureType == 3 && cover.description == "Front")
        let tags = try #require(AudioFiles.readTags(path: Fixtures.path(file)))
        #expect(tags.title == meta.title && tags.cover == nil)
    }

    @Test("a seek lands on the sample: what follows lines up with the source there, not 24 samples off",
          arguments: [("sweep_a.ogg", "sweep_a.wav"), ("sweep48_a.opus", "sweep48_a.wav")])
    func seekToSample(file: String, wav: String) throws {
        let source = try PCM(wav: Fixtures.path(wav))
        let track = try AudioFiles.open(path: Fixtures.path(file))
        for target in [80_000, 12_345, 40_000] {
            #expect(try track.seek(toFrame: Int64(target)) == Int64(target))
            var out: [Int16] = []
            var buffer = [Int16](repeating: 0, count: 2 * 1024)
            while out.count < 2 * 4096 {
                let n = try buffer.withUnsafeMutableBufferPointer { try track.read(into: $0) }
                if n == 0 { break }
                out += buffer[0..<(n * 2)]
            }
            let got = PCM(samples: Array(out.prefix(2 * 4096)))
            let here = Signal.correlation(got.channel(0), source.channel(0, from: target, count: 4096))
            let off = Signal.correlation(got.channel(0), source.channel(0, from: target + 24, count: 4096))
            #expect(here >= 0.99 && here > off + 0.05, "at \(target): \(here) there, \(off) 24 samples on")
        }
    }

    @Test("a mixed queue — MP3 44.1 kHz, Opus 48 kHz, FLAC 96 kHz/24 — plays each at its own rate and pitch")
    func mixedQueue() async throws {
        _ = Fixtures.alsaConfig
        let capture = NSTemporaryDirectory() + "musit-capture-mixed-\(UUID().uuidString.prefix(8)).raw"
        let files = [capture, capture + ".0001", capture + ".0002"]
        defer { for f in files { try? FileManager.default.removeItem(atPath: f) } }
        // Each format reopens the device; ALSA's file device, told not to truncate, then
        // writes to FILE, FILE.0001, FILE.0002: one file per opening.
        let h = PlayerHarness(device: "testappend:FILE=\(capture)")
        h.play(["sine440.mp3", "tone.opus", "hires96.flac"])
        await h.waitForQueueEnd()
        #expect(h.started == [0, 1, 2] && h.failures.isEmpty, "\(h.failures)")
        let formats = h.events.compactMap { if case .trackStarted(_, _, let m) = $0 { m.format.sampleRate } else { nil } }
        #expect(formats == [44_100, 48_000, 96_000])
        #expect(files.allSatisfy { FileManager.default.fileExists(atPath: $0) }, "the device was opened once per rate")
        // Each opening's WAV header says the format it was opened with: 16 bits for the MP3
        // and the Opus, 32 for the 24-bit FLAC (its samples as they are, left-justified).
        var pcm = PCM(samples: [])
        var opened: [String] = []
        for f in files where FileManager.default.fileExists(atPath: f) {
            let wav = try PCM.wavFile(f)
            opened.append("\(wav.rate)/\(wav.bits)")
            pcm.samples += wav.bits == 32
                ? wav.data.withUnsafeBytes { $0.bindMemory(to: Int32.self).map { Int16(truncatingIfNeeded: Int32(littleEndian: $0) >> 16) } }
                : wav.data.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
        }
        #expect(opened == ["44100/16", "48000/16", "96000/32"])
        // Each change of format reopened the device once, said so, within 150 ms.
        let reopened = h.events.compactMap { if case .outputReopened(let f, let ms) = $0 { (f, ms) } else { nil } }
        #expect(reopened.map(\.0) == [PCMFormat(sampleRate: 48_000, channels: 2), PCMFormat(sampleRate: 96_000, channels: 2, sampleBits: 32)])
        #expect(reopened.allSatisfy { $0.1 <= 150 }, "reopened in \(reopened.map(\.1)) ms")
        let parts = [(0, 220_500, 44_100, 440.0), (220_500, 48_000, 48_000, 660.0), (268_500, 96_000, 96_000, 1000.0)]
        #expect(pcm.frames == 364_500, "every track whole: \(pcm.frames) frames")
        for (start, count, rate, frequency) in parts where start + count <= pcm.frames {
            let middle = pcm.channel(0, from: start + count / 4, count: count / 2)
            let peak = Signal.peakFrequency(middle, rate: Double(rate), range: 100...4000)
            #expect(abs(peak - frequency) <= frequency * 0.01, "\(frequency) Hz at \(rate) Hz plays at \(peak) Hz")
        }
    }

    @Test("told by bytes: Opus named .mp3 plays as Opus at 48 kHz; a broken Ogg is refused with a reason")
    func bytesNotNames() async throws {
        #expect(AudioFiles.kind(path: Fixtures.path("opus_named.mp3")) == .opus)
        #expect(AudioFiles.kind(path: Fixtures.path("tagged.ogg")) == .vorbis)
        let (device, capture) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device)
        h.play(["opus_named.mp3"])
        await h.waitForQueueEnd()
        #expect(h.failures.isEmpty, "\(h.failures)")
        let pcm = try PCM(raw: capture)
        let source = try PCM(wav: Fixtures.path("sweep48_b.wav"))
        #expect(pcm.frames == source.frames)
        #expect(Signal.correlation(pcm.channel(0), source.channel(0)) >= 0.999)
        // The pages' headers with the audio gone: a clear refusal, no crash.
        let broken = NSTemporaryDirectory() + "musit-broken-\(UUID().uuidString).ogg"
        defer { try? FileManager.default.removeItem(atPath: broken) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tagged.ogg")))
        try Data(bytes.prefix(200)).write(to: URL(fileURLWithPath: broken))
        #expect(throws: AudioError.self) { try AudioFiles.open(path: broken) }
    }
}
