import Foundation
@testable import MusitAudio
@testable import MusitCodecs
import MusitTestSupport
import Testing

@Suite("Bad input, tags and frame parsing")
struct InputTests {
    /// Each broken file is reported with its path and a reason, and the queue moves on
    /// to play the good track at the end in full; a truncated file plays what it has.
    @Test("bad files are reported clearly and the queue moves on")
    func badInputs() async throws {
        let (device, capture) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device)
        let bad: [(file: String, message: String)] = [
            ("does-not-exist.mp3", "no such file"),
            ("directory.mp3", "is a directory, not an audio file"),
            ("empty.mp3", "empty file"),
            ("tag_only.mp3", "holds an ID3 tag but no audio frames"),
            ("random.mp3", "not an MP3: no MPEG audio frames found"),
            ("wav_named.mp3", "not an MP3: looks like a WAV file"),
        ]
        h.play(bad.map(\.file) + ["truncated.mp3", "sine440.mp3"])
        await h.waitForQueueEnd()
        let failures = h.failures
        #expect(failures.count == bad.count, "\(failures)")
        for (i, b) in bad.enumerated() where i < failures.count {
            #expect(failures[i].location == Fixtures.path(b.file))
            #expect(failures[i].message == b.message, "\(b.file): \(failures[i].message)")
            #expect(failures[i].description.contains(b.file))
        }
        // The truncated file plays the part that is there, as mpg123 and cmus play it, and
        // says what is missing once, as it starts (its metadata); then the good track plays.
        #expect(h.started == [6, 7])
        let cut = try FileTrack(path: Fixtures.path("truncated.mp3")).metadata
        let cutFrames = Int(try #require(cut.totalFrames))
        #expect(cut.damage != nil)
        let pcm = try PCM(raw: capture)
        #expect(pcm.frames == cutFrames + 220_500, "\(pcm.frames) frames: \(cutFrames) of the cut file, then 220,500")
        // Both are what the uncut file sounds like: the cut one its start, the last one whole.
        let source = try PCM(wav: Fixtures.path("sine440.wav"))
        let head = pcm.channel(0, from: 0).prefix(cutFrames - 1152)
        #expect(Signal.correlation(Array(head), Array(source.channel(0).prefix(head.count))) > 0.999, "the cut file's part is the song's start")
        let tail = pcm.channel(0, from: pcm.frames - 220_500)
        #expect(Signal.correlation(tail, source.channel(0)) > 0.999)
    }

    @Test("a queue of nothing but bad files ends instead of spinning", .timeLimit(.minutes(1)))
    func allBad() async throws {
        let (device, _) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device)
        h.player.send(.setRepeat(.all))
        h.play(["empty.mp3", "random.mp3", "directory.mp3"])
        await h.waitForQueueEnd()
        #expect(h.failures.count == 3)
        #expect(h.player.status.state == .stopped)
    }

    @Test("the tags alone (for the queue): the same texts as a full open, no cover, none for a file without audio")
    func tagsAlone() throws {
        for expected in Fixtures.manifest.tags {
            let meta = try #require(FileTrack.readTags(path: Fixtures.path(expected.file)), "\(expected.file)")
            #expect(meta.title == expected.title && meta.artist == expected.artist && meta.album == expected.album, "\(expected.file)")
            #expect(meta.trackNumber == expected.track, "\(expected.file)")
            #expect(meta.cover == nil)
        }
        #expect(FileTrack.readTags(path: Fixtures.path("random.mp3")) == nil)
        #expect(FileTrack.readTags(path: Fixtures.path("does-not-exist.mp3")) == nil)
    }

    @Test("ID3v1, v2.3 (Latin-1 and UTF-16) and v2.4 (UTF-8) tags and covers read back as written")
    func tags() throws {
        let cover = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("cover.png")))
        #expect(Fixtures.manifest.tags.count == 4)
        for expected in Fixtures.manifest.tags {
            let meta = try FileTrack.readMetadata(path: Fixtures.path(expected.file))
            #expect(meta.title == expected.title, "\(expected.file)")
            #expect(meta.artist == expected.artist, "\(expected.file)")
            #expect(meta.album == expected.album, "\(expected.file)")
            #expect(meta.year == expected.year, "\(expected.file)")
            #expect(meta.trackNumber == expected.track, "\(expected.file)")
            #expect(meta.totalFrames == expected.frames, "\(expected.file)")
            if expected.cover != nil {
                #expect(meta.cover?.data == [UInt8](cover), "\(expected.file) cover bytes")
                #expect(meta.cover?.mimeType == "image/png")
            } else {
                #expect(meta.cover == nil)
            }
        }
    }

    @Test("duration and format of a file")
    func durationAndFormat() throws {
        let sine = try FileTrack.readMetadata(path: Fixtures.path("sine440.mp3"))
        #expect(sine.totalFrames == 220_500)
        #expect(sine.format == PCMFormat(sampleRate: 44100, channels: 2))
        #expect(sine.duration == 5.0)
        let other = try FileTrack.readMetadata(path: Fixtures.path("sine1k_48k.mp3"))
        #expect(other.format.sampleRate == 48000)
        #expect(other.totalFrames == 96_000)
    }

    @Test("frame headers parse to the right bitrate, rate and length")
    func frameHeaders() {
        // MPEG-1 layer III, 128 kbps, 44.1 kHz, no padding, joint stereo.
        let h = MP3FrameHeader(0xFF, 0xFB, 0x90, 0x64)
        #expect(h?.bitrateKbps == 128)
        #expect(h?.sampleRate == 44100)
        #expect(h?.frameLength == 417)
        #expect(h?.samplesPerFrame == 1152)
        #expect(h?.channels == 2)
        // MPEG-2 layer III, 64 kbps, 22.05 kHz, padded, mono.
        let m2 = MP3FrameHeader(0xFF, 0xF3, 0x82, 0xC4)
        #expect(m2?.sampleRate == 22050)
        #expect(m2?.bitrateKbps == 64)
        #expect(m2?.frameLength == 72 * 64000 / 22050 + 1)
        #expect(m2?.channels == 1)
        #expect(m2?.samplesPerFrame == 576)
        // Reserved version, reserved layer, bad bitrate, reserved rate: all rejected.
        #expect(MP3FrameHeader(0xFF, 0xEB, 0x90, 0x64) == nil)
        #expect(MP3FrameHeader(0xFF, 0xF9, 0x90, 0x64) == nil)
        #expect(MP3FrameHeader(0xFF, 0xFB, 0xF0, 0x64) == nil)
        #expect(MP3FrameHeader(0xFF, 0xFB, 0x9C, 0x64) == nil)
        #expect(MP3FrameHeader(0xFE, 0xFB, 0x90, 0x64) == nil)
    }

    @Test("the probe finds the first frame after an ID3v2 tag and refuses other formats")
    func probe() throws {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tag_v24.mp3"))))
        let result = try data.withUnsafeBytes { try MP3Probe.probe($0, fileSize: data.count) }
        #expect(result.id3v2Size > 400, "the tag holds a picture")
        #expect(result.firstFrameOffset >= result.id3v2Size)
        #expect(result.header.sampleRate == 44100)
        let wav = Array("RIFF\u{0}\u{0}\u{0}\u{0}WAVEfmt ".utf8) + [UInt8](repeating: 0xFF, count: 64)
        #expect(throws: AudioError.Reason.otherFormat("a WAV file")) {
            try wav.withUnsafeBytes { try MP3Probe.probe($0, fileSize: wav.count) }
        }
        // Bytes that happen to hold one valid header but no run of frames.
        var lone = [UInt8](repeating: 0, count: 4096)
        lone[100] = 0xFF; lone[101] = 0xFB; lone[102] = 0x90; lone[103] = 0x64
        #expect(throws: AudioError.Reason.noAudioFrames(tagOnly: false)) {
            try lone.withUnsafeBytes { try MP3Probe.probe($0, fileSize: lone.count) }
        }
    }

    @Test("underruns are recovered and every frame is still written")
    func underrunRecovery() {
        let samples = [Int16](repeating: 7, count: 2 * 1000)
        var calls = 0
        var accepted = 0
        var recoveries: [Int32] = []
        let result = samples.withUnsafeBufferPointer { b in
            ALSAOutput.writeAll(frames: 1000, channels: 2, base: b.baseAddress!,
                write: { _, n in
                    calls += 1
                    // Device underruns on the second call and is suspended on the fourth.
                    if calls == 2 { return -Int(EPIPE) }
                    if calls == 4 { return -Int(ESTRPIPE) }
                    let take = min(n, 300)
                    accepted += take
                    return take
                },
                recover: { err in recoveries.append(err); return 0 })
        }
        #expect(result.error == nil)
        #expect(result.recovered == 2)
        #expect(recoveries == [-EPIPE, -ESTRPIPE])
        #expect(accepted == 1000)
    }

    @Test("a device that stays broken is reported, not retried forever")
    func brokenDevice() {
        let samples = [Int16](repeating: 0, count: 200)
        let result = samples.withUnsafeBufferPointer { b in
            ALSAOutput.writeAll(frames: 100, channels: 2, base: b.baseAddress!,
                write: { _, _ in -Int(EIO) }, recover: { $0 })
        }
        #expect(result.error == -EIO)
    }
}

@Suite("Queue order")
struct QueueTests {
    let tracks = (0..<5).map { Track("t\($0).mp3") }

    @Test("next and previous, with and without repeat")
    func order() {
        var q = PlayQueue(tracks)
        q.select(3)
        #expect(q.advance() == 4)
        #expect(q.advance() == nil, "the end without repeat")
        q.repeatMode = .all
        #expect(q.peekNext() == 0)
        q.select(0)
        #expect(q.peekPrevious() == 4)
        q.repeatMode = .one
        #expect(q.peekNext() == 0, "repeat one replays when a track ends")
        #expect(q.peekNext(afterEnd: false) == 1, "but n still moves on")
    }

    @Test("shuffle plays every track once, starting from the current one")
    func shuffle() {
        var q = PlayQueue(tracks)
        q.select(2)
        q.setShuffle(true)
        var seen = [q.currentIndex!]
        while let next = q.advance() { seen.append(next) }
        #expect(seen.first == 2)
        #expect(seen.sorted() == [0, 1, 2, 3, 4])
        q.setShuffle(false)
        q.select(1)
        #expect(q.advance() == 2)
    }

    @Test("a set order plays in that order from the current track, takes appended tracks last, and is what shuffle returns to")
    func setOrder() {
        var q = PlayQueue(tracks)
        q.select(1)
        q.setOrder([4, 1, 3, 0, 2])
        #expect(q.currentIndex == 1, "the current track stays")
        #expect(q.advance() == 3)
        #expect(q.advance() == 0)
        #expect(q.peekPrevious() == 3)
        q.setOrder([0, 0, 1, 2, 3])
        q.setOrder([0, 1, 2])
        #expect(q.playOrder == [4, 1, 3, 0, 2], "not a permutation: ignored")
        q.append([Track("t5.mp3")])
        #expect(q.playOrder == [4, 1, 3, 0, 2, 5])
        q.setShuffle(true)
        q.setShuffle(false)
        #expect(q.playOrder == [4, 1, 3, 0, 2, 5], "shuffle off returns to the set order")
    }
}
