//! A port of pytest's `TerminalWriter`: markup, separators and current-line tracking.

use std::io::Write;

/// pytest's markup names and their ANSI codes (`TerminalWriter._esctable`).
const ESC_TABLE: &[(&str, u8)] = &[
    ("black", 30),
    ("red", 31),
    ("green", 32),
    ("yellow", 33),
    ("blue", 34),
    ("purple", 35),
    ("cyan", 36),
    ("white", 37),
    ("Black", 40),
    ("Red", 41),
    ("Green", 42),
    ("Yellow", 43),
    ("Blue", 44),
    ("Purple", 45),
    ("Cyan", 46),
    ("White", 47),
    ("bold", 1),
    ("light", 2),
    ("blink", 5),
    ("invert", 7),
];

/// Writes text with optional ANSI markup and remembers the width of the current line.
pub struct TermWriter {
    out: Box<dyn Write>,
    pub hasmarkup: bool,
    pub fullwidth: usize,
    current_line_width: usize,
    last_flush: std::time::Instant,
}

impl TermWriter {
    pub fn new(out: Box<dyn Write>, hasmarkup: bool, fullwidth: usize) -> Self {
        TermWriter {
            out,
            hasmarkup,
            fullwidth,
            current_line_width: 0,
            last_flush: std::time::Instant::now(),
        }
    }

    /// Wraps `text` in the escape codes of `markup` (names as in pytest) when markup is on.
    pub fn markup(&self, text: &str, markup: &[&str]) -> String {
        if !self.hasmarkup || markup.is_empty() {
            return text.to_string();
        }
        let mut s = String::new();
        for name in markup {
            if let Some((_, code)) = ESC_TABLE.iter().find(|(n, _)| n == name) {
                s.push_str(&format!("\x1b[{code}m"));
            }
        }
        if s.is_empty() {
            return text.to_string();
        }
        s.push_str(text);
        s.push_str("\x1b[0m");
        s
    }

    pub fn width_of_current_line(&self) -> usize {
        self.current_line_width
    }

    /// Writes `text`, tracking the current line's width from the unmarked text.
    pub fn write(&mut self, text: &str, markup: &[&str]) {
        if text.is_empty() {
            return;
        }
        match text.rfind('\n') {
            Some(pos) => self.current_line_width = display_width(&text[pos + 1..]),
            None => self.current_line_width += display_width(text),
        }
        let marked = self.markup(text, markup);
        let _ = self.out.write_all(marked.as_bytes());
    }

    /// Writes already-rendered text (may contain escapes) as whole lines.
    pub fn write_raw(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match text.rfind('\n') {
            Some(pos) => self.current_line_width = display_width(&strip_ansi(&text[pos + 1..])),
            None => self.current_line_width += display_width(&strip_ansi(text)),
        }
        let _ = self.out.write_all(text.as_bytes());
    }

    pub fn line(&mut self, text: &str, markup: &[&str]) {
        self.write(text, markup);
        self.write("\n", &[]);
    }

    /// `TerminalWriter.sep`.
    pub fn sep(
        &mut self,
        sepchar: char,
        title: Option<&str>,
        markup: &[&str],
        fullwidth: Option<usize>,
    ) {
        let fullwidth = fullwidth.unwrap_or(self.fullwidth);
        let mut line = match title {
            Some(title) => {
                let n = (fullwidth as isize - title.chars().count() as isize - 2) / 2;
                let fill: String = std::iter::repeat_n(sepchar, n.max(1) as usize).collect();
                format!("{fill} {title} {fill}")
            }
            None => std::iter::repeat_n(sepchar, fullwidth).collect(),
        };
        if line.chars().count() + usize::from(!sepchar.is_whitespace()) <= fullwidth
            && !sepchar.is_whitespace()
        {
            line.push(sepchar);
        }
        self.line(&line, markup);
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
        self.last_flush = std::time::Instant::now();
    }

    /// Flushes unless the last flush was very recent: progress letters still appear live,
    /// without a write per test.
    pub fn flush_soon(&mut self) {
        if self.last_flush.elapsed() >= std::time::Duration::from_millis(40) {
            self.flush();
        }
    }
}

/// Whether stdout is a terminal that understands escape sequences (not `TERM=dumb`): what
/// colour and the live status line both need.
pub fn stdout_is_smart_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
        && std::env::var(xdist_core::env::TERM).map_or(true, |t| t != "dumb")
}

/// Display width in terminal cells (ASCII fast path; wide characters count 2).
pub fn display_width(s: &str) -> usize {
    if s.is_ascii() {
        return s.len();
    }
    s.chars()
        .map(|c| {
            let cp = c as u32;
            if (0x1100..=0x115F).contains(&cp)
                || (0x2E80..=0xA4CF).contains(&cp)
                || (0xAC00..=0xD7A3).contains(&cp)
                || (0xF900..=0xFAFF).contains(&cp)
                || (0xFE30..=0xFE4F).contains(&cp)
                || (0xFF00..=0xFF60).contains(&cp)
                || (0xFFE0..=0xFFE6).contains(&cp)
                || (0x1F300..=0x1FAFF).contains(&cp)
                || (0x20000..=0x3FFFD).contains(&cp)
            {
                2
            } else if (0x300..=0x36F).contains(&cp) || cp == 0x200B {
                0
            } else {
                1
            }
        })
        .sum()
}

/// Removes ANSI escape sequences.
pub fn strip_ansi(s: &str) -> String {
    if !s.contains('\x1b') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sep_line(ch: char, title: Option<&str>, width: usize) -> String {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct W(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut tw = TermWriter::new(Box::new(W(buf.clone())), false, width);
        tw.sep(ch, title, &[], None);
        let v = buf.lock().unwrap().clone();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn separators_match_pytest() {
        assert_eq!(
            sep_line('=', Some("test session starts"), 80),
            "============================= test session starts ==============================\n"
        );
        assert_eq!(
            sep_line('=', Some("ERRORS"), 80),
            "==================================== ERRORS ====================================\n"
        );
        assert_eq!(
            sep_line('_', Some("test_fail_dict_06"), 80),
            "______________________________ test_fail_dict_06 _______________________________\n"
        );
        assert_eq!(sep_line('=', None, 10), "==========\n");
    }
}
