import Foundation

/// One pass over an MP3's bytes, as they arrive (an upload) or as a file is read (the
/// player): the frames are walked, the Xing/Info and LAME headers read, and the exact
/// number of samples the decoder will play is computed, with the HLS segments on the way.
///
/// Why walk every frame: libmpg123's length is exact only with an Info header and
/// otherwise an estimate from the file size (a large cover inflates it), and an Info
/// header is only a claim (a cut file keeps it). The frames are the truth.
///
/// The samples played are those of libmpg123 in gapless mode: every audio frame decodes
/// to `samplesPerFrame` samples, the Info frame to none; with a LAME header the first
/// `delay + 529` and the samples past `frames × samplesPerFrame − padding + 529` are cut
/// (529 is the decoder's own delay); with an Info header and no LAME data, the first 529.
///
/// One rule for the player and the server (`verdict`): no audio frames, no samples left
/// after the trims, or fewer frames than the Info header promises is refused, each with
/// its reason; so are leading ID3v2 tags no real file has, which would cost libmpg123 (or
/// this walk) far more than their bytes (more than `MP3Probe.maxLeadingTags` in a row, more
/// than `MP3Probe.maxKeptFrames` frames for libmpg123's lists or a description longer than
/// `MP3Probe.maxDescriptionBytes`, more than `MP3Probe.maxTagBytes` in all, a size past the
/// end of the file); anything else plays, for exactly `samples` samples.
///
/// The walk costs the same per byte whatever the bytes claim: a byte is looked at a few
/// times at most (tag and frame headers, the 64 KiB searched for the first frame), and
/// nothing is walked again from the start as more bytes arrive.
public struct MP3Scanner: Sendable {
    /// What the walk found.
    public struct Summary: Sendable, Equatable {
        public var sampleRate: Int
        public var channels: Int
        /// Offset of the first frame (the Info frame when there is one).
        public var firstFrameOffset: Int
        /// Audio frames walked (the Info frame not counted).
        public var audioFrames: Int
        public var samplesPerFrame: Int
        /// Frames the Info header promises, when it has a count.
        public var promisedFrames: Int?
        /// LAME encoder delay and padding, when the header has them.
        public var encoderDelay: Int?
        public var encoderPadding: Int?
        /// Samples per channel the decoder plays: the true length.
        public var samples: Int64
        /// The HLS segments, whose sample counts add up to `samples`.
        public var index: HLSSegmenter.Index
        /// The tag and the first frames (for the decoder to read tags and format from),
        /// and the last 128 bytes (an ID3v1 tag).
        public var head: [UInt8]
        public var tail: [UInt8]
        /// A file that ends before its Info header's count (only when the scan tolerates
        /// it): what it has and what was promised, in seconds. `samples` is what it has.
        public var truncation: (played: Double, expected: Double)? {
            get { truncationSeconds.map { ($0[0], $0[1]) } }
            set { truncationSeconds = newValue.map { [$0.played, $0.expected] } }
        }
        var truncationSeconds: [Double]?

        public var duration: Double { Double(samples) / Double(sampleRate) }
    }

    /// Bytes of audio kept after the ID3v2 tag for the probe and the decoder.
    static let headAudioBytes = 64 * 1024
    /// Samples the decoder delays its output by (libmpg123's GAPLESS_DELAY).
    static let decoderDelay = 529

    private let segmentTarget: Double
    private var head: [UInt8] = []
    private var headNeeded = 10
    private var tagEnd: Int?
    /// Where the next leading tag may start, and how many came before it: the tags are
    /// walked on from here as bytes come, never again from the start.
    private var tagScan = 0
    private var tags = 0
    private var tail: [UInt8] = []
    private var position = 0
    private var started = false
    private var stopped = false
    private var probeFailure: AudioError.Reason?

    // The walk, once the first frame is known.
    private var reference: MP3FrameHeader?
    private var firstFrameOffset = 0
    private var nextFrame = 0
    private var carry: [UInt8] = []
    private var frames: [(offset: Int, length: Int, samples: Int)] = []
    /// Without segments: the counts, and the first and last frame (only the last can be
    /// incomplete when the stream ends).
    private var frameCount = 0
    private var audioCount = 0
    private var firstFrame: (offset: Int, length: Int, samples: Int)?
    private var lastFrame: (offset: Int, length: Int, samples: Int)?
    private var frameBeforeLast: (offset: Int, length: Int, samples: Int)?
    private var info: (frames: Int?, delay: Int?, padding: Int?)?

    /// A file cut short (fewer frames than its Info header counts) is refused unless this is
    /// set; then it is summed up as what it has, with `Summary.truncation` saying so. The
    /// server refuses such uploads; a player plays what is there, as mpg123 and cmus do.
    public var toleratesTruncation = false

    /// The HLS segments (the server's) need every frame's place; a player needs only the
    /// counts. Without them the walk keeps no table: a 100 MB file's 96,000 frames held
    /// 2.3 MB of it (4.6 MB while the array grew) for nothing.
    public var keepsSegments = true

    public init(segmentTarget: Double = 6) {
        self.segmentTarget = segmentTarget
        head.reserveCapacity(16 * 1024)
    }

    /// Takes the next bytes of the stream.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        let start = position
        position += bytes.count
        keepTail(bytes)
        var used = 0
        // Until the head is complete (the tags and 64 KiB of audio), bytes go to it; the
        // head is then probed and walked, and the rest of the stream is walked as it comes.
        while !started, used < bytes.count {
            let take = min(bytes.count - used, max(0, headNeeded - head.count))
            head.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[used..<(used + take)]))
            used += take
            settleHead(final: false)
            if take == 0 && !started { break }
        }
        if started, used < bytes.count {
            walk(UnsafeRawBufferPointer(rebasing: bytes[used...]), at: start + used)
        }
    }

    /// The stream has ended: the summary, or why it is not playable audio.
    public mutating func finish() throws(AudioError.Reason) -> Summary {
        if !started { settleHead(final: true) }
        if let probeFailure { throw probeFailure }
        guard let reference else { throw .noAudioFrames(tagOnly: (tagEnd ?? 0) > 0) }
        // A frame whose bytes did not all arrive is not played (only the last one can be
        // such: the walk reads a header only once the frame before it has ended).
        let audio: Int
        if keepsSegments {
            while let last = frames.last, last.offset + last.length > position { frames.removeLast() }
            audio = frames.reduce(0) { $0 + ($1.samples > 0 ? 1 : 0) }
        } else {
            if let last = lastFrame, last.offset + last.length > position {
                audioCount -= last.samples > 0 ? 1 : 0
                frameCount -= 1
                lastFrame = frameBeforeLast
                if frameCount == 0 { firstFrame = nil }
            }
            audio = audioCount
        }
        let spf = reference.samplesPerFrame
        guard audio > 0 else { throw .noSamples }
        let raw = audio * spf
        var begin = 0
        var end = raw
        var truncation: (played: Double, expected: Double)?
        if let info {
            begin = Self.decoderDelay + (info.delay ?? 0)
            if let promised = info.frames, audio + 1 < promised {
                let rate = Double(reference.sampleRate)
                let expected = promised * spf - (info.delay ?? 0) - (info.padding ?? 0)
                let played = Double(max(0, raw - begin)) / rate
                guard toleratesTruncation else { throw .truncated(playedSeconds: played, expectedSeconds: Double(expected) / rate) }
                // The padding belongs to the end that is missing: every frame there plays.
                truncation = (played, Double(expected) / rate)
            } else if let padding = info.padding, let promised = info.frames {
                end = min(raw, promised * spf - padding + Self.decoderDelay)
            }
        }
        let samples = max(0, end - begin)
        guard samples > 0 else { throw .noSamples }
        var summary = Summary(sampleRate: reference.sampleRate, channels: reference.channels, firstFrameOffset: firstFrameOffset,
                              audioFrames: audio, samplesPerFrame: spf, promisedFrames: info?.frames, encoderDelay: info?.delay,
                              encoderPadding: info?.padding, samples: Int64(samples),
                              index: segments(begin: begin, end: end), head: head, tail: Array(tail.suffix(128)))
        summary.truncation = truncation
        return summary
    }

    /// Why the stream is already known not to play (its tags, or no frames where the audio
    /// must start), before it ends; nil while it may still play. `finish()` throws the same.
    public var refusal: AudioError.Reason? { probeFailure }

    // MARK: - Head: tags, probe, Info header

    private mutating func settleHead(final: Bool) {
        if tagEnd == nil {
            // Chained ID3v2 tags: each header says how far the next one is. The walk goes on
            // from the last tag it found: walking again from the first on every call, 10
            // bytes further each time, made a run of 100,000 empty headers cost 5·10⁹ steps.
            while head.count >= tagScan + 10 {
                let size = head.withUnsafeBytes { MP3Probe.id3v2Size(UnsafeRawBufferPointer(rebasing: $0[tagScan...])) }
                if size == 0 { break }
                tags += 1
                if tags > MP3Probe.maxLeadingTags {
                    refuse(MP3Probe.tooManyTags())
                    return
                }
                if tagScan + size > MP3Probe.maxTagBytes {
                    refuse(MP3Probe.tagsTooLarge(tagScan + size))
                    return
                }
                tagScan += size
            }
            if head.count >= tagScan + 10 || final {
                tagEnd = tagScan
                headNeeded = tagScan + Self.headAudioBytes
            } else {
                headNeeded = tagScan + 10
                return
            }
            if head.count < headNeeded && !final { return }
        }
        guard head.count >= headNeeded || final else { return }
        started = true
        // While the stream goes on, its size is unknown: a size no frame can end at.
        let size = final ? position : Int.max / 2
        let result = head.withUnsafeBytes { b in
            Result { () throws(AudioError.Reason) -> MP3Probe.Result in try MP3Probe.probe(b, fileSize: size) }
        }
        switch result {
        case .success(let probe):
            reference = probe.header
            firstFrameOffset = probe.firstFrameOffset
            nextFrame = probe.firstFrameOffset
            info = head.withUnsafeBytes { Self.infoHeader($0, at: probe.firstFrameOffset, header: probe.header) }
            let walked = head  // a copy: `walk` mutates self
            walked.withUnsafeBytes { walk($0, at: 0) }
        case .failure(let reason):
            refuse(reason)
        }
    }

    /// Refused for good: the rest of the stream is only counted, and the head let go.
    private mutating func refuse(_ reason: AudioError.Reason) {
        probeFailure = reason
        started = true
        stopped = true
        head = []
    }

    /// The Xing/Info header of the first frame (frame count), with the LAME extension's
    /// encoder delay and padding; nil when the first frame is audio.
    static func infoHeader(_ b: UnsafeRawBufferPointer, at offset: Int, header: MP3FrameHeader)
        -> (frames: Int?, delay: Int?, padding: Int?)? {
        // The side information's size: where the Xing header starts.
        let side: Int
        switch (header.version, header.channels) {
        case (.mpeg1, 1): side = 17
        case (.mpeg1, _): side = 32
        case (_, 1): side = 9
        default: side = 17
        }
        let x = offset + 4 + side
        func u32(_ i: Int) -> Int { (Int(b[i]) << 24) | (Int(b[i + 1]) << 16) | (Int(b[i + 2]) << 8) | Int(b[i + 3]) }
        let frameEnd = min(b.count, offset + header.frameLength)
        if x + 8 <= frameEnd {
            let tag = (b[x], b[x + 1], b[x + 2], b[x + 3])
            if tag == (0x58, 0x69, 0x6E, 0x67) || tag == (0x49, 0x6E, 0x66, 0x6F) {  // "Xing", "Info"
                let flags = u32(x + 4)
                var i = x + 8
                var count: Int?
                if flags & 1 != 0, i + 4 <= frameEnd { count = u32(i); i += 4 }
                if flags & 2 != 0 { i += 4 }
                if flags & 4 != 0 { i += 100 }
                if flags & 8 != 0 { i += 4 }
                // The LAME extension: 9 bytes of encoder name, then at +21 twelve bits of
                // delay and twelve of padding.
                var delay: Int?, padding: Int?
                if i + 24 <= frameEnd, b[i] != 0 {
                    let v = (Int(b[i + 21]) << 16) | (Int(b[i + 22]) << 8) | Int(b[i + 23])
                    delay = v >> 12
                    padding = v & 0xFFF
                }
                return (count, delay, padding)
            }
        }
        // Fraunhofer's VBRI header sits 32 bytes after the frame header.
        let v = offset + 36
        if v + 18 <= frameEnd, b[v] == 0x56, b[v + 1] == 0x42, b[v + 2] == 0x52, b[v + 3] == 0x49 {
            return (u32(v + 14), nil, nil)
        }
        return nil
    }

    // MARK: - The walk

    /// Keeps at least the last 128 bytes (`finish` takes them). Small pieces are trimmed in
    /// batches: trimming to 128 after each one moved 128 bytes for every byte of a stream
    /// that arrives a few bytes at a time.
    private mutating func keepTail(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count >= 128 {
            tail.removeAll(keepingCapacity: true)
            tail.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - 128)...]))
        } else {
            tail.append(contentsOf: bytes)
            if tail.count >= 1024 { tail.removeFirst(tail.count - 128) }
        }
    }

    /// Reads the frame headers that start in `bytes` (which begin at stream offset `base`).
    private mutating func walk(_ bytes: UnsafeRawBufferPointer, at base: Int) {
        guard let reference, !stopped else { return }
        let end = base + bytes.count
        while !stopped {
            // The header may straddle the previous chunk and this one.
            let headerStart = nextFrame
            guard headerStart + 4 <= end else {
                // The header's first bytes are kept for the next piece; when it began in an
                // earlier piece, these bytes go after the ones carried (pieces of a byte or
                // two, as a form's parser hands them on, were lost here).
                if headerStart >= base, headerStart < end {
                    carry = Array(bytes[(headerStart - base)...])
                } else if headerStart < base {
                    carry.append(contentsOf: bytes)
                }
                return
            }
            // Read in place (no array per frame: a megabyte of 24-byte frames is 43,000 of them).
            let carried = carry
            func byte(_ k: Int) -> UInt8? {
                let at = headerStart + k
                if at >= base { return bytes[at - base] }
                let c = at - (base - carried.count)
                return c >= 0 && c < carried.count ? carried[c] : nil
            }
            guard let b0 = byte(0), let b1 = byte(1), let b2 = byte(2), let b3 = byte(3) else {
                stopped = true
                return
            }
            if !carry.isEmpty { carry = [] }
            guard let header = MP3FrameHeader(b0, b1, b2, b3), header.isConsistent(with: reference) else {
                stopped = true
                return
            }
            let isInfo = frameCount == 0 && info != nil
            let frame = (offset: headerStart, length: header.frameLength, samples: isInfo ? 0 : header.samplesPerFrame)
            frameCount += 1
            if keepsSegments {
                frames.append(frame)
            } else {
                if firstFrame == nil { firstFrame = frame }
                frameBeforeLast = lastFrame
                lastFrame = frame
                if !isInfo { audioCount += 1 }
            }
            nextFrame = headerStart + header.frameLength
        }
    }

    /// Groups the frames into segments of about `segmentTarget` seconds; each segment's
    /// samples are those of its frames the trims leave (`begin..<end` of the decoded run).
    private func segments(begin: Int, end: Int) -> HLSSegmenter.Index {
        guard let reference, let first = frames.first ?? firstFrame, let last = frames.last ?? lastFrame else {
            return HLSSegmenter.Index(sampleRate: 44100, segments: [], audioOffset: 0, audioLength: 0)
        }
        guard keepsSegments else {
            return HLSSegmenter.Index(sampleRate: reference.sampleRate, segments: [], audioOffset: first.offset,
                                      audioLength: last.offset + last.length - first.offset)
        }
        let target = Int(segmentTarget * Double(reference.sampleRate))
        var segments: [HLSSegmenter.Segment] = []
        var segStart = first.offset, rawStart = 0, raw = 0, played = 0
        func close(upTo offset: Int) -> HLSSegmenter.Segment {
            let kept = max(0, min(raw, end) - max(rawStart, begin))
            defer { played += kept }
            return HLSSegmenter.Segment(offset: segStart, length: offset - segStart, samples: kept, startSample: played)
        }
        for f in frames {
            if raw - rawStart >= target {
                segments.append(close(upTo: f.offset))
                segStart = f.offset
                rawStart = raw
            }
            raw += f.samples
        }
        segments.append(close(upTo: last.offset + last.length))
        return HLSSegmenter.Index(sampleRate: reference.sampleRate, segments: segments, audioOffset: first.offset,
                                  audioLength: last.offset + last.length - first.offset)
    }
}

extension MP3Scanner {
    /// Scans a whole file, reading it in large sequential chunks (call off the cooperative pool).
    public static func scan(fd: Int32, segmentTarget: Double = 6, toleratingTruncation: Bool = false,
                            keepingSegments: Bool = true) throws(AudioError.Reason) -> Summary {
        var scanner = MP3Scanner(segmentTarget: segmentTarget)
        scanner.toleratesTruncation = toleratingTruncation
        scanner.keepsSegments = keepingSegments
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        var offset = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { b -> Int in
                while true {
                    let r = pread(fd, b.baseAddress!, b.count, off_t(offset))
                    if r < 0 && errno == EINTR { continue }
                    return r
                }
            }
            if n < 0 { throw .unreadable(errnoString(errno)) }
            if n == 0 { break }
            buffer.withUnsafeBytes { scanner.consume(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += n
            // Refused already (its tags, no frames where the audio must start): the rest
            // of the file would change nothing.
            if scanner.refusal != nil { break }
        }
        if offset == 0 { throw .empty }
        return try scanner.finish()
    }

    /// Scans bytes held in memory.
    public static func scan(_ bytes: UnsafeRawBufferPointer, segmentTarget: Double = 6) throws(AudioError.Reason) -> Summary {
        if bytes.isEmpty { throw .empty }
        var scanner = MP3Scanner(segmentTarget: segmentTarget)
        scanner.consume(bytes)
        return try scanner.finish()
    }
}

extension MP3Scanner.Summary {
    /// Tags, cover and format, read by libmpg123 from the head the walk kept (the ID3v2
    /// tag and the first frames), with an ID3v1 tag from the tail; the duration is the
    /// walk's. The decoder must also play samples from those frames: a stream whose
    /// headers look right but whose frames decode to nothing is refused here.
    public func readMetadata() throws(AudioError.Reason) -> TrackMetadata {
        let decoder = try MP3Decoder()
        try head.withUnsafeBytes { b in Result { () throws(AudioError.Reason) in try decoder.feed(b) } }.get()
        var out = [UInt8](repeating: 0, count: 32 * 1024)
        var meta: TrackMetadata?
        var played = 0
        decoding: while played == 0 {
            let step = try out.withUnsafeMutableBytes { b in
                Result { () throws(AudioError.Reason) in try decoder.decode(into: b) }
            }.get()
            switch step {
            case .newFormat(let format):
                if meta == nil {
                    meta = decoder.metadata()
                    meta?.format = format
                    // As the player does: a tag past the leading ones is not parsed.
                    decoder.skipLaterTags()
                }
            case .pcm(let n):
                played += n
            case .needMore:
                break decoding
            }
        }
        guard var meta, played > 0 else { throw .noSamples }
        if let v1 = ID3v1.parse(tail) { meta.fillMissing(from: v1) }
        meta.totalFrames = samples
        return meta
    }
}
