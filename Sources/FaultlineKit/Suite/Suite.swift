import Foundation

/// A suite (`experiments.yaml`): experiments, profiles, and what the run brings up around them.
///
/// ```yaml
/// name: orders
/// seed: 42
/// configuration: {base_url: "http://127.0.0.1:8080"}
/// experiments:
///   - experiments/baseline.yaml
///   - path: experiments/latency.yaml
///   - {path: experiments/http-fault.yaml, skip_profiles: [ci]}
///   - title: inline experiment
///     method: [...]
/// profiles:
///   local: {default: true, configuration: {duration: 2}}
///   ci: {configuration: {duration: 10}, toxics: {backend: toxiproxy, url: http://127.0.0.1:8474}}
/// proxies:
///   - {name: store, listen: "127.0.0.1:0", upstream: "127.0.0.1:6379"}
/// reports: {formats: [md, html], dir: reports}
/// ```
///
/// `proxies:`, `services:` and a profile's `toxics:` belong to the run extensions that plugins
/// register (``RunExtension``); the suite keeps them as written.
public struct Suite: Sendable {
    public var file: String
    public var name: String
    public var description: String?
    public var seed: UInt64?
    public var configuration: ConfigurationLayer
    public var entries: [Entry]
    public var profiles: [Profile]
    public var reports: ReportSettings?
    /// Sections owned by run extensions (`proxies:`, `services:`), by key, as written.
    public var extensionSections: [String: SourceNode]
    /// False for a single experiment run as a one-entry suite.
    public var isSuiteFile: Bool

    /// One experiment of the suite.
    public struct Entry: Sendable {
        /// The experiment file, relative to the suite file.
        public var path: String?
        /// An experiment written inline.
        public var inline: SourceNode?
        public var location: SourceLocation?
        public var documentPath: DocumentPath
        /// The outcome the experiment is documented to have (`expect: deviated` for one that
        /// shows a known weakness); the run passes when it ends so.
        public var expect: Outcome?
        /// Profiles this experiment does not run on (`skip_profiles: [toxiproxy]` for one whose
        /// faults that profile's backend cannot inject); each names a profile of the suite.
        public var skipProfiles: [String] = []
        /// Where `skip_profiles` is written, for errors about it.
        public var skipProfilesLocation: SourceLocation?
    }

    /// A named overlay: configuration values, seed, reports, and sections run extensions own
    /// (the toxic backend).
    public struct Profile: Sendable {
        public var name: String
        public var isDefault: Bool
        public var description: String?
        public var configuration: ConfigurationLayer
        /// Sections owned by run extensions (`toxics: {backend: …}`), by key, as written.
        public var extensionSections: [String: SourceNode]
        public var seed: UInt64?
        public var reports: ReportSettings?
        public var location: SourceLocation?
    }

    /// Which reports a run writes and where.
    public struct ReportSettings: Sendable, Decodable {
        public var formats: [String]?
        public var dir: String?
        /// Before/after comparisons of two of the suite's experiments, written beside the reports.
        public var compare: [ComparisonSettings]?
    }

    /// `reports.compare[]`: `{name, baseline, after, title}` — two experiment files of the suite
    /// (as its `experiments:` list names them) whose journals a comparison report sets side by
    /// side, in `<dir>/<name>.<ext>` for each report format that can compare (`md`, `html`).
    public struct ComparisonSettings: Sendable, Decodable {
        public var name: String
        public var baseline: String
        public var after: String
        public var title: String?
    }

    /// Whether a document is a suite (it has `experiments:`) rather than an experiment.
    public static func isSuite(_ node: SourceNode) -> Bool { node["experiments"] != nil }

    /// Parses a suite document.
    /// - Parameters:
    ///   - extensionKeys: top-level keys run extensions own (e.g. `proxies`, `services`).
    ///   - profileKeys: profile keys run extensions own (e.g. `toxics`).
    public static func parse(_ node: SourceNode, file: String, extensionKeys: [String], profileKeys: [String] = [], sink: DiagnosticSink) -> Suite? {
        var reader = ObjectReader(node, path: .root, sink: sink, what: "a suite (an object with experiments and profiles)")
        guard reader.isObject else { return nil }
        let name = reader.decode(String.self, "name") ?? ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        let description = reader.decode(String.self, "description")
        let seed = reader.decode(UInt64.self, "seed")
        let configuration = ConfigurationLayer.parse(
            name: "suite", configuration: reader.node("configuration"), secrets: reader.node("secrets"), path: .root, sink: sink)
        var entries: [Entry] = []
        if let list = reader.node("experiments", required: true) {
            if let elements = list.elements {
                for (index, element) in elements.enumerated() {
                    let path = DocumentPath([.key("experiments"), .index(index)])
                    switch element.content {
                    case .scalar(.string(let file), _):
                        entries.append(Entry(path: file, inline: nil, location: element.location, documentPath: path))
                    case .object where element["path"] != nil:
                        var entryReader = ObjectReader(element, path: path, sink: sink)
                        let expect = entryReader.decode(Outcome.self, "expect")
                        if let expect, expect == .running || expect == .interrupted {
                            sink.report(
                                Diagnostic(
                                    "expect: \(expect.rawValue) is not an outcome an experiment can be documented to have",
                                    at: element["expect"]?.location,
                                    path: path.appending("expect"), hint: "write completed, deviated, failed or aborted"))
                        }
                        let skipProfiles = entryReader.decode([String].self, "skip_profiles") ?? []
                        if let file = entryReader.nonEmptyString("path") {
                            entries.append(
                                Entry(
                                    path: file, inline: nil, location: element.location, documentPath: path, expect: expect,
                                    skipProfiles: skipProfiles,
                                    skipProfilesLocation: element["skip_profiles"]?.location))
                        }
                        entryReader.reportUnknownKeys()
                    case .object:
                        entries.append(Entry(path: nil, inline: element, location: element.location, documentPath: path))
                    default:
                        sink.report(
                            Diagnostic(
                                "expected an experiment file name or an inline experiment, found \(describeFound(element))", at: element.location,
                                path: path))
                    }
                }
            } else {
                sink.report(
                    Diagnostic(
                        "expected a list of experiments, found \(describeFound(list))", at: list.location, path: DocumentPath([.key("experiments")])))
            }
        }
        var profiles: [Profile] = []
        if let profilesNode = reader.node("profiles") {
            if let members = profilesNode.members {
                for member in members {
                    let path = DocumentPath([.key("profiles"), .key(member.key)])
                    var profileReader = ObjectReader(
                        member.value, path: path, sink: sink, what: "a profile (an object with configuration, toxics, …)")
                    guard profileReader.isObject else { continue }
                    let isDefault = profileReader.decode(Bool.self, "default") ?? false
                    let profileDescription = profileReader.decode(String.self, "description")
                    let layer = ConfigurationLayer.parse(
                        name: "profile \(member.key)", configuration: profileReader.node("configuration"), secrets: profileReader.node("secrets"),
                        path: path, sink: sink)
                    var profileSections: [String: SourceNode] = [:]
                    for key in profileKeys {
                        if let section = profileReader.node(key) { profileSections[key] = section }
                    }
                    let profileSeed = profileReader.decode(UInt64.self, "seed")
                    let reports = profileReader.decode(ReportSettings.self, "reports")
                    profileReader.reportUnknownKeys()
                    profiles.append(
                        Profile(
                            name: member.key, isDefault: isDefault, description: profileDescription, configuration: layer,
                            extensionSections: profileSections,
                            seed: profileSeed,
                            reports: reports, location: member.keyLocation))
                }
                let defaults = profiles.filter(\.isDefault)
                if defaults.count > 1 {
                    sink.report(
                        Diagnostic(
                            "\(defaults.count) profiles are marked default: \(defaults.map(\.name).joined(separator: ", "))",
                            at: defaults[1].location,
                            path: DocumentPath([.key("profiles"), .key(defaults[1].name), .key("default")]),
                            hint: "mark exactly one profile default: true"))
                }
            } else {
                sink.report(
                    Diagnostic(
                        "expected an object of named profiles, found \(describeFound(profilesNode))", at: profilesNode.location,
                        path: DocumentPath([.key("profiles")])))
            }
        }
        checkSkippedProfiles(entries, profiles: profiles.map(\.name), sink: sink)
        let reports = reader.decode(ReportSettings.self, "reports")
        checkComparisons(
            reports?.compare ?? [], at: node["reports"]?["compare"], path: DocumentPath([.key("reports"), .key("compare")]), entries: entries,
            sink: sink)
        for profile in profiles {
            checkComparisons(
                profile.reports?.compare ?? [], at: node["profiles"]?[profile.name]?["reports"]?["compare"],
                path: DocumentPath([.key("profiles"), .key(profile.name), .key("reports"), .key("compare")]), entries: entries, sink: sink)
        }
        var sections: [String: SourceNode] = [:]
        for key in extensionKeys {
            if let section = reader.node(key) { sections[key] = section }
        }
        reader.reportUnknownKeys()
        return Suite(
            file: file, name: name, description: description, seed: seed, configuration: configuration, entries: entries, profiles: profiles,
            reports: reports, extensionSections: sections, isSuiteFile: true)
    }

    /// Every name in an entry's `skip_profiles` must be a profile of the suite: a misspelt one
    /// would otherwise run the experiment on the profile it meant to skip.
    private static func checkSkippedProfiles(_ entries: [Entry], profiles: [String], sink: DiagnosticSink) {
        for entry in entries {
            for name in entry.skipProfiles where !profiles.contains(name) {
                sink.report(
                    Diagnostic(
                        profiles.isEmpty
                            ? "skip_profiles names \"\(name)\", but the suite defines no profiles"
                            : "skip_profiles names an unknown profile \"\(name)\"",
                        at: entry.skipProfilesLocation ?? entry.location, path: entry.documentPath.appending("skip_profiles"),
                        hint: profiles.isEmpty
                            ? "remove skip_profiles, or add profiles: {\(name): {…}}"
                            : (Suggestion.didYouMean(name, in: profiles).map { "\($0) " } ?? "")
                                + "known profiles: \(profiles.joined(separator: ", "))"))
            }
        }
    }

    /// A comparison names two experiment files of the suite's list, and a report name of its own.
    private static func checkComparisons(
        _ comparisons: [ComparisonSettings], at list: SourceNode?, path listPath: DocumentPath, entries: [Entry], sink: DiagnosticSink
    ) {
        let files = entries.compactMap(\.path)
        var names: Set<String> = []
        for (index, comparison) in comparisons.enumerated() {
            let element = list?.elements?[index]
            let path = listPath.appending(index)
            for (key, file) in [("baseline", comparison.baseline), ("after", comparison.after)] where !files.contains(file) {
                sink.report(
                    Diagnostic(
                        "reports.compare \(key) \"\(file)\" is not an experiment file of the suite", at: element?[key]?.location ?? element?.location,
                        path: path.appending(key),
                        hint: (Suggestion.didYouMean(file, in: files).map { "\($0) " } ?? "") + "write a path as the experiments list names it"))
            }
            if slug(comparison.name) != comparison.name || !names.insert(comparison.name).inserted {
                sink.report(
                    Diagnostic(
                        "reports.compare name \"\(comparison.name)\" must be unique and a file name of lowercase letters, digits and dashes",
                        at: element?["name"]?.location ?? element?.location, path: path.appending("name"), hint: "e.g. name: \(slug(comparison.name))"
                    ))
            }
        }
    }

    /// The profile a run uses: the named one, or the default (the one marked default, or the only one).
    public func profile(named name: String?) throws -> Profile? {
        if let name {
            if let profile = profiles.first(where: { $0.name == name }) { return profile }
            let known = profiles.map(\.name)
            throw Diagnostic(
                known.isEmpty ? "unknown profile \"\(name)\": \(file) defines no profiles" : "unknown profile \"\(name)\"",
                at: SourceLocation(file: file, line: 1, column: 1),
                hint: known.isEmpty
                    ? "add profiles: {\(name): {configuration: {…}}}"
                    : (Suggestion.didYouMean(name, in: known).map { "\($0) " } ?? "") + "known profiles: \(known.joined(separator: ", "))")
        }
        return profiles.first(where: \.isDefault) ?? (profiles.count == 1 ? profiles[0] : nil)
    }
}

/// Turns a title into a file-name part: `Order API survives latency` → `order-api-survives-latency`.
public func slug(_ text: String) -> String {
    var result = ""
    for scalar in text.lowercased().unicodeScalars {
        if CharacterSet.alphanumerics.contains(scalar) && scalar.isASCII {
            result.unicodeScalars.append(scalar)
        } else if !result.hasSuffix("-") && !result.isEmpty {
            result += "-"
        }
    }
    while result.hasSuffix("-") { result.removeLast() }
    return String(result.prefix(60)).isEmpty ? "experiment" : String(result.prefix(60))
}
