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
    /// A version or revision of 0xFF is no tag, as libmpg123 sees it.
    public static func id3v2Size(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard bytes.count >= 10, bytes[0] == 0x49, bytes[1] == 0x44, bytes[2] == 0x33,
              bytes[3] != 0xFF, bytes[4] != 0xFF,
              (bytes[6] | bytes[7] | bytes[8] | bytes[9]) & 0x80 == 0 else { return 0 }
        let size = Int(bytes[6]) << 21 | Int(bytes[7]) << 14 | Int(bytes[8]) << 7 | Int(bytes[9])
        let footer = bytes[5] & 0x10 != 0 ? 10 : 0
        return 10 + size + footer
    }

    /// ID3v2 tags one after another before the audio that a file may have. Editors that
    /// add a tag in front of another make two, and eight leaves room for worse. libmpg123
    /// skips any number, but a run of 100,000 empty headers is a 1 MB attack on whoever
    /// walks it, not a song.
    public static let maxLeadingTags = 8

    /// Bytes of ID3v2 tags before the audio that a file may have. A tag is kept whole
    /// (the walk's head, then libmpg123) until the audio starts, so a header that claims
    /// 256 MB would hold the whole upload in memory to learn, at its end, that there was
    /// no audio; real tags, covers included, are rarely more than a few megabytes.
    public static let maxTagBytes = 64 << 20

    static func tagsTooLarge(_ bytes: Int) -> AudioError.Reason {
        .decode("its ID3v2 tags claim \(bytes) bytes; at most \(maxTagBytes) are read before the audio")
    }

    /// Frames libmpg123 keeps in its tag lists (see `keptFrames`) that the leading tags
    /// may hold. Real tags hold tens; libmpg123's cost grows with the square of the count.
    public static let maxKeptFrames = 256

    /// The longest description (of a comment, lyrics, user text or picture) the leading
    /// tags may hold. libmpg123 compares a new frame's whole description with those of the
    /// frames it kept, so 256 descriptions of 800 KB that differ in their last byte would
    /// cost it 26 GB of comparisons; real descriptions are names ("iTunNORM", "Front cover").
    public static let maxDescriptionBytes = 4096

    static func tooManyTags() -> AudioError.Reason {
        .decode("more than \(maxLeadingTags) ID3v2 tags in a row before the audio")
    }

    /// What the leading tags hold that libmpg123's cost depends on (see `keptFrames`).
    struct TagFrames {
        var kept = 0
        var longestDescription = 0

        static func + (a: TagFrames, b: TagFrames) -> TagFrames {
            TagFrames(kept: a.kept + b.kept, longestDescription: max(a.longestDescription, b.longestDescription))
        }

        /// Why libmpg123 is not given these tags, or nil when they are fine.
        var refusal: AudioError.Reason? {
            if kept > maxKeptFrames {
                return .decode("its ID3v2 tags hold more than \(maxKeptFrames) text, comment and picture frames")
            }
            if longestDescription > maxDescriptionBytes {
                return .decode("its ID3v2 tags hold a description of more than \(maxDescriptionBytes) bytes")
            }
            return nil
        }
    }

    /// The frames of the ID3v2 tag `tag` (the whole tag, header first) that libmpg123
    /// would keep in its lists, text frames (`T…`, `TXXX` included), comments, lyrics and
    /// pictures of a non-empty size, and the longest description among them.
    ///
    /// libmpg123 finds the entry a new frame replaces by going through the list it keeps
    /// (id3.c, `add_id3_text`, `add_id3_picture`), comparing ids and whole descriptions:
    /// n such frames cost it n²/2 comparisons, and 60,000 comments in a 1.4 MB tag take it
    /// 6 s. This walk steps from frame header to frame header as libmpg123's does
    /// (`parse_new_id3`: the same skipped tags, extended header, frame-id characters, size
    /// rules and stops), so it never counts fewer frames than libmpg123 reads; it counts
    /// frames libmpg123 would then skip for their flags, which only errs on the safe side.
    /// Each frame costs one step, and a description at most `maxDescriptionBytes` more; the
    /// walk ends as soon as the tag is known to be refused.
    static func keptFrames(inTag tag: UnsafeRawBufferPointer) -> TagFrames {
        var found = TagFrames()
        guard tag.count >= 10 else { return found }
        let major = tag[3], flags = tag[5]
        // Tags libmpg123 does not parse at all.
        if flags & 0x0F != 0 || major < 2 || major > 4 || (major == 2 && flags & 0x40 != 0) { return found }
        let length = min(tag.count - 10, Int(tag[6]) << 21 | Int(tag[7]) << 14 | Int(tag[8]) << 7 | Int(tag[9]))
        guard length >= 10 else { return found }
        let data = UnsafeRawBufferPointer(rebasing: tag[10..<(10 + length)])
        func u32(_ i: Int) -> Int { Int(data[i]) << 24 | Int(data[i + 1]) << 16 | Int(data[i + 2]) << 8 | Int(data[i + 3]) }
        func synchsafe(_ i: Int) -> Int? {
            (data[i] | data[i + 1] | data[i + 2] | data[i + 3]) & 0x80 != 0 ? nil
                : Int(data[i]) << 21 | Int(data[i + 1]) << 14 | Int(data[i + 2]) << 7 | Int(data[i + 3])
        }
        var pos = 0
        if major > 2, flags & 0x40 != 0 {
            // The extended header: v2.3 gives its size less its own 4 bytes, v2.4 in full.
            guard let ext = major == 3 ? u32(0) : synchsafe(0), ext >= 6, ext < length else { return found }
            pos = major == 3 ? ext + 4 : ext
            guard pos < length else { return found }
        }
        let idBytes = major > 2 ? 4 : 3
        let headerBytes = major > 2 ? 10 : 6
        while length >= pos + headerBytes {
            // Padding, or anything that is not a frame id, ends the frames.
            for i in 0..<idBytes {
                let c = data[pos + i]
                guard (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) else { return found }
            }
            let size: Int
            switch major {
            case 2: size = Int(data[pos + 3]) << 16 | Int(data[pos + 4]) << 8 | Int(data[pos + 5])
            case 3: size = u32(pos + 4)
            default:
                guard let s = synchsafe(pos + 4) else { return found }
                size = s
            }
            var id = (data[pos], data[pos + 1], data[pos + 2], idBytes == 4 ? data[pos + 3] : 0x20)
            if idBytes == 3 {
                // v2.2's COM and TXX, as libmpg123 renames them; its other T.. stay texts.
                if id == (0x43, 0x4F, 0x4D, 0x20) { id.3 = 0x4D }
                if id == (0x54, 0x58, 0x58, 0x20) { id.3 = 0x58 }
            }
            pos += headerBytes
            guard length - pos >= size else { return found }
            let body = UnsafeRawBufferPointer(rebasing: data[pos..<(pos + size)])
            pos += size
            guard size > 0 else { continue }
            let comment = id == (0x43, 0x4F, 0x4D, 0x4D) || id == (0x55, 0x53, 0x4C, 0x54)  // COMM, USLT
            let userText = id == (0x54, 0x58, 0x58, 0x58)  // TXXX
            let picture = id == (0x41, 0x50, 0x49, 0x43) && idBytes == 4  // APIC (v2.2's PIC is not read)
            guard id.0 == 0x54 || comment || picture else { continue }
            found.kept += 1
            // Where the description starts: after the encoding (and a comment's language,
            // and a picture's MIME type and picture type).
            var start: Int?
            if comment {
                start = 4
            } else if userText {
                start = 1
            } else if picture, let nul = body.dropFirst().firstIndex(of: 0) {
                start = nul + 2
            }
            if let start, start < body.count {
                found.longestDescription = max(found.longestDescription, descriptionLength(body, from: start))
            }
            if found.refusal != nil { return found }
        }
        return found
    }

    /// Bytes of the description that starts at `start` in a frame whose first byte is its
    /// text encoding, up to its terminator (one zero byte, or two aligned in UTF-16), as
    /// libmpg123's `next_text` finds it; a description that does not end in its frame is
    /// not kept (0). Looks at no more than `maxDescriptionBytes` and a terminator.
    private static func descriptionLength(_ frame: UnsafeRawBufferPointer, from start: Int) -> Int {
        let width = frame[0] == 1 || frame[0] == 2 ? 2 : 1
        let limit = min(frame.count, start + maxDescriptionBytes + 2 * width)
        var i = start
        while i + width <= limit {
            if frame[i] == 0 && (width == 1 || frame[i + 1] == 0) { return i - start }
            i += width
        }
        return limit < frame.count ? limit - start : 0
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
        // Vorbis and Opus never reach this probe (`AudioFiles.kind`): another codec in Ogg.
        if hasPrefix("OggS") {
            let codec = hasPrefix("Speex", at: 28) ? "Speex" : hasPrefix("FLAC", at: 29) ? "FLAC" : "a codec other than Vorbis or Opus"
            throw .otherFormat("an Ogg file of \(codec), which Musit does not play")
        }
        if hasPrefix("ftyp", at: 4) { throw .otherFormat("an MP4/M4A file") }

        // Several ID3v2 tags may follow each other, a few of them (`maxLeadingTags`).
        var tagEnd = 0
        var tags = 0
        var frames = TagFrames()
        while tagEnd < bytes.count {
            let size = id3v2Size(UnsafeRawBufferPointer(rebasing: bytes[tagEnd...]))
            if size == 0 { break }
            tags += 1
            if tags > maxLeadingTags { throw tooManyTags() }
            if tagEnd + size > maxTagBytes { throw tagsTooLarge(tagEnd + size) }
            if tagEnd + size <= bytes.count {
                frames = frames + keptFrames(inTag: UnsafeRawBufferPointer(rebasing: bytes[tagEnd..<(tagEnd + size)]))
                if let refusal = frames.refusal { throw refusal }
            }
            tagEnd += size
        }
        if tagEnd > fileSize { throw .decode("its ID3v2 tags claim \(tagEnd) bytes; the file holds \(fileSize)") }
        if tagEnd == fileSize { throw .noAudioFrames(tagOnly: true) }

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
