#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CFaultlineSystem
import FaultlineKit
import Foundation

/// The ssh connections of one run: one multiplexed master per host (OpenSSH's `ControlMaster`,
/// with its socket in a directory only this run uses), opened on first use and closed with
/// `ssh -O exit` when the run ends, so that each remote activity costs a round trip, not a
/// handshake.
///
/// Every ssh process carries the run's local ``ServiceMarker`` (`localMarker`), so that the
/// guardian, or `faultline recover`, ends them if Faultline is killed.
public actor RemoteShells {
    /// The marker prefix of the ssh clients and masters on this machine.
    nonisolated let localMarker: String
    private var directory: String?
    private var masters: [RemoteHost: String] = [:]
    private var opening: [RemoteHost: Task<String, any Error>] = [:]
    private var counter = 0

    /// - Parameter localMarker: a ``ServiceMarker`` prefix the run's sweeps select.
    init(localMarker: String) {
        self.localMarker = localMarker
    }

    /// The ssh client: `ssh` on PATH, else /usr/bin/ssh.
    static var executable: String {
        (try? ChildProcess.resolveExecutable("ssh")) ?? "/usr/bin/ssh"
    }

    /// The environment of an ssh process: Faultline's, with the local marker.
    private var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment[ServiceMarker.variable] = localMarker + "ssh"
        return environment
    }

    /// The control socket for `host`, after opening its master connection if there is none yet
    /// (concurrent first uses share one attempt).
    /// - Throws: ``SSHError`` when the host cannot be reached or refuses us.
    func connect(_ host: RemoteHost) async throws -> String {
        if let path = masters[host] { return path }
        if let attempt = opening[host] { return try await attempt.value }
        if directory == nil {
            Self.removeAbandonedDirectories()
            // Short, under /tmp: a control socket's path must fit in sun_path (108 bytes).
            var template = Array("/tmp/faultline-ssh-\(getpid())-XXXXXX".utf8CString)
            guard mkdtemp(&template) != nil else {
                throw SSHError(host: host.display, kind: .failed, detail: String(cString: strerror(errno)), hint: "/tmp must be writable")
            }
            directory = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        counter += 1
        let path = "\(directory!)/c\(counter)"
        // -f: ssh goes to the background once authenticated, so its exit says whether it worked.
        let arguments =
            host.sshOptions + [
                "-o", "ControlMaster=yes", "-o", "ControlPersist=yes", "-o", "ControlPath=\(RemoteHost.configValue(path))", "-f", "-N", "--",
                host.hostname,
            ]
        let environment = environment
        let attempt = Task {
            let result = try await Self.runSSH(arguments, host: host, environment: environment, timeout: host.connectTimeout + 10)
            guard result.status == 0 else { throw SSHError.classify(result.stderr, host: host) }
            return path
        }
        opening[host] = attempt
        defer { opening[host] = nil }
        let opened = try await attempt.value
        masters[host] = opened
        return opened
    }

    /// Removes the control directories of Faultline processes that are gone (a run killed outright
    /// cannot remove its own, and a master killed with it leaves its socket file): only the
    /// `c<N>` sockets Faultline names, then the directory if nothing else is in it.
    static func removeAbandonedDirectories() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") else { return }
        // Only names this code makes, `faultline-ssh-PID-XXXXXX` (mkdtemp's six characters): another
        // program's `faultline-ssh-…` (a test's `faultline-ssh-<UUID>`) is not ours to remove.
        for name in names where name.range(of: #"^faultline-ssh-[0-9]+-[A-Za-z0-9]{6}$"#, options: .regularExpression) != nil {
            guard let pid = pid_t(name.dropFirst("faultline-ssh-".count).prefix { $0 != "-" }), pid > 0, pid != getpid(),
                kill(pid, 0) != 0 && errno == ESRCH
            else { continue }
            let directory = "/tmp/\(name)"
            for socket in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            where socket.hasPrefix("c") && Int(socket.dropFirst()) != nil {
                unlink("\(directory)/\(socket)")
            }
            rmdir(directory)
        }
    }

    /// Runs the remote script's `command` with `arguments` on `host`, through its master.
    /// - Returns: the script's exit status and output.
    /// - Throws: ``SSHError`` when ssh itself fails.
    func script(_ host: RemoteHost, _ command: String, _ arguments: [String], timeout: Double) async throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let path = try await connect(host)
        let result = try await Self.runSSH(
            host.sshOptions + ["-o", "ControlMaster=no", "-o", "ControlPath=\(RemoteHost.configValue(path))", "--", host.hostname]
                + [RemoteScript.command(command, arguments)],
            host: host, environment: environment, timeout: timeout)
        if result.status == 255 { throw SSHError.classify(result.stderr, host: host) }
        return result
    }

    /// Starts the remote script's `command` on `host` as a local ssh child (a program or a
    /// service), with `standardInput` as its stdin: the remote side ends what it started when
    /// that input closes.
    func spawn(
        _ host: RemoteHost, _ command: String, _ arguments: [String], standardInput: Int32, stdout: ChildProcess.Output,
        stderr: ChildProcess.Output
    ) async throws -> ChildProcess {
        let path = try await connect(host)
        return try ChildProcess(
            executable: Self.executable,
            arguments: host.sshOptions + ["-o", "ControlMaster=no", "-o", "ControlPath=\(RemoteHost.configValue(path))", "--", host.hostname]
                + [RemoteScript.command(command, arguments)],
            environment: environment, stdout: stdout, stderr: stderr, standardInput: standardInput)
    }

    /// Closes every master connection (`ssh -O exit`) and removes the control directory.
    /// Idempotent; a later use connects again.
    func closeAll() async {
        for (host, path) in masters {
            _ = try? await Self.runSSH(
                host.sshOptions + ["-o", "ControlPath=\(RemoteHost.configValue(path))", "-O", "exit", "--", host.hostname], host: host,
                environment: environment, timeout: 10)
        }
        masters.removeAll()
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
        directory = nil
    }

    /// Runs one ssh command to its end, killed after `timeout` seconds.
    static func runSSH(_ arguments: [String], host: RemoteHost, environment: [String: String], timeout: Double) async throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let child: ChildProcess
        do {
            child = try ChildProcess(executable: executable, arguments: arguments, environment: environment)
        } catch {
            throw SSHError(host: host.display, kind: .failed, detail: "\(error)", hint: "install the OpenSSH client (openssh-client)")
        }
        let termination = await withTaskCancellationHandler {
            await child.wait(timeout: timeout)
        } onCancel: {
            child.signal(SIGKILL)
        }
        guard let termination else {
            _ = await child.terminate(signal: SIGKILL, grace: 0)
            _ = await child.collectedOutput()
            if Task.isCancelled { throw CancellationError() }
            throw SSHError(
                host: host.display, kind: .timeout, detail: "no answer in \(ManagedService.format(timeout)) s",
                hint: "check that the host is up and not overloaded")
        }
        let (stdout, stderr) = await child.collectedOutput()
        return (termination.status, stdout, stderr)
    }
}

/// The POSIX sh program Faultline runs on remote hosts (`sh -c SCRIPT faultline-remote COMMAND
/// ARGS…`). Every value travels as a single-quoted argument, never as program text, so names and
/// arguments cannot inject commands. It needs Linux's `/proc` and, as on any Debian or Alpine
/// host, `od`, `awk`, `grep`, `sed`, `ls` and a `sleep` that takes fractions.
enum RemoteScript {
    /// The whole command line ssh hands the remote login shell.
    static func command(_ command: String, _ arguments: [String]) -> String {
        (["sh", "-c", quote(script), "faultline-remote", quote(command)] + arguments.map(quote)).joined(separator: " ")
    }

    /// `text` in single quotes, for a POSIX shell (and bash, zsh, ksh).
    static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    static let script = #"""
        info() {
          s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
          [ -n "$s" ] || return 1
          s=${s##*") "}
          set -- $s
          state=$1; ppid=$2; shift 19; start=$1
        }
        alive() { info "$1" && [ "$start" = "$2" ] && [ "$state" != Z ] && [ "$state" != X ]; }
        waitgone() {
          waited=0
          while alive "$1" "$2"; do
            [ "$waited" -lt "$3" ] || return 1
            sleep 0.1; waited=$((waited + 1))
          done
          return 0
        }
        hex() { od -An -v -tx1 | tr -d ' \n'; }
        marked() { grep -lsz "^FAULTLINE_SERVICE=$1" /proc/[0-9]*/environ | sed -e 's|^/proc/||' -e 's|/environ$||'; }
        sweep() {
          pids=$(marked "$1")
          [ -n "$pids" ] || return 0
          for p in $pids; do printf 'K %s\n' "$p"; done
          kill -s TERM $pids 2>/dev/null
          n=0
          while [ "$n" -lt "$2" ] && [ -n "$(marked "$1")" ]; do sleep 0.1; n=$((n + 1)); done
          pids=$(marked "$1")
          [ -z "$pids" ] || kill -s KILL $pids 2>/dev/null
          return 0
        }
        emit() {
          uid=
          { while IFS= read -r line; do case $line in Uid:*) set -- $line; uid=$2; break;; esac; done < "/proc/$p/status"; } 2>/dev/null
          [ -n "$uid" ] || return 0
          printf 'P %s %s\nS\n' "$p" "$uid"
          od -An -v -tx1 "/proc/$p/stat" 2>/dev/null
          echo C
          od -An -v -tx1 "/proc/$p/cmdline" 2>/dev/null
          if [ -n "$name" ]; then echo X; readlink "/proc/$p/exe" 2>/dev/null | od -An -v -tx1; fi
        }
        command=$1; shift
        case $command in
        select)
          pid=$1 pidfile=$2 name=$3 port=$4
          lineage=$$ p=$$
          while [ "$p" -gt 1 ] && info "$p"; do p=$ppid; lineage="$lineage $p"; done
          printf 'I %s %s %s\n' "$(id -u)" "$(id -un | hex)" "$lineage"
          if [ -n "$pidfile" ]; then
            if [ ! -e "$pidfile" ]; then echo "E pidfile $pidfile does not exist"; exit 0; fi
            first=$(sed -n '1p' "$pidfile" 2>/dev/null) || { echo "E cannot read pidfile $pidfile"; exit 0; }
            first=$(printf '%s' "$first" | tr -d ' \t\r')
            case $first in ''|*[!0-9]*) printf 'E pidfile %s does not hold a pid (found "%.40s")\n' "$pidfile" "$first"; exit 0;; esac
            [ -z "$pid" ] || [ "$pid" = "$first" ] || exit 0
            candidates=$first
          elif [ -n "$pid" ]; then
            candidates=$pid
          else
            candidates=$(cd /proc && ls -d [0-9]* 2>/dev/null)
          fi
          if [ -n "$name" ]; then
            short=$(printf '%.15s' "$name")
            inline=" $(grep -lsaF -- "$name" /proc/[0-9]*/cmdline 2>/dev/null | sed -e 's|^/proc/||' -e 's|/cmdline$||' | tr '\n' ' ') "
            kept=
            for p in $candidates; do
              c=; { read -r c < "/proc/$p/comm"; } 2>/dev/null
              case $inline in *" $p "*) kept="$kept $p"; continue;; esac
              [ "$c" != "$short" ] || kept="$kept $p"
            done
            candidates=$kept
          fi
          if [ -n "$port" ]; then
            hexport=$(printf '%04X' "$port")
            inodes=$(awk -v p="$hexport" '$4 == "0A" { n = split($2, a, ":"); if (a[n] == p) print $10 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | tr '\n' ' ')
            if [ -z "$inodes" ]; then echo "N nothing listens on TCP port $port (/proc/net/tcp, /proc/net/tcp6)"; exit 0; fi
            holders=" $(ls -l /proc/[0-9]*/fd 2>/dev/null | awk -v inodes=" $inodes" '
              /^\/proc\/[0-9]+\/fd:$/ { split($0, a, "/"); pid = a[3]; next }
              /socket:\[/ { i = $NF; gsub(/[^0-9]/, "", i); if (index(inodes, " " i " ")) print pid }' | sort -u | tr '\n' ' ') "
            kept=
            for p in $candidates; do case $holders in *" $p "*) kept="$kept $p";; esac; done
            candidates=$kept
          fi
          for p in $candidates; do emit; done
          ;;
        kill)
          alive "$1" "$2" || { echo "R gone 0"; exit 0; }
          err=$(kill -s "$3" "$1" 2>&1) || { printf 'R failed 0 %s\n' "$err"; exit 0; }
          [ "$6" != 1 ] || kill -s CONT "$1" 2>/dev/null
          if waitgone "$1" "$2" "$4"; then echo "R ended $waited"; exit 0; fi
          if [ "$3" = KILL ]; then echo "R survived $waited"; exit 0; fi
          kill -s KILL "$1" 2>/dev/null
          first=$waited
          if waitgone "$1" "$2" "$5"; then echo "R killed $((first + waited))"; else echo "R survived $((first + waited))"; fi
          ;;
        signal)
          alive "$1" "$2" || { echo "R exited"; exit 0; }
          err=$(kill -s "$3" "$1" 2>&1) || { printf 'R failed %s\n' "$err"; exit 0; }
          case $3 in STOP|TSTP|TTIN|TTOU) want=T;; CONT) want=R;; *) want=;; esac
          n=0
          while [ -n "$want" ] && [ "$n" -lt "$4" ] && alive "$1" "$2"; do
            case $want:$state in T:[Tt]|R:[!Tt]) break;; esac
            sleep 0.05; n=$((n + 1))
          done
          if ! alive "$1" "$2"; then echo "R exited"; else case $state in [Tt]) echo "R stopped";; *) echo "R running";; esac; fi
          ;;
        stop)
          outcome=gone waited=0
          if alive "$1" "$2"; then
            kill -s "$3" "$1" 2>/dev/null
            if waitgone "$1" "$2" "$4"; then outcome=ended; else outcome=killed; fi
          fi
          sweep "$5" 0 >/dev/null
          echo "R $outcome $waited"
          ;;
        sweep)
          sweep "$1" "$2"
          ;;
        run)
          tag=$1 marker=$2 cwd=$3; shift 3
          while [ "$#" -gt 0 ] && [ "$1" != -- ]; do export "$1"; shift; done
          shift
          if [ -n "$cwd" ]; then cd -- "$cwd" || exit 126; fi
          exec 3<&0
          FAULTLINE_SERVICE=$marker "$@" </dev/null 3<&- &
          child=$!
          if [ -n "$tag" ]; then info "$child"; printf '%s %s %s\n' "$tag" "$child" "${start:-0}" >&2; fi
          ( while read -r _; do :; done; sweep "$marker" 20 ) <&3 >/dev/null 2>&1 &
          watcher=$!
          exec 3<&-
          wait "$child"; status=$?
          kill "$watcher" 2>/dev/null
          exit "$status"
          ;;
        *) echo "faultline-remote: unknown command $command" >&2; exit 2;;
        esac
        """#
}

/// A program run on another host through the script's `run` command: its environment and
/// working directory set there, marked with `FAULTLINE_SERVICE=<marker>`, and ended there (with
/// whatever carries its marker) when the ssh session's input closes.
enum RemoteCommand {
    /// How it ended; `status` is nil after a timeout.
    struct Result: Sendable {
        var status: Int32?
        var stdout: String
        var stderr: String
    }

    /// Whether `name` can be exported by a POSIX shell.
    static func isVariableName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && CharacterSet.letters.contains(first)) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && CharacterSet.alphanumerics.contains($0)) }
    }

    /// The `run` command's arguments: `TAG MARKER CWD NAME=VALUE… -- ARGV…`.
    static func arguments(tag: String, marker: String, workingDirectory: String?, environment: [String: String], argv: [String]) -> [String] {
        [tag, marker, workingDirectory ?? ""] + environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + ["--"] + argv
    }

    /// A pipe for the remote side's stdin: the write end stays here, close-on-exec, and closing
    /// it (or dying) tells the remote side to end the program.
    static func inputPipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard faultline_pipe_cloexec(&fds) == 0 else { throw ActivityFailure("cannot make a pipe: \(String(cString: strerror(errno)))") }
        return (fds[0], fds[1])
    }

    /// Runs `argv` on `host` to its end, or until `timeout` seconds have passed.
    /// - Throws: ``SSHError`` when ssh fails.
    static func run(
        _ argv: [String], environment: [String: String], workingDirectory: String?, marker: String, host: RemoteHost, shells: RemoteShells,
        timeout: Double?
    ) async throws -> Result {
        let pipe = try inputPipe()
        let child: ChildProcess
        do {
            child = try await shells.spawn(
                host, "run", arguments(tag: "", marker: marker, workingDirectory: workingDirectory, environment: environment, argv: argv),
                standardInput: pipe.read, stdout: .collect, stderr: .collect)
        } catch {
            close(pipe.read)
            close(pipe.write)
            throw error
        }
        close(pipe.read)
        let termination = await withTaskCancellationHandler {
            await child.wait(timeout: timeout)
        } onCancel: {
            child.signal(SIGKILL)
        }
        close(pipe.write)
        guard let termination, !Task.isCancelled else {
            // The session ends; the remote side stops the program when its input closes.
            _ = await child.terminate(signal: SIGKILL, grace: 0)
            let (stdout, stderr) = await child.collectedOutput()
            return Result(status: nil, stdout: stdout, stderr: stderr)
        }
        let (stdout, stderr) = await child.collectedOutput()
        if termination.status == 255 {
            let error = SSHError.classify(stderr, host: host)
            if error.kind != .failed { throw error }
        }
        return Result(status: termination.status, stdout: stdout, stderr: stderr)
    }
}
