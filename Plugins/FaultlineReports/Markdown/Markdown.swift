/// GitHub-flavoured Markdown building blocks: escaping, code spans and tables.
enum Markdown {
    enum Align { case left, right }

    /// Inline text with Markdown's punctuation escaped and line breaks folded.
    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "\\", "`", "*", "_", "[", "]", "<", ">", "|", "#", "~": out += "\\\(character)"
            case "\n", "\r": out += " "
            default: out.append(character)
            }
        }
        return out
    }

    /// A table cell: escaped inline text, with line breaks kept as `<br>`.
    static func cell(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { escape(String($0)) }.joined(separator: "<br>")
    }

    /// A code span that survives backticks inside and pipes inside tables.
    static func code(_ text: String) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "|", with: "\\|")
        var fence = "`"
        while flat.contains(fence) { fence += "`" }
        let pad = flat.hasPrefix("`") || flat.hasSuffix("`") ? " " : ""
        return fence + pad + flat + pad + fence
    }

    /// A fenced code block (the fence grows past any backtick run inside).
    static func block(_ text: String, language: String = "") -> String {
        var fence = "```"
        while text.contains(fence) { fence += "`" }
        return fence + language + "\n" + text + (text.hasSuffix("\n") ? "" : "\n") + fence + "\n"
    }

    /// A table; cells are already Markdown.
    static func table(_ header: [String], align: [Align]? = nil, _ rows: [[String]]) -> String {
        let alignment = align ?? header.map { _ in .left }
        var out = "| " + header.joined(separator: " | ") + " |\n"
        out += "|" + alignment.map { $0 == .right ? "---:" : "---" }.joined(separator: "|") + "|\n"
        for row in rows { out += "| " + row.map { $0.isEmpty ? " " : $0 }.joined(separator: " | ") + " |\n" }
        return out
    }
}
