#if canImport(Glibc)
    import Glibc
#endif
import FaultlineNetwork
import FaultlineProcess
import FaultlineTesting
import Foundation

/// Another "host" for tests: a network namespace the test creates (a veth pair with a /30 from
/// 198.18.0.0/15, used inside the pair only) running a real OpenSSH server on its own port, with
/// a generated host key and a generated client key. Everything it starts is ended by pid, and
/// the namespace and the veth pair are deleted, in ``close()``.
public final class TestSSHHost: TestResource, Sendable {
    public let directory: ScratchDirectory
    /// The namespace's name.
    public let namespace: String
    /// The host side of the veth pair.
    public let hostLink: String
    /// The namespace's address, where sshd listens.
    public let address: String
    public let port: Int
    public let sshd: TestProcess
    /// The client's private key and a known_hosts file with the server's key.
    public let identity: String
    public let knownHosts: String

    /// Whether this machine can run the tests: root, `ip`, `sshd` and `ssh`. On CI (which runs as
    /// root) the tests run regardless, so a missing piece fails them rather than skipping.
    public static let isAvailable: Bool =
        isCI
        || (getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") && installed("ip") != nil && installed("ssh") != nil
            && installed("ssh-keygen") != nil)

    public static let skipMessage = "needs root, ip netns, /usr/sbin/sshd (openssh-server) and ssh (openssh-client)"

    public var url: String { "ssh://root@\(address):\(port)" }

    /// The host as an activity's `host:` gives it.
    public func remoteHost(connectTimeout: Double = 10) throws -> RemoteHost {
        try RemoteHost(url: url, identityFile: identity, knownHosts: knownHosts, connectTimeout: connectTimeout)
    }

    /// The `host:` mapping for YAML.
    public var yaml: String {
        "{url: \"\(url)\", identity_file: \"\(identity)\", known_hosts: \"\(knownHosts)\"}"
    }

    private init(
        directory: ScratchDirectory, namespace: String, hostLink: String, address: String, port: Int, sshd: TestProcess, identity: String,
        knownHosts: String
    ) {
        self.directory = directory
        self.namespace = namespace
        self.hostLink = hostLink
        self.address = address
        self.port = port
        self.sshd = sshd
        self.identity = identity
        self.knownHosts = knownHosts
    }

    /// Runs a command to its end and fails the test setup when it fails.
    @discardableResult
    public static func must(_ executable: String, _ arguments: [String]) async throws -> ProgramResult {
        let result = try await run(executable, arguments, timeout: .seconds(60))
        guard result.status == 0 else {
            throw TestFailure("\(executable) \(arguments.joined(separator: " ")) failed (\(result.status)): \(result.output)")
        }
        return result
    }

    /// A fresh namespace with sshd listening in it.
    /// - Parameter clientKey: a private key (with its `.pub` beside it) that logs in, so several
    ///   hosts can share one; by default the host generates its own.
    public static func start(clientKey: String? = nil) async throws -> TestSSHHost {
        let directory = try ScratchDirectory(prefix: "faultline-ssh")
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let namespace = "flssh\(suffix)"
        let hostLink = "fla\(suffix)"
        let peerLink = "flb\(suffix)"
        // A random /30 of 198.18.0.0/15 (block 0 left out): .1 on this side, .2 in the namespace.
        let block = UInt32.random(in: 1..<32768) * 4
        let base = (UInt32(198) << 24) | (UInt32(18) << 16) + block
        func dotted(_ value: UInt32) -> String { "\(value >> 24).\((value >> 16) & 255).\((value >> 8) & 255).\(value & 255)" }
        let hostAddress = dotted(base + 1)
        let address = dotted(base + 2)
        try await must("ip", ["netns", "add", namespace])
        do {
            try await must("ip", ["link", "add", hostLink, "type", "veth", "peer", "name", peerLink])
            try await must("ip", ["link", "set", peerLink, "netns", namespace])
            try await must("ip", ["addr", "add", "\(hostAddress)/30", "dev", hostLink])
            try await must("ip", ["link", "set", hostLink, "up"])
            try await must("ip", ["netns", "exec", namespace, "ip", "addr", "add", "\(address)/30", "dev", peerLink])
            try await must("ip", ["netns", "exec", namespace, "ip", "link", "set", peerLink, "up"])
            try await must("ip", ["netns", "exec", namespace, "ip", "link", "set", "lo", "up"])

            let hostKey = directory.path("host_key")
            let identity = clientKey ?? directory.path("client_key")
            try await must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey])
            if clientKey == nil { try await must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", identity]) }
            try FileManager.default.copyItem(atPath: identity + ".pub", toPath: directory.path("authorized_keys"))
            // sshd refuses to start without its privilege separation directory.
            try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            let port = try FreePort.take()
            let publicKey = try String(contentsOfFile: hostKey + ".pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
            let knownHosts = try directory.write("known_hosts", "[\(address)]:\(port) \(publicKey)\n")
            let config = try directory.write(
                "sshd_config",
                """
                Port \(port)
                ListenAddress \(address)
                HostKey \(hostKey)
                PidFile \(directory.path("sshd.pid"))
                AuthorizedKeysFile \(directory.path("authorized_keys"))
                StrictModes no
                UsePAM no
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PubkeyAuthentication yes
                PermitRootLogin prohibit-password
                MaxSessions 100
                MaxStartups 100
                LogLevel INFO

                """)
            let sshd = try TestProcess("ip", ["netns", "exec", namespace, "/usr/sbin/sshd", "-D", "-e", "-f", config], in: directory)
            let host = TestSSHHost(
                directory: directory, namespace: namespace, hostLink: hostLink, address: address, port: port, sshd: sshd, identity: identity,
                knownHosts: knownHosts)
            do {
                _ = try await sshd.line(startingWith: "Server listening on \(address) port \(port)")
            } catch {
                await host.close()
                throw error
            }
            return host
        } catch {
            _ = try? await run("ip", ["link", "del", hostLink])
            _ = try? await run("ip", ["netns", "del", namespace])
            throw error
        }
    }

    /// Starts a program inside the namespace (as if on the other host), in its own process group.
    public func spawn(_ argv: [String], output: ChildProcess.Output = .discard) throws -> ChildProcess {
        try ChildProcess(
            executable: try ChildProcess.resolveExecutable("ip"), arguments: ["netns", "exec", namespace] + argv,
            environment: ProcessInfo.processInfo.environment, stdout: output, stderr: output)
    }

    /// Starts a program inside the namespace (as if on the other host) as a ``TestProcess``: its
    /// output in `directory`, ended by its pid (`ip netns exec` becomes the program).
    public func start(_ executable: String, _ arguments: [String], in directory: ScratchDirectory, environment: [String: String] = [:]) throws
        -> TestProcess
    {
        try TestProcess(
            "ip", ["netns", "exec", namespace, try ChildProcess.resolveExecutable(executable)] + arguments, in: directory, environment: environment)
    }

    /// sshd and every process it started (sessions, and what they run), by pid.
    public func sshdProcesses() -> [SystemProcess] {
        let all = SystemProcess.all()
        var family: Set<pid_t> = [sshd.pid]
        var grew = true
        while grew {
            grew = false
            for process in all where !family.contains(process.pid) && family.contains(process.parent) {
                family.insert(process.pid)
                grew = true
            }
        }
        return all.filter { family.contains($0.pid) && !$0.isZombie }
    }

    /// Every live process in the namespace (by its network namespace's inode): what runs "on the
    /// other host", however it got there, sshd included.
    public func processesInside() -> [SystemProcess] {
        var namespaceInfo = stat()
        guard stat("/run/netns/\(namespace)", &namespaceInfo) == 0 else { return [] }
        return SystemProcess.all().filter { process in
            var info = stat()
            return !process.isZombie && stat("/proc/\(process.pid)/ns/net", &info) == 0 && info.st_ino == namespaceInfo.st_ino
                && info.st_dev == namespaceInfo.st_dev
        }
    }

    public func close() async {
        // Sessions outlive a stopped listener: kill them first, by pid.
        for process in sshdProcesses() where process.pid != sshd.pid { kill(process.pid, SIGKILL) }
        await sshd.stop(grace: 2)
        _ = try? await run("ip", ["link", "del", hostLink])
        _ = try? await run("ip", ["netns", "del", namespace])
    }
}
