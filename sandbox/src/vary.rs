//! The variations `hermetic verify` applies to runners: what must not change the outputs.
//! Runner 1 is the reference (the fixed environment); runner k ≥ 2 gets each selected
//! variation with values of its own, so that two varied runners also differ from each other.

use crate::build::BuildEnv;

/// Every variation, by name, with what it changes.
pub const ALL: &[(&str, &str)] = &[
    ("build-path", "where inputs are mounted and the build runs"),
    ("hostname", "hostname and domain name"),
    ("user", "uid and gid of the build"),
    ("umask", "umask of the build"),
    ("tz", "TZ"),
    ("locale", "LANG and LC_ALL"),
    ("home", "HOME"),
    ("env", "extra environment variables"),
    ("cpus", "CPUs visible to the build (cpuset)"),
    ("jobs", "cargo's parallel jobs"),
    (
        "file-order",
        "order in which source files are created (directory listing order)",
    ),
    (
        "clock",
        "the wall-clock time cargo and build scripts see (libfaketime), hundreds of days ahead",
    ),
];

/// Why an image cannot take the clock variation.
pub const NO_FAKETIME: &str = "the builder image has no libfaketime (images made by `hermetic \
     image bootstrap` have it; a Dockerfile can install Debian's libfaketime)";

/// Variations left out, each with why.
pub type NotApplied = Vec<(String, String)>;

/// The variations a verification applies on an image: `--vary all` leaves out what the image
/// cannot do, and says so (name, why); a variation asked for by name that it cannot do is
/// an error.
pub fn fit_to_image(
    asked: &str,
    variations: Vec<String>,
    has_faketime: bool,
) -> Result<(Vec<String>, NotApplied), String> {
    if has_faketime || !variations.iter().any(|v| v == "clock") {
        return Ok((variations, vec![]));
    }
    if asked.trim() != "all" {
        return Err(format!(
            "variation \"clock\" cannot be applied: {NO_FAKETIME}"
        ));
    }
    Ok((
        variations.into_iter().filter(|v| v != "clock").collect(),
        vec![("clock".into(), NO_FAKETIME.into())],
    ))
}

/// Parses `--vary`: `all`, `none`, or a comma-separated list of names.
pub fn parse(list: &str) -> Result<Vec<String>, String> {
    match list.trim() {
        "all" => return Ok(ALL.iter().map(|(n, _)| n.to_string()).collect()),
        "none" | "" => return Ok(vec![]),
        _ => {}
    }
    let mut out = vec![];
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !ALL.iter().any(|(n, _)| *n == name) {
            let known: Vec<&str> = ALL.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown variation {name:?}; known: {}, or all / none",
                known.join(", ")
            ));
        }
        if !out.iter().any(|o| o == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// Applies one variation for runner `k` (2, 3, …).
pub fn apply(env: &mut BuildEnv, name: &str, k: usize) {
    const TZ: [&str; 3] = ["Asia/Tokyo", "America/New_York", "Australia/Lord_Howe"];
    const LOCALE: [&str; 3] = ["de_DE.UTF-8", "ja_JP.UTF-8", "tr_TR.UTF-8"];
    match name {
        "build-path" => env.build_path = format!("/srv/build{k}/hermetic"),
        "hostname" => {
            env.hostname = format!("runner{k}");
            env.domainname = format!("varied{k}.test");
        }
        "user" => {
            env.uid = 20_000 + k as u32;
            env.gid = 20_000 + k as u32;
        }
        "umask" => env.umask = if k.is_multiple_of(2) { "002" } else { "077" }.into(),
        "tz" => env.tz = TZ[k % 3].into(),
        "locale" => env.locale = LOCALE[k % 3].into(),
        "home" => env.home = Some(format!("/tmp/home-{k}")),
        "env" => {
            env.extra_env = vec![
                ("HERMETIC_VARIED".into(), format!("varied-env-{k}")),
                ("EDITOR".into(), format!("editor{k}")),
            ]
        }
        "cpus" => env.cpuset = Some("0".into()),
        "jobs" => env.jobs = Some(if k.is_multiple_of(2) { 1 } else { 3 }),
        "file-order" => env.reverse_file_order = true,
        // Far enough that a date, a month and a year all change.
        "clock" => env.clock_offset_days = Some(300 + 100 * k as i64),
        _ => {}
    }
}

/// The environment of runner `k` with `variations` applied (none for the reference).
pub fn env_for(variations: &[String], k: usize) -> BuildEnv {
    let mut env = BuildEnv::default();
    for v in variations {
        apply(&mut env, v, k);
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lists_and_rejects() {
        assert_eq!(parse("all").map(|v| v.len()), Ok(ALL.len()));
        assert_eq!(parse("none"), Ok(vec![]));
        assert_eq!(
            parse("tz, hostname,tz"),
            Ok(vec!["tz".into(), "hostname".into()])
        );
        assert_eq!(parse("clock"), Ok(vec!["clock".into()]));
        assert!(parse("colour").is_err_and(|e| e.contains("known")));
    }

    #[test]
    fn runners_differ_from_the_reference_and_each_other() {
        let all = parse("all").expect("all");
        let (r, a, b) = (env_for(&[], 1), env_for(&all, 2), env_for(&all, 3));
        assert_ne!(r.build_path, a.build_path);
        assert_ne!(a.build_path, b.build_path);
        assert_ne!(a.hostname, b.hostname);
        assert_ne!(a.tz, b.tz);
        assert_eq!(r.clock_offset_days, None);
        assert!(a.clock_offset_days.is_some_and(|d| d >= 365));
        assert_ne!(a.clock_offset_days, b.clock_offset_days);
    }

    #[test]
    fn an_image_without_faketime_drops_the_clock_from_all_and_refuses_it_by_name() {
        let all = parse("all").expect("all");
        let (kept, dropped) = fit_to_image("all", all.clone(), false).expect("all");
        assert!(!kept.contains(&"clock".to_string()));
        assert_eq!(kept.len(), all.len() - 1);
        assert_eq!(dropped[0].0, "clock");
        assert!(dropped[0].1.contains("libfaketime"));
        let named = parse("tz,clock").expect("named");
        assert!(
            fit_to_image("tz,clock", named.clone(), false)
                .is_err_and(|e| e.contains("libfaketime"))
        );
        assert_eq!(
            fit_to_image("tz,clock", named.clone(), true),
            Ok((named, vec![]))
        );
        assert_eq!(
            fit_to_image("tz", vec!["tz".into()], false),
            Ok((vec!["tz".into()], vec![]))
        );
    }
}
