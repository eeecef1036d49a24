import Foundation
import Synchronization
@testable import MusitAudio
@testable import MusitCodecs
import Testing

@Suite("The visualizer's spectrum")
struct SpectrumTests {
    /// `amplitude` sines at `frequency` Hz, `count` samples at 44.1 kHz.
    static func tone(_ frequency: Double, amplitude: Float = 0.5, count: Int = Spectrum.size) -> [Float] {
        (0..<count).map { amplitude * Float(sin(2 * .pi * frequency * Double($0) / 44100)) }
    }

    @Test("a sine lights its own band at its level, and bands far from it stay low, across the range")
    func sines() {
        let bands = 32
        for frequency in [60.0, 150, 440, 1000, 2500, 6000, 11000, 15000] {
            let levels = Spectrum.levels(Self.tone(frequency), sampleRate: 44100, bands: bands)
            let band = Spectrum.band(of: frequency, bands: bands)
            let loudest = levels.indices.max { levels[$0] < levels[$1] }!
            #expect(abs(loudest - band) <= 1, "\(frequency) Hz: loudest band \(loudest), expected \(band): \(levels)")
            // 0.5 of full scale is −6 dBFS: 0.9 on the −60…0 dB scale.
            #expect(abs(levels[loudest] - 0.9) < 0.05, "\(frequency) Hz: level \(levels[loudest])")
            for b in levels.indices where abs(b - band) > 4 {
                #expect(levels[b] < 0.5 * levels[loudest], "\(frequency) Hz: band \(b) at \(levels[b])")
            }
        }
    }

    @Test("the FFT matches a direct transform", arguments: [2, 4, 8, 16, 64, 1024])
    func fftMatchesDFT(n: Int) {
        var seed: UInt64 = 3
        func random() -> Float {
            seed = seed &* 6364136223846793005 &+ 1
            return Float(seed >> 40) / Float(1 << 24) - 0.5
        }
        var re = (0..<n).map { _ in random() }
        var im = (0..<n).map { _ in random() }
        let (x, y) = (re, im)
        Spectrum.fft(&re, &im)
        for k in 0..<n {
            var wr = 0.0, wi = 0.0
            for t in 0..<n {
                let c = cos(-2 * .pi * Double(k * t % n) / Double(n)), s = sin(-2 * .pi * Double(k * t % n) / Double(n))
                wr += Double(x[t]) * c - Double(y[t]) * s
                wi += Double(x[t]) * s + Double(y[t]) * c
            }
            // Single precision: a few parts in a million of the inputs' sum.
            let tolerance = 2e-6 * Double(n) + 1e-5
            #expect(abs(Double(re[k]) - wr) < tolerance && abs(Double(im[k]) - wi) < tolerance, "\(n) points, bin \(k)")
        }
    }
}

@Suite("The audio tap")
struct AudioTapTests {
    @Test("what is heard moves on with the clock between the device's writes, and stops at what was written")
    func heardFollowsTheClock() {
        let tap = AudioTap()
        // A ramp: each sample says its own index.
        let samples = (0..<8192).map { Int16($0) }
        let written: UInt64 = 1_000_000_000
        samples.withUnsafeBufferPointer { tap.append($0, channels: 1, sampleRate: 44100, pending: 4096, at: written) }
        var out = [Float](repeating: 0, count: 1024)
        func end(after seconds: Double) -> Int? {
            let rate = out.withUnsafeMutableBufferPointer { tap.heard(into: $0, at: written + UInt64(seconds * 1e9)) }
            #expect(rate == nil || rate == 44100)
            // The ramp is contiguous: the window is the 1024 samples before its end.
            for i in 1..<out.count where out[i] * 32768 != out[i - 1] * 32768 + 1 { Issue.record("gap at \(i)"); break }
            return rate.map { _ in Int(out[out.count - 1] * 32768) + 1 }
        }
        // Written 8192, 4096 still in the device's buffer: 4096 heard.
        #expect(end(after: 0) == 4096)
        #expect(tap.heardEnd(at: written) == 4096)
        // 50 ms later the device has played 2205 more.
        #expect(end(after: 0.05) == 4096 + 2205)
        // Never past what was written.
        #expect(end(after: 5) == 8192)
        #expect(tap.movesBetweenWrites())
        tap.clear()
        #expect(end(after: 0) == nil)
    }

    @Test("stereo and mono mix down to the mean of their channels, across the ring's wrap")
    func mixdownAcrossWrap() {
        for channels in [1, 2, 3] {
            let tap = AudioTap()
            // Fill to 100 frames short of the ring's end, so the next write wraps.
            let filler = [Int16](repeating: 0, count: (16384 - 100) * channels)
            filler.withUnsafeBufferPointer { tap.append($0, channels: channels, sampleRate: 44100, pending: 0, at: 1) }
            // Frame k holds k + c * 7 in channel c: its mean is k + 7 (c̄), exact in Float.
            let frames = 300
            let samples = (0..<frames).flatMap { k in (0..<channels).map { c in Int16(k + c * 7) } }
            samples.withUnsafeBufferPointer { tap.append($0, channels: channels, sampleRate: 44100, pending: 0, at: 2) }
            var out = [Float](repeating: 0, count: frames)
            let rate = out.withUnsafeMutableBufferPointer { tap.heard(into: $0, at: 2) }
            #expect(rate == 44100)
            let mean = Float(7 * (channels - 1)) / 2
            let got = out.map { $0 * 32768 }
            let want = (0..<frames).map { Float($0) + mean }
            #expect(zip(got, want).allSatisfy { abs($0 - $1) < 0.01 }, "\(channels) channels: \(Array(got.prefix(4)))…\(Array(got.suffix(4)))")
        }
    }

    @Test("the tap is fed only while someone listens; turned on, it starts from the next write")
    func listening() {
        let tap = AudioTap()
        #expect(!tap.isListening)
        [Int16](repeating: 1000, count: 2048).withUnsafeBufferPointer { tap.append($0, channels: 1, sampleRate: 44100, pending: 0, at: 1) }
        tap.listen(true)
        #expect(tap.isListening)
        #expect(tap.heardEnd(at: 1) == 0, "what was there before is forgotten")
        tap.listen(false)
        #expect(!tap.isListening)
    }

    @Test("a device that tells no delay: what is heard moves only with writes, and the first write due wakes the visualizer once")
    func wakesAfterWrite() {
        let tap = AudioTap()
        let block = [Int16](repeating: 100, count: 4096)
        let woken = Mutex(0)
        let t0: UInt64 = 5_000_000_000
        block.withUnsafeBufferPointer { tap.append($0, channels: 2, sampleRate: 44100, pending: 0, at: t0) }
        #expect(!tap.movesBetweenWrites())
        #expect(tap.heardEnd(at: t0 + 500_000_000) == 2048)
        tap.wakeAfterWrite(notBefore: t0 + 33_000_000) { woken.withLock { $0 += 1 } }
        // A write sooner than a frame after the last draw does not wake...
        block.withUnsafeBufferPointer { tap.append($0, channels: 2, sampleRate: 44100, pending: 0, at: t0 + 20_000_000) }
        #expect(woken.withLock { $0 } == 0)
        // ... the first one after does, once.
        block.withUnsafeBufferPointer { tap.append($0, channels: 2, sampleRate: 44100, pending: 0, at: t0 + 40_000_000) }
        block.withUnsafeBufferPointer { tap.append($0, channels: 2, sampleRate: 44100, pending: 0, at: t0 + 60_000_000) }
        #expect(woken.withLock { $0 } == 1)
        #expect(tap.heardEnd(at: t0 + 60_000_000) == 4 * 2048)
    }
}
