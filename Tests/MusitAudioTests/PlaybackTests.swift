import Foundation
@testable import MusitAudio
@testable import MusitCodecs
import MusitTestSupport
import Testing

/// These tests listen to what the player wrote to an ALSA `file` device.
@Suite("Playback through ALSA, captured")
struct PlaybackTests {
    @Test("a 440 Hz track plays at 440 Hz with exactly its frames")
    func sinePlaysExactly() async throws {
        let (device, capture) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device)
        h.play(["sine440.mp3"])
        await h.waitForQueueEnd()
        let pcm = try PCM(raw: capture)
        #expect(pcm.frames == 220_500, "gapless-trimmed length of a 5 s track at 44.1 kHz")
        let peak = Signal.peakFrequency(pcm.channel(0, from: 44100, count: 176_400), rate: 44100, range: 100...2000)
        #expect(abs(peak - 440) <= 1, "peak at \(peak) Hz")
        let source = try PCM(wav: Fixtures.path("sine440.wav"))
        #expect(Signal.correlation(pcm.channel(0), source.channel(0)) > 0.999)
        #expect(h.failures.isEmpty)
        #expect(h.started == [0])
    }

    @Test("two tracks cut from one sweep join sample for sample")
    func gaplessJoin() async throws {
        let (device, capture) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device)
        h.play(["sweep_a.mp3", "sweep_b.mp3"])
        await h.waitForQueueEnd()
        let pcm = try PCM(raw: capture)
        let source = try PCM(wav: Fixtures.path("sweep.wav"))
        #expect(pcm.frames == source.frames, "no inserted or dropped frames: \(pcm.frames) vs \(source.frames)")
        let join = 119_070
        for c in 0..<2 {
            let whole = Signal.correlation(pcm.channel(c), source.channel(c))
            let around = Signal.correlation(pcm.channel(c, from: join - 2048, count: 4096),
                                            source.channel(c, from: join - 2048, count: 4096))
            #expect(whole >= 0.9999, "channel \(c) correlation \(whole)")
            #expect(around >= 0.9999, "channel \(c) correlation across the join \(around)")
        }
        // The join happened in one open device stream.
        let outputs = h.events.filter { if case .outputChanged = $0 { true } else { false } }
        #expect(outputs.count == 1)
        #expect(h.started == [0, 1])
    }

    @Test("a track in another sample rate reopens the device and still plays")
    func formatChangeReopens() async throws {
        let (device, _) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device)
        h.play(["sine440.mp3", "sine1k_48k.mp3"])
        await h.waitForQueueEnd()
        #expect(h.started == [0, 1])
        #expect(h.failures.isEmpty)
        let formats = h.events.compactMap { if case .trackStarted(_, _, let m) = $0 { m.format.sampleRate } else { nil } }
        #expect(formats == [44100, 48000])
    }

    @Test("seeking to an absolute time lands within 10 ms")
    func seekAbsolute() async throws {
        let (device, capture) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device)
        h.play(["sweep.mp3"], autoplay: false)
        await h.wait { $0.contains(.stateChanged(.paused)) }
        h.player.send(.seek(to: 2.0))
        h.player.send(.resume)
        await h.waitForQueueEnd()
        try expectCapture(capture, startsAt: 88_200)
    }

    @Test("relative seeks forward and back land within 10 ms")
    func seekRelative() async throws {
        let (device, capture) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device)
        h.play(["sweep.mp3"], autoplay: false)
        await h.wait { $0.contains(.stateChanged(.paused)) }
        h.player.send(.seekBy(3.5))
        h.player.send(.seekBy(-1.25))
        h.player.send(.resume)
        await h.waitForQueueEnd()
        try expectCapture(capture, startsAt: Int(2.25 * 44100))
        // Each seek says where it landed, in order, when it landed (what friends are told).
        let landed = h.events.compactMap { if case .seeked(let s) = $0 { s } else { nil } }
        #expect(landed.count == 2 && abs(landed[0] - 3.5) < 0.03 && abs(landed[1] - 2.25) < 0.03, "seeks landed at \(landed)")
    }

    private func expectCapture(_ capture: String, startsAt expected: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let pcm = try PCM(raw: capture)
        let source = try PCM(wav: Fixtures.path("sweep.wav"))
        let probe = pcm.channel(0, count: 8192)
        let match = Signal.bestLag(probe: probe, reference: source.channel(0), expectedStart: expected, maxLag: 2205)
        #expect(abs(match.lag) <= 441, "landed \(match.lag) frames (\(Double(match.lag) / 44.1) ms) from the target",
                sourceLocation: sourceLocation)
        #expect(match.correlation > 0.999, "capture matches the source after the seek (\(match.correlation))",
                sourceLocation: sourceLocation)
        #expect(abs(pcm.frames - (source.frames - expected)) <= 441, "plays on to the end: \(pcm.frames) frames",
                sourceLocation: sourceLocation)
    }

    @Test("pause writes nothing while paused, and resume loses and repeats nothing")
    func pauseWritesNothing() async throws {
        let (device, capture) = Fixtures.captureDevice()
        let h = PlayerHarness(device: device) { $0.paceDevice = true }
        h.play(["sine440.mp3"])
        try await Task.sleep(for: .milliseconds(800))
        h.player.send(.pause)
        await h.wait { $0.contains(.stateChanged(.paused)) }
        try await Task.sleep(for: .milliseconds(150))
        let before = try FileManager.default.attributesOfItem(atPath: capture)[.size] as! Int
        let position = h.player.status.position
        try await Task.sleep(for: .milliseconds(600))
        let after = try FileManager.default.attributesOfItem(atPath: capture)[.size] as! Int
        #expect(before == after, "bytes written while paused: \(after - before)")
        #expect(before > 0)
        #expect(abs(h.player.status.position - position) < 0.001, "position frozen while paused")
        h.player.send(.resume)
        await h.waitForQueueEnd()
        let pcm = try PCM(raw: capture)
        #expect(pcm.frames == 220_500)
        let source = try PCM(wav: Fixtures.path("sine440.wav"))
        #expect(Signal.correlation(pcm.channel(0), source.channel(0)) > 0.999)
    }

    @Test("volume 50 halves the amplitude, volume 0 is silence")
    func volumeScales() async throws {
        func capture(volume: Int) async throws -> PCM {
            let (device, path) = Fixtures.captureDevice("volume\(volume)")
            let h = PlayerHarness(device: device) { $0.initialVolume = volume }
            h.play(["sine440.mp3"])
            await h.waitForQueueEnd()
            return try PCM(raw: path)
        }
        let full = try await capture(volume: 100)
        let half = try await capture(volume: 50)
        let silent = try await capture(volume: 0)
        #expect(full.frames == 220_500 && half.frames == 220_500 && silent.frames == 220_500)
        let ratio = half.rms(from: 4410, count: 200_000) / full.rms(from: 4410, count: 200_000)
        #expect(abs(ratio - 0.5) <= 0.005, "RMS ratio \(ratio)")
        let peak = half.samples.map { abs(Int($0)) }.max() ?? 0
        let fullPeak = full.samples.map { abs(Int($0)) }.max() ?? 0
        #expect(abs(Double(peak) / Double(fullPeak) - 0.5) <= 0.005, "peak \(peak) vs \(fullPeak)")
        #expect(silent.samples.allSatisfy { $0 == 0 })
    }

    @Test("position is published at least 10 times a second and follows the clock")
    func positionEvents() async throws {
        let h = PlayerHarness(device: "testnull") { $0.paceDevice = true }
        h.play(["sine440.mp3"])
        let isStart: (PlayerEvent) -> Bool = { if case .trackStarted = $0 { true } else { false } }
        await h.wait { $0.contains(where: isStart) }
        try await Task.sleep(for: .milliseconds(1000))
        let position = h.player.status.position
        let elapsed = Date().timeIntervalSince(h.time(of: isStart) ?? Date())
        let positions = h.events.compactMap { if case .position(let s, _) = $0 { s } else { nil } }
        #expect(Double(positions.count) >= 10 * elapsed, "\(positions.count) position events in \(elapsed) s")
        #expect(positions == positions.sorted(), "positions never go back")
        #expect(abs(position - elapsed) < 0.15, "after \(elapsed) s of real-time play the position is \(position) s")
        #expect(h.player.status.duration.map { abs($0 - 5) < 0.01 } == true)
        h.player.send(.stop)
        await h.wait { $0.contains(.stateChanged(.stopped)) }
    }
}
