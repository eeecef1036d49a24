import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Decoded PCM from somewhere: the player reads frames from it and seeks in it.
public protocol PCMSource: AnyObject {
    var location: String { get }
    var metadata: TrackMetadata { get }
    var format: PCMFormat { get }
    /// Frames handed out since the last seek, plus the seek target.
    var framePosition: Int64 { get }
    /// Decodes into `buffer` (interleaved S16); returns frames, 0 at the end of the track.
    func read(into buffer: UnsafeMutableBufferPointer<Int16>) throws(AudioError) -> Int
    /// Moves to `frame`; returns the frame playback really resumes at.
    @discardableResult func seek(toFrame frame: Int64) throws(AudioError) -> Int64
    /// After the end: an error when the track turned out shorter than its header promised.
    func finishCheck() -> AudioError?
}

/// A source whose samples are wider than 16 bits (`format.sampleBits` 32): besides `read`
/// (reduced to 16 bits with dither) it hands them out whole, left-justified in 32 bits, for
/// a device that takes S32_LE, so what plays is the file bit for bit.
public protocol WidePCMSource: PCMSource {
    func readWide(into buffer: UnsafeMutableBufferPointer<Int32>) throws(AudioError) -> Int
}

/// An MP3 file decoded through the feed-mode decoder.
public final class FileTrack: PCMSource {
    public let location: String
    public private(set) var metadata: TrackMetadata
    public var format: PCMFormat { metadata.format }
    public private(set) var framePosition: Int64 = 0

    private let fd: Int32
    private let fileSize: Int
    private var decoder: MP3Decoder
    /// A seek was prepared and no audio decoded since: libmpg123 cannot stack feed seeks.
    private var seekPending = false
    private var readOffset = 0
    private var inputEnded = false
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    private var hasInfoTag = false
    private var hasTag = false
    private var endedWithError = false

    /// Opens, validates and starts decoding `path`; throws a clear reason when it is not playable MP3.
    public init(path: String) throws(AudioError) {
        location = path
        var st = stat()
        if stat(path, &st) != 0 {
            let e = errno
            throw AudioError(path, e == ENOENT || e == ENOTDIR ? .notFound : .unreadable(errnoString(e)))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw AudioError(path, .isDirectory) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw AudioError(path, .unreadable(errnoString(errno))) }
        self.fd = fd
        fileSize = Int(st.st_size)
        if (st.st_mode & S_IFMT) != S_IFREG {
            close(fd)
            throw AudioError(path, .unreadable("not a regular file"))
        }
        do {
            decoder = try MP3Decoder()
        } catch {
            close(fd)
            throw AudioError(path, error)
        }
        metadata = TrackMetadata()
        do {
            try validateAndStart()
        } catch let reason {
            close(fd)
            throw AudioError(path, reason)
        }
    }

    deinit {
        close(fd)
    }

    private func validateAndStart() throws(AudioError.Reason) {
        if fileSize == 0 { throw .empty }
        // One pass over the file: the frames are the truth about what plays and for how
        // long, and the same rule as the server's refuses what holds no playable audio
        // (see `MP3Scanner`).
        let scan = try MP3Scanner.scan(fd: fd, toleratingTruncation: true, keepingSegments: false)
        hasTag = scan.firstFrameOffset > 0 && scan.head.starts(with: Array("ID3".utf8))
        hasInfoTag = scan.promisedFrames != nil

        try startDecoding()
        var meta = decoder.metadata()
        meta.format = decoder.format ?? .cd
        if let v1 = try readID3v1() { meta.fillMissing(from: v1) }
        meta.totalFrames = scan.samples
        if let cut = scan.truncation {
            meta.damage = AudioError(location, .truncated(playedSeconds: cut.played, expectedSeconds: cut.expected)).message
        }
        metadata = meta
    }

    /// Feeds from the start until the decoder knows the format; it then holds the parsed ID3v2 tag.
    private func startDecoding() throws(AudioError.Reason) {
        decoder.setStreamSize(fileSize)
        readOffset = 0
        inputEnded = false
        var scratch = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let decoder = self.decoder
            let out = try scratch.withUnsafeMutableBytes { b in
                Result { () throws(AudioError.Reason) in try decoder.decode(into: b) }
            }.get()
            switch out {
            case .newFormat:
                // The leading tags, which the scan checked, are read; later ones are not.
                decoder.skipLaterTags()
                return
            case .pcm:
                throw .decode("audio before the format was known")
            case .needMore:
                if try !feedNextChunk() { throw .noAudioFrames(tagOnly: hasTag) }
            }
        }
    }

    private func readID3v1() throws(AudioError.Reason) -> TrackMetadata? {
        guard fileSize >= 128 else { return nil }
        var tail = [UInt8](repeating: 0, count: 128)
        guard try preadAll(&tail, offset: fileSize - 128) == 128 else { return nil }
        return ID3v1.parse(tail)
    }

    /// Reads the next chunk of the file into the decoder; false at end of file.
    private func feedNextChunk() throws(AudioError.Reason) -> Bool {
        if inputEnded { return false }
        let n = try preadAll(&chunk, offset: readOffset)
        if n == 0 {
            inputEnded = true
            return false
        }
        readOffset += n
        let decoder = self.decoder
        try chunk.withUnsafeBytes { b in
            Result { () throws(AudioError.Reason) in try decoder.feed(UnsafeRawBufferPointer(rebasing: b[0..<n])) }
        }.get()
        return true
    }

    private func preadAll(_ buffer: inout [UInt8], offset: Int) throws(AudioError.Reason) -> Int {
        var total = 0
        let fd = self.fd
        let count = buffer.count
        let result: Int32 = buffer.withUnsafeMutableBytes { b in
            while total < count {
                let r = pread(fd, b.baseAddress! + total, count - total, off_t(offset + total))
                if r < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                if r == 0 { break }
                total += r
            }
            return 0
        }
        if result != 0 { throw .unreadable(errnoString(result)) }
        return total
    }

    public func read(into buffer: UnsafeMutableBufferPointer<Int16>) throws(AudioError) -> Int {
        let raw = UnsafeMutableRawBufferPointer(buffer)
        let channels = format.channels
        do throws(AudioError.Reason) {
            while true {
                switch try decoder.decode(into: raw) {
                case .pcm(let bytes):
                    seekPending = false
                    let frames = bytes / (2 * channels)
                    framePosition += Int64(frames)
                    return frames
                case .newFormat(let f):
                    if f != metadata.format {
                        // A mid-stream format change ends this stream; the rest is not played.
                        throw AudioError.Reason.decode("format changed mid-stream (\(metadata.format) → \(f))")
                    }
                case .needMore:
                    if try !feedNextChunk() { return 0 }
                }
            }
        } catch let reason {
            endedWithError = true
            throw AudioError(location, reason)
        }
    }

    @discardableResult
    public func seek(toFrame frame: Int64) throws(AudioError) -> Int64 {
        let target = max(0, min(frame, metadata.totalFrames ?? frame))
        do throws(AudioError.Reason) {
            if seekPending {
                decoder = try MP3Decoder()
                try startDecoding()
            }
            // libmpg123 seeks sample-accurately: it resumes from an indexed frame
            // before the target and discards decoded samples up to it.
            let (_, offset) = try decoder.prepareSeek(toFrame: target)
            readOffset = offset
            inputEnded = false
            framePosition = target
            seekPending = true
            return target
        } catch {
            throw AudioError(location, error)
        }
    }

    public func finishCheck() -> AudioError? {
        // A file known to be cut short was said to be so when it started.
        guard hasInfoTag, !endedWithError, metadata.damage == nil, let expected = metadata.totalFrames else { return nil }
        // Allow one frame of slack for encoders that round the Info tag.
        if framePosition + 1152 < expected {
            let rate = Double(format.sampleRate)
            return AudioError(location, .truncated(playedSeconds: Double(framePosition) / rate,
                                                   expectedSeconds: Double(expected) / rate))
        }
        return nil
    }
}

extension FileTrack {
    /// Reads tags and duration of a file without playing it.
    public static func readMetadata(path: String) throws(AudioError) -> TrackMetadata {
        try FileTrack(path: path).metadata
    }
}

extension FileTrack {
    /// The tags alone, for listing a folder: the ID3v2 tag (read by the decoder up to the
    /// first frame, so only the tag's bytes and one frame are read) and an ID3v1 tag at the
    /// end; no cover, no duration. nil when the file cannot be read or holds no MPEG frame
    /// within `limit` bytes. Blocking: call it off the cooperative pool.
    public static func readTags(path: String, limit: Int = 64 << 20) -> TrackMetadata? {
        // A regular file only, and never an open that blocks (a FIFO named on the command line).
        var named = stat()
        guard stat(path, &named) == 0, (named.st_mode & S_IFMT) == S_IFREG else { return nil }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size > 0 else { return nil }
        let size = Int(st.st_size)
        guard let decoder = try? MP3Decoder() else { return nil }
        decoder.setStreamSize(size)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var out = [UInt8](repeating: 0, count: 16 * 1024)
        var offset = 0
        var found = false
        reading: while offset < min(size, limit) {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off_t(offset)) }
            guard n > 0 else { break }
            offset += n
            let fed = chunk.withUnsafeBytes { b in
                Result { () throws(AudioError.Reason) in try decoder.feed(UnsafeRawBufferPointer(rebasing: b[0..<n])) }
            }
            guard case .success = fed else { break }
            while true {
                let decoded = out.withUnsafeMutableBytes { b in
                    Result { () throws(AudioError.Reason) -> MP3Decoder.Output in try decoder.decode(into: b) }
                }
                guard case .success(let step) = decoded else { break reading }
                switch step {
                case .newFormat, .pcm:
                    found = true
                    break reading
                case .needMore:
                    continue reading
                }
            }
        }
        var meta = decoder.metadata()
        meta.cover = nil
        if size >= 128 {
            var tail = [UInt8](repeating: 0, count: 128)
            let n = tail.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 128, off_t(size - 128)) }
            if n == 128, let v1 = ID3v1.parse(tail) { meta.fillMissing(from: v1) }
        }
        guard found || meta.title != nil else { return nil }
        return meta
    }
}
