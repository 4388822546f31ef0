#if canImport(Glibc)
    import Glibc
#endif
import FaultlineNetwork
import FaultlineProcess
import FaultlineTesting
import Foundation

/// Another "host" for tests, running a real OpenSSH server on its own port with a generated host
/// key and a generated client key, in one of two modes (``Mode``):
/// - **namespace**: a network namespace the test creates (a veth pair with a /30 from
///   198.18.0.0/15, used inside the pair only), sshd listening on the namespace's address, as root;
/// - **loopback**, where namespaces cannot be made (not root, no `ip`, or `ip netns add` fails),
///   or when `FAULTLINE_TEST_SSH=loopback` forces it: sshd runs as the current user on 127.0.0.1.
/// Everything it starts is ended by pid, and the namespace and the veth pair are deleted, in
/// ``close()``.
public final class TestSSHHost: TestResource, Sendable {
    /// Where the "other host" lives.
    public enum Mode: String, Sendable {
        /// A network namespace with its own address (root, `ip netns`).
        case namespace
        /// This machine's loopback, sshd as the current user.
        case loopback
    }

    public let directory: ScratchDirectory
    public let mode: Mode
    /// The namespace's name (empty in loopback mode).
    public let namespace: String
    /// The host side of the veth pair (empty in loopback mode).
    public let hostLink: String
    /// The host's address, where sshd listens: the namespace's, or 127.0.0.1.
    public let address: String
    public let port: Int
    /// The user the tests log in as: root in a namespace, the current user on loopback.
    public let user: String
    public let sshd: TestProcess
    /// The client's private key and a known_hosts file with the server's key.
    public let identity: String
    public let knownHosts: String
    /// In loopback mode, set in the environment of sshd's sessions (sshd_config `SetEnv`) and what
    /// ``start(_:_:in:environment:)`` and ``spawn(_:output:)`` run: how ``processesInside()``
    /// tells this host's processes from the rest of the machine's.
    private let marker: String

    /// The mode the tests run in here, or nil when they cannot run (skipped with ``skipMessage``):
    /// `FAULTLINE_TEST_SSH=namespace` or `=loopback` forces one; otherwise namespaces when this
    /// machine can make them, loopback when it cannot but has `/usr/sbin/sshd`, `ssh` and
    /// `ssh-keygen`. On CI (which runs as root) the default is namespaces regardless, so a missing
    /// piece fails the tests rather than skipping them or quietly running them on loopback.
    public static let currentMode: Mode? = {
        let hasSSH =
            FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") && installed("ssh") != nil && installed("ssh-keygen") != nil
        switch ProcessInfo.processInfo.environment["FAULTLINE_TEST_SSH"] {
        case "namespace": return .namespace
        case "loopback": return hasSSH || isCI ? .loopback : nil
        default:
            if isCI { return .namespace }
            guard hasSSH else { return nil }
            return canMakeNamespaces() ? .namespace : .loopback
        }
    }()

    /// Whether this machine can run the tests in either mode.
    public static var isAvailable: Bool { currentMode != nil }

    public static let skipMessage = "needs /usr/sbin/sshd (openssh-server), ssh and ssh-keygen (openssh-client)"

    /// Whether the tests run with namespaces: for the tests that need a host with its own address
    /// and network (a link taken down), skipped with ``namespaceSkipMessage`` on loopback.
    public static var hasNamespaces: Bool { currentMode == .namespace }

    public static let namespaceSkipMessage =
        "needs a network namespace of its own (root and ip netns; FAULTLINE_TEST_SSH=namespace), and the ssh tests run on loopback here"

    /// Root, `ip`, and an `ip netns add` (and its `del`) that succeeds.
    static func canMakeNamespaces() -> Bool {
        guard getuid() == 0, let ip = installed("ip") else { return false }
        let name = "flprobe\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
        guard runQuietly(ip, ["netns", "add", name]) == 0 else { return false }
        return runQuietly(ip, ["netns", "del", name]) == 0
    }

    /// Runs a program to its end, its output discarded, and returns its exit status (-1 if it
    /// could not start or did not exit). Blocking: for ``currentMode``'s one-time probe only.
    static func runQuietly(_ executable: String, _ arguments: [String]) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for descriptor: Int32 in [0, 1, 2] {
            posix_spawn_file_actions_addopen(&actions, descriptor, "/dev/null", descriptor == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, executable, &actions, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        var waited: pid_t
        repeat { waited = waitpid(pid, &status, 0) } while waited == -1 && errno == EINTR
        guard waited == pid, status & 0x7f == 0 else { return -1 }
        return (status >> 8) & 0xff
    }

    public var url: String { "ssh://\(user)@\(address):\(port)" }

    /// The host as an activity's `host:` gives it.
    public func remoteHost(connectTimeout: Double = 10) throws -> RemoteHost {
        try RemoteHost(url: url, identityFile: identity, knownHosts: knownHosts, connectTimeout: connectTimeout)
    }

    /// The `host:` mapping for YAML.
    public var yaml: String {
        "{url: \"\(url)\", identity_file: \"\(identity)\", known_hosts: \"\(knownHosts)\"}"
    }

    private init(
        directory: ScratchDirectory, mode: Mode, namespace: String, hostLink: String, address: String, port: Int, user: String, sshd: TestProcess,
        identity: String, knownHosts: String, marker: String
    ) {
        self.directory = directory
        self.mode = mode
        self.namespace = namespace
        self.hostLink = hostLink
        self.address = address
        self.port = port
        self.user = user
        self.sshd = sshd
        self.identity = identity
        self.knownHosts = knownHosts
        self.marker = marker
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

    /// The current user's login name, which a loopback sshd lets in.
    static var currentUser: String {
        if let entry = getpwuid(getuid()), let name = entry.pointee.pw_name { return String(cString: name) }
        return ProcessInfo.processInfo.environment["USER"] ?? "root"
    }

    /// A fresh host with sshd listening on it, in ``currentMode``.
    /// - Parameter clientKey: a private key (with its `.pub` beside it) that logs in, so several
    ///   hosts can share one; by default the host generates its own.
    public static func start(clientKey: String? = nil) async throws -> TestSSHHost {
        guard let mode = currentMode else { throw TestFailure("no ssh test host here: \(skipMessage)") }
        let directory = try ScratchDirectory(prefix: "faultline-ssh")
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let namespace = mode == .namespace ? "flssh\(suffix)" : ""
        let hostLink = mode == .namespace ? "fla\(suffix)" : ""
        let peerLink = "flb\(suffix)"
        let address: String
        if mode == .namespace {
            // A random /30 of 198.18.0.0/15 (block 0 left out): .1 on this side, .2 in the namespace.
            let block = UInt32.random(in: 1..<32768) * 4
            let base = (UInt32(198) << 24) | (UInt32(18) << 16) + block
            func dotted(_ value: UInt32) -> String { "\(value >> 24).\((value >> 16) & 255).\((value >> 8) & 255).\(value & 255)" }
            let hostAddress = dotted(base + 1)
            address = dotted(base + 2)
            try await must("ip", ["netns", "add", namespace])
            do {
                try await must("ip", ["link", "add", hostLink, "type", "veth", "peer", "name", peerLink])
                try await must("ip", ["link", "set", peerLink, "netns", namespace])
                try await must("ip", ["addr", "add", "\(hostAddress)/30", "dev", hostLink])
                try await must("ip", ["link", "set", hostLink, "up"])
                try await must("ip", ["netns", "exec", namespace, "ip", "addr", "add", "\(address)/30", "dev", peerLink])
                try await must("ip", ["netns", "exec", namespace, "ip", "link", "set", peerLink, "up"])
                try await must("ip", ["netns", "exec", namespace, "ip", "link", "set", "lo", "up"])
            } catch {
                _ = try? await run("ip", ["link", "del", hostLink])
                _ = try? await run("ip", ["netns", "del", namespace])
                throw error
            }
        } else {
            address = "127.0.0.1"
        }
        do {
            let user = mode == .namespace ? "root" : currentUser
            let marker = "\(ProcessInfo.processInfo.processIdentifier)-\(suffix)"
            let hostKey = directory.path("host_key")
            let identity = clientKey ?? directory.path("client_key")
            try await must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey])
            if clientKey == nil { try await must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", identity]) }
            try FileManager.default.copyItem(atPath: identity + ".pub", toPath: directory.path("authorized_keys"))
            if getuid() == 0 {
                // sshd as root refuses to start without its privilege separation directory (as
                // another user it does not chroot into it, and needs none).
                try? FileManager.default.createDirectory(
                    atPath: "/run/sshd", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            }
            let port = try FreePort.take()
            let publicKey = try String(contentsOfFile: hostKey + ".pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
            let knownHosts = try directory.write("known_hosts", "[\(address)]:\(port) \(publicKey)\n")
            // StrictModes no: the keys live in a scratch directory under /tmp (world-writable),
            // which StrictModes refuses. UsePAM no: PAM needs root. In loopback mode SetEnv marks
            // every session, so the test finds what runs "on that host".
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
                \(mode == .loopback ? "SetEnv \(markerVariable)=\(marker)" : "")

                """)
            let sshd =
                mode == .namespace
                ? try TestProcess("ip", ["netns", "exec", namespace, "/usr/sbin/sshd", "-D", "-e", "-f", config], in: directory)
                : try TestProcess("/usr/sbin/sshd", ["-D", "-e", "-f", config], in: directory)
            let host = TestSSHHost(
                directory: directory, mode: mode, namespace: namespace, hostLink: hostLink, address: address, port: port, user: user, sshd: sshd,
                identity: identity, knownHosts: knownHosts, marker: marker)
            do {
                _ = try await sshd.line(startingWith: "Server listening on \(address) port \(port)")
            } catch {
                await host.close()
                throw error
            }
            return host
        } catch {
            if mode == .namespace {
                _ = try? await run("ip", ["link", "del", hostLink])
                _ = try? await run("ip", ["netns", "del", namespace])
            }
            throw error
        }
    }

    /// The environment variable that marks a loopback host's processes.
    static let markerVariable = "FAULTLINE_TEST_SSH_HOST"

    /// How a program runs "on that host": inside the namespace (`ip netns exec`, which becomes the
    /// program), or as it is in loopback mode, marked with the host's environment variable.
    public func command(_ argv: [String]) -> [String] {
        switch mode {
        case .namespace: ["ip", "netns", "exec", namespace] + argv
        case .loopback: ["env", markerEntry] + argv
        }
    }

    /// Starts a program on that host (as ``command(_:)`` says), in its own process group.
    public func spawn(_ argv: [String], output: ChildProcess.Output = .discard) throws -> ChildProcess {
        let argv = command(argv)
        return try ChildProcess(
            executable: try ChildProcess.resolveExecutable(argv[0]), arguments: Array(argv.dropFirst()),
            environment: ProcessInfo.processInfo.environment, stdout: output, stderr: output)
    }

    /// Starts a program on that host (as ``command(_:)`` says) as a ``TestProcess``: its output in
    /// `directory`, ended by its pid (`ip netns exec` and `env` become the program).
    public func start(_ executable: String, _ arguments: [String], in directory: ScratchDirectory, environment: [String: String] = [:]) throws
        -> TestProcess
    {
        let argv = command([try ChildProcess.resolveExecutable(executable)] + arguments)
        return try TestProcess(argv[0], Array(argv.dropFirst()), in: directory, environment: environment)
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

    /// Every live process on that host: in namespace mode, in the namespace (by its network
    /// namespace's inode), however it got there; in loopback mode, sshd's family and whatever
    /// carries the host's marker in its environment (what its sessions start, even once they left
    /// the session, and what ``spawn(_:output:)`` and ``start(_:_:in:environment:)`` ran). sshd
    /// included.
    public func processesInside() -> [SystemProcess] {
        if mode == .loopback {
            // sshd writes its process titles over its environment, so its own processes are
            // found as its family; what its sessions run keeps the marker.
            let family = Set(sshdProcesses().map(\.pid))
            return SystemProcess.all().filter { process in
                !process.isZombie && (family.contains(process.pid) || Self.environment(of: process.pid).contains(markerEntry))
            }
        }
        var namespaceInfo = stat()
        guard stat("/run/netns/\(namespace)", &namespaceInfo) == 0 else { return [] }
        return SystemProcess.all().filter { process in
            var info = stat()
            return !process.isZombie && stat("/proc/\(process.pid)/ns/net", &info) == 0 && info.st_ino == namespaceInfo.st_ino
                && info.st_dev == namespaceInfo.st_dev
        }
    }

    private var markerEntry: String { "\(Self.markerVariable)=\(marker)" }

    /// A process's initial environment, `NAME=value` each (empty if unreadable).
    static func environment(of pid: pid_t) -> [String] {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return [] }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    public func close() async {
        // Sessions outlive a stopped listener: kill them first, by pid.
        for process in sshdProcesses() where process.pid != sshd.pid { kill(process.pid, SIGKILL) }
        await sshd.stop(grace: 2)
        if mode == .namespace {
            _ = try? await run("ip", ["link", "del", hostLink])
            _ = try? await run("ip", ["netns", "del", namespace])
        }
    }
}
