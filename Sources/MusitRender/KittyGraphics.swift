import Foundation
import MusitArt

/// The kitty graphics protocol: escape sequences that hand the terminal a picture to draw
/// over a box of cells, scaled by the terminal to the cells' real size in pixels.
public enum KittyGraphics {
    /// Payload bytes per escape sequence, as the protocol asks.
    static let chunk = 4096

    /// Transmits `picture` as 24-bit RGB and shows it over `columns`×`rows` cells at the
    /// cursor, without moving the cursor; `id` names it for a later `delete`.
    public static func place(_ picture: Picture, id: UInt32, columns: Int, rows: Int) -> String {
        var raw = [UInt8]()
        raw.reserveCapacity(picture.pixels.count * 3)
        for p in picture.pixels { raw += [p.r, p.g, p.b] }
        let payload = Array(Data(raw).base64EncodedString().utf8)
        var out = ""
        var start = 0
        repeat {
            let end = min(payload.count, start + chunk)
            let more = end < payload.count ? 1 : 0
            let keys = start == 0
                ? "a=T,f=24,s=\(picture.width),v=\(picture.height),c=\(columns),r=\(rows),i=\(id),q=2,C=1,m=\(more)"
                : "m=\(more)"
            out += "\u{1B}_G\(keys);" + String(decoding: payload[start..<end], as: UTF8.self) + "\u{1B}\\"
            start = end
        } while start < payload.count
        return out
    }

    /// The terminal says it speaks the protocol: kitty or Ghostty, and not through tmux (which
    /// drops the sequences).
    public static func detected(_ environment: [String: String]) -> Bool {
        if environment["TMUX"].map({ !$0.isEmpty }) ?? false { return false }
        let term = environment["TERM"] ?? ""
        return term.contains("kitty") || term.contains("ghostty") || !(environment["KITTY_WINDOW_ID"] ?? "").isEmpty
    }

    /// Removes the picture `id` and frees its data in the terminal.
    public static func delete(id: UInt32) -> String {
        "\u{1B}_Ga=d,d=I,i=\(id),q=2\u{1B}\\"
    }
}
