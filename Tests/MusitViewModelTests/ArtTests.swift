import Foundation
import MusitArt
import MusitImage
import MusitRender
import MusitTestSupport
import MusitViewModel
import Testing

@Suite("Covers and album colours")
struct ArtTests {
    static let quadrants = [RGB(230, 40, 40), RGB(40, 200, 60), RGB(40, 80, 230), RGB(240, 220, 40)]

    @Test("PNG and JPEG covers decode to their quadrants; broken bytes give a clear error")
    func decode() throws {
        for (file, tolerance) in [("covers/quadrants.png", 0), ("covers/quadrants.jpg", 14)] {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(file))))
            let picture = try ImageDecoder.decode(bytes)
            #expect(picture.width == 64 && picture.height == 64, "\(file): \(picture.width)×\(picture.height)")
            let cells = CoverCells(key: file, picture: picture, columns: 2, rows: 1)
            for (got, want) in zip([cells.top(0, 0), cells.top(1, 0), cells.bottom(0, 0), cells.bottom(1, 0)], Self.quadrants) {
                #expect(abs(Int(got.r) - Int(want.r)) <= tolerance && abs(Int(got.g) - Int(want.g)) <= tolerance
                        && abs(Int(got.b) - Int(want.b)) <= tolerance, "\(file): \(got) for \(want)")
            }
        }
        #expect(throws: ImageDecodeError.unknownFormat) { try ImageDecoder.decode(Array("not an image".utf8)) }
        let png = Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("covers/quadrants.png"))))
        #expect(throws: ImageDecodeError.self) { try ImageDecoder.decode(Array(png.prefix(40))) }
        let jpeg = Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("covers/quadrants.jpg"))))
        #expect(throws: ImageDecodeError.self) { try ImageDecoder.decode(Array(jpeg.prefix(20))) }
    }

    @Test("a cover keeps its shape in any box: square pixels, two per cell")
    func fit() {
        #expect(CoverCells.fit(width: 100, height: 100, maxColumns: 40, maxRows: 6) == (12, 6))
        #expect(CoverCells.fit(width: 100, height: 100, maxColumns: 8, maxRows: 6) == (8, 4))
        #expect(CoverCells.fit(width: 200, height: 100, maxColumns: 40, maxRows: 6) == (24, 6))
        #expect(CoverCells.fit(width: 0, height: 100, maxColumns: 40, maxRows: 6) == (0, 0))
    }

    @Test("every text colour of every look, and of every step of a cross-fade, has contrast 4.5 on every background")
    func contrast() {
        var generator = SystemRandomNumberGenerator()
        var looks: [AmbientLook] = []
        for _ in 0..<200 {
            let seed = OKLab(RGB(UInt8.random(in: 0...255, using: &generator), UInt8.random(in: 0...255, using: &generator),
                                 UInt8.random(in: 0...255, using: &generator)))
            looks.append(AmbientLook(seeds: [seed]))
        }
        looks += [RGB.white, .black, RGB(255, 0, 0), RGB(0, 0, 255), RGB(255, 255, 0)].map { AmbientLook(seeds: [OKLab($0)]) }
        looks.append(AmbientLook(seeds: []))
        var worst = 21.0
        for (i, look) in looks.enumerated() {
            let next = looks[(i + 1) % looks.count]
            for t in stride(from: 0.0, through: 1.0, by: 0.1) {
                let m = look.mixed(with: next, t)
                for fg in m.foregrounds { for bg in m.backgrounds { worst = min(worst, RGB.contrast(fg, bg)) } }
            }
        }
        #expect(worst >= 4.5, "lowest contrast \(worst)")
    }

    @Test("the album's colour comes from the cover's dominant hue, else from its name")
    func seeds() throws {
        let red = Picture(width: 4, height: 4, pixels: Array(repeating: RGB(220, 20, 20), count: 12) + Array(repeating: .white, count: 4))
        let hue = try #require(Ambient.seeds(from: red).first).hue
        #expect(abs(hue - OKLab(RGB(220, 20, 20)).hue) < 0.1, "red dominates")
        #expect(Ambient.seeds(fromName: "Blue Album") == Ambient.seeds(fromName: "Blue Album"))
        #expect(Ambient.seeds(fromName: "Blue Album") != Ambient.seeds(fromName: "Red Album"))
    }

    @Test("the nearest palette colours: the cube, the grey ramp, the eight ANSI colours")
    func palette() {
        #expect(TerminalPalette.nearest256(RGB(255, 0, 0)) == 196)
        #expect(TerminalPalette.nearest256(RGB(0, 0, 0)) == 16)
        #expect(TerminalPalette.nearest256(RGB(128, 128, 128)) == 244)
        #expect(TerminalPalette.rgb256(196) == RGB(255, 0, 0))
        #expect(TerminalPalette.nearestANSI(RGB(250, 10, 10)) == 1)
        #expect(TerminalPalette.nearestANSI(RGB(10, 10, 240)) == 4)
    }

    @Test("a long title scrolls: at rest first, then a window moving four cells a second")
    func marquee() {
        let title = "A title much longer than its place"
        #expect(Marquee.frame(title, width: 40, clock: 5) == title, "a title that fits stays")
        #expect(Marquee.frame(title, width: 10, clock: 0.5) == "A title mu")
        #expect(Marquee.frame(title, width: 10, clock: Marquee.rest + 0.5) == "title much")
        #expect(Marquee.nextChange(title, width: 40, clock: 1) == nil)
        #expect(abs((Marquee.nextChange(title, width: 10, clock: 0.5) ?? 0) - 1.5) < 1e-9)
    }

    @Test("the theme follows the album; a fixed theme does not; the fade passes through mixes")
    func fade() {
        var s = AppState(width: 100, height: 30)
        s.appearance.trueColor = true
        s.appearance.canPaint = true
        _ = Reducer.reduce(&s, .tick(10))
        _ = Reducer.reduce(&s, .artwork(key: "a", seeds: [OKLab(RGB(255, 0, 0))], hasPicture: false))
        _ = Reducer.reduce(&s, .tick(11))
        let red = s.appearance.currentLook(at: s.clock)
        _ = Reducer.reduce(&s, .artwork(key: "b", seeds: [OKLab(RGB(0, 0, 255))], hasPicture: false))
        let mid = s.appearance.currentLook(at: 11.15), end = s.appearance.currentLook(at: 11.31)
        #expect(mid != red && mid != end && end == AmbientLook(seeds: [OKLab(RGB(0, 0, 255))]))
        #expect(s.appearance.fading(at: 11.15) && !s.appearance.fading(at: 11.31))
        _ = Reducer.reduce(&s, .key(.char(":")))
        for c in "theme ember" { _ = Reducer.reduce(&s, .key(.char(c))) }
        _ = Reducer.reduce(&s, .key(.enter))
        #expect(s.appearance.theme == .ember)
        _ = Reducer.reduce(&s, .artwork(key: "c", seeds: [OKLab(RGB(0, 255, 0))], hasPicture: false))
        #expect(s.appearance.look == AmbientLook(seeds: ThemeName.ember.seeds!), "a fixed theme ignores the album")
    }
}
