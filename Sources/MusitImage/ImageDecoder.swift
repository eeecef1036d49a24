import CPNG
import CTurboJPEG
import MusitArt

public enum ImageDecodeError: Error, Equatable, CustomStringConvertible {
    case unknownFormat
    case tooLarge(width: Int, height: Int)
    case corrupt(String)

    public var description: String {
        switch self {
        case .unknownFormat: return "not a PNG or JPEG image"
        case .tooLarge(let w, let h): return "image too large (\(w)×\(h))"
        case .corrupt(let why): return "broken image: \(why)"
        }
    }
}

/// PNG (libpng) and JPEG (libjpeg-turbo) to RGB pixels. A cover is only ever shown a few
/// dozen cells wide, so large JPEGs are decoded at the smallest DCT scale that still
/// covers `target` pixels, and anything above `maxPixels` is refused before decoding.
public enum ImageDecoder {
    public static let maxPixels = 50_000_000

    public static func decode(_ bytes: [UInt8], target: Int = 256) throws -> Picture {
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try png(bytes) }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return try jpeg(bytes, target: target) }
        throw ImageDecodeError.unknownFormat
    }

    static func png(_ bytes: [UInt8]) throws -> Picture {
        // libpng reads from `bytes` until the image is freed: all of it happens inside one
        // access to their memory.
        try bytes.withUnsafeBytes { memory throws(ImageDecodeError) -> Picture in
            var image = png_image()
            image.version = png_uint_32(musit_png_version())
            defer { png_image_free(&image) }
            guard png_image_begin_read_from_memory(&image, memory.baseAddress, memory.count) != 0 else {
                throw .corrupt(message(&image))
            }
            let w = Int(image.width), h = Int(image.height)
            guard w > 0, h > 0 else { throw .corrupt("empty") }
            guard w * h <= maxPixels else { throw .tooLarge(width: w, height: h) }
            // Transparent pixels are composed over black, the colour the cover sits on.
            image.format = png_uint_32(musit_png_format_rgb())
            var out = [UInt8](repeating: 0, count: w * h * 3)
            var background = png_color(red: 0, green: 0, blue: 0)
            let done = out.withUnsafeMutableBytes { png_image_finish_read(&image, &background, $0.baseAddress, png_int_32(w * 3), nil) }
            guard done != 0, musit_png_failed(&image) == 0 else { throw .corrupt(message(&image)) }
            return picture(out, w, h)
        }
    }

    private static func message(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    static func jpeg(_ bytes: [UInt8], target: Int) throws -> Picture {
        guard let handle = tjInitDecompress() else { throw ImageDecodeError.corrupt("no decoder") }
        defer { tjDestroy(handle) }
        var w: Int32 = 0, h: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let header = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt(bytes.count), &w, &h, &subsampling, &colorspace)
        }
        guard header == 0 else { throw ImageDecodeError.corrupt(String(cString: tjGetErrorStr2(handle))) }
        guard w > 0, h > 0 else { throw ImageDecodeError.corrupt("empty") }
        guard Int(w) * Int(h) <= maxPixels else { throw ImageDecodeError.tooLarge(width: Int(w), height: Int(h)) }
        // The smallest of libjpeg-turbo's scales (1/8 … 1) whose result is still ≥ target.
        var count: Int32 = 0
        var sw = w, sh = h
        if let factors = tjGetScalingFactors(&count) {
            var best = (w, h)
            for i in 0..<Int(count) {
                let f = factors[i]
                let fw = (w * f.num + f.denom - 1) / f.denom, fh = (h * f.num + f.denom - 1) / f.denom
                if min(fw, fh) >= Int32(target) && Int(fw) * Int(fh) < Int(best.0) * Int(best.1) { best = (fw, fh) }
            }
            (sw, sh) = best
        }
        var out = [UInt8](repeating: 0, count: Int(sw) * Int(sh) * 3)
        let r = bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, src.baseAddress, UInt(bytes.count), dst.baseAddress, sw, 0, sh,
                              Int32(TJPF_RGB.rawValue), Int32(TJFLAG_FASTDCT))
            }
        }
        // A warning (a truncated tail, say) still leaves a usable picture.
        if r != 0 && tjGetErrorCode(handle) == Int32(TJERR_FATAL.rawValue) {
            throw ImageDecodeError.corrupt(String(cString: tjGetErrorStr2(handle)))
        }
        return picture(out, Int(sw), Int(sh))
    }

    private static func picture(_ rgb: [UInt8], _ w: Int, _ h: Int) -> Picture {
        var pixels: [RGB] = []
        pixels.reserveCapacity(w * h)
        var i = 0
        while i + 2 < rgb.count {
            pixels.append(RGB(rgb[i], rgb[i + 1], rgb[i + 2]))
            i += 3
        }
        return Picture(width: w, height: h, pixels: pixels)
    }
}
