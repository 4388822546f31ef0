import FaultlineKit
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// Whether a process with this pid is alive (and not a zombie).
func isAlive(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    return !status.contains("State:\tZ")
}

@Suite("faultline as a child process", .serialized)
struct CLITests {
    /// An experiment whose method starts a long process that records its pid, and whose rollback leaves a mark.
    static func interruptible(_ scratch: ScratchDirectory) -> String {
        """
        title: interruptible
        steady-state-hypothesis:
          title: scratch exists
          probes:
            - {type: probe, name: scratch-exists, tolerance: 0, provider: {type: process, path: test, arguments: ["-d", "\(scratch.url.path)"]}}
        method:
          - type: action
            name: long-action
            provider:
              type: process
              path: sh
              arguments: ["-c", "echo $$$$ > \(scratch.path("long.pid")); exec sleep 60"]
          - {type: action, name: never, provider: {type: process, path: touch, arguments: ["\(scratch.path("never"))"]}}
        rollbacks:
          - {type: action, name: rollback, provider: {type: process, path: touch, arguments: ["\(scratch.path("rolled-back"))"]}}
        """
    }

    @Test("SIGINT and SIGTERM stop the method, run the rollbacks, leave nothing running, exit 130", arguments: [SIGINT, SIGTERM])
    func interrupt(_ signal: Int32) async throws {
        let scratch = try ScratchDirectory()
        try scratch.write("exp.yaml", Self.interruptible(scratch))
        let run = try TestProcess.faultline(["run", "exp.yaml", "--journal-path", "journal.json"], in: scratch)
        #expect(await eventually { scratch.exists("long.pid") })
        let pidText = try String(contentsOfFile: scratch.path("long.pid"), encoding: .utf8)
        let child = try #require(pid_t(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(child, SIGKILL) }
        run.signal(signal)
        let status = await run.wait()
        #expect(status == 130, "stdout: \(run.stdout)\nstderr: \(run.stderr)")
        #expect(scratch.exists("rolled-back"))
        #expect(!scratch.exists("never"))
        #expect(await eventually { !isAlive(child) }, "the interrupted action's process is still running")
        let journal = try Journal.load(path: scratch.path("journal.json"))
        #expect(journal.status == .interrupted)
        #expect(journal.run.first?.status == .interrupted)
        #expect(journal.rollbacks.first?.status == .succeeded)
        let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
        #expect(journal.reason?.hasPrefix("interrupted by \(name)") == true)
        #expect(run.stdout.contains("interrupted (exit 130)"))
    }

    @Test("kill -9 leaves a valid journal of what happened so far")
    func killNine() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write("exp.yaml", Self.interruptible(scratch))
        let run = try TestProcess.faultline(["run", "exp.yaml", "--journal-path", "journal.json"], in: scratch)
        #expect(await eventually { scratch.exists("long.pid") })
        let child = pid_t(try String(contentsOfFile: scratch.path("long.pid"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
        defer { if let child { kill(-child, SIGKILL); kill(child, SIGKILL) } }
        run.signal(SIGKILL)
        _ = await run.wait()
        let journal = try Journal.load(path: scratch.path("journal.json"))
        #expect(journal.status == .running)
        #expect(journal.steadyStates.before?.steadyStateMet == true)
        #expect(journal.end == nil)
    }

    @Test(
        "exit codes: completed 0, deviated 1, failed 1, aborted 1, invalid 2",
        arguments: [
            ("completed", "0", "0", "true", Int32(0)),
            ("deviated", "0", "1", "true", 1),
            ("failed", "1", "0", "true", 1),
            ("aborted", "0", "0", "false", 1),
        ])
    func exitCodes(_ outcome: String, _ before: String, _ after: String, _ action: String, _ expected: Int32) async throws {
        let scratch = try ScratchDirectory()
        // The probe exits with the status in the file `state`; the action rewrites it.
        try scratch.write("state", before)
        try scratch.write(
            "exp.yaml",
            """
            title: \(outcome)
            steady-state-hypothesis:
              title: state is 0
              probes:
                - {type: probe, name: state-ok, tolerance: 0, provider: {type: process, path: sh, arguments: ["-c", "exit $(cat state)"]}}
            method:
              - {type: action, name: change, provider: {type: process, path: sh, arguments: ["-c", "echo \(after) > state"]}}
              - {type: action, name: check, provider: {type: process, path: sleep, arguments: ["\(action == "true" ? "0" : "60")"], timeout: 2}}
            """)
        let run = try TestProcess.faultline(["run", "exp.yaml"], in: scratch)
        let status = await run.wait()
        #expect(status == expected, "\(run.stdout)\n\(run.stderr)")
        let journal = try Journal.load(path: scratch.path("journal.json"))
        #expect(journal.outcome.rawValue == outcome)
    }

    @Test("a typo is exit 2 with file:line:column and what to write instead")
    func invalidInput() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write("exp.yaml", "title: t\nmethod:\n  - type: action\n    name: a\n    provider: {type: proces, path: true}\n")
        for command in ["run", "validate"] {
            let run = try TestProcess.faultline([command, "exp.yaml"], in: scratch)
            #expect(await run.wait() == 2)
            #expect(
                run.stderr.contains("exp.yaml:5:22: unknown provider type \"proces\" (did you mean \"process\"?) at method[0].provider.type"),
                "\(run.stderr)")
        }
        #expect(!scratch.exists("journal.json"))
    }

    @Test("recover --token: an unset variable, an unreadable file and an empty file are exit 2, naming the option and never the token")
    func recoverTokenSources() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write("empty-token", "\n")
        try scratch.write("token", "s3cret-token\n")
        let cases = [
            ("a=env:FL_TEST_UNSET_TOKEN", "--token a=env:FL_TEST_UNSET_TOKEN: the environment variable FL_TEST_UNSET_TOKEN is not set (or empty)"),
            ("a=env:FL_TEST_EMPTY_TOKEN", "--token a=env:FL_TEST_EMPTY_TOKEN: the environment variable FL_TEST_EMPTY_TOKEN is not set (or empty)"),
            ("a=file:\(scratch.path("missing"))", "--token a=file:\(scratch.path("missing")): cannot read \(scratch.path("missing"))"),
            ("a=file:\(scratch.path("empty-token"))", "--token a=file:\(scratch.path("empty-token")): the file is empty"),
        ]
        for (option, message) in cases {
            let recover = try TestProcess.faultline(
                ["recover", "--ledger-dir", scratch.path("ledgers"), "--token", option], in: scratch, environment: ["FL_TEST_EMPTY_TOKEN": ""])
            #expect(await recover.wait() == 2, "\(recover.stdout)\n\(recover.stderr)")
            #expect(recover.stderr.contains(message), "\(recover.stderr)")
        }
        // Tokens that are where they say are read (the file's line end is the editor's): nothing to recover.
        let readable = try TestProcess.faultline(
            ["recover", "--ledger-dir", scratch.path("ledgers"), "--token", "a=file:\(scratch.path("token"))", "--token", "b=env:FL_TEST_TOKEN"],
            in: scratch, environment: ["FL_TEST_TOKEN": "s3cret-token"])
        #expect(await readable.wait() == 0, "\(readable.stdout)\n\(readable.stderr)")
        #expect(readable.stdout.contains("nothing to recover"), "\(readable.stdout)")
        #expect(!(readable.stdout + readable.stderr).contains("s3cret-token"))
    }

    @Test("an unset environment variable is reported once, at its definition, not again at every use")
    func unsetVariableOnce() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write(
            "exp.yaml",
            """
            title: t
            configuration:
              port: {type: env, key: FL_TEST_UNSET_PORT}
            secrets:
              api: {token: {type: env, key: FL_TEST_UNSET_TOKEN}}
            method:
              - type: action
                name: a
                provider: {type: http, url: "http://127.0.0.1:${port}/x", headers: {auth: "${token}"}}
              - type: action
                name: b
                provider: {type: http, url: "http://127.0.0.1:${port}/y", headers: {auth: "${tokn}"}}
            """)
        for command in ["run", "validate"] {
            let run = try TestProcess.faultline([command, "exp.yaml"], in: scratch)
            #expect(await run.wait() == 2)
            #expect(run.stderr.contains("exp.yaml:3:9: environment variable FL_TEST_UNSET_PORT is not set"), "\(run.stderr)")
            #expect(run.stderr.contains("exp.yaml:5:16: environment variable FL_TEST_UNSET_TOKEN is not set"), "\(run.stderr)")
            // A name that is really unknown is still reported where it is used.
            #expect(run.stderr.contains("exp.yaml:12:79: unknown variable \"${tokn}\""), "\(run.stderr)")
            #expect(!run.stderr.contains("${port}") && !run.stderr.contains("${token}"), "\(run.stderr)")
            #expect(run.stderr.components(separatedBy: "error: ").count == 4, "\(run.stderr)")
        }
    }

    @Test(
        "Chaos Toolkit forms load: a bound port in a later URL, ports as text, runtime.python, contributions as a list, a python provider's timeout, empty pauses"
    )
    func chaosToolkitForms() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write(
            "exp.json",
            """
            {
              "title": "proxied",
              "description": "ports known only when the proxies are created",
              "contributions": [],
              "runtime": {"python": {"version": "3.14", "dependencies": ["chaostoolkit-toxiproxy>=0.3"]}},
              "configuration": {"listen_port": {"type": "env", "key": "T_LISTEN_PORT"}},
              "method": [
                {"type": "action", "name": "proxy", "provider": {"type": "python", "module": "chaostoxi.proxy.actions", "func": "create_proxy",
                  "arguments": {"proxy_name": "svc", "upstream_host": "127.0.0.1", "upstream_port": "8080", "listen_port": "${listen_port}"}, "timeout": 30}},
                {"type": "action", "name": "other", "provider": {"type": "proxy.create", "name": "db", "upstream": "127.0.0.1:6379"}, "pauses": null},
                {"type": "probe", "name": "through-svc", "provider": {"type": "http", "url": "http://127.0.0.1:${svc_PORT}/", "timeout": "2"}},
                {"type": "probe", "name": "through-db", "provider": {"type": "http", "url": "http://127.0.0.1:${db_PORT}/"}}
              ]
            }
            """)
        let run = try TestProcess.faultline(["validate", "exp.json"], in: scratch, environment: ["T_LISTEN_PORT": "0"])
        #expect(await run.wait() == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr.contains("runtime.python is ignored"), "\(run.stderr)")
        #expect(
            run.stderr.contains("exp.json:9:142: warning: a python provider's timeout is not used (Chaos Toolkit ignores it too)"),
            "\(run.stderr)")
        #expect(run.stderr.contains("exp.json:10:133: warning: an empty pauses: means no pauses"), "\(run.stderr)")
    }

    @Test("secrets are masked on the console and in logs, not only in the journal")
    func consoleRedaction() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write(
            "exp.yaml",
            """
            title: leaky
            secrets:
              db: {password: {type: env, key: T_DB_PASSWORD}}
            steady-state-hypothesis:
              title: h
              probes:
                - {type: probe, name: leak, tolerance: 0, provider: {type: process, path: sh, arguments: ["-c", "echo pw=$$PW; exit 3"], env: {PW: "${password}"}}}
            method: []
            """)
        let run = try TestProcess.faultline(["run", "exp.yaml", "--verbose"], in: scratch, environment: ["T_DB_PASSWORD": "correct-horse-battery"])
        #expect(await run.wait() == 1)
        let everything = run.stdout + run.stderr + (try String(contentsOfFile: scratch.path("journal.json"), encoding: .utf8))
        #expect(!everything.contains("correct-horse-battery"))
        #expect(everything.contains("pw=***"))
    }

    @Test("an experiment's own secret in a URL is masked in --verbose output, the provider's retries logged")
    func experimentSecretInVerboseOutput() async throws {
        let scratch = try ScratchDirectory()
        // Nothing listens on port 1: the http provider logs its retry, and the run names the URL.
        try scratch.write(
            "exp.yaml",
            """
            title: leaky log
            secrets:
              db: {password: {type: env, key: T_DB_PASSWORD}}
            method:
              - {type: action, name: a, provider: {type: http, url: "http://127.0.0.1:1/?pw=${password}", max_retries: 1, timeout: 1}}
            """)
        let run = try TestProcess.faultline(["run", "exp.yaml", "--verbose"], in: scratch, environment: ["T_DB_PASSWORD": "tr0ub4dor-and-3"])
        #expect(await run.wait() == 1)
        let output = run.stdout + run.stderr
        #expect(output.contains("retry 1 of 1"), "\(output)")
        #expect(!output.contains("tr0ub4dor-and-3"))
        #expect(output.contains("?pw=***"), "\(output)")
    }

    @Test("faultline run with no experiments.yaml says what to do")
    func noSuite() async throws {
        let scratch = try ScratchDirectory()
        let run = try TestProcess.faultline(["run"], in: scratch)
        #expect(await run.wait() != 0)
        #expect(run.stderr.contains("no experiments.yaml"))
    }

    @Test("plugins --json lists providers with their arguments, types and defaults")
    func plugins() async throws {
        let scratch = try ScratchDirectory()
        let run = try TestProcess.faultline(["plugins", "--json"], in: scratch)
        #expect(await run.wait() == 0)
        let listing = try JSONReader.value(run.stdout)
        let process = try #require(listing["providers"]?.arrayValue?.first { $0["type"] == "process" })
        #expect(process["kinds"] == ["action", "probe"])
        let arguments = try #require(process["arguments"]?.arrayValue)
        let path = try #require(arguments.first { $0["name"] == "path" })
        #expect(path["type"] == "string")
        #expect(path["required"] == true)
        let shell = try #require(arguments.first { $0["name"] == "shell" })
        #expect(shell["default"] == false)
        #expect(shell["type"] == "boolean")
    }

    @Test("a suite runs on its default profile, --profile picks another, and the summary names each experiment")
    func suiteProfiles() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write(
            "one.yaml",
            """
            title: writes the profile's word
            method:
              - {type: action, name: write, provider: {type: process, path: sh, arguments: ["-c", "echo ${word} >> words"]}}
            """)
        try scratch.write(
            "experiments.yaml",
            """
            name: words
            experiments:
              - one.yaml
              - title: inline experiment
                method:
                  - {type: probe, name: count, provider: {type: process, path: "true"}}
            profiles:
              local: {default: true, configuration: {word: local-word}}
              ci: {configuration: {word: ci-word}}
            """)
        let run = try TestProcess.faultline(["run"], in: scratch)
        #expect(await run.wait() == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("profile local"))
        #expect(run.stdout.contains("writes the profile's word"))
        #expect(run.stdout.contains("inline experiment"))
        let ci = try TestProcess.faultline(["run", "--profile", "ci", "--var", "unused:int=3"], in: scratch)
        #expect(await ci.wait() == 0)
        #expect(try String(contentsOfFile: scratch.path("words"), encoding: .utf8) == "local-word\nci-word\n")
        #expect(scratch.exists("journals/01-writes-the-profile-s-word.json"))
        let unknown = try TestProcess.faultline(["run", "--profile", "staging"], in: scratch)
        #expect(await unknown.wait() == 2)
        #expect(unknown.stderr.contains("known profiles: local, ci"))
    }
}

@Suite("suite expectations and variable files", .serialized)
struct SuiteFileTests {
    @Test("an experiment documented to deviate passes the suite when it deviates, and fails it when it holds")
    func expectations() async throws {
        let scratch = try ScratchDirectory()
        // The probe exits with the status in `state`; the method writes ${after} there.
        try scratch.write(
            "weak.yaml",
            """
            title: shows a known weakness
            steady-state-hypothesis:
              title: state is 0
              probes:
                - {type: probe, name: state-ok, tolerance: 0, provider: {type: process, path: sh, arguments: ["-c", "exit $(cat state)"]}}
            method:
              - {type: action, name: break-it, provider: {type: process, path: sh, arguments: ["-c", "echo ${after} > state"]}}
            """)
        try scratch.write(
            "experiments.yaml",
            """
            name: documented
            experiments:
              - {path: weak.yaml, expect: deviated}
            profiles:
              weak: {default: true, configuration: {after: 1}}
              fixed: {configuration: {after: 0}}
            """)
        try scratch.write("state", "0")
        let deviates = try TestProcess.faultline(["run"], in: scratch)
        #expect(await deviates.wait() == 0, "\(deviates.stdout)")
        #expect(deviates.stdout.contains("deviated (as expected)"))

        try scratch.write("state", "0")
        let holds = try TestProcess.faultline(["run", "--profile", "fixed"], in: scratch)
        #expect(await holds.wait() == 1)
        #expect(holds.stdout.contains("completed (expected deviated)"), "\(holds.stdout)")
        let journal = try Journal.load(path: scratch.path("journals/01-shows-a-known-weakness.json"))
        #expect(journal.expected == .deviated)
        #expect(journal.verdict == .deviated)
    }

    @Test("skip_profiles leaves an experiment out on those profiles and says so; an unknown profile there is a load error")
    func skipProfiles() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write(
            "local-only.yaml",
            """
            title: needs the local backend
            method:
              - {type: action, name: write, provider: {type: process, path: sh, arguments: ["-c", "echo ran >> ran"]}}
            """)
        try scratch.write("everywhere.yaml", "title: runs everywhere\nmethod: [{type: probe, name: p, provider: {type: process, path: \"true\"}}]\n")
        try scratch.write(
            "experiments.yaml",
            """
            name: skipping
            experiments:
              - {path: local-only.yaml, skip_profiles: [remote]}
              - everywhere.yaml
            profiles:
              local: {default: true}
              remote: {}
            """)
        let local = try TestProcess.faultline(["run"], in: scratch)
        #expect(await local.wait() == 0, "\(local.stdout)\(local.stderr)")
        #expect(scratch.exists("ran"))
        #expect(!local.stdout.contains("skipped on profile"))

        try FileManager.default.removeItem(atPath: scratch.path("ran"))
        let remote = try TestProcess.faultline(["run", "--profile", "remote", "--journal-path", "remote-journals"], in: scratch)
        #expect(await remote.wait() == 0, "\(remote.stdout)\(remote.stderr)")
        #expect(!scratch.exists("ran"), "the skipped experiment did not run")
        #expect(remote.stdout.contains("1 experiment"), "\(remote.stdout)")
        #expect(remote.stdout.contains("skipped on profile remote (skip_profiles): needs the local backend"), "\(remote.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path("remote-journals")).filter { $0.hasSuffix(".json") }.count == 1)
        let validate = try TestProcess.faultline(["validate", "--profile", "remote"], in: scratch)
        #expect(await validate.wait() == 0)
        #expect(validate.stdout.contains("1 experiment valid (profile remote; 1 skipped there by skip_profiles)"), "\(validate.stdout)")
        // --only that matches only skipped experiments says why nothing is left.
        let only = try TestProcess.faultline(["run", "--profile", "remote", "--only", "local backend"], in: scratch)
        #expect(await only.wait() == 2)
        #expect(only.stderr.contains("no experiment that runs on profile remote matches --only local backend"), "\(only.stderr)")

        try scratch.write(
            "experiments.yaml",
            """
            name: skipping
            experiments:
              - {path: local-only.yaml, skip_profiles: [remot]}
            profiles:
              local: {default: true}
              remote: {}
            """)
        let typo = try TestProcess.faultline(["validate"], in: scratch)
        #expect(await typo.wait() == 2)
        #expect(typo.stderr.contains("experiments.yaml:3:"), "\(typo.stderr)")
        #expect(typo.stderr.contains("skip_profiles names an unknown profile \"remot\""), "\(typo.stderr)")
        #expect(typo.stderr.contains("remote"), "did you mean")
    }

    @Test("reports.compare writes a before/after comparison of two of the suite's experiments, naming both")
    func suiteComparison() async throws {
        let scratch = try ScratchDirectory()
        for (file, title) in [("before.yaml", "the slow variant"), ("after.yaml", "the fast variant")] {
            try scratch.write(file, "title: \(title)\nmethod: [{type: probe, name: p, provider: {type: process, path: \"true\"}}]\n")
        }
        try scratch.write(
            "experiments.yaml",
            """
            name: compared
            experiments: [before.yaml, after.yaml]
            reports:
              formats: [md, html, junit]
              dir: out
              compare:
                - {name: slow-vs-fast, baseline: before.yaml, after: after.yaml}
            """)
        let run = try TestProcess.faultline(["run"], in: scratch)
        #expect(await run.wait() == 0, "\(run.stdout)\(run.stderr)")
        for format in ["md", "html"] {
            let text = try String(contentsOfFile: scratch.path("out/slow-vs-fast.\(format)"), encoding: .utf8)
            #expect(text.contains("Before and after: the slow variant vs. the fast variant"), "\(text)")
            #expect(text.contains("Experiment"), "a row names each side's experiment")
        }
        #expect(!scratch.exists("out/slow-vs-fast.xml"), "JUnit cannot compare")
        #expect(scratch.exists("out/compared.xml"))
        // Only one of the two ran: no comparison.
        let only = try TestProcess.faultline(["run", "--only", "slow", "--report-dir", "only"], in: scratch)
        #expect(await only.wait() == 0)
        #expect(scratch.exists("only/compared.md") && !scratch.exists("only/slow-vs-fast.md"))

        try scratch.write(
            "experiments.yaml",
            """
            name: compared
            experiments: [before.yaml, after.yaml]
            reports:
              compare:
                - {name: slow-vs-fast, baseline: befor.yaml, after: after.yaml}
            profiles:
              local: {default: true, reports: {compare: [{name: other, baseline: before.yaml, after: aftr.yaml}]}}
            """)
        let typo = try TestProcess.faultline(["validate"], in: scratch)
        #expect(await typo.wait() == 2)
        #expect(typo.stderr.contains("experiments.yaml:5:"), "\(typo.stderr)")
        #expect(typo.stderr.contains("reports.compare baseline \"befor.yaml\" is not an experiment file of the suite"), "\(typo.stderr)")
        #expect(typo.stderr.contains("experiments.yaml:7:"), "a profile's comparisons are checked too: \(typo.stderr)")
        #expect(typo.stderr.contains("reports.compare after \"aftr.yaml\" is not an experiment file of the suite"), "\(typo.stderr)")
    }

    @Test("--var-file reads YAML configuration and secrets, and .env lines; --var wins")
    func variableFiles() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write("vars.yaml", "configuration: {word: from-yaml, other: kept}\nsecrets: {s: {token: tok-from-file-123}}\n")
        try scratch.write("vars.env", "# a comment\nexport word=from-env\nquoted=\"two words\"\n")
        try scratch.write(
            "exp.yaml",
            """
            title: vars
            configuration: {word: default, other: default, quoted: default}
            method:
              - {type: action, name: write, provider: {type: process, path: sh, arguments: ["-c", "echo ${word} ${other} ${quoted} $$TOKEN > out"], env: {TOKEN: "${token}"}}}
            """)
        let run = try TestProcess.faultline(["run", "exp.yaml", "--var-file", "vars.yaml", "--var-file", "vars.env"], in: scratch)
        #expect(await run.wait() == 0, "\(run.stderr)")
        #expect(try String(contentsOfFile: scratch.path("out"), encoding: .utf8) == "from-env kept two words tok-from-file-123\n")
        let override = try TestProcess.faultline(["run", "exp.yaml", "--var-file", "vars.yaml", "--var", "word=from-flag"], in: scratch)
        #expect(await override.wait() == 0)
        #expect(try String(contentsOfFile: scratch.path("out"), encoding: .utf8).hasPrefix("from-flag kept"))
        #expect(!(try String(contentsOfFile: scratch.path("journal.json"), encoding: .utf8)).contains("tok-from-file-123"))
    }
}
