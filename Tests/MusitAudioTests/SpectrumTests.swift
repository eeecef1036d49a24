import Foundation
@testable import MusitAudio
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

    @Test("the FFT matches a direct transform")
    func fftMatchesDFT() {
        var seed: UInt64 = 3
        let n = 64
        var re = (0..<n).map { _ -> Double in
            seed = seed &* 6364136223846793005 &+ 1
            return Double(seed >> 40) / Double(1 << 24) - 0.5
        }
        var im = [Double](repeating: 0, count: n)
        let x = re
        Spectrum.fft(&re, &im)
        for k in 0..<n {
            var wr = 0.0, wi = 0.0
            for t in 0..<n {
                wr += x[t] * cos(-2 * .pi * Double(k * t) / Double(n))
                wi += x[t] * sin(-2 * .pi * Double(k * t) / Double(n))
            }
            #expect(abs(re[k] - wr) < 1e-9 && abs(im[k] - wi) < 1e-9, "bin \(k)")
        }
    }
}
