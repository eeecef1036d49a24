import CALSA
import Foundation
import MusitCodecs
#if canImport(Glibc)
import Glibc
#endif

/// Where PCM goes. Calls block (a write waits for room in the device) and so only
/// ever happen on the player's own thread.
public protocol AudioOutput: AnyObject {
    /// A name for the UI: the ALSA device, or "no audio device".
    var name: String { get }
    /// True for the stand-in used when no device could be opened.
    var isNull: Bool { get }
    var format: PCMFormat? { get }
    /// Opens (or reopens) the device for `format`.
    func configure(_ format: PCMFormat) throws(AudioError)
    /// Writes all of `samples` (interleaved frames), blocking as needed.
    func write(_ samples: UnsafeBufferPointer<Int16>) throws(AudioError)
    /// The same for a format of 32-bit samples.
    func write(_ samples: UnsafeBufferPointer<Int32>) throws(AudioError)
    /// Frames handed over but not yet heard.
    func delayFrames() -> Int
    /// Pauses keeping buffered audio where the device can; where it cannot, the
    /// buffer plays out and the device idles until resumed. No audio is lost either way.
    func setPaused(_ paused: Bool)
    /// Discards buffered audio at once.
    func discardBuffered()
    /// Waits until everything written has been heard.
    func drain()
    func close()
}

/// Paces a sink that swallows audio instantly so that it advances in real time.
struct RealTimePacer {
    private var start: UInt64 = 0
    private var frames: Int64 = 0
    private var rate = 44100
    /// How far ahead of the clock writing may run, like a device buffer.
    var lead: Double = 0.1

    mutating func reset(rate: Int) {
        self.rate = rate
        start = monotonicNanos()
        frames = 0
        frozenPending = nil
    }

    /// Accounts for `count` frames and sleeps until they are due.
    mutating func wrote(_ count: Int) {
        if start == 0 { reset(rate: rate) }
        frames += Int64(count)
        let due = Double(frames) / Double(rate) - lead
        let elapsed = Double(monotonicNanos() - start) / 1e9
        if due > elapsed {
            usleep(useconds_t((due - elapsed) * 1e6))
        }
    }

    private var frozenPending: Int?

    /// Stops the clock: pending frames stay pending until `thaw`.
    mutating func freeze() {
        if frozenPending == nil { frozenPending = pending() }
    }

    mutating func thaw() {
        guard let held = frozenPending else { return }
        frozenPending = nil
        start = monotonicNanos()
        frames = Int64(held)
    }

    /// Frames written but not yet due at the clock.
    func pending() -> Int {
        if let frozenPending { return frozenPending }
        guard start != 0 else { return 0 }
        let elapsed = Double(monotonicNanos() - start) / 1e9
        return max(0, Int(frames - Int64(elapsed * Double(rate))))
    }
}

func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The stand-in when no device opens: it plays nothing, in real time.
public final class NullOutput: AudioOutput {
    public let name = "no audio device"
    public let isNull = true
    public private(set) var format: PCMFormat?
    private var pacer = RealTimePacer()

    public init() {}

    public func configure(_ format: PCMFormat) throws(AudioError) {
        self.format = format
        pacer.reset(rate: format.sampleRate)
    }

    public func write(_ samples: UnsafeBufferPointer<Int16>) throws(AudioError) {
        pacer.wrote(samples.count / (format?.channels ?? 2))
    }

    public func write(_ samples: UnsafeBufferPointer<Int32>) throws(AudioError) {
        pacer.wrote(samples.count / (format?.channels ?? 2))
    }

    public func delayFrames() -> Int { pacer.pending() }

    public func setPaused(_ paused: Bool) {
        if paused { pacer.freeze() } else { pacer.thaw() }
    }

    public func discardBuffered() { pacer.reset(rate: format?.sampleRate ?? 44100) }

    public func drain() {
        let pending = pacer.pending()
        if pending > 0, let rate = format?.sampleRate {
            usleep(useconds_t(Double(pending) / Double(rate) * 1e6))
        }
    }

    public func close() {}
}

/// Playback through alsa-lib. Errors alsa-lib would print are silenced once per process.
public final class ALSAOutput: AudioOutput {
    public let device: String
    public var name: String { device }
    public let isNull = false
    public private(set) var format: PCMFormat?
    private var pcm: OpaquePointer?
    /// Pace in real time ourselves (for devices such as `null` that do not).
    private let pace: Bool
    private var pacer = RealTimePacer()
    private let latencyMicros: UInt32
    private var hardwarePaused = false
    /// Underruns recovered so far.
    public private(set) var recoveredUnderruns = 0

    public init(device: String, pace: Bool = false, latencyMicros: UInt32 = 200_000) {
        ALSAOutput.silenceLibraryErrors()
        self.device = device
        self.pace = pace
        self.latencyMicros = latencyMicros
    }

    deinit { close() }

    private static let silenced: Void = { musit_alsa_silence_errors() }()

    /// alsa-lib prints to stderr by default, which would corrupt a curses screen.
    public static func silenceLibraryErrors() { _ = silenced }

    /// Opens the device once to see whether it works.
    public func open(_ format: PCMFormat) throws(AudioError) {
        try configure(format)
    }

    public func configure(_ format: PCMFormat) throws(AudioError) {
        if pcm != nil && self.format == format { return }
        if pcm != nil {
            snd_pcm_drain(pcm)
            snd_pcm_close(pcm)
            pcm = nil
            // Closed: a failed open below leaves no format that looks configured.
            self.format = nil
        }
        var handle: OpaquePointer?
        var r = snd_pcm_open(&handle, device, SND_PCM_STREAM_PLAYBACK, 0)
        guard r >= 0, let handle else {
            throw AudioError(device, .device("cannot open: \(Self.describe(r))"))
        }
        r = snd_pcm_set_params(handle, format.sampleBits == 32 ? SND_PCM_FORMAT_S32_LE : SND_PCM_FORMAT_S16_LE,
                               SND_PCM_ACCESS_RW_INTERLEAVED,
                               UInt32(format.channels), UInt32(format.sampleRate), 1, latencyMicros)
        guard r >= 0 else {
            snd_pcm_close(handle)
            throw AudioError(device, .device("cannot play \(format): \(Self.describe(r))"))
        }
        pcm = handle
        self.format = format
        pacer.reset(rate: format.sampleRate)
    }

    public func write(_ samples: UnsafeBufferPointer<Int16>) throws(AudioError) {
        try writeFrames(samples)
    }

    public func write(_ samples: UnsafeBufferPointer<Int32>) throws(AudioError) {
        try writeFrames(samples)
    }

    private func writeFrames<Sample>(_ samples: UnsafeBufferPointer<Sample>) throws(AudioError) {
        guard let pcm, let format, let base = samples.baseAddress else { return }
        let frames = samples.count / format.channels
        let result = ALSAOutput.writeAll(frames: frames, channels: format.channels, base: base,
            write: { ptr, n in snd_pcm_writei(pcm, ptr, snd_pcm_uframes_t(n)) },
            recover: { err in snd_pcm_recover(pcm, err, 1) })
        recoveredUnderruns += result.recovered
        if let err = result.error {
            throw AudioError(device, .device("write failed: \(Self.describe(err))"))
        }
        if pace { pacer.wrote(frames) }
    }

    /// Writes `frames` frames, retrying partial writes and recovering from underruns
    /// (-EPIPE) and suspends (-ESTRPIPE) with `recover`. Separate so it can be tested
    /// against a device that fails on purpose.
    static func writeAll<Sample>(frames: Int, channels: Int, base: UnsafePointer<Sample>,
                         write: (UnsafeRawPointer, Int) -> Int, recover: (Int32) -> Int32)
        -> (recovered: Int, error: Int32?) {
        var done = 0
        var recovered = 0
        var failures = 0
        while done < frames {
            let r = write(UnsafeRawPointer(base + done * channels), frames - done)
            if r >= 0 {
                done += r
                failures = 0
                continue
            }
            let err = Int32(r)
            if err == -EAGAIN || err == -EINTR { continue }
            failures += 1
            if failures > 8 || recover(err) < 0 { return (recovered, err) }
            recovered += 1
        }
        return (recovered, nil)
    }

    public func delayFrames() -> Int {
        guard let pcm else { return 0 }
        var delay: snd_pcm_sframes_t = 0
        let device = snd_pcm_delay(pcm, &delay) == 0 ? max(0, Int(delay)) : 0
        return pace ? max(device, pacer.pending()) : device
    }

    public func setPaused(_ paused: Bool) {
        if pace { if paused { pacer.freeze() } else { pacer.thaw() } }
        guard let pcm else { return }
        if paused {
            hardwarePaused = snd_pcm_pause(pcm, 1) == 0
        } else if hardwarePaused {
            hardwarePaused = false
            if snd_pcm_pause(pcm, 0) != 0 { snd_pcm_prepare(pcm) }
        } else if snd_pcm_state(pcm) == SND_PCM_STATE_XRUN {
            // The buffer played out while paused without hardware pause.
            snd_pcm_prepare(pcm)
        }
    }

    public func discardBuffered() {
        guard let pcm else { return }
        snd_pcm_drop(pcm)
        snd_pcm_prepare(pcm)
        hardwarePaused = false
        pacer.reset(rate: format?.sampleRate ?? 44100)
    }

    public func drain() {
        guard let pcm else { return }
        snd_pcm_drain(pcm)
        snd_pcm_prepare(pcm)
        if pace {
            let pending = pacer.pending()
            if pending > 0, let rate = format?.sampleRate {
                usleep(useconds_t(Double(pending) / Double(rate) * 1e6))
            }
        }
        pacer.reset(rate: format?.sampleRate ?? 44100)
    }

    public func close() {
        if let pcm {
            snd_pcm_close(pcm)
        }
        pcm = nil
        format = nil
    }

    static func describe(_ code: Int32) -> String {
        String(cString: snd_strerror(code))
    }
}
