import Foundation

/// TLS a proxy terminates on its listen address (Faultline's extension; Toxiproxy proxies plain
/// TCP only). Clients speak TLS to the proxy; its toxics see the decrypted bytes.
///
/// ```yaml
/// tls: {cert: server.pem, key: server-key.pem}   # PEM files, relative to the suite file
/// tls: {self_signed: true}                       # a CA and a certificate made at start
/// ```
public struct ListenTLS: Sendable, Codable, Equatable {
    /// The certificate chain (PEM), leaf first.
    public var cert: String?
    /// The certificate's private key (PEM).
    public var key: String?
    /// Make a CA and a certificate for the listen address, `localhost`, `127.0.0.1` and `::1`
    /// when the proxy is created.
    public var selfSigned: Bool
    /// The file a client should trust: as given, the generated CA's when `self_signed`, else
    /// `cert`. Exported as `${proxies.NAME.ca}`.
    public var ca: String?

    enum CodingKeys: String, CodingKey {
        case cert, key, ca
        case selfSigned = "self_signed"
    }

    public init(cert: String? = nil, key: String? = nil, selfSigned: Bool = false, ca: String? = nil) {
        self.cert = cert
        self.key = key
        self.selfSigned = selfSigned
        self.ca = ca
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cert = try c.decodeIfPresent(String.self, forKey: .cert)
        key = try c.decodeIfPresent(String.self, forKey: .key)
        selfSigned = try c.decodeIfPresent(Bool.self, forKey: .selfSigned) ?? false
        ca = try c.decodeIfPresent(String.self, forKey: .ca)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(cert, forKey: .cert)
        try c.encodeIfPresent(key, forKey: .key)
        if selfSigned { try c.encode(true, forKey: .selfSigned) }
        try c.encodeIfPresent(ca, forKey: .ca)
    }

    /// What is wrong with the combination of fields (files aside), by key; nil when it is whole.
    public var problem: (key: String, message: String, hint: String)? {
        if selfSigned {
            if cert != nil || key != nil {
                return (
                    cert != nil ? "cert" : "key", "self_signed makes its own certificate, so cert and key are not used",
                    "remove self_signed, or cert and key"
                )
            }
            if ca != nil { return ("ca", "self_signed makes its own CA, so ca is not used", "remove ca; ${proxies.NAME.ca} names the CA made") }
            return nil
        }
        switch (cert, key) {
        case (nil, nil):
            return ("cert", "tls needs a certificate", "give cert and key (PEM files), or self_signed: true")
        case (_?, nil):
            return ("key", "tls.cert needs its private key", "add key: the PEM file of the certificate's private key")
        case (nil, _?):
            return ("cert", "tls.key needs its certificate", "add cert: the PEM file of the certificate chain")
        default:
            return nil
        }
    }

    /// The same settings with relative file names resolved against `directory`.
    public func resolvingFiles(against directory: String) -> ListenTLS {
        var copy = self
        copy.cert = cert.map { ProxyTLSFiles.resolve($0, against: directory) }
        copy.key = key.map { ProxyTLSFiles.resolve($0, against: directory) }
        copy.ca = ca.map { ProxyTLSFiles.resolve($0, against: directory) }
        return copy
    }
}

/// TLS a proxy originates to its upstream (Faultline's extension): the proxy is the TLS client,
/// so plain clients reach a TLS server, and toxics see the decrypted bytes.
///
/// ```yaml
/// upstream_tls: {}                                  # verify with the system's trusted CAs
/// upstream_tls: {ca: upstream-ca.pem, server_name: api.internal}
/// upstream_tls: {insecure: true}                    # no verification at all
/// ```
public struct UpstreamTLS: Sendable, Codable, Equatable {
    /// CA certificates (PEM bundle) the upstream's certificate must chain to; nil: the system's.
    public var ca: String?
    /// The name sent as SNI and checked against the certificate; nil: the upstream host when it
    /// is a name (an IP address is checked as an address, and no SNI is sent).
    public var serverName: String?
    /// Skip verification (any certificate, any name). Explicit, never a default.
    public var insecure: Bool

    enum CodingKeys: String, CodingKey {
        case ca, insecure
        case serverName = "server_name"
    }

    public init(ca: String? = nil, serverName: String? = nil, insecure: Bool = false) {
        self.ca = ca
        self.serverName = serverName
        self.insecure = insecure
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ca = try c.decodeIfPresent(String.self, forKey: .ca)
        serverName = try c.decodeIfPresent(String.self, forKey: .serverName)
        insecure = try c.decodeIfPresent(Bool.self, forKey: .insecure) ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(ca, forKey: .ca)
        try c.encodeIfPresent(serverName, forKey: .serverName)
        if insecure { try c.encode(true, forKey: .insecure) }
    }

    /// What is wrong with the combination of fields (files aside), by key; nil when it is whole.
    public var problem: (key: String, message: String, hint: String)? {
        if insecure, ca != nil {
            return ("ca", "insecure: true verifies nothing, so ca is not used", "remove insecure to verify with ca, or remove ca")
        }
        if let serverName, serverName.isEmpty || serverName.contains(where: { $0 == " " || $0 == "/" || $0 == ":" }) {
            return ("server_name", "server_name must be a host name, found \"\(serverName)\"", "write e.g. server_name: api.example.com")
        }
        return nil
    }

    /// The same settings with a relative `ca` resolved against `directory`.
    public func resolvingFiles(against directory: String) -> UpstreamTLS {
        var copy = self
        copy.ca = ca.map { ProxyTLSFiles.resolve($0, against: directory) }
        return copy
    }
}

/// File names in TLS settings.
public enum ProxyTLSFiles {
    /// An absolute path: `file` as it is when absolute, else under `directory` (the directory of
    /// the document that names it; empty for the working directory).
    public static func resolve(_ file: String, against directory: String) -> String {
        if file.hasPrefix("/") { return file }
        let base = directory.isEmpty ? FileManager.default.currentDirectoryPath : directory
        let joined = (base as NSString).appendingPathComponent(file)
        return joined.hasPrefix("/") ? joined : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(joined)
    }

    /// Why `path` cannot be read as a file; nil when it can.
    public static func unreadable(_ path: String) -> String? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return "no such file" }
        if isDirectory.boolValue { return "it is a directory" }
        return FileManager.default.isReadableFile(atPath: path) ? nil : "permission denied"
    }
}
