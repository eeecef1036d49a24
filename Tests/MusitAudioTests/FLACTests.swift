import Foundation
@testable import MusitAudio
@testable import MusitCodecs
import MusitTestSupport
import Testing

/// FLAC through libFLAC: lossless, so what plays must be the encoder's input exactly.
@Suite("FLAC: lossless playback, tags, seeking, wide samples")
struct FLACTests {
    @Test("two FLAC halves of one sweep play as the sweep, sample for sample, in one device stream")
    func bitExactGaplessJoin() async throws {
        let (device, capture) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device)
        h.play(["sweep_a.flac", "sweep_b.flac"])
        await h.waitForQueueEnd()
        let pcm = try PCM(raw: capture)
        let source = try PCM(wav: Fixtures.path("sweep.wav"))
        #expect(pcm.frames == source.frames, "\(pcm.frames) frames played, \(source.frames) in the source")
        let firstDiff = zip(pcm.samples, source.samples).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(firstDiff == nil, "first differing sample at \(firstDiff ?? -1) (the join is at \(119_070 * 2))")
        let outputs = h.events.filter { if case .outputChanged = $0 { true } else { false } }
        #expect(outputs.count == 1, "joined without reopening the device")
        #expect(h.started == [0, 1] && h.failures.isEmpty)
    }

    @Test("tags, the picture and the exact length come from the FLAC's own blocks")
    func tagsAndLength() throws {
        let meta = try AudioFiles.readMetadata(path: Fixtures.path("tagged.flac"))
        #expect(meta.title == "Fläc Title – 東京")
        #expect(meta.artist == "Vorbis Ärtist")
        #expect(meta.album == "Lossless 🎵")
        #expect(meta.trackNumber == 4)
        #expect(meta.year == 2003)
        #expect(meta.totalFrames == 44_100, "1 s at 44.1 kHz, from STREAMINFO")
        #expect(meta.format == PCMFormat(sampleRate: 44_100, channels: 2))
        let cover = try #require(meta.cover)
        #expect(cover.data == [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("cover.png")))))
        #expect(cover.mimeType == "image/png" && cover.pictureType == 3)
        // The queue's tags for a listed file: the same, without the picture.
        let tags = try #require(AudioFiles.readTags(path: Fixtures.path("tagged.flac")))
        #expect(tags.title == meta.title && tags.cover == nil)
    }

    @Test("a seek lands on the very sample asked for, forward and back")
    func seekToSample() throws {
        let whole = try PCM(wav: Fixtures.path("sweep.wav")).samples
        let track = try FLACTrack(path: Fixtures.path("sweep.flac"))
        #expect(track.metadata.totalFrames == Int64(whole.count / 2))
        for target in [200_000, 12_345, 0, 4_607, 264_599] {
            #expect(try track.seek(toFrame: Int64(target)) == Int64(target))
            var buffer = [Int16](repeating: 0, count: 2 * 1000)
            let frames = try buffer.withUnsafeMutableBufferPointer { try track.read(into: $0) }
            #expect(frames > 0)
            #expect(Array(buffer[0..<(frames * 2)]) == Array(whole[(target * 2)..<(target * 2 + frames * 2)]), "at \(target)")
            #expect(track.framePosition == Int64(target + frames))
        }
        #expect(try track.seek(toFrame: 264_600) == 264_600, "the end")
        var buffer = [Int16](repeating: 0, count: 2 * 1000)
        #expect(try buffer.withUnsafeMutableBufferPointer { try track.read(into: $0) } == 0)
    }

    @Test("24-bit samples reach 16 bits with dither: within 1.5 steps of the source, centred, and not merely rounded")
    func wideSamplesDithered() throws {
        let track = try FLACTrack(path: Fixtures.path("hires24.flac"))
        #expect(track.bitsPerSample == 24 && track.format == PCMFormat(sampleRate: 48_000, channels: 2, sampleBits: 32))
        let out = try readAllPCM(track)
        let raw = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hires24.s32")))
        let reference = raw.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }.map { Int32(littleEndian: $0) >> 8 }
        #expect(out.count == reference.count)
        var far = 0, roundedLike = 0
        for (o, r) in zip(out, reference) {
            let exact = Double(r) / 256
            if abs(Double(o) - exact) > 1.5 { far += 1 }
            if Double(o) == exact.rounded() { roundedLike += 1 }
        }
        #expect(far == 0, "\(far) samples more than 1.5 16-bit steps from the source")
        #expect(Double(roundedLike) / Double(out.count) < 0.8, "dither moves samples off plain rounding")
        // Dither is noise around the signal: the mean error stays near zero.
        let bias = zip(out, reference).reduce(0.0) { $0 + Double($1.0) - Double($1.1) / 256 } / Double(out.count)
        #expect(abs(bias) < 0.05, "mean error \(bias)")
    }

    @Test("told by bytes, not name: FLAC named .mp3 plays as FLAC; a cut FLAC plays what is there and says so")
    func bytesNotNames() async throws {
        let (device, capture) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device)
        h.play(["flac_named.mp3", "cut.flac", "sine440.mp3"])
        await h.waitForQueueEnd()
        #expect(h.started == [0, 1, 2], "all three played")
        let pcm = try PCM(raw: capture)
        let b = try PCM(wav: Fixtures.path("sweep_b.wav"))
        #expect(Array(pcm.samples.prefix(b.samples.count)) == b.samples, "the FLAC under an MP3 name, exactly")
        let cut = h.failures.filter { $0.location.hasSuffix("cut.flac") }
        #expect(cut.count == 1, "the cut file is reported: \(h.failures.map(\.message))")
        #expect(cut.first?.message.contains("truncated") == true, "\(cut.first?.message ?? "")")
        let played = pcm.frames - b.frames - 220_500
        #expect(played > 119_070 / 3 && played < 119_070, "the cut FLAC played its whole frames: \(played)")
    }

    @Test("broken FLAC: a clear refusal each, no crash (a magic and junk, a cut header, bit flips in the frames)")
    func brokenFiles() throws {
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("sweep_a.flac"))))
        let dir = NSTemporaryDirectory() + "musit-flac-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func write(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = dir + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        // Refused at open, with a reason.
        for (name, bytes) in [("magic.flac", Array("fLaC".utf8) + [UInt8](repeating: 0x55, count: 4000)),
                              ("header.flac", Array(good.prefix(20))), ("magic_only.flac", Array("fLaC".utf8))] {
            let path = try write(name, bytes)
            #expect(throws: AudioError.self, "\(name)") { _ = try AudioFiles.open(path: path) }
        }
        // Bit flips in the audio: it opens, plays to an end without trapping, and says so.
        var rng = SystemRandomNumberGenerator()
        var said = 0
        for round in 0..<20 {
            var bytes = good
            for _ in 0..<8 { bytes[Int.random(in: 8_000..<bytes.count, using: &rng)] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng)) }
            let track = try FLACTrack(path: try write("flipped\(round).flac", bytes))
            _ = try? readAllPCM(track)
            #expect(track.framePosition <= 119_070 + 4_608, "round \(round): \(track.framePosition)")
            if track.metadata.damage != nil { said += 1 }
        }
        // The audio starts at byte 136; every flip lands in a frame, whose CRC then fails.
        #expect(said == 20, "damage said in \(said) of 20 rounds")
    }

    @Test("24-bit FLAC at 96 kHz plays bit for bit as S32_LE: the device opened for 32-bit samples, every sample ffmpeg's s32 decode")
    func wideBitPerfect() async throws {
        _ = Fixtures.alsaConfig
        let capture = NSTemporaryDirectory() + "musit-capture-wide-\(UUID().uuidString.prefix(8)).wav"
        defer { try? FileManager.default.removeItem(atPath: capture) }
        let h = PlayerHarness(device: "testwav:FILE=\(capture)")
        h.play(["hires96.flac"])
        await h.waitForQueueEnd()
        #expect(h.failures.isEmpty, "\(h.failures)")
        let wav = try PCM.wavFile(capture)
        #expect(wav.rate == 96_000 && wav.channels == 2 && wav.bits == 32, "opened at \(wav.rate) Hz, \(wav.bits) bits")
        let reference = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hires96.s32"))))
        #expect(wav.data.count == reference.count, "\(wav.data.count) bytes played, \(reference.count) decoded by ffmpeg")
        let firstDiff = zip(wav.data, reference).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(firstDiff == nil, "first differing byte at \(firstDiff ?? -1)")
        // The low byte of a 24-bit sample in S32 is zero: nothing was dithered or scaled.
        #expect(wav.data.enumerated().allSatisfy { $0.offset % 4 != 0 || $0.element == 0 })
    }

    @Test("a 16-bit track after a 24-bit one reopens the device for S16; 24-bit at lower volume stays 32-bit, scaled")
    func wideThenNarrow() async throws {
        _ = Fixtures.alsaConfig
        let capture = NSTemporaryDirectory() + "musit-capture-widenarrow-\(UUID().uuidString.prefix(8)).wav"
        let files = [capture, capture + ".0001"]
        defer { for f in files { try? FileManager.default.removeItem(atPath: f) } }
        let h = PlayerHarness(device: "testappend:FILE=\(capture)")
        h.player.send(.setVolume(50))
        h.play(["hires96.flac", "sweep_a.flac"])
        await h.waitForQueueEnd()
        #expect(h.failures.isEmpty, "\(h.failures)")
        let wide = try PCM.wavFile(files[0]), narrow = try PCM.wavFile(files[1])
        #expect(wide.bits == 32 && narrow.bits == 16 && narrow.rate == 44_100)
        let reference = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hires96.s32"))))
        let played = wide.data.withUnsafeBytes { $0.bindMemory(to: Int32.self).map { Int64(Int32(littleEndian: $0)) } }
        let source = reference.withUnsafeBytes { $0.bindMemory(to: Int32.self).map { Int64(Int32(littleEndian: $0)) } }
        #expect(played.count == source.count)
        // Half volume: each sample halved (rounded), in 32 bits, not truncated to 16.
        #expect(zip(played, source).allSatisfy { abs($0.0 * 2 - $0.1) <= 1 }, "scaled by one half")
        #expect(played.contains { $0 & 0xFFFF != 0 }, "precision below 16 bits kept")
    }
}
