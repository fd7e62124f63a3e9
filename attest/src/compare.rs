//! Comparison of the outputs of several runners, and the explanation of every difference:
//! where the bytes differ (offsets, ELF section), what they look like (text when printable),
//! and what class of nondeterminism that suggests, with a hint on how to fix it.

use crate::digest::FileDigest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// What one runner produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunnerOutputs {
    pub runner: String,
    pub digests: Vec<FileDigest>,
}

/// One output file across runners.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileVerdict {
    pub name: String,
    /// sha256 per runner, in runner order; `None` where a runner did not produce the file.
    pub sha256: Vec<Option<String>>,
    pub same: bool,
}

/// Per-file digests of every runner, and whether they all agree.
pub fn compare(runners: &[RunnerOutputs]) -> Vec<FileVerdict> {
    let names: BTreeSet<&str> = runners
        .iter()
        .flat_map(|r| r.digests.iter().map(|d| d.name.as_str()))
        .collect();
    names
        .into_iter()
        .map(|name| {
            let sha256: Vec<Option<String>> = runners
                .iter()
                .map(|r| {
                    r.digests
                        .iter()
                        .find(|d| d.name == name)
                        .map(|d| d.sha256.clone())
                })
                .collect();
            let same = sha256.iter().all(|s| s.is_some() && *s == sha256[0]);
            FileVerdict {
                name: name.to_string(),
                sha256,
                same,
            }
        })
        .collect()
}

/// The kind of nondeterminism a difference looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// A runner's build path is embedded.
    BuildPath,
    /// Looks like a date or a Unix time.
    Timestamp,
    /// A runner's hostname or domain name.
    Hostname,
    /// A runner's HOME, locale, time zone or another varied environment string.
    EnvironmentString,
    /// Differs between runners with identical environments: hash order or randomness.
    RandomOrHashOrder,
    /// Not recognised from the bytes alone.
    Unknown,
}

impl Class {
    pub fn hint(self) -> &'static str {
        match self {
            Class::BuildPath => {
                "a build path is embedded: paths from env!(\"CARGO_MANIFEST_DIR\"), OUT_DIR or a \
                 build script are not covered by --remap-path-prefix; use relative paths, \
                 file!() (which is remapped) or -Ztrim-paths / [profile] trim-paths"
            }
            Class::Timestamp => {
                "a build time is embedded: SOURCE_DATE_EPOCH is not honoured; read \
                 SOURCE_DATE_EPOCH in the build script (or drop the timestamp)"
            }
            Class::Hostname => {
                "the build machine's hostname is embedded: remove it, or take it from an \
                 explicit, fixed input"
            }
            Class::EnvironmentString => {
                "a value from the build environment (HOME, locale, TZ, user, variables) is \
                 embedded: do not read it at build time, or pin it"
            }
            Class::RandomOrHashOrder => {
                "output changes between identical builds: iteration over a HashMap/HashSet \
                 (use BTreeMap or sort), or compile-time randomness (e.g. const-random)"
            }
            Class::Unknown => "inspect the differing bytes (diffoscope helps)",
        }
    }
}

/// Strings a runner's environment could leak, to recognise them in differing bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunnerStrings {
    pub runner: String,
    pub build_path: String,
    pub hostname: String,
    pub domainname: String,
    /// HOME, locale, TZ, extra variables' values.
    pub environment: Vec<String>,
}

/// One run of differing bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiffRun {
    pub offset: u64,
    pub len: u64,
    /// ELF section holding the offset, when the file is ELF.
    pub section: Option<String>,
    /// The printable text around the difference in each file, when there is some.
    pub reference_text: Option<String>,
    pub other_text: Option<String>,
    pub reference_hex: String,
    pub other_hex: String,
    pub class: Class,
}

/// A printable string found in one runner's file and not in the other's: what differs,
/// in words, before any offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DifferingString {
    /// The reference's string at the same place, when the two pair up.
    pub reference: Option<String>,
    /// The other runner's string.
    pub other: Option<String>,
    /// The ELF section (and symbol, when the symbol table tells) holding it.
    pub section: Option<String>,
    pub symbol: Option<String>,
    pub class: Class,
    /// How many characters differ (the longer side's, without the common ends): a change
    /// of one or two is as likely random bytes that happen to be printable.
    #[serde(default)]
    pub differing_chars: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileDiff {
    pub name: String,
    pub reference_runner: String,
    pub other_runner: String,
    pub reference_size: u64,
    pub other_size: u64,
    /// Differing bytes in the common length (plus the size difference).
    pub differing_bytes: u64,
    pub first_offsets: Vec<u64>,
    pub elf: bool,
    /// The printable strings of one file that the other lacks (at most
    /// [`MAX_STRINGS`]), paired where they sit in the same place: the evidence first.
    #[serde(default)]
    pub strings: Vec<DifferingString>,
    /// The first runs of differences (at most [`MAX_RUNS`]).
    pub runs: Vec<DiffRun>,
    /// Classes found, most specific first.
    pub classes: Vec<Class>,
}

impl FileDiff {
    /// The difference also appears between identical builds: what the bytes alone could
    /// not classify is hash order or randomness.
    pub fn mark_inherent(&mut self) {
        for r in &mut self.runs {
            if r.class == Class::Unknown {
                r.class = Class::RandomOrHashOrder;
            }
        }
        for c in &mut self.classes {
            if *c == Class::Unknown {
                *c = Class::RandomOrHashOrder;
            }
        }
        for st in &mut self.strings {
            if st.class == Class::Unknown {
                st.class = Class::RandomOrHashOrder;
            }
        }
        self.classes.sort();
        self.classes.dedup();
    }
}

/// The shortest printable run that counts as a string (as `strings(1)` has it, plus two:
/// shorter runs in code are noise).
const MIN_STRING: usize = 6;
pub const MAX_STRINGS: usize = 12;

/// Every printable run of at least [`MIN_STRING`] bytes: (offset, text).
fn printable_runs(data: &[u8]) -> Vec<(usize, &str)> {
    let mut out = vec![];
    let mut i = 0;
    while i < data.len() {
        if printable(data[i]) {
            let start = i;
            while i < data.len() && printable(data[i]) {
                i += 1;
            }
            if i - start >= MIN_STRING
                && let Ok(t) = std::str::from_utf8(&data[start..i])
            {
                out.push((start, t));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// An object file's symbols with their file ranges, where it has a symbol table.
fn symbols(data: &[u8]) -> Vec<(String, u64, u64)> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let Ok(file) = object::File::parse(data) else {
        return vec![];
    };
    let mut out = vec![];
    for sym in file.symbols() {
        let (Some(index), Ok(name)) = (sym.section_index(), sym.name()) else {
            continue;
        };
        if sym.size() == 0 || name.is_empty() {
            continue;
        }
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        let Some((file_off, _)) = section.file_range() else {
            continue;
        };
        let Some(delta) = sym.address().checked_sub(section.address()) else {
            continue;
        };
        out.push((name.to_string(), file_off + delta, sym.size()));
    }
    out
}

fn symbol_at(symbols: &[(String, u64, u64)], offset: usize) -> Option<String> {
    let at = offset as u64;
    symbols
        .iter()
        .find(|(_, off, size)| (*off..off + size).contains(&at))
        .map(|(n, _, _)| demangle(n))
}

/// A legacy Rust symbol (`_ZN` length-prefixed parts `E`) as `a::b::c`, without its hash
/// part; any other name as it is.
fn demangle(name: &str) -> String {
    let Some(mut rest) = name.strip_prefix("_ZN") else {
        return name.to_string();
    };
    let mut parts = vec![];
    while let Some(digits) = rest.find(|c: char| !c.is_ascii_digit()).filter(|&d| d > 0) {
        let Ok(len) = rest[..digits].parse::<usize>() else {
            return name.to_string();
        };
        let Some(part) = rest.get(digits..digits + len) else {
            return name.to_string();
        };
        parts.push(part);
        rest = &rest[digits + len..];
    }
    if rest != "E" || parts.is_empty() {
        return name.to_string();
    }
    if parts.last().is_some_and(|p| {
        p.len() == 17 && p.starts_with('h') && p[1..].bytes().all(|b| b.is_ascii_hexdigit())
    }) {
        parts.pop();
    }
    parts.join("::")
}

/// The strings each file has that the other lacks, compared as sets (a string that only
/// moved is not a difference), paired in order of place, each classified.
pub fn differing_strings(
    a: &[u8],
    b: &[u8],
    reference_strings: &RunnerStrings,
    other_strings: &RunnerStrings,
) -> Vec<DifferingString> {
    let ra = printable_runs(a);
    let rb = printable_runs(b);
    let set_a: BTreeSet<&str> = ra.iter().map(|(_, t)| *t).collect();
    let set_b: BTreeSet<&str> = rb.iter().map(|(_, t)| *t).collect();
    let only_a: Vec<(usize, &str)> = ra.into_iter().filter(|(_, t)| !set_b.contains(t)).collect();
    let only_b: Vec<(usize, &str)> = rb.into_iter().filter(|(_, t)| !set_a.contains(t)).collect();
    let (secs, syms) = (sections(b), symbols(b));
    let (secs_a, syms_a) = (sections(a), symbols(a));
    let mut out = vec![];
    // Paired when both sides have as many: the n-th changed string of one is the n-th of
    // the other (a stamp replaced by another stamp).
    let paired = only_a.len() == only_b.len();
    let n = only_a.len().max(only_b.len());
    for i in 0..n.min(MAX_STRINGS) {
        let (ref_s, other_s) = if paired {
            (only_a.get(i), only_b.get(i))
        } else if i < only_b.len() {
            (None, only_b.get(i))
        } else {
            (only_a.get(i - only_b.len()), None)
        };
        // String literals lie end to end in `.rodata` with nothing between them, so a
        // "string" can be thousands of characters: of a pair, only the part that differs
        // (with some context) is kept, and it is where the pair is placed.
        let (ref_t, other_t, at, differing_chars) = match (ref_s, other_s) {
            (Some(&(_, rt)), Some(&(ob, ot))) => {
                let (r, o, skip) = differing_part(rt, ot);
                (
                    Some(r),
                    Some(o),
                    Some((ob + skip, true)),
                    changed_chars(rt, ot),
                )
            }
            (None, Some(&(ob, ot))) => (None, Some(clip(ot)), Some((ob, true)), ot.len()),
            (Some(&(ra, rt)), None) => (Some(clip(rt)), None, Some((ra, false)), rt.len()),
            (None, None) => (None, None, None, 0),
        };
        let texts: Vec<&str> = [ref_t.as_deref(), other_t.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let (section, symbol) = match at {
            Some((off, true)) => (section_at(secs.as_ref(), off), symbol_at(&syms, off)),
            Some((off, false)) => (section_at(secs_a.as_ref(), off), symbol_at(&syms_a, off)),
            None => (None, None),
        };
        let class = classify(&texts, other_strings, reference_strings);
        out.push(DifferingString {
            reference: ref_t,
            other: other_t,
            section,
            symbol,
            class,
            differing_chars,
        });
    }
    out
}

/// The characters that differ between two strings: the longer side, less the common
/// prefix and suffix.
fn changed_chars(a: &str, b: &str) -> usize {
    let (prefix, suffix) = common_ends(a, b);
    a.len().max(b.len()) - prefix - suffix
}

/// The lengths of the common prefix and of the common suffix after it.
fn common_ends(a: &str, b: &str) -> (usize, usize) {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let prefix = ab.iter().zip(bb).take_while(|(x, y)| x == y).count();
    let room = ab.len().min(bb.len()) - prefix;
    let suffix = ab
        .iter()
        .rev()
        .zip(bb.iter().rev())
        .take(room)
        .take_while(|(x, y)| x == y)
        .count();
    (prefix, suffix)
}

/// Of two strings, the part that differs with up to 40 characters of context on each side
/// (both trimmed alike), and how far into `b` it starts.
fn differing_part(a: &str, b: &str) -> (String, String, usize) {
    const CONTEXT: usize = 40;
    let (prefix, suffix) = common_ends(a, b);
    let start = prefix.saturating_sub(CONTEXT);
    let cut = |s: &str| {
        let end = (s.len() - suffix + CONTEXT).min(s.len());
        // Printable runs are ASCII, so any byte index is a boundary.
        clip(s.get(start..end).unwrap_or(s))
    };
    (cut(a), cut(b), start)
}

/// A string short enough for a report line.
pub(crate) fn clip(s: &str) -> String {
    if s.len() <= 200 {
        return s.to_string();
    }
    let mut end = 200;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub const MAX_RUNS: usize = 12;
const MERGE_GAP: usize = 8;

fn printable(b: u8) -> bool {
    (0x20..0x7f).contains(&b)
}

/// The printable run of `data` around `[start, end)`, if the difference sits in text.
fn text_around(data: &[u8], start: usize, end: usize) -> Option<String> {
    let end = end.min(data.len());
    if start >= end || !data[start..end].iter().all(|&b| printable(b)) {
        return None;
    }
    let mut s = start;
    while s > 0 && printable(data[s - 1]) && start - s < 120 {
        s -= 1;
    }
    let mut e = end;
    while e < data.len() && printable(data[e]) && e - end < 120 {
        e += 1;
    }
    Some(String::from_utf8_lossy(&data[s..e]).into_owned())
}

fn sections(data: &[u8]) -> Option<Vec<(String, u64, u64)>> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(data).ok()?;
    Some(
        file.sections()
            .filter_map(|s| {
                let (off, size) = s.file_range()?;
                Some((s.name().unwrap_or("?").to_string(), off, size))
            })
            .collect(),
    )
}

/// True if some window of `bytes` has `shape`, where `d` stands for any ASCII digit.
fn has_shape(bytes: &[u8], shape: &str) -> bool {
    bytes.windows(shape.len()).any(|w| {
        w.iter().zip(shape.bytes()).all(|(&b, s)| {
            if s == b'd' {
                b.is_ascii_digit()
            } else {
                b == s
            }
        })
    })
}

/// Name of the section whose file range holds `offset`.
fn section_at(sections: Option<&Vec<(String, u64, u64)>>, offset: usize) -> Option<String> {
    sections?
        .iter()
        .find(|(_, off, size)| (*off..off + size).contains(&(offset as u64)))
        .map(|(n, _, _)| n.clone())
}

/// A calendar date with no time of day (`2026-12-01`): a stamp that only a shifted clock
/// shows, since builds made on the same day agree on it.
pub(crate) fn is_date_only(text: &str) -> bool {
    let b = text.as_bytes();
    has_shape(b, "dddd-dd-dd") && !has_shape(b, "dd:dd") && !has_shape(b, "dddddddddd")
}

fn looks_like_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    // A Unix time in seconds (2001..2065) as ten digits not part of a longer number...
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &text[start..i];
            if digits.len() >= 10
                && let Ok(v) = digits[..10].parse::<u64>()
                && (1_000_000_000..3_000_000_000).contains(&v)
            {
                return true;
            }
        } else {
            i += 1;
        }
    }
    // ...or a date / time of day.
    has_shape(bytes, "dddd-dd-dd") || has_shape(bytes, "dd:dd:dd")
}

fn strings_class(texts: &[&str], r: &RunnerStrings) -> Option<Class> {
    let contains = |needle: &str| !needle.is_empty() && texts.iter().any(|t| t.contains(needle));
    if contains(&r.build_path) {
        Some(Class::BuildPath)
    } else if contains(&r.hostname) || contains(&r.domainname) {
        Some(Class::Hostname)
    } else if r.environment.iter().any(|e| e.len() >= 3 && contains(e)) {
        Some(Class::EnvironmentString)
    } else {
        None
    }
}

/// Classifies a difference from the text on both sides: the varied runner's distinctive
/// strings first, then the look of a time, then the reference runner's strings.
pub fn classify(texts: &[&str], varied: &RunnerStrings, reference: &RunnerStrings) -> Class {
    if let Some(c) = strings_class(texts, varied) {
        return c;
    }
    if texts.iter().any(|t| looks_like_time(t)) {
        return Class::Timestamp;
    }
    strings_class(texts, reference).unwrap_or(Class::Unknown)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The varied runner's distinctive strings found in its output but not in the reference's:
/// the most direct evidence of what leaked in, wherever the bytes shifted.
fn leaks(a: &[u8], b: &[u8], other: &RunnerStrings) -> Vec<DiffRun> {
    let mut needles: Vec<(&str, Class)> = vec![
        (other.build_path.as_str(), Class::BuildPath),
        (other.hostname.as_str(), Class::Hostname),
        (other.domainname.as_str(), Class::Hostname),
    ];
    needles.extend(
        other
            .environment
            .iter()
            .map(|e| (e.as_str(), Class::EnvironmentString)),
    );
    let secs = sections(b);
    let mut out = vec![];
    for (needle, class) in needles {
        if needle.len() < 4 || find(a, needle.as_bytes()).is_some() {
            continue;
        }
        let Some(at) = find(b, needle.as_bytes()) else {
            continue;
        };
        // Part of a longer string already found (a hostname inside a path, say).
        if out
            .iter()
            .any(|r: &DiffRun| (r.offset..r.offset + r.len).contains(&(at as u64)))
        {
            continue;
        }
        let end = at + needle.len();
        out.push(DiffRun {
            offset: at as u64,
            len: needle.len() as u64,
            section: section_at(secs.as_ref(), at),
            reference_text: None,
            other_text: text_around(b, at, end),
            reference_hex: String::new(),
            other_hex: hex::encode(&b[at..end.min(at + 32)]),
            class,
        });
    }
    out
}

/// Explains how `other` differs from `reference`.
pub fn diff_files(
    name: &str,
    reference: (&str, &Path),
    other: (&str, &Path),
    reference_strings: &RunnerStrings,
    other_strings: &RunnerStrings,
) -> std::io::Result<FileDiff> {
    let a = std::fs::read(reference.1)?;
    let b = std::fs::read(other.1)?;
    let common = a.len().min(b.len());
    let mut differing = 0u64;
    let mut first_offsets = vec![];
    let mut spans: Vec<(usize, usize)> = vec![];
    for i in 0..common {
        if a[i] != b[i] {
            differing += 1;
            if first_offsets.len() < 16 {
                first_offsets.push(i as u64);
            }
            match spans.last_mut() {
                Some((_, end)) if i - *end <= MERGE_GAP => *end = i + 1,
                _ => spans.push((i, i + 1)),
            }
        }
    }
    differing += (a.len() as u64).abs_diff(b.len() as u64);
    if a.len() != b.len() && spans.is_empty() {
        spans.push((common, common.max(1)));
        first_offsets.push(common as u64);
    }
    let secs = sections(&a);
    let strings = differing_strings(&a, &b, reference_strings, other_strings);
    let mut runs = leaks(&a, &b, other_strings);
    let mut classes: BTreeSet<Class> = runs.iter().map(|r| r.class).collect();
    // What the strings say outranks what raw offsets look like: a stamp in `.rodata` makes
    // every relocation after it differ too, and those bytes say nothing.
    let named: BTreeSet<Class> = strings
        .iter()
        .map(|s| s.class)
        .filter(|c| *c != Class::Unknown)
        .collect();
    // When sizes differ, everything after the first change is shifted: byte runs past it
    // say little, and the strings found above say more.
    let shifted = a.len() != b.len() && !runs.is_empty();
    let (keep, classify_all) = if shifted {
        (1, false)
    } else {
        (MAX_RUNS, true)
    };
    for (i, &(start, end)) in spans.iter().enumerate() {
        if i >= keep && !classify_all {
            break;
        }
        let ta = text_around(&a, start, end);
        let tb = text_around(&b, start, end);
        let texts: Vec<&str> = [ta.as_deref(), tb.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let class = classify(&texts, other_strings, reference_strings);
        // Every run counts towards the classes; only the first few are shown.
        classes.insert(class);
        if i >= keep {
            continue;
        }
        let hex_of =
            |d: &[u8]| hex::encode(&d[start.min(d.len())..end.min(d.len()).min(start + 32)]);
        runs.push(DiffRun {
            offset: start as u64,
            len: (end - start) as u64,
            section: section_at(secs.as_ref(), start),
            reference_text: ta,
            other_text: tb,
            reference_hex: hex_of(&a),
            other_hex: hex_of(&b),
            class,
        });
    }
    if !named.is_empty() {
        classes.retain(|c| *c != Class::Unknown);
        classes.extend(named);
    }
    let mut classes: Vec<Class> = classes.into_iter().collect();
    if classes.len() > 1 {
        classes.retain(|c| *c != Class::Unknown);
    }
    Ok(FileDiff {
        name: name.into(),
        reference_runner: reference.0.into(),
        other_runner: other.0.into(),
        reference_size: a.len() as u64,
        other_size: b.len() as u64,
        differing_bytes: differing,
        first_offsets,
        elf: secs.is_some() && a.starts_with(b"\x7fELF"),
        strings,
        runs,
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(p: &str, h: &str) -> RunnerStrings {
        RunnerStrings {
            runner: "r".into(),
            build_path: p.into(),
            hostname: h.into(),
            domainname: String::new(),
            environment: vec!["/tmp/home-2".into()],
        }
    }

    #[test]
    fn classes_from_text() {
        let a = strings("/hermetic", "hermetic");
        let b = strings("/srv/runner2/build", "runner2.example");
        let c = |t: &str| classify(&[t], &b, &a);
        assert_eq!(c("dir=/srv/runner2/build/src"), Class::BuildPath);
        assert_eq!(c("host runner2.example"), Class::Hostname);
        assert_eq!(c("built 1795626458.123"), Class::Timestamp);
        assert_eq!(c("at 2026-11-25 17:08"), Class::Timestamp);
        assert_eq!(c("home=/tmp/home-2"), Class::EnvironmentString);
        assert_eq!(c("order a,c,b"), Class::Unknown);
        // The reference's own path counts only when nothing more specific matched.
        assert_eq!(c("/hermetic/src/main.rs"), Class::BuildPath);
    }

    #[test]
    fn the_differing_string_is_shown_and_outranks_the_offsets_it_shifts() {
        let dir = tempfile::tempdir().expect("tmp");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        // The same length: a stamp replaced by another; the bytes after it (relocations,
        // say) differ too, without any text.
        let mut one = b"\x00\x01built at 2026-12-01 18:20:11 UTC\x00fixed string here\x00".to_vec();
        let mut two = b"\x00\x01built at 2026-12-01 18:20:14 UTC\x00fixed string here\x00".to_vec();
        one.extend([0x10, 0x20, 0x30, 0x40]);
        two.extend([0x11, 0x21, 0x31, 0x41]);
        std::fs::write(&a, &one).expect("a");
        std::fs::write(&b, &two).expect("b");
        let s = strings("/hermetic", "h");
        let d = diff_files("bin", ("1", &a), ("2", &b), &s, &s).expect("diff");
        assert_eq!(
            d.strings,
            vec![DifferingString {
                reference: Some("built at 2026-12-01 18:20:11 UTC".into()),
                other: Some("built at 2026-12-01 18:20:14 UTC".into()),
                section: None,
                symbol: None,
                class: Class::Timestamp,
                differing_chars: 1,
            }]
        );
        assert_eq!(d.classes, vec![Class::Timestamp], "{d:?}");
        // Inherent (the same on identical runners): still a timestamp, not hash order.
        let mut inherent = d.clone();
        inherent.mark_inherent();
        assert_eq!(inherent.classes, vec![Class::Timestamp]);
    }

    #[test]
    fn legacy_symbols_read_as_paths() {
        assert_eq!(
            demangle("_ZN7stamper5STAMP17h0123456789abcdefE"),
            "stamper::STAMP"
        );
        assert_eq!(demangle("main"), "main");
        assert_eq!(demangle("_ZN3fooX"), "_ZN3fooX");
    }

    #[test]
    fn of_a_long_run_only_the_differing_part_is_shown() {
        let filler = "x".repeat(500);
        let a = format!("\x00{filler}built 2026-12-01 18:20:11{filler}\x00");
        let b = format!("\x00{filler}built 2026-12-01 18:20:14{filler}\x00");
        let s = strings("/hermetic", "h");
        let d = differing_strings(a.as_bytes(), b.as_bytes(), &s, &s);
        assert_eq!(d.len(), 1);
        let other = d[0].other.as_deref().expect("other");
        assert!(other.contains("18:20:14") && other.len() < 120, "{other}");
        assert_eq!(d[0].class, Class::Timestamp);
    }

    #[test]
    fn strings_that_only_moved_are_not_differences() {
        let s = strings("/hermetic", "h");
        let a = b"\x00alpha-one\x00beta-two\x00";
        let b = b"\x00beta-two\x00alpha-one\x00";
        assert!(differing_strings(a, b, &s, &s).is_empty());
        // A string only one side has is listed alone.
        let c = b"\x00alpha-one\x00beta-two\x00gamma-three\x00";
        let d = differing_strings(a, c, &s, &s);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].other.as_deref(), Some("gamma-three"));
        assert_eq!(d[0].reference, None);
    }

    #[test]
    fn a_string_is_located_by_section_and_symbol_in_a_real_object() {
        // This test binary itself: a string in it is found with its section.
        let exe = std::env::current_exe().expect("exe");
        let data = std::fs::read(exe).expect("read");
        let needle = b"the_differing_string_is_shown";
        let at = find(&data, needle).expect("in the binary");
        let mut other = data.clone();
        other[at..at + needle.len()].copy_from_slice(b"THE_DIFFERING_STRING_IS_SHOWN");
        let s = strings("/nowhere", "nohost");
        let d = differing_strings(&data, &other, &s, &s);
        let found = d
            .iter()
            .find(|x| {
                x.other
                    .as_deref()
                    .is_some_and(|t| t.contains("THE_DIFFERING"))
            })
            .expect("found");
        assert!(
            found.section.as_deref().is_some_and(|x| x.starts_with(".")),
            "{found:?}"
        );
    }

    #[test]
    fn diff_reports_offsets_text_and_runs() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"\x00\x01path=/hermetic/src/x\x00tail").expect("a");
        std::fs::write(&b, b"\x00\x01path=/srv/runner2/build/src/x\x00tail").expect("b");
        let s1 = strings("/hermetic", "h");
        let s2 = strings("/srv/runner2/build", "h2");
        let d = diff_files("bin", ("1", &a), ("2", &b), &s1, &s2).expect("diff");
        assert_eq!(d.first_offsets[0], 8);
        assert!(d.differing_bytes > 0);
        assert_eq!(d.classes, vec![Class::BuildPath]);
        assert!(
            d.runs[0]
                .other_text
                .as_deref()
                .is_some_and(|t| t.contains("/srv/runner2"))
        );
        assert!(!d.elf);
        let same = compare(&[
            RunnerOutputs {
                runner: "1".into(),
                digests: vec![FileDigest {
                    name: "x".into(),
                    sha256: "a".into(),
                    size: 1,
                }],
            },
            RunnerOutputs {
                runner: "2".into(),
                digests: vec![FileDigest {
                    name: "x".into(),
                    sha256: "b".into(),
                    size: 1,
                }],
            },
        ]);
        assert!(!same[0].same);
    }
}
