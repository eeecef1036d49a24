import CCodecLoader
import CFLAC
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A FLAC file decoded with libFLAC.
///
/// FLAC is lossless and says its exact length in samples (STREAMINFO), so what plays is the
/// encoder's input, sample for sample, and two tracks cut from one recording join without a
/// seam. libFLAC seeks to the sample: it decodes the frame holding the target and hands out
/// its samples from the target on. Samples wider than 16 bits are reduced to 16 with TPDF
/// dither (the output is S16 today), never truncated.
public final class FLACTrack: WidePCMSource {
    public let location: String
    public private(set) var metadata: TrackMetadata
    public var format: PCMFormat { metadata.format }
    public private(set) var framePosition: Int64 = 0
    /// Bits per sample in the file (4–32).
    public private(set) var bitsPerSample = 16

    private let decoder: UnsafeMutablePointer<FLAC__StreamDecoder>
    /// Decoded samples not yet handed out, interleaved S16: `pending[pendingStart..<pendingEnd]`.
    /// Kept at its largest size (one FLAC frame), so a frame is written in place.
    private var pending: [Int16] = []
    /// The same for samples wider than 16 bits, left-justified in 32 (`wide`).
    private var pendingWide: [Int32] = []
    /// Samples wider than 16 bits: kept whole (`readWide`), reduced with dither by `read`.
    private var wide = false
    private var pendingStart = 0
    private var pendingEnd = 0
    /// What the callbacks saw; read after each call into libFLAC.
    private var streamInfo: (rate: Int, channels: Int, bits: Int, samples: Int64)?
    private var tags = TrackMetadata()
    private var errors: [String] = []
    private var ended = false
    private var dither = TPDF()
    /// Where the bytes come from when they are not a local file.
    fileprivate let input: RemoteInput?

    /// Opens and validates `path`; throws a clear reason when it is not playable FLAC.
    /// `checkMD5` has libFLAC compare the decoded audio with STREAMINFO's MD5 signature
    /// (`finishMD5`); it costs a hash of every sample, so only a full check asks for it.
    /// `recordFrames` keeps where each frame's bytes are (`frames`), for HLS segments.
    public convenience init(path: String, checkMD5: Bool = false, recordFrames: Bool = false) throws(AudioError) {
        try AudioFiles.checkRegularFile(path)
        try self.init(location: path, input: nil, checkMD5: checkMD5)
        if recordFrames { startRecording() }
    }

    /// The frames decoded so far, with their bytes in the file (`recordFrames`).
    public private(set) var frames: [FLACSegments.Frame]?
    /// Where the bytes decoded so far end (`recordFrames`).
    public private(set) var decodedEnd = 0

    private func startRecording() {
        var position: FLAC__uint64 = 0
        guard FLAC__stream_decoder_get_decode_position(decoder, &position) != 0 else { return }
        decodedEnd = Int(position)
        frames = []
    }

    /// A FLAC file on a server, read as it arrives (`RemoteFile`); `timeout` bounds the wait
    /// for the bytes the open (metadata) and seeks need.
    public convenience init(remote: RemoteFile, location: String, timeout: Double) throws(AudioError) {
        try self.init(location: location, input: RemoteInput(file: remote, timeout: timeout), checkMD5: false)
    }

    private init(location path: String, input: RemoteInput?, checkMD5: Bool) throws(AudioError) {
        location = path
        self.input = input
        try AudioFiles.load(MUSIT_CODEC_FLAC, "FLAC", package: "libflac12", path: path)
        guard let decoder = FLAC__stream_decoder_new() else { throw AudioError(path, .decode("libFLAC could not start")) }
        self.decoder = decoder
        metadata = TrackMetadata()
        // From here the object is whole: a throw below runs `deinit`, which frees the decoder.
        FLAC__stream_decoder_set_metadata_respond(decoder, FLAC__METADATA_TYPE_VORBIS_COMMENT)
        FLAC__stream_decoder_set_metadata_respond(decoder, FLAC__METADATA_TYPE_PICTURE)
        if checkMD5 { FLAC__stream_decoder_set_md5_checking(decoder, 1) }
        let me = Unmanaged.passUnretained(self).toOpaque()
        let status = input == nil
            ? FLAC__stream_decoder_init_file(decoder, path, flacWrite, flacMetadata, flacError, me)
            : FLAC__stream_decoder_init_stream(decoder, flacRead, flacSeek, flacTell, flacLength, flacEOF,
                                               flacWrite, flacMetadata, flacError, me)
        guard status == FLAC__STREAM_DECODER_INIT_STATUS_OK else {
            throw AudioError(path, .unreadable("libFLAC could not open the file (init status \(status.rawValue))"))
        }
        guard FLAC__stream_decoder_process_until_end_of_metadata(decoder) != 0, let info = streamInfo,
              info.rate > 0, (1...8).contains(info.channels) else {
            if let why = input?.file.failure { throw AudioError(path, .unreadable(why)) }
            throw AudioError(path, .decode("not a FLAC stream" + (errors.first.map { ": \($0)" } ?? "")))
        }
        bitsPerSample = info.bits
        wide = info.bits > 16
        var meta = tags
        meta.format = PCMFormat(sampleRate: info.rate, channels: info.channels, sampleBits: wide ? 32 : 16)
        // 0 in STREAMINFO: the encoder did not know (a stream piped in); counted as played.
        meta.totalFrames = info.samples > 0 ? info.samples : nil
        metadata = meta
    }

    deinit {
        FLAC__stream_decoder_finish(decoder)
        FLAC__stream_decoder_delete(decoder)
        input?.file.close()
    }

    public func read(into buffer: UnsafeMutableBufferPointer<Int16>) throws(AudioError) -> Int {
        let channels = format.channels
        guard try decodeMore() else { return 0 }
        let frames = min(buffer.count / channels, (pendingEnd - pendingStart) / channels)
        let samples = frames * channels
        if wide {
            // Reduced to 16 bits here, with dither, for a device that takes no wider samples.
            let shift = Int32(32 - bitsPerSample)
            pendingWide.withUnsafeBufferPointer { p in
                for i in 0..<samples { buffer[i] = dither.reduce(p[pendingStart + i] >> shift, from: bitsPerSample) }
            }
        } else {
            pending.withUnsafeBufferPointer { p in
                _ = UnsafeMutableBufferPointer(rebasing: buffer[0..<samples])
                    .initialize(from: p[pendingStart..<(pendingStart + samples)])
            }
        }
        pendingStart += samples
        framePosition += Int64(frames)
        return frames
    }

    /// The file's samples as they are, left-justified in 32 bits (24-bit FLAC: `<< 8`, as
    /// ffmpeg's s32 decode writes them).
    public func readWide(into buffer: UnsafeMutableBufferPointer<Int32>) throws(AudioError) -> Int {
        precondition(wide, "readWide of a FLAC of \(bitsPerSample)-bit samples")
        let channels = format.channels
        guard try decodeMore() else { return 0 }
        let frames = min(buffer.count / channels, (pendingEnd - pendingStart) / channels)
        let samples = frames * channels
        pendingWide.withUnsafeBufferPointer { p in
            _ = UnsafeMutableBufferPointer(rebasing: buffer[0..<samples]).initialize(from: p[pendingStart..<(pendingStart + samples)])
        }
        pendingStart += samples
        framePosition += Int64(frames)
        return frames
    }

    /// Decodes frames until samples are pending; false at the end.
    private func decodeMore() throws(AudioError) -> Bool {
        while pendingStart >= pendingEnd {
            if ended { return false }
            // From a server: a frame is decoded only when its bytes are here (libFLAC cannot
            // pause inside a read), otherwise the player shows "buffering" and asks again.
            try AudioFiles.checkReady(input, location)
            pendingStart = 0
            pendingEnd = 0
            let ok = FLAC__stream_decoder_process_single(decoder) != 0
            if frames != nil, pendingEnd > 0 {
                var position: FLAC__uint64 = 0
                if FLAC__stream_decoder_get_decode_position(decoder, &position) != 0 {
                    frames!.append(FLACSegments.Frame(offset: decodedEnd, length: Int(position) - decodedEnd,
                                                      samples: pendingEnd / format.channels))
                    decodedEnd = Int(position)
                }
            }
            if state == FLAC__STREAM_DECODER_END_OF_STREAM {
                // The file's end; a cut one says so in `finishCheck`.
                if pendingEnd == 0 { ended = true }
            } else if !ok {
                ended = true
                // From a server: the stream's own failure is the reason, not libFLAC's abort.
                if let why = input?.file.failure { throw AudioError(location, .unreadable(why)) }
                if input != nil { throw AudioError(location, .unreadable("the server sent no more of the file in time")) }
                throw AudioError(location, .decode("FLAC stream broken" + (errors.last.map { ": \($0)" } ?? "")))
            }
        }
        return true
    }

    @discardableResult
    public func seek(toFrame frame: Int64) throws(AudioError) -> Int64 {
        pendingStart = 0
        pendingEnd = 0
        if let total = metadata.totalFrames, frame >= total {
            // At the end: nothing more to play.
            ended = true
            framePosition = total
            return total
        }
        let target = max(0, frame)
        ended = false
        if state == FLAC__STREAM_DECODER_SEEK_ERROR { FLAC__stream_decoder_flush(decoder) }
        // The frame holding the target is decoded here and its samples from the target on
        // arrive in `pending` through the write callback.
        guard FLAC__stream_decoder_seek_absolute(decoder, FLAC__uint64(target)) != 0 else {
            FLAC__stream_decoder_flush(decoder)
            throw AudioError(location, .decode("FLAC seek to sample \(target) failed"))
        }
        framePosition = target
        return target
    }

    public func finishCheck() -> AudioError? {
        guard let expected = metadata.totalFrames, framePosition < expected else { return nil }
        let rate = Double(format.sampleRate)
        return AudioError(location, .truncated(playedSeconds: Double(framePosition) / rate,
                                               expectedSeconds: Double(expected) / rate, format: "FLAC"))
    }

    private var state: FLAC__StreamDecoderState { FLAC__stream_decoder_get_state(decoder) }

    /// After the last sample was read: false when the audio's MD5 differs from the one in
    /// STREAMINFO (with `checkMD5`; a file without one, or after a seek, passes). Ends
    /// the decoder: nothing more can be read.
    public func finishMD5() -> Bool {
        FLAC__stream_decoder_finish(decoder) != 0
    }

    // MARK: libFLAC's callbacks, on the thread that called into it.

    fileprivate func received(_ frame: UnsafePointer<FLAC__Frame>, _ channelData: UnsafePointer<UnsafePointer<FLAC__int32>?>) {
        let header = frame.pointee.header
        let count = Int(header.blocksize), channels = Int(header.channels), bits = Int(header.bits_per_sample)
        // A frame whose layout differs from STREAMINFO's would be played wrong: skipped, said.
        guard channels == streamInfo?.channels else {
            failed("a frame with \(channels) channels in a \(streamInfo?.channels ?? 0)-channel stream")
            return
        }
        let start = pendingEnd, end = start + count * channels
        if wide {
            if pendingWide.count < end { pendingWide += repeatElement(0, count: end - pendingWide.count) }
            let shift = Int32(32 - min(32, max(bits, 1)))
            pendingWide.withUnsafeMutableBufferPointer { out in
                for c in 0..<channels {
                    guard let source = channelData[c] else { continue }
                    var j = start + c
                    for i in 0..<count {
                        out[j] = source[i] << shift
                        j += channels
                    }
                }
            }
            pendingEnd = end
            return
        }
        if pending.count < end { pending += repeatElement(0, count: end - pending.count) }
        // Channel by channel, written in place with a stride: this loop is the decoder's
        // whole cost beyond libFLAC's own.
        pending.withUnsafeMutableBufferPointer { out in
            for c in 0..<channels {
                guard let source = channelData[c] else { continue }
                var j = start + c
                if bits == 16 {
                    for i in 0..<count {
                        out[j] = Int16(truncatingIfNeeded: source[i])
                        j += channels
                    }
                } else {
                    for i in 0..<count {
                        out[j] = dither.reduce(source[i], from: bits)
                        j += channels
                    }
                }
            }
        }
        pendingEnd = end
    }

    fileprivate func received(_ block: UnsafePointer<FLAC__StreamMetadata>) {
        switch block.pointee.type {
        case FLAC__METADATA_TYPE_STREAMINFO:
            let info = block.pointee.data.stream_info
            streamInfo = (Int(info.sample_rate), Int(info.channels), Int(info.bits_per_sample), Int64(info.total_samples))
        case FLAC__METADATA_TYPE_VORBIS_COMMENT:
            let vc = block.pointee.data.vorbis_comment
            for i in 0..<Int(vc.num_comments) {
                let entry = vc.comments[i]
                guard let bytes = entry.entry else { continue }
                VorbisComments.apply(String(decoding: UnsafeBufferPointer(start: bytes, count: Int(entry.length)), as: UTF8.self),
                                     to: &tags)
            }
        case FLAC__METADATA_TYPE_PICTURE:
            let p = block.pointee.data.picture
            // The front cover (type 3) wins; otherwise the first picture.
            guard tags.cover == nil || (p.type.rawValue == 3 && tags.cover?.pictureType != 3), let data = p.data,
                  p.data_length > 0, p.data_length <= 16 << 20 else { return }
            let mime = p.mime_type.map { String(cString: $0) } ?? ""
            let description = p.description.map { String(cString: $0) } ?? ""
            tags.cover = CoverArt(mimeType: mime, pictureType: Int(p.type.rawValue), description: description,
                                  data: Array(UnsafeBufferPointer(start: data, count: Int(p.data_length))))
        default:
            break
        }
    }

    fileprivate func failed(_ status: FLAC__StreamDecoderErrorStatus) {
        switch status {
        case FLAC__STREAM_DECODER_ERROR_STATUS_LOST_SYNC: failed("lost sync")
        case FLAC__STREAM_DECODER_ERROR_STATUS_BAD_HEADER: failed("a bad frame header")
        case FLAC__STREAM_DECODER_ERROR_STATUS_FRAME_CRC_MISMATCH: failed("a frame whose CRC does not match")
        case FLAC__STREAM_DECODER_ERROR_STATUS_UNPARSEABLE_STREAM: failed("a stream libFLAC cannot parse")
        case FLAC__STREAM_DECODER_ERROR_STATUS_BAD_METADATA: failed("a metadata block that does not hold together")
        default: failed("decoder error \(status.rawValue)")
        }
    }

    /// Kept for the error a broken stream ends with, and said once as the track's damage.
    private func failed(_ text: String) {
        if errors.count < 16 { errors.append(text) }
        if metadata.damage == nil, streamInfo != nil { metadata.damage = "damaged FLAC: \(text)" }
    }
}

/// Triangular-PDF dither from wider samples to 16 bits: the sum of two uniform values of one
/// 16-bit step each, added before the low bits are rounded off, so the error is noise not
/// correlated with the signal (at most 1.5 steps: one of noise, half of rounding).
struct TPDF {
    private var state: UInt32 = 0x9E37_79B9

    private mutating func next() -> Int32 {
        // xorshift32: cheap, and the same sequence every run.
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        return Int32(bitPattern: state >> 1)
    }

    mutating func reduce(_ sample: Int32, from bits: Int) -> Int16 {
        if bits < 16 { return Int16(truncatingIfNeeded: sample << (16 - bits)) }
        let shift = Int32(bits - 16)
        let step = Int64(1) << shift
        let noise = (Int64(next()) % step) + (Int64(next()) % step) - step + 1
        // Rounded, not floored: the error is centred on the signal.
        let v = (Int64(sample) + noise + step / 2) >> shift
        return Int16(clamping: v)
    }
}

/// Vorbis comments (`NAME=value`, names in any case), as FLAC and Ogg files carry tags.
enum VorbisComments {
    static func apply(_ comment: String, to meta: inout TrackMetadata) {
        guard let eq = comment.firstIndex(of: "=") else { return }
        let name = comment[..<eq].uppercased()
        let value = String(comment[comment.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
        guard !value.isEmpty else { return }
        switch name {
        case "TITLE": if meta.title == nil { meta.title = value }
        case "ARTIST": if meta.artist == nil { meta.artist = value }
        case "ALBUM": if meta.album == nil { meta.album = value }
        case "TRACKNUMBER": if meta.trackNumber == nil { meta.trackNumber = Int(value.prefix { $0.isNumber }) }
        case "DATE", "YEAR": if meta.year == nil { meta.year = Int(value.prefix(4)) }
        default: meta.gains.read(name, value)
        }
    }
}

private func track(_ client: UnsafeMutableRawPointer?) -> FLACTrack {
    Unmanaged<FLACTrack>.fromOpaque(client!).takeUnretainedValue()
}

private let flacWrite: FLAC__StreamDecoderWriteCallback = { _, frame, buffer, client in
    track(client).received(frame!, buffer!)
    return FLAC__STREAM_DECODER_WRITE_STATUS_CONTINUE
}

private let flacMetadata: FLAC__StreamDecoderMetadataCallback = { _, block, client in
    track(client).received(block!)
}

private let flacError: FLAC__StreamDecoderErrorCallback = { _, status, client in
    track(client).failed(status)
}

// The byte callbacks of a FLAC read from a server (`RemoteInput`).

private let flacRead: FLAC__StreamDecoderReadCallback = { _, buffer, bytes, client in
    let input = track(client).input!
    guard let n = input.read(buffer!, bytes!.pointee) else { return FLAC__STREAM_DECODER_READ_STATUS_ABORT }
    bytes!.pointee = n
    return n == 0 ? FLAC__STREAM_DECODER_READ_STATUS_END_OF_STREAM : FLAC__STREAM_DECODER_READ_STATUS_CONTINUE
}

private let flacSeek: FLAC__StreamDecoderSeekCallback = { _, offset, client in
    track(client).input!.seek(Int64(offset), whence: SEEK_SET)
        ? FLAC__STREAM_DECODER_SEEK_STATUS_OK : FLAC__STREAM_DECODER_SEEK_STATUS_ERROR
}

private let flacTell: FLAC__StreamDecoderTellCallback = { _, offset, client in
    offset!.pointee = FLAC__uint64(track(client).input!.offset)
    return FLAC__STREAM_DECODER_TELL_STATUS_OK
}

private let flacLength: FLAC__StreamDecoderLengthCallback = { _, length, client in
    length!.pointee = FLAC__uint64(track(client).input!.file.size)
    return FLAC__STREAM_DECODER_LENGTH_STATUS_OK
}

private let flacEOF: FLAC__StreamDecoderEofCallback = { _, client in
    let input = track(client).input!
    return input.offset >= input.file.size ? 1 : 0
}

/// Opens a local file with the decoder its first bytes call for, never by its name: FLAC
/// (`fLaC`, also after an ID3v2 tag some taggers put in front), Ogg Vorbis and Ogg Opus
/// (`OggS` and the first packet's `\u{1}vorbis` or `OpusHead`), otherwise MP3.
public enum AudioFiles {
    public enum Kind: String, Equatable, Sendable {
        case mp3, flac, vorbis, opus

        /// The media type files of this kind are served as.
        public var mediaType: String {
            switch self {
            case .mp3: "audio/mpeg"
            case .flac: "audio/flac"
            case .vorbis: "audio/ogg"
            case .opus: "audio/ogg; codecs=opus"
            }
        }

        /// How a person names the format.
        public var name: String {
            switch self {
            case .mp3: "MP3"
            case .flac: "FLAC"
            case .vorbis: "Ogg Vorbis"
            case .opus: "Ogg Opus"
            }
        }
    }

    public static func open(path: String) throws(AudioError) -> any PCMSource {
        try open(path: path, kind: kind(path: path))
    }

    private static func open(path: String, kind: Kind) throws(AudioError) -> any PCMSource {
        switch kind {
        case .flac: return try FLACTrack(path: path)
        case .vorbis: return try VorbisTrack(path: path)
        case .opus: return try OpusTrack(path: path)
        case .mp3: return try FileTrack(path: path)
        }
    }

    /// The media type an upload of `path` is sent as, from its name (a hint: the server
    /// tells the format from the bytes).
    public static func uploadType(path: String) -> String {
        switch (path as NSString).pathExtension.lowercased() {
        case "flac": "audio/flac"
        case "ogg", "oga", "opus": "audio/ogg"
        default: "audio/mpeg"
        }
    }

    /// The metadata of a file without playing it.
    public static func readMetadata(path: String) throws(AudioError) -> TrackMetadata {
        let kind = kind(path: path)
        if kind == .mp3 { return try FileTrack.readMetadata(path: path) }
        return try open(path: path, kind: kind).metadata
    }

    /// The tags alone, for listing a folder. Blocking: call it off the cooperative pool.
    public static func readTags(path: String) -> TrackMetadata? {
        let kind = kind(path: path)
        if kind == .mp3 { return FileTrack.readTags(path: path) }
        guard var meta = try? open(path: path, kind: kind).metadata else { return nil }
        meta.cover = nil
        return meta
    }

    /// What the file's first bytes say it is; `.mp3` for anything else (the MP3 path gives
    /// the clear refusals: empty, not audio, another format).
    public static func kind(path: String) -> Kind {
        var named = stat()
        guard stat(path, &named) == 0, (named.st_mode & S_IFMT) == S_IFREG else { return .mp3 }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return .mp3 }
        defer { Glibc.close(fd) }
        var head = [UInt8](repeating: 0, count: 64)
        let n = pread(fd, &head, 64, 0)
        guard n >= 10 else { return .mp3 }
        head = Array(head[0..<n])
        if head.starts(with: Array("OggS".utf8)) {
            if head.firstRange(of: Array("OpusHead".utf8)) != nil { return .opus }
            if head.firstRange(of: [1] + Array("vorbis".utf8)) != nil { return .vorbis }
            return .mp3
        }
        var start = 0
        if head.starts(with: Array("ID3".utf8)), head[6..<10].allSatisfy({ $0 < 0x80 }) {
            start = 10 + (Int(head[6]) << 21 | Int(head[7]) << 14 | Int(head[8]) << 7 | Int(head[9]))
            if head[5] & 0x10 != 0 { start += 10 }
        }
        var magic = [UInt8](repeating: 0, count: 4)
        guard pread(fd, &magic, 4, off_t(start)) == 4 else { return .mp3 }
        return magic == Array("fLaC".utf8) ? .flac : .mp3
    }

    /// Loads a codec's library (see CCodecLoader) or says which package it needs.
    static func load(_ codec: musit_codec, _ name: String, package: String, path: String) throws(AudioError) {
        guard musit_codec_load(codec) == 0 else { return }
        let why = String(cString: musit_codec_error(codec))
        throw AudioError(path, .decode("\(name) needs a library that is not installed (package \(package): \(why))"))
    }

    /// The checks every decoder makes before opening, with the MP3 path's clear reasons.
    static func checkRegularFile(_ path: String) throws(AudioError) {
        var st = stat()
        if stat(path, &st) != 0 {
            let e = errno
            throw AudioError(path, e == ENOENT || e == ENOTDIR ? .notFound : .unreadable(errnoString(e)))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw AudioError(path, .isDirectory) }
        if (st.st_mode & S_IFMT) != S_IFREG { throw AudioError(path, .unreadable("not a regular file")) }
        if st.st_size == 0 { throw AudioError(path, .empty) }
    }
}
