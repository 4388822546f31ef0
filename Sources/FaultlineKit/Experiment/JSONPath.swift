/// A JSONPath query, the subset jsonpath2 users write in Chaos Toolkit tolerances:
/// `$.a.b`, `$['a']`, `$.items[0]`, `$.items[-1]`, `$.items[*].id`, `$..id`, `$.items[1:3]`,
/// `$.items[0,2]` and filters such as `$.items[?(@.status == 'up')]`, `[?(@.ms < 200 && @.ok)]`.
public struct JSONPath: Sendable, CustomStringConvertible {
    indirect enum Selector: Sendable {
        case member(String)
        case wildcard
        case index(Int)
        case indices([Int])
        case slice(Int?, Int?)
        case filter(Filter)
        case descendant(Selector)
    }

    indirect enum Filter: Sendable {
        case exists([String])
        case compare([String], String, Value)
        case and(Filter, Filter)
        case or(Filter, Filter)
        case not(Filter)
    }

    let selectors: [Selector]
    public let description: String

    /// Parses a path; a path without a leading `$` is taken relative to the root.
    public init(_ text: String) throws(JSONPathError) {
        description = text
        var parser = Parser(text)
        selectors = try parser.parse()
    }

    /// Every value the path selects, in document order.
    public func evaluate(_ root: Value) -> [Value] {
        var current = [root]
        for selector in selectors {
            current = current.flatMap { apply(selector, to: $0) }
        }
        return current
    }

    private func apply(_ selector: Selector, to value: Value) -> [Value] {
        switch selector {
        case .member(let name):
            return value[name].map { [$0] } ?? []
        case .wildcard:
            switch value {
            case .array(let a): return a
            case .object(let o): return o.map(\.value)
            default: return []
            }
        case .index(let i):
            guard case .array(let a) = value else { return [] }
            let index = i < 0 ? a.count + i : i
            return a.indices.contains(index) ? [a[index]] : []
        case .indices(let list):
            return list.flatMap { apply(.index($0), to: value) }
        case .slice(let start, let end):
            guard case .array(let a) = value else { return [] }
            func clamp(_ i: Int?, _ fallback: Int) -> Int {
                guard let i else { return fallback }
                return min(max(i < 0 ? a.count + i : i, 0), a.count)
            }
            let lower = clamp(start, 0), upper = clamp(end, a.count)
            return lower < upper ? Array(a[lower..<upper]) : []
        case .filter(let filter):
            let candidates: [Value]
            switch value {
            case .array(let a): candidates = a
            case .object(let o): candidates = o.map(\.value)
            default: candidates = []
            }
            return candidates.filter { matches(filter, $0) }
        case .descendant(let inner):
            var results: [Value] = []
            func walk(_ v: Value) {
                results += apply(inner, to: v)
                switch v {
                case .array(let a): a.forEach(walk)
                case .object(let o): o.forEach { walk($0.value) }
                default: break
                }
            }
            walk(value)
            return results
        }
    }

    private func lookup(_ path: [String], in value: Value) -> Value? {
        var current = value
        for component in path {
            if let i = Int(component), let element = current[i] {
                current = element
            } else if let member = current[component] {
                current = member
            } else {
                return nil
            }
        }
        return current
    }

    private func matches(_ filter: Filter, _ value: Value) -> Bool {
        switch filter {
        case .exists(let path):
            return lookup(path, in: value).map { !$0.isNull } ?? false
        case .and(let a, let b): return matches(a, value) && matches(b, value)
        case .or(let a, let b): return matches(a, value) || matches(b, value)
        case .not(let f): return !matches(f, value)
        case .compare(let path, let op, let literal):
            guard let left = lookup(path, in: value) else { return op == "!=" }
            switch op {
            case "==": return left.looselyEquals(literal)
            case "!=": return !left.looselyEquals(literal)
            default:
                if let l = left.doubleValue, let r = literal.doubleValue {
                    switch op {
                    case "<": return l < r
                    case "<=": return l <= r
                    case ">": return l > r
                    case ">=": return l >= r
                    default: return false
                    }
                }
                if let l = left.stringValue, let r = literal.stringValue {
                    switch op {
                    case "<": return l < r
                    case "<=": return l <= r
                    case ">": return l > r
                    case ">=": return l >= r
                    default: return false
                    }
                }
                return false
            }
        }
    }

    private struct Parser {
        let chars: [Character]
        var i = 0
        let text: String

        init(_ text: String) {
            self.text = text
            chars = Array(text.trimmingCharacters(in: .whitespaces))
        }

        func fail(_ message: String) -> JSONPathError { JSONPathError(message: "\(message) at position \(i + 1) of \"\(text)\"") }

        var atEnd: Bool { i >= chars.count }
        func peek(_ offset: Int = 0) -> Character? { i + offset < chars.count ? chars[i + offset] : nil }

        mutating func parse() throws(JSONPathError) -> [Selector] {
            var selectors: [Selector] = []
            if peek() == "$" {
                i += 1
            } else if !atEnd, peek() != "." && peek() != "[" {
                // Relative path such as `a.b`: read as `$.a.b`.
                selectors.append(.member(readName()))
            }
            while !atEnd {
                if peek() == "." && peek(1) == "." {
                    i += 2
                    if peek() == "[" {
                        selectors.append(.descendant(try bracket()))
                    } else if peek() == "*" {
                        i += 1
                        selectors.append(.descendant(.wildcard))
                    } else {
                        let name = readName()
                        guard !name.isEmpty else { throw fail("expected a name after \"..\"") }
                        selectors.append(.descendant(.member(name)))
                    }
                } else if peek() == "." {
                    i += 1
                    if peek() == "*" {
                        i += 1
                        selectors.append(.wildcard)
                    } else {
                        let name = readName()
                        guard !name.isEmpty else { throw fail("expected a name after \".\"") }
                        selectors.append(.member(name))
                    }
                } else if peek() == "[" {
                    selectors.append(try bracket())
                } else {
                    throw fail("unexpected \"\(peek()!)\"")
                }
            }
            return selectors
        }

        mutating func readName() -> String {
            var name = ""
            while let c = peek(), c != ".", c != "[" {
                name.append(c)
                i += 1
            }
            return name
        }

        mutating func skipSpaces() {
            while peek() == " " { i += 1 }
        }

        mutating func quoted() throws(JSONPathError) -> String {
            let quote = peek()!
            i += 1
            var s = ""
            while let c = peek(), c != quote {
                if c == "\\", let next = peek(1) {
                    s.append(next)
                    i += 2
                    continue
                }
                s.append(c)
                i += 1
            }
            guard peek() == quote else { throw fail("unterminated string") }
            i += 1
            return s
        }

        mutating func integer() -> Int? {
            var s = ""
            if peek() == "-" {
                s.append("-")
                i += 1
            }
            while let c = peek(), c.isNumber {
                s.append(c)
                i += 1
            }
            return Int(s)
        }

        mutating func bracket() throws(JSONPathError) -> Selector {
            i += 1  // [
            skipSpaces()
            let selector: Selector
            if peek() == "'" || peek() == "\"" {
                selector = .member(try quoted())
            } else if peek() == "*" {
                i += 1
                selector = .wildcard
            } else if peek() == "?" {
                i += 1
                skipSpaces()
                let parenthesised = peek() == "("
                if parenthesised { i += 1 }
                let filter = try orFilter()
                skipSpaces()
                if parenthesised {
                    guard peek() == ")" else { throw fail("expected \")\" to close the filter") }
                    i += 1
                }
                selector = .filter(filter)
            } else {
                let start = integer()
                skipSpaces()
                if peek() == ":" {
                    i += 1
                    skipSpaces()
                    let end = integer()
                    selector = .slice(start, end)
                } else if peek() == "," {
                    var list = [start].compactMap { $0 }
                    while peek() == "," {
                        i += 1
                        skipSpaces()
                        guard let next = integer() else { throw fail("expected an index") }
                        list.append(next)
                        skipSpaces()
                    }
                    selector = .indices(list)
                } else {
                    guard let start else { throw fail("expected an index, a quoted name, * or a filter") }
                    selector = .index(start)
                }
            }
            skipSpaces()
            guard peek() == "]" else { throw fail("expected \"]\"") }
            i += 1
            return selector
        }

        mutating func orFilter() throws(JSONPathError) -> Filter {
            var left = try andFilter()
            skipSpaces()
            while peek() == "|" && peek(1) == "|" {
                i += 2
                left = .or(left, try andFilter())
                skipSpaces()
            }
            return left
        }

        mutating func andFilter() throws(JSONPathError) -> Filter {
            var left = try primaryFilter()
            skipSpaces()
            while peek() == "&" && peek(1) == "&" {
                i += 2
                left = .and(left, try primaryFilter())
                skipSpaces()
            }
            return left
        }

        mutating func primaryFilter() throws(JSONPathError) -> Filter {
            skipSpaces()
            if peek() == "!" {
                i += 1
                return .not(try primaryFilter())
            }
            if peek() == "(" {
                i += 1
                let inner = try orFilter()
                skipSpaces()
                guard peek() == ")" else { throw fail("expected \")\"") }
                i += 1
                return inner
            }
            guard peek() == "@" else { throw fail("a filter starts with @") }
            i += 1
            var path: [String] = []
            while peek() == "." || peek() == "[" {
                if peek() == "." {
                    i += 1
                    var name = ""
                    while let c = peek(), c.isLetter || c.isNumber || c == "_" || c == "-" {
                        name.append(c)
                        i += 1
                    }
                    path.append(name)
                } else {
                    i += 1
                    if peek() == "'" || peek() == "\"" { path.append(try quoted()) } else if let n = integer() { path.append(String(n)) }
                    guard peek() == "]" else { throw fail("expected \"]\"") }
                    i += 1
                }
            }
            skipSpaces()
            var op = ""
            while let c = peek(), "=!<>".contains(c) {
                op.append(c)
                i += 1
            }
            if op.isEmpty { return .exists(path) }
            guard ["==", "!=", "<", "<=", ">", ">="].contains(op) else { throw fail("unknown operator \(op)") }
            skipSpaces()
            return .compare(path, op, try literal())
        }

        mutating func literal() throws(JSONPathError) -> Value {
            if peek() == "'" || peek() == "\"" { return .string(try quoted()) }
            var word = ""
            while let c = peek(), !" )&|]".contains(c) {
                word.append(c)
                i += 1
            }
            switch word {
            case "true": return .bool(true)
            case "false": return .bool(false)
            case "null": return .null
            default:
                if let n = Int(word) { return .int(n) }
                if let d = Double(word) { return .double(d) }
                throw fail("expected a literal (number, 'string', true, false, null), found \"\(word)\"")
            }
        }
    }
}

/// A malformed JSONPath.
public struct JSONPathError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { "invalid JSONPath: \(message)" }
}

import Foundation
