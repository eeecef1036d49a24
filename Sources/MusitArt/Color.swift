import Foundation

/// An sRGB colour, 8 bits a channel.
public struct RGB: Hashable, Sendable, CustomStringConvertible {
    public var r: UInt8
    public var g: UInt8
    public var b: UInt8

    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
        self.r = r; self.g = g; self.b = b
    }

    public init(hex: Int) {
        self.init(UInt8((hex >> 16) & 0xFF), UInt8((hex >> 8) & 0xFF), UInt8(hex & 0xFF))
    }

    public var hex: Int { Int(r) << 16 | Int(g) << 8 | Int(b) }
    public var description: String { String(format: "#%06X", hex) }

    public static let black = RGB(0, 0, 0)
    public static let white = RGB(255, 255, 255)

    // MARK: WCAG 2 contrast

    static func linear(_ c: UInt8) -> Double {
        let v = Double(c) / 255
        return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4)
    }

    static func encode(_ v: Double) -> UInt8 {
        let c = max(0, min(1, v))
        let s = c <= 0.0031308 ? c * 12.92 : 1.055 * pow(c, 1 / 2.4) - 0.055
        return UInt8((s * 255).rounded())
    }

    /// Relative luminance as WCAG 2 defines it.
    public var luminance: Double {
        0.2126 * Self.linear(r) + 0.7152 * Self.linear(g) + 0.0722 * Self.linear(b)
    }

    /// The WCAG 2 contrast ratio of two colours, 1 to 21.
    public static func contrast(_ x: RGB, _ y: RGB) -> Double {
        let a = x.luminance, b = y.luminance
        return (max(a, b) + 0.05) / (min(a, b) + 0.05)
    }

    /// `t` of the way from `self` to `other`, mixed in OKLab so the middle stays vivid.
    public func mixed(with other: RGB, _ t: Double) -> RGB {
        let t = max(0, min(1, t))
        if t == 0 { return self }
        if t == 1 { return other }
        let a = OKLab(self), b = OKLab(other)
        return OKLab(L: a.L + (b.L - a.L) * t, a: a.a + (b.a - a.a) * t, b: a.b + (b.b - a.b) * t).rgb
    }
}

/// Björn Ottosson's OKLab: distances and mixes that follow what the eye sees.
public struct OKLab: Equatable, Sendable {
    public var L: Double
    public var a: Double
    public var b: Double

    public init(L: Double, a: Double, b: Double) {
        self.L = L; self.a = a; self.b = b
    }

    public init(_ c: RGB) {
        let r = RGB.linear(c.r), g = RGB.linear(c.g), bl = RGB.linear(c.b)
        let l = cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * bl)
        let m = cbrt(0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * bl)
        let s = cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * bl)
        L = 0.2104542553 * l + 0.7936177850 * m - 0.0040720468 * s
        a = 1.9779984951 * l - 2.4285922050 * m + 0.4505937099 * s
        b = 0.0259040371 * l + 0.7827717662 * m - 0.8086757660 * s
    }

    /// Lightness, chroma and hue (radians).
    public init(L: Double, chroma: Double, hue: Double) {
        self.init(L: L, a: chroma * cos(hue), b: chroma * sin(hue))
    }

    public var chroma: Double { (a * a + b * b).squareRoot() }
    public var hue: Double { atan2(b, a) }

    /// Back to sRGB; out-of-gamut colours lose chroma until they fit.
    public var rgb: RGB {
        var c = self
        for _ in 0..<24 {
            let (r, g, b) = c.linearRGB
            if r >= -0.0005, g >= -0.0005, b >= -0.0005, r <= 1.0005, g <= 1.0005, b <= 1.0005 {
                return RGB(RGB.encode(r), RGB.encode(g), RGB.encode(b))
            }
            c.a *= 0.85; c.b *= 0.85
        }
        let (r, g, b) = c.linearRGB
        return RGB(RGB.encode(r), RGB.encode(g), RGB.encode(b))
    }

    var linearRGB: (Double, Double, Double) {
        let l = pow(L + 0.3963377774 * a + 0.2158037573 * b, 3)
        let m = pow(L - 0.1055613458 * a - 0.0638541728 * b, 3)
        let s = pow(L - 0.0894841775 * a - 1.2914855480 * b, 3)
        return (4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
                -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
                -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s)
    }

    public func distance2(_ o: OKLab) -> Double {
        let dl = L - o.L, da = a - o.a, db = b - o.b
        return dl * dl + da * da + db * db
    }
}

/// The nearest colours a 256- or 8-colour terminal has.
public enum TerminalPalette {
    static let cubeLevels: [Int] = [0, 95, 135, 175, 215, 255]

    static func nearestLevel(_ v: UInt8) -> Int {
        var best = 0
        for (i, l) in cubeLevels.enumerated() where abs(l - Int(v)) < abs(cubeLevels[best] - Int(v)) { best = i }
        return best
    }

    /// The xterm colour number (16–255) nearest to `c`: the 6×6×6 cube or the grey ramp,
    /// whichever is closer in OKLab.
    public static func nearest256(_ c: RGB) -> Int {
        let ri = nearestLevel(c.r), gi = nearestLevel(c.g), bi = nearestLevel(c.b)
        let cube = RGB(UInt8(cubeLevels[ri]), UInt8(cubeLevels[gi]), UInt8(cubeLevels[bi]))
        let avg = (Int(c.r) + Int(c.g) + Int(c.b)) / 3
        let gi24 = max(0, min(23, (avg - 8 + 5) / 10))
        let greyLevel = UInt8(8 + 10 * gi24)
        let grey = RGB(greyLevel, greyLevel, greyLevel)
        let target = OKLab(c)
        return target.distance2(OKLab(grey)) < target.distance2(OKLab(cube)) ? 232 + gi24 : 16 + 36 * ri + 6 * gi + bi
    }

    /// The sRGB value of an xterm colour number 16–255.
    public static func rgb256(_ n: Int) -> RGB {
        if n >= 232 { let v = UInt8(8 + 10 * (n - 232)); return RGB(v, v, v) }
        let i = max(0, n - 16)
        return RGB(UInt8(cubeLevels[i / 36]), UInt8(cubeLevels[(i / 6) % 6]), UInt8(cubeLevels[i % 6]))
    }

    /// xterm's default values of the eight ANSI colours.
    public static let ansi: [RGB] = [RGB(0, 0, 0), RGB(205, 0, 0), RGB(0, 205, 0), RGB(205, 205, 0),
                                     RGB(0, 0, 238), RGB(205, 0, 205), RGB(0, 205, 205), RGB(229, 229, 229)]

    public static func nearestANSI(_ c: RGB) -> Int {
        let t = OKLab(c)
        var best = 0, bestD = Double.infinity
        for (i, a) in ansi.enumerated() {
            let d = t.distance2(OKLab(a))
            if d < bestD { best = i; bestD = d }
        }
        return best
    }
}
