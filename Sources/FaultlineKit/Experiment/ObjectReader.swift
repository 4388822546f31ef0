/// Reads the members of one object node field by field, so that one bad field does not hide the
/// problems in the others, and reports the members nobody asked for as unknown keys.
public struct ObjectReader {
    public let node: SourceNode
    public let path: DocumentPath
    public let sink: DiagnosticSink
    private var known: [String] = []
    public let isObject: Bool

    /// - Parameter what: how to name the object in a message when `node` is not an object.
    public init(_ node: SourceNode, path: DocumentPath, sink: DiagnosticSink, what: String = "an object") {
        self.node = node
        self.path = path
        self.sink = sink
        isObject = node.members != nil
        if !isObject {
            sink.report(Diagnostic("expected \(what), found \(describeFound(node))", at: node.location, path: path))
        }
    }

    /// Declares keys that are allowed but read elsewhere (or ignored).
    public mutating func allow(_ keys: String...) {
        for key in keys where !known.contains(key) { known.append(key) }
    }

    /// The raw node of a member, or nil. Missing required members are reported.
    public mutating func node(_ key: String, required: Bool = false, hint: String? = nil) -> SourceNode? {
        // A key read twice (say, checked, then decoded) is listed once in suggestions.
        if !known.contains(key) { known.append(key) }
        guard isObject else { return nil }
        if let member = node.member(key) { return member.value }
        if required {
            sink.report(Diagnostic("missing required key \"\(key)\"", at: node.location, path: path, hint: hint ?? "add \(key): …"))
        }
        return nil
    }

    /// The location of a member's key.
    public func keyLocation(_ key: String) -> SourceLocation? { node.member(key)?.keyLocation }

    /// Decodes a member into `T`, reporting problems (and returning nil) instead of throwing.
    public mutating func decode<T: Decodable>(_ type: T.Type, _ key: String, required: Bool = false, hint: String? = nil) -> T? {
        guard let child = node(key, required: required, hint: hint) else { return nil }
        if child.isNull, !required { return nil }
        do {
            return try NodeDecoder().decode(T.self, from: child, path: path.appending(key), sink: sink)
        } catch {
            sink.report(error, fallbackLocation: child.location, path: path.appending(key))
            return nil
        }
    }

    /// A member that must be a non-empty string.
    public mutating func nonEmptyString(_ key: String, required: Bool = false, hint: String? = nil) -> String? {
        guard let value = decode(String.self, key, required: required, hint: hint) else { return nil }
        if value.trimmingCharacters(in: .whitespaces).isEmpty {
            sink.report(Diagnostic("\"\(key)\" must not be empty", at: node[key]?.location, path: path.appending(key)))
            return nil
        }
        return value
    }

    /// Reports every member not read or allowed, with the closest known key as a suggestion.
    public func reportUnknownKeys() {
        guard let members = node.members else { return }
        for member in members where !known.contains(member.key) {
            // Past the sink's limit the diagnostic is only counted: skip the suggestion.
            let hint = sink.isFull ? nil : Suggestion.didYouMean(member.key, in: known) ?? "known keys: \(known.joined(separator: ", "))"
            sink.report(
                Diagnostic("unknown key \"\(member.key)\"", at: member.keyLocation ?? node.location, path: path.appending(member.key), hint: hint))
        }
    }
}

import Foundation
