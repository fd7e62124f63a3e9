//! Circuit breakers for Docker endpoints, kept across runs: after `threshold` consecutive
//! infrastructure failures an endpoint is skipped for a cooldown; then one half-open
//! attempt decides whether it is used again (success closes, failure reopens).

use hermetic_deps::seal::Seal;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Use the endpoint.
    Closed,
    /// The cooldown is over: try once; the result closes or reopens the breaker.
    HalfOpen,
    /// Skip the endpoint until this Unix time.
    Open { until_unix: u64, failures: u32 },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    consecutive_failures: u32,
    open_until_unix: Option<u64>,
}

/// Breakers stored under a directory (one small file per endpoint), sealed: a cache writer
/// cannot open a breaker (to silence a runner) or forge its count; it can still delete the
/// file or put back an older sealed state, which closes the breaker: that costs retries,
/// never a verdict.
pub struct Breakers {
    dir: PathBuf,
    /// Without a seal, breakers live for one run only.
    seal: Option<Seal>,
    pub threshold: u32,
    pub cooldown: Duration,
}

/// The seal's kind of a breaker's state (its name is the endpoint's digest).
const KIND: &str = "breaker";

impl Breakers {
    pub fn new(dir: PathBuf, seal: Option<Seal>, threshold: u32, cooldown: Duration) -> Breakers {
        Breakers {
            dir,
            seal,
            threshold: threshold.max(1),
            cooldown,
        }
    }

    /// In the cache: `HERMETIC_CACHE/breakers/`.
    pub fn in_cache(threshold: u32, cooldown: Duration) -> Breakers {
        let cache = hermetic_deps::cache::Cache::from_env();
        // Kept across runs only in a real directory of the cache, sealed.
        let dir = cache.real_dir("breakers");
        let seal = cache.seal().ok().cloned().filter(|_| dir.is_ok());
        Breakers::new(
            dir.unwrap_or_else(|_| cache.root().join("breakers")),
            seal,
            threshold,
            cooldown,
        )
    }

    fn name(endpoint: &str) -> String {
        hermetic_deps::hash::sha256_hex(endpoint.as_bytes())
    }

    fn path(&self, endpoint: &str) -> PathBuf {
        self.dir.join(format!("{}.json", Breakers::name(endpoint)))
    }

    fn load(&self, endpoint: &str) -> State {
        self.seal
            .as_ref()
            .and_then(|seal| seal.read(&self.path(endpoint), KIND, &Breakers::name(endpoint)))
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    fn store(&self, endpoint: &str, s: &State) {
        let Some(seal) = &self.seal else { return };
        if std::fs::create_dir_all(&self.dir).is_ok() {
            let _ = seal.write(
                &self.path(endpoint),
                KIND,
                &Breakers::name(endpoint),
                &serde_json::to_string(s).unwrap_or_default(),
            );
        }
    }

    pub fn admit(&self, endpoint: &str) -> Admission {
        let s = self.load(endpoint);
        match s.open_until_unix {
            Some(until) if until > crate::run::now_unix() => Admission::Open {
                until_unix: until,
                failures: s.consecutive_failures,
            },
            Some(_) => Admission::HalfOpen,
            None => Admission::Closed,
        }
    }

    /// Records the outcome of using an endpoint (infrastructure failures only: a failed
    /// build says nothing about the engine). Returns true if the breaker is now open.
    pub fn record(&self, endpoint: &str, ok: bool) -> bool {
        let mut s = self.load(endpoint);
        if ok {
            s = State::default();
        } else {
            s.consecutive_failures += 1;
            if s.consecutive_failures >= self.threshold {
                s.open_until_unix = Some(crate::run::now_unix() + self.cooldown.as_secs());
            }
        }
        self.store(endpoint, &s);
        s.open_until_unix.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_after_threshold_then_half_opens_and_closes() {
        let dir = tempfile::tempdir().expect("tmp");
        let seal = || Some(Seal::from_key([3; 32]));
        let b = Breakers::new(dir.path().into(), seal(), 2, Duration::from_secs(3600));
        assert_eq!(b.admit("tcp://x"), Admission::Closed);
        assert!(!b.record("tcp://x", false));
        assert_eq!(b.admit("tcp://x"), Admission::Closed);
        assert!(b.record("tcp://x", false));
        assert!(matches!(
            b.admit("tcp://x"),
            Admission::Open { failures: 2, .. }
        ));
        assert_eq!(b.admit("tcp://other"), Admission::Closed);
        // Cooldown over: half-open; a success closes it.
        let quick = Breakers::new(dir.path().into(), seal(), 1, Duration::from_secs(0));
        quick.record("tcp://y", false);
        assert_eq!(quick.admit("tcp://y"), Admission::HalfOpen);
        quick.record("tcp://y", true);
        assert_eq!(quick.admit("tcp://y"), Admission::Closed);
    }

    #[test]
    fn a_breaker_state_this_machine_did_not_seal_is_not_believed() {
        let dir = tempfile::tempdir().expect("tmp");
        let ours = Breakers::new(
            dir.path().into(),
            Some(Seal::from_key([3; 32])),
            1,
            Duration::from_secs(3600),
        );
        // A cache writer opens the breaker of a runner it wants silenced.
        std::fs::write(
            ours.path("tcp://x"),
            r#"{"consecutive_failures":9,"open_until_unix":99999999999}"#,
        )
        .expect("write");
        assert_eq!(ours.admit("tcp://x"), Admission::Closed);
        // Nor does another machine's sealed state count here.
        let theirs = Breakers::new(
            dir.path().into(),
            Some(Seal::from_key([4; 32])),
            1,
            Duration::from_secs(3600),
        );
        theirs.record("tcp://x", false);
        assert_eq!(ours.admit("tcp://x"), Admission::Closed);
    }
}
