import FaultlineKit
import Logging

/// The `inprocess` toxic backend: a ``ProxyServer`` inside the Faultline process, with no
/// server to install. Options: none.
public struct InProcessBackendFactory: ToxicBackendFactory {
    public let name = "inprocess"

    public init() {}

    public func makeBackend(options: SourceNode?, context: BackendContext) async throws -> any ToxicBackend {
        InProcessBackend(server: ProxyServer(toxicTypes: context.registry.toxics, seed: context.seed))
    }

    /// The in-process proxy terminates and originates TLS (NIOSSL).
    public var supportsTLS: Bool { true }

    public func validateTLS(_ proxy: ProxyDefinition, node: SourceNode, path: DocumentPath, sink: DiagnosticSink) {
        ProxyTLSCheck.report(tls: proxy.tls, upstreamTLS: proxy.upstreamTLS, node: node, path: path, sink: sink)
    }

    public func validate(options: SourceNode?, sink: DiagnosticSink) {
        for member in options?.members ?? [] {
            sink.report(
                Diagnostic(
                    "unknown option \"\(member.key)\" for the inprocess toxic backend", at: member.keyLocation,
                    hint: "the inprocess backend takes no options besides backend: inprocess"))
        }
    }
}

/// A ``ToxicBackend`` over an in-process ``ProxyServer``.
public struct InProcessBackend: ToxicBackend {
    public let server: ProxyServer

    public init(server: ProxyServer) { self.server = server }

    public var description: String { "in-process proxy" }

    public func proxies() async throws -> [ProxyDefinition] { server.proxies() }

    public func proxy(named name: String) async throws -> ProxyDefinition {
        try translate("proxy \(name)") { () throws(ProxyError) in try server.proxy(named: name) }
    }

    public func createProxy(_ proxy: ProxyDefinition) async throws -> ProxyDefinition {
        do {
            var created = try await server.createProxy(
                name: proxy.name, listen: proxy.listen, upstream: proxy.upstream, enabled: proxy.enabled, tls: proxy.tls,
                upstreamTLS: proxy.upstreamTLS)
            for toxic in proxy.toxics {
                _ = try await server.addToxic(toxic, to: proxy.name)
            }
            if !proxy.toxics.isEmpty { created = try server.proxy(named: proxy.name) }
            return created
        } catch {
            throw Self.backendError(error, context: "proxy \(proxy.name)")
        }
    }

    public func updateProxy(named name: String, listen: String?, upstream: String?, enabled: Bool?) async throws -> ProxyDefinition {
        do {
            return try await server.updateProxy(named: name, listen: listen, upstream: upstream, enabled: enabled)
        } catch {
            throw Self.backendError(error, context: "proxy \(name)")
        }
    }

    public func deleteProxy(named name: String) async throws {
        do {
            try await server.deleteProxy(named: name)
        } catch {
            throw Self.backendError(error, context: "proxy \(name)")
        }
    }

    public func addToxic(_ toxic: ToxicDefinition, to proxy: String) async throws -> ToxicDefinition {
        do {
            return try await server.addToxic(toxic, to: proxy)
        } catch {
            throw Self.backendError(error, context: "toxic \(toxic.name) on proxy \(proxy)")
        }
    }

    public func updateToxic(named name: String, on proxy: String, attributes: Value?, toxicity: Double?) async throws -> ToxicDefinition {
        do {
            return try await server.updateToxic(named: name, on: proxy, attributes: attributes, toxicity: toxicity)
        } catch {
            throw Self.backendError(error, context: "toxic \(name) on proxy \(proxy)")
        }
    }

    public func removeToxic(named name: String, from proxy: String) async throws {
        do {
            try await server.removeToxic(named: name, from: proxy)
        } catch {
            throw Self.backendError(error, context: "toxic \(name) on proxy \(proxy)")
        }
    }

    public func reset() async throws {
        do {
            try await server.reset()
        } catch {
            throw Self.backendError(error, context: "reset")
        }
    }

    public func shutdown() async { await server.shutdown() }

    public func toxicReport(named name: String, on proxy: String) async -> String? { server.toxicReport(named: name, on: proxy) }

    private func translate<T>(_ context: String, _ body: () throws(ProxyError) -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw Self.backendError(error, context: context)
        }
    }

    static func backendError(_ error: ProxyError, context: String) -> ToxicBackendError {
        let message = "\(context): \(error.message)"
        switch error.kind {
        case .notFound: return .notFound(message)
        case .conflict: return .conflict(message)
        case .badRequest: return .invalid(message)
        case .serverError: return .unavailable(message)
        }
    }
}
