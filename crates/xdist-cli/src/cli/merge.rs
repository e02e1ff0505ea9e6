//! Merging `--shard` jobs' results: `xdist merge-junit OUT IN...` (one JUnit file: counts
//! summed, test cases unioned) and `xdist merge-durations OUT IN...` (one duration history
//! for the next run's `--shard-by duration`).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use clap::Parser;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::error::CliError;

#[derive(Debug, Parser)]
#[command(
    name = "xdist merge-junit",
    about = "Merge JUnit XML files (e.g. one per --shard job) into one: counts summed, test cases unioned.",
    long_about = "Writes one JUnit XML file from several (e.g. one per --shard job): the counts \
                  are the sums, the test cases the union (a test found in two inputs is kept once)."
)]
pub struct MergeJunitArgs {
    /// The merged file to write.
    #[arg(value_name = "OUT.xml", value_hint = clap::ValueHint::FilePath)]
    out: PathBuf,
    /// The files to merge (pytest's --junitxml output).
    #[arg(value_name = "IN.xml", required = true, value_hint = clap::ValueHint::FilePath)]
    inputs: Vec<PathBuf>,
}

#[derive(Debug, Parser)]
#[command(
    name = "xdist merge-durations",
    about = "Merge --shard jobs' duration histories (<cache_dir>/v/xdist/durations) into one.",
    long_about = "Merge --shard jobs' duration histories (<cache_dir>/v/xdist/durations) into one, \
                  for the next run's --shard-by duration. An input may be a history file, a \
                  pytest cache directory or a project directory (its .pytest_cache). OUT's own \
                  entries are the base every job started from: an input's entry wins only where \
                  it differs from OUT's (the job measured it), so shards restored from one cache \
                  merge back without undoing each other."
)]
pub struct MergeDurationsArgs {
    /// The history to update (created when missing), e.g. .pytest_cache/v/xdist/durations.
    #[arg(value_name = "OUT", value_hint = clap::ValueHint::AnyPath)]
    out: PathBuf,
    /// The jobs' histories (files, cache directories or project directories).
    #[arg(value_name = "IN", required = true, value_hint = clap::ValueHint::AnyPath)]
    inputs: Vec<PathBuf>,
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(path, text)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
}

/// The `testsuite` counters pytest writes.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Counts {
    tests: u64,
    errors: u64,
    failures: u64,
    skipped: u64,
    time: f64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.tests += o.tests;
        self.errors += o.errors;
        self.failures += o.failures;
        self.skipped += o.skipped;
        self.time += o.time;
    }

    fn sub(&mut self, o: Counts) {
        self.tests = self.tests.saturating_sub(o.tests);
        self.errors = self.errors.saturating_sub(o.errors);
        self.failures = self.failures.saturating_sub(o.failures);
        self.skipped = self.skipped.saturating_sub(o.skipped);
        self.time = (self.time - o.time).max(0.0);
    }
}

/// One test case as written, with what it counts for.
struct Case {
    key: (String, String),
    xml: String,
    counts: Counts,
}

/// What one JUnit file holds.
#[derive(Default)]
struct Suite {
    name: Option<String>,
    timestamp: Option<String>,
    hostname: Option<String>,
    counts: Counts,
    cases: Vec<Case>,
}

fn attrs(e: &BytesStart) -> BTreeMap<String, String> {
    e.attributes()
        .flatten()
        .map(|a| {
            let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
            let value = a
                .unescape_value()
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| String::from_utf8_lossy(&a.value).into_owned());
            (key, value)
        })
        .collect()
}

/// Reads every `testsuite` of a JUnit file (root `testsuites` or a bare `testsuite`).
/// A `<testsuite>`'s counts and names, added to the merged suite (the first name wins).
fn add_testsuite(suite: &mut Suite, e: &BytesStart) {
    let a = attrs(e);
    let num = |k: &str| a.get(k).and_then(|v| v.trim().parse::<u64>().ok());
    suite.counts.add(Counts {
        tests: num("tests").unwrap_or(0),
        errors: num("errors").unwrap_or(0),
        failures: num("failures").unwrap_or(0),
        skipped: num("skipped").unwrap_or(0),
        time: a
            .get("time")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0),
    });
    suite.name = suite.name.take().or_else(|| a.get("name").cloned());
    suite.timestamp = suite
        .timestamp
        .take()
        .or_else(|| a.get("timestamp").cloned());
    suite.hostname = suite.hostname.take().or_else(|| a.get("hostname").cloned());
}

/// A `<testcase>`'s key (classname, name) and its own counts: one test and its time.
fn testcase_head(e: &BytesStart) -> ((String, String), Counts) {
    let a = attrs(e);
    let key = (
        a.get("classname").cloned().unwrap_or_default(),
        a.get("name").cloned().unwrap_or_default(),
    );
    let time = a.get("time").and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let counts = Counts {
        tests: 1,
        time,
        ..Counts::default()
    };
    (key, counts)
}

/// A direct child of a test case that says its outcome.
fn count_outcome(c: &mut Counts, element: &[u8]) {
    match element {
        b"failure" => c.failures += 1,
        b"error" => c.errors += 1,
        b"skipped" => c.skipped += 1,
        _ => {}
    }
}

fn parse_junit(text: &str) -> Result<Suite, String> {
    let mut reader = Reader::from_str(text);
    let mut suite = Suite::default();
    let mut seen_suite = false;
    // The open test case: where it starts in `text`, its key and what its children count.
    let mut open: Option<(usize, (String, String), Counts)> = None;
    let mut depth_in_case = 0usize;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader
            .read_event()
            .map_err(|e| format!("not XML at byte {}: {e}", reader.error_position()))?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(e) | Event::Empty(e)
                if open.is_none() && e.name().as_ref() == b"testsuite" =>
            {
                seen_suite = true;
                add_testsuite(&mut suite, &e);
            }
            Event::Start(e) if open.is_none() && e.name().as_ref() == b"testcase" => {
                let (key, counts) = testcase_head(&e);
                open = Some((before, key, counts));
                depth_in_case = 0;
            }
            Event::Empty(e) if open.is_none() && e.name().as_ref() == b"testcase" => {
                let (key, counts) = testcase_head(&e);
                let xml = text[before..after].to_string();
                suite.cases.push(Case { key, xml, counts });
            }
            ref ev @ (Event::Start(ref e) | Event::Empty(ref e)) if open.is_some() => {
                let is_start = matches!(ev, Event::Start(_));
                if let (0, Some((_, _, c))) = (depth_in_case, open.as_mut()) {
                    count_outcome(c, e.name().as_ref());
                }
                if is_start {
                    depth_in_case += 1;
                }
            }
            Event::End(e) if open.is_some() => {
                if depth_in_case == 0 && e.name().as_ref() == b"testcase" {
                    if let Some((start, key, counts)) = open.take() {
                        suite.cases.push(Case {
                            key,
                            xml: text[start..after].to_string(),
                            counts,
                        });
                    }
                } else {
                    depth_in_case = depth_in_case.saturating_sub(1);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_suite {
        return Err("no <testsuite> element (is it a JUnit XML file?)".into());
    }
    Ok(suite)
}

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// `xdist merge-junit OUT IN...`.
pub fn merge_junit(argv: &[String]) -> Result<i32, CliError> {
    let args: MergeJunitArgs = crate::args::parse_subcommand("xdist merge-junit", argv)?;
    let mut total = Counts::default();
    let mut first = Suite::default();
    let mut seen = HashSet::new();
    let mut cases = Vec::new();
    let mut duplicates = 0usize;
    for path in &args.inputs {
        let suite = parse_junit(&read(path)?)
            .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
        total.add(suite.counts);
        first.name = first.name.or(suite.name);
        first.timestamp = first.timestamp.or(suite.timestamp);
        first.hostname = first.hostname.or(suite.hostname);
        for case in suite.cases {
            if seen.insert(case.key.clone()) {
                cases.push(case.xml);
            } else {
                // The same test in two inputs: kept once, counted once.
                duplicates += 1;
                total.sub(case.counts);
            }
        }
    }
    if duplicates > 0 {
        eprintln!(
            "xdist merge-junit: warning: {duplicates} test case(s) appear in more than one input; kept the first of each"
        );
    }
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><testsuites name=\"pytest tests\">",
    );
    out.push_str(&format!(
        "<testsuite name=\"{}\" errors=\"{}\" failures=\"{}\" skipped=\"{}\" tests=\"{}\" time=\"{:.3}\"",
        escape(first.name.as_deref().unwrap_or("pytest")),
        total.errors,
        total.failures,
        total.skipped,
        total.tests,
        total.time
    ));
    for (k, v) in [
        ("timestamp", &first.timestamp),
        ("hostname", &first.hostname),
    ] {
        if let Some(v) = v {
            out.push_str(&format!(" {k}=\"{}\"", escape(v)));
        }
    }
    out.push('>');
    for c in &cases {
        out.push_str(c);
    }
    out.push_str("</testsuite></testsuites>");
    write(&args.out, &out)?;
    outln!(
        "xdist merge-junit: {} test cases from {} files ({} failures, {} errors, {} skipped) -> {}",
        cases.len(),
        args.inputs.len(),
        total.failures,
        total.errors,
        total.skipped,
        args.out.display()
    );
    Ok(0)
}

/// A history file from a file, a pytest cache directory (`.pytest_cache`, or any directory
/// with pytest's `v/` inside) or a project directory (its `.pytest_cache`).
fn history_file(p: &Path) -> PathBuf {
    let named_cache = p.file_name().is_some_and(|n| n == ".pytest_cache");
    if !p.is_dir() && !named_cache {
        return p.to_path_buf();
    }
    let is_cache = named_cache || p.join("v").is_dir();
    let cache = if is_cache {
        p.to_path_buf()
    } else {
        p.join(".pytest_cache")
    };
    crate::durations::history_path(&cache)
}

fn read_history(path: &Path) -> Result<BTreeMap<String, f64>, CliError> {
    serde_json::from_str(&read(path)?).map_err(|e| {
        CliError::Usage(format!(
            "{}: not a duration history ({{\"node id\": seconds}}): {e}",
            path.display()
        ))
    })
}

/// `xdist merge-durations OUT IN...`.
pub fn merge_durations(argv: &[String]) -> Result<i32, CliError> {
    let args: MergeDurationsArgs = crate::args::parse_subcommand("xdist merge-durations", argv)?;
    let out = history_file(&args.out);
    let base = if out.exists() {
        read_history(&out)?
    } else {
        BTreeMap::new()
    };
    let mut merged = base.clone();
    let mut measured = 0usize;
    for p in &args.inputs {
        for (id, d) in read_history(&history_file(p))? {
            if base.get(&id) != Some(&d) {
                measured += 1;
                merged.insert(id, d);
            }
        }
    }
    let entries = merged.iter().map(|(k, v)| (k.as_str(), *v));
    // `record` rewrites the whole file from what it reads plus these: start from nothing.
    let tmp = out.with_extension("merge");
    let _ = std::fs::remove_file(&tmp);
    crate::run::durations::record(&tmp, entries)
        .and_then(|_| std::fs::rename(&tmp, &out))
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", out.display())))?;
    outln!(
        "xdist merge-durations: {} tests ({measured} measured by the inputs) -> {}",
        merged.len(),
        out.display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cases_and_counts() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4" time="1.5" timestamp="t" hostname="h"><testcase classname="a" name="ok" time="0.1" /><testcase classname="a" name="bad" time="0.2"><failure message="x">tb &lt;here&gt;</failure><system-out><![CDATA[<testcase>]]></system-out></testcase><testcase classname="b" name="skip" time="0"><skipped type="pytest.skip" message="no" /></testcase><testcase classname="b" name="err" time="0"><error message="e">boom</error></testcase></testsuite></testsuites>"#;
        let s = parse_junit(xml).unwrap();
        assert_eq!(s.cases.len(), 4);
        assert_eq!(s.counts.tests, 4);
        assert_eq!(s.cases[1].counts.failures, 1);
        assert!(
            s.cases[1].xml.ends_with("</system-out></testcase>"),
            "{}",
            s.cases[1].xml
        );
        assert_eq!(s.cases[2].counts.skipped, 1);
        assert_eq!(s.cases[3].counts.errors, 1);
        assert!(parse_junit("<html></html>").is_err());
    }

    #[test]
    fn history_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path();
        let cache = project.join(".pytest_cache");
        std::fs::create_dir_all(&cache).unwrap();
        let want = cache.join("v/xdist/durations");
        // A cache directory without a history yet is still the cache, not a project.
        assert_eq!(history_file(&cache), want);
        assert_eq!(history_file(project), want);
        assert_eq!(history_file(&want), want);
        let custom = project.join("ci-cache");
        std::fs::create_dir_all(custom.join("v")).unwrap();
        assert_eq!(history_file(&custom), custom.join("v/xdist/durations"));
        // A cache that does not exist yet (the first merge).
        let fresh = project.join("new/.pytest_cache");
        assert_eq!(history_file(&fresh), fresh.join("v/xdist/durations"));
    }
}
