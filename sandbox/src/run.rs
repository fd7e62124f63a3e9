//! Run identity, labels, and garbage collection of what killed runs left behind.
//!
//! Every container and volume hermetic creates carries `hermetic.run` (this run's id),
//! `hermetic.pid` and `hermetic.host` (the process and machine that own it). A resource whose
//! owning process is gone from this machine is stale, and any run removes stale ones at
//! start; `hermetic gc` does it on demand.

use crate::engine::{Engine, RetryPolicy, retry};
use crate::error::Result;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
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

fn selected(labels: &HashMap<String, String>, scope: &Scope) -> bool {
    match scope {
        Scope::Run(id) => labels.get(LABEL_RUN) == Some(id),
        Scope::Stale => {
            let ours = labels.get(LABEL_HOST).is_some_and(|h| *h == host_name());
            ours && !labels.get(LABEL_PID).is_some_and(|p| pid_alive(p))
        }
    }
}

/// Removes hermetic's containers (force, with anonymous volumes) and volumes in `scope`.
pub async fn collect(engine: &Engine, scope: Scope) -> Result<Collected> {
    let policy = RetryPolicy::default();
    let filters = HashMap::from([("label".to_string(), vec![LABEL.to_string()])]);
    let containers = retry("list containers", policy, || {
        engine.docker.list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
    })
    .await?;
    let mut out = Collected::default();
    for c in containers {
        let labels = c.labels.clone().unwrap_or_default();
        if !selected(&labels, &scope) {
            continue;
        }
        let Some(id) = c.id else { continue };
        let removed = engine
            .docker
            .remove_container(
                &id,
                Some(
                    RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await;
        match removed {
            Ok(()) => out.containers.push(id),
            // Already gone (removed concurrently): nothing to do.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => {}
            Err(e) => return Err(crate::engine::permanent("remove a container", e)),
        }
    }
    let volumes = retry("list volumes", policy, || {
        engine.docker.list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
    })
    .await?;
    for v in volumes.volumes.unwrap_or_default() {
        if !selected(&v.labels, &scope) {
            continue;
        }
        let removed = engine
            .docker
            .remove_volume(
                &v.name,
                Some(RemoveVolumeOptionsBuilder::default().force(true).build()),
            )
            .await;
        match removed {
            Ok(()) => out.volumes.push(v.name),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => {}
            Err(e) => return Err(crate::engine::permanent("remove a volume", e)),
        }
    }
    Ok(out)
}
