import Foundation
import Synchronization

/// `${name}` substitution, Chaos Toolkit style, with the holes closed.
///
/// - `${name}` is replaced by the value of `name` (configuration first, then secrets).
/// - A string that is exactly `${name}` keeps the value's type: `"${port}"` is the integer 8080,
///   `"${headers}"` an object. Inside a longer string a value is written as Python's `str()`
///   writes it (`True`, `None`, `1.0`, `{'a': 1}`), as Chaos Toolkit's `string.Template` does.
/// - `$$` writes a literal `$`; a `$` not followed by `{` or `$` is kept as written (so shell
///   text like `$HOME` survives — Chaos Toolkit would substitute it).
/// - `${a.b}` reads member `b` of object `a` when there is no key named `a.b`.
/// - An unknown name is an error with a suggestion, never silently left in place.
/// - What one `${…}` produces is bounded (``InputLimits/substitutionSize``: the length of a
///   string, the size of a value), and so, while a plan loads, is the sum of everything
///   substituted (a ``SubstitutionBudget``): a 500-byte nesting of references cannot expand into
///   gigabytes.
public struct Substitution: Sendable {
    public var variables: [String: Value]
    /// The most one substitution may produce, in bytes and values.
    public var sizeLimit: Int
    /// What a whole load may substitute, when set (the run substitutes without one).
    public var budget: SubstitutionBudget?
    /// The secret values among ``variables``, so that arguments others can read (a command line)
    /// are refused when one lands there.
    public var secrets = Redactor()
    /// Names defined but without a value, their problem already reported (an environment variable
    /// not set): a use is a consequence of that, not an unknown name.
    public var unavailable: Set<String> = []
    /// Where the named values were read (``ResolvedConfiguration/sources``).
    public var sources: [String: ValueSource] = [:]

    public init(variables: [String: Value], sizeLimit: Int = InputLimits.documents.substitutionSize, budget: SubstitutionBudget? = nil) {
        self.variables = variables
        self.sizeLimit = sizeLimit
        self.budget = budget
    }

    /// A piece of a template string.
    enum Part: Equatable {
        case text(String)
        case variable(String)
    }

    /// Splits a string into text and variable parts.
    /// - Throws: a message for an unterminated `${`.
    static func parse(_ string: String) throws(TemplateSyntaxError) -> [Part] {
        guard string.contains("$") else { return [.text(string)] }
        var parts: [Part] = []
        var text = ""
        var i = string.startIndex
        while i < string.endIndex {
            let c = string[i]
            guard c == "$" else {
                text.append(c)
                i = string.index(after: i)
                continue
            }
            let next = string.index(after: i)
            if next < string.endIndex, string[next] == "$" {
                text.append("$")
                i = string.index(after: next)
            } else if next < string.endIndex, string[next] == "{" {
                let nameStart = string.index(after: next)
                guard let close = string[nameStart...].firstIndex(of: "}") else {
                    throw TemplateSyntaxError(message: "unterminated \"${\" (close it with \"}\", or write \"$$\" for a literal \"$\")")
                }
                let name = String(string[nameStart..<close]).trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty else { throw TemplateSyntaxError(message: "empty variable name in \"${}\"") }
                if !text.isEmpty { parts.append(.text(text)); text = "" }
                parts.append(.variable(name))
                i = string.index(after: close)
            } else {
                text.append("$")
                i = next
            }
        }
        if !text.isEmpty { parts.append(.text(text)) }
        return parts
    }

    /// Where the value of `string` was read, when `string` is exactly one `${name}` of a value
    /// read or written in a layer; nil otherwise (text around it, a value made by the run).
    public func source(of string: String) -> ValueSource? {
        guard let parts = try? Self.parse(string), parts.count == 1, case .variable(let name) = parts[0] else { return nil }
        return sources[name]
    }

    /// The variable names a string refers to.
    public static func references(in string: String) -> [String] {
        ((try? parse(string)) ?? []).compactMap { if case .variable(let name) = $0 { name } else { nil } }
    }

    /// Looks a name up, following `a.b` into objects when there is no literal key `a.b`.
    public func lookup(_ name: String) -> Value? {
        if let value = variables[name] { return value }
        guard name.contains(".") else { return nil }
        let components = name.split(separator: ".").map(String.init)
        // `${.}` and the like have no first component.
        guard let first = components.first, var current = variables[first] else { return nil }
        for component in components.dropFirst() {
            if let index = Int(component), let element = current[index] {
                current = element
            } else if let member = current[component] {
                current = member
            } else {
                return nil
            }
        }
        return current
    }

    /// Substitutes one string.
    /// - Parameters:
    ///   - location, path: where the string was written, for errors.
    public func substitute(_ string: String, at location: SourceLocation? = nil, path: DocumentPath? = nil) throws -> Value {
        let parts: [Part]
        do {
            parts = try Self.parse(string)
        } catch {
            throw Diagnostic(error.message, at: location, path: path)
        }
        if parts.count == 1, case .variable(let name) = parts[0] {
            let value = try resolve(name, location, path)
            try charge(value.weight(upTo: sizeLimit), name, location, path)
            return value
        }
        var result = ""
        for part in parts {
            let piece: String
            switch part {
            case .text(let text): piece = text
            case .variable(let name):
                let value = try resolve(name, location, path)
                // The value's size first: its Python text is about as long.
                if value.weight(upTo: sizeLimit) > sizeLimit { throw tooLarge(name, location, path) }
                piece = value.pythonText
            }
            guard result.utf8.count + piece.utf8.count <= sizeLimit else { throw tooLarge(nil, location, path) }
            result += piece
        }
        try charge(result.utf8.count, nil, location, path)
        return .string(result)
    }

    private func resolve(_ name: String, _ location: SourceLocation?, _ path: DocumentPath?) throws -> Value {
        if let value = lookup(name) { return value }
        if !unavailable.isEmpty, unavailable.contains(name) || unavailable.contains(String(name.prefix { $0 != "." })) {
            throw Diagnostic(
                "\"${\(name)}\" has no value: its definition could not be read", at: location, path: path,
                hint: "see the error at its definition", isConsequence: true)
        }
        // Among thousands of names a suggestion helps nobody, and costs a distance to each.
        let hint =
            (variables.count <= Suggestion.mostCandidates ? Suggestion.didYouMean(name, in: variables.keys.sorted()) : nil)
            ?? "define it under configuration:, in the profile, or with --var \(name)=…"
        throw Diagnostic("unknown variable \"${\(name)}\"", at: location, path: path, hint: hint)
    }

    /// A load error when `node`, substituted, is a command line (or anything else every user of the
    /// machine can read, as in `/proc/<pid>/cmdline`) holding one of ``secrets``; it points at the
    /// innermost value that does, and does not show the secret.
    /// - Parameters:
    ///   - key: the argument's name, for the message.
    ///   - path: where it is in the document.
    public func exposedSecret(in node: SourceNode, key: String, path: DocumentPath) -> Diagnostic? {
        func holder(_ node: SourceNode) -> SourceNode? {
            guard secrets.redact(node.value) != node.value else { return nil }
            let children = node.elements ?? node.members?.map(\.value) ?? []
            return children.lazy.compactMap(holder).first ?? node
        }
        guard !secrets.isEmpty, let holder = holder(node) else { return nil }
        return Diagnostic(
            "a secret would be in \(key), which every user of this machine can read (a command line is public in /proc/<pid>/cmdline)",
            at: holder.location ?? node.location, path: path,
            hint: "pass it in env: (env: {TOKEN: \"${token}\"}) and let the program read its environment")
    }

    /// Counts what a substitution produced against the size limit and the load's budget.
    private func charge(_ size: Int, _ name: String?, _ location: SourceLocation?, _ path: DocumentPath?) throws {
        guard size <= sizeLimit else { throw tooLarge(name, location, path) }
        guard budget?.spend(size) ?? true else {
            throw Diagnostic(
                "${…} substitutions produce more than \(InputLimits.bytes(budget!.total)) in all", at: location, path: path,
                hint: "refer to large values less often")
        }
    }

    private func tooLarge(_ name: String?, _ location: SourceLocation?, _ path: DocumentPath?) -> Diagnostic {
        Diagnostic(
            "\(name.map { "${\($0)}" } ?? "this ${…} substitution") produces more than \(InputLimits.bytes(sizeLimit))", at: location, path: path,
            hint: "a configuration value that refers to others several times grows with each level; refer to it once")
    }

    /// How a value reads in a message: strings as they are, whole numbers without a fraction,
    /// objects and lists as compact JSON, null as nothing. (Substitution writes Python's text,
    /// ``Value/pythonText``.)
    public static func interpolated(_ value: Value) -> String {
        switch value {
        case .string(let s): s
        case .null: ""
        case .int(let i): String(i)
        case .double(let d): d.rounded() == d && abs(d) < 1e15 ? String(Int(d)) : "\(d)"
        case .bool(let b): b ? "true" : "false"
        case .array, .object: JSONWriter.string(value, pretty: false)
        }
    }

    /// Substitutes every string in a node tree (keys are left alone), keeping locations.
    public func substitute(_ node: SourceNode, path: DocumentPath) throws -> SourceNode {
        try substitute(node, path: path, sink: nil)
    }

    /// Substitutes every string in a node tree, reporting each unknown name to `sink` when given
    /// (the string is then left as written) instead of stopping at the first.
    public func substitute(_ node: SourceNode, path: DocumentPath, sink: DiagnosticSink?) throws -> SourceNode {
        switch node.content {
        case .scalar(.string(let s), _):
            guard s.contains("$") else { return node }
            do {
                return SourceNode(try substitute(s, at: node.location, path: path), at: node.location)
            } catch let diagnostic as Diagnostic where sink != nil {
                sink?.report(diagnostic)
                return node
            }
        case .scalar:
            return node
        case .array(let elements):
            return SourceNode(
                .array(try elements.enumerated().map { try substitute($0.element, path: path.appending($0.offset), sink: sink) }),
                at: node.location)
        case .object(let members):
            return SourceNode(
                .object(
                    try members.map {
                        SourceNode.Member(
                            key: $0.key, keyLocation: $0.keyLocation, value: try substitute($0.value, path: path.appending($0.key), sink: sink))
                    }), at: node.location)
        }
    }

    /// Substitutes every string in a plain value.
    public func substitute(_ value: Value) throws -> Value {
        try value.mapStrings { try substitute($0) }
    }
}

/// A malformed `${…}` reference.
struct TemplateSyntaxError: Error {
    var message: String
}

/// What the `${…}` substitutions of one load may produce in all (``InputLimits/substitutionTotal``),
/// shared by the copies of a ``Substitution`` that the load makes.
public final class SubstitutionBudget: Sendable {
    /// The budget, in bytes and values.
    public let total: Int
    private let spent = Atomic<Int>(0)

    public init(total: Int) { self.total = total }

    /// Counts `amount`; false once the total is exceeded.
    func spend(_ amount: Int) -> Bool {
        let (old, _) = spent.add(amount, ordering: .relaxed)
        return old <= total - amount
    }
}

extension Value {
    /// The size of the value — one per value, plus the bytes of its strings — counted no further
    /// than just past `limit`, so that measuring a huge value costs no more than the limit.
    func weight(upTo limit: Int) -> Int {
        var total = 0
        func walk(_ value: Value) -> Bool {
            total += 1
            switch value {
            case .string(let s): total += s.utf8.count
            case .array(let elements):
                for element in elements where total <= limit { guard walk(element) else { return false } }
            case .object(let object):
                for (key, member) in object where total <= limit {
                    total += key.utf8.count
                    guard walk(member) else { return false }
                }
            default: break
            }
            return total <= limit
        }
        _ = walk(self)
        return total
    }
}
