import Foundation
import Synchronization

/// Bytes of a segmented stream (HLS packed audio) on their way from the network to the
/// audio thread. A producer task fetches segments in order while the feed holds less than
/// `readAhead` bytes; the audio thread takes bytes with a short timeout, so a stall is a
/// "buffering" state rather than a blocked player. A seek restarts the producer at another
/// segment; what was fetched for the old position is dropped by generation.
public final class StreamFeed: Sendable {
    public enum Take: Equatable, Sendable {
        case bytes([UInt8])
        /// Nothing arrived in time.
        case waiting
        case end
        case failed(String)
    }

    struct State {
        var chunks: [[UInt8]] = []
        var head = 0
        var buffered = 0
        var generation = 0
        /// The next segment the producer should append.
        var nextSegment = 0
        var finished = false
        var failure: String?
        var closed = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// Unknown until the producer has the playlist.
        var segmentCount: Int?
        var segmentStarts: [Double] = []
    }

    public let readAhead: Int
    private let state = Mutex(State())
    private let condition = NSCondition()

    /// `segmentCount` may come later, with the playlist (`setPlaylist`).
    public init(segmentCount: Int? = nil, readAhead: Int = 512 * 1024) {
        self.readAhead = readAhead
        state.withLock { $0.segmentCount = segmentCount }
    }

    /// The producer learned the playlist: how many segments, and when each starts (seconds).
    public func setPlaylist(starts: [Double]) {
        state.withLock { s in
            s.segmentCount = starts.count
            s.segmentStarts = starts
            if s.nextSegment >= starts.count { s.finished = true }
        }
        signalConsumer()
    }

    public var segmentCount: Int? { state.withLock { $0.segmentCount } }
    public var segmentStarts: [Double] { state.withLock { $0.segmentStarts } }

    // MARK: Producer side

    /// What to fetch next: nil when closed. `segment == segmentCount` means the end was reached.
    public func nextRequest() -> (generation: Int, segment: Int)? {
        state.withLock { $0.closed ? nil : ($0.generation, $0.nextSegment) }
    }

    /// Suspends until the feed wants more bytes for `generation` (or it moved on, or closed).
    public func waitForSpace(generation: Int) async {
        let limit = readAhead
        @Sendable func ready(_ s: State) -> Bool {
            s.closed || s.generation != generation || (s.buffered < limit && !s.finished)
        }
        while !state.withLock({ ready($0) }) {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if ready(s) { return true }
                    s.waiters.append(c)
                    return false
                }
                if now { c.resume() }
            }
        }
    }

    /// Hands over segment `segment`'s bytes; ignored when a seek made them stale.
    public func append(_ bytes: [UInt8], segment: Int, generation: Int) {
        let taken = state.withLock { s -> Bool in
            guard !s.closed, s.generation == generation, s.nextSegment == segment else { return false }
            s.chunks.append(bytes)
            s.buffered += bytes.count
            s.nextSegment += 1
            if let count = s.segmentCount, s.nextSegment >= count { s.finished = true }
            return true
        }
        if taken { signalConsumer() }
    }

    /// The producer gave up (after its own retries): the track ends with this reason.
    /// Without a generation (the playlist itself failed) it ends whatever the position.
    public func fail(_ reason: String, generation: Int? = nil) {
        let taken = state.withLock { s -> Bool in
            guard generation.map({ $0 == s.generation }) ?? true, !s.closed else { return false }
            s.failure = reason
            return true
        }
        if taken { signalConsumer() }
    }

    // MARK: Consumer side (the audio thread)

    public func take(timeout: Double) -> Take {
        if let got = takeNow() { return got }
        condition.lock()
        if state.withLock({ $0.head >= $0.chunks.count && !$0.finished && $0.failure == nil && !$0.closed }) {
            _ = condition.wait(until: Date(timeIntervalSinceNow: timeout))
        }
        condition.unlock()
        return takeNow() ?? .waiting
    }

    private func takeNow() -> Take? {
        let (result, wake) = state.withLock { s -> (Take?, [CheckedContinuation<Void, Never>]) in
            if s.head < s.chunks.count {
                let chunk = s.chunks[s.head]
                s.chunks[s.head] = []
                s.head += 1
                if s.head > 16 && s.head * 2 > s.chunks.count {
                    s.chunks.removeFirst(s.head)
                    s.head = 0
                }
                s.buffered -= chunk.count
                let w = s.waiters
                s.waiters = []
                return (.bytes(chunk), w)
            }
            if let f = s.failure { return (.failed(f), []) }
            if s.finished || s.closed { return (.end, []) }
            return (nil, [])
        }
        for w in wake { w.resume() }
        return result
    }

    /// Drops what is buffered and has the producer continue from `segment`.
    public func restart(at segment: Int) {
        let wake = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.generation += 1
            s.chunks = []
            s.head = 0
            s.buffered = 0
            s.nextSegment = max(0, min(segment, s.segmentCount ?? segment))
            s.finished = s.segmentCount.map { s.nextSegment >= $0 } ?? false
            s.failure = nil
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in wake { w.resume() }
    }

    /// The track is done with: the producer stops.
    public func close() {
        let wake = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = true
            s.chunks = []
            s.buffered = 0
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in wake { w.resume() }
        signalConsumer()
    }

    public var bufferedBytes: Int { state.withLock { $0.buffered } }

    private func signalConsumer() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }
}

/// A track decoded from a `StreamFeed`: the HLS segments' MP3 frames go through the same
/// feed-mode decoder as files, so a stream and its file decode to the same samples,
/// gapless trimming included (the first segment carries the LAME Info frame).
public final class StreamedTrack: PCMSource {
    public let location: String
    public private(set) var metadata: TrackMetadata
    public var format: PCMFormat { metadata.format }
    public private(set) var framePosition: Int64 = 0

    private let feed: StreamFeed
    private var decoder: MP3Decoder
    /// The decoder has not announced its format yet (the track was opened with the server's).
    private var formatPending = false
    /// `metadata.totalFrames` came from the Info tag: output past it is encoder padding.
    private var exactLength = false
    /// Frames to throw away after a seek landed at a segment's start.
    private var skip: Int64 = 0
    private let stallWait: Double

    /// With `format` known (the server says the song's sample rate) it returns at once and a
    /// slow first segment is "buffering" like any stall; otherwise it waits up to `timeout`
    /// seconds for the first frames to learn the format. `hint` supplies the tags the server
    /// knows (segments carry none of the file's).
    public init(location: String, feed: StreamFeed, format: PCMFormat? = nil, hint: TrackMetadata,
                timeout: Double = 10, stallWait: Double = 0.05) throws(AudioError) {
        self.location = location
        self.feed = feed
        self.stallWait = stallWait
        metadata = hint
        let hintSeconds = hint.duration
        do {
            decoder = try MP3Decoder()
        } catch {
            throw AudioError(location, error)
        }
        if let format {
            metadata.format = format
            metadata.totalFrames = hintSeconds.map { Int64(($0 * Double(format.sampleRate)).rounded()) }
            formatPending = true
            return
        }
        let deadline = Date(timeIntervalSinceNow: timeout)
        var scratch = [UInt8](repeating: 0, count: 16 * 1024)
        do throws(AudioError.Reason) {
            formatLoop: while true {
                let decoder = self.decoder
                let out = try scratch.withUnsafeMutableBytes { b in
                    Result { () throws(AudioError.Reason) in try decoder.decode(into: b) }
                }.get()
                switch out {
                case .newFormat(let f):
                    metadata.format = f
                    break formatLoop
                case .pcm:
                    throw .decode("audio before the format was known")
                case .needMore:
                    switch feed.take(timeout: max(0.01, deadline.timeIntervalSinceNow)) {
                    case .bytes(let b): try feedDecoder(b)
                    case .waiting: throw .unreadable("the stream sent no audio in \(Int(timeout)) s")
                    case .end: throw .noAudioFrames(tagOnly: false)
                    case .failed(let why): throw .unreadable(why)
                    }
                }
            }
        } catch {
            feed.close()
            throw AudioError(location, error)
        }
        if let exact = decoder.totalFrames, decoder.startTrim != nil {
            metadata.totalFrames = exact
            exactLength = true
        } else if let exact = decoder.totalFrames {
            metadata.totalFrames = exact
        } else if let seconds = hintSeconds {
            metadata.totalFrames = Int64(seconds * Double(metadata.format.sampleRate))
        }
    }

    deinit {
        feed.close()
    }

    private func feedDecoder(_ bytes: [UInt8]) throws(AudioError.Reason) {
        let decoder = self.decoder
        try bytes.withUnsafeBytes { b in Result { () throws(AudioError.Reason) in try decoder.feed(b) } }.get()
    }

    public func read(into buffer: UnsafeMutableBufferPointer<Int16>) throws(AudioError) -> Int {
        let raw = UnsafeMutableRawBufferPointer(buffer)
        let channels = format.channels
        do throws(AudioError.Reason) {
            while true {
                switch try decoder.decode(into: raw) {
                case .pcm(let bytes):
                    var frames = bytes / (2 * channels)
                    if skip > 0 {
                        let drop = Int(min(skip, Int64(frames)))
                        skip -= Int64(drop)
                        frames -= drop
                        if frames == 0 { continue }
                        let base = buffer.baseAddress!
                        base.update(from: base + drop * channels, count: frames * channels)
                    }
                    if exactLength, let total = metadata.totalFrames {
                        // After a seek the decoder runs without the Info tag and would play
                        // the encoder's padding too: stop where the file's audio ends.
                        frames = Int(max(0, min(Int64(frames), total - framePosition)))
                        if frames == 0 { return 0 }
                    }
                    framePosition += Int64(frames)
                    return frames
                case .newFormat(let f):
                    if f != metadata.format { throw AudioError.Reason.decode("format changed mid-stream (\(metadata.format) → \(f))") }
                    if formatPending {
                        if let exact = decoder.totalFrames { metadata.totalFrames = exact }
                        if decoder.startTrim != nil { exactLength = decoder.totalFrames != nil }
                    }
                    formatPending = false
                case .needMore:
                    switch feed.take(timeout: stallWait) {
                    case .bytes(let b): try feedDecoder(b)
                    case .waiting: throw AudioError.Reason.stalled
                    case .end: return 0
                    case .failed(let why): throw AudioError.Reason.unreadable(why)
                    }
                }
            }
        } catch {
            throw AudioError(location, error)
        }
    }

    @discardableResult
    public func seek(toFrame frame: Int64) throws(AudioError) -> Int64 {
        let target = max(0, min(frame, metadata.totalFrames ?? frame))
        let rate = Double(metadata.format.sampleRate)
        let segmentStarts = feed.segmentStarts.map { Int64(($0 * rate).rounded()) }
        // The playlist's durations are what is heard (the server's walk leaves out the Info
        // frame and the gapless trims), so segment k starts at heard sample `starts[k]`; a
        // decoder started there plays the segment's samples from its first, untrimmed.
        // From segment 0 the decoder trims as for the file.
        let k = max(0, (segmentStarts.lastIndex { $0 <= target }) ?? 0)
        do {
            decoder = try MP3Decoder()
        } catch {
            throw AudioError(location, error)
        }
        feed.restart(at: k)
        skip = k == 0 ? target : target - segmentStarts[k]
        framePosition = target
        return target
    }

    public func finishCheck() -> AudioError? { nil }
}
