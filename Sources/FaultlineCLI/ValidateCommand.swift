import ArgumentParser
import FaultlineKit
import Foundation

/// `faultline validate`.
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a suite or experiment without running it: every error, with file:line:column.",
        discussion: "Exit codes: 0 valid, 2 invalid.")

    @OptionGroup var load: LoadOptions

    func run() async throws {
        let runner = SuiteRunner(registry: CommandEnvironment.registry)
        let file = try load.resolvedFile()
        let t = Terminal.shared
        do {
            let plan = try runner.load(path: file, options: try load.runnerOptions())
            printDiagnostics(plan.warnings)
            let count = plan.experiments.count
            var text = t.paint("✓", .green) + " \(file): \(count) experiment\(count == 1 ? "" : "s") valid"
            if let profile = plan.profile {
                text += " (profile \(profile.name)" + (plan.skipped.isEmpty ? ")" : "; \(plan.skipped.count) skipped there by skip_profiles)")
            }
            t.write(text + "\n")
        } catch let error as FaultlineKit.ValidationError {
            printDiagnostics(error.diagnostics)
            let count = error.errors.count
            t.error("\(count) error\(count == 1 ? "" : "s") in \(file)")
            throw ExitCode(2)
        }
    }
}

/// `faultline plugins`: every provider type with its arguments, toxics, reporters and backends.
struct PluginsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "List every registered provider type with its arguments, types and defaults.")

    @Flag(help: "Machine-readable output.")
    var json = false

    func run() async throws {
        let registry = CommandEnvironment.registry
        let listing = Self.listing(registry)
        if json {
            Terminal.shared.write(JSONWriter.string(listing) + "\n")
        } else {
            Terminal.shared.write(Self.text(listing))
        }
    }

    static func listing(_ registry: PluginRegistry) -> Value {
        var providers: [Value] = []
        let grouped = Dictionary(grouping: registry.providers.values, by: \.type)
        for type in grouped.keys.sorted() {
            let descriptors = grouped[type]!.sorted { $0.kind.rawValue < $1.kind.rawValue }
            let first = descriptors[0]
            var entry: ValueObject = [
                "type": .string(type), "kinds": .array(descriptors.map { .string($0.kind.rawValue) }), "plugin": .string(registry.owners[type] ?? ""),
                "summary": .string(first.summary),
            ]
            if let python = first.pythonName { entry["python"] = .string(python) }
            entry["arguments"] = (try? ValueEncoder().encode(first.schema.fields)) ?? .array([])
            providers.append(.object(entry))
        }
        var toxics: [Value] = []
        for type in registry.toxics.keys.sorted() {
            let toxic = registry.toxics[type]!
            toxics.append([
                "type": .string(type), "summary": .string(toxic.summary),
                "attributes": (try? ValueEncoder().encode(toxic.schema.fields)) ?? .array([]),
            ])
        }
        return [
            "version": .string(Engine.version),
            "plugins": .array(registry.pluginNames.map { .string($0) }),
            "providers": .array(providers),
            "toxics": .array(toxics),
            "reporters": .array(
                registry.reporters.keys.sorted().map { format in
                    ["format": .string(format), "summary": .string(registry.reporters[format]!.summary)]
                }),
            "toxic_backends": .array(registry.toxicBackends.keys.sorted().map { .string($0) }),
            "suite_sections": .array(registry.extensionSuiteKeys.map { .string($0) }),
        ]
    }

    static func text(_ listing: Value) -> String {
        let t = Terminal.shared
        var out = t.paint("Plugins: ", .bold) + (listing["plugins"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ") + "\n"
        func fields(_ value: Value?, indent: String) -> String {
            var text = ""
            for field in value?.arrayValue ?? [] {
                let name = field["name"]?.stringValue ?? ""
                let type = field["type"]?.stringValue ?? ""
                var line = "\(indent)\(t.paint(name, .cyan)): \(type)"
                if let range = field["range"].flatMap({ try? NodeDecoder().decode(NumberRange.self, from: $0) }) { line += " in \(range)" }
                if field["required"]?.boolValue == true {
                    line += t.paint(" (required)", .yellow)
                } else if let value = field["default"], !value.isNull {
                    line += t.paint(" = \(value)", .dim)
                }
                if let help = field["help"]?.stringValue { line += t.paint("  — \(help)", .dim) }
                text += line + "\n"
                if let nested = field["fields"] { text += fields(nested, indent: indent + "    ") }
            }
            return text
        }
        out += "\n" + t.paint("Providers", .bold) + " (provider: {type: …})\n"
        for provider in listing["providers"]?.arrayValue ?? [] {
            let kinds = (provider["kinds"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: "/")
            var title = "  " + t.paint(provider["type"]?.stringValue ?? "", .bold) + " [\(kinds)]"
            if let python = provider["python"]?.stringValue { title += t.paint(" (Chaos Toolkit python: \(python))", .dim) }
            out += title + " — \(provider["summary"]?.stringValue ?? "")\n"
            out += fields(provider["arguments"], indent: "      ")
        }
        if let toxics = listing["toxics"]?.arrayValue, !toxics.isEmpty {
            out += "\n" + t.paint("Toxics", .bold) + " (attributes in Toxiproxy's names and units)\n"
            for toxic in toxics {
                out += "  " + t.paint(toxic["type"]?.stringValue ?? "", .bold) + " — \(toxic["summary"]?.stringValue ?? "")\n"
                out += fields(toxic["attributes"], indent: "      ")
            }
        }
        if let reporters = listing["reporters"]?.arrayValue, !reporters.isEmpty {
            out += "\n" + t.paint("Reporters", .bold) + " (--report)\n"
            for reporter in reporters {
                out += "  \(reporter["format"]?.stringValue ?? "") — \(reporter["summary"]?.stringValue ?? "")\n"
            }
        }
        if let backends = listing["toxic_backends"]?.arrayValue, !backends.isEmpty {
            out +=
                "\n" + t.paint("Toxic backends", .bold) + " (profile toxics: {backend: …}): "
                + backends.compactMap(\.stringValue).joined(separator: ", ") + "\n"
        }
        if let sections = listing["suite_sections"]?.arrayValue, !sections.isEmpty {
            out += t.paint("Suite sections from plugins", .bold) + ": " + sections.compactMap(\.stringValue).joined(separator: ", ") + "\n"
        }
        return out
    }
}
