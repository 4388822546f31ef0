import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// Why an exchange got no usable response, named the way people talk about it: the classes
/// the `http` provider's messages and the load output's `errors` use.
enum FailureClass: String, Sendable, CaseIterable {
    /// Nothing listens on the port (ECONNREFUSED), or the host is unreachable.
    case refused
    /// The TCP connection was not established in time.
    case connectTimeout = "connect_timeout"
    /// The peer closed or reset the connection before the response was complete.
    case reset
    /// The connection was up, but the response did not come (or stopped coming) in time.
    case readTimeout = "read_timeout"
    /// The TLS handshake failed: an untrusted certificate, a protocol mismatch, a plain-text server.
    case tls
    /// The host name did not resolve.
    case dns
    /// Anything else: a malformed response, a local resource limit.
    case other

    /// How a message names the class.
    var phrase: String {
        switch self {
        case .refused: "connection refused"
        case .connectTimeout: "connect timeout"
        case .reset: "connection reset"
        case .readTimeout: "read timeout"
        case .tls: "TLS failure"
        case .dns: "DNS failure"
        case .other: "HTTP failure"
        }
    }

    /// Whether the request never reached the server, so retrying it is safe.
    var isConnectPhase: Bool { self == .refused || self == .connectTimeout || self == .dns }
}

/// An exchange that failed, with its class and a one-line explanation.
struct HTTPFailure: Error, Sendable, CustomStringConvertible {
    var kind: FailureClass
    var detail: String
    /// Set when the failure is our own doing (a stopped load), not the server's: not counted.
    var abandoned = false

    init(_ kind: FailureClass, _ detail: String, abandoned: Bool = false) {
        self.kind = kind
        self.detail = detail
        self.abandoned = abandoned
    }

    var description: String { "\(kind.phrase): \(detail)" }

    /// A failure for a stopped load or a cancelled task.
    static let abandonedExchange = HTTPFailure(.other, "the request was abandoned", abandoned: true)

    /// Names an error from NIO, NIOSSL or the HTTP parser.
    /// - Parameters:
    ///   - target: where the connection went, for the message.
    static func classify(_ error: any Error, target: String) -> HTTPFailure {
        switch error {
        case let failure as HTTPFailure:
            return failure
        case let error as NIOConnectionError:
            if error.connectionErrors.isEmpty, let dns = error.dnsAError ?? error.dnsAAAAError {
                return HTTPFailure(.dns, "cannot resolve \(error.host) (\(dns))")
            }
            if let first = error.connectionErrors.first { return classify(first.error, target: target) }
            return HTTPFailure(.dns, "no address found for \(error.host)")
        case let error as ChannelError:
            switch error {
            case .connectTimeout(let amount):
                return HTTPFailure(.connectTimeout, "no connection to \(target) within \(Seconds.text(amount))")
            case .eof, .ioOnClosedChannel, .alreadyClosed, .outputClosed, .inputClosed:
                return HTTPFailure(.reset, "\(target) closed the connection before the response was complete")
            default:
                return HTTPFailure(.other, "\(error) (\(target))")
            }
        case let error as IOError:
            switch error.errnoCode {
            case ECONNREFUSED:
                return HTTPFailure(.refused, "nothing listens on \(target)")
            case EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL:
                return HTTPFailure(.refused, "\(target) is unreachable (\(String(cString: strerror(error.errnoCode))))")
            case ECONNRESET, EPIPE, ECONNABORTED:
                return HTTPFailure(.reset, "\(target) reset the connection")
            case ETIMEDOUT:
                return HTTPFailure(.connectTimeout, "the connection to \(target) timed out")
            default:
                return HTTPFailure(.other, "\(error) (\(target))")
            }
        case let error as NIOSSLError:
            if error == .uncleanShutdown {
                return HTTPFailure(.reset, "\(target) closed the TLS connection without a close_notify")
            }
            return HTTPFailure(.tls, "TLS handshake with \(target) failed: \(error)")
        case is BoringSSLError, is NIOSSLExtraError:
            return HTTPFailure(.tls, "TLS with \(target) failed: \(error)")
        case is SocketAddressError:
            return HTTPFailure(.dns, "cannot resolve the host of \(target) (\(error))")
        default:
            return HTTPFailure(.other, "\(error) (\(target))")
        }
    }
}

/// Seconds as people write them.
enum Seconds {
    static func text(_ amount: TimeAmount) -> String { text(Double(amount.nanoseconds) / 1e9) }

    static func text(_ seconds: Double) -> String {
        seconds.rounded() == seconds && abs(seconds) < 1e15 ? "\(Int(seconds)) s" : "\(seconds) s"
    }

    static func amount(_ seconds: Double) -> TimeAmount { .nanoseconds(Int64(nanosecondsIn: seconds)) }
}
