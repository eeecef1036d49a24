import MusitArt
@testable import MusitRender
import MusitViewModel
import Testing

@Suite("Frames drawn in part")
struct FrameTests {
    /// A small deterministic generator, so a failure repeats.
    struct Rand {
        var x: UInt64
        mutating func next(_ n: Int) -> Int {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            return Int((x >> 33) % UInt64(n))
        }
    }

    @Test("a frame drawn over the last one is the frame drawn whole, whatever happens between")
    func partialEqualsWhole() {
        let renderer = Renderer(unicode: true)
        var s = AppState(width: 100, height: 32)
        s.appearance.trueColor = true
        s.appearance.canPaint = true
        s.appearance.setVisualizer(true)
        s.signedIn = true
        _ = Reducer.reduce(&s, .queueChanged(total: 40, hasMore: false))
        _ = Reducer.reduce(&s, .tick(100))
        var np = NowPlaying()
        np.state = .playing
        np.title = "A title far too long for the pane it is drawn in, so it scrolls along"
        np.artist = "Artist"
        np.duration = 180
        _ = Reducer.reduce(&s, .nowPlaying(np))
        s.social.friends = [Friend(username: "ana", displayName: "Ana", relation: .friend, online: true,
                                   playing: FriendPlaying(state: .playing, title: "Song", artist: "Band", position: 3,
                                                          duration: 200, reportedAt: 100))]
        var rand = Rand(x: 7)
        var last = (state: s, frame: renderer.render(s))
        var clock = 100.0, partial = 0, whole = 0, covered = 0, bandsAlone = 0
        /// Draws over the last frame with `draw`: it must give the frame drawn whole.
        func drawnOver(_ step: Int, _ how: String, _ draw: (inout ScreenBuffer) -> Void) -> Bool {
            var frame = last.frame
            draw(&frame)
            let want = renderer.render(s)
            #expect(frame == want, "step \(step): \(how):\n\(frame.text)\nwhole:\n\(want.text)")
            last = (s, frame)
            return frame == want
        }
        for step in 0..<2000 {
            // Mostly time passing, as when playing; now and then anything else.
            if rand.next(3) == 0 {
                // A wake for the visualizer alone: no tick, only new bands, drawn in place.
                _ = Reducer.reduce(&s, .spectrum((0..<32).map { _ in Double(rand.next(100)) / 100 }))
                let state = last.state
                guard drawnOver(step, "bands drawn alone", { renderer.redrawBands(s, over: &$0, drawnFrom: state) }) else { return }
                bandsAlone += 1
                continue
            }
            clock += Double(rand.next(40)) / 1000
            _ = Reducer.reduce(&s, .tick(clock))
            switch rand.next(40) {
            case 0: _ = Reducer.reduce(&s, .key(.char("j")))
            case 1: _ = Reducer.reduce(&s, .key(.tab))
            case 2: _ = Reducer.reduce(&s, .key(.char("?")))
            case 3: _ = Reducer.reduce(&s, .key(.escape))
            case 4:
                // A new album: its colours, and (mostly) its cover.
                let key = "k\(rand.next(3))", hue = UInt8(rand.next(256))
                _ = Reducer.reduce(&s, .artwork(key: key, seeds: [OKLab(RGB(hue, 40, 200))], hasPicture: true))
                if rand.next(4) > 0 {
                    let picture = Picture(width: 8, height: 8, pixels: (0..<64).map { RGB(UInt8($0 * 4), hue, 90) })
                    _ = Reducer.reduce(&s, .cover(CoverCells(key: key, picture: picture, columns: 12, rows: 6)))
                }
            case 5: _ = Reducer.reduce(&s, .resize(width: 90 + rand.next(20), height: 28 + rand.next(8)))
            case 6:
                np.volume = rand.next(100)
                _ = Reducer.reduce(&s, .nowPlaying(np))
            case 7:
                np.state = np.state == .playing ? .paused : .playing
                _ = Reducer.reduce(&s, .nowPlaying(np))
            case 8..<20:
                // The visualizer alone, as between most frames.
                _ = Reducer.reduce(&s, .spectrum((0..<32).map { _ in Double(rand.next(100)) / 100 }))
            default:
                np.position = min(180, np.position + Double(rand.next(60)) / 1000)
                _ = Reducer.reduce(&s, .nowPlaying(np))
                _ = Reducer.reduce(&s, .spectrum((0..<32).map { _ in Double(rand.next(100)) / 100 }))
            }
            if Renderer.panesShowingTime(from: last.state, to: s) != nil { partial += 1 } else { whole += 1 }
            if PaneGeometry.shownCover(s) != nil { covered += 1 }
            let state = last.state
            guard drawnOver(step, "drawn in part", { renderer.render(s, over: &$0, drawnFrom: state) }) else { return }
        }
        // Both ways were taken, most often the partial one.
        #expect(partial > 700 && whole > 50 && bandsAlone > 400, "partial \(partial), whole \(whole), bands \(bandsAlone)")
        #expect(covered > 200, "frames with a cover: \(covered)")
    }

    @Test("printable ASCII written the fast way gives the cells the measured way gives")
    func asciiFastPath() {
        var rand = Rand(x: 11)
        let pieces = ["ab", "東", "x", "🎵", "hello", " ", "é", "京都"]
        for _ in 0..<500 {
            var fast = ScreenBuffer(width: 12, height: 1), slow = ScreenBuffer(width: 12, height: 1)
            for _ in 0..<6 {
                let text = (0..<(1 + rand.next(3))).map { _ in pieces[rand.next(pieces.count)] }.joined()
                let x = rand.next(14) - 2, room = rand.next(14)
                // A zero-width space sends the same text down the measuring path.
                fast.put(text, x: x, y: 0, maxWidth: room)
                slow.put(text + "\u{200B}", x: x, y: 0, maxWidth: room)
                #expect(fast == slow, "\(text) at \(x) in \(room): \(fast.text) vs \(slow.text)")
            }
        }
    }

    @Test("cells are plain data and keep every glyph they are given")
    func cellsArePlainData() {
        // No references: copying a frame is a memcpy, comparing it a memcmp.
        #expect(_isPOD(Cell.self))
        let glyphs: [Character] = ["a", " ", "▀", "█", "東", "🎵", "é", "e\u{301}", "🇫🇷", "👩‍👩‍👧", "\u{FFFD}"]
        for g in glyphs {
            let cell = Cell(g, .accent)
            #expect(cell.glyph == g, "\(g) came back as \(cell.glyph)")
            #expect(TextWidth.of(code: cell.code) == TextWidth.of(g), "\(g)")
        }
        // A cluster of several scalars gets one number, the same each time.
        #expect(Cell("e\u{301}").code == Cell("e\u{301}").code)
        #expect(Cell("e\u{301}").code != Cell("🇫🇷").code)
        #expect(Cell("e\u{301}").code >= GlyphCodes.clusterBase)
        var b = ScreenBuffer(width: 8, height: 1)
        b.put("a🇫🇷é東", x: 0, y: 0)
        #expect(b.line(0) == "a🇫🇷é東  ")
    }
}
