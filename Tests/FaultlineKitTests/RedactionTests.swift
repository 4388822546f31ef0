import FaultlineKit
import FaultlineTesting
import Logging
import Synchronization
import Testing

/// Keeps every line a logger writes, with its metadata.
final class CapturedLog: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    func logger() -> Logger {
        Logger(label: "test") { _ in Handler(log: self) }
    }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let text = "\(event.message) " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            log.lines.withLock { $0.append(text) }
        }
    }
}

@Suite("Secrets in log lines")
struct RedactionTests {
    @Test("what a provider writes to its logger has the experiment's own secrets and the suite's masked")
    func providerLogs() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write(
            "experiments.yaml",
            """
            name: s
            secrets: {shared: {api_key: suite-secret-4321}}
            experiments:
              - title: leaky
                secrets: {db: {password: experiment-secret-1234}}
                method:
                  - {type: action, name: a, provider: {type: test.action, label: a, log: "pw=${password} key=${api_key}"}}
            """)
        let captured = CapturedLog()
        let kit = TestKit()
        let runner = SuiteRunner(registry: kit.registry(), logger: captured.logger())
        var options = SuiteRunner.Options()
        options.journalPath = scratch.path("journals")
        let result = await runner.run(try runner.load(path: scratch.path("experiments.yaml"), options: options))
        #expect(result.exitCode == 0)
        let text = captured.all.joined(separator: "\n")
        #expect(text.contains("pw=*** key=***"), "\(text)")
        #expect(text.contains("activity=a"), "\(text)")
        #expect(!text.contains("experiment-secret-1234") && !text.contains("suite-secret-4321"), "\(text)")
    }

    @Test("a redacting logger masks metadata too, whoever set it")
    func metadata() {
        let captured = CapturedLog()
        var logger = captured.logger().redacting(Redactor(secrets: ["s": ["token": "tok-secret-99"]]))
        logger[metadataKey: "url"] = "http://u:tok-secret-99@h"
        logger.warning("sent tok-secret-99", metadata: ["header": ["Bearer tok-secret-99", .stringConvertible(42)]])
        #expect(captured.all == ["sent *** header=[\"Bearer ***\", \"42\"] url=http://u:***@h"])
    }
}
