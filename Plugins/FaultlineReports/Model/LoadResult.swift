import FaultlineKit

extension LoadResult {
    /// Reads a probe output as a load result, or returns nil when it is not one: a load output is
    /// recognised by the provider type `http.load` or by the presence of `overall` and `timeline`.
    /// Reading is lenient (see ``LoadResult``), so a report renders a journal written by an older
    /// or newer load probe.
    /// - Parameters:
    ///   - output: the probe's output.
    ///   - providerType: the activity's `provider.type`.
    init?(_ output: Value?, providerType: String? = nil) {
        guard let output, case .object(let object) = output, object["overall"] != nil else { return nil }
        guard providerType == "http.load" || (object["overall"]?.objectValue != nil && object["timeline"]?.arrayValue != nil) else { return nil }
        guard let result = try? LoadResult(decoding: output) else { return nil }
        self = result
    }
}
