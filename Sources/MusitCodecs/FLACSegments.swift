import Foundation

/// FLAC in fragmented MP4 for HLS (RFC 8216 §3.3; "Encapsulation of FLAC in ISO Base Media
/// File Format"): an initialization segment whose `fLaC` sample entry carries STREAMINFO in
/// a `dfLa` box, and media segments of whole FLAC frames, each frame one sample. The frames
/// are the file's bytes, untouched, so a client decodes exactly what the file holds.
public enum FLACSegments {
    /// One FLAC frame of a file: where its bytes are, and the samples (per channel) it holds.
    public struct Frame: Equatable, Sendable {
        public var offset: Int
        public var length: Int
        public var samples: Int

        public init(offset: Int, length: Int, samples: Int) {
            self.offset = offset
            self.length = length
            self.samples = samples
        }
    }

    /// Segments of about `target` seconds from the file's frames, in order, as libFLAC read
    /// them (`FLACTrack.frames`).
    public static func index(frames: [Frame], sampleRate: Int, fileSize: Int,
                             target: Double = 6) -> HLSSegmenter.Index {
        var segments: [HLSSegmenter.Segment] = []
        var current: HLSSegmenter.Segment?
        var start = 0
        let limit = Int(target * Double(sampleRate))
        for f in frames {
            if let c = current, c.samples > 0, c.samples + f.samples > limit {
                segments.append(c)
                start = c.startSample + c.samples
                current = nil
            }
            var c = current ?? HLSSegmenter.Segment(offset: f.offset, length: 0, samples: 0, startSample: start, frameSizes: [],
                                                    frameSamples: [])
            c.length = f.offset + f.length - c.offset
            c.samples += f.samples
            c.frameSizes!.append(f.length)
            c.frameSamples!.append(f.samples)
            current = c
        }
        if let current { segments.append(current) }
        let audioOffset = frames.first?.offset ?? 0
        let audioEnd = frames.last.map { $0.offset + $0.length } ?? 0
        return HLSSegmenter.Index(sampleRate: sampleRate, segments: segments, audioOffset: audioOffset,
                                  audioLength: min(fileSize, audioEnd) - audioOffset)
    }

    /// The 34 bytes of the STREAMINFO block of the FLAC file at `path` (after an ID3v2 tag
    /// some taggers put in front). Blocking.
    public static func streamInfo(path: String) -> [UInt8]? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard var head = try? handle.read(upToCount: 10).map({ [UInt8]($0) }), head.count == 10 else { return nil }
        var start = 0
        if head.starts(with: Array("ID3".utf8)), head[6..<10].allSatisfy({ $0 < 0x80 }) {
            start = 10 + (Int(head[6]) << 21 | Int(head[7]) << 14 | Int(head[8]) << 7 | Int(head[9]))
            if head[5] & 0x10 != 0 { start += 10 }
        }
        guard (try? handle.seek(toOffset: UInt64(start))) != nil,
              let block = try? handle.read(upToCount: 42).map({ [UInt8]($0) }), block.count == 42 else { return nil }
        head = block
        // "fLaC", then STREAMINFO's header (type 0, length 34), then its body.
        guard head.starts(with: Array("fLaC".utf8)), head[4] & 0x7F == 0, head[5] == 0, head[6] == 0, head[7] == 34 else { return nil }
        return Array(head[8..<42])
    }

    /// The initialization segment: `ftyp` and a `moov` of one audio track at the stream's
    /// rate, with `streamInfo` (the 34 bytes of the STREAMINFO block) in its `dfLa` box.
    public static func initSegment(streamInfo: [UInt8], sampleRate: Int, channels: Int, bitsPerSample: Int) -> [UInt8] {
        var out = box("ftyp", Array("iso6".utf8) + u32(0) + Array("isom".utf8) + Array("iso6".utf8) + Array("mp41".utf8))
        let mvhd = fullBox("mvhd", 0, 0, u32(0) + u32(0) + u32(1000) + u32(0) + u32(0x0001_0000) + u16(0x0100) + u16(0)
            + u32(0) + u32(0) + matrix + [UInt8](repeating: 0, count: 24) + u32(2))
        let tkhd = fullBox("tkhd", 0, 3, u32(0) + u32(0) + u32(1) + u32(0) + u32(0) + u32(0) + u32(0) + u16(0) + u16(0)
            + u16(0x0100) + u16(0) + matrix + u32(0) + u32(0))
        let mdhd = fullBox("mdhd", 0, 0, u32(0) + u32(0) + u32(UInt32(sampleRate)) + u32(0) + u16(0x55C4) + u16(0))
        let hdlr = fullBox("hdlr", 0, 0, u32(0) + Array("soun".utf8) + u32(0) + u32(0) + u32(0) + Array("Musit\u{0}".utf8))
        let smhd = fullBox("smhd", 0, 0, u16(0) + u16(0))
        let dinf = box("dinf", fullBox("dref", 0, 0, u32(1) + fullBox("url ", 0, 1, [])))
        // STREAMINFO as the only (so the last) metadata block: type 0 with the last-block flag.
        let dfLa = fullBox("dfLa", 0, 0, [0x80, 0, 0, UInt8(streamInfo.count)] + streamInfo)
        // AudioSampleEntry: the rate in 16.16 when it fits (the timescale is exact either way).
        let rate = sampleRate <= 0xFFFF ? UInt32(sampleRate) << 16 : 0
        let entry = box("fLaC", [UInt8](repeating: 0, count: 6) + u16(1) + u32(0) + u32(0) + u16(UInt16(channels))
            + u16(UInt16(min(bitsPerSample, 32))) + u16(0) + u16(0) + u32(rate) + dfLa)
        let stbl = box("stbl", fullBox("stsd", 0, 0, u32(1) + entry) + fullBox("stts", 0, 0, u32(0))
            + fullBox("stsc", 0, 0, u32(0)) + fullBox("stsz", 0, 0, u32(0) + u32(0)) + fullBox("stco", 0, 0, u32(0)))
        let trak = box("trak", tkhd + box("mdia", mdhd + hdlr + box("minf", smhd + dinf + stbl)))
        let mvex = box("mvex", fullBox("trex", 0, 0, u32(1) + u32(1) + u32(0) + u32(0) + u32(0)))
        out += box("moov", mvhd + trak + mvex)
        return out
    }

    /// A media segment: `moof` (sequence `number + 1`, decode time the segment's first
    /// sample, one `trun` entry per frame) and `mdat` with the frames, `frames` being the
    /// segment's bytes of the file.
    public static func mediaSegment(_ segment: HLSSegmenter.Segment, number: Int, frames: [UInt8]) -> [UInt8] {
        let sizes = segment.frameSizes ?? [], durations = segment.frameSamples ?? []
        let mfhd = fullBox("mfhd", 0, 0, u32(UInt32(number + 1)))
        // default-base-is-moof: the data offset counts from the moof's first byte.
        let tfhd = fullBox("tfhd", 0, 0x02_0000, u32(1))
        let tfdt = fullBox("tfdt", 1, 0, u64(UInt64(segment.startSample)))
        func trun(dataOffset: UInt32) -> [UInt8] {
            var body = u32(UInt32(sizes.count)) + u32(dataOffset)
            for (d, s) in zip(durations, sizes) { body += u32(UInt32(d)) + u32(UInt32(s)) }
            // data-offset, sample-duration and sample-size present.
            return fullBox("trun", 0, 0x0301, body)
        }
        // The moof's size does not depend on the offset's value: measure it, then write it.
        let moofSize = box("moof", mfhd + box("traf", tfhd + tfdt + trun(dataOffset: 0))).count
        let moof = box("moof", mfhd + box("traf", tfhd + tfdt + trun(dataOffset: UInt32(moofSize + 8))))
        return moof + box("mdat", frames)
    }

    private static let matrix: [UInt8] = u32(0x0001_0000) + u32(0) + u32(0) + u32(0) + u32(0x0001_0000) + u32(0) + u32(0)
        + u32(0) + u32(0x4000_0000)

    private static func box(_ type: String, _ body: [UInt8]) -> [UInt8] {
        u32(UInt32(8 + body.count)) + Array(type.utf8) + body
    }

    private static func fullBox(_ type: String, _ version: UInt8, _ flags: UInt32, _ body: [UInt8]) -> [UInt8] {
        box(type, [version, UInt8(flags >> 16 & 0xFF), UInt8(flags >> 8 & 0xFF), UInt8(flags & 0xFF)] + body)
    }

    private static func u16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    private static func u32(_ v: UInt32) -> [UInt8] { (0..<4).reversed().map { UInt8(v >> (UInt32($0) * 8) & 0xFF) } }
    private static func u64(_ v: UInt64) -> [UInt8] { (0..<8).reversed().map { UInt8(v >> (UInt64($0) * 8) & 0xFF) } }
}
