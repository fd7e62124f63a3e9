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
/// `BOOT_ID/PID_NAMESPACE/PID/START_TIME` of the owning process: which process on which
/// boot of which machine, so that a run is never taken for abandoned by another host or pid
/// namespace that shares the host name, nor after its pid was reused.
pub const LABEL_OWNER: &str = "hermetic.owner";

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
        let mut labels = owner_labels();
        labels.insert(LABEL.to_string(), "1".to_string());
        labels.insert(LABEL_RUN.to_string(), self.0.clone());
        labels
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

/// The labels that name this process as the owner of what it creates.
pub fn owner_labels() -> HashMap<String, String> {
    let pid = std::process::id();
    let mut labels = HashMap::from([
        (LABEL_PID.to_string(), pid.to_string()),
        (LABEL_HOST.to_string(), host_name()),
    ]);
    if let Some(owner) = Owner::of(pid) {
        labels.insert(LABEL_OWNER.to_string(), owner.to_string());
    }
    labels
}

/// A process, told apart from every other: boot, pid namespace, pid and start time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub boot_id: String,
    pub pid_ns: String,
    pub pid: u32,
    /// Clock ticks after boot when the process started (`/proc/PID/stat` field 22).
    pub start: u64,
}

impl Owner {
    /// The process `pid` as this process sees it (its pid namespace is ours).
    pub fn of(pid: u32) -> Option<Owner> {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let pid_ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
        Some(Owner {
            boot_id: boot_id.trim().to_string(),
            pid_ns: pid_ns.to_string_lossy().into_owned(),
            pid,
            start: start_time(pid)?,
        })
    }

    pub fn parse(label: &str) -> Option<Owner> {
        let mut parts = label.split('/');
        let owner = Owner {
            boot_id: parts.next()?.to_string(),
            pid_ns: parts.next()?.to_string(),
            pid: parts.next()?.parse().ok()?,
            start: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(owner)
    }

    /// Whether this process can tell that the owner is gone: only when it shares the boot
    /// and the pid namespace; then the owner is gone if its pid is not running or now
    /// belongs to a process that started at another time.
    pub fn gone(&self) -> bool {
        let Some(here) = Owner::of(std::process::id()) else {
            return false;
        };
        if here.boot_id != self.boot_id || here.pid_ns != self.pid_ns {
            return false;
        }
        !pid_alive(&self.pid.to_string()) || start_time(self.pid) != Some(self.start)
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.boot_id, self.pid_ns, self.pid, self.start
        )
    }
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (the state).
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
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
    if let Some(owner) = labels.get(LABEL_OWNER) {
        // A label that does not parse names no process of ours: left alone.
        return Owner::parse(owner).is_some_and(|o| o.gone());
    }
    // Made by a version without the owner label: by host name and pid, as it was.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_abandoned_only_when_its_own_process_is_gone() {
        let me = Owner::of(std::process::id()).expect("this process");
        assert_eq!(Owner::parse(&me.to_string()), Some(me.clone()));
        assert!(!me.gone(), "this process is running");
        // The same pid, started at another time: the pid was reused, the owner is gone.
        let reused = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(reused.gone());
        // A dead child of ours.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = Owner::of(child.id()).expect("child");
        child.wait().expect("wait");
        assert!(dead.gone());
        // Another boot, or another pid namespace sharing the host name: not ours to judge.
        for other in [
            Owner {
                boot_id: "another-boot".into(),
                ..reused.clone()
            },
            Owner {
                pid_ns: "pid:[1]".into(),
                ..reused.clone()
            },
        ] {
            assert!(!other.gone(), "{other}");
            let labels = HashMap::from([(LABEL_OWNER.to_string(), other.to_string())]);
            assert!(!owner_gone(&labels));
        }
        // Unparsable: left alone. Legacy labels: by host name and pid.
        let labels = HashMap::from([(LABEL_OWNER.to_string(), "garbage".to_string())]);
        assert!(!owner_gone(&labels));
        let legacy = HashMap::from([
            (LABEL_HOST.to_string(), host_name()),
            (LABEL_PID.to_string(), dead.pid.to_string()),
        ]);
        assert!(owner_gone(&legacy) || pid_alive(&dead.pid.to_string()));
    }
}
