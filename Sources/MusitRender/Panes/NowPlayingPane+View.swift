import MusitArt
import MusitViewModel

extension NowPlayingPane: PaneView {
    static func draw(_ b: inout ScreenBuffer, _ f: Rect, _ s: AppState, _ pen: Pen) {
        pen.box(&b, f, title: PaneID.nowPlaying.title, focused: s.focus == .nowPlaying)
        content(&b, PaneGeometry.inner(f), s, pen)
        // The album's gradient behind the whole pane, lighter at the top.
        if let look = b.look {
            for row in 0..<f.height { b.paintBackground((f.x, f.y + row, f.width, 1), look.panel(row: row, of: f.height)) }
        }
    }

    /// Draws again, over the frame drawn for `last`, what time moves in the pane for `s`
    /// (a state equal to `last` but for time): the text beside the cover, or only the
    /// visualizer's bars when the title's scroll step, the bar and the time stayed. Its
    /// border and cover stay.
    static func redrawTime(_ b: inout ScreenBuffer, _ f: Rect, from last: AppState, to s: AppState, _ pen: Pen) {
        redraw(&b, f, from: last, to: s, pen, textMoved: { r in textMoment(r, last) != textMoment(r, s) })
    }

    /// `redrawTime` when only the bands changed: the text cannot have moved.
    static func redrawBands(_ b: inout ScreenBuffer, _ f: Rect, from last: AppState, to s: AppState, _ pen: Pen) {
        redraw(&b, f, from: last, to: s, pen, textMoved: { _ in false })
    }

    private static func redraw(_ b: inout ScreenBuffer, _ f: Rect, from last: AppState, to s: AppState, _ pen: Pen,
                               textMoved: (Rect) -> Bool) {
        let r = PaneGeometry.nowPlayingText(PaneGeometry.inner(f), s)
        guard !r.isEmpty else { return }
        var redrawn = r
        if let bars = spectrumRect(r, s, pen), spectrumRect(r, last, pen) == bars, !textMoved(r) {
            b.fill((bars.x, bars.y, bars.width, bars.height), style: .normal)
            drawSpectrum(&b, bars, s.appearance.spectrum)
            redrawn = Rect(x: r.x, y: bars.y, width: r.width, height: bars.height)
        } else {
            b.fill((r.x, r.y, r.width, r.height), style: .normal)
            drawText(&b, r, s, pen)
        }
        if let look = b.look {
            for y in redrawn.y..<redrawn.maxY {
                b.paintBackground((r.x, y, r.width, 1), look.panel(row: y - f.y, of: f.height))
            }
        }
    }

    private static func content(_ b: inout ScreenBuffer, _ inner: Rect, _ s: AppState, _ pen: Pen) {
        guard !inner.isEmpty else { return }
        // With the kitty protocol the terminal places the image itself over these blank cells.
        if !s.appearance.kitty, let (cover, rect) = PaneGeometry.shownCover(s) {
            drawCover(&b, rect, cover)
        }
        drawText(&b, PaneGeometry.nowPlayingText(inner, s), s, pen)
    }

    /// Now Playing's text: title, artist, bar, state and times, then the visualizer or the
    /// settings. Drawn inside `r` only (frames drawn in part rely on it).
    static func drawText(_ b: inout ScreenBuffer, _ r: Rect, _ s: AppState, _ pen: Pen) {
        guard !r.isEmpty else { return }
        let np = s.nowPlaying
        var y = r.y
        func line(_ text: String, _ style: Style = .normal) {
            guard y < r.maxY else { return }
            b.put(text, x: r.x + 1, y: y, maxWidth: max(0, r.width - 2), style: style, ellipsis: pen.glyphs.ellipsis)
            y += 1
        }
        // A title too long for the pane scrolls in place.
        line(Marquee.frame(np.title ?? "Nothing playing", width: max(0, r.width - 2),
                           clock: s.clock - s.appearance.titleSince), .bold)
        line([np.artist, np.album].compactMap { $0 }.joined(separator: " · "), .dim)
        let duration = np.duration ?? 0
        let position = np.position(at: s.clock)
        let stateGlyph: String
        switch np.state {
        case .playing: stateGlyph = "\(pen.glyphs.statePlaying) playing"
        case .paused: stateGlyph = "\(pen.glyphs.statePaused) paused"
        case .stopped: stateGlyph = "\(pen.glyphs.stateStopped) stopped"
        }
        let times = "\(Clock.format(position)) / \(Clock.format(duration))"
        if let bar = PaneGeometry.progressBar(r) {
            // One cell a scalar: set directly, nothing to measure or cut.
            var x = bar.x
            for scalar in ProgressBar.render(fraction: duration > 0 ? position / duration : 0, width: bar.width,
                                             unicode: pen.glyphs.unicode).unicodeScalars where x < bar.x + bar.width {
                b.set(x, bar.y, Cell(code: scalar.value, .progress))
                x += 1
            }
            y += 1
        }
        line("\(stateGlyph)  \(times)", np.state == .playing ? .accent : .normal)
        if let bars = spectrumRect(r, s, pen) {
            drawSpectrum(&b, bars, s.appearance.spectrum)
            return
        }
        line("vol \(np.volume)%  repeat \(np.repeatMode)  shuffle \(np.shuffle ? "on" : "off")", .dim)
        if np.buffering { line("buffering\(pen.glyphs.ellipsis)", .warning) }
        if np.noAudioDevice { line("no audio device", .warning) }
        if let error = np.error { line(error, .error) }
    }

    /// Where the visualizer's bars go in Now Playing's text `r`: below the title, artist,
    /// bar and state lines, to the bottom; nil when they are not shown.
    static func spectrumRect(_ r: Rect, _ s: AppState, _ pen: Pen) -> Rect? {
        guard s.appearance.visualizer, !s.appearance.spectrum.isEmpty, pen.glyphs.unicode else { return nil }
        let y = r.y + (PaneGeometry.progressBar(r) != nil ? 4 : 3)
        guard y < r.maxY else { return nil }
        return Rect(x: r.x + 1, y: y, width: max(0, r.width - 2), height: r.maxY - y)
    }

    /// What the moving text of Now Playing shows at `s.clock`: the title's scroll step, the
    /// bar's eighths and the time. Equal moments (of states equal but for time) draw equal text.
    static func textMoment(_ r: Rect, _ s: AppState) -> (title: Int, bar: Int, time: String) {
        let np = s.nowPlaying
        let position = np.position(at: s.clock), duration = np.duration ?? 0
        let bar = PaneGeometry.progressBar(r).map {
            ProgressBar.units(fraction: duration > 0 ? position / duration : 0, width: $0.width)
        } ?? 0
        return (Marquee.step(np.title ?? "Nothing playing", width: max(0, r.width - 2), clock: s.clock - s.appearance.titleSince),
                bar, Clock.format(position))
    }

    /// The cover in `rect`: each cell an upper half block, upper pixel in front.
    private static func drawCover(_ b: inout ScreenBuffer, _ rect: Rect, _ cover: CoverCells) {
        for y in 0..<rect.height {
            for x in 0..<rect.width {
                b.set(rect.x + x, rect.y + y, Cell(code: 0x2580, .normal, paint: Paint(fg: cover.top(x, y), bg: cover.bottom(x, y))))
            }
        }
    }

    /// Bars with eighth-block tops, one column per band (bands spread over the width).
    static func drawSpectrum(_ b: inout ScreenBuffer, _ r: Rect, _ bands: [Double]) {
        guard r.width > 0, r.height > 0 else { return }
        // ▁ ▂ ▃ ▄ ▅ ▆ ▇ █: U+2581 to U+2588, one eighth more each.
        for x in 0..<r.width {
            let level = bands[min(bands.count - 1, x * bands.count / r.width)]
            let units = Int((level * Double(r.height * 8)).rounded())
            for row in 0..<r.height {
                let fromBottom = units - row * 8
                guard fromBottom > 0 else { break }
                b.set(r.x + x, r.maxY - 1 - row, Cell(code: 0x2580 + UInt32(min(8, fromBottom)), .progress))
            }
        }
    }
}
