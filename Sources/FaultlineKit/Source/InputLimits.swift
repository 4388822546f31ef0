/// How much input a document may make Faultline build, so that no file — a YAML "billion
/// laughs", a `${…}` nesting bomb, a million keys — costs more than a second and ~100 MB before
/// it is refused with its position.
///
/// The defaults are far above any real experiment or suite (the largest in this repository has a
/// few hundred values) and low enough that validating what they allow takes a few seconds at
/// most, even in a debug build.
public struct InputLimits: Sendable, Hashable {
    /// The largest document, in bytes.
    public var documentBytes: Int
    /// The deepest nesting of lists and objects.
    public var depth: Int
    /// The most values (scalars, lists, objects) in a document, counting each YAML alias and
    /// merge key as a copy of what it refers to.
    public var values: Int
    /// The longest string a `${…}` substitution may produce, and the most values a substituted
    /// configuration value may hold, in bytes and values.
    public var substitutionSize: Int
    /// The most a whole load may substitute, summed over every `${…}`.
    public var substitutionTotal: Int
    /// The most values a run's plan may hold in all: its experiments (an experiment file a suite
    /// names twice counts twice) and the shared configuration each of them sees.
    public var planValues: Int

    public init(documentBytes: Int, depth: Int, values: Int, substitutionSize: Int, substitutionTotal: Int, planValues: Int) {
        self.documentBytes = documentBytes
        self.depth = depth
        self.values = values
        self.substitutionSize = substitutionSize
        self.substitutionTotal = substitutionTotal
        self.planValues = planValues
    }

    /// Experiments, suites, variable files, proxy configurations.
    public static let documents = InputLimits(
        documentBytes: 4 << 20, depth: 64, values: 100_000, substitutionSize: 1 << 20, substitutionTotal: 32 << 20, planValues: 150_000)

    /// Journals, which a long load test makes large; read back by `faultline report`.
    public static let journals = InputLimits(
        documentBytes: 1 << 30, depth: 512, values: .max, substitutionSize: .max, substitutionTotal: .max, planValues: .max)

    /// `4 MiB`, `1 MiB`, `512 bytes`.
    static func bytes(_ count: Int) -> String {
        if count >= 1 << 20, count % (1 << 20) == 0 { return "\(count >> 20) MiB" }
        if count >= 1 << 10, count % (1 << 10) == 0 { return "\(count >> 10) KiB" }
        return "\(count) bytes"
    }
}
