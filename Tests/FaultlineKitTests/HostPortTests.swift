import FaultlineKit
import Testing

/// `host:port` as every part of Faultline reads it.
@Suite struct HostPortTests {
    @Test(arguments: [
        ("127.0.0.1:8080", HostPort.Role.connect, "127.0.0.1", 8080),
        ("db:5432", .connect, "db", 5432),
        ("[::1]:80", .connect, "::1", 80),
        ("[fe80::1%eth0]:9000", .connect, "fe80::1%eth0", 9000),
        ("localhost:65535", .connect, "localhost", 65535),
        ("127.0.0.1:0", .listen, "127.0.0.1", 0),
        (":8474", .listen, "", 8474),
        ("[::]:0", .listen, "::", 0),
    ])
    func parses(_ text: String, _ role: HostPort.Role, _ host: String, _ port: Int) throws {
        let address = try HostPort(parsing: text, role: role)
        #expect(address.host == host && address.port == port)
        #expect(address.description == text, "reads back as written")
    }

    @Test(arguments: [
        ("localhost", HostPort.Role.connect, HostPortError.Reason.missingPort, "the port is missing; write e.g. localhost:8080"),
        ("[::1]", .connect, .missingPort, "the port is missing; write e.g. [::1]:8080"),
        ("::1:80", .connect, .tooManyColons, "the host has a colon; an IPv6 address goes in brackets; write [::1]:80"),
        ("http://db:5432/x", .connect, .tooManyColons, "it has a scheme; write it without the scheme and path, e.g. db:5432"),
        ("db:5432/x", .connect, .invalidPort("5432/x"), "it has a path; write it without the path, e.g. db:5432"),
        ("db:http", .connect, .invalidPort("http"), "the port \"http\" is not a number; write e.g. db:8080"),
        ("[::1:80", .connect, .missingBracket, "\"[\" has no matching \"]\"; write an IPv6 address in brackets before the port, e.g. [::1]:8080"),
        ("a]:80", .connect, .unexpectedBracket("]"), "unexpected \"]\"; write an IPv6 address in brackets before the port, e.g. [::1]:8080"),
        (
            "db:0", .connect, .portOutOfRange("0", allowed: 1...65535),
            "the port 0 is outside 1…65535; a connection needs a port from 1 to 65535, e.g. db:8080"
        ),
        (
            "db:65536", .listen, .portOutOfRange("65536", allowed: 0...65535),
            "the port 65536 is outside 0…65535; use a port from 0 (any free port) to 65535, e.g. db:0"
        ),
        (":8080", .connect, .missingHost, "the host is missing; write e.g. 127.0.0.1:8080"),
    ])
    func rejects(_ text: String, _ role: HostPort.Role, _ reason: HostPortError.Reason, _ hint: String) {
        #expect(throws: HostPortError(text, reason)) { try HostPort(parsing: text, role: role) }
        #expect(HostPortError(text, reason).hint == hint)
    }

    @Test func argumentErrorsNameTheKeyAndSayHowToWriteIt() {
        do {
            _ = try HostPort.argument("db", key: "upstream", role: .connect)
            Issue.record("db is not host:port")
        } catch {
            #expect(error.description == #"upstream: upstream must be host:port, found "db""#)
            #expect(error.hint == "the port is missing; write e.g. db:8080")
        }
        #expect(HostPortError("db", .missingPort).description == #""db" is not host:port: the port is missing; write e.g. db:8080"#)
    }

    @Test func listenAddressesMayPickAPortAndConnectionsMayNot() {
        #expect(HostPort.Role.listen.ports == 0...65535)
        #expect(HostPort.Role.connect.ports == 1...65535)
        #expect(HostPort(host: "::1", port: 80).urlHost == "[::1]")
        #expect(HostPort(host: "db", port: 80).urlHost == "db")
    }
}
