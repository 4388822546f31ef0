/// Reads an experiment document into an ``Experiment``, reporting every structural problem.
///
/// Structure only: provider arguments, tolerances and pauses are checked by ``ExperimentValidator``
/// once the configuration is known.
public enum ExperimentParser {
    static let topLevelKeys = [
        "version", "title", "description", "tags", "contributions", "configuration", "secrets", "extensions",
        "controls", "steady-state-hypothesis", "method", "rollbacks", "runtime", "dry",
    ]

    /// Parses `node` (a whole experiment document). Returns what could be read even when there
    /// were errors (activities that could not be read are left out), so that validation can go on
    /// to report the problems in the rest; check `sink` for errors.
    /// - Parameters:
    ///   - origin: the file name or suite entry, for journals and messages.
    ///   - path: where the experiment sits in its document (root for a file, `experiments[2]` inline).
    public static func parse(_ node: SourceNode, origin: String, path: DocumentPath = .root, sink: DiagnosticSink) -> Experiment? {
        var reader = ObjectReader(node, path: path, sink: sink, what: "an experiment (an object with title, method, …)")
        guard reader.isObject else { return nil }

        let version = reader.decode(String.self, "version")
        let title = reader.nonEmptyString("title", required: true, hint: "add title: a one-line name for the experiment")
        let description = reader.decode(String.self, "description")
        let tags = reader.decode([String].self, "tags") ?? []
        let contributions = parseContributions(reader.node("contributions"), path: path.appending("contributions"), sink: sink)
        let configuration = ConfigurationLayer.parse(
            name: "experiment \(origin)", configuration: reader.node("configuration"), secrets: reader.node("secrets"), path: path, sink: sink)
        let extensions = reader.decode([Value].self, "extensions") ?? []
        for (index, ext) in extensions.enumerated() where ext["name"]?.stringValue?.isEmpty ?? true {
            sink.report(
                Diagnostic(
                    "each extension needs a non-empty name", at: node["extensions"]?.elements?[index].location,
                    path: path.appending("extensions").appending(index)))
        }
        if let controls = reader.node("controls") {
            sink.report(
                Diagnostic(
                    "controls are Chaos Toolkit Python hooks and are ignored", at: controls.location, path: path.appending("controls"),
                    severity: .warning))
        }
        _ = reader.node("dry")
        let runtime = reader.decode(Experiment.Runtime.self, "runtime") ?? Experiment.Runtime()
        if runtime.python != nil, let python = node["runtime"]?["python"] {
            sink.report(
                Diagnostic(
                    "runtime.python is ignored: it asks Chaos Toolkit to install Python packages with uv, and Faultline runs no Python",
                    at: python.location, path: path.appending("runtime").appending("python"),
                    hint: "python providers of the supported modules run natively (faultline plugins lists them)", severity: .warning))
        }

        var hypothesis: Experiment.Hypothesis?
        if let hypothesisNode = reader.node("steady-state-hypothesis") {
            hypothesis = parseHypothesis(hypothesisNode, path: path.appending("steady-state-hypothesis"), sink: sink)
        }
        let method = parseActivities(reader.node("method"), path: path.appending("method"), sink: sink)
        let rollbacks = parseActivities(reader.node("rollbacks"), path: path.appending("rollbacks"), sink: sink)
        reader.reportUnknownKeys()

        var experiment = Experiment(
            document: node, origin: origin, version: version, title: title ?? "(untitled)", description: description, tags: tags,
            contributions: contributions, configuration: configuration, extensions: extensions, hypothesis: hypothesis,
            method: method, rollbacks: rollbacks, runtime: runtime)
        resolveReferences(&experiment, sink: sink)
        return experiment
    }

    /// `contributions`: `{name: high|medium|low|none}` for reports. Chaos Toolkit does not check
    /// it, so anything else is a warning, not an error.
    static func parseContributions(_ node: SourceNode?, path: DocumentPath, sink: DiagnosticSink) -> [String: String] {
        guard let node, !node.isNull else { return [:] }
        if let members = node.members, members.allSatisfy({ $0.value.stringValue != nil }) {
            return Dictionary(members.map { ($0.key, $0.value.stringValue!) }, uniquingKeysWith: { $1 })
        }
        if node.elements?.isEmpty == true || node.members?.isEmpty == true { return [:] }
        sink.report(
            Diagnostic(
                "contributions are ignored: expected an object such as {reliability: high}, found \(describeFound(node))", at: node.location,
                path: path,
                severity: .warning))
        return [:]
    }

    static func parseHypothesis(_ node: SourceNode, path: DocumentPath, sink: DiagnosticSink) -> Experiment.Hypothesis? {
        var reader = ObjectReader(node, path: path, sink: sink, what: "a hypothesis (an object with title and probes)")
        guard reader.isObject else { return nil }
        let title = reader.nonEmptyString("title", required: true, hint: "add title: what steady state means, in a few words")
        var probes = parseActivities(reader.node("probes"), path: path.appending("probes"), sink: sink)
        if let controls = reader.node("controls") {
            sink.report(
                Diagnostic(
                    "controls are Chaos Toolkit Python hooks and are ignored", at: controls.location, path: path.appending("controls"),
                    severity: .warning))
        }
        reader.reportUnknownKeys()
        for (index, probe) in probes.enumerated() where probe.referencedName == nil {
            if probe.kind != .probe {
                sink.report(
                    Diagnostic(
                        "the steady-state hypothesis holds probes only; \"\(probe.name)\" is an action", at: probe.location,
                        path: probe.path.appending("type"),
                        hint: "move it to method:, or write type: probe"))
            }
            // A misspelt `tolerance` key is already reported as unknown, with the suggestion.
            let misspelt =
                probe.document.members?.contains { $0.key != "tolerance" && Suggestion.closest(to: $0.key, in: ["tolerance"]) != nil } ?? false
            if probe.tolerance == nil && !misspelt {
                sink.report(
                    Diagnostic(
                        "hypothesis probe \"\(probe.name)\" has no tolerance", at: probe.location, path: probe.path,
                        hint: "add tolerance: the value (or range, regex, jsonpath) that means the system is fine"))
            }
            if probe.background {
                sink.report(
                    Diagnostic("hypothesis probes cannot run in the background", at: probe.location, path: probe.path.appending("background")))
                probes[index].background = false
            }
        }
        return Experiment.Hypothesis(title: title ?? "(untitled)", probes: probes, location: node.location)
    }

    static func parseActivities(_ node: SourceNode?, path: DocumentPath, sink: DiagnosticSink) -> [Activity] {
        guard let node, !node.isNull else { return [] }
        guard let elements = node.elements else {
            sink.report(
                Diagnostic(
                    "expected a list of activities, found \(describeFound(node))", at: node.location, path: path,
                    hint: "start each activity with \"- \""))
            return []
        }
        return elements.enumerated().compactMap { parseActivity($0.element, path: path.appending($0.offset), sink: sink) }
    }

    static func parseActivity(_ node: SourceNode, path: DocumentPath, sink: DiagnosticSink) -> Activity? {
        var reader = ObjectReader(node, path: path, sink: sink, what: "an activity (an object with type, name and provider)")
        guard reader.isObject else { return nil }
        if node["ref"] != nil {
            // Chaos Toolkit runs the activity a ref names and reads nothing else of the ref but its
            // `tolerance` (in the hypothesis) and `background`; `type` and `name` are often written.
            let name = reader.nonEmptyString("ref")
            let kind = reader.decode(ActivityKind.self, "type")
            _ = reader.node("name")
            let tolerance = reader.node("tolerance")
            let background = reader.decode(Bool.self, "background") ?? false
            for ignored in ["provider", "pauses", "timeout", "controls"] {
                if let n = reader.node(ignored) {
                    sink.report(
                        Diagnostic(
                            "\(ignored) on a ref is ignored: the referenced activity's is used (as Chaos Toolkit does)", at: n.location,
                            path: path.appending(ignored), hint: "remove it, or write a separate activity", severity: .warning))
                }
            }
            reader.reportUnknownKeys()
            guard let name else { return nil }
            // Filled in by resolveReferences.
            return Activity(
                kind: kind ?? .probe, name: name,
                provider: ProviderReference(type: "", arguments: SourceNode(.object([]), at: node.location), location: node.location, path: path),
                tolerance: tolerance, background: background, document: node, location: node.location, path: path, referencedName: name)
        }
        let kind = reader.decode(ActivityKind.self, "type", required: true, hint: "add type: probe (observes) or type: action (changes the system)")
        let name = reader.nonEmptyString("name", required: true, hint: "add name: a short unique name")
        let providerNode = reader.node("provider", required: true, hint: "add provider: {type: …} naming what runs the activity")
        let tolerance = reader.node("tolerance")
        var pauseBefore: SourceNode?, pauseAfter: SourceNode?
        if let pauses = reader.node("pauses"), pauses.isNull {
            // A real experiment leaves `pauses:` empty; chaos run loads it, then crashes on it
            // (AttributeError) only if the activity runs.
            sink.report(
                Diagnostic(
                    "an empty pauses: means no pauses (Chaos Toolkit loads it, then crashes when the activity runs)", at: pauses.location,
                    path: path.appending("pauses"), hint: "remove it, or write pauses: {after: SECONDS}", severity: .warning))
        } else if let pauses = reader.node("pauses") {
            var pauseReader = ObjectReader(pauses, path: path.appending("pauses"), sink: sink, what: "an object with before and/or after (seconds)")
            pauseBefore = pauseReader.node("before")
            pauseAfter = pauseReader.node("after")
            pauseReader.reportUnknownKeys()
        }
        let background = reader.decode(Bool.self, "background") ?? false
        let timeout = reader.node("timeout")
        if let controls = reader.node("controls") {
            sink.report(
                Diagnostic(
                    "controls are Chaos Toolkit Python hooks and are ignored", at: controls.location, path: path.appending("controls"),
                    severity: .warning))
        }
        for ignored in ["configuration", "secrets"] {
            if let n = reader.node(ignored) {
                sink.report(
                    Diagnostic(
                        "activity-level \(ignored) is not used (Chaos Toolkit ignores it too)", at: n.location, path: path.appending(ignored),
                        hint: "declare it at the top of the experiment", severity: .warning))
            }
        }
        _ = reader.node("dry")
        reader.reportUnknownKeys()

        guard let kind, let name, let providerNode else { return nil }
        guard let provider = parseProvider(providerNode, path: path.appending("provider"), sink: sink) else { return nil }
        return Activity(
            kind: kind, name: name, provider: provider, tolerance: tolerance, pauseBefore: pauseBefore, pauseAfter: pauseAfter,
            background: background, timeout: timeout, document: node, location: node.location, path: path, referencedName: nil)
    }

    static func parseProvider(_ node: SourceNode, path: DocumentPath, sink: DiagnosticSink) -> ProviderReference? {
        guard let members = node.members else {
            sink.report(Diagnostic("expected a provider object ({type: …}), found \(describeFound(node))", at: node.location, path: path))
            return nil
        }
        guard let typeNode = node["type"] else {
            sink.report(
                Diagnostic(
                    "missing required key \"type\"", at: node.location, path: path,
                    hint: "name a provider type, e.g. type: http or type: process; `faultline plugins` lists them"))
            return nil
        }
        guard let type = typeNode.stringValue, !type.isEmpty else {
            sink.report(
                Diagnostic("expected a provider type name, found \(describeFound(typeNode))", at: typeNode.location, path: path.appending("type")))
            return nil
        }
        if type == "python" {
            var reader = ObjectReader(node, path: path, sink: sink)
            _ = reader.node("type")
            let module = reader.nonEmptyString("module", required: true)
            let function = reader.nonEmptyString("func", required: true)
            let arguments = reader.node("arguments") ?? SourceNode(.object([]), at: node.location)
            _ = reader.node("secrets")
            // chaoslib's own experiments give python providers a `timeout`, which its python
            // provider never reads: loading it, with a warning, keeps those experiments running.
            if let timeout = reader.node("timeout") {
                sink.report(
                    Diagnostic(
                        "a python provider's timeout is not used (Chaos Toolkit ignores it too)", at: timeout.location,
                        path: path.appending("timeout"), hint: "give the activity a timeout to bound it", severity: .warning))
            }
            reader.reportUnknownKeys()
            guard let module, let function else { return nil }
            return ProviderReference(
                type: type, python: (module, function), arguments: arguments, location: node.location, typeLocation: node["module"]?.location,
                path: path)
        }
        // Native providers take their arguments at the provider level, as Chaos Toolkit's http and
        // process providers do. `secrets` (a list of scopes) is Chaos Toolkit's and not an argument.
        let arguments = SourceNode(.object(members.filter { $0.key != "type" && $0.key != "secrets" }), at: node.location)
        return ProviderReference(type: type, arguments: arguments, location: node.location, typeLocation: typeNode.location, path: path)
    }

    /// Replaces `{ref: name}` activities with the definition they name, from the method or the
    /// hypothesis, as Chaos Toolkit does:
    /// - when several activities have the name, the last wins (method first, then the hypothesis);
    /// - in the hypothesis, the ref's own `tolerance` judges it (the definition's when it has none);
    /// - in the method and rollbacks a ref is not judged (Chaos Toolkit judges no method probe, and
    ///   a tolerance carried over from a hypothesis probe was not written for the method);
    /// - the ref's `background` decides whether it runs in the background.
    static func resolveReferences(_ experiment: inout Experiment, sink: DiagnosticSink) {
        var definitions: [String: [Activity]] = [:]
        for activity in experiment.method + (experiment.hypothesis?.probes ?? []) where activity.referencedName == nil {
            definitions[activity.name, default: []].append(activity)
        }
        var warned: Set<String> = []
        let definitionNames = definitions.keys.sorted()
        func resolve(_ activity: Activity, inHypothesis: Bool) -> Activity {
            guard let name = activity.referencedName else { return activity }
            guard let targets = definitions[name], let target = targets.last else {
                let hint =
                    (sink.isFull || definitionNames.count > Suggestion.mostCandidates ? nil : Suggestion.didYouMean(name, in: definitionNames))
                    ?? "a ref names an activity of the hypothesis or the method"
                sink.report(Diagnostic("ref \"\(name)\" names no activity", at: activity.location, path: activity.path.appending("ref"), hint: hint))
                return activity
            }
            if targets.count > 1, warned.insert(name).inserted {
                sink.report(
                    Diagnostic(
                        "ref \"\(name)\": \(targets.count) activities have that name; the last (\(target.path)) is used, as Chaos Toolkit does",
                        at: activity.location, path: activity.path.appending("ref"), hint: "give them distinct names", severity: .warning))
            }
            var resolved = target
            resolved.location = activity.location
            resolved.path = activity.path
            resolved.referencedName = name
            resolved.tolerance = inHypothesis ? activity.tolerance ?? target.tolerance : nil
            resolved.background = inHypothesis ? false : activity.background
            return resolved
        }
        if var hypothesis = experiment.hypothesis {
            hypothesis.probes = hypothesis.probes.map { resolve($0, inHypothesis: true) }
            experiment.hypothesis = hypothesis
        }
        experiment.method = experiment.method.map { resolve($0, inHypothesis: false) }
        experiment.rollbacks = experiment.rollbacks.map { resolve($0, inHypothesis: false) }
    }
}
