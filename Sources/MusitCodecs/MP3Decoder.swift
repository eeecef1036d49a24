import CMPG123
import Foundation

/// libmpg123 in feed mode: bytes go in from any source (a file today, HTTP ranges
/// and HLS segments later), PCM comes out in one forced format per stream —
/// stereo S16 at the stream's own sample rate.
///
/// Not thread-safe: one decoder belongs to one thread at a time.
public final class MP3Decoder {
    public enum Output: Equatable {
        /// This many bytes of PCM were written to the output buffer.
        case pcm(Int)
        /// The decoder needs more input bytes.
        case needMore
        /// The stream's PCM format is now known (or changed).
        case newFormat(PCMFormat)
    }

    private let handle: OpaquePointer
    public private(set) var format: PCMFormat?

    public init() throws(AudioError.Reason) {
        var err: Int32 = 0
        guard let h = mpg123_new(nil, &err) else {
            throw .decode("libmpg123: \(String(cString: mpg123_plain_strerror(err)))")
        }
        handle = h
        let flags = Int(MPG123_QUIET.rawValue | MPG123_GAPLESS.rawValue | MPG123_PICTURE.rawValue)
        mpg123_param2(h, Int32(MPG123_ADD_FLAGS.rawValue), flags, 0)
        // Allow every rate, but only stereo S16: mono is duplicated, rates are native.
        mpg123_format_none(h)
        var list: UnsafePointer<Int>?
        var count = 0
        mpg123_rates(&list, &count)
        if let list {
            for i in 0..<count {
                mpg123_format(h, list[i], Int32(MPG123_STEREO.rawValue), Int32(MPG123_ENC_SIGNED_16.rawValue))
            }
        }
        guard mpg123_open_feed(h) == MPG123_OK.rawValue else {
            mpg123_delete(h)
            throw .decode("libmpg123 cannot open a feed")
        }
    }

    deinit {
        mpg123_delete(handle)
    }

    /// From now on ID3v2 tags are skipped, not parsed: call once the leading tags are read
    /// (at the first `.newFormat`). A tag further on (two files joined, or one put there)
    /// lies past where the scan stopped, so no limit was checked on it, and libmpg123
    /// spends the square of its frame count parsing it (see `MP3Probe.keptFrames`):
    /// 30,000 comments stall playback for 1.4 s. Skipping costs nothing and plays the same.
    public func skipLaterTags() {
        mpg123_param2(handle, Int32(MPG123_ADD_FLAGS.rawValue), Int(MPG123_SKIP_ID3V2.rawValue), 0)
    }

    /// Tells the decoder the stream's total size, so it can estimate length without an Info tag.
    public func setStreamSize(_ bytes: Int) {
        mpg123_set_filesize(handle, bytes)
    }

    public func feed(_ bytes: UnsafeRawBufferPointer) throws(AudioError.Reason) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let r = mpg123_feed(handle, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        if r != MPG123_OK.rawValue { throw .decode(lastError) }
    }

    /// Decodes into `out`; returns what happened.
    public func decode(into out: UnsafeMutableRawBufferPointer) throws(AudioError.Reason) -> Output {
        var done = 0
        let r = mpg123_read(handle, out.baseAddress, out.count, &done)
        switch r {
        case MPG123_OK.rawValue:
            return done > 0 ? .pcm(done) : .needMore
        case MPG123_NEED_MORE.rawValue, MPG123_DONE.rawValue:
            return done > 0 ? .pcm(done) : .needMore
        case MPG123_NEW_FORMAT.rawValue:
            var rate = 0
            var channels: Int32 = 0
            var encoding: Int32 = 0
            mpg123_getformat(handle, &rate, &channels, &encoding)
            let f = PCMFormat(sampleRate: rate, channels: Int(channels))
            format = f
            return .newFormat(f)
        default:
            throw .decode(lastError)
        }
    }

    /// Prepares a seek to output frame `frame`. Returns the frame the decoder will
    /// really resume at and the input byte offset the next bytes must come from.
    public func prepareSeek(toFrame frame: Int64) throws(AudioError.Reason) -> (frame: Int64, inputOffset: Int) {
        var inputOffset = 0
        let r = mpg123_feedseek(handle, Int(frame), SEEK_SET, &inputOffset)
        if r < 0 { throw .decode("seek failed: \(lastError)") }
        return (Int64(r), inputOffset)
    }

    /// Samples libmpg123 trims from the start for gapless playback: the encoder delay from
    /// the LAME Info tag plus its own decoder delay (529); nil without an Info tag.
    public var startTrim: Int? {
        var value = 0
        var fvalue = 0.0
        guard mpg123_getstate2(handle, Int32(MPG123_ENC_DELAY.rawValue), &value, &fvalue) == MPG123_OK.rawValue, value >= 0 else { return nil }
        return value + 529
    }

    /// Total frames: exact with a LAME/Xing Info tag, else estimated from the stream size.
    public var totalFrames: Int64? {
        let n = mpg123_length(handle)
        return n > 0 ? Int64(n) : nil
    }

    /// Tags parsed so far (call after `.newFormat`): ID3v2 text and pictures.
    public func metadata() -> TrackMetadata {
        var meta = TrackMetadata(format: format ?? .cd)
        var v1: UnsafeMutablePointer<mpg123_id3v1>?
        var v2: UnsafeMutablePointer<mpg123_id3v2>?
        guard mpg123_id3(handle, &v1, &v2) == MPG123_OK.rawValue else { return meta }
        if let v2 = v2?.pointee {
            meta.title = Self.string(v2.title)
            meta.artist = Self.string(v2.artist)
            meta.album = Self.string(v2.album)
            meta.year = leadingInt(Self.string(v2.year))
            for i in 0..<v2.texts {
                let frame = v2.text[i]
                let id = withUnsafeBytes(of: frame.id) { String(decoding: $0, as: UTF8.self) }
                let value = Self.string(frame.text)
                switch id {
                case "TRCK": meta.trackNumber = leadingInt(value)
                case "TDRC", "TYER": if meta.year == nil { meta.year = leadingInt(value) }
                default: break
                }
            }
            // ReplayGain in TXXX frames, named by their description.
            if let extra = v2.extra {
                for i in 0..<v2.extras {
                    if let name = Self.string(extra[i].description), let value = Self.string(extra[i].text) {
                        meta.gains.read(name, value)
                    }
                }
            }
            if v2.pictures > 0, let pictures = v2.picture {
                // Prefer the front cover (type 3), else the first picture.
                let all = (0..<v2.pictures).map { pictures[$0] }
                if let pic = all.first(where: { $0.type == 3 }) ?? all.first, let data = pic.data, pic.size > 0 {
                    meta.cover = CoverArt(
                        mimeType: Self.string(pic.mime_type) ?? "application/octet-stream",
                        pictureType: Int(pic.type),
                        description: Self.string(pic.description) ?? "",
                        data: Array(UnsafeBufferPointer(start: data, count: pic.size)))
                }
            }
        }
        if let v1 = v1 {
            let bytes = withUnsafeBytes(of: v1.pointee) { Array($0) }
            if let tag = ID3v1.parse(bytes) { meta.fillMissing(from: tag) }
        }
        return meta
    }

    private var lastError: String {
        String(cString: mpg123_strerror(handle))
    }

    /// An mpg123_string holds UTF-8; text frames may carry several NUL-separated values.
    private static func string(_ s: mpg123_string) -> String? {
        guard let chars = s.p, s.fill > 0 else { return nil }
        let bytes = UnsafeRawBufferPointer(start: chars, count: s.fill)
        let values = bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.filter { !$0.isEmpty }
        let joined = values.joined(separator: "; ").trimmingCharacters(in: .whitespacesAndNewlines)
        return joined.isEmpty ? nil : joined
    }

    private static func string(_ p: UnsafeMutablePointer<mpg123_string>?) -> String? {
        p.flatMap { string($0.pointee) }
    }
}

extension TrackMetadata {
    mutating func fillMissing(from other: TrackMetadata) {
        title = title ?? other.title
        artist = artist ?? other.artist
        album = album ?? other.album
        trackNumber = trackNumber ?? other.trackNumber
        year = year ?? other.year
    }
}
