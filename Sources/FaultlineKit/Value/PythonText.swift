/// Values as Python writes them, for the places where Chaos Toolkit turns a value into text with
/// Python's `str()`: a `${name}` inside a longer string (`string.Template`), the non-string
/// elements of a `process` provider's `arguments` list, form fields and query parameters
/// (`requests`). So `--verbose=${flag}` gives `--verbose=True`, as it does under `chaos run`.
extension Value {
    /// Python's `str()` of the value: a string as it is, `None`, `True`/`False`, floats as Python
    /// prints them (`1.0`, `1e+16`), lists and dicts as their `repr` (`{'a': [1, None]}`).
    public var pythonText: String {
        if case .string(let s) = self { return s }
        return pythonRepr
    }

    /// Python's `repr()` of the value.
    public var pythonRepr: String {
        switch self {
        case .null: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return Self.pythonFloat(d)
        case .string(let s): return Self.pythonStringRepr(s)
        case .array(let elements): return "[" + elements.map(\.pythonRepr).joined(separator: ", ") + "]"
        case .object(let object):
            return "{" + object.map { Self.pythonStringRepr($0.key) + ": " + $0.value.pythonRepr }.joined(separator: ", ") + "}"
        }
    }

    /// `repr(float)`: the shortest digits that read back, fixed notation for a decimal exponent
    /// from -4 to 15, scientific (`1e-05`, `1.5e+16`) outside it, and always a fraction or exponent.
    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description gives the same shortest round-trip digits; only the layout differs.
        let (digits, point) = decimalDigits(abs(d))
        let sign = d < 0 ? "-" : ""
        if point > -4 && point <= 16 {
            if point <= 0 { return sign + "0." + String(repeating: "0", count: -point) + digits }
            if digits.count <= point { return sign + digits + String(repeating: "0", count: point - digits.count) + ".0" }
            return sign + String(digits.prefix(point)) + "." + String(digits.dropFirst(point))
        }
        let exponent = point - 1
        let mantissa = digits.count == 1 ? digits : String(digits.prefix(1)) + "." + String(digits.dropFirst())
        let exponentText = String(abs(exponent))
        return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + (exponentText.count < 2 ? "0" : "") + exponentText
    }

    /// The significant digits of a positive double (no leading or trailing zeros) and the position
    /// of the decimal point: value = 0.DIGITS × 10^point.
    private static func decimalDigits(_ d: Double) -> (String, Int) {
        let text = "\(d)"
        var mantissa = text
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = String(text[..<e])
            exponent = Int(text[text.index(after: e)...]) ?? 0
        }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        let integer = String(parts[0])
        let fraction = parts.count > 1 ? String(parts[1]) : ""
        var digits = integer + fraction
        var point = integer.count + exponent
        while digits.hasPrefix("0") && digits.count > 1 {
            digits.removeFirst()
            point -= 1
        }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        return (digits, point)
    }

    /// `repr(str)`: single quotes unless the text holds a single quote and no double one;
    /// backslashes, the quote and control characters escaped.
    static func pythonStringRepr(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where Character(scalar) == quote: out += "\\" + String(quote)
            case _ where scalar.value < 0x20 || (0x7F...0xA0).contains(scalar.value):
                let hex = String(scalar.value, radix: 16)
                out += "\\x" + (hex.count < 2 ? "0" : "") + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out.append(quote)
        return out
    }
}
