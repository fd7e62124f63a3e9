//! Circuit breakers for Docker endpoints, kept across runs: after `threshold` consecutive
//! infrastructure failures an endpoint is skipped for a cooldown; then one half-open
//! attempt decides whether it is used again (success closes, failure reopens).

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

/// Breakers stored under a directory (one small file per endpoint).
pub struct Breakers {
    dir: PathBuf,
    pub threshold: u32,
    pub cooldown: Duration,
}

impl Breakers {
    pub fn new(dir: PathBuf, threshold: u32, cooldown: Duration) -> Breakers {
        Breakers {
            dir,
            threshold: threshold.max(1),
            cooldown,
        }
    }

    /// In the cache: `HERMETIC_CACHE/breakers/`.
    pub fn in_cache(threshold: u32, cooldown: Duration) -> Breakers {
        Breakers::new(
            hermetic_deps::cache::Cache::from_env()
                .root()
                .join("breakers"),
            threshold,
            cooldown,
        )
    }

    fn path(&self, endpoint: &str) -> PathBuf {
        self.dir.join(format!(
            "{}.json",
            hermetic_deps::hash::sha256_hex(endpoint.as_bytes())
        ))
    }

    fn load(&self, endpoint: &str) -> State {
        std::fs::read(self.path(endpoint))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn store(&self, endpoint: &str, s: &State) {
        let path = self.path(endpoint);
        if std::fs::create_dir_all(&self.dir).is_ok() {
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            if std::fs::write(&tmp, serde_json::to_vec(s).unwrap_or_default()).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
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
        let b = Breakers::new(dir.path().into(), 2, Duration::from_secs(3600));
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
        let quick = Breakers::new(dir.path().into(), 1, Duration::from_secs(0));
        quick.record("tcp://y", false);
        assert_eq!(quick.admit("tcp://y"), Admission::HalfOpen);
        quick.record("tcp://y", true);
        assert_eq!(quick.admit("tcp://y"), Admission::Closed);
    }
}
