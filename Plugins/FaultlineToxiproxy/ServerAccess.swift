import FaultlineKit
import Foundation

/// Where a server's API token comes from, as a profile's `toxics.token` or an agent's `token`
/// gives it.
///
/// ```yaml
/// token: "${agent_token}"                  # a string: a secret (or any value) of the configuration
/// token: {type: env, key: DB_AGENT_TOKEN}  # an environment variable of the run
/// token: {type: file, path: /run/secrets/faultline-agent/token}   # a file (a Kubernetes Secret)
/// ```
///
/// The environment and file forms are read when the run starts, and only their name or path is
/// recorded in the ledger, so `faultline recover` finds the token again where the run did.
public enum TokenSource: Sendable, Equatable {
    case literal(String)
    case environment(String)
    case file(String)

    static let example = "token: {type: env, key: AGENT_TOKEN}, {type: file, path: /run/secrets/token} or \"${secret}\""

    /// Reads the `token` option.
    static func parse(_ value: Value) throws(ArgumentError) -> TokenSource {
        if let text = value.stringValue { return .literal(text) }
        guard let object = value.objectValue, let type = object["type"]?.stringValue else {
            throw ArgumentError("token", "expected a string or {type: env, key} / {type: file, path}, found \(value.kindDescription)", hint: example)
        }
        guard type == "env" || type == "file" else {
            throw ArgumentError(
                "token.type", "unknown token type \"\(type)\"", hint: Suggestion.didYouMean(type, in: ["env", "file"]) ?? "type is env or file")
        }
        let allowed: Set<String> = type == "env" ? ["type", "key"] : ["type", "path"]
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw ArgumentError(
                "token.\(unknown)", "unknown key \"\(unknown)\" in a token of type \(type)",
                hint: Suggestion.didYouMean(unknown, in: allowed) ?? "a \(type) token takes \(allowed.sorted().joined(separator: ", "))")
        }
        switch type {
        case "env":
            guard let key = object["key"]?.stringValue, !key.isEmpty else {
                throw ArgumentError("token.key", "a token of type env needs key: (the environment variable)", hint: example)
            }
            return .environment(key)
        case "file":
            guard let path = object["path"]?.stringValue, !path.isEmpty else {
                throw ArgumentError("token.path", "a token of type file needs path: (the file holding it)", hint: example)
            }
            return .file(URL(fileURLWithPath: path).standardizedFileURL.path)
        default:
            throw ArgumentError("token.type", "unknown token type \"\(type)\"")
        }
    }

    /// Why a token could not be read where its source says.
    public enum ReadFailure: Error, Sendable, Equatable {
        /// The environment variable is not set, or is empty.
        case unsetVariable(String)
        /// The file cannot be read.
        case unreadableFile(String)
        /// The file holds nothing but line ends.
        case emptyFile(String)
    }

    /// Reads the token where it is: the string itself, the environment variable, or the file (a
    /// trailing newline is the editor's, as for faultline proxy --token-file).
    /// - Parameter environment: the variables an environment source is read from.
    /// - Throws: ``ReadFailure`` naming the variable or file, never the token.
    public func read(environment: [String: String]) throws(ReadFailure) -> String {
        switch self {
        case .literal(let token): return token
        case .environment(let key):
            guard let token = environment[key], !token.isEmpty else { throw .unsetVariable(key) }
            return token
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path) else { throw .unreadableFile(path) }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
            guard !token.isEmpty else { throw .emptyFile(path) }
            return token
        }
    }

    /// The token itself.
    /// - Throws: a message naming the variable or file (never the token) when it is missing.
    func resolve(environment: [String: String]) throws(ToxiproxyBackendError) -> String {
        do {
            return try read(environment: environment)
        } catch {
            switch error {
            case .unsetVariable(let key): throw ToxiproxyBackendError("the token's environment variable \(key) is not set (or empty)")
            case .unreadableFile(let path): throw ToxiproxyBackendError("cannot read the token file \(path)")
            case .emptyFile(let path): throw ToxiproxyBackendError("the token file \(path) is empty")
            }
        }
    }

    /// Where the token came from, for messages.
    var origin: String {
        switch self {
        case .literal: "the token option"
        case .environment(let key): "$\(key)"
        case .file(let path): path
        }
    }
}

/// How to reach a server again after the run died: which agent it was, where its token is read
/// from and the CA file of an `https` one. Recorded in every ledger entry on the server; it holds
/// no secret. A token given as a string is not recorded: a `${secret}` read from the
/// environment is recorded as that variable, and one written out (in the suite, a var file,
/// `--var`) as the secret's name only (``tokenGiven``), so that a recovery can say which token
/// it needs.
public struct ServerAccess: Codable, Sendable, Equatable {
    /// The suite's name for the agent; nil for the profile's server or one an activity names.
    public var agent: String?
    /// The environment variable holding the token.
    public var tokenEnvironment: String?
    /// The file holding the token.
    public var tokenFile: String?
    /// How the run's token was given when it is neither: `secret agent_token (written in suite)`,
    /// `a string in the token option`. Its value is not recorded.
    public var tokenGiven: String?
    /// The PEM file of certificate authorities for an `https` server.
    public var caFile: String?

    /// - Parameters:
    ///   - token: the `token` option, parsed.
    ///   - source: where the `token` option's `${name}` was read, when it was one.
    public init(agent: String? = nil, token: TokenSource? = nil, source: ValueSource? = nil, caFile: String? = nil) {
        self.agent = agent
        switch token {
        case .environment(let key): tokenEnvironment = key
        case .file(let path): tokenFile = path
        case .literal(let text) where !text.isEmpty:
            if let variable = source?.environment {
                tokenEnvironment = variable
            } else {
                tokenGiven = source?.description ?? "a string in the token option"
            }
        case .literal, nil: break
        }
        self.caFile = caFile
    }

    enum CodingKeys: String, CodingKey {
        case agent
        case tokenEnvironment = "token_env"
        case tokenFile = "token_file"
        case tokenGiven = "token_given"
        case caFile = "ca_file"
    }

    /// The name `faultline recover --token NAME=…` takes for this server: its agent's, else its URL.
    func tokenKey(_ server: String) -> String { agent ?? server }

    /// The token for a recovery: given to the recovery for this agent or server, else from the
    /// recorded variable or file, else `TOXIPROXY_AUTH_TOKEN`.
    func token(server: String, context: RecoveryContext) -> String? {
        if let given = context.tokens[tokenKey(server)] ?? context.tokens[server] { return given }
        let recorded: TokenSource? = tokenEnvironment.map { .environment($0) } ?? tokenFile.map { .file($0) }
        if let recorded, let token = try? recorded.resolve(environment: context.environment) { return token }
        return context.environment[ToxiproxyBackendFactory.tokenEnvironmentKey].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Where a recovery looks for the token, in order, for messages: `$DB_AGENT_TOKEN, then
    /// $TOXIPROXY_AUTH_TOKEN`.
    func lookedFor(server: String, context: RecoveryContext) -> String {
        let given = context.tokens[tokenKey(server)] != nil || context.tokens[server] != nil ? "--token \(tokenKey(server))" : nil
        return [given, tokenEnvironment.map { "$\($0)" }, tokenFile, "$\(ToxiproxyBackendFactory.tokenEnvironmentKey)"].compactMap { $0 }
            .joined(separator: ", then ")
    }

    /// How to give a recovery the token the ledger could not record.
    func howToGiveToken(_ server: String) -> String {
        "give it to faultline recover as --token \(tokenKey(server))=env:VARIABLE or --token \(tokenKey(server))=file:PATH, or set \(ToxiproxyBackendFactory.tokenEnvironmentKey)"
    }

    /// `agent db-host at http://…`, or the server alone.
    func describe(_ server: String) -> String { agent.map { "agent \($0) (\(server))" } ?? server }
}
