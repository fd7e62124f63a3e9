//! Run identity, labels, and garbage collection of what killed runs left behind.
//!
//! Every container and volume hermetic creates carries `hermetic.run` (this run's id),
//! `hermetic.pid` and `hermetic.host` (the process and machine that own it). A resource whose
//! owning process is gone from this machine is stale, and any run removes stale ones at
//! start; `hermetic gc` does it on demand.

use crate::container;
use crate::engine::Engine;
use crate::error::Result;
use std::collections::HashMap;

pub const LABEL: &str = "hermetic";
pub const LABEL_RUN: &str = "hermetic.run";
pub const LABEL_PID: &str = "hermetic.pid";
pub const LABEL_HOST: &str = "hermetic.host";

/// One hermetic invocation's identity.
#[derive(Debug, Clone)]
pub struct RunId(pub String);

impl RunId {
    pub fn new() -> RunId {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        RunId(format!("{now:x}-{:08x}", fastrand::u32(..)))
    }

    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (LABEL_RUN.to_string(), self.0.clone()),
            (LABEL_PID.to_string(), std::process::id().to_string()),
            (LABEL_HOST.to_string(), host_name()),
        ])
    }
}

impl Default for RunId {
    fn default() -> Self {
        RunId::new()
    }
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// True if the process exists and is not a zombie (a killed, not yet reaped process still
/// has its /proc entry).
pub(crate) fn pid_alive(pid: &str) -> bool {
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Which resources to remove.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Resources of one run (cleanup on success, failure, timeout, Ctrl-C).
    Run(String),
    /// Resources whose owning process is gone from this machine.
    Stale,
}

/// What a collection removed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Collected {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
}

/// True if `labels` name a process on this machine that is gone: what it made is abandoned.
pub(crate) fn owner_gone(labels: &HashMap<String, String>) -> bool {
    let ours = labels.get(LABEL_HOST).is_some_and(|h| *h == host_name());
    ours && !labels.get(LABEL_PID).is_some_and(|p| pid_alive(p))
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn selected(labels: &HashMap<String, String>, scope: &Scope) -> bool {
    match scope {
        Scope::Run(id) => labels.get(LABEL_RUN) == Some(id),
        Scope::Stale => owner_gone(labels),
    }
}

/// Removes hermetic's containers (force, with anonymous volumes) and volumes in `scope`.
pub async fn collect(engine: &Engine, scope: Scope) -> Result<Collected> {
    let mut out = Collected::default();
    for c in container::list(engine, "label", LABEL).await? {
        let labels = c.labels.clone().unwrap_or_default();
        if !selected(&labels, &scope) {
            continue;
        }
        if let Some(id) = c.id
            && container::remove(engine, &id).await?
        {
            out.containers.push(id);
        }
    }
    for v in container::list_volumes(engine, LABEL).await? {
        if selected(&v.labels, &scope) && container::remove_volume(engine, &v.name).await? {
            out.volumes.push(v.name);
        }
    }
    Ok(out)
}
