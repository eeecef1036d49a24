import Foundation
@testable import MusitAudio
@testable import MusitCodecs
import MusitTestSupport
import Testing

/// ReplayGain read from each format's tags and applied to what is played.
@Suite("ReplayGain: off, track and album, from ID3, Vorbis comments and R128")
struct ReplayGainTests {
    @Test("the tags of every format give their gains and peaks")
    func readsTags() throws {
        let flac = try AudioFiles.readMetadata(path: Fixtures.path("gain.flac")).gains
        #expect(flac == ReplayGain(trackGain: -6.02, trackPeak: 0.5, albumGain: -12.04, albumPeak: 0.5))
        let mp3 = try AudioFiles.readMetadata(path: Fixtures.path("gain.mp3")).gains
        #expect(mp3 == ReplayGain(trackGain: -6.02, trackPeak: 0.5, albumGain: -12.04, albumPeak: nil))
        let opus = try AudioFiles.readMetadata(path: Fixtures.path("gain.opus")).gains
        #expect(abs((opus.trackGain ?? 0) + 1.02) < 0.01, "R128 in Q7.8, -1541/256 dB towards -23 LUFS: -1.02 dB towards -18")
        #expect(try AudioFiles.readMetadata(path: Fixtures.path("tone.flac")).gains == ReplayGain(), "untagged")
    }

    @Test("factors: album falls back to track, a boost stops at the peak, off and untagged are 1")
    func factors() {
        let g = ReplayGain(trackGain: -6.02, trackPeak: 0.5, albumGain: -12.04, albumPeak: 0.5)
        #expect(abs(g.factor(.track) - 0.5) < 0.001 && abs(g.factor(.album) - 0.25) < 0.001 && g.factor(.off) == 1)
        #expect(abs(ReplayGain(trackGain: -6.02).factor(.album) - 0.5) < 0.001)
        #expect(ReplayGain(trackGain: 12, trackPeak: 0.5).factor(.track) == 2)
        #expect(ReplayGain().factor(.album) == 1)
        #expect(ReplayGain(trackGain: .nan).factor(.track) == 1)
    }

    /// Plays `file` in `mode` and compares what the device got with the source times `factor`.
    static func played(_ file: String, _ mode: ReplayGainMode, factor: Double) async throws -> Int {
        let (device, capture) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device) { $0.replayGain = mode }
        h.play([file])
        await h.waitForQueueEnd()
        let pcm = try PCM(raw: capture)
        let source = try PCM(wav: Fixtures.path("tone.wav"))
        #expect(pcm.frames == source.frames)
        return zip(pcm.samples, source.samples).filter { played, original in
            abs(Double(played) - max(-32768, min(32767, Double(original) * factor))) > 1
        }.count
    }

    @Test("what is played is the source times the mode's factor", arguments: [
        (ReplayGainMode.off, 1.0), (.track, 0.5), (.album, 0.25),
    ])
    func appliedToFLAC(mode: ReplayGainMode, factor: Double) async throws {
        // -6.02 dB is x0.50003: within one step of halving for every sample of a half-scale tone.
        let off = try await Self.played("gain.flac", mode, factor: factor)
        #expect(off == 0, "\(off) samples more than one step from the source times \(factor)")
    }

    @Test("a +12 dB gain is held at the peak: x2, not x4, and nothing wraps")
    func boostLimited() async throws {
        #expect(try await Self.played("boost.flac", .track, factor: 2) == 0)
    }
}
