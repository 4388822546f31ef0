import Foundation

/// Where a run's journals go: for one experiment, one file (`--journal-path`, default
/// `journal.json`); for a suite, a directory (default `journals/`) of numbered files named after
/// the experiments. Plugins put their run files (service logs) in ``runDirectory``.
public struct JournalLayout: Sendable {
    /// The directory of the journals and the run's other files.
    public let runDirectory: String
    private let file: String?

    init(suite: Suite, journalPath: String?) {
        if !suite.isSuiteFile {
            let path = journalPath ?? "journal.json"
            let directory = (path as NSString).deletingLastPathComponent
            runDirectory = directory.isEmpty ? "." : directory
            file = path
        } else {
            runDirectory = journalPath ?? "journals"
            file = nil
        }
    }

    /// The journal of the experiment at `index` (from 0) of the run.
    public func path(of index: Int, _ experiment: Experiment) -> String {
        file ?? (runDirectory as NSString).appendingPathComponent(String(format: "%02d-", index + 1) + slug(experiment.title) + ".json")
    }
}
