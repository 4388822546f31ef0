import FaultlineKit
import FaultlineProcess
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// A secret reaches a child process through its environment, never its command line (readable by
/// every user in /proc/<pid>/cmdline); and nothing faultline prints or writes holds one.
@Suite("Secrets and child processes")
struct SecretTests {
    static let secrets = """
        secrets:
          vault:
            token: {type: env, key: FAULTLINE_TEST_TOKEN}
        """

    @Test("a secret passed in env reaches the child, is in no process's command line, and in nothing faultline writes")
    func throughEnvironment() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-secret")
        let token = "tok-\(UUID().uuidString)"
        // While it runs, the child looks for the token in every process's command line, reading
        // the pattern from stdin so that grep's own command line does not hold it ($$$$ is sh's $$).
        try directory.write(
            "experiment.yaml",
            """
            title: secret through env
            \(Self.secrets)
            method:
              - type: action
                name: use the token
                provider:
                  type: process
                  path: sh
                  arguments: [-c, 'printf %s "$TOKEN" > received; printf %s "$TOKEN" | grep -l -a -F -f - /proc/[0-9]*/cmdline; printf "cmdline: %s\\n" "$(tr "\\0" " " < /proc/$$$$/cmdline)"; true']
                  env: {TOKEN: "${token}"}
            """)
        let faultline = try TestProcess.faultline(
            ["run", "experiment.yaml", "--journal-path", "journal.json"], in: directory, environment: ["FAULTLINE_TEST_TOKEN": token])
        let status = await faultline.wait()
        #expect(status == 0, "\(faultline.stdout)\n\(faultline.stderr)")
        #expect(try String(contentsOfFile: directory.path("received"), encoding: .utf8) == token)

        let journal = try String(contentsOfFile: directory.path("journal.json"), encoding: .utf8)
        let output = try #require(try Journal.load(path: directory.path("journal.json")).run.first?.output?["stdout"]?.stringValue)
        // No /proc/<pid>/cmdline matched: the only line is the child's own command line.
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.count == 1 && lines[0].hasPrefix("cmdline: /") && lines[0].hasSuffix("sh -c \(Self.script) "), "\(output)")
        for (name, text) in [("journal", journal), ("stdout", faultline.stdout), ("stderr", faultline.stderr)] {
            #expect(!text.contains(token), "the token is in faultline's \(name)")
        }
    }

    static let script =
        #"printf %s "$TOKEN" > received; printf %s "$TOKEN" | grep -l -a -F -f - /proc/[0-9]*/cmdline; printf "cmdline: %s\n" "$(tr "\0" " " < /proc/$$/cmdline)"; true"#

    @Test("a secret in a process's path or arguments is a load error at its position, and no message shows it", arguments: ["validate", "run"])
    func refusedInCommandLine(_ command: String) async throws {
        let directory = try ScratchDirectory(prefix: "faultline-secret")
        let token = "tok-\(UUID().uuidString)"
        try directory.write(
            "experiment.yaml",
            """
            title: secret in argv
            \(Self.secrets)
            configuration:
              header: "Bearer ${token}"
            method:
              - type: action
                name: path
                provider: {type: process, path: "/opt/${token}/bin/tool"}
              - type: action
                name: argument
                provider: {type: process, path: sh, arguments: [-c, 'echo "$1"', sh, "${header}"]}
              - type: action
                name: shell
                provider: {type: process, path: sh, arguments: "echo ${token} | wc -c", shell: true}
            """)
        var arguments = [command, "experiment.yaml"]
        if command == "run" { arguments += ["--journal-path", "journal.json"] }
        let faultline = try TestProcess.faultline(arguments, in: directory, environment: ["FAULTLINE_TEST_TOKEN": token])
        let status = await faultline.wait()
        #expect(status == 2, "\(faultline.stdout)\n\(faultline.stderr)")
        let text = faultline.stdout + faultline.stderr
        #expect(!text.contains(token), "\(text)")
        for position in ["10:37: a secret would be in path", "13:74: a secret would be in arguments", "16:52: a secret would be in arguments"] {
            #expect(text.contains("experiment.yaml:\(position), which every user of this machine can read"), "\(text)")
        }
        // The path's other error names it masked.
        #expect(text.contains("cannot run /opt/***/bin/tool: no such file"), "\(text)")
        #expect(!directory.exists("journal.json"))
    }

    @Test("a secret in a service's command is a load error at its position")
    func refusedInServiceCommand() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-secret")
        let token = "tok-\(UUID().uuidString)"
        try directory.write(
            "suite.yaml",
            """
            name: services
            \(Self.secrets)
            services:
              - name: api
                command: [python3, -m, http.server, --token, "${token}"]
            experiments:
              - title: nothing
                method: []
            """)
        let faultline = try TestProcess.faultline(["validate", "suite.yaml"], in: directory, environment: ["FAULTLINE_TEST_TOKEN": token])
        #expect(await faultline.wait() == 2, "\(faultline.stdout)\n\(faultline.stderr)")
        let text = faultline.stdout + faultline.stderr
        #expect(!text.contains(token), "\(text)")
        #expect(text.contains("suite.yaml:7:50: a secret would be in command"), "\(text)")
    }
}
