import Foundation
import Synchronization

/// The last few thousand samples written to the device, mono, and how many of them the
/// listener has heard, so a visualizer shows what is heard and not what was decoded.
/// The audio thread appends after each write; the UI reads a window when it draws.
public final class AudioTap: Sendable {
    struct Ring {
        var samples = [Float](repeating: 0, count: AudioTap.capacity)
        /// Frames ever appended; the newest sits at `(total - 1) % capacity`.
        var total: Int64 = 0
        /// Of those, the frames still in the device's buffer (not heard yet).
        var pending: Int64 = 0
        var sampleRate = 44100
    }

    static let capacity = 16384
    private let ring = Mutex(Ring())

    public init() {}

    /// Called on the audio thread with interleaved samples just written.
    func append(_ samples: UnsafeBufferPointer<Int16>, channels: Int, sampleRate: Int, pending: Int) {
        let channels = max(1, channels)
        ring.withLock { r in
            r.sampleRate = sampleRate
            var i = 0
            let scale = 1 / (32768 * Float(channels))
            while i + channels <= samples.count {
                var sum: Int32 = 0
                for c in 0..<channels { sum += Int32(samples[i + c]) }
                r.samples[Int(r.total % Int64(Self.capacity))] = Float(sum) * scale
                r.total += 1
                i += channels
            }
            r.pending = Int64(pending)
        }
    }

    /// Forgets what was written (a seek or a stop throws the device's buffer away).
    func clear() {
        ring.withLock { r in
            r.total = 0
            r.pending = 0
        }
    }

    /// The `count` samples ending where the listener is now, and their sample rate.
    public func heard(_ count: Int) -> (samples: [Float], sampleRate: Int)? {
        ring.withLock { r in
            let end = r.total - r.pending
            guard count <= Self.capacity / 2, end >= Int64(count) else { return nil }
            var out = [Float](repeating: 0, count: count)
            var j = Int((end - Int64(count)) % Int64(Self.capacity))
            for i in 0..<count {
                out[i] = r.samples[j]
                j += 1
                if j == Self.capacity { j = 0 }
            }
            return (out, r.sampleRate)
        }
    }
}

/// Band levels for a visualizer: a Hann-windowed FFT, summed into bands spaced evenly on
/// a log scale from `lowest` to `highest` Hz, each mapped from −60…0 dBFS to 0…1.
public enum Spectrum {
    public static let size = 2048
    public static let lowest = 40.0
    public static let highest = 16000.0

    /// The edges of `bands` bands, in Hz: band `i` spans `edges[i]..<edges[i + 1]`.
    public static func edges(bands: Int) -> [Double] {
        (0...bands).map { lowest * pow(highest / lowest, Double($0) / Double(bands)) }
    }

    /// The band that holds `frequency`.
    public static func band(of frequency: Double, bands: Int) -> Int {
        let e = edges(bands: bands)
        return max(0, min(bands - 1, (e.lastIndex { $0 <= frequency } ?? 0)))
    }

    public static func levels(_ samples: [Float], sampleRate: Int, bands: Int) -> [Double] {
        let n = size
        guard samples.count >= n, bands > 0 else { return [Double](repeating: 0, count: max(0, bands)) }
        // A real signal's spectrum from a complex FFT of half the size: even samples as the
        // real part, odd as the imaginary, then the two halves untangled (half the work).
        let h = n / 2
        var re = [Double](repeating: 0, count: h), im = [Double](repeating: 0, count: h)
        let start = samples.count - n
        let window = hann
        for k in 0..<h {
            re[k] = Double(samples[start + 2 * k]) * window[2 * k]
            im[k] = Double(samples[start + 2 * k + 1]) * window[2 * k + 1]
        }
        fft(&re, &im)
        let bins = binRanges(bands: bands, sampleRate: sampleRate)
        let top = min(h - 1, (bins.map(\.upperBound).max() ?? 1) - 1)
        // Power per bin (the square root is taken once per band, not per bin).
        var power = [Double](repeating: 0, count: h)
        twiddles.re.withUnsafeBufferPointer { twRe in
            twiddles.im.withUnsafeBufferPointer { twIm in
                re.withUnsafeBufferPointer { re in
                    im.withUnsafeBufferPointer { im in
                        power.withUnsafeMutableBufferPointer { power in
                            guard top >= 1 else { return }
                            for k in 1...top {
                                let cr = re[h - k], ci = -im[h - k]
                                let er = (re[k] + cr) / 2, ei = (im[k] + ci) / 2
                                let or = (im[k] - ci) / 2, oi = -(re[k] - cr) / 2
                                let wr = twRe[k], wi = twIm[k]
                                let xr = er + wr * or - wi * oi, xi = ei + wr * oi + wi * or
                                power[k] = xr * xr + xi * xi
                            }
                        }
                    }
                }
            }
        }
        // Scaled so a full-scale sine reads 0 dB (the Hann window halves it).
        let norm = 4.0 / Double(n)
        var out = [Double](repeating: 0, count: bands)
        for (b, range) in bins.enumerated() {
            var peak = 0.0
            for k in range { peak = max(peak, power[k]) }
            let db = 20 * log10(max(peak.squareRoot() * norm, 1e-9))
            out[b] = max(0, min(1, (db + 60) / 60))
        }
        return out
    }

    /// The FFT bins of each band, for the last band count and sample rate asked (the same
    /// every frame): band edges are powers, too dear to work out thirty times a second.
    private static let lastBins = Mutex<(bands: Int, sampleRate: Int, bins: [Range<Int>])?>(nil)

    static func binRanges(bands: Int, sampleRate: Int) -> [Range<Int>] {
        if let last = lastBins.withLock({ $0 }), last.bands == bands, last.sampleRate == sampleRate { return last.bins }
        let n = size
        let binHz = Double(sampleRate) / Double(n)
        let e = edges(bands: bands)
        let bins = (0..<bands).map { b -> Range<Int> in
            let lo = max(1, Int((e[b] / binHz).rounded(.down)))
            let hi = min(n / 2 - 1, max(lo, Int((e[b + 1] / binHz).rounded(.up)) - 1))
            // A band above the highest bin (a low sample rate) holds none.
            return lo <= hi ? lo..<(hi + 1) : (n / 2)..<(n / 2)
        }
        lastBins.withLock { $0 = (bands, sampleRate, bins) }
        return bins
    }

    /// The Hann window and the twiddle factors of a `size`-point FFT, worked out once: the
    /// visualizer runs up to 30 times a second and trigonometry would be most of its cost.
    static let hann: [Double] = (0..<size).map { 0.5 - 0.5 * cos(2 * .pi * Double($0) / Double(size - 1)) }
    static let twiddles: (re: [Double], im: [Double]) = {
        let half = size / 2
        return ((0..<half).map { cos(-2 * .pi * Double($0) / Double(size)) },
                (0..<half).map { sin(-2 * .pi * Double($0) / Double(size)) })
    }()

    /// In-place iterative radix-2 FFT; `re.count` is a power of two no larger than `size`.
    static func fft(_ re: inout [Double], _ im: inout [Double]) {
        let n = re.count
        precondition(n <= size && n & (n - 1) == 0 && im.count == n)
        twiddles.re.withUnsafeBufferPointer { twRe in
            twiddles.im.withUnsafeBufferPointer { twIm in
                re.withUnsafeMutableBufferPointer { re in
                    im.withUnsafeMutableBufferPointer { im in
                        butterflies(re, im, twRe, twIm)
                    }
                }
            }
        }
    }

    private static func butterflies(_ re: UnsafeMutableBufferPointer<Double>, _ im: UnsafeMutableBufferPointer<Double>,
                                    _ twRe: UnsafeBufferPointer<Double>, _ twIm: UnsafeBufferPointer<Double>) {
        let n = re.count
        var j = 0
        for i in 1..<n {
            var bit = n >> 1
            while j & bit != 0 { j ^= bit; bit >>= 1 }
            j |= bit
            if i < j { re.swapAt(i, j); im.swapAt(i, j) }
        }
        var len = 2
        while len <= n {
            let half = len / 2, stride = size / len
            var i = 0
            while i < n {
                for k in 0..<half {
                    let a = i + k, b = a + half
                    let cr = twRe[k * stride], ci = twIm[k * stride]
                    let tr = re[b] * cr - im[b] * ci, ti = re[b] * ci + im[b] * cr
                    re[b] = re[a] - tr; im[b] = im[a] - ti
                    re[a] += tr; im[a] += ti
                }
                i += len
            }
            len <<= 1
        }
    }
}
