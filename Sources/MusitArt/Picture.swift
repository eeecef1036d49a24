/// Pixels, row by row, top first.
public struct Picture: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public let pixels: [RGB]

    public init(width: Int, height: Int, pixels: [RGB]) {
        precondition(pixels.count == width * height, "a picture has width × height pixels")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public subscript(x: Int, y: Int) -> RGB { pixels[y * width + x] }

    /// The picture resampled to `w`×`h` by averaging the source area under each pixel
    /// (a box filter: shrinking a cover to a few dozen cells keeps its colours instead of
    /// picking stray pixels).
    public func scaled(width w: Int, height h: Int) -> Picture {
        guard w > 0, h > 0, width > 0, height > 0 else { return Picture(width: 0, height: 0, pixels: []) }
        if w == width && h == height { return self }
        var out: [RGB] = []
        out.reserveCapacity(w * h)
        for oy in 0..<h {
            let y0 = oy * height / h, y1 = max(y0 + 1, (oy + 1) * height / h)
            for ox in 0..<w {
                let x0 = ox * width / w, x1 = max(x0 + 1, (ox + 1) * width / w)
                var r = 0, g = 0, b = 0
                for y in y0..<y1 {
                    var i = y * width + x0
                    for _ in x0..<x1 {
                        let p = pixels[i]
                        r += Int(p.r); g += Int(p.g); b += Int(p.b)
                        i += 1
                    }
                }
                let n = (y1 - y0) * (x1 - x0)
                out.append(RGB(UInt8(r / n), UInt8(g / n), UInt8(b / n)))
            }
        }
        return Picture(width: w, height: h, pixels: out)
    }
}

/// A cover as terminal cells: each cell is a `▀` whose foreground is the upper pixel and
/// whose background is the lower one, so a cell holds two square-ish pixels.
public struct CoverCells: Equatable, Sendable {
    /// Which cover these cells show (the cache key), for the screen to notice a change.
    public let key: String
    public let columns: Int
    public let rows: Int
    /// Two pixels per cell, row by row: `columns` × `rows * 2`.
    public let picture: Picture

    public init(key: String, picture: Picture, columns: Int, rows: Int) {
        self.key = key
        self.columns = columns
        self.rows = rows
        self.picture = picture.scaled(width: columns, height: rows * 2)
    }

    public func top(_ x: Int, _ y: Int) -> RGB { picture[x, y * 2] }
    public func bottom(_ x: Int, _ y: Int) -> RGB { picture[x, y * 2 + 1] }

    /// The largest cell box with the picture's aspect ratio inside `maxColumns`×`maxRows`
    /// (a cell is about twice as tall as wide, so a row holds two pixel rows).
    public static func fit(width: Int, height: Int, maxColumns: Int, maxRows: Int) -> (columns: Int, rows: Int) {
        guard width > 0, height > 0, maxColumns > 0, maxRows > 0 else { return (0, 0) }
        let aspect = Double(width) / Double(height)
        var rows = maxRows
        var cols = Int((Double(rows * 2) * aspect).rounded())
        if cols > maxColumns {
            cols = maxColumns
            rows = max(1, Int((Double(cols) / aspect / 2).rounded()))
        }
        return (max(1, min(cols, maxColumns)), max(1, min(rows, maxRows)))
    }
}
