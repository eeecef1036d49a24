import Foundation
import MusitAPI

/// What text the server accepts, in one place: user names, and the limits and forbidden
/// characters of every free-text field. Limits count characters (grapheme clusters) *and*
/// UTF-8 bytes: 64 "characters" of stacked combining marks are megabytes otherwise.
enum TextRules {
    /// 3 to 32 of ASCII letters, digits, `.`, `_`, `-`; nothing else, not even a final line
    /// break (a regular expression's `$` lets one through). Checked scalar by scalar.
    static func isValidUsername(_ name: String) -> Bool {
        let scalars = name.unicodeScalars
        guard (3...32).contains(scalars.count) else { return false }
        return scalars.allSatisfy { s in
            switch s.value {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2E, 0x5F, 0x2D: return true
            default: return false
            }
        }
    }

    /// Refuses `value` (a 400 naming `field`) when it holds NUL, or is longer than
    /// `maxCharacters` characters or `maxBytes` bytes of UTF-8.
    static func check(_ value: String, _ field: String, maxCharacters: Int, maxBytes: Int) throws {
        if value.unicodeScalars.contains("\0") { throw Problem.badRequest("\(field) must not contain NUL") }
        // Bytes first: counting characters of a huge string costs more than the check.
        guard value.utf8.count <= maxBytes, value.count <= maxCharacters else {
            throw Problem.badRequest("\(field) is at most \(maxCharacters) characters and \(maxBytes) bytes")
        }
    }

    /// A display name: as `check`, and no control characters or bidirectional overrides,
    /// which would let a name disguise itself or reorder the text around it.
    static func checkDisplayName(_ value: String) throws {
        try check(value, "displayName", maxCharacters: APILimits.displayNameMaxLength, maxBytes: 4 * APILimits.displayNameMaxLength)
        let forbidden = value.unicodeScalars.contains { s in
            s.properties.generalCategory == .control || s.properties.generalCategory == .lineSeparator
                || s.properties.generalCategory == .paragraphSeparator
                || (0x202A...0x202E).contains(s.value) || (0x2066...0x2069).contains(s.value)
                || s.value == 0x200E || s.value == 0x200F || s.value == 0x061C
        }
        if forbidden { throw Problem.badRequest("displayName must not contain control or text-direction characters") }
    }
}
