//! Unit tests of the JUnit document: escaping, message budgets, pytest's layout.

use super::*;

#[test]
fn escapes_like_pytest() {
    assert_eq!(bin_xml_escape("hello\x07world\x08"), "hello#x07world#x08");
    assert_eq!(
        bin_xml_escape("a\tb\nc\rd\x7f\u{fffe}"),
        "a\tb\nc\rd#x7F#xFFFE"
    );
    assert_eq!(bin_xml_escape("é☃𝄞"), "é☃𝄞");
    assert_eq!(escape_attr("a\"<&>\n\t"), "a&quot;&lt;&amp;&gt;&#10;&#09;");
}

#[test]
fn mangles_addresses() {
    assert_eq!(
        mangle_test_address("pkg/test_a.py::TestX::test_y[a::b/c]"),
        vec!["pkg.test_a", "TestX", "test_y[a::b/c]"]
    );
    assert_eq!(mangle_test_address("test_a.py"), vec!["test_a"]);
    assert_eq!(mangle_test_address("a.py::t[]"), vec!["a", "t[]"]);
}

#[test]
fn shortens_messages() {
    assert_eq!(shorten_message("short", 500), "short");
    let long = "x".repeat(600);
    let s = shorten_message(&long, 500);
    assert!(s.ends_with("...\n[truncated; full report in element text]"));
    let many = (0..200)
        .map(|i| format!("line {i}"))
        .collect::<Vec<_>>()
        .join("\n");
    let s = shorten_message(&many, 500);
    assert!(
        s.contains("more lines; full report in element text]"),
        "{s}"
    );
}

#[test]
fn centers_like_python() {
    assert_eq!(center(" ab ", 10, '-'), "--- ab ---");
    assert_eq!(center("abc", 6, '-'), "-abc--");
    assert_eq!(center("ab", 5, '-'), "--ab-");
}
