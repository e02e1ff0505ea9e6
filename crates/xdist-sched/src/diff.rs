//! pytest-xdist's "Different tests were collected" message: a port of Python's
//! `difflib.SequenceMatcher` (no junk function, `autojunk=True`) and `difflib.unified_diff`.

use std::collections::{HashMap, HashSet};

type Match = (usize, usize, usize);

struct Matcher<'a> {
    a: &'a [String],
    b: &'a [String],
    b2j: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Matcher<'a> {
    fn new(a: &'a [String], b: &'a [String]) -> Matcher<'a> {
        let mut b2j: HashMap<&'a str, Vec<usize>> = HashMap::new();
        for (j, elt) in b.iter().enumerate() {
            b2j.entry(elt.as_str()).or_default().push(j);
        }
        // autojunk: in sequences of 200+ items, items more frequent than 1% are "popular".
        let n = b.len();
        if n >= 200 {
            let ntest = n / 100 + 1;
            let popular: HashSet<&'a str> = b2j
                .iter()
                .filter(|(_, v)| v.len() > ntest)
                .map(|(k, _)| *k)
                .collect();
            for p in popular {
                b2j.remove(p);
            }
        }
        Matcher { a, b, b2j }
    }

    fn find_longest_match(&self, alo: usize, ahi: usize, blo: usize, bhi: usize) -> Match {
        let (a, b) = (self.a, self.b);
        let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0);
        let mut j2len: HashMap<usize, usize> = HashMap::new();
        for (i, ai) in a.iter().enumerate().take(ahi).skip(alo) {
            let mut newj2len: HashMap<usize, usize> = HashMap::new();
            if let Some(js) = self.b2j.get(ai.as_str()) {
                for &j in js {
                    if j < blo {
                        continue;
                    }
                    if j >= bhi {
                        break;
                    }
                    let prev = if j == 0 {
                        0
                    } else {
                        j2len.get(&(j - 1)).copied().unwrap_or(0)
                    };
                    let k = prev + 1;
                    newj2len.insert(j, k);
                    if k > bestsize {
                        besti = i + 1 - k;
                        bestj = j + 1 - k;
                        bestsize = k;
                    }
                }
            }
            j2len = newj2len;
        }
        // No junk function: only the "extend by non-junk equal elements" loops matter
        // (popular elements are not junk, so they extend a match).
        while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
            besti -= 1;
            bestj -= 1;
            bestsize += 1;
        }
        while besti + bestsize < ahi
            && bestj + bestsize < bhi
            && a[besti + bestsize] == b[bestj + bestsize]
        {
            bestsize += 1;
        }
        (besti, bestj, bestsize)
    }

    fn matching_blocks(&self) -> Vec<Match> {
        let (la, lb) = (self.a.len(), self.b.len());
        let mut queue = vec![(0, la, 0, lb)];
        let mut blocks = Vec::new();
        while let Some((alo, ahi, blo, bhi)) = queue.pop() {
            let (i, j, k) = self.find_longest_match(alo, ahi, blo, bhi);
            if k > 0 {
                blocks.push((i, j, k));
                if alo < i && blo < j {
                    queue.push((alo, i, blo, j));
                }
                if i + k < ahi && j + k < bhi {
                    queue.push((i + k, ahi, j + k, bhi));
                }
            }
        }
        blocks.sort_unstable();
        let (mut i1, mut j1, mut k1) = (0, 0, 0);
        let mut out = Vec::new();
        for (i2, j2, k2) in blocks {
            if i1 + k1 == i2 && j1 + k1 == j2 {
                k1 += k2;
            } else {
                if k1 > 0 {
                    out.push((i1, j1, k1));
                }
                (i1, j1, k1) = (i2, j2, k2);
            }
        }
        if k1 > 0 {
            out.push((i1, j1, k1));
        }
        out.push((la, lb, 0));
        out
    }

    fn opcodes(&self) -> Vec<Op> {
        let (mut i, mut j) = (0, 0);
        let mut answer = Vec::new();
        for (ai, bj, size) in self.matching_blocks() {
            let tag = if i < ai && j < bj {
                Some(Tag::Replace)
            } else if i < ai {
                Some(Tag::Delete)
            } else if j < bj {
                Some(Tag::Insert)
            } else {
                None
            };
            if let Some(tag) = tag {
                answer.push((tag, i, ai, j, bj));
            }
            i = ai + size;
            j = bj + size;
            if size > 0 {
                answer.push((Tag::Equal, ai, i, bj, j));
            }
        }
        answer
    }

    fn grouped_opcodes(&self, n: usize) -> Vec<Vec<Op>> {
        let mut codes = self.opcodes();
        if codes.is_empty() {
            codes.push((Tag::Equal, 0, 1, 0, 1));
        }
        if let Some(first) = codes.first_mut() {
            if first.0 == Tag::Equal {
                let (t, i1, i2, j1, j2) = *first;
                *first = (
                    t,
                    i1.max(i2.saturating_sub(n)),
                    i2,
                    j1.max(j2.saturating_sub(n)),
                    j2,
                );
            }
        }
        if let Some(last) = codes.last_mut() {
            if last.0 == Tag::Equal {
                let (t, i1, i2, j1, j2) = *last;
                *last = (t, i1, i2.min(i1 + n), j1, j2.min(j1 + n));
            }
        }
        let nn = n + n;
        let mut groups = Vec::new();
        let mut group: Vec<Op> = Vec::new();
        for (tag, mut i1, i2, mut j1, j2) in codes {
            if tag == Tag::Equal && i2 - i1 > nn {
                group.push((tag, i1, i2.min(i1 + n), j1, j2.min(j1 + n)));
                groups.push(std::mem::take(&mut group));
                i1 = i1.max(i2.saturating_sub(n));
                j1 = j1.max(j2.saturating_sub(n));
            }
            group.push((tag, i1, i2, j1, j2));
        }
        if !group.is_empty() && (group.len() != 1 || group[0].0 != Tag::Equal) {
            groups.push(group);
        }
        groups
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Replace,
    Delete,
    Insert,
    Equal,
}

type Op = (Tag, usize, usize, usize, usize);

fn format_range(start: usize, stop: usize) -> String {
    let mut beginning = start + 1;
    let length = stop - start;
    if length == 1 {
        return beginning.to_string();
    }
    if length == 0 {
        beginning -= 1;
    }
    format!("{beginning},{length}")
}

/// `difflib.unified_diff(a, b, fromfile, tofile, n=3)` with the default `lineterm="\n"`: the
/// header lines (`---`, `+++`, `@@`) end with `"\n"`, content lines have no terminator.
pub fn unified_diff(a: &[String], b: &[String], fromfile: &str, tofile: &str) -> Vec<String> {
    let m = Matcher::new(a, b);
    let mut lines = Vec::new();
    for (g, group) in m.grouped_opcodes(3).iter().enumerate() {
        if g == 0 {
            lines.push(format!("--- {fromfile}\n"));
            lines.push(format!("+++ {tofile}\n"));
        }
        let (first, last) = (group[0], group[group.len() - 1]);
        lines.push(format!(
            "@@ -{} +{} @@\n",
            format_range(first.1, last.2),
            format_range(first.3, last.4)
        ));
        for &(tag, i1, i2, j1, j2) in group {
            if tag == Tag::Equal {
                lines.extend(a[i1..i2].iter().map(|l| format!(" {l}")));
                continue;
            }
            if matches!(tag, Tag::Replace | Tag::Delete) {
                lines.extend(a[i1..i2].iter().map(|l| format!("-{l}")));
            }
            if matches!(tag, Tag::Replace | Tag::Insert) {
                lines.extend(b[j1..j2].iter().map(|l| format!("+{l}")));
            }
        }
    }
    lines
}

/// pytest-xdist's `report_collection_diff(first, other, first_name, other_name)` message:
///
/// ```text
/// Different tests were collected between gw1 and gw0. The difference is:
/// --- gw1
///
/// +++ gw0
///
/// @@ -1,4 +1,4 @@
///
///  test_e.py::test_foo[0]
/// ...
/// To see why this happens see 'Known limitations' in documentation for pytest-xdist
/// ```
///
/// Every line is right-stripped, as pytest-xdist does. Meant for collections that differ; for
/// equal ones the diff part is empty.
pub fn collection_diff(
    first_name: &str,
    first: &[String],
    other_name: &str,
    other: &[String],
) -> String {
    let diff = unified_diff(first, other, first_name, other_name).join("\n");
    let msg = format!(
        "Different tests were collected between {first_name} and {other_name}. The difference is:\n\
         {diff}\n\
         To see why this happens see 'Known limitations' in documentation for pytest-xdist"
    );
    msg.split('\n')
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reference_example() {
        let a = v(&["t::f[0]", "t::f[1]", "t::f[2]", "t::f[3]"]);
        let b = v(&["t::f[0]", "t::f[2]", "t::f[1]", "t::f[3]"]);
        let msg = collection_diff("gw1", &a, "gw0", &b);
        // Checked against Python 3's difflib.
        assert_eq!(
            msg,
            "Different tests were collected between gw1 and gw0. The difference is:\n\
             --- gw1\n\n+++ gw0\n\n@@ -1,4 +1,4 @@\n\n t::f[0]\n+t::f[2]\n t::f[1]\n-t::f[2]\n t::f[3]\n\
             To see why this happens see 'Known limitations' in documentation for pytest-xdist"
        );
    }

    #[test]
    fn hunks_with_context_three() {
        let a: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        let mut b = a.clone();
        b[2] = "x".into();
        b.remove(15);
        let d = unified_diff(&a, &b, "a", "b");
        assert_eq!(
            d,
            v(&[
                "--- a\n",
                "+++ b\n",
                "@@ -1,6 +1,6 @@\n",
                " t0",
                " t1",
                "-t2",
                "+x",
                " t3",
                " t4",
                " t5",
                "@@ -13,7 +13,6 @@\n",
                " t12",
                " t13",
                " t14",
                "-t15",
                " t16",
                " t17",
                " t18"
            ])
        );
        assert!(unified_diff(&a, &a, "a", "b").is_empty());
        let empty: Vec<String> = Vec::new();
        assert_eq!(
            unified_diff(&empty, &v(&["n"]), "a", "b"),
            v(&["--- a\n", "+++ b\n", "@@ -0,0 +1 @@\n", "+n"])
        );
    }
}
