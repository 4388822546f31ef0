/// A JSONPath query, read and evaluated as jsonpath2 0.4.5 does — the library Chaos Toolkit's
/// `jsonpath` tolerance uses — so a path selects the same values under `faultline run` as under
/// `chaos run`, and a `count` sees the same number.
///
/// jsonpath2's dialect, which differs from Goessner's JSONPath that other tools implement:
/// - Paths start with `$`. Names after `.` are identifiers (`[_A-Za-z][_A-Za-z0-9]*`, and not
///   `and`, `or`, `not`, `true`, `false`, `null`); other names go in brackets, in double quotes:
///   `$["content-type"]`. Strings take double quotes only.
/// - `[?(…)]` tests the value it is applied to, not its elements: `$.items[?(@.ok)]` selects the
///   list `items` itself when the list has a member `ok`, which it never has; to filter a list's
///   elements, write `$.items[*][?(@.ok)]`. `@.ok` alone means "has a member `ok`" (any value,
///   `null` and `false` included).
/// - Comparisons are `=`, `!=`, `<`, `<=`, `>`, `>=` (no `==`); `and`, `or`, `not` combine them
///   (`and` binds looser than `or`). A comparison holds when any value the left side selects
///   compares true with any value the right side selects; `<` and friends compare numbers only
///   (booleans count as 1 and 0, as in Python), and `=` is Python's `==` (`1 = 1.0`, `true = 1`).
/// - Slices `[start:end:step]`, unions `[0,"a"]`, `..` (recursive descent), `*`, paths as
///   subscripts (`[@.key]`), and the functions `length()`, `keys()`, `values()`, `entries()`,
///   `charAt(i)`, `substring(i[, j])`.
public struct JSONPath: Sendable, CustomStringConvertible {
    let path: Path
    public let description: String

    /// Parses a path as jsonpath2 does.
    /// - Throws: ``JSONPathError`` for anything jsonpath2 rejects (Chaos Toolkit then refuses the
    ///   experiment), with a hint for the usual mistakes (`==`, single quotes, `&&`).
    public init(_ text: String) throws(JSONPathError) {
        description = text
        var parser = try Parser(text)
        path = try parser.parseDocumentPath()
    }

    /// Every value the path selects, in jsonpath2's order.
    public func evaluate(_ root: Value) -> [Value] {
        path.match(root: root, current: root)
    }

    // MARK: Model

    struct Path: Sendable {
        /// `$` (the document) or `@` (the value a filter or subscript is applied to).
        var fromRoot: Bool
        var steps: [Step]

        func match(root: Value, current: Value) -> [Value] {
            JSONPath.match(steps[...], root: root, current: fromRoot ? root : current)
        }
    }

    enum Step: Sendable {
        /// `.name` or `[a, b, …]`: each subscript in turn.
        case subscripts([Subscript])
        /// `..name` or `..[a, b]`: the subscripts applied to the value and to every value below it.
        case descendants([Subscript])
    }

    enum Subscript: Sendable {
        case key(String)
        case index(Int)
        case slice(start: Int?, end: Int?, step: Int?)
        case wildcard
        case filter(Expression)
        /// `[@.x]`: the values the path selects, used as indexes (numbers) or keys (strings).
        case path(Path)
        case call(Function, [Operand])
    }

    enum Function: String, Sendable, CaseIterable {
        case charAt, entries, keys, length, substring, values
    }

    enum Operand: Sendable {
        case path(Path)
        case literal(Value)

        func values(root: Value, current: Value) -> [Value] {
            switch self {
            case .path(let path): path.match(root: root, current: current)
            case .literal(let value): [value]
            }
        }
    }

    indirect enum Expression: Sendable {
        case and([Expression])
        case or([Expression])
        case not(Expression)
        /// A path alone: it selects something. A literal alone: Python's truthiness.
        case some(Operand)
        case compare(Operand, Comparison, Operand)

        func holds(root: Value, current: Value) -> Bool {
            switch self {
            case .and(let all): return all.allSatisfy { $0.holds(root: root, current: current) }
            case .or(let any): return any.contains { $0.holds(root: root, current: current) }
            case .not(let inner): return !inner.holds(root: root, current: current)
            case .some(.path(let path)): return !path.match(root: root, current: current).isEmpty
            case .some(.literal(let value)): return value.isTruthy
            case .compare(let left, let comparison, let right):
                let lefts = left.values(root: root, current: current)
                let rights = right.values(root: root, current: current)
                return lefts.contains { l in rights.contains { r in comparison.holds(l, r) } }
            }
        }
    }

    enum Comparison: String, Sendable {
        case equal = "=", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="

        func holds(_ l: Value, _ r: Value) -> Bool {
            switch self {
            case .equal: return l.pythonEquals(r)
            case .notEqual: return !l.pythonEquals(r)
            default:
                // Python: numbers (booleans included) only; anything else is false.
                guard let a = l.pythonNumber, let b = r.pythonNumber else { return false }
                switch self {
                case .less: return a < b
                case .lessOrEqual: return a <= b
                case .greater: return a > b
                default: return a >= b
                }
            }
        }
    }

    // MARK: Evaluation

    static func match(_ steps: ArraySlice<Step>, root: Value, current: Value) -> [Value] {
        guard let step = steps.first else { return [current] }
        let rest = steps.dropFirst()
        switch step {
        case .subscripts(let subscripts):
            return subscripts.flatMap { item in
                apply(item, root: root, current: current).flatMap { match(rest, root: root, current: $0) }
            }
        case .descendants(let subscripts):
            // The value itself first, then each child in turn, depth first (jsonpath2's order).
            var results = match([.subscripts(subscripts)] + rest, root: root, current: current)
            for child in children(of: current) { results += match(steps, root: root, current: child) }
            return results
        }
    }

    static func children(of value: Value) -> [Value] {
        switch value {
        case .array(let elements): elements
        case .object(let object): object.map(\.value)
        default: []
        }
    }

    static func apply(_ item: Subscript, root: Value, current: Value) -> [Value] {
        switch item {
        case .key(let key):
            return current[key].map { [$0] } ?? []
        case .index(let index):
            guard case .array(let elements) = current else { return [] }
            let position = index < 0 ? index + elements.count : index
            return elements.indices.contains(position) ? [elements[position]] : []
        case .slice(let start, let end, let step):
            guard case .array(let elements) = current else { return [] }
            return sliceIndices(count: elements.count, start: start, end: end, step: step).flatMap { apply(.index($0), root: root, current: current) }
        case .wildcard:
            return children(of: current)
        case .filter(let expression):
            return expression.holds(root: root, current: current) ? [current] : []
        case .path(let path):
            return path.match(root: root, current: current).flatMap { selected -> [Value] in
                switch selected {
                case .int(let index): apply(.index(index), root: root, current: current)
                case .string(let key): apply(.key(key), root: root, current: current)
                default: []
                }
            }
        case .call(let function, let operands):
            // Every combination of the values the arguments select, as itertools.product.
            var combinations: [[Value]] = [[]]
            for operand in operands {
                let values = operand.values(root: root, current: current)
                combinations = combinations.flatMap { prefix in values.map { prefix + [$0] } }
            }
            return combinations.compactMap { call(function, $0, on: current) }
        }
    }

    /// jsonpath2's `ArraySliceSubscript`: a negative start beyond the length starts at 0, a
    /// negative end is counted from the end, and Python's `range` does the rest.
    static func sliceIndices(count: Int, start: Int?, end: Int?, step: Int?) -> [Int] {
        let from = start.map { $0 < 0 ? (abs($0) < count ? $0 + count : 0) : $0 } ?? 0
        let to = end.map { $0 < 0 ? $0 + count : $0 } ?? count
        let by = step ?? 1
        guard by != 0 else { return [] }
        return Array(stride(from: from, to: to, by: by))
    }

    static func call(_ function: Function, _ arguments: [Value], on value: Value) -> Value? {
        func integer(_ v: Value) -> Int? {
            switch v {
            case .int(let i): i
            case .bool(let b): b ? 1 : 0
            default: nil
            }
        }
        switch function {
        case .length:
            guard arguments.isEmpty else { return nil }
            switch value {
            case .array(let elements): return .int(elements.count)
            case .string(let s): return .int(s.unicodeScalars.count)
            default: return nil
            }
        case .keys:
            guard arguments.isEmpty else { return nil }
            switch value {
            case .object(let object): return .array(object.keys.map { .string($0) })
            case .array(let elements): return .array(elements.indices.map { .int($0) })
            default: return nil
            }
        case .values:
            guard arguments.isEmpty else { return nil }
            switch value {
            case .object(let object): return .array(object.map(\.value))
            case .array: return value
            default: return nil
            }
        case .entries:
            guard arguments.isEmpty else { return nil }
            switch value {
            case .object(let object): return .array(object.map { [.string($0.key), $0.value] })
            case .array(let elements): return .array(elements.enumerated().map { [.int($0.offset), $0.element] })
            default: return nil
            }
        case .charAt:
            guard case .string(let s) = value, arguments.count == 1, let index = integer(arguments[0]) else { return nil }
            let scalars = Array(s.unicodeScalars)
            let position = index < 0 ? index + scalars.count : index
            guard scalars.indices.contains(position) else { return nil }
            return .string(String(scalars[position]))
        case .substring:
            guard case .string(let s) = value, (1...2).contains(arguments.count) else { return nil }
            guard let start = integer(arguments[0]) else { return nil }
            var end: Int?
            if arguments.count == 2 {
                guard let given = integer(arguments[1]) else { return nil }
                end = given
            }
            let scalars = Array(s.unicodeScalars)
            // Python's slice s[start:end], clamped.
            func clamp(_ i: Int) -> Int { i < 0 ? max(i + scalars.count, 0) : min(i, scalars.count) }
            let lower = clamp(start), upper = end.map(clamp) ?? scalars.count
            var text = String.UnicodeScalarView()
            if lower < upper { text.append(contentsOf: scalars[lower..<upper]) }
            return .string(String(text))
        }
    }

    // MARK: Parsing

    enum Token: Hashable, Sendable {
        case current, recursiveDescent, root, dot, star
        case and, or, not, eq, ne, lt, le, gt, ge
        case `true`, `false`, null
        case braceLeft, braceRight, bracketLeft, bracketRight, colon, comma, parenLeft, parenRight, question
        case identifier(String)
        /// The text between the quotes, as written (jsonpath2 does not unescape it).
        case string(String)
        case number(String)

        var text: String {
            switch self {
            case .current: "@"
            case .recursiveDescent: ".."
            case .root: "$"
            case .dot: "."
            case .star: "*"
            case .and: "and"
            case .or: "or"
            case .not: "not"
            case .eq: "="
            case .ne: "!="
            case .lt: "<"
            case .le: "<="
            case .gt: ">"
            case .ge: ">="
            case .true: "true"
            case .false: "false"
            case .null: "null"
            case .braceLeft: "{"
            case .braceRight: "}"
            case .bracketLeft: "["
            case .bracketRight: "]"
            case .colon: ":"
            case .comma: ","
            case .parenLeft: "("
            case .parenRight: ")"
            case .question: "?"
            case .identifier(let name): name
            case .string(let s): "\"\(s)\""
            case .number(let n): n
            }
        }
    }

    struct Parser {
        let text: String
        var tokens: [(token: Token, offset: Int)] = []
        var position = 0

        init(_ text: String) throws(JSONPathError) {
            self.text = text
            tokens = try Self.tokenize(text)
        }

        func fail(_ message: String, hint: String? = nil) -> JSONPathError {
            let offset = position < tokens.count ? tokens[position].offset : text.unicodeScalars.count
            return JSONPathError(message: "\(message) at position \(offset + 1) of \"\(text)\"", hint: hint)
        }

        var peek: Token? { position < tokens.count ? tokens[position].token : nil }
        func peek(_ ahead: Int) -> Token? { position + ahead < tokens.count ? tokens[position + ahead].token : nil }

        mutating func take(_ token: Token) -> Bool {
            guard peek == token else { return false }
            position += 1
            return true
        }

        mutating func expect(_ token: Token, _ what: String) throws(JSONPathError) {
            guard take(token) else { throw unexpected(expecting: what) }
        }

        func unexpected(expecting what: String) -> JSONPathError {
            guard let token = peek else { return fail("the path ends where \(what) belongs") }
            var hint: String?
            if token == .eq, position > 0, tokens[position - 1].token == .eq { hint = "jsonpath2 writes equality as a single =" }
            return fail("unexpected \"\(token.text)\", expected \(what)", hint: hint)
        }

        /// `jsonpath : ROOT_VALUE subscript? EOF`
        mutating func parseDocumentPath() throws(JSONPathError) -> Path {
            guard take(.root) else {
                throw fail("a path starts with $", hint: "write $.\(text.trimmingCharacters(in: .whitespaces).drop { $0 == "." })")
            }
            let steps = try parseSteps()
            guard peek == nil else { throw unexpected(expecting: "the end of the path") }
            return Path(fromRoot: true, steps: steps)
        }

        /// `subscript`, repeated.
        mutating func parseSteps() throws(JSONPathError) -> [Step] {
            var steps: [Step] = []
            while let token = peek {
                switch token {
                case .recursiveDescent:
                    position += 1
                    if peek == .bracketLeft {
                        steps.append(.descendants(try parseBracket()))
                    } else {
                        steps.append(.descendants([try parseBareword()]))
                    }
                case .dot:
                    position += 1
                    steps.append(.subscripts([try parseBareword()]))
                case .bracketLeft:
                    steps.append(.subscripts(try parseBracket()))
                default:
                    return steps
                }
            }
            return steps
        }

        /// `subscriptableBareword : ID subscriptableArguments? | '*'`
        mutating func parseBareword() throws(JSONPathError) -> Subscript {
            if take(.star) { return .wildcard }
            guard case .identifier(let name)? = peek else {
                if let token = peek, [.true, .false, .null, .and, .or, .not].contains(token) {
                    throw fail("\"\(token.text)\" is a keyword in jsonpath2", hint: "write [\"\(token.text)\"]")
                }
                throw unexpected(expecting: "a name or * after \".\"")
            }
            position += 1
            if peek == .parenLeft { return try parseCall(name) }
            return .key(name)
        }

        mutating func parseCall(_ name: String) throws(JSONPathError) -> Subscript {
            guard let function = Function(rawValue: name) else {
                throw fail(
                    "jsonpath2 has no function \"\(name)\"",
                    hint: "its functions: \(Function.allCases.map { "\($0.rawValue)()" }.joined(separator: ", "))")
            }
            try expect(.parenLeft, "(")
            var operands: [Operand] = []
            if !take(.parenRight) {
                repeat { operands.append(try parseOperand()) } while take(.comma)
                try expect(.parenRight, ") or , in the function's arguments")
            }
            return .call(function, operands)
        }

        /// `subscriptables : '[' subscriptable (',' subscriptable)* ']'`
        mutating func parseBracket() throws(JSONPathError) -> [Subscript] {
            try expect(.bracketLeft, "[")
            var subscripts: [Subscript] = []
            repeat { subscripts.append(try parseSubscriptable()) } while take(.comma)
            try expect(.bracketRight, "] or ,")
            return subscripts
        }

        mutating func parseSubscriptable() throws(JSONPathError) -> Subscript {
            switch peek {
            case .string(let key)?:
                position += 1
                return .key(key)
            case .number(let text)?:
                guard let index = Int(text) else { throw fail("\(text) is not an index (a whole number)") }
                position += 1
                if peek == .colon { return try parseSlice(start: index) }
                return .index(index)
            case .colon?:
                return try parseSlice(start: nil)
            case .star?:
                position += 1
                return .wildcard
            case .question?:
                position += 1
                try expect(.parenLeft, "( after ?")
                let expression = try parseExpression()
                try expect(.parenRight, ") to close the filter")
                return .filter(expression)
            case .root?, .current?:
                return .path(try parseRelativePath())
            case .identifier(let name)?:
                position += 1
                guard peek == .parenLeft else {
                    throw fail("a name in brackets is quoted in jsonpath2", hint: "write [\"\(name)\"] or .\(name)")
                }
                return try parseCall(name)
            default:
                throw unexpected(expecting: "a \"name\", an index, a slice, *, a filter ?(…) or a path")
            }
        }

        /// `sliceable : ':' NUMBER? (':' NUMBER?)?`, after an optional start.
        mutating func parseSlice(start: Int?) throws(JSONPathError) -> Subscript {
            try expect(.colon, ":")
            var end: Int?, step: Int?
            if case .number(let text)? = peek {
                guard let value = Int(text) else { throw fail("\(text) is not a whole number") }
                position += 1
                end = value
            }
            if take(.colon), case .number(let text)? = peek {
                guard let value = Int(text) else { throw fail("\(text) is not a whole number") }
                position += 1
                step = value
            }
            if step == 0 { throw fail("a slice step cannot be 0") }
            return .slice(start: start, end: end, step: step)
        }

        /// `jsonpath_ : (ROOT_VALUE | CURRENT_VALUE) subscript?`
        mutating func parseRelativePath() throws(JSONPathError) -> Path {
            let fromRoot = peek == .root
            position += 1
            return Path(fromRoot: fromRoot, steps: try parseSteps())
        }

        /// `expression : andExpression`; `andExpression : orExpression (AND andExpression)?`
        mutating func parseExpression() throws(JSONPathError) -> Expression {
            var parts = [try parseOr()]
            while take(.and) { parts.append(try parseOr()) }
            return parts.count == 1 ? parts[0] : .and(parts)
        }

        /// `orExpression : notExpression (OR orExpression)?`
        mutating func parseOr() throws(JSONPathError) -> Expression {
            var parts = [try parseNot()]
            while take(.or) { parts.append(try parseNot()) }
            return parts.count == 1 ? parts[0] : .or(parts)
        }

        /// `notExpression : NOT notExpression | '(' expression ')' | jsonpath__ (op jsonpath__)?`
        mutating func parseNot() throws(JSONPathError) -> Expression {
            if take(.not) { return .not(try parseNot()) }
            if take(.parenLeft) {
                let inner = try parseExpression()
                try expect(.parenRight, ")")
                return inner
            }
            let left = try parseOperand()
            let comparisons: [Token: Comparison] = [.eq: .equal, .ne: .notEqual, .lt: .less, .le: .lessOrEqual, .gt: .greater, .ge: .greaterOrEqual]
            if let token = peek, let comparison = comparisons[token] {
                position += 1
                return .compare(left, comparison, try parseOperand())
            }
            return .some(left)
        }

        /// `jsonpath__ : jsonpath_ | value`
        mutating func parseOperand() throws(JSONPathError) -> Operand {
            if peek == .root || peek == .current { return .path(try parseRelativePath()) }
            return .literal(try parseValue())
        }

        /// `value : STRING | NUMBER | obj | array | TRUE | FALSE | NULL`
        mutating func parseValue() throws(JSONPathError) -> Value {
            switch peek {
            case .string(let s)?:
                position += 1
                return .string(s)
            case .number(let text)?:
                position += 1
                if text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { return .double(Double(text) ?? 0) }
                return Int(text).map { .int($0) } ?? .double(Double(text) ?? 0)
            case .true?:
                position += 1
                return .bool(true)
            case .false?:
                position += 1
                return .bool(false)
            case .null?:
                position += 1
                return .null
            case .braceLeft?:
                position += 1
                var object = ValueObject()
                if take(.braceRight) { return .object(object) }
                repeat {
                    guard case .string(let key)? = peek else { throw unexpected(expecting: "a \"key\" in the object") }
                    position += 1
                    try expect(.colon, ": after the key")
                    object[key] = try parseValue()
                } while take(.comma)
                try expect(.braceRight, "} or ,")
                return .object(object)
            case .bracketLeft?:
                position += 1
                var elements: [Value] = []
                if take(.bracketRight) { return .array(elements) }
                repeat { elements.append(try parseValue()) } while take(.comma)
                try expect(.bracketRight, "] or ,")
                return .array(elements)
            default:
                throw unexpected(expecting: "a value (\"string\", number, true, false, null, {…}, […]) or a path (@… or $…)")
            }
        }

        /// jsonpath2's lexer: the longest token wins, and a keyword wins over a name of the same length.
        static func tokenize(_ text: String) throws(JSONPathError) -> [(token: Token, offset: Int)] {
            let scalars = Array(text.unicodeScalars)
            var tokens: [(token: Token, offset: Int)] = []
            var i = 0
            func isDigit(_ s: Unicode.Scalar) -> Bool { ("0"..."9").contains(s) }
            func isNameStart(_ s: Unicode.Scalar) -> Bool { s == "_" || ("a"..."z").contains(s) || ("A"..."Z").contains(s) }
            func error(_ message: String, hint: String? = nil) -> JSONPathError {
                JSONPathError(message: "\(message) at position \(i + 1) of \"\(text)\"", hint: hint)
            }
            while i < scalars.count {
                let c = scalars[i]
                let start = i
                let next: Unicode.Scalar? = i + 1 < scalars.count ? scalars[i + 1] : nil
                switch c {
                case " ", "\t", "\n", "\r":
                    i += 1
                    continue
                case "@": tokens.append((.current, start)); i += 1
                case "$": tokens.append((.root, start)); i += 1
                case ".":
                    if next == "." {
                        tokens.append((.recursiveDescent, start)); i += 2
                    } else {
                        tokens.append((.dot, start)); i += 1
                    }
                case "*": tokens.append((.star, start)); i += 1
                case "=": tokens.append((.eq, start)); i += 1
                case ">":
                    if next == "=" { tokens.append((.ge, start)); i += 2 } else { tokens.append((.gt, start)); i += 1 }
                case "<":
                    if next == "=" { tokens.append((.le, start)); i += 2 } else { tokens.append((.lt, start)); i += 1 }
                case "!":
                    guard next == "=" else { throw error("\"!\" is not jsonpath2", hint: "write not (…) to negate") }
                    tokens.append((.ne, start)); i += 2
                case "{": tokens.append((.braceLeft, start)); i += 1
                case "}": tokens.append((.braceRight, start)); i += 1
                case "[": tokens.append((.bracketLeft, start)); i += 1
                case "]": tokens.append((.bracketRight, start)); i += 1
                case ":": tokens.append((.colon, start)); i += 1
                case ",": tokens.append((.comma, start)); i += 1
                case "(": tokens.append((.parenLeft, start)); i += 1
                case ")": tokens.append((.parenRight, start)); i += 1
                case "?": tokens.append((.question, start)); i += 1
                case "\"":
                    i += 1
                    var content = String.UnicodeScalarView()
                    while true {
                        guard i < scalars.count else { throw error("unterminated string") }
                        let s = scalars[i]
                        if s == "\"" { i += 1; break }
                        if s.value < 0x20 { throw error("a control character in a string") }
                        if s == "\\" {
                            guard i + 1 < scalars.count else { throw error("unterminated string") }
                            let e = scalars[i + 1]
                            if "\"\\/bfnrt".unicodeScalars.contains(e) {
                                content.append(s); content.append(e); i += 2
                            } else if e == "u", i + 5 < scalars.count, scalars[(i + 2)...(i + 5)].allSatisfy({ $0.properties.isASCIIHexDigit }) {
                                content.append(contentsOf: scalars[i...(i + 5)]); i += 6
                            } else {
                                throw error("invalid escape in a string")
                            }
                            continue
                        }
                        content.append(s)
                        i += 1
                    }
                    tokens.append((.string(String(content)), start))
                case "'":
                    throw error("jsonpath2 strings take double quotes", hint: "write \"…\" instead of '…'")
                case "&", "|":
                    throw error("\"\(c)\" is not jsonpath2", hint: "combine conditions with and, or")
                case "-", "0"..."9":
                    // NUMBER : '-'? ('0' | [1-9][0-9]*) ('.' [0-9]+)? ([Ee] [+-]? ('0' | [1-9][0-9]*))?
                    var j = i
                    if scalars[j] == "-" { j += 1 }
                    guard j < scalars.count, isDigit(scalars[j]) else { throw error("\"-\" without a number") }
                    func integerPart(_ k: inout Int) {
                        if scalars[k] == "0" { k += 1 } else { while k < scalars.count, isDigit(scalars[k]) { k += 1 } }
                    }
                    integerPart(&j)
                    if j + 1 < scalars.count, scalars[j] == ".", isDigit(scalars[j + 1]) {
                        j += 1
                        while j < scalars.count, isDigit(scalars[j]) { j += 1 }
                    }
                    if j < scalars.count, scalars[j] == "e" || scalars[j] == "E" {
                        var k = j + 1
                        if k < scalars.count, scalars[k] == "+" || scalars[k] == "-" { k += 1 }
                        if k < scalars.count, isDigit(scalars[k]) {
                            integerPart(&k)
                            j = k
                        }
                    }
                    var number = String.UnicodeScalarView()
                    number.append(contentsOf: scalars[i..<j])
                    tokens.append((.number(String(number)), start))
                    i = j
                default:
                    guard isNameStart(c) else { throw error("unexpected character \"\(c)\"") }
                    var j = i + 1
                    while j < scalars.count, isNameStart(scalars[j]) || isDigit(scalars[j]) { j += 1 }
                    var nameScalars = String.UnicodeScalarView()
                    nameScalars.append(contentsOf: scalars[i..<j])
                    let name = String(nameScalars)
                    let keywords: [String: Token] = ["and": .and, "or": .or, "not": .not, "true": .true, "false": .false, "null": .null]
                    tokens.append((keywords[name] ?? .identifier(name), start))
                    i = j
                }
            }
            return tokens
        }
    }
}

/// A path jsonpath2 would reject.
public struct JSONPathError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var hint: String?

    public init(message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }

    public var description: String { "invalid JSONPath: \(message)" + (hint.map { " (\($0))" } ?? "") }
}

extension Value {
    /// Python's `==` between values decoded from JSON: numbers compare by value whatever their
    /// type (`1 == 1.0`, `True == 1`), lists element by element, dicts by keys and values.
    public func pythonEquals(_ other: Value) -> Bool {
        if let a = pythonNumber, let b = other.pythonNumber { return a == b }
        switch (self, other) {
        case (.null, .null): return true
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.pythonEquals($1) }
        case (.object(let a), .object(let b)):
            return a.count == b.count && a.allSatisfy { key, value in b[key].map { value.pythonEquals($0) } ?? false }
        default: return false
        }
    }

    /// The value as a Python number, booleans included (`True` is 1).
    var pythonNumber: Double? {
        switch self {
        case .bool(let b): b ? 1 : 0
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
}
