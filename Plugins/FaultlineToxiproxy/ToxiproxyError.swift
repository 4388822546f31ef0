import FaultlineKit

/// A failed call to a Toxiproxy server, with what was asked, what the server said and what to do.
///
/// Its description is one line: `Toxiproxy at http://127.0.0.1:8474: add toxic slow to proxy db:
/// proxy not found (HTTP 404); create the proxy first (suite proxies:, proxy.create or create_proxy)`.
public struct ToxiproxyError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What kind of failure, for code that reacts to it.
    public enum Code: Sendable, Equatable {
        /// 404 `proxy not found` / `toxic not found`.
        case notFound
        /// 409 `proxy already exists` / `toxic already exists`.
        case conflict
        /// 400: a bad body, an unknown toxic type, a bad stream.
        case badRequest
        /// 403: the server refuses the client (browser user agents, a Host or Origin it does not answer).
        case forbidden
        /// 401: the server needs a token, or refused the one sent.
        case unauthorized
        /// 5xx: a listen address in use, or Toxiproxy's own handler timeout (503).
        case serverError
        /// Nothing answered at the address: connection refused, unknown host, connect timeout.
        case unreachable
        /// The server took longer than the request timeout.
        case timedOut
        /// An answer that is not Toxiproxy 2.x's (a 404 page, a 405, a body that does not parse).
        case notToxiproxy
    }

    public var code: Code
    /// The server's base URL.
    public var server: String
    /// What was asked, e.g. `add toxic slow to proxy db`.
    public var operation: String
    /// The HTTP status, when the server answered.
    public var status: Int?
    /// What went wrong: the server's `error` text, or the transport's.
    public var reason: String
    /// What to do about it.
    public var hint: String?

    public init(_ code: Code, server: String, operation: String, status: Int? = nil, reason: String, hint: String? = nil) {
        self.code = code
        self.server = server
        self.operation = operation
        self.status = status
        self.reason = reason
        self.hint = hint
    }

    /// The message without the server, for callers that name the server themselves.
    public var message: String {
        if code == .unauthorized {
            // `refused the token (add toxic …, HTTP 401)`: the reason is what the server did.
            return "\(reason) (\(operation)" + (status.map { ", HTTP \($0)" } ?? "") + ")" + (hint.map { "; \($0)" } ?? "")
        }
        return "\(operation): \(reason)" + (status.map { " (HTTP \($0))" } ?? "") + (hint.map { "; \($0)" } ?? "")
    }

    /// `Toxiproxy at URL: add toxic …: proxy not found (HTTP 404); …`, or for a token problem
    /// `Toxiproxy at URL refused the token (read the version, HTTP 401); …`.
    public var description: String { "Toxiproxy at \(server)" + (code == .unauthorized ? " " : ": ") + message }

    /// The kernel's backend error for this failure (which cleanups and activities understand).
    public var backendError: ToxicBackendError {
        switch code {
        case .notFound: .notFound(message)
        case .conflict: .conflict(message)
        case .badRequest: .invalid(message)
        case .forbidden, .unauthorized, .serverError, .unreachable, .timedOut, .notToxiproxy: .unavailable(message)
        }
    }
}
