/// A path to a value inside a document, printed as `method[1].provider.url`.
public struct DocumentPath: Sendable, Hashable, CustomStringConvertible {
    public enum Component: Sendable, Hashable {
        case key(String)
        case index(Int)
    }

    public var components: [Component]

    public init(_ components: [Component] = []) { self.components = components }

    public static let root = DocumentPath()

    public func appending(_ key: String) -> DocumentPath { DocumentPath(components + [.key(key)]) }
    public func appending(_ index: Int) -> DocumentPath { DocumentPath(components + [.index(index)]) }

    public var isEmpty: Bool { components.isEmpty }

    public var description: String {
        var text = ""
        for component in components {
            switch component {
            case .key(let key):
                let plain = !key.isEmpty && key.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
                if plain {
                    if !text.isEmpty { text += "." }
                    text += key
                } else {
                    text += "[\"\(key)\"]"
                }
            case .index(let index):
                text += "[\(index)]"
            }
        }
        return text.isEmpty ? "(top level)" : text
    }
}

/// One problem found in a user's input: where it is, what is wrong, and what to write instead.
///
/// Its description is a single line a user can act on, in the form compilers use:
/// `experiments/latency.yaml:14:9: unknown key "rolbacks" (did you mean "rollbacks"?) at rolbacks`.
public struct Diagnostic: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable {
        case error, warning
    }

    public var severity: Severity
    public var location: SourceLocation?
    public var path: DocumentPath?
    public var message: String
    /// What to do about it, e.g. `did you mean "rollbacks"?`.
    public var hint: String?
    /// Whether this follows from a problem reported elsewhere (a use of a configuration value whose
    /// environment variable is not set): a sink that already holds an error drops it, as a compiler
    /// does not repeat an undeclared name's error at every use.
    public var isConsequence: Bool

    public init(
        _ message: String, at location: SourceLocation? = nil, path: DocumentPath? = nil, hint: String? = nil,
        severity: Severity = .error, isConsequence: Bool = false
    ) {
        self.message = message
        self.location = location
        self.path = path
        self.hint = hint
        self.severity = severity
        self.isConsequence = isConsequence
    }

    /// This diagnostic with the secrets `redactor` knows masked in its message and hint.
    public func redacted(by redactor: Redactor) -> Diagnostic {
        guard !redactor.isEmpty else { return self }
        var copy = self
        copy.message = redactor.redact(message)
        copy.hint = hint.map(redactor.redact)
        return copy
    }

    public var description: String {
        var text = ""
        if let location { text += "\(location): " }
        if severity == .warning { text += "warning: " }
        text += message
        if let hint { text += " (\(hint))" }
        if let path, !path.isEmpty { text += " at \(path)" }
        return text
    }
}

/// Every problem found while loading or validating a document, in file order.
public struct ValidationError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }

    public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Collects diagnostics so that validation can report all problems, not only the first.
///
/// Like a compiler's error limit, it keeps the first ``limit`` problems and drops the rest, so that
/// a document with a hundred thousand mistakes is reported in a moment, not printed for minutes.
public final class DiagnosticSink: @unchecked Sendable {
    // Used by one loading pass at a time; never shared across tasks.
    public private(set) var diagnostics: [Diagnostic] = []
    private var seen: Set<Diagnostic> = []
    /// The most diagnostics kept.
    public let limit: Int

    /// Every secret value resolved while loading, masked in what the sink hands out: a secret
    /// substituted into a path or URL that fails validation is not printed in clear.
    public private(set) var redactor = Redactor()

    public init(limit: Int = 500) { self.limit = limit }

    /// Masks these secrets in every diagnostic, those reported before included.
    public func addSecrets(_ secrets: [String: [String: Value]]) { redactor.add(secrets: secrets) }

    /// Whether the sink keeps no more: validation may stop, and a reporter skip work (a
    /// suggestion) that would only be dropped.
    public var isFull: Bool { diagnostics.count >= limit }

    public func report(_ diagnostic: Diagnostic) {
        // A consequence is kept only when its cause is not here, so that nothing fails unexplained.
        if diagnostic.isConsequence && hasErrors { return }
        guard !isFull, seen.insert(diagnostic).inserted else { return }
        diagnostics.append(diagnostic)
    }

    public func report(_ error: any Error, fallbackLocation: SourceLocation?, path: DocumentPath?) {
        switch error {
        case let diagnostic as Diagnostic:
            report(diagnostic)
        case let validation as ValidationError:
            validation.diagnostics.forEach(report)
        default:
            report(Diagnostic("\(error)", at: fallbackLocation, path: path))
        }
    }

    public var hasErrors: Bool { isFull || diagnostics.contains { $0.severity == .error } }

    /// The collected diagnostics sorted by position, so output follows the file, and a last one
    /// counting those dropped beyond the limit.
    public var sorted: [Diagnostic] {
        let kept = diagnostics.enumerated().sorted { a, b in
            let la = a.element.location, lb = b.element.location
            switch (la, lb) {
            case let (la?, lb?) where la.file == lb.file:
                if la.line != lb.line { return la.line < lb.line }
                if la.column != lb.column { return la.column < lb.column }
                return a.offset < b.offset
            default:
                return a.offset < b.offset
            }
        }.map { $0.element.redacted(by: redactor) }
        guard isFull else { return kept }
        // At the last problem kept, in file order: where validation stopped (every error line a
        // user, or a tool reading them, sees names a position).
        let last = kept.last { $0.location != nil }?.location
        return kept + [Diagnostic("validation stopped after \(limit) problems", at: last, hint: "fix these and validate again")]
    }

    /// Throws a ``ValidationError`` holding everything collected, if any of it is an error.
    public func throwIfErrors() throws {
        if hasErrors { throw ValidationError(sorted) }
    }
}

/// Suggests the closest known word for a misspelt one, the way compilers do.
public enum Suggestion {
    /// Words longer than this get no suggestion: nobody mistypes a 100-character name, and the
    /// edit distance costs the product of the lengths.
    static let longestWord = 100
    /// Among more candidates than this a suggestion helps nobody, and costs a distance to each:
    /// callers with open-ended lists (variables, activity names) offer none.
    public static let mostCandidates = 1000

    /// The candidate nearest to `word`, if it is close enough to be a plausible typo.
    public static func closest(to word: String, in candidates: some Sequence<String>) -> String? {
        guard word.utf8.count <= longestWord else { return nil }
        let lowered = word.lowercased()
        let length = lowered.count
        var best: (String, Int)?
        for candidate in candidates where candidate.utf8.count <= longestWord {
            let lowercased = candidate.lowercased()
            // A distance is at least the difference in length: skip what cannot be close.
            let limit = max(1, min(length, lowercased.count) / 3)
            if abs(lowercased.count - length) > limit { continue }
            let distance = editDistance(lowered, lowercased)
            if distance <= limit, best == nil || distance < best!.1 { best = (candidate, distance) }
        }
        return best?.0
    }

    /// `did you mean "x"?` for the closest candidate, or nil.
    public static func didYouMean(_ word: String, in candidates: some Sequence<String>) -> String? {
        closest(to: word, in: candidates).map { "did you mean \"\($0)\"?" }
    }

    /// Damerau-Levenshtein distance (optimal string alignment): a swap of neighbours costs one.
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previous2[j - 2] + 1)
                }
            }
            (previous2, previous, current) = (previous, current, previous2)
        }
        return previous[b.count]
    }
}
