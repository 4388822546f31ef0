import FaultlineNetwork
import FaultlineTesting
import Foundation

/// A real nginx (the Debian package) on a free loopback port, with its own configuration, prefix
/// and logs in a scratch directory; one process (`master_process off`), ended by its PID in
/// ``close()``.
///
/// Routes: `/` 200 `hello from nginx\n`; `/big` a 100,000-byte file; `/empty` 204; `/status/N`
/// status N with the body `status N\n` (N in ``statuses``); `/headers` 200 echoing the request's `X-Test` header in `X-Echo`;
/// anything else is 404. `extra` adds `location` blocks (a `proxy_pass`, for instance).
public final class TestNginx: TestResource, Sendable {
    public let port: Int
    public let process: TestProcess
    public let directory: ScratchDirectory
    /// The statuses `/status/N` answers.
    public static let statuses = [200, 201, 202, 404, 500, 502, 503]
    /// The `/big` file's bytes.
    public static let bigBody = [UInt8]((0..<100_000).map { UInt8(33 + ($0 &* 31 &+ 7) % 90) })

    /// Starts nginx and waits until it answers.
    public static func start(extra: String = "", workers: Int = 1) async throws -> TestNginx {
        guard let nginx = installed("nginx") ?? (FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx") ? "/usr/sbin/nginx" : nil) else {
            throw TestFailure("nginx is not installed (apt-get install nginx)")
        }
        let directory = try ScratchDirectory(prefix: "faultline-nginx")
        let port = try FreePort.take()
        try Data(bigBody).write(to: URL(fileURLWithPath: directory.path("big")))
        for sub in ["logs", "tmp"] { try FileManager.default.createDirectory(atPath: directory.path(sub), withIntermediateDirectories: true) }
        let configuration = """
            worker_processes \(workers);
            \(workers == 1 ? "master_process off;" : "")
            daemon off;
            pid \(directory.path("nginx.pid"));
            error_log \(directory.path("logs/error.log")) warn;
            events { worker_connections 4096; }
            http {
                access_log off;
                client_body_temp_path \(directory.path("tmp"));
                proxy_temp_path \(directory.path("tmp"));
                fastcgi_temp_path \(directory.path("tmp"));
                uwsgi_temp_path \(directory.path("tmp"));
                scgi_temp_path \(directory.path("tmp"));
                keepalive_requests 1000000;
                server {
                    listen 127.0.0.1:\(port) reuseport;
                    location = / { default_type text/plain; return 200 "hello from nginx\\n"; }
                    location = /big { default_type application/octet-stream; alias \(directory.path("big")); }
                    location = /empty { return 204; }
                    \(Self.statuses.map { "location = /status/\($0) { default_type text/plain; return \($0) \"status \($0)\\n\"; }" }.joined(separator: "\n"))
                    location = /headers { default_type text/plain; add_header X-Echo "$http_x_test"; return 200 "headers\\n"; }
                    \(extra)
                }
            }
            """
        try configuration.write(toFile: directory.path("nginx.conf"), atomically: true, encoding: .utf8)
        let process = try TestProcess(nginx, ["-p", directory.path(""), "-c", directory.path("nginx.conf")], in: directory)
        let server = TestNginx(port: port, process: process, directory: directory)
        // Up when it answers; a configuration error ends the process at once.
        let answered = await eventually(timeout: .seconds(20)) {
            guard process.isRunning else { return true }
            let socket = try? await blocking { try TestSocket(port: port) }
            socket?.close()
            return socket != nil
        }
        guard answered, process.isRunning else {
            await server.close()
            throw TestFailure(
                "nginx did not start: \(process.stderr) \((try? String(contentsOfFile: directory.path("logs/error.log"), encoding: .utf8)) ?? "")")
        }
        return server
    }

    private init(port: Int, process: TestProcess, directory: ScratchDirectory) {
        self.port = port
        self.process = process
        self.directory = directory
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    public func close() async {
        _ = await process.stop(grace: 5)
    }
}
