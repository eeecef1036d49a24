import CCodecLoader
import COpusFile
import CVorbisFile
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Ogg Vorbis (libvorbisfile) and Ogg Opus (libopusfile). Both libraries know the exact
// length in samples from the granule positions (the encoder's delay and padding already
// taken off), seek to the sample, and hand out interleaved 16-bit PCM, so these sources are
// thin: open, read, seek, tags.

/// An Ogg Vorbis file decoded with libvorbisfile.
public final class VorbisTrack: PCMSource {
    public let location: String
    public private(set) var metadata: TrackMetadata
    public var format: PCMFormat { metadata.format }
    public private(set) var framePosition: Int64 = 0

    private let file: UnsafeMutablePointer<OggVorbis_File>
    /// The logical stream (chain link) being read; a link in another format ends the track.
    private var link: Int32 = -1
    /// Where the bytes come from when they are not a local file.
    private let input: RemoteInput?

    public convenience init(path: String) throws(AudioError) {
        try AudioFiles.checkRegularFile(path)
        try self.init(location: path, input: nil)
    }

    /// An Ogg Vorbis file on a server, read as it arrives (`RemoteFile`); `timeout` bounds the
    /// wait for the bytes the open (headers, and the end for the length) and seeks need.
    public convenience init(remote: RemoteFile, location: String, timeout: Double) throws(AudioError) {
        try self.init(location: location, input: RemoteInput(file: remote, timeout: timeout))
    }

    private init(location path: String, input: RemoteInput?) throws(AudioError) {
        location = path
        self.input = input
        try AudioFiles.load(MUSIT_CODEC_VORBIS, "Ogg Vorbis", package: "libvorbisfile3", path: path)
        // Allocated after the checks that may throw; freed by hand below until `metadata` is
        // set (deinit runs only for a whole object), by deinit after.
        file = .allocate(capacity: 1)
        let opened = if let input {
            ov_open_callbacks(Unmanaged.passUnretained(input).toOpaque(), file, nil, 0, vorbisCallbacks)
        } else {
            ov_fopen(path, file)
        }
        guard opened == 0 else {
            file.deallocate()
            if let why = input?.file.failure { throw AudioError(path, .unreadable(why)) }
            throw AudioError(path, .decode("not an Ogg Vorbis stream"))
        }
        guard let info = ov_info(file, -1), info.pointee.rate > 0, (1...8).contains(info.pointee.channels) else {
            ov_clear(file)
            file.deallocate()
            throw AudioError(path, .decode("an Ogg Vorbis stream with no usable format"))
        }
        var meta = TrackMetadata()
        meta.format = PCMFormat(sampleRate: info.pointee.rate, channels: Int(info.pointee.channels))
        let total = ov_pcm_total(file, -1)
        meta.totalFrames = total > 0 ? Int64(total) : nil
        if let vc = ov_comment(file, -1) {
            VorbisComments.apply(vc.pointee.user_comments, lengths: vc.pointee.comment_lengths, count: vc.pointee.comments, to: &meta)
        }
        metadata = meta
    }

    deinit {
        ov_clear(file)
        file.deallocate()
        input?.file.close()
    }

    public func read(into buffer: UnsafeMutableBufferPointer<Int16>) throws(AudioError) -> Int {
        let channels = format.channels
        let wanted = (buffer.count / channels) * channels * 2
        // From a server: decode only when the next pages are here (see `RemoteFile`).
        try AudioFiles.checkReady(input, location)
        while true {
            var current: Int32 = 0
            let n = ov_read(file, UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self),
                            Int32(wanted), 0, 2, 1, &current)
            if n == OV_HOLE {
                // A gap in the pages (a damaged or cut-and-spliced file): play on, say it once.
                if metadata.damage == nil { metadata.damage = "damaged Ogg Vorbis: pages missing or corrupt" }
                continue
            }
            if n < 0 { throw AudioError(location, .decode("Ogg Vorbis stream broken (\(n))")) }
            if n == 0 {
                // libvorbisfile takes a failed read for the end: from a server, say why.
                try AudioFiles.checkEnded(input, location)
                return 0
            }
            if current != link {
                if link >= 0, let info = ov_info(file, current),
                   PCMFormat(sampleRate: info.pointee.rate, channels: Int(info.pointee.channels)) != format {
                    // A chained stream in another format ends this track, as for MP3.
                    throw AudioError(location, .decode("format changed mid-stream"))
                }
                link = current
            }
            let frames = n / (2 * channels)
            framePosition += Int64(frames)
            return frames
        }
    }

    @discardableResult
    public func seek(toFrame frame: Int64) throws(AudioError) -> Int64 {
        let target = max(0, min(frame, metadata.totalFrames ?? frame))
        guard ov_pcm_seek(file, ogg_int64_t(target)) == 0 else {
            throw AudioError(location, .decode("Ogg Vorbis seek to sample \(target) failed"))
        }
        framePosition = target
        return target
    }

    public func finishCheck() -> AudioError? { nil }
}

/// An Ogg Opus file decoded with libopusfile: 48 kHz always (Opus's own rate), the header's
/// output gain applied, libopusfile's dither off (the decoder's float output is rounded).
/// More than two channels are mixed down to stereo with libopusfile's downmix.
public final class OpusTrack: PCMSource {
    public let location: String
    public private(set) var metadata: TrackMetadata
    public var format: PCMFormat { metadata.format }
    public private(set) var framePosition: Int64 = 0

    private let file: OpaquePointer
    private let downmix: Bool
    /// Where the bytes come from when they are not a local file.
    private let input: RemoteInput?

    public convenience init(path: String) throws(AudioError) {
        try AudioFiles.checkRegularFile(path)
        try self.init(location: path, input: nil)
    }

    /// An Ogg Opus file on a server, read as it arrives (`RemoteFile`).
    public convenience init(remote: RemoteFile, location: String, timeout: Double) throws(AudioError) {
        try self.init(location: location, input: RemoteInput(file: remote, timeout: timeout))
    }

    private init(location path: String, input: RemoteInput?) throws(AudioError) {
        location = path
        self.input = input
        try AudioFiles.load(MUSIT_CODEC_OPUS, "Ogg Opus", package: "libopusfile0", path: path)
        var error: Int32 = 0
        let opened: OpaquePointer? = if let input {
            withUnsafePointer(to: opusCallbacks) { op_open_callbacks(Unmanaged.passUnretained(input).toOpaque(), $0, nil, 0, &error) }
        } else {
            op_open_file(path, &error)
        }
        guard let file = opened else {
            if let why = input?.file.failure { throw AudioError(path, .unreadable(why)) }
            throw AudioError(path, .decode("not an Ogg Opus stream (\(error))"))
        }
        self.file = file
        op_set_dither_enabled(file, 0)
        let channels = Int(op_channel_count(file, -1))
        downmix = channels > 2
        var meta = TrackMetadata()
        meta.format = PCMFormat(sampleRate: 48_000, channels: downmix ? 2 : max(1, channels))
        let total = op_pcm_total(file, -1)
        meta.totalFrames = total > 0 ? Int64(total) : nil
        if let tags = op_tags(file, -1) {
            VorbisComments.apply(tags.pointee.user_comments, lengths: tags.pointee.comment_lengths, count: tags.pointee.comments, to: &meta)
        }
        metadata = meta
    }

    deinit {
        op_free(file)
        input?.file.close()
    }

    public func read(into buffer: UnsafeMutableBufferPointer<Int16>) throws(AudioError) -> Int {
        try AudioFiles.checkReady(input, location)
        while true {
            let n = downmix
                ? op_read_stereo(file, buffer.baseAddress!, Int32(buffer.count))
                : op_read(file, buffer.baseAddress!, Int32(buffer.count), nil)
            if n == OP_HOLE {
                if metadata.damage == nil { metadata.damage = "damaged Ogg Opus: pages missing or corrupt" }
                continue
            }
            if n < 0 { throw AudioError(location, .decode("Ogg Opus stream broken (\(n))")) }
            if n == 0 { try AudioFiles.checkEnded(input, location) }
            // Both take room in samples and return frames (samples per channel).
            framePosition += Int64(n)
            return Int(n)
        }
    }

    @discardableResult
    public func seek(toFrame frame: Int64) throws(AudioError) -> Int64 {
        let target = max(0, min(frame, metadata.totalFrames ?? frame))
        guard op_pcm_seek(file, ogg_int64_t(target)) == 0 else {
            throw AudioError(location, .decode("Ogg Opus seek to sample \(target) failed"))
        }
        framePosition = target
        return target
    }

    public func finishCheck() -> AudioError? { nil }
}

extension VorbisComments {
    /// The comment list libvorbisfile and libopusfile both keep: `count` texts and their lengths.
    static func apply(_ texts: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, lengths: UnsafeMutablePointer<Int32>?,
                      count: Int32, to meta: inout TrackMetadata) {
        guard let texts, let lengths else { return }
        for i in 0..<Int(count) {
            guard let text = texts[i] else { continue }
            let bytes = UnsafeRawPointer(text).assumingMemoryBound(to: UInt8.self)
            apply(UnsafeBufferPointer(start: bytes, count: Int(lengths[i])), to: &meta)
        }
    }

    /// One comment as libvorbisfile and libopusfile give it: UTF-8 bytes, not terminated.
    static func apply(_ bytes: UnsafeBufferPointer<UInt8>, to meta: inout TrackMetadata) {
        // METADATA_BLOCK_PICTURE: a FLAC picture block in base64 (the Ogg way to carry a cover).
        let key = Array("METADATA_BLOCK_PICTURE=".utf8)
        // Names are ASCII in any case: compared with the case bit set on both sides.
        if bytes.count > key.count, zip(bytes.prefix(key.count), key).allSatisfy({ $0 | 0x20 == $1 | 0x20 }) {
            if meta.cover?.pictureType != 3, let block = Data(base64Encoded: Data(bytes.dropFirst(key.count))),
               let picture = PictureBlock.parse([UInt8](block)), meta.cover == nil || picture.pictureType == 3 {
                meta.cover = picture
            }
            return
        }
        apply(String(decoding: bytes, as: UTF8.self), to: &meta)
    }
}

/// FLAC's PICTURE metadata block (also the body of Ogg's METADATA_BLOCK_PICTURE): type,
/// MIME type, description, dimensions, data; every length checked against what is there.
enum PictureBlock {
    static func parse(_ b: [UInt8]) -> CoverArt? {
        var i = 0
        func u32() -> Int? {
            guard i + 4 <= b.count else { return nil }
            defer { i += 4 }
            return Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
        }
        func bytes(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, i + n <= b.count else { return nil }
            defer { i += n }
            return b[i..<(i + n)]
        }
        guard let type = u32(), let mimeLength = u32(), let mime = bytes(mimeLength), let descriptionLength = u32(),
              let description = bytes(descriptionLength), u32() != nil, u32() != nil, u32() != nil, u32() != nil,
              let length = u32(), length > 0, length <= 16 << 20, let data = bytes(length) else { return nil }
        return CoverArt(mimeType: String(decoding: mime, as: UTF8.self), pictureType: type,
                        description: String(decoding: description, as: UTF8.self), data: Array(data))
    }
}

extension AudioFiles {
    /// Before a decode step of a track read from a server: "buffering" (`.stalled`) while
    /// the next bytes are on their way, the stream's failure once it failed.
    static func checkReady(_ input: RemoteInput?, _ location: String) throws(AudioError) {
        guard let input, !input.ready() else { return }
        if let why = input.file.failure { throw AudioError(location, .unreadable(why)) }
        throw AudioError(location, .stalled)
    }

    /// A decoder reading from a server says it reached the end: true only at the file's end.
    static func checkEnded(_ input: RemoteInput?, _ location: String) throws(AudioError) {
        guard let input, input.offset < input.file.size else { return }
        throw AudioError(location, .unreadable(input.file.failure ?? "the server sent no more of the file in time"))
    }
}

// The byte callbacks of Ogg files read from a server (`RemoteInput`): fread/fseek/ftell's
// contracts, as both libraries expect.

private func remote(_ p: UnsafeMutableRawPointer?) -> RemoteInput {
    Unmanaged<RemoteInput>.fromOpaque(p!).takeUnretainedValue()
}

private let vorbisCallbacks = ov_callbacks(
    read_func: { ptr, size, count, source in
        let wanted = size * count
        guard wanted > 0 else { return 0 }
        guard let n = remote(source).read(ptr!, wanted) else {
            errno = EIO
            return 0
        }
        return n / size
    },
    seek_func: { source, offset, whence in remote(source).seek(Int64(offset), whence: whence) ? 0 : -1 },
    close_func: { _ in 0 },
    tell_func: { source in Int(remote(source).offset) })

private let opusCallbacks = OpusFileCallbacks(
    read: { stream, ptr, count in
        guard count > 0 else { return 0 }
        guard let n = remote(stream).read(ptr!, Int(count)) else { return -1 }
        return Int32(n)
    },
    seek: { stream, offset, whence in remote(stream).seek(offset, whence: whence) ? 0 : -1 },
    tell: { stream in Int64(remote(stream).offset) },
    close: { _ in 0 })
