/// An activity with its provider found, arguments substituted and decoded, tolerance parsed and
/// pauses and timeout read: ready to run.
///
/// The same preparation runs at validation (against the configuration known before the run) and
/// again right before the activity runs (against the configuration as it stands then, with values
/// exported by earlier activities), so that validation and execution can never disagree.
public struct PreparedActivity: Sendable {
    public let activity: Activity
    public let descriptor: ProviderDescriptor
    public let invocation: PreparedInvocation
    public let tolerance: Tolerance?
    public let pauseBefore: Double?
    public let pauseAfter: Double?
    /// The activity's `timeout`, seconds.
    public let timeout: Double?
    /// The provider's own hard limit (its ``Provider/timeLimit(_:)``, e.g. a process's `timeout`):
    /// the engine enforces it too, with grace so that the provider's own error wins.
    public var providerTimeout: Double? { invocation.timeLimit }

    /// Seconds after which the engine cancels the activity: its `timeout`, or the provider's own
    /// plus time for the provider to stop what it started and report its own, more precise error.
    public var enforcedTimeout: Double? {
        [timeout, providerTimeout.map { $0 + Self.providerGrace }].compactMap { $0 }.min()
    }

    /// How long a provider gets beyond its own timeout (a process gets 1 s between TERM and KILL).
    static let providerGrace = 3.0

    /// Prepares an activity.
    /// - Parameters:
    ///   - substitution: the variables `${…}` may name.
    ///   - sink: when given, problems are reported there and nil is returned; otherwise the first
    ///     problem is thrown.
    public static func prepare(
        _ activity: Activity, substitution: Substitution, registry: PluginRegistry, sink: DiagnosticSink?
    ) throws -> PreparedActivity? {
        let local = DiagnosticSink()
        let result = prepare(activity, substitution: substitution, registry: registry, into: local)
        if let sink {
            local.diagnostics.forEach(sink.report)
            return local.hasErrors ? nil : result
        }
        if let first = local.sorted.first(where: { $0.severity == .error }) { throw first }
        return result
    }

    /// Looks up the provider an activity names, explaining what is wrong when there is none.
    public static func descriptor(for activity: Activity, registry: PluginRegistry) throws -> ProviderDescriptor {
        let provider = activity.provider
        let typePath = provider.path.appending("type")
        if let descriptor = registry.provider(provider.lookupName, kind: activity.kind) { return descriptor }
        let other: ActivityKind = activity.kind == .probe ? .action : .probe
        if registry.provider(provider.lookupName, kind: other) != nil {
            let what = provider.python.map { "\($0.module).\($0.function)" } ?? provider.type
            throw Diagnostic(
                "\(what) is \(other == .probe ? "a probe" : "an action"), but the activity says type: \(activity.kind.rawValue)",
                at: activity.location, path: activity.path.appending("type"), hint: "write type: \(other.rawValue)")
        }
        if let python = provider.python {
            let modules = registry.pythonModules
            if modules.contains(python.module) {
                let functions = registry.providers.values.compactMap { $0.pythonName }
                    .filter { $0.hasPrefix(python.module + ".") }.map { String($0.dropFirst(python.module.count + 1)) }
                throw Diagnostic(
                    "\(python.module) has no function \"\(python.function)\"", at: provider.typeLocation ?? provider.location,
                    path: provider.path.appending("func"),
                    hint: Suggestion.didYouMean(python.function, in: functions) ?? "its functions: \(Set(functions).sorted().joined(separator: ", "))"
                )
            }
            throw Diagnostic(
                "python module \"\(python.module)\" is not supported: Faultline runs no Python", at: provider.typeLocation ?? provider.location,
                path: provider.path.appending("module"),
                hint: modules.isEmpty
                    ? "use a native provider (faultline plugins lists them)"
                    : "supported python modules: \(modules.joined(separator: ", ")); or use a native provider (faultline plugins lists them)")
        }
        throw Diagnostic(
            "unknown provider type \"\(provider.type)\"", at: provider.typeLocation ?? provider.location, path: typePath,
            hint: Suggestion.didYouMean(provider.type, in: registry.providerTypes + ["python"])
                ?? "known types: \(registry.providerTypes.joined(separator: ", ")) (faultline plugins describes them)")
    }

    private static func prepare(_ activity: Activity, substitution: Substitution, registry: PluginRegistry, into sink: DiagnosticSink)
        -> PreparedActivity?
    {
        let descriptor: ProviderDescriptor
        do {
            descriptor = try self.descriptor(for: activity, registry: registry)
        } catch {
            sink.report(error, fallbackLocation: activity.location, path: activity.path)
            return nil
        }
        let provider = activity.provider
        let argumentsPath = provider.python != nil ? provider.path.appending("arguments") : provider.path

        // Substitute first; decode only when every name resolved, so a `${typo}` gives one error.
        let substitutionSink = DiagnosticSink()
        let arguments = (try? substitution.substitute(provider.arguments, path: argumentsPath, sink: substitutionSink)) ?? provider.arguments
        substitutionSink.diagnostics.forEach(sink.report)
        for key in descriptor.visibleArgumentKeys {
            if let node = arguments[key], let exposed = substitution.exposedSecret(in: node, key: key, path: argumentsPath.appending(key)) {
                sink.report(exposed)
            }
        }
        var invocation: PreparedInvocation?
        if !substitutionSink.hasErrors {
            do {
                invocation = try descriptor.prepare(arguments, path: argumentsPath, sink: sink, registry: registry)
            } catch {
                sink.report(error, fallbackLocation: provider.location, path: argumentsPath)
            }
        }

        var tolerance: Tolerance?
        if let node = activity.tolerance {
            let tolerancePath = activity.path.appending("tolerance")
            do {
                // A probe tolerance refers to `${value}`, the output it judges: leave its provider for later.
                let isProbeTolerance = node["type"]?.stringValue == "probe"
                let substituted = isProbeTolerance ? node : try substitution.substitute(node, path: tolerancePath)
                tolerance = try Tolerance.parse(substituted, path: tolerancePath, custom: descriptor.toleranceParser)
            } catch {
                sink.report(error, fallbackLocation: node.location, path: tolerancePath)
            }
        }

        func seconds(_ node: SourceNode?, _ path: DocumentPath, _ what: String) -> Double? {
            guard let node else { return nil }
            do {
                let value = try substitution.substitute(node, path: path)
                guard let number = value.scalar?.numberValue, NumberRange.seconds.contains(number) else {
                    sink.report(
                        Diagnostic("\(what) must be \(NumberRange.seconds) (365 days), found \(describeFound(value))", at: node.location, path: path))
                    return nil
                }
                return number
            } catch {
                sink.report(error, fallbackLocation: node.location, path: path)
                return nil
            }
        }
        let pauseBefore = seconds(activity.pauseBefore, activity.path.appending("pauses").appending("before"), "a pause")
        let pauseAfter = seconds(activity.pauseAfter, activity.path.appending("pauses").appending("after"), "a pause")
        let timeout = seconds(activity.timeout, activity.path.appending("timeout"), "timeout")

        guard let invocation, !sink.hasErrors else { return nil }
        return PreparedActivity(
            activity: activity, descriptor: descriptor, invocation: invocation, tolerance: tolerance, pauseBefore: pauseBefore,
            pauseAfter: pauseAfter,
            timeout: timeout)
    }
}

/// Checks an experiment against the registry and a configuration, reporting every problem.
public enum ExperimentValidator {
    /// Validates every activity in execution order, so that values exported by earlier
    /// activities (a bound port) are known to later ones.
    /// - Parameter budget: what the substitutions of the whole load may produce, shared by every
    ///   experiment of a plan (nil: a budget of this experiment's own).
    public static func validate(
        _ experiment: Experiment, configuration: ResolvedConfiguration, registry: PluginRegistry, sink: DiagnosticSink,
        budget: SubstitutionBudget? = nil
    ) {
        var substitution = configuration.substitution
        substitution.budget = budget ?? SubstitutionBudget(total: InputLimits.documents.substitutionTotal)
        let hypothesisProbes = experiment.hypothesis?.probes ?? []
        func check(_ activity: Activity) {
            // A ref that names nothing was reported already; past the sink's limit nothing more is shown.
            guard !(activity.referencedName != nil && activity.provider.type.isEmpty), !sink.isFull else { return }
            guard let prepared = try? PreparedActivity.prepare(activity, substitution: substitution, registry: registry, sink: sink) else { return }
            for (key, value) in prepared.invocation.exports where substitution.variables[key] == nil {
                substitution.variables[key] = value
            }
            if case .probe(let probe)? = prepared.tolerance {
                // Set and restored in place: a copy of every variable per probe would be quadratic.
                let previous = substitution.variables.updateValue(.null, forKey: "value")
                _ = try? PreparedActivity.prepare(probe, substitution: substitution, registry: registry, sink: sink)
                substitution.variables["value"] = previous
            }
        }
        hypothesisProbes.forEach(check)
        experiment.method.forEach(check)
        experiment.rollbacks.forEach(check)
    }
}
