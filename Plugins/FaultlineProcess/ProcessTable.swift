#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CFaultlineSystem
import Foundation

/// One process as `/proc` showed it at one moment.
public struct SystemProcess: Sendable, Equatable {
    public var pid: pid_t
    /// The parent's pid (Faultline's, for an orphan it adopted).
    public var parent: pid_t
    /// The process group id (a service's is its main process's pid).
    public var processGroup: pid_t
    /// The state letter of `/proc/PID/stat`: R running, S sleeping, T stopped, Z zombie, …
    public var state: Character
    /// `comm`: the kernel's name for the process (at most 15 bytes).
    public var comm: String
    /// argv; empty for kernel threads and zombies.
    public var arguments: [String]
    /// The real uid.
    public var uid: uid_t
    /// Clock ticks after boot when it started: with the pid, names the process uniquely.
    public var startTime: UInt64
    /// The host it runs on (``RemoteHost/display``); nil for this machine.
    public var host: String? = nil
    /// On another host: its executable's path and its user's name, as that host reported them.
    var executableOnHost: String? = nil
    var userOnHost: String? = nil

    /// The command line as `ps` shows it (`[comm]` when argv is empty).
    public var commandLine: String { arguments.isEmpty ? "[\(comm)]" : arguments.joined(separator: " ") }

    /// Ended, but not yet reaped by its parent.
    public var isZombie: Bool { state == "Z" || state == "X" }
    /// Frozen by SIGSTOP (or stopped by a tracer).
    public var isStopped: Bool { state == "T" || state == "t" }
    /// Kernel threads have no argv and belong to kthreadd (pid 2).
    public var isKernelThread: Bool { pid == 2 || parent == 2 }

    /// The executable's path, when it can be read (`/proc/PID/exe`).
    public var executablePath: String? {
        if host != nil { return executableOnHost }
        return try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
    }

    /// Whether `name` is this process's executable name: its `comm`, the last path component of
    /// its executable, or of argv[0].
    public func hasExecutableName(_ name: String) -> Bool {
        if comm == name { return true }
        if let first = arguments.first, (first as NSString).lastPathComponent == name { return true }
        // The kernel keeps 15 bytes of comm; a longer name matches its prefix only through exe.
        if let path = executablePath {
            let base = (path as NSString).lastPathComponent
            return base == name || base == name + " (deleted)"
        }
        return false
    }

    /// The user name of ``uid``, or the number.
    public var user: String { host == nil ? Self.userName(uid) : userOnHost ?? "uid \(uid)" }

    static func userName(_ uid: uid_t) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 1024)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, let result, let name = result.pointee.pw_name else { return "\(uid)" }
        return String(cString: name)
    }

    /// Reads one process; nil when it does not exist (or vanished while being read).
    public static func read(_ pid: pid_t) -> SystemProcess? {
        guard let stat = readText("/proc/\(pid)/stat"), let parsed = parseStat(stat) else { return nil }
        var uid: uid_t = 0
        if let status = readText("/proc/\(pid)/status"),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
            let real = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap({ uid_t($0) })
        {
            uid = real
        } else {
            return nil
        }
        var cmdline = readData("/proc/\(pid)/cmdline") ?? Data()
        // A process caught in the middle of exec shows its new name but no arguments yet (the
        // kernel sets them up a moment later); kernel threads, which never have any, have no exe.
        var attempts = 0
        while cmdline.isEmpty, parsed.state != "Z", attempts < 50,
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) != nil
        {
            sched_yield()
            attempts += 1
            cmdline = readData("/proc/\(pid)/cmdline") ?? Data()
        }
        var arguments = cmdline.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if arguments.last == "" { arguments.removeLast() }
        return SystemProcess(
            pid: pid, parent: parsed.parent, processGroup: parsed.group, state: parsed.state, comm: parsed.comm, arguments: arguments, uid: uid,
            startTime: parsed.startTime)
    }

    /// Every process `/proc` lists (thread-group leaders).
    public static func all() -> [SystemProcess] {
        pids().compactMap(read)
    }

    /// The pids `/proc` lists, ascending.
    public static func pids() -> [pid_t] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { pid_t($0) }.sorted()
    }

    /// The fields of `/proc/PID/stat` Faultline uses; `comm` may hold spaces and parentheses, so
    /// the fields are counted from the last `)`.
    static func parseStat(_ text: String) -> (comm: String, state: Character, parent: pid_t, group: pid_t, startTime: UInt64)? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { return nil }
        let comm = String(text[text.index(after: open)..<close])
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); starttime is field 22.
        guard fields.count > 19, let state = fields[0].first, let parent = pid_t(fields[1]), let group = pid_t(fields[2]),
            let start = UInt64(fields[19])
        else { return nil }
        return (comm, state, parent, group, start)
    }

    /// The value of one variable in a process's initial environment, if readable.
    static func environmentValue(_ pid: pid_t, _ name: String) -> String? {
        guard let data = readData("/proc/\(pid)/environ") else { return nil }
        let prefix = Array((name + "=").utf8)
        for entry in data.split(separator: 0) where entry.starts(with: prefix) {
            return String(decoding: entry.dropFirst(prefix.count), as: UTF8.self)
        }
        return nil
    }

    /// faultline itself, its parent and every ancestor up to pid 1: never signalled.
    static func ownLineage() -> Set<pid_t> {
        var lineage: Set<pid_t> = [getpid(), getppid()]
        var current = getppid()
        while current > 1, lineage.count < 256, let process = read(current) {
            lineage.insert(current)
            current = process.parent
        }
        return lineage
    }
}

/// Which processes hold a listening TCP socket, from `/proc/net/tcp{,6}` and `/proc/PID/fd`.
enum ListeningSockets {
    /// The socket inodes listening on `port` (IPv4 and IPv6).
    static func inodes(port: Int) -> Set<UInt64> {
        var inodes: Set<UInt64> = []
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let data = readData(table) else { continue }
            var found = [UInt64](repeating: 0, count: 256)
            let count = data.withUnsafeBytes { bytes in
                faultline_tcp_listen_inodes(bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count, Int32(port), &found, found.count)
            }
            inodes.formUnion(found.prefix(count))
        }
        return inodes
    }

    /// The processes among `pids` with a descriptor on one of `inodes`, and how many processes'
    /// descriptors could not be read (another user's, without privileges).
    static func holders(of inodes: Set<UInt64>, among pids: [pid_t]) -> (pids: [pid_t], unreadable: Int) {
        guard !inodes.isEmpty else { return ([], 0) }
        var holders: [pid_t] = []
        var unreadable = 0
        for pid in pids {
            let directory = "/proc/\(pid)/fd"
            guard let handle = opendir(directory) else {
                if errno == EACCES { unreadable += 1 }
                continue
            }
            defer { closedir(handle) }
            var buffer = [CChar](repeating: 0, count: 64)
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                guard name.first?.isNumber == true else { continue }
                let count = readlink("\(directory)/\(name)", &buffer, buffer.count - 1)
                guard count > 8 else { continue }
                let target = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                // socket:[12345]
                if target.hasPrefix("socket:["), let inode = UInt64(target.dropFirst(8).dropLast()), inodes.contains(inode) {
                    holders.append(pid)
                    break
                }
            }
        }
        return (holders, unreadable)
    }
}

func readData(_ path: String) -> Data? {
    // /proc files report size 0, so read until EOF rather than trusting stat.
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return data.isEmpty ? nil : data }
        if n == 0 { return data }
        data.append(contentsOf: buffer[0..<n])
    }
}

func readText(_ path: String) -> String? {
    readData(path).map { String(decoding: $0, as: UTF8.self) }
}
