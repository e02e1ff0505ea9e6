//! Python string semantics that pytest's output depends on.

/// Python's `str.splitlines()` (without keepends): every Unicode line boundary, `\r\n` as
/// one.
pub fn splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            lines.push(&text[start..i]);
            let mut next = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = chars.peek() {
                    chars.next();
                    next = j + 1;
                }
            }
            start = next;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Python's `repr()` of a string.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `shlex.split(s)` (POSIX mode, no comments), as pytest splits `addopts` and
/// `PYTEST_ADDOPTS`. Errors are Python's: `No closing quotation`, `No escaped character`.
pub fn split_addopts(s: &str) -> Result<Vec<String>, String> {
    #[derive(PartialEq)]
    enum St {
        Space,
        Word,
        Quote(char),
        Escape(Option<char>),
    }
    let mut out = Vec::new();
    let mut token = String::new();
    let mut quoted = false;
    let mut st = St::Space;
    let is_ws = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    for c in s.chars() {
        match st {
            St::Space | St::Word => {
                if is_ws(c) {
                    if st == St::Word && (!token.is_empty() || quoted) {
                        out.push(std::mem::take(&mut token));
                    }
                    quoted = false;
                    st = St::Space;
                } else if c == '\\' {
                    st = St::Escape(None);
                } else if c == '\'' || c == '"' {
                    st = St::Quote(c);
                } else {
                    token.push(c);
                    st = St::Word;
                }
            }
            St::Quote(q) => {
                quoted = true;
                if c == q {
                    st = St::Word;
                } else if c == '\\' && q == '"' {
                    st = St::Escape(Some(q));
                } else {
                    token.push(c);
                }
            }
            St::Escape(inside) => {
                if let Some(q) = inside {
                    if c != '\\' && c != q {
                        token.push('\\');
                    }
                }
                token.push(c);
                st = match inside {
                    Some(q) => St::Quote(q),
                    None => St::Word,
                };
            }
        }
    }
    match st {
        St::Quote(_) => Err("No closing quotation".to_string()),
        St::Escape(_) => Err("No escaped character".to_string()),
        St::Word => {
            out.push(token);
            Ok(out)
        }
        St::Space => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_python() {
        assert_eq!(
            splitlines("a\r\nb\rc\nd\u{2028}e\n"),
            vec!["a", "b", "c", "d", "e"]
        );
        assert_eq!(splitlines("x"), vec!["x"]);
        assert!(splitlines("").is_empty());
        assert_eq!(splitlines("a\n\nb"), vec!["a", "", "b"]);
    }

    fn s(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn shlex_split_like_python() {
        let split = |x: &str| split_addopts(x).unwrap();
        assert_eq!(split("-x  -k 'a and b'"), s(&["-x", "-k", "a and b"]));
        assert_eq!(split(r#"-k "a \"b\" \$c""#), s(&["-k", r#"a "b" \$c"#]));
        assert_eq!(split("#x a\\ b ''"), s(&["#x", "a b", ""]));
        assert_eq!(split("  \n "), Vec::<String>::new());
        assert_eq!(split("a\"b\"'c'd"), s(&["abcd"]));
        assert_eq!(split_addopts("'a").unwrap_err(), "No closing quotation");
        assert_eq!(split_addopts("a\\").unwrap_err(), "No escaped character");
        assert_eq!(py_repr("it's"), "\"it's\"");
    }
}
