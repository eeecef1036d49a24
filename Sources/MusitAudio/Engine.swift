import Foundation
import MusitCodecs

/// The player's state machine. It lives on the audio thread only and is never shared.
///
/// Position bookkeeping: `written` counts frames handed to the device since it was
/// last (re)configured or flushed; `played = written - delay` is what has been heard.
/// Markers record at which device frame a track (or a seek within it) begins, so the
/// audible track and position follow the ear, not the decoder, across gapless joins.
final class Engine {
    private struct Loaded {
        let index: Int
        let track: Track
        let source: any PCMSource
        /// The ReplayGain factor for this track in the configured mode (1: none).
        let gain: Double
        /// The source, when its samples are wider than 16 bits.
        let wide: (any WidePCMSource)?

        init(index: Int, track: Track, source: any PCMSource, mode: ReplayGainMode) {
            self.index = index
            self.track = track
            self.source = source
            gain = source.metadata.gains.factor(mode)
            wide = source.format.sampleBits > 16 ? source as? any WidePCMSource : nil
        }
    }

    private struct Marker {
        let deviceFrame: Int64
        let index: Int
        let track: Track
        let metadata: TrackMetadata
        let offset: Int64
        let startsTrack: Bool
    }

    private let config: PlayerConfiguration
    private let mailbox: Mailbox<EngineMessage>
    private let hub: EventHub
    private let tap: AudioTap

    private var output: any AudioOutput
    private var outputTried = false
    private var queue = PlayQueue()
    private var state = PlaybackState.stopped
    private var volume: Int
    private var decoding: Loaded?
    private var preload: (index: Int, result: Result<any PCMSource, AudioError>)?
    private var written: Int64 = 0
    private var markers: [Marker] = []
    private var audible: Marker?
    private var buffer: [Int16]
    /// For wide sources on a device that takes S32_LE (allocated on first use).
    private var wideBuffer: [Int32] = []
    /// The device refused S32_LE once: wide sources play reduced to 16 bits from then on.
    private var wideRefused = false
    private var lastPublish: UInt64 = 0
    private var lastPublished: Double?
    private var buffering = false

    init(configuration: PlayerConfiguration, mailbox: Mailbox<EngineMessage>, hub: EventHub, tap: AudioTap = AudioTap()) {
        config = configuration
        self.mailbox = mailbox
        self.hub = hub
        self.tap = tap
        volume = max(0, min(100, configuration.initialVolume))
        output = ALSAOutput(device: configuration.device, pace: configuration.paceDevice,
                            latencyMicros: configuration.latencyMicros)
        buffer = [Int16](repeating: 0, count: 2048 * 2)
        hub.update {
            $0.volume = volume
            $0.outputName = configuration.device
        }
    }

    func run() {
        var current = true
        while true {
            let busy = state == .playing && decoding != nil
            // Paused or stopped with the last position told, nothing changes until a
            // command comes: sleep (a command wakes the mailbox at once) instead of waking
            // twenty times a second. The second's timeout only bounds the wait.
            let idle = state != .playing && current
            for message in mailbox.take(timeout: busy ? 0 : idle ? 1 : config.positionInterval) {
                switch message {
                case .shutdown:
                    output.discardBuffered()
                    tap.clear()
                    output.close()
                    hub.finishAll()
                    return
                case .command(let command):
                    handle(command)
                    // Every command is answered by a position event, as before.
                    lastPublished = nil
                }
            }
            if state == .playing { step() }
            followEar()
            current = publishPosition()
        }
    }

    // MARK: Commands

    private func handle(_ command: PlayerCommand) {
        switch command {
        case .load(let tracks, let startAt, let autoplay):
            stopPlayback()
            var q = PlayQueue(tracks)
            q.repeatMode = queue.repeatMode
            if queue.shuffle { q.setShuffle(true) }
            queue = q
            hub.update { $0.queueCount = tracks.count }
            if !tracks.isEmpty {
                if autoplay {
                    start(index: startAt)
                } else {
                    // Cue the track: opened and positioned, paused before any audio is written.
                    start(index: startAt)
                    pause()
                }
            }
        case .append(let tracks):
            queue.append(tracks)
            hub.update { $0.queueCount = queue.tracks.count }
        case .play(let index):
            start(index: index)
        case .togglePause:
            state == .playing ? pause() : resume()
        case .pause:
            pause()
        case .resume:
            resume()
        case .stop:
            stopPlayback()
        case .seek(let seconds):
            seek(to: seconds)
        case .seekBy(let delta):
            seek(to: currentPosition() + delta)
        case .setVolume(let v):
            setVolume(v)
        case .changeVolume(let d):
            setVolume(volume + d)
        case .next:
            skip(forward: true)
        case .previous:
            skip(forward: false)
        case .setRepeat(let mode):
            setRepeat(mode)
        case .cycleRepeat:
            setRepeat(queue.repeatMode.next)
        case .setShuffle(let on):
            setShuffle(on)
        case .toggleShuffle:
            setShuffle(!queue.shuffle)
        case .setOrder(let order):
            // From the track being decoded: after a gapless handoff it is already the next
            // one, and the queue must go on from it, not play it again.
            if let index = decoding?.index ?? audible?.index { queue.select(index) }
            queue.setOrder(order)
            // What follows the current track may have changed: preloaded again when due.
            preload = nil
        }
    }

    private func setVolume(_ v: Int) {
        volume = max(0, min(100, v))
        hub.update { $0.volume = volume }
        hub.emit(.settingsChanged)
    }

    private func setRepeat(_ mode: RepeatMode) {
        queue.repeatMode = mode
        preload = nil
        hub.update { $0.repeatMode = mode }
        hub.emit(.settingsChanged)
    }

    private func setShuffle(_ on: Bool) {
        if let index = audible?.index ?? decoding?.index { queue.select(index) }
        queue.setShuffle(on)
        preload = nil
        hub.update { $0.shuffle = on }
        hub.emit(.settingsChanged)
    }

    private func setState(_ s: PlaybackState) {
        guard s != state else { return }
        state = s
        hub.update { $0.state = s }
        hub.emit(.stateChanged(s))
    }

    /// Starts track `index`, moving on past tracks that fail to open.
    private func start(index: Int) {
        guard queue.tracks.indices.contains(index) else { return }
        flush()
        endAudible()
        preload = nil
        queue.select(index)
        var candidate: Int? = index
        var attempts = 0
        while let i = candidate, attempts < queue.tracks.count {
            attempts += 1
            if let loaded = open(index: i) {
                guard begin(loaded) else { return }
                setState(.playing)
                return
            }
            candidate = queue.advance(afterEnd: false)
        }
        finishQueue()
    }

    private func pause() {
        guard state == .playing else { return }
        output.setPaused(true)
        setState(.paused)
    }

    private func resume() {
        switch state {
        case .paused:
            output.setPaused(false)
            setState(.playing)
        case .stopped:
            start(index: queue.currentIndex ?? 0)
        case .playing:
            break
        }
    }

    private func stopPlayback() {
        flush()
        endAudible()
        decoding = nil
        preload = nil
        markers = []
        setBuffering(false)
        hub.update { $0.position = 0 }
        setState(.stopped)
    }

    private func seek(to seconds: Double) {
        guard let (index, _) = audiblePosition() else { return }
        let rate = Double((audible?.metadata ?? decoding?.source.metadata)?.format.sampleRate ?? 44100)
        var frame = Int64(max(0, seconds) * rate)
        if let total = (audible?.metadata ?? decoding?.source.metadata)?.totalFrames {
            frame = min(frame, max(0, total - 1))
        }
        flush()
        // Where the ear lands; the status follows it at once.
        if let landed = reposition(index: index, frame: frame) {
            let seconds = Double(landed) / rate
            hub.update { $0.position = seconds }
            hub.emit(.seeked(seconds: seconds))
        }
    }

    private func skip(forward: Bool) {
        if let index = audible?.index ?? decoding?.index { queue.select(index) }
        let target = forward ? queue.peekNext(afterEnd: false) : queue.peekPrevious()
        guard let target else { return }
        let wasPaused = state == .paused
        start(index: target)
        if wasPaused { pause() }
    }

    // MARK: Playback

    /// Decodes one chunk and writes it; at a track's end moves to the next gaplessly.
    private func step() {
        guard let current = decoding else {
            finishQueue()
            return
        }
        // A wide source on a device opened for 32-bit samples plays bit for bit.
        let wide = output.format?.sampleBits == 32 ? current.wide : nil
        let frames: Int
        do {
            if let wide {
                if wideBuffer.isEmpty { wideBuffer = [Int32](repeating: 0, count: buffer.count) }
                frames = try wideBuffer.withUnsafeMutableBufferPointer { b in
                    Result { () throws(AudioError) in try wide.readWide(into: b) }
                }.get()
            } else {
                frames = try buffer.withUnsafeMutableBufferPointer { b in
                    Result { () throws(AudioError) in try current.source.read(into: b) }
                }.get()
            }
        } catch where error.reason == .stalled {
            // A stream is waiting for bytes: nothing is lost, playback resumes where it was.
            setBuffering(true)
            return
        } catch {
            setBuffering(false)
            fail(current.index, error)
            advanceAfterEnd()
            return
        }
        setBuffering(false)
        if frames == 0 {
            if let error = current.source.finishCheck() { fail(current.index, error) }
            advanceAfterEnd()
            return
        }
        let samples = frames * current.source.format.channels
        applyVolume(count: samples, gain: current.gain, wide: wide != nil)
        writeToDevice(count: samples, frames: frames, wide: wide != nil)
        maybePreload()
    }

    private func setBuffering(_ on: Bool) {
        guard buffering != on else { return }
        buffering = on
        hub.update { $0.buffering = on }
        hub.emit(.buffering(on))
    }

    /// Writes `count` samples of `buffer` (or, `wide`, of `wideBuffer`) to the device, and
    /// gives them to the visualizer's tap when it listens (wide samples by their top 16 bits).
    private func writeToDevice(count: Int, frames: Int, wide: Bool = false) {
        do {
            let output = self.output
            if wide {
                try wideBuffer.withUnsafeBufferPointer { b in
                    Result { () throws(AudioError) in try output.write(UnsafeBufferPointer(rebasing: b[0..<count])) }
                }.get()
                if tap.isListening { for i in 0..<count { buffer[i] = Int16(truncatingIfNeeded: wideBuffer[i] >> 16) } }
            } else {
                try buffer.withUnsafeBufferPointer { b in
                    Result { () throws(AudioError) in try output.write(UnsafeBufferPointer(rebasing: b[0..<count])) }
                }.get()
            }
            if tap.isListening, let format = output.format {
                let pending = output.delayFrames()
                buffer.withUnsafeBufferPointer { b in
                    tap.append(UnsafeBufferPointer(rebasing: b[0..<count]), channels: format.channels,
                               sampleRate: format.sampleRate, pending: pending)
                }
            }
        } catch {
            // The device went away mid-play: keep time on the null output.
            switchToNull(reason: error)
        }
        written += Int64(frames)
    }

    /// Scales samples in place by the volume and the track's ReplayGain factor. The volume
    /// never exceeds 1; a gain above 1 is limited by the tagged peak, and a sample that
    /// would still pass full scale is clamped, never wrapped. At full volume and no gain the
    /// samples stay untouched (bit-perfect), 16 or 32 bits wide.
    private func applyVolume(count: Int, gain: Double, wide: Bool = false) {
        let factor = Double(volume) / 100 * gain
        guard factor != 1 else { return }
        let q = Int64((factor * 32768).rounded())
        if wide { Self.scale(&wideBuffer, count: count, by: q) } else { Self.scale(&buffer, count: count, by: q) }
    }

    private static func scale<Sample: FixedWidthInteger & SignedInteger>(_ samples: inout [Sample], count: Int, by q: Int64) {
        samples.withUnsafeMutableBufferPointer { b in
            for i in 0..<count {
                b[i] = Sample(clamping: (Int64(b[i]) * q + 16384) >> 15)
            }
        }
    }

    private func maybePreload() {
        guard preload == nil, let current = decoding else { return }
        let meta = current.source.metadata
        let remaining = Double((meta.totalFrames ?? Int64.max) - current.source.framePosition) / Double(meta.format.sampleRate)
        guard remaining <= config.preloadSeconds, let next = queue.peekNext() else { return }
        do {
            preload = (next, .success(try config.openSource(queue.tracks[next])))
        } catch {
            preload = (next, .failure(error))
        }
    }

    /// The decoded track ran out: continue with the next playable one in the same stream.
    private func advanceAfterEnd() {
        decoding = nil
        var attempts = 0
        while attempts < max(1, queue.tracks.count), let next = queue.advance() {
            attempts += 1
            let result: Result<any PCMSource, AudioError>
            if let p = preload, p.index == next {
                result = p.result
            } else {
                result = Result { () throws(AudioError) in try config.openSource(queue.tracks[next]) }
            }
            preload = nil
            switch result {
            case .success(let source):
                _ = begin(Loaded(index: next, track: queue.tracks[next], source: source, mode: config.replayGain))
                return
            case .failure(let error):
                fail(next, error)
            }
        }
        finishQueue()
    }

    /// Makes `loaded` the decoding track, its first frame following what was written.
    /// A track whose format differs reopens the device after the current audio drains.
    @discardableResult
    private func begin(_ loaded: Loaded) -> Bool {
        var format = loaded.source.format
        // Wide samples go to the device as S32_LE when it takes them (bit-perfect), else
        // reduced to S16 with dither; a device that refused once is not asked again.
        if format.sampleBits > 16 && (loaded.wide == nil || wideRefused) { format.sampleBits = 16 }
        if output.format != format {
            let reopening = output.format != nil
            if reopening { drainDevice() }
            // Timed from the drain's end: closing, opening and setting up the device.
            let start = monotonicNanos()
            if format.sampleBits > 16 && !configureOutput(format, orNull: false) {
                format.sampleBits = 16
                guard configureOutput(format) else { return false }
                // The device takes 16-bit samples where it refused 32: it will not be asked again.
                if !output.isNull { wideRefused = true }
            }
            if output.format != format {
                guard configureOutput(format) else { return false }
            }
            if reopening {
                hub.emit(.outputReopened(format: format, milliseconds: Double(monotonicNanos() - start) / 1e6))
            }
            written = 0
            markers = []
        }
        markers.append(Marker(deviceFrame: written, index: loaded.index, track: loaded.track,
                              metadata: loaded.source.metadata, offset: loaded.source.framePosition, startsTrack: true))
        decoding = loaded
        hub.update { $0.lastError = nil }
        return true
    }

    /// Opens the device for `format`; when it cannot, the null output takes over (unless
    /// `orNull` is false: then it says so and the caller tries another format).
    private func configureOutput(_ format: PCMFormat, orNull: Bool = true) -> Bool {
        do {
            try output.configure(format)
            if !outputTried {
                outputTried = true
                hub.update { $0.outputName = output.name; $0.noAudioDevice = output.isNull }
                hub.emit(.outputChanged(name: output.name, noAudioDevice: output.isNull))
            }
            return true
        } catch {
            if !orNull { return false }
            outputTried = true
            switchToNull(reason: error)
            do { try output.configure(format) } catch { return false }
            return true
        }
    }

    private func switchToNull(reason: AudioError) {
        guard !output.isNull else { return }
        let format = output.format
        output.close()
        output = NullOutput()
        if let format { try? output.configure(format) }
        hub.update {
            $0.outputName = output.name
            $0.noAudioDevice = true
            $0.lastError = reason
        }
        hub.emit(.outputChanged(name: output.name, noAudioDevice: true))
    }

    private func open(index: Int) -> Loaded? {
        let track = queue.tracks[index]
        do {
            return Loaded(index: index, track: track, source: try config.openSource(track), mode: config.replayGain)
        } catch {
            fail(index, error)
            return nil
        }
    }

    private func fail(_ index: Int, _ error: AudioError) {
        hub.update { $0.lastError = error }
        hub.emit(.trackFailed(index: index, error: error))
    }

    private func finishQueue() {
        decoding = nil
        drainDevice()
        endAudible()
        hub.update { $0.position = 0 }
        setState(.stopped)
        hub.emit(.queueFinished)
    }

    /// Waits until everything written has been heard, announces what that crossed, and
    /// starts counting device frames afresh.
    private func drainDevice() {
        output.drain()
        written = Int64.max / 4  // every marker is now behind the ear
        followEar()
        written = 0
        markers = []
    }

    /// Throws away audio not yet heard; what was heard stays the position.
    private func flush() {
        output.discardBuffered()
        tap.clear()
        written = 0
        markers = []
    }

    /// Positions the decoder at `frame` of track `index` (reopening it when the
    /// decoder has already moved on) and marks where it will be heard.
    /// Decodes track `index` from `frame` on; the frame it landed on, nil when it failed.
    @discardableResult
    private func reposition(index: Int, frame: Int64) -> Int64? {
        preload = nil
        var loaded = decoding
        if loaded?.index != index {
            loaded = open(index: index)
            queue.select(index)
        }
        guard let loaded else {
            stopPlayback()
            return nil
        }
        let landed: Int64
        do {
            landed = try loaded.source.seek(toFrame: frame)
        } catch {
            fail(index, error)
            stopPlayback()
            return nil
        }
        decoding = loaded
        let isNewTrack = audible?.index != index
        markers.append(Marker(deviceFrame: written, index: index, track: loaded.track,
                              metadata: loaded.source.metadata, offset: landed, startsTrack: isNewTrack))
        followEar()
        return landed
    }

    // MARK: What the listener hears

    private var played: Int64 {
        max(0, written - Int64(output.delayFrames()))
    }

    private func audiblePosition() -> (index: Int, frame: Int64)? {
        followEar()
        if let a = audible { return (a.index, a.offset + max(0, played - a.deviceFrame)) }
        if let d = decoding { return (d.index, d.source.framePosition) }
        return nil
    }

    private func currentPosition() -> Double {
        guard let (_, frame) = audiblePosition(), let meta = audible?.metadata ?? decoding?.source.metadata else { return 0 }
        return Double(frame) / Double(meta.format.sampleRate)
    }

    /// Advances the audible marker to what the device has played, announcing track changes.
    private func followEar() {
        let heard = played
        while let next = markers.first, next.deviceFrame <= heard {
            markers.removeFirst()
            if next.startsTrack || audible?.index != next.index {
                endAudible()
                hub.update {
                    $0.trackIndex = next.index
                    $0.track = next.track
                    $0.metadata = next.metadata
                }
                hub.emit(.trackStarted(index: next.index, track: next.track, metadata: next.metadata))
            }
            audible = next
        }
    }

    private func endAudible() {
        if let a = audible {
            hub.emit(.trackEnded(index: a.index, track: a.track))
            audible = nil
        }
    }

    /// Tells the heard position, at most every `positionInterval` and only when it moved;
    /// returns whether listeners have the current one.
    private func publishPosition() -> Bool {
        guard let a = audible else { return true }
        let seconds = Double(a.offset + max(0, played - a.deviceFrame)) / Double(a.metadata.format.sampleRate)
        let clamped = a.metadata.duration.map { min(seconds, $0) } ?? seconds
        if clamped == lastPublished { return true }
        let now = monotonicNanos()
        guard Double(now - lastPublish) / 1e9 >= config.positionInterval else { return false }
        lastPublish = now
        lastPublished = clamped
        hub.update { $0.position = clamped }
        hub.emit(.position(seconds: clamped, duration: a.metadata.duration))
        return true
    }
}
