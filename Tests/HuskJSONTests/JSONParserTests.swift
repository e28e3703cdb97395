import HuskJSON
import HuskSystem
import Testing

@Suite("JSON parser and reader")
struct JSONParserTests {
    @Test("values, escapes, unicode and numbers")
    func values() throws {
        let v = try JSONParser.parse(Array(#"{"a":[1,-2.5,3e2,true,false,null],"s":"x\"\\\/\n\u00e9\ud83d\ude00","e":{}}"#.utf8))
        #expect(v["a"] == .array([.number(1), .number(-2.5), .number(300), .bool(true), .bool(false), .null]))
        #expect(v["s"] == .string("x\"\\/\né😀"))
        #expect(v["e"] == .object([:]))
    }

    @Test("refused with the place", arguments: [
        ("{\"a\":1,}", "line 1"), ("[1,2", "unexpected end"), ("{\"a\":01}", "may not start with 0"),
        ("{\"a\":1}x", "unexpected content"), ("\"\\x\"", "invalid escape"), ("{\"a\":1,\"a\":2}", "duplicate key"),
        ("\"\\ud800\"", "lone surrogate"), ("{\n\n  \"a\": tru}", "line 3"),
        ("[1.5e500000000000]", "out of range"), ("[-1e309]", "out of range"),
    ])
    func refused(text: String, expected: String) {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(text.utf8)) }
        do {
            _ = try JSONParser.parse(Array(text.utf8))
        } catch {
            #expect("\(error)".contains(expected), "\(error)")
        }
    }

    @Test("deep nesting is refused, not a stack overflow")
    func deep() {
        let text = String(repeating: "[", count: 100_000)
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    @Test("the reader names the path and the line of a bad field")
    func reader() throws {
        let text = """
            {
              "spec": {
                "containers": [
                  {"name": "a"},
                  {"name": 5}
                ]
              }
            }
            """
        let (v, lines) = try JSONParser.parseWithLines(Array(text.utf8))
        let r = JSONReader(v, lines: lines)
        do {
            _ = try r.optObject("spec") { (s) throws(FieldError) in
                try s.optArray("containers") { (c) throws(FieldError) in try c.string("name") }
            }
            Issue.record("no error")
        } catch {
            #expect(error.description == "spec.containers[1].name: expected a string, found a number (line 5)")
        }
        #expect(JSONValue.object(["b": .number(1), "a": .string("x")]).text == #"{"a":"x","b":1}"#)
    }
}
