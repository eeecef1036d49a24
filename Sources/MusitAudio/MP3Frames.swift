/// MPEG audio frame headers and a strict probe that tells an MP3 from other bytes.
///
/// libmpg123 resyncs through garbage by design, so random bytes or a WAV file can
/// yield a few "frames" of noise. Before a file is handed to the decoder the probe
/// requires a run of consecutive, mutually consistent frame headers, the way
/// tag editors recognise MPEG streams. The same parser later cuts HLS segments
/// at frame boundaries.
public struct MP3FrameHeader: Equatable, Sendable {
    public enum Version: Sendable { case mpeg1, mpeg2, mpeg25 }

    public let version: Version
    public let layer: Int
    public let bitrateKbps: Int
    public let sampleRate: Int
    public let padding: Bool
    public let channels: Int
    /// Length of the whole frame in bytes, header included.
    public let frameLength: Int

    /// Samples per channel carried by one frame.
    public var samplesPerFrame: Int {
        switch (layer, version) {
        case (1, _): return 384
        case (2, _): return 1152
        case (3, .mpeg1): return 1152
        default: return 576
        }
    }

    private static let bitrates: [[Int]] = [
        // MPEG-1 layers I, II, III
        [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
        [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
        [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
        // MPEG-2/2.5 layer I, then layers II and III
        [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ]

    /// Parses the four header bytes `b0...b3`; nil when they are not a usable header
    /// (free-format bitrate is rejected: it cannot be framed without decoding).
    public init?(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) {
        guard b0 == 0xFF, b1 & 0xE0 == 0xE0 else { return nil }
        let versionBits = (b1 >> 3) & 0x3
        let layerBits = (b1 >> 1) & 0x3
        let bitrateIndex = Int(b2 >> 4)
        let rateIndex = Int((b2 >> 2) & 0x3)
        guard versionBits != 1, layerBits != 0, bitrateIndex != 0, bitrateIndex != 15, rateIndex != 3 else {
            return nil
        }
        let version: Version = versionBits == 3 ? .mpeg1 : (versionBits == 2 ? .mpeg2 : .mpeg25)
        let layer = 4 - Int(layerBits)
        let table: Int
        switch version {
        case .mpeg1: table = layer - 1
        default: table = layer == 1 ? 3 : 4
        }
        let bitrate = Self.bitrates[table][bitrateIndex]
        let baseRate = [44100, 48000, 32000][rateIndex]
        let rate: Int
        switch version {
        case .mpeg1: rate = baseRate
        case .mpeg2: rate = baseRate / 2
        case .mpeg25: rate = baseRate / 4
        }
        let pad = (b2 >> 1) & 1 == 1
        let length: Int
        if layer == 1 {
            length = (12 * bitrate * 1000 / rate + (pad ? 1 : 0)) * 4
        } else if layer == 3 && version != .mpeg1 {
            length = 72 * bitrate * 1000 / rate + (pad ? 1 : 0)
        } else {
            length = 144 * bitrate * 1000 / rate + (pad ? 1 : 0)
        }
        self.version = version
        self.layer = layer
        self.bitrateKbps = bitrate
        self.sampleRate = rate
        self.padding = pad
        self.channels = (b3 >> 6) == 3 ? 1 : 2
        self.frameLength = length
    }

    /// True when `other` can belong to the same stream (bitrate and padding may vary).
    public func isConsistent(with other: MP3FrameHeader) -> Bool {
        version == other.version && layer == other.layer && sampleRate == other.sampleRate
    }
}

/// What a file's first bytes say it is.
public enum MP3Probe {
    public struct Result: Equatable, Sendable {
        /// Bytes taken by a leading ID3v2 tag (0 when none).
        public let id3v2Size: Int
        /// Offset of the first audio frame.
        public let firstFrameOffset: Int
        public let header: MP3FrameHeader
    }

    /// Size of the ID3v2 tag at the start of `bytes`, footer included; 0 when none.
    public static func id3v2Size(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard bytes.count >= 10, bytes[0] == 0x49, bytes[1] == 0x44, bytes[2] == 0x33 else { return 0 }
        let sizeBytes = [bytes[6], bytes[7], bytes[8], bytes[9]]
        guard sizeBytes.allSatisfy({ $0 & 0x80 == 0 }) else { return 0 }
        let size = sizeBytes.reduce(0) { ($0 << 7) | Int($1) }
        let footer = bytes[5] & 0x10 != 0 ? 10 : 0
        return 10 + size + footer
    }

    /// How many consecutive consistent headers make a stream.
    public static let requiredRun = 4

    /// Examines the start of a file (`bytes`, of a file `fileSize` long) and returns the
    /// first frame of a run of consistent frames, or throws a reason it is not an MP3.
    /// `bytes` should hold at least the ID3v2 tag plus 64 KiB, or the whole file.
    public static func probe(_ bytes: UnsafeRawBufferPointer, fileSize: Int) throws(AudioError.Reason) -> Result {
        guard fileSize > 0, bytes.count > 0 else { throw .empty }
        func hasPrefix(_ s: String, at offset: Int = 0) -> Bool {
            let u = Array(s.utf8)
            guard bytes.count >= offset + u.count else { return false }
            return (0..<u.count).allSatisfy { bytes[offset + $0] == u[$0] }
        }
        if hasPrefix("RIFF") && hasPrefix("WAVE", at: 8) { throw .otherFormat("a WAV file") }
        if hasPrefix("fLaC") { throw .otherFormat("a FLAC file") }
        if hasPrefix("OggS") { throw .otherFormat("an Ogg file") }
        if hasPrefix("ftyp", at: 4) { throw .otherFormat("an MP4/M4A file") }

        // Several ID3v2 tags may follow each other.
        var tagEnd = 0
        while tagEnd < bytes.count {
            let size = id3v2Size(UnsafeRawBufferPointer(rebasing: bytes[tagEnd...]))
            if size == 0 { break }
            tagEnd += size
        }
        if tagEnd >= fileSize { throw .noAudioFrames(tagOnly: true) }

        let searchLimit = min(bytes.count, tagEnd + 64 * 1024)
        var offset = tagEnd
        while offset + 4 <= searchLimit {
            if bytes[offset] == 0xFF,
               let first = MP3FrameHeader(bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]) {
                if runLength(bytes, from: offset, first: first, fileSize: fileSize) {
                    return Result(id3v2Size: tagEnd, firstFrameOffset: offset, header: first)
                }
            }
            offset += 1
        }
        throw .noAudioFrames(tagOnly: false)
    }

    /// True when `requiredRun` consistent frames follow one another from `start`,
    /// or fewer that end exactly at the end of a short file.
    private static func runLength(_ bytes: UnsafeRawBufferPointer, from start: Int, first: MP3FrameHeader, fileSize: Int) -> Bool {
        var offset = start
        var header = first
        var count = 1
        while count < requiredRun {
            offset += header.frameLength
            if offset == fileSize || offset == fileSize - 128 { return count >= 2 }
            guard offset + 4 <= bytes.count,
                  let next = MP3FrameHeader(bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]),
                  next.isConsistent(with: first) else { return false }
            header = next
            count += 1
        }
        return true
    }
}
