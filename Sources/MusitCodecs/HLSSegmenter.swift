import Foundation

/// Cuts an MP3 into HLS packed-audio segments (RFC 8216 §3.4) at frame boundaries.
public enum HLSSegmenter {
    public struct Segment: Codable, Equatable, Sendable {
        /// Byte range of the segment's MP3 frames in the file.
        public var offset: Int
        public var length: Int
        /// Samples per channel in the segment, and before it.
        public var samples: Int
        public var startSample: Int
        /// FLAC (fMP4 segments): each frame's bytes and samples, for the segment's `trun`.
        public var frameSizes: [Int]?
        public var frameSamples: [Int]?

        public init(offset: Int, length: Int, samples: Int, startSample: Int, frameSizes: [Int]? = nil, frameSamples: [Int]? = nil) {
            self.offset = offset
            self.length = length
            self.samples = samples
            self.startSample = startSample
            self.frameSizes = frameSizes
            self.frameSamples = frameSamples
        }
    }

    public struct Index: Codable, Equatable, Sendable {
        public var sampleRate: Int
        public var segments: [Segment]
        /// Byte range of all MPEG frames (the file less its tags).
        public var audioOffset: Int
        public var audioLength: Int
        /// FLAC: the STREAMINFO block's 34 bytes, for the fMP4 initialization segment.
        public var flacStreamInfo: [UInt8]?
        /// FLAC: bits per sample, for the sample entry.
        public var bitsPerSample: Int?
        public var channels: Int?

        public init(sampleRate: Int, segments: [Segment], audioOffset: Int, audioLength: Int) {
            self.sampleRate = sampleRate
            self.segments = segments
            self.audioOffset = audioOffset
            self.audioLength = audioLength
        }

        public var duration: Double { Double(segments.reduce(0) { $0 + $1.samples }) / Double(sampleRate) }
    }

    /// The segments of `data` (an MP3 file), of about `target` seconds each, cut at frame
    /// boundaries; their sample counts are what the decoder plays, so they add up to the
    /// song's true duration (see `MP3Scanner`).
    public static func index(_ data: Data, target: Double = 6) throws(AudioError.Reason) -> Index {
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            Result { () throws(AudioError.Reason) -> Index in try MP3Scanner.scan(bytes, segmentTarget: target).index }
        }.get()
    }

    /// The ID3 tag every packed-audio segment starts with: a PRIV frame owned by
    /// `com.apple.streaming.transportStreamTimestamp` holding the 33-bit MPEG-2 PTS
    /// (90 kHz) of the segment's first sample, big-endian in 8 bytes.
    public static func timestampTag(startSample: Int, sampleRate: Int) -> [UInt8] {
        let pts = UInt64((Double(startSample) * 90_000 / Double(sampleRate)).rounded()) & 0x1_FFFF_FFFF
        let owner = Array("com.apple.streaming.transportStreamTimestamp".utf8) + [0]
        let payload = owner + (0..<8).reversed().map { UInt8((pts >> (UInt64($0) * 8)) & 0xFF) }
        func syncsafe(_ n: Int) -> [UInt8] { [UInt8((n >> 21) & 0x7F), UInt8((n >> 14) & 0x7F), UInt8((n >> 7) & 0x7F), UInt8(n & 0x7F)] }
        let frame = Array("PRIV".utf8) + syncsafe(payload.count) + [0, 0] + payload
        return Array("ID3".utf8) + [4, 0, 0] + syncsafe(frame.count) + frame
    }

    /// A multivariant playlist of one variant: its peak bit rate and its codec (RFC 6381:
    /// "fLaC" for FLAC in fMP4, "mp4a.40.34" for MP3).
    public static func multivariant(codecs: String, bandwidth: Int, media: String) -> String {
        ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS",
         "#EXT-X-STREAM-INF:BANDWIDTH=\(max(1, bandwidth)),CODECS=\"\(codecs)\"", media].joined(separator: "\n") + "\n"
    }

    /// The media playlist: VOD, every segment with its exact duration. `map` names the
    /// initialization segment of fragmented MP4 segments (`EXT-X-MAP`, version 7).
    public static func playlist(_ index: Index, map: String? = nil, uri: (Int) -> String) -> String {
        let durations = index.segments.map { Double($0.samples) / Double(index.sampleRate) }
        let target = Int((durations.max() ?? 0).rounded(.up))
        var lines = ["#EXTM3U", "#EXT-X-VERSION:\(map == nil ? 3 : 7)", "#EXT-X-TARGETDURATION:\(max(1, target))",
                     "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-INDEPENDENT-SEGMENTS"]
        if let map { lines.append("#EXT-X-MAP:URI=\"\(map)\"") }
        for (i, d) in durations.enumerated() {
            lines.append(String(format: "#EXTINF:%.5f,", d))
            lines.append(uri(i))
        }
        lines.append("#EXT-X-ENDLIST")
        return lines.joined(separator: "\n") + "\n"
    }
}
