import Foundation
import Synchronization

/// The colours of the screen when it follows the album: a dark background tinted by the
/// cover, a lighter gradient behind Now Playing, and text, borders and accents in the
/// cover's hue. Every colour that text is drawn in keeps a WCAG contrast of at least
/// `minimumContrast` against every background it can be drawn on.
public struct AmbientLook: Equatable, Sendable {
    public var background: RGB
    /// The gradient behind Now Playing, top to bottom.
    public var panelTop: RGB
    public var panelBottom: RGB
    public var statusBackground: RGB
    public var overlayBackground: RGB
    public var selectionBackground: RGB

    public var text: RGB
    public var dim: RGB
    public var border: RGB
    public var accent: RGB
    public var warning: RGB
    public var error: RGB

    /// WCAG AA for normal text, with a little room for the terminal's rounding.
    public static let minimumContrast = 4.6

    static var backgroundColours: [WritableKeyPath<AmbientLook, RGB>] {
        [\.background, \.panelTop, \.panelBottom, \.statusBackground, \.overlayBackground, \.selectionBackground]
    }

    static var textColours: [WritableKeyPath<AmbientLook, RGB>] { [\.text, \.dim, \.border, \.accent, \.warning, \.error] }

    /// Every background text can be drawn on, the gradient's middle included.
    public var backgrounds: [RGB] {
        Self.backgroundColours.map { self[keyPath: $0] } + [panelTop.mixed(with: panelBottom, 0.5)]
    }

    public var foregrounds: [RGB] { Self.textColours.map { self[keyPath: $0] } }

    /// The look for a cover whose colours are `seeds`, most telling first.
    public init(seeds: [OKLab]) {
        let primary = seeds.first ?? OKLab(L: 0.7, a: 0, b: 0)
        let hue = primary.hue
        let chroma = min(primary.chroma, 0.16)
        func tone(_ L: Double, _ c: Double, _ h: Double = hue) -> RGB { OKLab(L: L, chroma: c, hue: h).rgb }
        background = tone(0.17, chroma * 0.35)
        panelTop = tone(0.28, chroma * 0.6)
        panelBottom = background
        statusBackground = tone(0.23, chroma * 0.45)
        overlayBackground = tone(0.21, chroma * 0.4)
        selectionBackground = tone(0.35, chroma * 0.8)
        text = tone(0.95, 0.015)
        dim = tone(0.78, min(0.04, chroma * 0.3))
        border = tone(0.74, min(0.1, chroma * 0.7))
        accent = tone(max(0.8, min(0.9, primary.L)), max(0.06, min(0.2, primary.chroma)))
        warning = tone(0.9, 0.15, 95 * .pi / 180)
        error = tone(0.78, 0.16, 25 * .pi / 180)
        enforceContrast()
    }

    /// `t` of the way to `other`, mixed in OKLab; contrast holds at every step.
    public func mixed(with other: AmbientLook, _ t: Double) -> AmbientLook {
        if t <= 0 { return self }
        if t >= 1 { return other }
        var m = self
        for c in Self.backgroundColours + Self.textColours { m[keyPath: c] = self[keyPath: c].mixed(with: other[keyPath: c], t) }
        m.enforceContrast()
        return m
    }

    /// The gradient's colour at `row` of `rows`.
    public func panel(row: Int, of rows: Int) -> RGB {
        guard rows > 1 else { return panelTop }
        guard (0..<rows).contains(row), rows <= 1024 else {
            return panelTop.mixed(with: panelBottom, Double(row) / Double(rows - 1))
        }
        // Mixing in OKLab takes powers and cube roots; the pane asks for the same rows
        // every frame, so the last gradient is kept.
        return Self.lastGradient.withLock { last in
            if let last, last.top == panelTop, last.bottom == panelBottom, last.colours.count == rows {
                return last.colours[row]
            }
            let colours = (0..<rows).map { panelTop.mixed(with: panelBottom, Double($0) / Double(rows - 1)) }
            last = (panelTop, panelBottom, colours)
            return colours[row]
        }
    }

    private static let lastGradient = Mutex<(top: RGB, bottom: RGB, colours: [RGB])?>(nil)

    /// Lightens each text colour until it stands out from every background.
    private mutating func enforceContrast() {
        let bgs = backgrounds
        func ensure(_ c: RGB) -> RGB {
            var lab = OKLab(c)
            for _ in 0..<40 {
                let rgb = lab.rgb
                if bgs.allSatisfy({ RGB.contrast(rgb, $0) >= Self.minimumContrast }) { return rgb }
                lab.L = min(1, lab.L + 0.02)
                if lab.L >= 1 { break }
            }
            return .white
        }
        for c in Self.textColours { self[keyPath: c] = ensure(self[keyPath: c]) }
    }
}

/// The colours that tell a cover apart: median cut in OKLab, scored by how much of the
/// cover a colour covers and how colourful it is.
public enum Ambient {
    public static func seeds(from picture: Picture, count: Int = 6) -> [OKLab] {
        guard picture.width > 0, picture.height > 0 else { return [] }
        let side = 48
        let small = picture.width * picture.height > side * side
            ? picture.scaled(width: min(side, picture.width), height: min(side, picture.height)) : picture
        var boxes: [[OKLab]] = [small.pixels.map(OKLab.init)]
        while boxes.count < count {
            // Split the box with the widest spread along its widest axis, at the median.
            var best = -1, bestAxis = 0, bestRange = 0.02
            for (i, box) in boxes.enumerated() where box.count > 1 {
                for axis in 0..<3 {
                    let values = box.map { axis == 0 ? $0.L : axis == 1 ? $0.a : $0.b }
                    let range = (values.max() ?? 0) - (values.min() ?? 0)
                    if range > bestRange { best = i; bestAxis = axis; bestRange = range }
                }
            }
            guard best >= 0 else { break }
            let sorted = boxes[best].sorted { p, q in
                bestAxis == 0 ? p.L < q.L : bestAxis == 1 ? p.a < q.a : p.b < q.b
            }
            let mid = sorted.count / 2
            boxes[best] = Array(sorted[..<mid])
            boxes.append(Array(sorted[mid...]))
        }
        let scored = boxes.filter { !$0.isEmpty }.map { box -> (OKLab, Double) in
            let n = Double(box.count)
            let mean = OKLab(L: box.reduce(0) { $0 + $1.L } / n, a: box.reduce(0) { $0 + $1.a } / n,
                             b: box.reduce(0) { $0 + $1.b } / n)
            return (mean, n * (0.03 + mean.chroma))
        }
        return scored.sorted { $0.1 > $1.1 }.map(\.0)
    }

    /// A colour of its own for an album without a cover, from its name.
    public static func seeds(fromName name: String) -> [OKLab] {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        let hue = Double(hash % 360) * .pi / 180
        return [OKLab(L: 0.72, chroma: 0.13, hue: hue)]
    }
}
