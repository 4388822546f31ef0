import NIOCore
import Synchronization

/// The per-connection state a Redis server keeps: the client's name and whether it asked to quit.
struct StoreSession {
    let id: Int64
    var name: ByteBuffer?
    var quit = false
}

/// The in-memory data of `faultline-demo store`: string keys with optional expiry, and the subset of
/// Redis commands the order API and common clients (`redis-cli`, redis-py, go-redis) send.
final class KeyValueStore: Sendable {
    private struct Entry {
        var value: ByteBuffer
        var expiresAt: NIODeadline?
    }

    private let entries = Mutex<[ByteBuffer: Entry]>([:])
    private let started = NIODeadline.now()

    /// Runs one command and returns its reply. Replies and error texts follow Redis, so that clients
    /// which match on them (`-ERR unknown command`) behave as they do against a real server.
    func execute(_ request: RESPValue, session: inout StoreSession, now: NIODeadline = .now()) -> RESPValue {
        guard case .array(let items?) = request, !items.isEmpty else {
            return .error("ERR Protocol error: expected an array of bulk strings")
        }
        var words: [ByteBuffer] = []
        for item in items {
            guard case .bulkString(let word?) = item else {
                return .error("ERR Protocol error: expected an array of bulk strings")
            }
            words.append(word)
        }
        let name = String(buffer: words[0]).uppercased()
        let arguments = Array(words.dropFirst())
        func arity(_ valid: (Int) -> Bool) -> RESPValue? {
            valid(arguments.count) ? nil : .error("ERR wrong number of arguments for '\(name.lowercased())' command")
        }

        switch name {
        case "PING":
            if let error = arity({ $0 <= 1 }) { return error }
            return arguments.first.map { .bulkString($0) } ?? .simpleString("PONG")
        case "ECHO":
            if let error = arity({ $0 == 1 }) { return error }
            return .bulkString(arguments[0])
        case "SET":
            if let error = arity({ $0 >= 2 }) { return error }
            return set(arguments, now: now)
        case "GET":
            if let error = arity({ $0 == 1 }) { return error }
            return .bulkString(withLive(now) { $0[arguments[0]]?.value })
        case "DEL":
            if let error = arity({ $0 >= 1 }) { return error }
            return .integer(
                withLive(now) { entries in
                    Int64(arguments.reduce(0) { count, key in count + (entries.removeValue(forKey: key) == nil ? 0 : 1) })
                })
        case "EXISTS":
            if let error = arity({ $0 >= 1 }) { return error }
            return .integer(withLive(now) { entries in Int64(arguments.filter { entries[$0] != nil }.count) })
        case "INCR", "DECR":
            if let error = arity({ $0 == 1 }) { return error }
            return increment(arguments[0], by: name == "INCR" ? 1 : -1, now: now)
        case "INCRBY", "DECRBY":
            if let error = arity({ $0 == 2 }) { return error }
            guard let amount = integer(arguments[1]) else { return .error("ERR value is not an integer or out of range") }
            if name == "DECRBY" {
                guard amount != .min else { return .error("ERR decrement would overflow") }
                return increment(arguments[0], by: -amount, now: now)
            }
            return increment(arguments[0], by: amount, now: now)
        case "EXPIRE", "PEXPIRE":
            if let error = arity({ $0 == 2 }) { return error }
            guard let amount = integer(arguments[1]) else { return .error("ERR value is not an integer or out of range") }
            let ttl: TimeAmount = name == "EXPIRE" ? .seconds(amount) : .milliseconds(amount)
            return .integer(
                withLive(now) { entries in
                    guard entries[arguments[0]] != nil else { return 0 }
                    if amount <= 0 {
                        entries[arguments[0]] = nil
                    } else {
                        entries[arguments[0]]!.expiresAt = now + ttl
                    }
                    return 1
                })
        case "TTL", "PTTL":
            if let error = arity({ $0 == 1 }) { return error }
            return .integer(
                withLive(now) { entries in
                    guard let entry = entries[arguments[0]] else { return -2 }
                    guard let expiresAt = entry.expiresAt else { return -1 }
                    let milliseconds = (expiresAt - now).nanoseconds / 1_000_000
                    return name == "PTTL" ? milliseconds : (milliseconds + 500) / 1000
                })
        case "KEYS":
            if let error = arity({ $0 == 1 }) { return error }
            let pattern = Array(arguments[0].readableBytesView)
            return .array(
                withLive(now) { entries in
                    entries.keys.filter { Glob.matches(pattern, Array($0.readableBytesView)) }.map { .bulkString($0) }
                })
        case "DBSIZE":
            if let error = arity({ $0 == 0 }) { return error }
            return .integer(withLive(now) { Int64($0.count) })
        case "FLUSHDB", "FLUSHALL":
            if let error = arity({ $0 <= 1 }) { return error }
            entries.withLock { $0.removeAll() }
            return .simpleString("OK")
        case "SELECT":
            if let error = arity({ $0 == 1 }) { return error }
            guard let index = integer(arguments[0]) else { return .error("ERR value is not an integer or out of range") }
            return index == 0 ? .simpleString("OK") : .error("ERR DB index is out of range")
        case "CLIENT":
            if let error = arity({ $0 >= 1 }) { return error }
            return client(arguments, session: &session)
        case "COMMAND":
            // Clients ask for command metadata (redis-cli for hints); an empty answer makes them fall back.
            if arguments.first.map({ String(buffer: $0).uppercased() }) == "COUNT" { return .integer(0) }
            return .array([])
        case "INFO":
            return .bulkString(ByteBuffer(string: info(now: now)))
        case "QUIT":
            session.quit = true
            return .simpleString("OK")
        default:
            let preview = arguments.prefix(3).map { "'\(String(buffer: $0))' " }.joined()
            return .error("ERR unknown command '\(String(buffer: words[0]))', with args beginning with: \(preview)")
        }
    }

    /// `SET key value [NX|XX] [EX seconds|PX milliseconds|KEEPTTL]`
    private func set(_ arguments: [ByteBuffer], now: NIODeadline) -> RESPValue {
        var onlyIfAbsent = false
        var onlyIfPresent = false
        var keepTTL = false
        var ttl: TimeAmount?
        var index = 2
        while index < arguments.count {
            let option = String(buffer: arguments[index]).uppercased()
            switch option {
            case "NX": onlyIfAbsent = true
            case "XX": onlyIfPresent = true
            case "KEEPTTL": keepTTL = true
            case "EX", "PX":
                guard index + 1 < arguments.count, ttl == nil else { return .error("ERR syntax error") }
                guard let amount = integer(arguments[index + 1]) else {
                    return .error("ERR value is not an integer or out of range")
                }
                guard amount > 0 else { return .error("ERR invalid expire time in 'set' command") }
                ttl = option == "EX" ? .seconds(amount) : .milliseconds(amount)
                index += 1
            default:
                return .error("ERR syntax error")
            }
            index += 1
        }
        if (onlyIfAbsent && onlyIfPresent) || (keepTTL && ttl != nil) { return .error("ERR syntax error") }
        let key = arguments[0]
        return withLive(now) { entries in
            let existing = entries[key]
            if (onlyIfAbsent && existing != nil) || (onlyIfPresent && existing == nil) { return .null }
            let expiresAt = keepTTL ? existing?.expiresAt : ttl.map { now + $0 }
            entries[key] = Entry(value: arguments[1], expiresAt: expiresAt)
            return .simpleString("OK")
        }
    }

    private func increment(_ key: ByteBuffer, by amount: Int64, now: NIODeadline) -> RESPValue {
        withLive(now) { entries in
            let entry = entries[key]
            let current: Int64
            if let entry {
                guard let value = integer(entry.value) else { return .error("ERR value is not an integer or out of range") }
                current = value
            } else {
                current = 0
            }
            let (sum, overflow) = current.addingReportingOverflow(amount)
            guard !overflow else { return .error("ERR increment or decrement would overflow") }
            // Like Redis, changing the number keeps the key's expiry.
            entries[key] = Entry(value: ByteBuffer(string: String(sum)), expiresAt: entry?.expiresAt)
            return .integer(sum)
        }
    }

    private func client(_ arguments: [ByteBuffer], session: inout StoreSession) -> RESPValue {
        let subcommand = String(buffer: arguments[0]).uppercased()
        switch (subcommand, arguments.count) {
        case ("SETNAME", 2):
            let name = arguments[1]
            guard name.readableBytesView.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                return .error("ERR Client names cannot contain spaces, newlines or special characters.")
            }
            session.name = name.readableBytes == 0 ? nil : name
            return .simpleString("OK")
        case ("GETNAME", 1):
            return .bulkString(session.name)
        case ("ID", 1):
            return .integer(session.id)
        case ("SETINFO", 3):
            // Sent by redis-py and go-redis on connect to describe themselves.
            return .simpleString("OK")
        case ("SETNAME", _), ("GETNAME", _), ("ID", _), ("SETINFO", _):
            return .error("ERR wrong number of arguments for 'client|\(subcommand.lowercased())' command")
        default:
            return .error("ERR unknown subcommand '\(String(buffer: arguments[0]))'. Try CLIENT HELP.")
        }
    }

    private func info(now: NIODeadline) -> String {
        let (keys, expiring) = withLive(now) { entries in (entries.count, entries.values.filter { $0.expiresAt != nil }.count) }
        let uptime = (now - started).nanoseconds / 1_000_000_000
        return [
            "# Server", "redis_version:7.0.0", "redis_mode:standalone", "faultline_demo:1",
            "uptime_in_seconds:\(uptime)", "",
            "# Keyspace", keys == 0 ? "" : "db0:keys=\(keys),expires=\(expiring),avg_ttl=0",
        ].joined(separator: "\r\n") + "\r\n"
    }

    /// Runs `body` on the entries after dropping the expired ones, so no command sees a dead key.
    private func withLive<T>(_ now: NIODeadline, _ body: (inout [ByteBuffer: Entry]) -> T) -> T {
        entries.withLock { entries in
            if entries.values.contains(where: { $0.expiresAt.map { $0 <= now } ?? false }) {
                entries = entries.filter { $0.value.expiresAt.map { $0 > now } ?? true }
            }
            return body(&entries)
        }
    }

    /// A decimal integer as Redis reads one: no sign other than a leading '-', no spaces.
    private func integer(_ bytes: ByteBuffer) -> Int64? {
        let text = String(buffer: bytes)
        guard !text.hasPrefix("+") else { return nil }
        return Int64(text)
    }
}

/// Redis's glob-style patterns for `KEYS`: `*`, `?`, `[abc]`, `[^a]`, `[a-z]` and `\` escapes.
enum Glob {
    static func matches(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
        matches(pattern[...], text[...])
    }

    private static func matches(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        var pattern = pattern
        var text = text
        while let token = pattern.first {
            switch token {
            case UInt8(ascii: "*"):
                let rest = pattern.drop(while: { $0 == UInt8(ascii: "*") })
                if rest.isEmpty { return true }
                var candidate = text
                while true {
                    if matches(rest, candidate) { return true }
                    guard !candidate.isEmpty else { return false }
                    candidate = candidate.dropFirst()
                }
            case UInt8(ascii: "?"):
                guard !text.isEmpty else { return false }
                pattern = pattern.dropFirst()
                text = text.dropFirst()
            case UInt8(ascii: "["):
                guard let byte = text.first else { return false }
                var set = pattern.dropFirst()
                let negate = set.first == UInt8(ascii: "^")
                if negate { set = set.dropFirst() }
                var matched = false
                while let member = set.first, member != UInt8(ascii: "]") {
                    if member == UInt8(ascii: "\\"), set.count >= 2 {
                        matched = matched || set.dropFirst().first == byte
                        set = set.dropFirst(2)
                    } else if set.count >= 3, set.dropFirst().first == UInt8(ascii: "-"),
                        let upper = set.dropFirst(2).first, upper != UInt8(ascii: "]")
                    {
                        let (low, high) = (min(member, upper), max(member, upper))
                        matched = matched || (low...high).contains(byte)
                        set = set.dropFirst(3)
                    } else {
                        matched = matched || member == byte
                        set = set.dropFirst()
                    }
                }
                guard matched != negate else { return false }
                pattern = set.dropFirst()  // past the closing bracket
                text = text.dropFirst()
            default:
                var literal = token
                if token == UInt8(ascii: "\\"), pattern.count >= 2 {
                    pattern = pattern.dropFirst()
                    literal = pattern.first!
                }
                guard text.first == literal else { return false }
                pattern = pattern.dropFirst()
                text = text.dropFirst()
            }
        }
        return text.isEmpty
    }
}
