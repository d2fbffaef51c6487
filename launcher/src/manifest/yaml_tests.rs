use super::*;

fn err(text: &str) -> YamlError {
    match parse(text) {
        Ok(node) => panic!("expected an error for {text:?}, got {node:?}"),
        Err(e) => e,
    }
}

#[test]
fn plain_mapping_parses() {
    let node = parse("a: b\nlist:\n  - x\n  - \"y\"\n").unwrap();
    let Node::Map { entries, .. } = node else {
        panic!("not a map")
    };
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].0.value, "a");
    let Node::Seq { items, .. } = &entries[1].1 else {
        panic!("not a seq")
    };
    assert_eq!(items.len(), 2);
    match &items[1] {
        Node::Scalar(s) => assert!(s.quoted && s.value == "y"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_text_is_empty_map() {
    assert_eq!(
        parse("").unwrap(),
        Node::Map {
            entries: vec![],
            line: 1
        }
    );
}

#[test]
fn ambiguous_bare_scalars_say_quote_it() {
    let cases = [
        "yes",
        "Yes",
        "NO",
        "no",
        "on",
        "off",
        "y",
        "n",
        "true",
        "False",
        "~",
        "null",
        "Null",
        "2026-05-24",
        "0x1F",
        "0o17",
        "017",
        "12",
        "3.10",
        "1e3",
        ".inf",
        "-.inf",
        ".NaN",
        "1_000",
        "1:20",
        "0b101",
    ];
    for case in cases {
        let e = err(&format!("key: {case}\n"));
        assert!(e.message.contains("quote it"), "{case}: {}", e.message);
        assert_eq!(e.line, 1, "{case}");
    }
}

#[test]
fn empty_value_is_null_and_refused() {
    let e = err("key:\nother: x\n");
    assert!(e.message.contains("quote it"), "{}", e.message);
}

#[test]
fn quoted_forms_of_ambiguous_values_pass() {
    for case in [
        "'yes'",
        "\"NO\"",
        "'2026-05-24'",
        "\"0x1F\"",
        "'017'",
        "\"~\"",
        "''",
    ] {
        let node = parse(&format!("key: {case}\n")).unwrap();
        let Node::Map { entries, .. } = node else {
            panic!()
        };
        assert!(
            matches!(&entries[0].1, Node::Scalar(s) if s.quoted),
            "{case}"
        );
    }
}

#[test]
fn ordinary_strings_pass_bare() {
    for case in [
        "api.example.com",
        "https://api.anthropic.com",
        "10.0.0.1",
        "1.2.3",
        "*.example.org",
        "~/.ssh/id_ed25519",
        "Bearer",
        "yesterday",
        "node-22",
        "v1",
    ] {
        let text = if case.starts_with('*') {
            format!("key: \"{case}\"\n")
        } else {
            format!("key: {case}\n")
        };
        assert!(parse(&text).is_ok(), "{case}: {:?}", parse(&text));
    }
}

#[test]
fn anchors_aliases_tags_block_scalars_refused() {
    let cases = [
        ("a: &x hello\nb: *x\n", "anchors"),
        ("a: &x\n  k: v\n", "anchors"),
        ("a: !!str 5\n", "tags"),
        ("a: !custom v\n", "tags"),
        ("a: |\n  one\n  two\n", "block scalars"),
        ("a: >\n  one\n  two\n", "block scalars"),
        ("a: |-\n  one\n", "block scalars"),
        ("a: one\n  two\n", "several lines"),
        ("a: \"one\n  two\"\n", "several lines"),
    ];
    for (text, what) in cases {
        let e = err(text);
        assert!(e.message.contains(what), "{text:?}: {}", e.message);
        assert!(e.message.contains("quote"), "{text:?}: {}", e.message);
    }
}

#[test]
fn alias_refused_even_without_anchor_usage_elsewhere() {
    let e = err("a: x\nb: *nowhere\n");
    assert!(e.line >= 1, "{e:?}");
}

#[test]
fn duplicate_keys_refused() {
    let e = err("a: x\na: z\n");
    assert!(e.message.contains("duplicate key `a`"), "{}", e.message);
    assert_eq!(e.line, 2);
}

#[test]
fn several_documents_refused() {
    let e = err("a: x\n---\nb: y\n");
    assert!(e.message.contains("one YAML document"), "{}", e.message);
}

#[test]
fn syntax_errors_carry_a_line() {
    let e = err("a: x\nb: [unclosed\n");
    assert!(e.message.contains("invalid YAML"), "{}", e.message);
}

#[test]
fn line_numbers_point_at_the_value() {
    let e = err("a: x\nb:\n  - ok\n  - yes\n");
    assert_eq!(e.line, 4);
}
