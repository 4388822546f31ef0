import FaultlineKit
import Foundation

/// `dns.resolve`: resolves a host name and reports the addresses and how long it took.
///
/// getaddrinfo blocks, so it runs on a thread of its own: a probe must never block Swift's
/// cooperative pool (see the `Probe` protocol's contract).
///
/// A `ProbePlugin` is its own plugin: the binary lists `DNSResolveProbe.self` with the built-ins.
public struct DNSResolveProbe: ProbePlugin {
    public static let type = "dns.resolve"
    public static let summary = "Resolve a host name; output {addresses, elapsed_ms}"
    public static let argumentHelp = ["host": "the name to resolve", "timeout": "seconds before the probe fails"]

    public struct Arguments: Codable, Sendable, NumberRanges {
        /// Every number a user writes has a range, checked when the experiment loads.
        public static let numberRanges: [String: NumberRange] = ["timeout": .seconds]
        public var host: String
        public var timeout: Double

        enum CodingKeys: String, CodingKey { case host, timeout }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            host = try c.decode(String.self, forKey: .host)
            timeout = try c.decodeIfPresent(Double.self, forKey: .timeout) ?? 2
        }
    }

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        if arguments.host.isEmpty { throw ArgumentError("host", "host must not be empty") }
        if arguments.timeout <= 0 { throw ArgumentError("timeout", "timeout must be more than 0 seconds") }
    }

    public func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let start = ContinuousClock.now
        let addresses: [String] = try await withThrowingTaskGroup(of: [String]?.self) { group in
            group.addTask { try await Self.resolve(arguments.host) }
            group.addTask {
                try await Task.sleep(for: .seconds(saturating: arguments.timeout))
                return nil
            }
            defer { group.cancelAll() }
            guard let result = try await group.next() ?? nil else {
                throw ActivityFailure("resolving \(arguments.host) took longer than \(arguments.timeout) s")
            }
            return result
        }
        let elapsed = ContinuousClock.now - start
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        return ["addresses": .array(addresses.map { .string($0) }), "elapsed_ms": .double((milliseconds * 1000).rounded() / 1000)]
    }

    /// getaddrinfo on a thread of its own; the continuation resumes when it returns.
    static func resolve(_ host: String) async throws -> [String] {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                var hints = addrinfo()
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var list: UnsafeMutablePointer<addrinfo>?
                let status = getaddrinfo(host, nil, &hints, &list)
                guard status == 0 else {
                    continuation.resume(throwing: ActivityFailure("cannot resolve \(host): \(String(cString: gai_strerror(status)))"))
                    return
                }
                defer { freeaddrinfo(list) }
                var addresses: [String] = []
                var cursor = list
                while let entry = cursor {
                    var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                    if getnameinfo(entry.pointee.ai_addr, entry.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                        let address = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                        if !addresses.contains(address) { addresses.append(address) }
                    }
                    cursor = entry.pointee.ai_next
                }
                continuation.resume(returning: addresses)
            }
        }
    }
}
