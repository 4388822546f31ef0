import FaultlineKit
import Testing

@Suite("Substitution")
struct SubstitutionTests {
    let substitution = Substitution(variables: [
        "host": "127.0.0.1", "port": 8080, "ratio": 0.5, "on": true,
        "headers": ["Accept": "application/json"], "list": [1, 2],
    ])

    @Test("a string that is exactly ${x} keeps x's type")
    func typed() throws {
        #expect(try substitution.substitute("${port}") == .int(8080))
        #expect(try substitution.substitute("${on}") == .bool(true))
        #expect(try substitution.substitute("${ratio}") == .double(0.5))
        #expect(try substitution.substitute("${headers}") == ["Accept": "application/json"])
        #expect(try substitution.substitute("${ list }") == [1, 2])
    }

    @Test("inside a longer string, values are written as text")
    func interpolated() throws {
        #expect(try substitution.substitute("http://${host}:${port}/x") == "http://127.0.0.1:8080/x")
        // As Chaos Toolkit's string.Template writes them: Python's str().
        #expect(try substitution.substitute("${ratio} ${on} ${list}") == "0.5 True [1, 2]")
    }

    @Test("$$ escapes, and a lone $ is kept as written")
    func escapes() throws {
        #expect(try substitution.substitute("$${host}") == "${host}")
        #expect(try substitution.substitute("cost: $$5") == "cost: $5")
        #expect(try substitution.substitute("echo $HOME") == "echo $HOME")
        #expect(try substitution.substitute("a$") == "a$")
    }

    @Test("dotted names read into objects")
    func dotted() throws {
        #expect(try substitution.substitute("${headers.Accept}") == "application/json")
        #expect(try substitution.substitute("${list.1}") == .int(2))
    }

    @Test("an unknown name is an error with a suggestion, never left in place")
    func unknown() throws {
        let error = try #require(throws: Diagnostic.self) {
            try substitution.substitute("${hots}", at: SourceLocation(file: "x.yaml", line: 3, column: 7), path: DocumentPath([.key("url")]))
        }
        #expect(error.description == "x.yaml:3:7: unknown variable \"${hots}\" (did you mean \"host\"?) at url")
        #expect(throws: Diagnostic.self) { try substitution.substitute("${unterminated") }
    }

    @Test("nested structures are substituted, keys are not")
    func nested() throws {
        let node = try DocumentLoader.parse("{url: 'http://${host}', args: [{n: '${port}'}], '${host}': k}", format: .yaml, file: "n.yaml")
        let result = try substitution.substitute(node, path: .root).value
        #expect(result == ["url": "http://127.0.0.1", "args": [["n": 8080]], "${host}": "k"])
    }

    @Test("configuration values may refer to each other, and cycles are reported")
    func configurationReferences() throws {
        let sink = DiagnosticSink()
        let doc = try DocumentLoader.parse(
            "{host: localhost, port: 9000, url: 'http://${host}:${port}', health: '${url}/health', a: '${b}', b: '${a}'}", format: .yaml,
            file: "c.yaml")
        let layer = ConfigurationLayer.parse(name: "t", configuration: doc, secrets: nil, path: .root, sink: sink)
        let resolved = ResolvedConfiguration.resolve([layer], environment: [:], sink: sink)
        #expect(resolved.configuration["health"] == "http://localhost:9000/health")
        #expect(sink.diagnostics.contains { $0.message.contains("refers to itself") })
    }

    @Test("env configuration: typed, defaulted, and a clear error when missing")
    func environment() throws {
        let sink = DiagnosticSink()
        let doc = try DocumentLoader.parse(
            """
            configuration:
              port: {type: env, key: T_PORT, env_var_type: int}
              flag: {type: env, key: T_FLAG, env_var_type: bool}
              fallback: {type: env, key: T_NONE, default: 5}
              missing: {type: env, key: T_MISSING}
            secrets:
              db:
                password: {type: env, key: T_PASSWORD}
            """, format: .yaml, file: "e.yaml")
        let layer = ConfigurationLayer.parse(name: "t", configuration: doc["configuration"], secrets: doc["secrets"], path: .root, sink: sink)
        let resolved = ResolvedConfiguration.resolve([layer], environment: ["T_PORT": "81", "T_FLAG": "no", "T_PASSWORD": "hunter22"], sink: sink)
        #expect(resolved.configuration["port"] == 81)
        #expect(resolved.configuration["flag"] == false)
        #expect(resolved.configuration["fallback"] == 5)
        #expect(resolved.secrets["db"]?["password"] == "hunter22")
        let missing = try #require(sink.diagnostics.first)
        #expect(missing.description.hasPrefix("e.yaml:5:12: environment variable T_MISSING is not set"))
    }

    @Test("a value given as exactly one ${name} says where it was read: the variable, or the layer that writes it; never the value")
    func sources() throws {
        let sink = DiagnosticSink()
        let doc = try DocumentLoader.parse(
            """
            configuration:
              port: {type: env, key: S_PORT, default: 1}
              url: http://example
            secrets:
              agents:
                from_env: {type: env, key: S_TOKEN}
                written: hunter22
            """, format: .yaml, file: "s.yaml")
        let suite = ConfigurationLayer.parse(name: "suite", configuration: doc["configuration"], secrets: doc["secrets"], path: .root, sink: sink)
        let override = ConfigurationLayer(name: "--var", entries: [("url", .literal(SourceNode("http://other", at: nil)))])
        let resolved = ResolvedConfiguration.resolve([suite, override], environment: ["S_TOKEN": "t0ken-value"], sink: sink)
        let substitution = resolved.substitution
        #expect(substitution.source(of: "${from_env}") == ValueSource(name: "from_env", isSecret: true, environment: "S_TOKEN", layer: "suite"))
        #expect(substitution.source(of: "${written}") == ValueSource(name: "written", isSecret: true, layer: "suite"))
        #expect(substitution.source(of: "${written}")?.description == "secret written (written in suite)")
        // A default stands in for the unset variable; a later layer wins.
        #expect(substitution.source(of: "${port}")?.environment == nil)
        #expect(substitution.source(of: "${url}")?.layer == "--var")
        // Only a whole-string reference has a source.
        #expect(substitution.source(of: "Bearer ${from_env}") == nil)
        #expect(substitution.source(of: "${unknown}") == nil)
    }

    @Test("an env entry's default goes through env_var_type, as chaoslib's load_configuration does")
    func typedDefaults() throws {
        let sink = DiagnosticSink()
        let doc = try DocumentLoader.parse(
            """
            flag: {type: env, key: T_UNSET_1, default: "no", env_var_type: bool}
            count: {type: env, key: T_UNSET_2, default: "7", env_var_type: int}
            ratio: {type: env, key: T_UNSET_3, default: 2, env_var_type: float}
            doc: {type: env, key: T_UNSET_4, default: '{"a": [1, 2]}', env_var_type: json}
            plain: {type: env, key: T_UNSET_5, default: "no"}
            bad: {type: env, key: T_UNSET_6, default: "seven", env_var_type: int}
            """, format: .yaml, file: "d.yaml")
        let layer = ConfigurationLayer.parse(name: "t", configuration: doc, secrets: nil, path: .root, sink: sink)
        let resolved = ResolvedConfiguration.resolve([layer], environment: [:], sink: sink)
        #expect(resolved.configuration["flag"] == false)
        #expect(resolved.configuration["count"] == 7)
        #expect(resolved.configuration["ratio"] == .double(2))
        #expect(resolved.configuration["ratio"]?.pythonText == "2.0")
        #expect(resolved.configuration["doc"] == ["a": [1, 2]])
        #expect(resolved.configuration["plain"] == "no")
        let bad = try #require(sink.diagnostics.first)
        #expect(bad.description.hasPrefix("d.yaml:6:43: default of environment variable T_UNSET_6: \"seven\" is not a valid int"), "\(bad)")
    }

    @Test(
        "--var types convert like Chaos Toolkit's",
        arguments: [
            ("int", "42", Value.int(42)), ("float", "1.5", .double(1.5)), ("bool", "false", .bool(false)), ("bool", "yes", .bool(true)),
            ("json", "{\"a\": [1]}", ["a": [1]]), ("str", "007", "007"), ("bool", "off", .bool(true)), ("bool", "", .bool(true)),
            ("bool", "No", .bool(false)), ("bool", " no", .bool(true)), ("int", " 7 ", .int(7)),
        ] as [(String, String, Value)])
    func varTypes(_ type: String, _ text: String, _ expected: Value) throws {
        #expect(try EnvironmentValueType(rawValue: type)!.convert(text) == expected)
    }
}
