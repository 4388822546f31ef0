import FaultlineKit
import Foundation

/// Another machine reached through the system's OpenSSH client: the `host` of a `process`
/// activity, of `process.kill` and `process.signal`, and of a service.
///
/// ```yaml
/// host: ssh://deploy@10.0.0.7:22
/// # or, with options:
/// host:
///   url: ssh://deploy@10.0.0.7:22
///   identity_file: keys/chaos_ed25519
///   known_hosts: keys/known_hosts
///   host_key_checking: strict      # strict (default) | accept-new | off
///   connect_timeout: 5
/// ```
///
/// Faultline never asks for a password or a passphrase (`BatchMode=yes`): the key must work
/// without one (or through an ssh-agent).
public struct RemoteHost: Codable, Sendable, Hashable, NumberRanges, SchemaTypeNamed {
    public static let schemaTypeName = "ssh URL or {url, …}"
    public static let numberRanges: [String: NumberRange] = ["connect_timeout": NumberRange(0...600, unit: "seconds")]

    /// How an unknown or changed host key is treated: OpenSSH's `StrictHostKeyChecking`.
    public enum HostKeyChecking: String, Codable, Sendable, CaseIterable {
        /// The host's key must be in `known_hosts` already (`StrictHostKeyChecking=yes`).
        case strict
        /// A host seen for the first time is added; a changed key is refused.
        case acceptNew = "accept-new"
        /// No check at all (`StrictHostKeyChecking=no`, `UserKnownHostsFile=/dev/null`): for
        /// throw-away test machines only.
        case off
    }

    /// `ssh://user@host:port` as written.
    public var url: String
    /// The login; nil leaves it to ssh (its configuration, or the local user).
    public var user: String?
    /// A name or an address (IPv6 without brackets).
    public var hostname: String
    /// nil leaves it to ssh (its configuration, or 22).
    public var port: Int?
    /// A private key file (`ssh -i`, with `IdentitiesOnly=yes`).
    public var identityFile: String?
    /// The known-hosts file (`UserKnownHostsFile`); nil: ssh's default, `~/.ssh/known_hosts`.
    public var knownHosts: String?
    public var hostKeyChecking: HostKeyChecking
    /// Seconds ssh waits for the connection (`ConnectTimeout`).
    public var connectTimeout: Double

    public static let defaultConnectTimeout = 10.0

    enum CodingKeys: String, CodingKey {
        case url
        case identityFile = "identity_file"
        case knownHosts = "known_hosts"
        case hostKeyChecking = "host_key_checking"
        case connectTimeout = "connect_timeout"
    }

    /// Help for the `host` key, for `argumentHelp`.
    static let help =
        "another machine, over ssh: ssh://user@host:port, or {url, identity_file, known_hosts, host_key_checking: strict|accept-new|off, connect_timeout}"

    public init(
        url: String, identityFile: String? = nil, knownHosts: String? = nil, hostKeyChecking: HostKeyChecking = .strict,
        connectTimeout: Double = RemoteHost.defaultConnectTimeout
    ) throws {
        self.url = url
        (user, hostname, port) = try Self.parse(url)
        self.identityFile = identityFile
        self.knownHosts = knownHosts
        self.hostKeyChecking = hostKeyChecking
        self.connectTimeout = connectTimeout
    }

    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let text = try? single.decode(String.self) {
            do {
                try self.init(url: text)
            } catch let error as ArgumentError {
                throw DecodingError.dataCorruptedError(in: single, debugDescription: error.message + (error.hint.map { " (\($0))" } ?? ""))
            }
            return
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let url = try c.decode(String.self, forKey: .url)
        let checking = try c.decodeIfPresent(String.self, forKey: .hostKeyChecking) ?? "strict"
        guard let policy = HostKeyChecking(rawValue: checking) else {
            throw DecodingError.dataCorruptedError(
                forKey: .hostKeyChecking, in: c, debugDescription: "host_key_checking must be strict, accept-new or off, found \"\(checking)\"")
        }
        do {
            try self.init(
                url: url, identityFile: try c.decodeIfPresent(String.self, forKey: .identityFile),
                knownHosts: try c.decodeIfPresent(String.self, forKey: .knownHosts), hostKeyChecking: policy,
                connectTimeout: try c.decodeIfPresent(Double.self, forKey: .connectTimeout) ?? Self.defaultConnectTimeout)
        } catch let error as ArgumentError {
            throw DecodingError.dataCorruptedError(
                forKey: .url, in: c, debugDescription: error.message + (error.hint.map { " (\($0))" } ?? ""))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(url, forKey: .url)
        try c.encodeIfPresent(identityFile, forKey: .identityFile)
        try c.encodeIfPresent(knownHosts, forKey: .knownHosts)
        try c.encode(hostKeyChecking, forKey: .hostKeyChecking)
        try c.encode(connectTimeout, forKey: .connectTimeout)
    }

    /// `ssh://user@host:port` → its parts. A bare `user@host` or `host` is taken as ssh too.
    static func parse(_ text: String) throws -> (user: String?, host: String, port: Int?) {
        let example = "write host: ssh://user@db.example:22"
        var rest = Substring(text)
        if let scheme = rest.range(of: "://") {
            guard rest[..<scheme.lowerBound] == "ssh" else {
                throw ArgumentError("host", "host must be an ssh:// URL, found \"\(text)\"", hint: example)
            }
            rest = rest[scheme.upperBound...]
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        var user: String?
        if let at = rest.lastIndex(of: "@") {
            user = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
        }
        var host: Substring
        var port: Int?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw ArgumentError("host", "unclosed [ in host \"\(text)\"", hint: example) }
            host = rest[rest.index(after: rest.startIndex)..<close]
            rest = rest[rest.index(after: close)...]
            if rest.hasPrefix(":") {
                guard let number = Int(rest.dropFirst()) else { throw ArgumentError("host", "bad port in host \"\(text)\"", hint: example) }
                port = number
            } else if !rest.isEmpty {
                throw ArgumentError("host", "unexpected \"\(rest)\" in host \"\(text)\"", hint: example)
            }
        } else if let colon = rest.lastIndex(of: ":"), rest.firstIndex(of: ":") == colon {
            host = rest[..<colon]
            guard let number = Int(rest[rest.index(after: colon)...]) else {
                throw ArgumentError("host", "bad port in host \"\(text)\"", hint: example)
            }
            port = number
        } else {
            host = rest
        }
        // Nothing ssh could read as an option, and nothing a shell or ssh_config would expand.
        let hostCharacters = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%")
        guard !host.isEmpty, !host.hasPrefix("-"), host.unicodeScalars.allSatisfy(hostCharacters.contains) else {
            throw ArgumentError("host", "\"\(host)\" is not a host name or address (in \"\(text)\")", hint: example)
        }
        if let user {
            let userCharacters = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
            guard !user.isEmpty, !user.hasPrefix("-"), user.unicodeScalars.allSatisfy(userCharacters.contains) else {
                throw ArgumentError("host", "\"\(user)\" is not a user name (in \"\(text)\")", hint: example)
            }
        }
        if let port, !(1...65535).contains(port) {
            throw ArgumentError("host", "port \(port) is not between 1 and 65535 (in \"\(text)\")", hint: example)
        }
        return (user, String(host), port)
    }

    /// `ssh://user@host:port`, the way messages and ledger entries name the host.
    public var display: String {
        let address = hostname.contains(":") ? "[\(hostname)]" : hostname
        return "ssh://" + (user.map { "\($0)@" } ?? "") + address + (port.map { ":\($0)" } ?? "")
    }

    /// What is wrong with the settings, each naming its key.
    func problems(key: String = "host") -> [ArgumentError] {
        var problems: [ArgumentError] = []
        if !(connectTimeout > 0 && connectTimeout <= 600) {
            problems.append(ArgumentError("\(key).connect_timeout", "connect_timeout must be more than 0 and at most 600 seconds"))
        }
        if let identityFile, !FileManager.default.isReadableFile(atPath: identityFile) {
            problems.append(
                ArgumentError(
                    "\(key).identity_file", "identity file \(identityFile) does not exist or cannot be read", hint: "generate one with ssh-keygen"))
        }
        if let knownHosts, hostKeyChecking == .strict, !FileManager.default.isReadableFile(atPath: knownHosts) {
            problems.append(
                ArgumentError(
                    "\(key).known_hosts", "known_hosts file \(knownHosts) does not exist or cannot be read",
                    hint: "with host_key_checking: strict it must hold the host's key (ssh-keyscan, after checking the fingerprint)"))
        }
        return problems
    }

    /// The options every ssh command for this host starts with (before the destination).
    var sshOptions: [String] {
        var options = [
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=\(max(1, Int(connectTimeout.rounded(.up))))",
            // A dead peer ends the connection instead of hanging an activity.
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
            "-o", "LogLevel=ERROR",
        ]
        switch hostKeyChecking {
        case .strict: options += ["-o", "StrictHostKeyChecking=yes"]
        case .acceptNew: options += ["-o", "StrictHostKeyChecking=accept-new"]
        case .off: options += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        }
        if let knownHosts, hostKeyChecking != .off { options += ["-o", "UserKnownHostsFile=\(Self.configValue(knownHosts))"] }
        if let identityFile { options += ["-o", "IdentitiesOnly=yes", "-o", "IdentityFile=\(Self.configValue(identityFile))"] }
        if let port { options += ["-p", String(port)] }
        if let user { options += ["-l", user] }
        return options
    }

    /// A file name as an ssh_config value: quoted, and `%` doubled so ssh does not expand it.
    static func configValue(_ path: String) -> String {
        "\"" + path.replacingOccurrences(of: "%", with: "%%") + "\""
    }
}

/// An ssh connection that failed: the host, what happened, and what to fix.
public struct SSHError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, for tests and messages.
    public enum Kind: String, Sendable {
        case refused = "connection refused"
        case timeout = "timed out"
        case unreachable = "host unreachable"
        case unknownHost = "unknown host name"
        case authentication = "authentication failed"
        case hostKeyChanged = "host key mismatch"
        case hostKeyUnknown = "host key unknown"
        case failed = "ssh failed"
    }

    public var host: String
    public var kind: Kind
    /// ssh's own words (its last line).
    public var detail: String
    public var hint: String

    public var description: String {
        "ssh to \(host): \(kind.rawValue)" + (detail.isEmpty ? "" : " (\(detail))") + "; \(hint)"
    }

    /// Reads ssh's stderr after it exited with 255.
    static func classify(_ stderr: String, host: RemoteHost) -> SSHError {
        // By isNewline: ssh ends its lines with "\r\n", one Character, which a split on "\n" keeps whole.
        let lines = stderr.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            !$0.isEmpty && !$0.hasPrefix("@")
        }
        let detail = lines.last { !$0.hasPrefix("Host key verification failed") } ?? lines.last ?? ""
        let address = "\(host.hostname):\(host.port.map(String.init) ?? "22")"
        let knownHosts = host.knownHosts ?? "~/.ssh/known_hosts"
        func error(_ kind: Kind, _ hint: String) -> SSHError { SSHError(host: host.display, kind: kind, detail: detail, hint: hint) }
        if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || stderr.contains("has changed and you have requested strict checking") {
            return error(
                .hostKeyChanged,
                "the host's key is not the one \(knownHosts) holds for it; if it changed legitimately, remove the old key with ssh-keygen -R \"\(host.port.map { "[\(host.hostname)]:\($0)" } ?? host.hostname)\" -f \(knownHosts)"
            )
        }
        if stderr.contains("host key is known") || stderr.contains("Host key verification failed") {
            return error(
                .hostKeyUnknown,
                "\(knownHosts) has no key for \(address); add it (ssh-keyscan, after checking its fingerprint) or set host_key_checking: accept-new")
        }
        if stderr.contains("Permission denied") || stderr.contains("Too many authentication failures") {
            return error(
                .authentication,
                "check identity_file\(host.identityFile.map { " (\($0))" } ?? "") and that its public key is in \(host.user ?? "the user")'s authorized_keys on the host; the key must work without a passphrase (BatchMode)"
            )
        }
        if stderr.contains("Connection refused") {
            return error(.refused, "nothing accepts SSH connections on \(address); check the port and that sshd runs")
        }
        if stderr.contains("timed out") || stderr.contains("Connection timed out") {
            return error(
                .timeout,
                "no SSH answer from \(address) within \(ManagedService.format(host.connectTimeout)) s (connect_timeout); check the address and that the host is up"
            )
        }
        if stderr.contains("No route to host") || stderr.contains("Network is unreachable") {
            return error(.unreachable, "no route to \(host.hostname); check the address")
        }
        if stderr.contains("Could not resolve hostname") || stderr.contains("Name or service not known") {
            return error(.unknownHost, "\(host.hostname) does not resolve; check the name")
        }
        return error(.failed, "check the host settings (url, identity_file, known_hosts)")
    }
}
