import Foundation
import Logging

/// Loads, validates and runs a suite (or a single experiment as a one-entry suite):
/// toxic backend and proxies up → run extensions (services) up → experiments → everything down
/// in reverse (also on interrupt and failure) → reports.
public struct SuiteRunner: Sendable {
    public let registry: PluginRegistry
    public let observer: any RunObserver
    public let logger: Logger

    public init(registry: PluginRegistry, observer: any RunObserver = SilentObserver(), logger: Logger = Logger(label: "faultline")) {
        self.registry = registry
        self.observer = observer
        self.logger = logger
    }

    /// What the command line adds to a run.
    public struct Options: Sendable {
        public var profile: String?
        /// `--var key[:type]=value`, converted.
        public var variables: [(String, Value)] = []
        public var variableFiles: [String] = []
        public var environment: [String: String] = ProcessInfo.processInfo.environment
        public var run = RunOptions()
        /// Overrides every seed in the suite.
        public var seed: UInt64?
        /// For one experiment, the journal file; for a suite, the directory of journals.
        public var journalPath: String?
        /// Run only experiments whose title or file contains one of these.
        public var only: [String] = []
        public var reportFormats: [String]?
        public var reportDirectory: String?

        public init() {}
    }

    /// A suite that passed validation, ready to run.
    public struct Prepared: Sendable {
        public var suite: Suite
        public var profile: Suite.Profile?
        public var experiments: [Experiment]
        /// The documented outcome of each experiment, when its suite entry says (`expect:`).
        public var expectations: [Outcome?]
        /// Configuration layers common to every experiment (suite, profile, var files, `--var`).
        public var sharedLayers: [ConfigurationLayer]
        public var options: Options
        public var warnings: [Diagnostic]
        public var seed: UInt64
        public var reportFormats: [String]
        public var reportDirectory: String
        /// Plugin-defined configuration values, computed once for the whole run.
        public var sources: ConfigurationSources
    }

    /// The result of a run.
    public struct Result: Sendable {
        public var journals: [Journal]
        public var journalPaths: [String]
        public var reportPaths: [String]
        /// Why the run could not start (a service that never became ready), if so.
        public var setupError: String?
        public var teardownProblems: [String]
        public var interrupted: Bool

        /// The worst outcome of the run.
        public var outcome: Outcome {
            if interrupted { return .interrupted }
            if setupError != nil { return .failed }
            return journals.map(\.verdict).max() ?? .completed
        }

        public var exitCode: Int32 { outcome.exitCode }
    }

    // MARK: Loading

    /// Loads a suite or an experiment and validates everything it refers to.
    /// - Throws: ``ValidationError`` with every problem found, in file order.
    public func load(path: String, options: Options) throws -> Prepared {
        let sink = DiagnosticSink()
        let prepared = load(path: path, options: options, sink: sink)
        try sink.throwIfErrors()
        guard var prepared else { throw ValidationError(sink.sorted) }
        prepared.warnings = sink.sorted.filter { $0.severity == .warning }
        return prepared
    }

    private func load(path: String, options: Options, sink: DiagnosticSink) -> Prepared? {
        let sources = ConfigurationSources(providers: registry.configurationProviders)
        let document: SourceNode
        do {
            document = try DocumentLoader.load(path: path)
        } catch {
            sink.report(error, fallbackLocation: nil, path: nil)
            return nil
        }
        let suite: Suite
        if Suite.isSuite(document) {
            guard let parsed = Suite.parse(document, file: path, extensionKeys: registry.extensionSuiteKeys, sink: sink) else { return nil }
            suite = parsed
        } else {
            suite = Suite(
                file: path, name: ((path as NSString).lastPathComponent as NSString).deletingPathExtension, description: nil, seed: nil,
                configuration: ConfigurationLayer(name: "suite"), entries: [Suite.Entry(path: nil, inline: document, location: document.location, documentPath: .root)],
                profiles: [], proxies: nil, reports: nil, extensionSections: [:], isSuiteFile: false)
        }

        var profile: Suite.Profile?
        do {
            profile = try suite.profile(named: options.profile)
        } catch {
            sink.report(error, fallbackLocation: nil, path: nil)
            return nil
        }

        // Shared configuration: suite < profile < var files < --var.
        var layers = [suite.configuration]
        if let profile { layers.append(profile.configuration) }
        for file in options.variableFiles {
            if let layer = loadVariableFile(file, sink: sink) { layers.append(layer) }
        }
        if !options.variables.isEmpty {
            layers.append(ConfigurationLayer(name: "--var", entries: options.variables.map { ($0.0, .literal(SourceNode($0.1, at: nil))) }))
        }

        // Experiments.
        let baseDirectory = (path as NSString).deletingLastPathComponent
        var experiments: [Experiment] = []
        var expectations: [Outcome?] = []
        for entry in suite.entries {
            if let file = entry.path {
                let resolved = file.hasPrefix("/") || baseDirectory.isEmpty ? file : (baseDirectory as NSString).appendingPathComponent(file)
                let node: SourceNode
                do {
                    node = try DocumentLoader.load(path: resolved)
                } catch let diagnostic as Diagnostic where diagnostic.location == nil {
                    sink.report(Diagnostic(diagnostic.message, at: entry.location, path: entry.documentPath, hint: diagnostic.hint))
                    continue
                } catch {
                    sink.report(error, fallbackLocation: entry.location, path: entry.documentPath)
                    continue
                }
                if let experiment = ExperimentParser.parse(node, origin: resolved, sink: sink) {
                    experiments.append(experiment)
                    expectations.append(entry.expect)
                }
            } else if let inline = entry.inline {
                let origin = suite.isSuiteFile ? "\(path) (\(entry.documentPath))" : path
                if let experiment = ExperimentParser.parse(inline, origin: origin, path: entry.documentPath, sink: sink) {
                    experiments.append(experiment)
                    expectations.append(entry.expect)
                }
            }
        }
        if !options.only.isEmpty {
            let kept = zip(experiments, expectations).filter { experiment, _ in
                options.only.contains { experiment.title.localizedCaseInsensitiveContains($0) || experiment.origin.localizedCaseInsensitiveContains($0) }
            }
            experiments = kept.map(\.0)
            expectations = kept.map(\.1)
            if experiments.isEmpty {
                sink.report(Diagnostic("no experiment matches --only \(options.only.joined(separator: ", "))", at: SourceLocation(file: path, line: 1, column: 1)))
            }
        }

        // Run-level sections, checked against the shared configuration.
        let shared = ResolvedConfiguration.resolve(layers, environment: options.environment, sources: sources, sink: sink)
        let placeholders = setupPlaceholders(suite)
        var sharedSubstitution = shared.substitution
        for (key, value) in placeholders { sharedSubstitution.variables[key] = value }
        validateProxies(suite, substitution: sharedSubstitution, sink: sink)
        validateToxicBackend(profile, sink: sink)
        for runExtension in registry.runExtensions {
            let sections = suite.extensionSections.filter { runExtension.suiteKeys.contains($0.key) }
            runExtension.validate(sections, substitution: sharedSubstitution, sink: sink)
        }

        // Each experiment against its configuration.
        for experiment in experiments {
            let configuration = resolveConfiguration(
                for: experiment, shared: layers, exports: placeholders, environment: options.environment, sources: sources, sink: sink)
            ExperimentValidator.validate(experiment, configuration: configuration, registry: registry, sink: sink)
        }

        let formats = options.reportFormats ?? profile?.reports?.formats ?? suite.reports?.formats ?? []
        for format in formats where registry.reporters[format] == nil {
            let known = registry.reporters.keys.sorted()
            sink.report(Diagnostic(
                "unknown report format \"\(format)\"", at: SourceLocation(file: path, line: 1, column: 1),
                hint: Suggestion.didYouMean(format, in: known) ?? (known.isEmpty ? "no reporters are registered" : "known formats: \(known.joined(separator: ", "))")))
        }

        let seed = options.seed ?? profile?.seed ?? suite.seed ?? UInt64.random(in: 1..<UInt64(Int64.max))
        return Prepared(
            suite: suite, profile: profile, experiments: experiments, expectations: expectations, sharedLayers: layers, options: options, warnings: [], seed: seed, reportFormats: formats,
            reportDirectory: options.reportDirectory ?? profile?.reports?.dir ?? suite.reports?.dir ?? "reports", sources: sources)
    }

    private func resolveConfiguration(
        for experiment: Experiment, shared: [ConfigurationLayer], exports: [String: Value], environment: [String: String],
        sources: ConfigurationSources, sink: DiagnosticSink
    ) -> ResolvedConfiguration {
        var layers = [experiment.configuration] + shared
        if !exports.isEmpty {
            layers.insert(ConfigurationLayer(name: "run", entries: exports.map { ($0.key, .literal(SourceNode($0.value, at: nil))) }), at: 1)
        }
        return ResolvedConfiguration.resolve(layers, environment: environment, sources: sources, sink: sink)
    }

    /// Reads `--var-file`: JSON or YAML `{configuration: {}, secrets: {}}`, or a `.env` file of KEY=VALUE lines.
    private func loadVariableFile(_ file: String, sink: DiagnosticSink) -> ConfigurationLayer? {
        if DocumentLoader.format(forPath: file) == nil {
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
                if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first { value = String(value.dropFirst().dropLast()) }
                let key = String(body[..<equals]).trimmingCharacters(in: .whitespaces)
                layer.entries.append((key, .literal(SourceNode(.string(value), at: SourceLocation(file: file, line: number + 1, column: 1)))))
            }
            return layer
        }
        do {
            let node = try DocumentLoader.load(path: file)
            var reader = ObjectReader(node, path: .root, sink: sink, what: "an object with configuration and/or secrets")
            let layer = ConfigurationLayer.parse(name: file, configuration: reader.node("configuration"), secrets: reader.node("secrets"), path: .root, sink: sink)
            reader.reportUnknownKeys()
            return layer
        } catch {
            sink.report(error, fallbackLocation: nil, path: nil)
            return nil
        }
    }

    // MARK: Proxies and backend

    /// A suite proxy as written.
    struct SuiteProxy: Decodable {
        var name: String
        var listen: String?
        var upstream: String
        var enabled: Bool?
    }

    private func setupPlaceholders(_ suite: Suite) -> [String: Value] {
        var placeholders: [String: Value] = [:]
        var proxies = ValueObject()
        for element in suite.proxies?.elements ?? [] {
            if let name = element["name"]?.stringValue {
                // Port 0 is bound at run time; validation sees a plausible port in its place.
                var listen = element["listen"]?.stringValue ?? "127.0.0.1:0"
                if listen.hasSuffix(":0") { listen = String(listen.dropLast()) + "1" }
                proxies[name] = Self.proxyExport(ProxyDefinition(name: name, listen: listen, upstream: element["upstream"]?.stringValue ?? ""))
            }
        }
        if !proxies.isEmpty { placeholders["proxies"] = .object(proxies) }
        for runExtension in registry.runExtensions {
            let sections = suite.extensionSections.filter { runExtension.suiteKeys.contains($0.key) }
            for (key, value) in runExtension.placeholders(sections) { placeholders[key] = value }
        }
        return placeholders
    }

    /// What a suite proxy exports: `${proxies.NAME.port}`, `.host`, `.listen`, `.upstream`.
    static func proxyExport(_ proxy: ProxyDefinition) -> Value {
        let host = proxy.listen.split(separator: ":").dropLast().joined(separator: ":")
        return [
            "name": .string(proxy.name), "listen": .string(proxy.listen), "host": .string(host.isEmpty ? "127.0.0.1" : host),
            "port": .int(proxy.listenPort ?? 0), "upstream": .string(proxy.upstream),
        ]
    }

    private func validateProxies(_ suite: Suite, substitution: Substitution, sink: DiagnosticSink) {
        guard let node = suite.proxies else { return }
        let path = DocumentPath([.key("proxies")])
        guard let elements = node.elements else {
            sink.report(Diagnostic("expected a list of proxies ({name, listen, upstream}), found \(describeFound(node))", at: node.location, path: path))
            return
        }
        var names: Set<String> = []
        for (index, element) in elements.enumerated() {
            guard let substituted = try? substitution.substitute(element, path: path.appending(index), sink: sink),
                let proxy = try? NodeDecoder().decode(SuiteProxy.self, from: substituted, path: path.appending(index), sink: sink)
            else {
                if let element = try? substitution.substitute(element, path: path.appending(index)) {
                    do { _ = try NodeDecoder().decode(SuiteProxy.self, from: element, path: path.appending(index), sink: sink) } catch {
                        sink.report(error, fallbackLocation: element.location, path: path.appending(index))
                    }
                }
                continue
            }
            if !names.insert(proxy.name).inserted {
                sink.report(Diagnostic("duplicate proxy name \"\(proxy.name)\"", at: element["name"]?.location, path: path.appending(index).appending("name")))
            }
            for (key, address) in [("upstream", proxy.upstream), ("listen", proxy.listen ?? "127.0.0.1:0")] where !Self.isHostPort(address) {
                sink.report(Diagnostic(
                    "\(key) must be host:port, found \"\(address)\"", at: element[key]?.location, path: path.appending(index).appending(key),
                    hint: "write e.g. 127.0.0.1:6379 (no scheme, no path)"))
            }
        }
        if registry.toxicBackends.isEmpty {
            sink.report(Diagnostic("the suite declares proxies, but no toxic backend plugin is registered", at: node.location, path: path))
        }
    }

    /// Whether `text` is `host:port` (no scheme, no path), as Toxiproxy takes listen and upstream.
    public static func isHostPort(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return false }
        return !text.contains("/")
    }

    private func validateToxicBackend(_ profile: Suite.Profile?, sink: DiagnosticSink) {
        guard let toxics = profile?.toxics else { return }
        let path = DocumentPath([.key("profiles"), .key(profile!.name), .key("toxics")])
        guard let backend = toxics["backend"]?.stringValue else {
            sink.report(Diagnostic("toxics needs backend: (one of \(registry.toxicBackends.keys.sorted().joined(separator: ", ")))", at: toxics.location, path: path))
            return
        }
        guard let factory = registry.toxicBackends[backend] else {
            let known = registry.toxicBackends.keys.sorted()
            sink.report(Diagnostic(
                "unknown toxic backend \"\(backend)\"", at: toxics["backend"]?.location, path: path.appending("backend"),
                hint: Suggestion.didYouMean(backend, in: known) ?? "known backends: \(known.joined(separator: ", "))"))
            return
        }
        factory.validate(options: Self.backendOptions(toxics), sink: sink)
    }

    static func backendOptions(_ toxics: SourceNode?) -> SourceNode? {
        guard let toxics, let members = toxics.members else { return nil }
        return SourceNode(.object(members.filter { $0.key != "backend" }), at: toxics.location)
    }

    // MARK: Running

    /// Runs a prepared suite. Everything brought up is torn down on every path out.
    public func run(_ prepared: Prepared, interruption: Interruption = Interruption()) async -> Result {
        let suite = prepared.suite
        observer.handle(.suiteStarted(name: suite.name, profile: prepared.profile?.name, experiments: prepared.experiments.count))
        var result = Result(journals: [], journalPaths: [], reportPaths: [], setupError: nil, teardownProblems: [], interrupted: false)

        let layout = journalLayout(prepared)
        try? FileManager.default.createDirectory(atPath: layout.runDirectory, withIntermediateDirectories: true)

        let shared = ResolvedConfiguration.resolve(
            prepared.sharedLayers, environment: prepared.options.environment, sources: prepared.sources, sink: DiagnosticSink())
        let setup = RunSetup(
            sections: [:], configuration: shared.configuration, resources: Resources(), logger: logger, seed: prepared.seed, runDirectory: layout.runDirectory)
        let torndown = Teardown()

        // Setup runs in a task the first interrupt cancels.
        let setupTask = Task { try await self.setUp(prepared, shared: shared, setup: setup, teardown: torndown) }
        let setupToken = interruption.on(count: 1) { setupTask.cancel() }
        var setupError: String?
        do {
            setupError = try await setupTask.value
        } catch {
            setupError = "\(error)"
        }
        interruption.remove(setupToken)
        if interruption.count > 0 {
            result.interrupted = true
        } else if let setupError {
            result.setupError = setupError
        }

        if result.setupError == nil && !result.interrupted {
            let exports = setup.configuration.filter { shared.configuration[$0.key] == nil || shared.configuration[$0.key] != $0.value }
            for (index, experiment) in prepared.experiments.enumerated() {
                if interruption.count > 0 { break }
                let configuration = resolveConfiguration(
                    for: experiment, shared: prepared.sharedLayers, exports: exports, environment: prepared.options.environment,
                    sources: prepared.sources, sink: DiagnosticSink())
                var options = prepared.options.run
                options.seed = prepared.seed
                options.profile = prepared.profile?.name
                options.runDirectory = layout.runDirectory
                options.journalPath = layout.journal(index, experiment)
                options.expectedOutcome = prepared.expectations[index]
                let engine = Engine(registry: registry, observer: observer, logger: logger)
                let journal = await engine.run(
                    experiment, configuration: configuration, resources: setup.resources, options: options, interruption: interruption, index: index + 1,
                    total: prepared.experiments.count)
                result.journals.append(journal)
                if let path = options.journalPath { result.journalPaths.append(path) }
            }
            if interruption.count > 0 { result.interrupted = true }
        }

        if await torndown.hasSteps { observer.handle(.setupStep("tearing down")) }
        result.teardownProblems = await torndown.run()

        // Reports, also after an interrupt.
        if !prepared.reportFormats.isEmpty, !result.journals.isEmpty {
            result.reportPaths = writeReports(prepared, journals: result.journals)
        }
        return result
    }

    /// Stops what setup started, in reverse order; idempotent.
    actor Teardown {
        private var steps: [(String, @Sendable () async -> [String])] = []
        private var done = false

        func add(_ name: String, _ step: @escaping @Sendable () async -> [String]) { steps.append((name, step)) }

        var hasSteps: Bool { !steps.isEmpty }

        func run() async -> [String] {
            guard !done else { return [] }
            done = true
            var problems: [String] = []
            for (_, step) in steps.reversed() { problems += await step() }
            steps.removeAll()
            return problems
        }
    }

    /// Brings up the toxic backend, the suite's proxies and the run extensions.
    /// - Returns: why setup failed, or nil.
    private func setUp(_ prepared: Prepared, shared: ResolvedConfiguration, setup: RunSetup, teardown: Teardown) async throws -> String? {
        let suite = prepared.suite
        // Toxic backend.
        let backendName = prepared.profile?.toxics?["backend"]?.stringValue ?? (registry.toxicBackends["inprocess"] != nil ? "inprocess" : nil)
        var backend: (any ToxicBackend)?
        if let backendName, let factory = registry.toxicBackends[backendName] {
            let options = Self.backendOptions(prepared.profile?.toxics).flatMap { try? shared.substitution.substitute($0, path: .root) }
            do {
                let made = try await factory.makeBackend(
                    options: options, context: BackendContext(seed: prepared.seed, environment: prepared.options.environment, registry: registry))
                backend = made
                setup.provide(ToxicBackendKey.self, made)
                await teardown.add("toxic backend") {
                    await made.shutdown()
                    return []
                }
            } catch {
                return "toxic backend \(backendName): \(error)"
            }
        }

        // Suite proxies.
        if let node = suite.proxies, let backend {
            var exported = ValueObject()
            for (index, element) in (node.elements ?? []).enumerated() {
                try Task.checkCancellation()
                let substituted = try shared.substitution.substitute(element, path: DocumentPath([.key("proxies"), .index(index)]))
                let proxy = try NodeDecoder().decode(SuiteProxy.self, from: substituted)
                observer.handle(.setupStep("proxy \(proxy.name) → \(proxy.upstream)"))
                let created: ProxyDefinition
                do {
                    created = try await backend.createProxy(
                        ProxyDefinition(name: proxy.name, listen: proxy.listen ?? "127.0.0.1:0", upstream: proxy.upstream, enabled: proxy.enabled ?? true))
                } catch {
                    return "proxy \(proxy.name): \(error)"
                }
                await teardown.add("proxy \(proxy.name)") {
                    do {
                        try await backend.deleteProxy(named: proxy.name)
                    } catch ToxicBackendError.notFound {
                    } catch {
                        return ["could not delete proxy \(proxy.name): \(error)"]
                    }
                    return []
                }
                exported[proxy.name] = Self.proxyExport(created)
            }
            setup.export("proxies", .object(exported))
        }

        // Run extensions (services), in order.
        for runExtension in registry.runExtensions {
            try Task.checkCancellation()
            var sections: [String: SourceNode] = [:]
            var substitution = shared.substitution
            for (key, value) in setup.configuration { substitution.variables[key] = value }
            for (key, node) in suite.extensionSections where runExtension.suiteKeys.contains(key) {
                sections[key] = try substitution.substitute(node, path: DocumentPath([.key(key)]))
            }
            let extensionSetup = RunSetup(
                sections: sections, configuration: setup.configuration, resources: setup.resources, logger: logger, seed: prepared.seed,
                runDirectory: setup.runDirectory, progress: { [observer] in observer.handle(.setupStep($0)) })
            do {
                if let handle = try await runExtension.start(extensionSetup) {
                    await teardown.add(runExtension.name) { await handle.stop() }
                }
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                return "\(runExtension.name): \(error)"
            }
            for (key, value) in extensionSetup.configuration where setup.configuration[key] != value { setup.export(key, value) }
            setup.replaceResources(extensionSetup.resources)
        }
        return nil
    }

    private struct JournalLayout {
        var runDirectory: String
        var journal: (Int, Experiment) -> String
    }

    private func journalLayout(_ prepared: Prepared) -> JournalLayout {
        if !prepared.suite.isSuiteFile {
            let path = prepared.options.journalPath ?? "journal.json"
            let directory = (path as NSString).deletingLastPathComponent
            return JournalLayout(runDirectory: directory.isEmpty ? "." : directory, journal: { _, _ in path })
        }
        let directory = prepared.options.journalPath ?? "journals"
        return JournalLayout(runDirectory: directory) { index, experiment in
            (directory as NSString).appendingPathComponent(String(format: "%02d-", index + 1) + slug(experiment.title) + ".json")
        }
    }

    private func writeReports(_ prepared: Prepared, journals: [Journal]) -> [String] {
        let directory = prepared.reportDirectory
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let base = prepared.suite.isSuiteFile ? slug(prepared.suite.name) : slug(journals.first?.title ?? "experiment")
        var paths: [String] = []
        for format in prepared.reportFormats {
            guard let reporter = registry.reporters[format] else { continue }
            let path = (directory as NSString).appendingPathComponent("\(base).\(reporter.fileExtension)")
            do {
                let text = try reporter.render(
                    journals, options: ReportOptions(title: prepared.suite.isSuiteFile ? prepared.suite.name : nil, suiteName: prepared.suite.isSuiteFile ? prepared.suite.name : nil))
                try text.write(toFile: path, atomically: true, encoding: .utf8)
                paths.append(path)
            } catch {
                observer.handle(.warning("could not write the \(format) report: \(error)"))
            }
        }
        return paths
    }
}
