/// What probes and actions have in common: a provider type name and typed arguments.
///
/// An activity's `provider:` object (without `type`) is decoded into ``Arguments`` when the
/// experiment is validated, after `${var}` substitution, so a misspelt key or a string where a
/// number belongs is a load error with file, line and column — never a run-time surprise.
///
/// ## Implementation requirements
/// - `Arguments` decodes with the synthesized or a hand-written `init(from:)`. Keys that the
///   initializer never looks up are reported as unknown, so declare every key you accept. Make it
///   `Codable` too, and `faultline plugins` shows the defaults your initializer fills in.
/// - Give every number a user writes a range: conform `Arguments` to ``NumberRanges``
///   (`["timeout": .seconds, "port": .port]`). The decoder rejects a value outside it at load
///   time, so the provider may compute with the value without overflow checks; convert seconds
///   with `Duration.seconds(saturating:)`, never `.seconds(_:)` of an unchecked number.
/// - Put checks that types cannot express (a positive rate, a known signal name) in
///   ``validate(_:)``; throw ``ArgumentError`` naming the key, and the message points at it.
public protocol Provider: Sendable {
    associatedtype Arguments: Decodable & Sendable

    /// The `provider.type` that selects this provider, e.g. `http`, `process.kill`, `toxic`.
    static var type: String { get }
    /// One line for `faultline plugins`.
    static var summary: String { get }
    /// Help for individual arguments, by key, for `faultline plugins`.
    static var argumentHelp: [String: String] { get }
    /// Whether the provider wants to be called in dry mode (with ``ActivityContext/isDryRun`` set),
    /// e.g. to list what it would kill. Others are skipped in dry mode.
    static var handlesDryRun: Bool { get }

    /// Checks what types cannot; called at validation and before each run.
    static func validate(_ arguments: Arguments) throws
    /// Things worth a warning at validation that are not errors (a deprecated form).
    static func warnings(_ arguments: Arguments) -> [ArgumentError]
    /// The longest the provider runs by its own arguments (e.g. a process's `timeout`), if it has
    /// a hard limit. The engine cancels the activity a few seconds after it, as a safety net for a
    /// provider that fails to stop; the provider's own error, being earlier, is the one reported.
    static func timeLimit(_ arguments: Arguments) -> Double?
    /// Configuration keys this activity sets when it runs, so that later activities may refer to
    /// them: `create_proxy` exports `<name>_PORT`. Validation substitutes these values, so give the
    /// value when the arguments tell it and otherwise one that passes validation wherever the real
    /// one would (a port bound at run time: a plausible port, not 0).
    static func exports(_ arguments: Arguments) -> [String: Value]
    /// Whether an output of this provider reports success, for a `{type: probe}` tolerance that
    /// runs it (a process that exited 0, an HTTP 2xx). Nil, the default, judges the output by its
    /// truthiness. The engine asks the provider, so it never guesses an output's kind from its keys.
    static func isSuccess(_ output: Value) -> Bool?
    /// Argument keys whose values every user of the machine can read while the provider runs — a
    /// process's `path` and `arguments` are its command line, public in `/proc/<pid>/cmdline`. A
    /// secret substituted into one is a load error at its position (pass it in the environment).
    static var visibleArgumentKeys: [String] { get }
}

extension Provider {
    public static var argumentHelp: [String: String] { [:] }
    public static var handlesDryRun: Bool { false }
    public static func validate(_ arguments: Arguments) throws {}
    public static func warnings(_ arguments: Arguments) -> [ArgumentError] { [] }
    public static func timeLimit(_ arguments: Arguments) -> Double? { nil }
    public static func exports(_ arguments: Arguments) -> [String: Value] { [:] }
    public static func isSuccess(_ output: Value) -> Bool? { nil }
    public static var visibleArgumentKeys: [String] { [] }
}

/// Observes the system and returns what it saw. Pure observation: a probe changes nothing.
///
/// ## Implementation requirements
/// - **Cancellation.** The engine cancels the task on timeout and on interrupt. Return or throw
///   `CancellationError` promptly (well under a second), releasing sockets and processes.
/// - **No blocking of the cooperative pool.** Use async I/O, or move blocking calls to a thread
///   of your own; never sleep a thread or wait on a semaphore in `probe`.
/// - **Failures are thrown** with a message a user can act on (`connection refused to
///   127.0.0.1:8080`). A value the tolerance rejects is not a failure: return it.
public protocol Probe: Provider {
    /// Runs the probe.
    /// - Parameters:
    ///   - arguments: the provider's arguments, substituted and decoded.
    ///   - context: run-time services: configuration, logger, resources, randomness.
    /// - Returns: the output the tolerance judges and the journal records.
    func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value
}

/// Changes the system: injects a fault, kills a process, starts a service.
///
/// ## Implementation requirements
/// - Everything ``Probe`` requires about cancellation, blocking and failures.
/// - **Undo.** An action that leaves something behind (a toxic, a stopped process) registers how
///   to undo it with ``ActivityContext/registerCleanup(_:_:)``. Cleanups run when the experiment
///   ends — after rollbacks, also after an interrupt — and must be **idempotent**: a rollback may
///   already have removed the toxic, and a cleanup that finds nothing to undo succeeds.
public protocol Action: Provider {
    /// Performs the action.
    /// - Returns: what happened, for the journal (`.null` when there is nothing to say).
    func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value
}

/// A probe that judges its own output with a richer tolerance grammar (e.g. `http.load` and k6
/// thresholds such as `p(95)<200`).
public protocol ToleranceProviding: Sendable {
    /// Parses a tolerance written for this probe, or returns nil to use the standard forms.
    static func tolerance(from node: SourceNode, path: DocumentPath) throws -> (any ToleranceCheck)?
}

/// A parsed tolerance that judges a probe's output.
public protocol ToleranceCheck: Sendable {
    /// Judges the output.
    func check(_ output: Value) -> ToleranceOutcome
    /// The tolerance as the journal records it.
    var summary: Value { get }
    /// The output as the journal records it once this tolerance is attached to the activity —
    /// e.g. `http.load` adds the `thresholds` it evaluated. Called in every phase (a method
    /// activity's tolerance is not judged, but its output still shows it); the default returns
    /// the output unchanged.
    func annotate(_ output: Value) -> Value
}

extension ToleranceCheck {
    public func annotate(_ output: Value) -> Value { output }
}

/// The verdict of a tolerance.
public struct ToleranceOutcome: Sendable, Equatable {
    public var met: Bool
    /// Why it was not met, e.g. `p(95) is 312 ms, limit < 200 ms`.
    public var message: String?

    public init(met: Bool, message: String? = nil) {
        self.met = met
        self.message = message
    }
}

/// A problem with one argument, found by ``Provider/validate(_:)``; the engine points at the key.
public struct ArgumentError: Error, Sendable, CustomStringConvertible {
    /// The argument key, or a dotted path inside it (`attributes.rate`).
    public var key: String?
    public var message: String
    public var hint: String?
    /// Where in the document the problem is, when it is known more exactly than the key's value
    /// (an unknown key nested in an argument: the key itself).
    public var location: SourceLocation?

    public init(_ key: String?, _ message: String, hint: String? = nil, at location: SourceLocation? = nil) {
        self.key = key
        self.message = message
        self.hint = hint
        self.location = location
    }

    public var description: String { key.map { "\($0): \(message)" } ?? message }
}

/// An activity failure with a message for the user (the journal's `exception`).
public struct ActivityFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// Extra lines for the journal: the start of a response body, the last log lines.
    public var details: [String]
    /// A partial output to record even though the activity failed.
    public var output: Value?

    public init(_ message: String, details: [String] = [], output: Value? = nil) {
        self.message = message
        self.details = details
        self.output = output
    }

    public var description: String { message }
}
