import Foundation
import Synchronization

/// A file on a server, read by the audio thread through a decoder's read/seek callbacks
/// (libFLAC, libvorbisfile, libopusfile) while a producer task fetches it by Range, block by
/// block, a few blocks ahead of where the decoder reads. Memory is a bounded set of blocks,
/// whatever the file's size.
///
/// The decoders cannot pause inside a callback, so a track asks `ready` before each decode
/// step and reports "buffering" (`.stalled`) when the next bytes are not all here; a read
/// callback waits only for what a seek or an open asks for, with a timeout.
public final class RemoteFile: Sendable {
    public static let blockSize = 64 * 1024

    struct State {
        var blocks: [Int: [UInt8]] = [:]
        var lastUse: [Int: Int] = [:]
        var tick = 0
        /// The block the decoder reads now; the producer fetches from here on.
        var position = 0
        var closed = false
        var failure: String?
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    public let size: Int
    /// Blocks fetched ahead of the read position.
    public let readAhead: Int
    /// Blocks kept beyond the read-ahead window (what a seek back, or a decoder's look at
    /// the file's end, may read again).
    let spare = 4
    private let state = Mutex(State())
    private let condition = NSCondition()

    /// At least three blocks ahead: what `ready` asks for (one block's worth from any
    /// offset spans two) and one more on its way.
    public init(size: Int, readAhead: Int = 6) {
        self.size = size
        self.readAhead = max(3, readAhead)
    }

    var blockCount: Int { (size + Self.blockSize - 1) / Self.blockSize }

    // MARK: Consumer side (the audio thread)

    /// Whether `count` bytes from `offset` (or all up to the end) are here, so that a
    /// decode step reading them will not wait. Moves the fetch window to `offset`.
    public func ready(at offset: Int, count: Int) -> Bool {
        let first = offset / Self.blockSize
        let last = (min(size, offset + count) - 1) / Self.blockSize
        let (here, wake) = state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
            let moved = s.position != first
            s.position = first
            let here = first > last || (first...last).allSatisfy { s.blocks[$0] != nil }
            if moved || !here {
                let w = s.waiters
                s.waiters = []
                return (here, w)
            }
            return (here, [])
        }
        for w in wake { w.resume() }
        return here
    }

    /// `ready`, waiting up to `timeout` seconds for the bytes (a stalled player then asks
    /// again at the pace the bytes come, not in a busy loop).
    public func ready(at offset: Int, count: Int, timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !ready(at: offset, count: count) {
            if failure != nil || isClosed { return false }
            condition.lock()
            let signalled = condition.wait(until: deadline)
            condition.unlock()
            if !signalled { return ready(at: offset, count: count) }
        }
        return true
    }

    /// Why the stream failed, once it has.
    public var failure: String? { state.withLock { $0.failure } }

    /// Copies bytes at `offset` into `out`, waiting up to `timeout` seconds for them to
    /// arrive: the count (0 at the end of the file), nil when they did not come.
    public func read(at offset: Int, into out: UnsafeMutableRawBufferPointer, timeout: Double) -> Int? {
        guard offset < size, out.count > 0 else { return 0 }
        let block = offset / Self.blockSize
        let deadline = Date(timeIntervalSinceNow: timeout)
        while true {
            let (copied, wake) = state.withLock { s -> (Int?, [CheckedContinuation<Void, Never>]) in
                if let bytes = s.blocks[block] {
                    s.tick += 1
                    s.lastUse[block] = s.tick
                    let start = offset - block * Self.blockSize
                    let n = min(out.count, bytes.count - start)
                    bytes.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress! + start, byteCount: n) }
                    return (n, [])
                }
                if s.failure != nil || s.closed { return (-1, []) }
                // Not here: this is where the decoder reads now (a seek, or the look at the
                // end an Ogg open makes); the producer fetches it next.
                s.position = block
                let w = s.waiters
                s.waiters = []
                return (nil, w)
            }
            for w in wake { w.resume() }
            if let copied { return copied < 0 ? nil : copied }
            condition.lock()
            let arrived = condition.wait(until: min(deadline, Date(timeIntervalSinceNow: 0.05)))
            condition.unlock()
            if !arrived, Date() >= deadline { return nil }
        }
    }

    // MARK: Producer side

    /// The next block to fetch (the first missing one in the window from the read
    /// position), once there is one; nil when the file is closed or failed.
    public func nextBlock() async -> Int? {
        await nextBlocks()?.lowerBound
    }

    /// The next run of missing blocks in the window, to fetch in one request (a request a
    /// block would cap the rate at a block a round trip); nil when closed or failed.
    public func nextBlocks() async -> Range<Int>? {
        while true {
            let pick = state.withLock { s -> Range<Int>?? in
                if s.closed || s.failure != nil { return .some(nil) }
                let end = min(blockCount, s.position + readAhead)
                guard let first = (s.position..<end).first(where: { s.blocks[$0] == nil }) else { return nil }
                let last = (first..<end).prefix { s.blocks[$0] == nil }.last ?? first
                return .some(first..<(last + 1))
            }
            if let pick { return pick }
            // Nothing wanted: wait for the reader to move on (or for a close).
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    let end = min(blockCount, s.position + readAhead)
                    if s.closed || s.failure != nil || (s.position..<end).contains(where: { s.blocks[$0] == nil }) { return true }
                    s.waiters.append(c)
                    return false
                }
                if now { c.resume() }
            }
        }
    }

    /// The bytes of `block`; blocks far from the read position beyond the spare ones are
    /// dropped, least recently used first.
    public func store(_ block: Int, _ bytes: [UInt8]) {
        state.withLock { s in
            s.tick += 1
            s.blocks[block] = bytes
            s.lastUse[block] = s.tick
            let window = s.position..<(s.position + readAhead)
            let outside = s.blocks.keys.filter { !window.contains($0) }
            if outside.count > spare {
                for b in outside.sorted(by: { (s.lastUse[$0] ?? 0) < (s.lastUse[$1] ?? 0) }).prefix(outside.count - spare) {
                    s.blocks[b] = nil
                    s.lastUse[b] = nil
                }
            }
        }
        signal()
    }

    public func fail(_ why: String) {
        let wake = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            if s.failure == nil { s.failure = why }
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in wake { w.resume() }
        signal()
    }

    /// The track is gone: the producer stops.
    public func close() {
        let wake = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = true
            s.blocks = [:]
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in wake { w.resume() }
        signal()
    }

    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Blocks in memory now.
    public var heldBlocks: Int { state.withLock { $0.blocks.count } }

    private func signal() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }
}

/// A decoder's view of a `RemoteFile`: a read position and the callbacks' operations.
/// Used on the audio thread only.
final class RemoteInput {
    let file: RemoteFile
    var offset = 0
    /// How long a callback waits for bytes a seek or an open needs.
    let timeout: Double

    init(file: RemoteFile, timeout: Double) {
        self.file = file
        self.timeout = timeout
    }

    /// Reads up to `count` bytes: what is here, waiting (up to `timeout`) only when nothing
    /// is (a short read is fread's, and the decoders ask again); 0 at the end, nil when
    /// nothing came in time.
    func read(_ into: UnsafeMutableRawPointer, _ count: Int) -> Int? {
        var done = 0
        while done < count, offset < file.size {
            guard let n = file.read(at: offset, into: UnsafeMutableRawBufferPointer(start: into + done, count: count - done),
                                    timeout: done > 0 ? 0 : timeout) else { return done > 0 ? done : nil }
            if n == 0 { break }
            done += n
            offset += n
        }
        return done
    }

    /// fseek's contract: SEEK_SET, SEEK_CUR or SEEK_END; false for a position outside the file.
    func seek(_ to: Int64, whence: Int32) -> Bool {
        let base: Int64 = switch whence {
        case SEEK_CUR: Int64(offset)
        case SEEK_END: Int64(file.size)
        default: 0
        }
        let target = base + to
        guard target >= 0, target <= Int64(file.size) else { return false }
        offset = Int(target)
        return true
    }

    /// Whether the next `count` bytes are all here (a decode step will not wait for them).
    /// One block's worth is more than a decode step reads: an Ogg page is at most 65,307
    /// bytes, a FLAC frame of CD audio a few KiB (a larger one waits in the read callback).
    func ready(_ count: Int = RemoteFile.blockSize, timeout: Double = 0.05) -> Bool {
        file.ready(at: offset, count: count, timeout: timeout)
    }
}

extension AudioFiles {
    /// The decoder for `kind` reading `remote` (`RemoteFile`); `timeout` bounds its waits.
    public static func open(remote: RemoteFile, kind: Kind, location: String, timeout: Double) throws(AudioError) -> any PCMSource {
        switch kind {
        case .flac: return try FLACTrack(remote: remote, location: location, timeout: timeout)
        case .vorbis: return try VorbisTrack(remote: remote, location: location, timeout: timeout)
        case .opus: return try OpusTrack(remote: remote, location: location, timeout: timeout)
        case .mp3: throw AudioError(location, .decode("an MP3 is streamed by HLS, not by Range"))
        }
    }
}

/// A FLAC or Ogg song on a server, handed to the player at once and opened by its decoder
/// only when the bytes the open reads are here: the first block, and for Ogg the last
/// (libvorbisfile and libopusfile read the last page for the exact length). Until then
/// reading it is "buffering" (`.stalled`), so opening (or preloading, for a gapless join)
/// never blocks the audio thread on the network; the format and length come from what the
/// server stored, which the open then checks.
public final class RemoteTrack: WidePCMSource {
    public let location: String
    private let remote: RemoteFile
    private let kind: AudioFiles.Kind
    private let hint: TrackMetadata
    private let timeout: Double
    private var inner: (any PCMSource)?
    private var pendingSeek: Int64?

    public init(remote: RemoteFile, kind: AudioFiles.Kind, location: String, hint: TrackMetadata, timeout: Double) {
        self.remote = remote
        self.kind = kind
        self.location = location
        self.hint = hint
        self.timeout = timeout
    }

    deinit { remote.close() }

    public var metadata: TrackMetadata { inner?.metadata ?? hint }
    public var format: PCMFormat { inner?.format ?? hint.format }
    public var framePosition: Int64 { inner?.framePosition ?? pendingSeek ?? 0 }

    /// The decoder, opened once its bytes are here; `.stalled` until then.
    private func opened() throws(AudioError) -> any PCMSource {
        if let inner { return inner }
        let wait = 0.05
        guard remote.ready(at: 0, count: RemoteFile.blockSize, timeout: wait),
              kind == .flac || remote.ready(at: max(0, remote.size - 1), count: 1, timeout: wait) else {
            if let why = remote.failure { throw AudioError(location, .unreadable(why)) }
            throw AudioError(location, .stalled)
        }
        let track = try AudioFiles.open(remote: remote, kind: kind, location: location, timeout: timeout)
        // The device was opened for the format the server stored: the file must agree.
        guard track.format == hint.format else {
            throw AudioError(location, .decode("the file is \(track.format), the server said \(hint.format)"))
        }
        if let target = pendingSeek { try track.seek(toFrame: target) }
        pendingSeek = nil
        inner = track
        return track
    }

    public func read(into buffer: UnsafeMutableBufferPointer<Int16>) throws(AudioError) -> Int {
        try opened().read(into: buffer)
    }

    public func readWide(into buffer: UnsafeMutableBufferPointer<Int32>) throws(AudioError) -> Int {
        guard let wide = try opened() as? any WidePCMSource else {
            throw AudioError(location, .decode("samples no wider than 16 bits, where the server said wider"))
        }
        return try wide.readWide(into: buffer)
    }

    @discardableResult
    public func seek(toFrame frame: Int64) throws(AudioError) -> Int64 {
        guard let inner else {
            // Not open yet: the open seeks there.
            pendingSeek = max(0, frame)
            return max(0, frame)
        }
        return try inner.seek(toFrame: frame)
    }

    public func finishCheck() -> AudioError? { inner?.finishCheck() }
}
