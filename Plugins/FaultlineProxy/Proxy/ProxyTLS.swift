import Crypto
import FaultlineKit
import Foundation
import NIOCore
import NIOSSL
import SwiftASN1
import X509

/// A proxy's TLS, loaded once when the proxy is made: what each of its connections puts in front
/// of its two sockets. The toxics sit between the two TLS layers, so they see decrypted bytes.
final class ProxyTLS: Sendable {
    /// Terminates the clients' TLS; nil: the client side is plain.
    let server: NIOSSLContext?
    /// Originates TLS to the upstream; nil: the upstream side is plain.
    let client: NIOSSLContext?
    /// The settings as the proxy's definition shows them (with the CA file a client trusts).
    let listenSettings: ListenTLS?
    let upstreamSettings: UpstreamTLS?
    /// The directory holding a generated CA, removed with the proxy.
    private let generatedDirectory: String?

    private init(
        server: NIOSSLContext?, client: NIOSSLContext?, listenSettings: ListenTLS?, upstreamSettings: UpstreamTLS?, generatedDirectory: String?
    ) {
        self.server = server
        self.client = client
        self.listenSettings = listenSettings
        self.upstreamSettings = upstreamSettings
        self.generatedDirectory = generatedDirectory
    }

    /// Loads (or, for `self_signed`, makes) what the settings name.
    /// - Parameters:
    ///   - proxy: the proxy's name, for the generated CA's name and file.
    ///   - listenHost: the listen address's host, put in a generated certificate.
    /// - Returns: nil when neither side speaks TLS.
    static func make(proxy: String, listenHost: String, listen: ListenTLS?, upstream: UpstreamTLS?) throws(ProxyError) -> ProxyTLS? {
        guard listen != nil || upstream != nil else { return nil }
        var server: NIOSSLContext?
        var listenSettings = listen
        var directory: String?
        do {
            if let listen {
                if listen.selfSigned {
                    let made = try SelfSignedCertificate.make(proxy: proxy, hosts: [listenHost])
                    directory = made.directory
                    listenSettings?.ca = made.caFile
                    server = try NIOSSLContext(
                        configuration: .makeServerConfiguration(certificateChain: [.certificate(made.leaf)], privateKey: .privateKey(made.key)))
                } else if let cert = listen.cert, let key = listen.key {
                    server = try serverContext(cert: cert, key: key)
                    if listenSettings?.ca == nil { listenSettings?.ca = cert }
                } else if let problem = listen.problem {
                    throw TLSFileProblem(section: "tls", key: problem.key, message: problem.message, hint: problem.hint)
                }
            }
            let client = try upstream.map { settings throws(TLSFileProblem) in try clientContext(settings) }
            return ProxyTLS(server: server, client: client, listenSettings: listenSettings, upstreamSettings: upstream, generatedDirectory: directory)
        } catch let problem as TLSFileProblem {
            if let directory { try? FileManager.default.removeItem(atPath: directory) }
            throw ProxyError(.badRequest, "invalid tls: \(problem.description)")
        } catch {
            if let directory { try? FileManager.default.removeItem(atPath: directory) }
            throw ProxyError(.serverError, "tls: \(error)")
        }
    }

    /// Removes a generated CA's files (the proxy is gone).
    func removeGeneratedFiles() {
        if let generatedDirectory { try? FileManager.default.removeItem(atPath: generatedDirectory) }
    }

    /// The name a connection to `target` sends as SNI and checks the certificate against: the
    /// given `server_name`, else the upstream's host name; nil for an IP address (NIOSSL then
    /// checks the certificate's IP addresses against the connected address).
    func serverName(for target: UpstreamTarget) -> String? {
        if let name = upstreamSettings?.serverName { return name }
        if case .host(let host, _) = target { return host }
        return nil
    }

    // MARK: Loading files

    /// A problem with a TLS file, by the key that names it.
    struct TLSFileProblem: Error, CustomStringConvertible {
        var section: String
        var key: String
        var message: String
        var hint: String

        var description: String { "\(section).\(key): \(message) (\(hint))" }
    }

    /// Every problem with the files the settings name: each file read as PEM, the key matched to
    /// the certificate, the CA bundle non-empty. For load-time validation.
    static func problems(listen: ListenTLS?, upstream: UpstreamTLS?) -> [TLSFileProblem] {
        var problems: [TLSFileProblem] = []
        if let problem = listen?.problem {
            problems.append(TLSFileProblem(section: "tls", key: problem.key, message: problem.message, hint: problem.hint))
        }
        if let listen, listen.problem == nil, !listen.selfSigned, let cert = listen.cert, let key = listen.key {
            do throws(TLSFileProblem) { _ = try serverContext(cert: cert, key: key) } catch { problems.append(error) }
            if let ca = listen.ca {
                do throws(TLSFileProblem) { _ = try certificates(ca, section: "tls", key: "ca") } catch { problems.append(error) }
            }
        }
        if let upstream {
            do throws(TLSFileProblem) { _ = try clientContext(upstream) } catch { problems.append(error) }
        }
        return problems
    }

    private static func serverContext(cert: String, key: String) throws(TLSFileProblem) -> NIOSSLContext {
        let chain = try certificates(cert, section: "tls", key: "cert")
        let privateKey: NIOSSLPrivateKey
        if let reason = ProxyTLSFiles.unreadable(key) {
            throw TLSFileProblem(section: "tls", key: "key", message: "cannot read \"\(key)\": \(reason)", hint: "give the path of a PEM file")
        }
        do {
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw TLSFileProblem(
                section: "tls", key: "key", message: "\"\(key)\" is not a PEM private key (\(error))",
                hint: "give the certificate's unencrypted private key in PEM (BEGIN PRIVATE KEY, BEGIN EC PRIVATE KEY or BEGIN RSA PRIVATE KEY)")
        }
        do {
            return try NIOSSLContext(
                configuration: .makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey)))
        } catch {
            throw TLSFileProblem(
                section: "tls", key: "key", message: "\"\(key)\" is not the private key of the certificate in \"\(cert)\" (\(error))",
                hint: "give the key the certificate was made for")
        }
    }

    private static func clientContext(_ settings: UpstreamTLS) throws(TLSFileProblem) -> NIOSSLContext {
        if let problem = settings.problem {
            throw TLSFileProblem(section: "upstream_tls", key: problem.key, message: problem.message, hint: problem.hint)
        }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if settings.insecure {
            configuration.certificateVerification = .none
        } else if let ca = settings.ca {
            configuration.trustRoots = .certificates(try certificates(ca, section: "upstream_tls", key: "ca"))
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSFileProblem(
                section: "upstream_tls", key: settings.ca == nil ? "insecure" : "ca", message: "cannot set up TLS to the upstream (\(error))",
                hint: settings.ca == nil ? "give ca: a PEM bundle of the CAs to trust" : "give a PEM bundle of CA certificates")
        }
    }

    /// The PEM certificates in a file; at least one.
    private static func certificates(_ file: String, section: String, key: String) throws(TLSFileProblem) -> [NIOSSLCertificate] {
        if let reason = ProxyTLSFiles.unreadable(file) {
            throw TLSFileProblem(
                section: section, key: key, message: "cannot read \"\(file)\": \(reason)", hint: "give the path of a PEM file")
        }
        let certificates = (try? NIOSSLCertificate.fromPEMFile(file)) ?? []
        guard !certificates.isEmpty else {
            throw TLSFileProblem(
                section: section, key: key, message: "\"\(file)\" holds no PEM certificate",
                hint: "give certificates in PEM, each between -----BEGIN CERTIFICATE----- and -----END CERTIFICATE-----")
        }
        return certificates
    }
}

/// A CA and a server certificate it signed, made when a `self_signed` proxy is created. The CA's
/// certificate is written to a new private directory, for clients to trust; the keys stay in memory.
enum SelfSignedCertificate {
    struct Made {
        var leaf: NIOSSLCertificate
        var key: NIOSSLPrivateKey
        var caFile: String
        var directory: String
    }

    /// - Parameter hosts: names or addresses the certificate must hold besides `localhost`,
    ///   `127.0.0.1` and `::1` (the listen host).
    static func make(proxy: String, hosts: [String]) throws -> Made {
        let now = Date()
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("Faultline")
            CommonName("Faultline proxy \(proxy) CA")
        }
        let ca = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 90 * 86_400, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(caKey.publicKey))
            },
            issuerPrivateKey: .init(caKey))

        var names: [GeneralName] = []
        var seen: Set<String> = []
        for host in ["localhost", "127.0.0.1", "::1"] + hosts where !host.isEmpty && seen.insert(host).inserted {
            if let bytes = ipAddressBytes(host) {
                names.append(.ipAddress(ASN1OctetString(contentBytes: bytes[...])))
            } else {
                names.append(.dnsName(host))
            }
        }
        let leafKey = P256.Signing.PrivateKey()
        let leaf = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(leafKey.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 90 * 86_400, issuer: caName,
            subject: try DistinguishedName {
                OrganizationName("Faultline")
                CommonName(hosts.first(where: { !$0.isEmpty && ipAddressBytes($0) == nil }) ?? "localhost")
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
                AuthorityKeyIdentifier(keyIdentifier: SubjectKeyIdentifier(hash: .init(caKey.publicKey)).keyIdentifier)
            },
            issuerPrivateKey: .init(caKey))

        var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("faultline-tls-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw ProxyError(.serverError, "cannot make a directory for the CA of proxy \(proxy)") }
        let directory = String(cString: made)
        let safeName = String(proxy.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        let caFile = (directory as NSString).appendingPathComponent("\(safeName.isEmpty ? "proxy" : safeName)-ca.pem")
        do {
            try Data(try ca.serializeAsPEM().pemString.utf8).write(to: URL(fileURLWithPath: caFile))
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        return Made(
            leaf: try NIOSSLCertificate(bytes: Array(try leaf.serializeAsPEM().pemString.utf8), format: .pem),
            key: try NIOSSLPrivateKey(bytes: Array(leafKey.pemRepresentation.utf8), format: .pem), caFile: caFile, directory: directory)
    }

    /// The 4 or 16 bytes of an IP address literal; nil for a name.
    static func ipAddressBytes(_ host: String) -> [UInt8]? {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        guard let address = try? SocketAddress(ipAddress: bare, port: 0) else { return nil }
        return ProxyConnection.addressBytes(address)
    }
}

/// Load-time checks of a proxy's TLS settings, for the suite's `proxies:` and `faultline proxy
/// --config`: every problem with its file:line:column.
public enum ProxyTLSCheck {
    /// Reports each problem of the settings (a missing key, a file that is not PEM, a key that
    /// does not match its certificate, an empty CA bundle) at its key under `path`.
    /// - Parameter node: the proxy as written (the object holding `tls` and `upstream_tls`).
    public static func report(tls: ListenTLS?, upstreamTLS: UpstreamTLS?, node: SourceNode, path: DocumentPath, sink: DiagnosticSink) {
        for problem in ProxyTLS.problems(listen: tls, upstream: upstreamTLS) {
            let section = node[problem.section]
            sink.report(
                Diagnostic(
                    "\(problem.section).\(problem.key): \(problem.message)", at: (section?[problem.key] ?? section ?? node).location,
                    path: path.appending(problem.section).appending(problem.key), hint: problem.hint))
        }
    }
}
