import FaultlineKit

/// HTML text helpers.
enum HTML {
    /// Text content and attribute values: `&`, `<`, `>`, `"` and `'` escaped.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\r": out += ""
            case let c where (c.value < 0x20 && c != "\n" && c != "\t") || c.value == 0x7F: out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A table; header and cells are already HTML. Columns listed in `numeric` are right-aligned.
    static func table(_ header: [String], numeric: Set<Int> = [], classes: String = "", _ rows: [[String]]) -> String {
        var out = "<div class=\"scroll\"><table\(classes.isEmpty ? "" : " class=\"\(classes)\"")>\n<thead><tr>"
        for (index, cell) in header.enumerated() { out += "<th\(numeric.contains(index) ? " class=\"num\"" : "")>\(cell)</th>" }
        out += "</tr></thead>\n<tbody>\n"
        for row in rows {
            out += "<tr>"
            for (index, cell) in row.enumerated() { out += "<td\(numeric.contains(index) ? " class=\"num\"" : "")>\(cell)</td>" }
            out += "</tr>\n"
        }
        return out + "</tbody>\n</table></div>\n"
    }

    /// A coloured label: `<span class="pill bad">deviated</span>`.
    static func pill(_ text: String, _ tone: Label.Tone) -> String {
        "<span class=\"pill \(tone.rawValue)\">\(escape(text))</span>"
    }

    /// A status mark and word for an activity record.
    static func status(_ record: RunRecord) -> String {
        pill(Label.result(record), Label.tone(record))
    }

    static func code(_ text: String) -> String { "<code>\(escape(text))</code>" }
}
