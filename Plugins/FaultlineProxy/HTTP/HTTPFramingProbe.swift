import FaultlineKit
import NIOCore

/// The proxy's HTTP framing as the fuzzer drives it (`faultline-fuzz http-framing`): whatever a
/// client or server sends, every byte comes out once, in order, and nothing traps.
public enum HTTPFramingProbe {
    /// Frames `bytes` as one direction of a connection, read `readSize` bytes at a time (at least
    /// one), the way ``HTTPSession`` does; the responses answer HEAD requests when `afterHEAD`.
    /// Returns the bytes of every event, in order: they must be `bytes`.
    public static func frame(_ bytes: UnsafeBufferPointer<UInt8>, responses: Bool, readSize: Int, afterHEAD: Bool) -> [UInt8] {
        var framing = HTTPFraming(role: responses ? .response : .request)
        framing.nextResponseToHEAD = afterHEAD
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var offset = 0
        let step = max(1, readSize)
        while offset < bytes.count {
            let end = min(bytes.count, offset + step)
            var input = ByteBuffer(bytes: UnsafeBufferPointer(rebasing: bytes[offset..<end]))
            offset = end
            while let event = framing.next(&input) {
                switch event {
                case .head(let raw, .response):
                    // What a toxic that edits the response would parse.
                    _ = HTTPFraming.responseHead(raw).serialized()
                    output += raw.readableBytesView
                case .head(let raw, .request(let request)):
                    _ = request.serialized()
                    output += raw.readableBytesView
                case .body(let part), .opaque(let part), .notHTTP(_, let part):
                    output += part.readableBytesView
                case .end:
                    break
                }
            }
        }
        if let rest = framing.becomeOpaque() { output += rest.readableBytesView }
        return output
    }
}
