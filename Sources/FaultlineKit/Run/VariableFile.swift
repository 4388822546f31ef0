import Foundation

/// `--var-file`: configuration and secrets from a file beside the suite.
enum VariableFile {
    /// Reads `--var-file`: JSON or YAML `{configuration: {}, secrets: {}}`, or a `.env` file of KEY=VALUE lines.
    static func read(_ file: String, sink: DiagnosticSink) -> ConfigurationLayer? {
        if DocumentLoader.format(forPath: file) == nil { return readDotEnv(file, sink: sink) }
        do {
            let node = try DocumentLoader.load(path: file)
            var reader = ObjectReader(node, path: .root, sink: sink, what: "an object with configuration and/or secrets")
            let layer = ConfigurationLayer.parse(
                name: file, configuration: reader.node("configuration"), secrets: reader.node("secrets"), path: .root, sink: sink)
            reader.reportUnknownKeys()
            return layer
        } catch {
            sink.report(error, fallbackLocation: nil, path: nil)
            return nil
        }
    }

    /// KEY=VALUE lines (`export` and quotes allowed, `#` comments), every value a string.
    private static func readDotEnv(_ file: String, sink: DiagnosticSink) -> ConfigurationLayer? {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            sink.report(Diagnostic("cannot read --var-file \(file)"))
            return nil
        }
        var layer = ConfigurationLayer(name: file)
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let body = trimmed.hasPrefix("export ") ? String(trimmed.dropFirst(7)) : trimmed
            guard let equals = body.firstIndex(of: "=") else {
                sink.report(Diagnostic("expected KEY=VALUE", at: SourceLocation(file: file, line: number + 1, column: 1)))
                continue
            }
            var value = String(body[body.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            let key = String(body[..<equals]).trimmingCharacters(in: .whitespaces)
            layer.entries.append((key, .literal(SourceNode(.string(value), at: SourceLocation(file: file, line: number + 1, column: 1)))))
        }
        return layer
    }
}
