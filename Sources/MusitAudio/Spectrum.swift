import Foundation
import MusitCodecs
import Synchronization

/// The last few thousand samples written to the device, mono, and how many of them the
/// listener has heard, so a visualizer shows what is heard and not what was decoded.
/// The audio thread appends after each write; the UI reads a window when it draws.
public final class AudioTap: Sendable {
    struct Ring {
        var samples = [Float](repeating: 0, count: AudioTap.capacity)
        /// Frames ever appended; the newest sits at `(total - 1) % capacity`.
        var total: Int64 = 0
        /// Of those, the frames still in the device's buffer (not heard yet) at `writtenAt`.
        var pending: Int64 = 0
        /// When the last frames were appended (monotonic nanoseconds).
        var writtenAt: UInt64 = 0
        var sampleRate = 44100
        /// Who to wake after the next write at or after a moment (monotonic nanoseconds).
        var waiter: (notBefore: UInt64, wake: @Sendable () -> Void)?
    }

    static let capacity = 16384
    private let ring = Mutex(Ring())
    private let listening = Atomic<Bool>(false)

    public init() {}

    /// Whether anyone reads the tap. Off, the engine feeds it nothing: the mixdown, the
    /// device delay and the clock read after every write cost the engine about a sixth of
    /// its instructions, which only a visualizer needs.
    public var isListening: Bool { listening.load(ordering: .relaxed) }

    /// Turns the feed on or off; turned on, it starts from what is written next.
    public func listen(_ on: Bool) {
        guard listening.exchange(on, ordering: .relaxed) != on, on else { return }
        clear()
    }

    /// Called on the audio thread with interleaved samples just written.
    func append(_ samples: UnsafeBufferPointer<Int16>, channels: Int, sampleRate: Int, pending: Int,
                at now: UInt64 = AudioTap.now()) {
        let channels = max(1, channels)
        ring.withLock { r -> (@Sendable () -> Void)? in
            r.sampleRate = sampleRate
            let frames = samples.count / channels
            let scale = 1 / (32768 * Float(channels))
            let start = Int(r.total % Int64(Self.capacity))
            r.samples.withUnsafeMutableBufferPointer { ring in
                // In at most two runs, to the ring's end and from its start, so the loops
                // test no wrap per frame.
                var i = 0
                var j = start
                var left = frames
                while left > 0 {
                    let run = min(left, Self.capacity - j)
                    if channels == 2 {
                        for k in 0..<run {
                            ring[j &+ k] = Float(Int32(samples[i &+ 2 &* k]) &+ Int32(samples[i &+ 2 &* k &+ 1])) * scale
                        }
                    } else {
                        for k in 0..<run {
                            var sum: Int32 = 0
                            for c in 0..<channels { sum &+= Int32(samples[i &+ k &* channels &+ c]) }
                            ring[j &+ k] = Float(sum) * scale
                        }
                    }
                    i += run * channels
                    left -= run
                    j = 0
                }
            }
            r.total += Int64(frames)
            r.pending = Int64(pending)
            r.writtenAt = now
            guard let w = r.waiter, now >= w.notBefore else { return nil }
            r.waiter = nil
            return w.wake
        }?()
    }

    /// Whether what is heard moves on between writes: the device tells how much it still
    /// holds. One that does not (it takes audio in blocks and plays it at its own pace) moves
    /// only when written to.
    public func movesBetweenWrites() -> Bool {
        ring.withLock { $0.pending > 0 }
    }

    /// Calls `wake` once, on the audio thread, after the first write at or after `notBefore`
    /// (monotonic nanoseconds), in place of any earlier such request.
    public func wakeAfterWrite(notBefore: UInt64, _ wake: @escaping @Sendable () -> Void) {
        ring.withLock { $0.waiter = (notBefore, wake) }
    }

    /// Forgets what was written (a seek or a stop throws the device's buffer away).
    func clear() {
        ring.withLock { r in
            r.total = 0
            r.pending = 0
        }
    }

    /// Monotonic nanoseconds, the clock `heard(into:at:)` counts in.
    public static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// How many frames the listener has heard by `now`: it moves when the device plays, so
    /// a visualizer has nothing new to show while it stands still.
    public func heardEnd(at now: UInt64 = AudioTap.now()) -> Int64 {
        ring.withLock { Self.heardEnd($0, at: now) }
    }

    private static func heardEnd(_ r: Ring, at now: UInt64) -> Int64 {
        let played = now > r.writtenAt ? Int64(Double(now - r.writtenAt) * Double(r.sampleRate) / 1e9) : 0
        return r.total - r.pending + min(r.pending, played)
    }

    /// Fills `out` with the samples ending where the listener is now and gives their sample
    /// rate, or nil when not that many have been heard. The device plays on between writes
    /// (which come a period or more apart): the time since the last one says how far.
    public func heard(into out: UnsafeMutableBufferPointer<Float>, at now: UInt64 = AudioTap.now()) -> Int? {
        ring.withLock { r in
            let count = out.count
            let end = Self.heardEnd(r, at: now)
            guard count <= Self.capacity / 2, end >= Int64(count) else { return nil }
            let start = Int((end - Int64(count)) % Int64(Self.capacity))
            let first = min(count, Self.capacity - start)
            r.samples.withUnsafeBufferPointer { ring in
                out.baseAddress!.update(from: ring.baseAddress! + start, count: first)
                if first < count { (out.baseAddress! + first).update(from: ring.baseAddress!, count: count - first) }
            }
            return r.sampleRate
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

    /// The levels of the last `size` of `samples` (a one-off: a visualizer keeps an analyser).
    public static func levels(_ samples: [Float], sampleRate: Int, bands: Int) -> [Double] {
        guard samples.count >= size, bands > 0 else { return [Double](repeating: 0, count: max(0, bands)) }
        var analyser = SpectrumAnalyser()
        samples.withUnsafeBufferPointer { s in
            analyser.samples.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: s.baseAddress! + s.count - size, count: size) }
        }
        return analyser.levels(sampleRate: sampleRate, bands: bands)
    }

    /// In-place iterative radix-2 FFT; `re.count` is a power of two no larger than `size`.
    static func fft(_ re: inout [Float], _ im: inout [Float]) {
        let n = re.count
        precondition(n <= size && n & (n - 1) == 0 && im.count == n)
        let tables = FFTTables(size: size, points: n)
        re.withUnsafeMutableBufferPointer { re in
            im.withUnsafeMutableBufferPointer { im in tables.transform(re, im) }
        }
    }
}

/// What an FFT of `points` points needs, worked out once: the bit-reversal swaps, the
/// twiddle factors of a `size`-point transform (the real-signal untangling takes them all),
/// and each stage's own twiddles side by side, so its butterflies run four at a time.
struct FFTTables: Sendable {
    let size: Int, points: Int
    let twRe: [Float], twIm: [Float]
    let swaps: [(Int32, Int32)]
    /// The twiddles of the stages of 8 points and more: the stage of `len` points keeps its
    /// `len / 2` from offset `len / 2 - 4`.
    let stageRe: [Float], stageIm: [Float]

    init(size: Int, points: Int) {
        self.size = size
        self.points = points
        let half = size / 2
        twRe = (0..<half).map { Float(cos(-2 * .pi * Double($0) / Double(size))) }
        twIm = (0..<half).map { Float(sin(-2 * .pi * Double($0) / Double(size))) }
        var swaps: [(Int32, Int32)] = []
        var j = 0
        for i in 1..<points {
            var bit = points >> 1
            while j & bit != 0 { j ^= bit; bit >>= 1 }
            j |= bit
            if i < j { swaps.append((Int32(i), Int32(j))) }
        }
        self.swaps = swaps
        var stageRe: [Float] = [], stageIm: [Float] = []
        var len = 8
        while len <= points {
            for k in 0..<(len / 2) {
                stageRe.append(Float(cos(-2 * .pi * Double(k) / Double(len))))
                stageIm.append(Float(sin(-2 * .pi * Double(k) / Double(len))))
            }
            len <<= 1
        }
        self.stageRe = stageRe
        self.stageIm = stageIm
    }

    func transform(_ re: UnsafeMutableBufferPointer<Float>, _ im: UnsafeMutableBufferPointer<Float>) {
        let n = points
        let re = re.baseAddress!, im = im.baseAddress!
        for (a, b) in swaps {
            let a = Int(a), b = Int(b)
            (re[a], re[b]) = (re[b], re[a])
            (im[a], im[b]) = (im[b], im[a])
        }
        // The first stage's twiddle is 1.
        var i = 0
        while i + 1 < n {
            let tr = re[i + 1], ti = im[i + 1]
            re[i + 1] = re[i] - tr; im[i + 1] = im[i] - ti
            re[i] += tr; im[i] += ti
            i += 2
        }
        // The second's are 1 and -i.
        i = 0
        while i + 3 < n {
            var (a, b) = (i, i + 2)
            var tr = re[b], ti = im[b]
            re[b] = re[a] - tr; im[b] = im[a] - ti
            re[a] += tr; im[a] += ti
            // Times -i: (x + iy)(-i) = y - ix.
            (a, b) = (i + 1, i + 3)
            (tr, ti) = (im[b], -re[b])
            re[b] = re[a] - tr; im[b] = im[a] - ti
            re[a] += tr; im[a] += ti
            i += 4
        }
        typealias F4 = SIMD4<Float>
        stageRe.withUnsafeBufferPointer { sr in
            stageIm.withUnsafeBufferPointer { si in
                let sr = UnsafeRawPointer(sr.baseAddress!), si = UnsafeRawPointer(si.baseAddress!)
                let rr = UnsafeMutableRawPointer(re), ri = UnsafeMutableRawPointer(im)
                let f = MemoryLayout<Float>.stride
                var len = 8
                while len <= n {
                    let half = len / 2, tw = (half - 4) * f
                    var start = 0
                    while start < n {
                        var k = 0
                        while k < half {
                            let a = (start + k) * f, b = a + half * f
                            let cr = sr.loadUnaligned(fromByteOffset: tw + k * f, as: F4.self)
                            let ci = si.loadUnaligned(fromByteOffset: tw + k * f, as: F4.self)
                            let ar = rr.loadUnaligned(fromByteOffset: a, as: F4.self)
                            let ai = ri.loadUnaligned(fromByteOffset: a, as: F4.self)
                            let br = rr.loadUnaligned(fromByteOffset: b, as: F4.self)
                            let bi = ri.loadUnaligned(fromByteOffset: b, as: F4.self)
                            let tr = br * cr - bi * ci, ti = br * ci + bi * cr
                            rr.storeBytes(of: ar - tr, toByteOffset: b, as: F4.self)
                            ri.storeBytes(of: ai - ti, toByteOffset: b, as: F4.self)
                            rr.storeBytes(of: ar + tr, toByteOffset: a, as: F4.self)
                            ri.storeBytes(of: ai + ti, toByteOffset: a, as: F4.self)
                            k += 4
                        }
                        start += len
                    }
                    len <<= 1
                }
            }
        }
    }
}

/// A visualizer's spectrum, with everything it needs kept between frames: the window, the
/// FFT's tables, the scratch buffers and each band's bins. Thirty times a second, it
/// allocates nothing and does no trigonometry.
public struct SpectrumAnalyser: Sendable {
    /// The samples to analyse: fill them, then ask for `levels`.
    public var samples = [Float](repeating: 0, count: Spectrum.size)
    private var re = [Float](repeating: 0, count: Spectrum.size / 2)
    private var im = [Float](repeating: 0, count: Spectrum.size / 2)
    private var power = [Float](repeating: 0, count: Spectrum.size / 2)
    private let window: [Float] = (0..<Spectrum.size).map {
        Float(0.5 - 0.5 * cos(2 * .pi * Double($0) / Double(Spectrum.size - 1)))
    }
    private let tables = FFTTables(size: Spectrum.size, points: Spectrum.size / 2)
    /// Each band's bins for a band count and sample rate, and the highest bin of any.
    private var bins: (bands: Int, sampleRate: Int, ranges: [Range<Int>], top: Int)?

    public init() {}

    /// Each band's level, 0…1, for `samples`.
    public mutating func levels(sampleRate: Int, bands: Int) -> [Double] {
        guard bands > 0 else { return [] }
        let n = Spectrum.size, h = n / 2
        if bins?.bands != bands || bins?.sampleRate != sampleRate {
            let ranges = Self.binRanges(bands: bands, sampleRate: sampleRate)
            bins = (bands, sampleRate, ranges, min(h - 1, (ranges.map(\.upperBound).max() ?? 1) - 1))
        }
        let (ranges, top) = (bins!.ranges, bins!.top)
        // A real signal's spectrum from a complex FFT of half the size: even samples as the
        // real part, odd as the imaginary, then the two halves untangled (half the work).
        samples.withUnsafeBufferPointer { x in
            window.withUnsafeBufferPointer { w in
                re.withUnsafeMutableBufferPointer { re in
                    im.withUnsafeMutableBufferPointer { im in
                        // Eight samples at a time: windowed, then split into even and odd.
                        let x = UnsafeRawPointer(x.baseAddress!), w = UnsafeRawPointer(w.baseAddress!)
                        let rr = UnsafeMutableRawPointer(re.baseAddress!), ri = UnsafeMutableRawPointer(im.baseAddress!)
                        let f = MemoryLayout<Float>.stride
                        var k = 0
                        while k < h {
                            let v = x.loadUnaligned(fromByteOffset: 2 * k * f, as: SIMD8<Float>.self)
                                * w.loadUnaligned(fromByteOffset: 2 * k * f, as: SIMD8<Float>.self)
                            rr.storeBytes(of: v.evenHalf, toByteOffset: k * f, as: SIMD4<Float>.self)
                            ri.storeBytes(of: v.oddHalf, toByteOffset: k * f, as: SIMD4<Float>.self)
                            k += 4
                        }
                        tables.transform(re, im)
                    }
                }
            }
        }
        // Power per bin (the square root is taken once per band, not per bin).
        tables.twRe.withUnsafeBufferPointer { twRe in
            tables.twIm.withUnsafeBufferPointer { twIm in
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
        // Scaled so a full-scale sine reads 0 dB (the Hann window halves it): the level of
        // power p is 10·log10(p) + 20·log10(4 / n) dB, 0 dB at 1 and −60 dB at 0, clamped.
        let offset = 20 * log10(Float(4) / Float(n))
        return power.withUnsafeBufferPointer { power in
            ranges.map { range -> Double in
                var peak: Float = 0
                for k in range { peak = max(peak, power[k]) }
                let db = 10 * log10(max(peak, 1e-18)) + offset
                return Double(max(0, min(1, (db + 60) / 60)))
            }
        }
    }

    /// The FFT bins of each band: band edges are powers, too dear to work out every frame.
    static func binRanges(bands: Int, sampleRate: Int) -> [Range<Int>] {
        let n = Spectrum.size
        let binHz = Double(sampleRate) / Double(n)
        let e = Spectrum.edges(bands: bands)
        return (0..<bands).map { b -> Range<Int> in
            let lo = max(1, Int((e[b] / binHz).rounded(.down)))
            let hi = min(n / 2 - 1, max(lo, Int((e[b + 1] / binHz).rounded(.up)) - 1))
            // A band above the highest bin (a low sample rate) holds none.
            return lo <= hi ? lo..<(hi + 1) : (n / 2)..<(n / 2)
        }
    }
}
