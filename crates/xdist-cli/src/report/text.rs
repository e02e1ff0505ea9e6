//! Small text helpers shared by reporters.

use crate::report::termwriter::display_width;

/// pytest's `_format_trimmed`: fit `" - {msg}"` into `available` cells, ellipsizing.
pub fn format_trimmed(msg: &str, available: usize) -> Option<String> {
    let msg = msg.split('\n').next().unwrap_or("");
    let format_width = 3; // " - "
    let ellipsis = "...";
    if format_width + ellipsis.len() > available {
        return None;
    }
    if format_width + display_width(msg) > available {
        let avail = available - ellipsis.len();
        let mut m: String = msg.chars().take(avail).collect();
        while format_width + display_width(&m) > avail {
            m.pop();
        }
        m.push_str(ellipsis);
        return Some(format!(" - {m}"));
    }
    Some(format!(" - {msg}"))
}

/// A short-summary line for a report the controller made itself (a crash).
pub fn short_line(
    word: &str,
    markup: &[&str],
    nodeid: &str,
    msg: &str,
    width: usize,
    color: bool,
) -> String {
    let (path, rest) = match nodeid.split_once("::") {
        Some((p, r)) => (p, Some(r)),
        None => (nodeid, None),
    };
    let paint = |t: &str, codes: &[&str]| -> String {
        if !color {
            return t.to_string();
        }
        let mut s = String::new();
        for c in codes {
            let code = match *c {
                "red" => 31,
                "bold" => 1,
                _ => continue,
            };
            s.push_str(&format!("\x1b[{code}m"));
        }
        format!("{s}{t}\x1b[0m")
    };
    let node = match rest {
        Some(r) => format!("{path}::{}", paint(r, &["bold"])),
        None => path.to_string(),
    };
    let mut line = format!("{} {node}", paint(word, markup));
    let plain_width = display_width(word) + 1 + display_width(nodeid);
    if let Some(m) = format_trimmed(msg, width.saturating_sub(plain_width)) {
        line.push_str(&m);
    }
    line
}

/// What a run of a shard without any of the `collected` tests says (it passes).
pub fn empty_shard_line(index: usize, total: usize, collected: usize) -> String {
    format!(
        "xdist: shard {index}/{total} has none of the {collected} collected tests: nothing to run, which passes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_like_pytest() {
        assert_eq!(format_trimmed("abc", 80).as_deref(), Some(" - abc"));
        assert_eq!(
            format_trimmed("abcdefghij", 10).as_deref(),
            Some(" - abcd...")
        );
        assert_eq!(format_trimmed("abc", 5), None);
    }
}

/// Python's `f"{x:g}"` (6 significant digits, trailing zeros stripped).
pub fn format_g(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 { "0".into() } else { x.to_string() };
    }
    let sci = format!("{x:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if (-4..6).contains(&exp) {
        let decimals = (5 - exp).max(0) as usize;
        strip(&format!("{x:.decimals$}"))
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mantissa), exp.abs())
    }
}

#[cfg(test)]
mod format_g_tests {
    use super::format_g;

    #[test]
    fn like_python() {
        assert_eq!(format_g(0.005), "0.005");
        assert_eq!(format_g(1.0), "1");
        assert_eq!(format_g(0.5), "0.5");
        assert_eq!(format_g(1e-5), "1e-05");
        assert_eq!(format_g(123456789.0), "1.23457e+08");
        assert_eq!(format_g(0.0), "0");
        assert_eq!(format_g(2.25), "2.25");
    }
}
