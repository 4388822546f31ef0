#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Dispatch
import FaultlineKit

/// The Python standard-library functions Chaos Toolkit experiments call in `python` providers —
/// `os.path.exists` as a hypothesis probe, `os.remove` or `os.rename` as the fault — run natively:
/// the same argument names (Python's own: `os.path.isdir(s)`, `os.path.getsize(filename)`), the
/// same return values, and where Python raises, the activity fails with the line Chaos Toolkit
/// journals (`FileNotFoundError: [Errno 2] No such file or directory: 'x.dat'`).
///
/// Chaos Toolkit lets any function be a probe or an action, so each is registered as both.
/// Relative paths are relative to Faultline's working directory, as they are to `chaos run`'s.
enum PythonStandardLibrary {
    /// Permission bits: 0 to 0o7777.
    static let modeRange = NumberRange(0...0o7777, unit: "(permission bits)", integer: true)

    static func register(into registry: inout PluginRegistry) {
        func both<F: Probe & Action>(_ function: F, _ module: String, _ name: String) {
            registry.register(probe: function, asPythonFunction: name, inModule: module)
            registry.register(action: function, asPythonFunction: name, inModule: module)
        }
        both(Exists(), "os.path", "exists")
        both(IsFile(), "os.path", "isfile")
        both(IsDirectory(), "os.path", "isdir")
        both(IsLink(), "os.path", "islink")
        both(GetSize(), "os.path", "getsize")
        both(Remove(), "os", "remove")
        both(Remove(), "os", "unlink")
        both(Rename(), "os", "rename")
        both(Rename(), "os", "replace")
        both(MakeDirectory(), "os", "mkdir")
        both(MakeDirectories(), "os", "makedirs")
        both(RemoveDirectory(), "os", "rmdir")
        both(ListDirectory(), "os", "listdir")
        both(GetEnvironment(), "os", "getenv")
        both(CopyFile(), "shutil", "copyfile")
        both(Copy(), "shutil", "copy")
        both(Move(), "shutil", "move")
        both(RemoveTree(), "shutil", "rmtree")
    }

    // MARK: Python's errors

    /// The exception Python raises for an `errno` (its `OSError` subclasses), as
    /// `traceback.format_exception_only` writes it: `FileNotFoundError: [Errno 2] No such file or
    /// directory: 'a'`, or `'a' -> 'b'` for two paths.
    static func osError(_ code: Int32, _ paths: String...) -> ActivityFailure { osError(code, paths) }

    static func osError(_ code: Int32, _ paths: [String]) -> ActivityFailure {
        let names: [Int32: String] = [
            ENOENT: "FileNotFoundError", EEXIST: "FileExistsError", EISDIR: "IsADirectoryError", ENOTDIR: "NotADirectoryError",
            EACCES: "PermissionError", EPERM: "PermissionError", EINTR: "InterruptedError", EAGAIN: "BlockingIOError", ETIMEDOUT: "TimeoutError",
        ]
        let reason = String(cString: strerror(code))
        let subject = paths.map { Value.string($0).pythonRepr }.joined(separator: " -> ")
        return ActivityFailure("\(names[code] ?? "OSError"): [Errno \(code)] \(reason)" + (subject.isEmpty ? "" : ": \(subject)"))
    }

    /// A system call's result as Python sees it: 0 returns None, -1 raises `errno`'s exception.
    static func none(_ result: Int32, _ paths: String...) throws -> Value {
        guard result == 0 else { throw osError(errno, paths) }
        return .null
    }

    /// A Python exception of another kind, e.g. `shutil.Error: Destination path 'b/a' already exists`.
    static func pythonError(_ type: String, _ message: String) -> ActivityFailure {
        ActivityFailure("\(type): \(message)")
    }

    /// Runs blocking file-system work off the cooperative pool (a tree to copy or remove may be large).
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// `stat` (or `lstat`) of a path, nil when it fails.
    static func fileStatus(_ path: String, link: Bool = false) -> stat? {
        var info = stat()
        let result = link ? lstat(path, &info) : stat(path, &info)
        return result == 0 ? info : nil
    }

    static func isDirectory(_ path: String) -> Bool { fileStatus(path).map { $0.st_mode & S_IFMT == S_IFDIR } ?? false }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// `os.path.basename(src.rstrip('/'))`, as shutil takes it.
    static func basename(_ path: String) -> String {
        var trimmed = path
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
        return trimmed.split(separator: "/").last.map(String.init) ?? trimmed
    }

    // MARK: Argument shapes

    struct PathArgument: Codable, Sendable {
        var path: String
    }

    struct SourceAndDestination: Codable, Sendable {
        var src: String
        var dst: String
    }

    /// A function Chaos Toolkit may call as a probe or as an action.
    protocol Function: Probe, Action {
        func call(_ arguments: Arguments) async throws -> Value
    }

    // MARK: os.path

    struct Exists: Function {
        static let type = "os.path.exists"
        static let summary = "Whether a path exists (true or false), following symlinks"
        static let argumentHelp = ["path": "a file or directory"]
        typealias Arguments = PathArgument
        func call(_ arguments: Arguments) async throws -> Value { .bool(PythonStandardLibrary.fileStatus(arguments.path) != nil) }
    }

    struct IsFile: Function {
        static let type = "os.path.isfile"
        static let summary = "Whether a path is a regular file (true or false)"
        static let argumentHelp = ["path": "the path"]
        typealias Arguments = PathArgument
        func call(_ arguments: Arguments) async throws -> Value {
            .bool(PythonStandardLibrary.fileStatus(arguments.path).map { $0.st_mode & S_IFMT == S_IFREG } ?? false)
        }
    }

    struct IsDirectory: Function {
        static let type = "os.path.isdir"
        static let summary = "Whether a path is a directory (true or false); the argument is s, as in Python"
        static let argumentHelp = ["s": "the path (Python names this argument s)"]
        struct Arguments: Codable, Sendable { var s: String }
        func call(_ arguments: Arguments) async throws -> Value { .bool(PythonStandardLibrary.isDirectory(arguments.s)) }
    }

    struct IsLink: Function {
        static let type = "os.path.islink"
        static let summary = "Whether a path is a symbolic link (true or false)"
        static let argumentHelp = ["path": "the path"]
        typealias Arguments = PathArgument
        func call(_ arguments: Arguments) async throws -> Value {
            .bool(PythonStandardLibrary.fileStatus(arguments.path, link: true).map { $0.st_mode & S_IFMT == S_IFLNK } ?? false)
        }
    }

    struct GetSize: Function {
        static let type = "os.path.getsize"
        static let summary = "A file's size in bytes; fails when it does not exist"
        static let argumentHelp = ["filename": "the file (Python names this argument filename)"]
        struct Arguments: Codable, Sendable { var filename: String }
        func call(_ arguments: Arguments) async throws -> Value {
            guard let info = PythonStandardLibrary.fileStatus(arguments.filename) else { throw osError(errno, arguments.filename) }
            return .int(Int(info.st_size))
        }
    }

    // MARK: os

    struct Remove: Function {
        static let type = "os.remove"
        static let summary = "Delete a file (os.remove, os.unlink); returns null; fails when it is missing or a directory"
        static let argumentHelp = ["path": "the file"]
        typealias Arguments = PathArgument
        func call(_ arguments: Arguments) async throws -> Value {
            try none(unlink(arguments.path), arguments.path)
        }
    }

    struct Rename: Function {
        static let type = "os.rename"
        static let summary = "Rename a file or directory (os.rename, os.replace); returns null"
        static let argumentHelp = ["src": "the current path", "dst": "the new path"]
        typealias Arguments = SourceAndDestination
        func call(_ arguments: Arguments) async throws -> Value {
            try none(rename(arguments.src, arguments.dst), arguments.src, arguments.dst)
        }
    }

    struct MakeDirectory: Function {
        static let type = "os.mkdir"
        static let summary = "Create a directory; returns null; fails when it exists"
        static let argumentHelp = ["path": "the directory", "mode": "permission bits (default 0o777, less the umask)"]
        struct Arguments: Codable, Sendable, NumberRanges {
            static let numberRanges: [String: NumberRange] = ["mode": PythonStandardLibrary.modeRange]
            var path: String
            var mode: Int
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                path = try c.decode(String.self, forKey: .path)
                mode = try c.decodeIfPresent(Int.self, forKey: .mode) ?? 0o777
            }
        }
        func call(_ arguments: Arguments) async throws -> Value {
            try none(mkdir(arguments.path, mode_t(truncatingIfNeeded: arguments.mode)), arguments.path)
        }
    }

    struct MakeDirectories: Function {
        static let type = "os.makedirs"
        static let summary = "Create a directory and its parents; returns null; fails when it exists unless exist_ok"
        static let argumentHelp = ["name": "the directory", "mode": "permission bits (default 0o777)", "exist_ok": "an existing directory is fine"]
        struct Arguments: Codable, Sendable, NumberRanges {
            static let numberRanges: [String: NumberRange] = ["mode": PythonStandardLibrary.modeRange]
            var name: String
            var mode: Int
            var exist_ok: Bool
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                name = try c.decode(String.self, forKey: .name)
                mode = try c.decodeIfPresent(Int.self, forKey: .mode) ?? 0o777
                exist_ok = try c.decodeIfPresent(Bool.self, forKey: .exist_ok) ?? false
            }
        }

        /// Python's `os.makedirs`: parents first (existing ones are fine), then the leaf.
        static func makedirs(_ name: String, mode: mode_t, existOK: Bool) throws {
            var path = name
            while path.count > 1, path.hasSuffix("/") { path.removeLast() }
            if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
                let head = String(path[..<slash])
                if PythonStandardLibrary.fileStatus(head) == nil { try makedirs(head, mode: mode, existOK: true) }
            }
            guard mkdir(name, mode) == 0 else {
                let code = errno
                if existOK, PythonStandardLibrary.isDirectory(name) { return }
                throw osError(code, name)
            }
        }

        func call(_ arguments: Arguments) async throws -> Value {
            try Self.makedirs(arguments.name, mode: mode_t(truncatingIfNeeded: arguments.mode), existOK: arguments.exist_ok)
            return .null
        }
    }

    struct RemoveDirectory: Function {
        static let type = "os.rmdir"
        static let summary = "Remove an empty directory; returns null"
        static let argumentHelp = ["path": "the directory"]
        typealias Arguments = PathArgument
        func call(_ arguments: Arguments) async throws -> Value {
            try none(rmdir(arguments.path), arguments.path)
        }
    }

    struct ListDirectory: Function {
        static let type = "os.listdir"
        static let summary = "The names in a directory (without . and ..), in the order the file system gives them"
        static let argumentHelp = ["path": "the directory (default: the working directory)"]
        struct Arguments: Codable, Sendable {
            var path: String
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                path = try c.decodeIfPresent(String.self, forKey: .path) ?? "."
            }
        }

        static func names(_ path: String) throws -> [String] {
            guard let directory = opendir(path) else { throw osError(errno, path) }
            defer { closedir(directory) }
            var names: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != ".", name != ".." { names.append(name) }
            }
            return names
        }

        func call(_ arguments: Arguments) async throws -> Value {
            .array(try Self.names(arguments.path).map { .string($0) })
        }
    }

    struct GetEnvironment: Function {
        static let type = "os.getenv"
        static let summary = "An environment variable of Faultline's, or default (null) when it is not set"
        static let argumentHelp = ["key": "the variable's name", "default": "what to return when it is not set"]
        struct Arguments: Codable, Sendable {
            var key: String
            var `default`: Value
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                key = try c.decode(String.self, forKey: .key)
                `default` = try c.decodeIfPresent(Value.self, forKey: .default) ?? .null
            }
        }
        func call(_ arguments: Arguments) async throws -> Value {
            getenv(arguments.key).map { .string(String(cString: $0)) } ?? arguments.default
        }
    }

    // MARK: shutil

    /// `shutil.copyfile`: the content only; the destination is overwritten.
    static func copyContents(_ src: String, _ dst: String) throws {
        if let a = fileStatus(src), let b = fileStatus(dst), a.st_dev == b.st_dev, a.st_ino == b.st_ino {
            throw pythonError("shutil.SameFileError", "\(Value.string(src).pythonRepr) and \(Value.string(dst).pythonRepr) are the same file")
        }
        let input = open(src, O_RDONLY)
        guard input >= 0 else { throw osError(errno, src) }
        defer { close(input) }
        if isDirectory(src) { throw osError(EISDIR, src) }
        let output = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0o666)
        guard output >= 0 else { throw osError(errno, dst) }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count == 0 { break }
            guard count > 0 else { throw osError(errno, src) }
            var written = 0
            while written < count {
                let n = buffer.withUnsafeBytes { write(output, $0.baseAddress! + written, count - written) }
                guard n > 0 else { throw osError(errno, dst) }
                written += n
            }
        }
    }

    struct CopyFile: Function {
        static let type = "shutil.copyfile"
        static let summary = "Copy a file's content to dst (overwritten); returns dst"
        static let argumentHelp = ["src": "the file to copy", "dst": "the file to write"]
        typealias Arguments = SourceAndDestination
        func call(_ arguments: Arguments) async throws -> Value {
            try await offPool { try copyContents(arguments.src, arguments.dst) }
            return .string(arguments.dst)
        }
    }

    struct Copy: Function {
        static let type = "shutil.copy"
        static let summary = "Copy a file with its permission bits, into dst if it is a directory; returns the path written"
        static let argumentHelp = ["src": "the file to copy", "dst": "a file, or a directory to copy into"]
        typealias Arguments = SourceAndDestination
        func call(_ arguments: Arguments) async throws -> Value {
            let destination = isDirectory(arguments.dst) ? join(arguments.dst, basename(arguments.src)) : arguments.dst
            try await offPool {
                try copyContents(arguments.src, destination)
                if let info = PythonStandardLibrary.fileStatus(arguments.src) { _ = chmod(destination, info.st_mode & 0o7777) }
            }
            return .string(destination)
        }
    }

    struct Move: Function {
        static let type = "shutil.move"
        static let summary = "Move a file or directory, into dst if it is a directory; returns the path it went to"
        static let argumentHelp = ["src": "what to move", "dst": "where to, or a directory to move into"]
        typealias Arguments = SourceAndDestination
        func call(_ arguments: Arguments) async throws -> Value {
            var destination = arguments.dst
            if isDirectory(arguments.dst) {
                destination = join(arguments.dst, basename(arguments.src))
                if PythonStandardLibrary.fileStatus(destination) != nil {
                    throw pythonError("shutil.Error", "Destination path \(Value.string(destination).pythonRepr) already exists")
                }
            }
            let target = destination
            try await offPool {
                guard rename(arguments.src, target) != 0 else { return }
                let code = errno
                // Another file system: copy, then remove the original, as shutil does.
                guard code == EXDEV, !isDirectory(arguments.src) else { throw osError(code, arguments.src, target) }
                try copyContents(arguments.src, target)
                guard unlink(arguments.src) == 0 else { throw osError(errno, arguments.src) }
            }
            return .string(destination)
        }
    }

    struct RemoveTree: Function {
        static let type = "shutil.rmtree"
        static let summary = "Remove a directory and everything in it; returns null"
        static let argumentHelp = ["path": "the directory", "ignore_errors": "true: leave what cannot be removed and succeed"]
        struct Arguments: Codable, Sendable {
            var path: String
            var ignore_errors: Bool
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                path = try c.decode(String.self, forKey: .path)
                ignore_errors = try c.decodeIfPresent(Bool.self, forKey: .ignore_errors) ?? false
            }
        }

        static func remove(_ path: String) throws {
            for name in try ListDirectory.names(path) {
                let child = join(path, name)
                if let info = PythonStandardLibrary.fileStatus(child, link: true), info.st_mode & S_IFMT == S_IFDIR {
                    try remove(child)
                } else if unlink(child) != 0 {
                    throw osError(errno, child)
                }
            }
            guard rmdir(path) == 0 else { throw osError(errno, path) }
        }

        func call(_ arguments: Arguments) async throws -> Value {
            try await offPool {
                if let info = PythonStandardLibrary.fileStatus(arguments.path, link: true), info.st_mode & S_IFMT == S_IFLNK {
                    guard arguments.ignore_errors else { throw pythonError("OSError", "Cannot call rmtree on a symbolic link") }
                    return
                }
                do {
                    try Self.remove(arguments.path)
                } catch  where arguments.ignore_errors {}
            }
            return .null
        }
    }
}

extension PythonStandardLibrary.Function {
    func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value { try await call(arguments) }
    func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value { try await call(arguments) }
}
