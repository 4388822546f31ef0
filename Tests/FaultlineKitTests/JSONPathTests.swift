import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

/// JSONPath as jsonpath2 0.4.5 reads and evaluates it (the library behind Chaos Toolkit's
/// `jsonpath` tolerance): a table of paths × documents whose expectations are jsonpath2's answers,
/// checked against Faultline, and checked again against jsonpath2 itself when it is installed.
@Suite("JSONPath as jsonpath2 reads it")
struct JSONPathTests {
    static let documentTexts: [String: String] = [
        "shop":
            #"{"store": {"book": [{"title": "A", "price": 8, "tags": ["x", "y"]}, {"title": "B", "price": 12.5, "isbn": null}, {"title": "C", "price": 22, "available": false}], "open": true, "name": "shop"}, "count": 3, "items": [1, "2", 3.0, true, null]}"#,
        "nested": #"{"foo": {"a": {"baz": 1}, "b": {"bar": 2}, "c": [{"baz": 3}], "d": {"baz": null}}}"#,
        "list": #"[{"id": 1, "status": "up", "ms": 120}, {"id": 2, "status": "down", "ms": 900}, {"id": 3, "status": "up"}]"#,
        "health":
            #"{"status": "UP", "components": {"db": {"status": "UP", "details": {"database": "PostgreSQL"}}, "diskSpace": {"status": "DOWN", "details": {"total": 100, "free": 50}}}}"#,
    ]

    static let documents: [String: Value] = documentTexts.mapValues { try! JSONReader.value($0) }

    struct Row: CustomTestStringConvertible, Sendable {
        let path: String
        /// jsonpath2's matches (as JSON) for each document where there are any; none elsewhere.
        let expected: [String: String]
        /// jsonpath2 refuses the path (Chaos Toolkit then refuses the experiment), or fails on it.
        let rejected: Bool

        init(_ path: String, _ expected: [String: String]) {
            self.path = path
            self.expected = expected
            rejected = false
        }

        init(_ path: String, rejected: Bool) {
            self.path = path
            expected = [:]
            self.rejected = rejected
        }

        var testDescription: String { path.isEmpty ? "(empty path)" : path }
    }

    static let rows: [Row] = [
        Row(#"$.store.name"#, ["shop": #"["shop"]"#]),
        Row(#"$.store.book[0].title"#, ["shop": #"["A"]"#]),
        Row(#"$.store.book[-1].title"#, ["shop": #"["C"]"#]),
        Row(#"$.store.book[5]"#, [:]),
        Row(#"$.store.book[-4]"#, [:]),
        Row(#"$["store"]["open"]"#, ["shop": #"[true]"#]),
        Row(#"$.store.book[*].price"#, ["shop": #"[8, 12.5, 22]"#]),
        Row(#"$.store.book[0:2].title"#, ["shop": #"["A", "B"]"#]),
        Row(#"$.store.book[1:].title"#, ["shop": #"["B", "C"]"#]),
        Row(#"$.store.book[:1].title"#, ["shop": #"["A"]"#]),
        Row(#"$.store.book[-2:].title"#, ["shop": #"["B", "C"]"#]),
        Row(#"$.store.book[-10:].title"#, ["shop": #"["A", "B", "C"]"#]),
        Row(#"$.store.book[::2].title"#, ["shop": #"["A", "C"]"#]),
        Row(#"$.store.book[2:0:-1].title"#, ["shop": #"["C", "B"]"#]),
        Row(#"$.store.book[::-1].title"#, [:]),
        Row(#"$.store.book[0,2].title"#, ["shop": #"["A", "C"]"#]),
        Row(#"$.store.book[2,0,2].title"#, ["shop": #"["C", "A", "C"]"#]),
        Row(#"$..title"#, ["shop": #"["A", "B", "C"]"#]),
        Row(#"$..price"#, ["shop": #"[8, 12.5, 22]"#]),
        Row(
            #"$..*"#,
            [
                "shop":
                    #"[{"book": [{"title": "A", "price": 8, "tags": ["x", "y"]}, {"title": "B", "price": 12.5, "isbn": null}, {"title": "C", "price": 22, "available": false}], "open": true, "name": "shop"}, 3, [1, "2", 3.0, true, null], [{"title": "A", "price": 8, "tags": ["x", "y"]}, {"title": "B", "price": 12.5, "isbn": null}, {"title": "C", "price": 22, "available": false}], true, "shop", {"title": "A", "price": 8, "tags": ["x", "y"]}, {"title": "B", "price": 12.5, "isbn": null}, {"title": "C", "price": 22, "available": false}, "A", 8, ["x", "y"], "x", "y", "B", 12.5, null, "C", 22, false, 1, "2", 3.0, true, null]"#,
                "nested":
                    #"[{"a": {"baz": 1}, "b": {"bar": 2}, "c": [{"baz": 3}], "d": {"baz": null}}, {"baz": 1}, {"bar": 2}, [{"baz": 3}], {"baz": null}, 1, 2, {"baz": 3}, 3, null]"#,
                "list":
                    #"[{"id": 1, "status": "up", "ms": 120}, {"id": 2, "status": "down", "ms": 900}, {"id": 3, "status": "up"}, 1, "up", 120, 2, "down", 900, 3, "up"]"#,
                "health":
                    #"["UP", {"db": {"status": "UP", "details": {"database": "PostgreSQL"}}, "diskSpace": {"status": "DOWN", "details": {"total": 100, "free": 50}}}, {"status": "UP", "details": {"database": "PostgreSQL"}}, {"status": "DOWN", "details": {"total": 100, "free": 50}}, "UP", {"database": "PostgreSQL"}, "PostgreSQL", "DOWN", {"total": 100, "free": 50}, 100, 50]"#,
            ]),
        Row(
            #"$.store.*"#,
            [
                "shop":
                    #"[[{"title": "A", "price": 8, "tags": ["x", "y"]}, {"title": "B", "price": 12.5, "isbn": null}, {"title": "C", "price": 22, "available": false}], true, "shop"]"#
            ]),
        Row(#"$..book[1]"#, ["shop": #"[{"title": "B", "price": 12.5, "isbn": null}]"#]),
        Row(
            #"$..[0]"#,
            [
                "shop": #"[{"title": "A", "price": 8, "tags": ["x", "y"]}, "x", 1]"#, "nested": #"[{"baz": 3}]"#,
                "list": #"[{"id": 1, "status": "up", "ms": 120}]"#,
            ]),
        Row(#"$.store.book[?(@.price > 10)]"#, [:]),
        Row(#"$.store.book[*][?(@.price > 10)].title"#, ["shop": #"["B", "C"]"#]),
        Row(#"$.store.book[*][?(@.price >= 12.5)].title"#, ["shop": #"["B", "C"]"#]),
        Row(#"$.store.book[*][?(@.price > 10 and @.price < 20)].title"#, ["shop": #"["B"]"#]),
        Row(#"$.store.book[*][?(@.title = "A" or @.title = "C")].price"#, ["shop": #"[8, 22]"#]),
        Row(#"$.store.book[*][?(@.isbn)].title"#, ["shop": #"["B"]"#]),
        Row(#"$.store.book[*][?(@.available)].title"#, ["shop": #"["C"]"#]),
        Row(#"$.store.book[*][?(not @.available)].title"#, ["shop": #"["A", "B"]"#]),
        Row(#"$.store.book[*][?(@.available = false)].title"#, ["shop": #"["C"]"#]),
        Row(#"$.store.book[*][?(@.price != 8)].title"#, ["shop": #"["B", "C"]"#]),
        Row(#"$.store.book[*][?(@.missing != 8)].title"#, [:]),
        Row(#"$.store.book[*][?(@.tags[*] = "y")].title"#, ["shop": #"["A"]"#]),
        Row(#"$.store.book[*][?(@.price > "10")].title"#, [:]),
        Row(#"$.store.book[*][?(@.price = 8.0)].title"#, ["shop": #"["A"]"#]),
        Row(#"$.store.book[*][?(@.price < $.count * 1)].title"#, rejected: true),
        Row(#"$.store.book[*][?(@.price < $.store.book[1].price)].title"#, ["shop": #"["A"]"#]),
        Row(#"$.items[*][?(@ = 3)]"#, ["shop": #"[3.0]"#]),
        Row(#"$.items[*][?(@ = true)]"#, ["shop": #"[1, true]"#]),
        Row(#"$.items[*][?(@ = 1)]"#, ["shop": #"[1, true]"#]),
        Row(#"$.items[*][?(@ > 0)]"#, ["shop": #"[1, 3.0, true]"#]),
        Row(#"$.items[*][?(@ = null)]"#, ["shop": #"[null]"#]),
        Row(#"$.items[*][?(@ = "2")]"#, ["shop": #"["2"]"#]),
        Row(#"$.items[?(@[0] = 1)]"#, ["shop": #"[[1, "2", 3.0, true, null]]"#]),
        Row(
            #"$[?(@.count)]"#,
            [
                "shop":
                    #"[{"store": {"book": [{"title": "A", "price": 8, "tags": ["x", "y"]}, {"title": "B", "price": 12.5, "isbn": null}, {"title": "C", "price": 22, "available": false}], "open": true, "name": "shop"}, "count": 3, "items": [1, "2", 3.0, true, null]}]"#
            ]),
        Row(#"$[?(@.count = 3)].count"#, ["shop": #"[3]"#]),
        Row(#"$[?(true)].count"#, ["shop": #"[3]"#]),
        Row(#"$[?(0)].count"#, [:]),
        Row(#"$[?("")].count"#, [:]),
        Row(#"$[?([1])].count"#, ["shop": #"[3]"#]),
        Row(#"$[?({})].count"#, [:]),
        Row(#"$.store.book.length()"#, ["shop": #"[3]"#]),
        Row(#"$.store.name.length()"#, ["shop": #"[4]"#]),
        Row(#"$.store.length()"#, [:]),
        Row(#"$.store.keys()"#, ["shop": #"[["book", "open", "name"]]"#]),
        Row(#"$.store.book.keys()"#, ["shop": #"[[0, 1, 2]]"#]),
        Row(#"$.store.book[0].values()"#, ["shop": #"[["A", 8, ["x", "y"]]]"#]),
        Row(#"$.store.book[0].entries()"#, ["shop": #"[[["title", "A"], ["price", 8], ["tags", ["x", "y"]]]]"#]),
        Row(#"$.store.name.charAt(1)"#, ["shop": #"["h"]"#]),
        Row(#"$.store.name.charAt(-1)"#, ["shop": #"["p"]"#]),
        Row(#"$.store.name.charAt(9)"#, [:]),
        Row(#"$.store.name.substring(1)"#, ["shop": #"["hop"]"#]),
        Row(#"$.store.name.substring(1,3)"#, ["shop": #"["ho"]"#]),
        Row(#"$.store.name.substring(-3,-1)"#, ["shop": #"["ho"]"#]),
        Row(#"$.store.book[$.count]"#, [:]),
        Row(#"$.store[@.name]"#, [:]),
        Row(#"$.store.book[0]["tags"][1]"#, ["shop": #"["y"]"#]),
        Row(#"$.foo.*[?(@.baz)].baz"#, ["nested": #"[1, null]"#]),
        Row(#"$.foo.*[?(@.baz)]"#, ["nested": #"[{"baz": 1}, {"baz": null}]"#]),
        Row(#"$.foo[*][?(@.baz = 1)]"#, ["nested": #"[{"baz": 1}]"#]),
        Row(#"$..baz"#, ["nested": #"[1, 3, null]"#]),
        Row(#"$..[?(@.baz)].baz"#, ["nested": #"[1, 3, null]"#]),
        Row(#"$.foo.c[*][?(@.baz > 2)].baz"#, ["nested": #"[3]"#]),
        Row(#"$.foo..baz"#, ["nested": #"[1, 3, null]"#]),
        Row(#"$[*].id"#, ["list": #"[1, 2, 3]"#]),
        Row(#"$[*][?(@.status = "up")].id"#, ["list": #"[1, 3]"#]),
        Row(#"$[?(@.status = "up")].id"#, [:]),
        Row(#"$[*][?(@.ms < 500)].id"#, ["list": #"[1]"#]),
        Row(#"$[*][?(@.ms)].id"#, ["list": #"[1, 2]"#]),
        Row(#"$[*][?(not @.ms)].id"#, ["list": #"[3]"#]),
        Row(#"$[0:2].status"#, ["list": #"["up", "down"]"#]),
        Row(#"$.length()"#, ["list": #"[3]"#]),
        Row(#"$.status"#, ["health": #"["UP"]"#]),
        Row(#"$.components.*.status"#, ["health": #"["UP", "DOWN"]"#]),
        Row(#"$.components[*][?(@.status != "UP")]"#, ["health": #"[{"status": "DOWN", "details": {"total": 100, "free": 50}}]"#]),
        Row(#"$..status"#, ["list": #"["up", "down", "up"]"#, "health": #"["UP", "UP", "DOWN"]"#]),
        Row(#"$..details.total"#, ["health": #"[100]"#]),
        Row(#"$.components.db.details.database"#, ["health": #"["PostgreSQL"]"#]),
        Row(#"$..[?(@.status = "UP")].details"#, ["health": #"[{"database": "PostgreSQL"}]"#]),
        Row(#"$ . store . name"#, ["shop": #"["shop"]"#]),
        Row(#"$.store.book[ 0 ].title"#, ["shop": #"["A"]"#]),
        Row(#"store.name"#, rejected: true),
        Row(#"$.store.book[?(@.price == 8)]"#, rejected: true),
        Row(#"$['store']"#, rejected: true),
        Row(#"$.store.book[?(@.price > 10 && @.price < 20)]"#, rejected: true),
        Row(#"$.content-type"#, rejected: true),
        Row(#"$.store.book[1.5]"#, rejected: true),
        Row(#"$.true"#, rejected: true),
        Row(#"$.store.book[*][?(@.title == 'A')]"#, rejected: true),
        Row(#"$.nope()"#, rejected: true),
        Row(#"$.store.book[0:1:0]"#, rejected: true),
        Row(#"$.."#, rejected: true),
        Row(#"$."#, rejected: true),
        Row(#"$[]"#, rejected: true),
        Row(#"$.store.book[?(!@.isbn)]"#, rejected: true),
        Row(#"@.store"#, rejected: true),
        Row(#""#, rejected: true),
    ]

    @Test(arguments: rows)
    func selects(_ row: Row) throws {
        if row.rejected {
            #expect(throws: JSONPathError.self) { try JSONPath(row.path) }
            return
        }
        let path = try JSONPath(row.path)
        for (name, document) in Self.documents.sorted(by: { $0.key < $1.key }) {
            let expected = try JSONReader.value(row.expected[name] ?? "[]")
            #expect(Value.array(path.evaluate(document)) == expected, "\(row.path) on \(name)")
        }
    }

    @Test(
        "the usual mistakes are refused with what jsonpath2 wants instead",
        arguments: [
            ("$.items[*][?(@.ok == true)]", "jsonpath2 writes equality as a single ="),
            ("$['items']", "jsonpath2 strings take double quotes"),
            ("$.items[*][?(@.a = 1 && @.b = 2)]", "combine conditions with and, or"),
            ("items.id", "a path starts with $"),
            ("$.true", "write [\"true\"]"),
            ("$.items[status]", "a name in brackets is quoted in jsonpath2"),
        ])
    func hints(_ path: String, _ hint: String) {
        #expect {
            try JSONPath(path)
        } throws: { error in
            "\(error)".contains(hint)
        }
    }

    /// jsonpath2's answers for the whole table, by path: nil when it refuses the path, else the
    /// matches per document (nil for a document it fails on).
    static func jsonpath2Answers() throws -> [String: [String: Value?]?] {
        let script = """
            import json, sys
            from jsonpath2.path import Path
            request = json.load(sys.stdin)
            answers = {}
            for path in request["paths"]:
                try:
                    parsed = Path.parse_str(path)
                except Exception:
                    answers[path] = None
                    continue
                per_document = {}
                for name, document in request["documents"].items():
                    try:
                        per_document[name] = [m.current_value for m in parsed.match(document)]
                    except Exception:
                        per_document[name] = None
                answers[path] = per_document
            json.dump(answers, sys.stdout)
            """
        let request: Value = [
            "paths": .array(rows.map { .string($0.path) }), "documents": .object(ValueObject(documents.map { ($0.key, $0.value) })),
        ]
        let answer = try JSONReader.value(try ChaosToolkitOracle.runPython(script, input: JSONWriter.string(request, pretty: false)))
        var answers: [String: [String: Value?]?] = [:]
        for (path, perDocument) in answer.objectValue ?? [:] {
            // updateValue: assigning nil through the subscript would remove the key. (Value is
            // ExpressibleByNilLiteral, so "no answer" is spelled Value?.none.)
            answers.updateValue(
                perDocument.objectValue.map { object in
                    Dictionary(uniqueKeysWithValues: object.map { ($0.key, $0.value.isNull ? Value?.none : $0.value) })
                },
                forKey: path)
        }
        return answers
    }

    @Test("jsonpath2 itself agrees with every row", .enabled(if: ChaosToolkitOracle.isAvailable, "\(ChaosToolkitOracle.missing)"))
    func oracle() throws {
        try ChaosToolkitOracle.require()
        let answers = try Self.jsonpath2Answers()
        for row in Self.rows {
            let answer = try #require(answers[row.path], "no answer for \(row.path)")
            guard let perDocument = answer, perDocument.values.allSatisfy({ $0 != nil }) else {
                #expect(row.rejected, "jsonpath2 refuses \(row.path) (or fails on it), the table accepts it")
                #expect(throws: JSONPathError.self, "\(row.path)") { try JSONPath(row.path) }
                continue
            }
            #expect(!row.rejected, "jsonpath2 accepts \(row.path), the table rejects it")
            let path = try JSONPath(row.path)
            for (name, document) in Self.documents {
                let expected = perDocument[name] ?? nil
                #expect(
                    Value.array(path.evaluate(document)) == expected,
                    "\(row.path) on \(name): jsonpath2 gives \(expected.map { "\($0)" } ?? "nothing")")
            }
        }
    }
}
