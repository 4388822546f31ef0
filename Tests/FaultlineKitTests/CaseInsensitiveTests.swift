import FaultlineKit
import Testing

@Suite("ASCII case-insensitive equality of header names, methods and hosts")
struct CaseInsensitiveTests {
    @Test(
        "letters match in either case; everything else must be equal",
        arguments: [
            ("Content-Length", "content-length", true), ("HOST", "host", true), ("", "", true), ("get", "GET", true),
            ("content-length", "content-lengt", false), ("a", "b", false),
            // Bit 0x20 apart but not letters: '@' and '`', '[' and '{', '-' and '\r'.
            ("@", "`", false), ("[", "{", false), ("-", "\r", false),
            // Non-ASCII letters are compared as bytes.
            ("É", "é", false), ("é", "é", true),
        ])
    func equality(_ a: String, _ b: String, _ equal: Bool) {
        #expect(a.caseInsensitiveEquals(b) == equal)
        #expect(b.caseInsensitiveEquals(a) == equal)
        #expect(a[...].caseInsensitiveEquals(b[...]) == equal)
    }
}
