/// How a run's configuration is layered: the shared layers every experiment sees, and each
/// experiment's own configuration beneath them.
enum ConfigurationLayers {
    /// The configuration every experiment shares: suite < profile < var files < `--var`.
    static func shared(suite: Suite, profile: Suite.Profile?, options: SuiteRunner.Options, sink: DiagnosticSink) -> [ConfigurationLayer] {
        var layers = [suite.configuration]
        if let profile { layers.append(profile.configuration) }
        for file in options.variableFiles {
            if let layer = VariableFile.read(file, sink: sink) { layers.append(layer) }
        }
        if !options.variables.isEmpty {
            layers.append(ConfigurationLayer(name: "--var", entries: options.variables.map { ($0.0, .literal(SourceNode($0.1, at: nil))) }))
        }
        return layers
    }

    /// An experiment's own layer evaluated once (environment read, plugin values computed), for
    /// ``experiment(_:exports:shared:sink:)``: what the exports or the shared configuration
    /// override is left out, as resolving would ignore it.
    static func evaluate(
        _ own: ConfigurationLayer, exports: [String: Value], shared: ResolvedConfiguration, environment: [String: String],
        sources: ConfigurationSources,
        sink: DiagnosticSink
    ) -> ConfigurationLayer {
        own.evaluated(under: overlays(exports: exports, shared: shared), environment: environment, sources: sources, sink: sink)
    }

    /// An experiment's configuration: its own layer (evaluated) < what the run's extensions export
    /// < the shared configuration. Nothing is read or computed again: exports and the shared
    /// configuration are taken as they are, and only the experiment's `${…}` references resolve.
    static func experiment(_ own: ConfigurationLayer, exports: [String: Value], shared: ResolvedConfiguration, sink: DiagnosticSink)
        -> ResolvedConfiguration
    {
        ResolvedConfiguration.resolve([own] + overlays(exports: exports, shared: shared), environment: [:], sources: .none, sink: sink)
    }

    /// The layers over an experiment's own: the run's exports, then the shared configuration.
    private static func overlays(exports: [String: Value], shared: ResolvedConfiguration) -> [ConfigurationLayer] {
        var layers: [ConfigurationLayer] = []
        if !exports.isEmpty {
            layers.append(ConfigurationLayer(name: "run", entries: exports.map { ($0.key, .resolved($0.value)) }))
        }
        var sharedLayer = ConfigurationLayer(
            name: "shared", entries: shared.configuration.map { ($0.key, .resolved($0.value)) },
            secrets: shared.secrets.flatMap { scope, values in values.map { (scope, $0.key, ConfigurationEntry.resolved($0.value)) } })
        sharedLayer.unavailable = shared.unavailable
        layers.append(sharedLayer)
        return layers
    }
}
