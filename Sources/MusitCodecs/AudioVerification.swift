import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a full check of an audio file found: every sample decoded, from the first to the
/// last, with no damage on the way.
public struct VerifiedAudio: Equatable, Sendable {
    public var kind: AudioFiles.Kind
    public var metadata: TrackMetadata
    /// Samples per channel decoded: the exact length.
    public var frames: Int64
    public var sampleRate: Int
    public var channels: Int
    /// Bits per sample of a lossless file (FLAC); nil for the lossy formats.
    public var bitDepth: Int?
    /// FLAC: every frame's bytes and samples, in order (for HLS in fragmented MP4).
    public var frameLog: [FLACSegments.Frame]?

    public var duration: Double { Double(frames) / Double(sampleRate) }
}

extension AudioFiles {
    /// Decodes `path` whole with the player's decoder for `kind` and refuses, with the
    /// reason, what a player would not play whole: a file cut short, bytes after the audio,
    /// a damaged frame or page (FLAC's frame CRCs and MD5 signature, Ogg's page checksums),
    /// fewer samples than the header promises. Blocking and as long as the decode: call it
    /// on a thread pool.
    public static func verify(path: String, kind: Kind) throws(AudioError) -> VerifiedAudio {
        let source: any PCMSource
        var flac: FLACTrack?
        switch kind {
        case .flac:
            let track = try FLACTrack(path: path, checkMD5: true, recordFrames: true)
            flac = track
            source = track
        case .vorbis:
            try OggPages.check(path: path, format: "Ogg Vorbis")
            source = try VorbisTrack(path: path)
        case .opus:
            try OggPages.check(path: path, format: "Ogg Opus")
            source = try OpusTrack(path: path)
        case .mp3:
            source = try FileTrack(path: path)
        }
        let channels = source.format.channels
        let scratch = UnsafeMutableBufferPointer<Int16>.allocate(capacity: 8192 * channels)
        defer { scratch.deallocate() }
        var frames: Int64 = 0
        /// The first damage, and the samples decoded when it was seen.
        var damage: (what: String, at: Int64)?
        while true {
            let n = try source.read(into: scratch)
            if damage == nil, let what = source.metadata.damage { damage = (what, frames) }
            if n == 0 { break }
            frames += Int64(n)
        }
        let promised = source.metadata.totalFrames
        if let damage {
            // Damage after which nothing decoded, short of the promised length, is the file's
            // cut end (libFLAC reports a frame cut in half as lost sync): said as such.
            if damage.at == frames, let promised, frames < promised {
                let rate = Double(source.format.sampleRate)
                throw AudioError(path, .truncated(playedSeconds: Double(frames) / rate, expectedSeconds: Double(promised) / rate,
                                                  format: kind.name))
            }
            throw AudioError(path, .decode(damage.what))
        }
        if let cut = source.finishCheck() { throw cut }
        if let promised, promised != frames {
            throw AudioError(path, .decode("it decodes to \(frames) samples where its header promises \(promised)"))
        }
        guard frames > 0 else { throw AudioError(path, .noSamples) }
        if let flac {
            // libFLAC reports bytes after the last frame as lost sync (damage, above) when
            // they are not a frame; a count that ends early is caught by the count.
            guard flac.finishMD5() else {
                throw AudioError(path, .decode("damaged FLAC: the decoded audio does not match its MD5 signature"))
            }
        }
        if let log = flac?.frames, log.reduce(0, { $0 + $1.samples }) != Int(frames) {
            throw AudioError(path, .decode("damaged FLAC: its frames do not add up to its samples"))
        }
        // libFLAC stops once it has the samples STREAMINFO counts: bytes after the last frame
        // are only seen here.
        if let flac, flac.frames != nil {
            var st = stat()
            if stat(path, &st) == 0, Int(st.st_size) > flac.decodedEnd {
                throw AudioError(path, .decode("damaged FLAC: \(Int(st.st_size) - flac.decodedEnd) bytes after the last frame"))
            }
        }
        return VerifiedAudio(kind: kind, metadata: source.metadata, frames: frames, sampleRate: source.format.sampleRate,
                             channels: channels, bitDepth: flac?.bitsPerSample, frameLog: flac?.frames)
    }
}

/// The page layer of an Ogg file, walked whole: libvorbisfile and libopusfile skip what
/// does not check out (a page with a bad checksum becomes a hole, bytes after the last page
/// are ignored), which is right for a player and wrong for a server that promises the file
/// plays as uploaded.
enum OggPages {
    /// The CRC-32 of Ogg pages: polynomial 0x04C11DB7, not reflected, no initial or final
    /// inversion (RFC 3533 §6), over the page with its checksum field zero.
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var r = UInt32(i) << 24
        for _ in 0..<8 { r = r & 0x8000_0000 != 0 ? (r << 1) ^ 0x04C1_1DB7 : r << 1 }
        return r
    }

    static func crc(_ bytes: UnsafeRawBufferPointer, checksumAt: Int) -> UInt32 {
        var crc: UInt32 = 0
        func add(_ byte: UInt8) { crc = (crc << 8) ^ table[Int((crc >> 24) ^ UInt32(byte))] }
        for i in 0..<checksumAt { add(bytes[i]) }
        for _ in 0..<4 { add(0) }
        for i in (checksumAt + 4)..<bytes.count { add(bytes[i]) }
        return crc
    }

    /// Every byte of the file is in a page whose checksum matches, and every logical
    /// stream ends with its end-of-stream page. At most 64 streams (chained files).
    static func check(path: String, format: String) throws(AudioError) {
        try AudioFiles.checkRegularFile(path)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw AudioError(path, .unreadable(errnoString(errno))) }
        defer { close(fd) }
        // A page is at most 27 + 255 + 255 × 255 bytes: the window holds any page whole.
        let window = 1 << 17
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: window, alignment: 8)
        defer { buffer.deallocate() }
        var start = 0, end = 0, offset = 0
        var eof = false
        var open = Set<UInt32>(), streams = 0
        func damaged(_ what: String) -> AudioError { AudioError(path, .decode("damaged \(format): \(what)")) }
        /// Makes `count` bytes from `start` available; false when the file ends first.
        func need(_ count: Int) throws(AudioError) -> Bool {
            while end - start < count {
                if eof { return false }
                if start > 0 {
                    if end > start { memmove(buffer.baseAddress!, buffer.baseAddress! + start, end - start) }
                    end -= start
                    start = 0
                }
                let n = read(fd, buffer.baseAddress! + end, window - end)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw AudioError(path, .unreadable(errnoString(errno)))
                }
                if n == 0 { eof = true } else { end += n }
            }
            return true
        }
        while try need(1) {
            guard try need(27) else { throw damaged("cut inside a page at byte \(offset)") }
            let page = UnsafeRawBufferPointer(rebasing: buffer[start..<end])
            guard page[0] == 0x4F, page[1] == 0x67, page[2] == 0x67, page[3] == 0x53, page[4] == 0 else {
                throw damaged("\(offset == 0 ? "no" : "bytes that are not") Ogg pages at byte \(offset)")
            }
            let segments = Int(page[26])
            guard try need(27 + segments) else { throw damaged("cut inside a page at byte \(offset)") }
            var body = 0
            for i in 0..<segments { body += Int(buffer[start + 27 + i]) }
            let length = 27 + segments + body
            guard try need(length) else { throw damaged("cut inside a page at byte \(offset)") }
            let whole = UnsafeRawBufferPointer(rebasing: buffer[start..<(start + length)])
            let stored = whole.loadUnaligned(fromByteOffset: 22, as: UInt32.self).littleEndian
            guard crc(whole, checksumAt: 22) == stored else {
                throw damaged("a page whose checksum does not match at byte \(offset)")
            }
            let flags = whole[5]
            let serial = whole.loadUnaligned(fromByteOffset: 14, as: UInt32.self).littleEndian
            if flags & 0x02 != 0 {
                streams += 1
                guard streams <= 64 else { throw damaged("more than 64 logical streams") }
                open.insert(serial)
            }
            guard open.contains(serial) else { throw damaged("a page of a stream that has not begun at byte \(offset)") }
            if flags & 0x04 != 0 { open.remove(serial) }
            start += length
            offset += length
        }
        guard open.isEmpty else { throw damaged("cut short: the stream ends without its last page") }
    }
}
