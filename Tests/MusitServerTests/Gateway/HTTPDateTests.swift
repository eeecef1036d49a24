import Foundation
@testable import MusitServer
import Testing

@Suite("HTTP dates")
struct HTTPDateTests {
    @Test("the three forms RFC 9110 names parse to the same instant; nonsense is nil")
    func parse() {
        // RFC 9110 §5.6.7's example instant.
        let instant = Date(timeIntervalSince1970: 784_111_777)
        #expect(Preconditions.parseHTTPDate("Sun, 06 Nov 1994 08:49:37 GMT") == instant)
        #expect(Preconditions.parseHTTPDate("Sunday, 06-Nov-94 08:49:37 GMT") == instant)
        #expect(Preconditions.parseHTTPDate("Sun Nov  6 08:49:37 1994") == instant)
        #expect(Preconditions.parseHTTPDate("Thu, 01 Jan 1970 00:00:00 GMT") == Date(timeIntervalSince1970: 0))
        #expect(Preconditions.parseHTTPDate("Tue, 29 Feb 2028 23:59:60 GMT") == Date(timeIntervalSince1970: 1_835_481_600))
        #expect(Preconditions.parseHTTPDate("Sat, 01 Jan 2000 00:00:00 GMT") == Date(timeIntervalSince1970: 946_684_800))
        #expect(Preconditions.parseHTTPDate("garbage") == nil)
        #expect(Preconditions.parseHTTPDate("Sun, 32 Nov 1994 08:49:37 GMT") == nil)
    }

    @Test("the Date header is an IMF-fixdate of now")
    func now() throws {
        let text = HTTPDate.now
        let parsed = try #require(Preconditions.parseHTTPDate(text))
        #expect(abs(parsed.timeIntervalSinceNow) < 2, "\(text)")
    }
}
