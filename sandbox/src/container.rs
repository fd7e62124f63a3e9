//! Hardened containers: the isolation every hermetic container gets, running them with
//! timeouts, and moving files in and out through the API (no bind mounts, so remote engines
//! work too).

use crate::engine::{Engine, RetryPolicy, failure, is_transient, permanent, retry_while};
use crate::error::{Error, Result};
use crate::run::RunId;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, HostConfig, HostConfigLogConfig, Mount, MountType,
    ResourcesUlimits, Volume,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, KillContainerOptions,
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, UploadToContainerOptionsBuilder,
    WaitContainerOptions,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

/// Resource limits of a build container.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Limits {
    pub memory_bytes: i64,
    pub pids: i64,
    /// CPUs visible to the build (`cpuset_cpus`, e.g. `0` or `0-1`); all when `None`.
    pub cpuset: Option<String>,
    /// Largest output binary hermetic takes back (`--max-output-mib`).
    pub output_bytes: u64,
    /// All output binaries together (`--max-outputs-total-mib`); also the largest file the
    /// build may write (`ulimit -f`).
    pub outputs_total_bytes: u64,
    /// Largest build log kept (`--max-log-mib`); the rest is counted, not kept.
    pub log_bytes: u64,
}

/// The longest log line kept whole; a longer one is cut (the log says so).
pub const LOG_LINE_BYTES: usize = 64 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 8 << 30,
            pids: 4096,
            cpuset: None,
            output_bytes: 4 << 30,
            outputs_total_bytes: 16 << 30,
            log_bytes: 256 << 20,
        }
    }
}

/// The isolation every hermetic container gets: no network, nothing to escalate with, a
/// root filesystem nobody can write, and bounded resources.
pub fn hardened_host_config(mounts: Vec<Mount>, limits: &Limits) -> HostConfig {
    HostConfig {
        network_mode: Some("none".into()),
        // Even the resolver configuration points nowhere but the sandbox's own loopback.
        dns: Some(vec!["127.0.0.1".into()]),
        readonly_rootfs: Some(true),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        pids_limit: Some(limits.pids),
        memory: Some(limits.memory_bytes),
        memory_swap: Some(limits.memory_bytes),
        cpuset_cpus: limits.cpuset.clone(),
        // No file larger than all outputs together may be (a sparse terabyte "binary"
        // would fill the engine's disk), and no core dumps.
        ulimits: Some(vec![
            ResourcesUlimits {
                name: Some("fsize".into()),
                soft: Some(i64::try_from(limits.outputs_total_bytes).unwrap_or(i64::MAX)),
                hard: Some(i64::try_from(limits.outputs_total_bytes).unwrap_or(i64::MAX)),
            },
            ResourcesUlimits {
                name: Some("core".into()),
                soft: Some(0),
                hard: Some(0),
            },
        ]),
        // The engine's own copy of the log is bounded too, at twice what hermetic keeps:
        // the engine truncates its file when it is full, and a reader that falls behind
        // then loses what was in it, so it must not be full before hermetic's cut.
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([
                (
                    "max-size".to_string(),
                    format!("{}m", (limits.log_bytes >> 19).max(2)),
                ),
                ("max-file".to_string(), "1".to_string()),
            ])),
        }),
        // Build scripts run from target/ and write to /tmp: both must allow exec.
        tmpfs: Some(HashMap::from([(
            "/tmp".to_string(),
            "rw,exec,nosuid,size=1g".to_string(),
        )])),
        mounts: Some(mounts),
        ..Default::default()
    }
}

pub fn volume_mount(volume: &str, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.into()),
        source: Some(volume.into()),
        typ: Some(MountType::VOLUME),
        read_only: Some(read_only),
        ..Default::default()
    }
}

/// Creates a named volume carrying `labels` (a run's, or the cache's).
pub async fn create_volume(
    engine: &Engine,
    name: &str,
    labels: HashMap<String, String>,
) -> Result<()> {
    let body = bollard::models::VolumeCreateRequest {
        name: Some(name.into()),
        labels: Some(labels),
        ..Default::default()
    };
    // Creating a volume that exists answers with it: a retry after a lost answer is safe.
    engine
        .call("create a volume", || {
            engine.docker.create_volume(body.clone())
        })
        .await?;
    Ok(())
}

/// Creates a container named `name`. A try whose answer was lost may have created it: the
/// retry then meets "name in use" (409), and the container of that name is taken as this
/// one if it carries the same labels (a run's labels name its process), refused otherwise.
pub async fn create(engine: &Engine, name: &str, body: ContainerCreateBody) -> Result<String> {
    let opts = CreateContainerOptionsBuilder::default().name(name).build();
    let mut lost = false;
    let created = retry_while(
        RetryPolicy::default(),
        async || {
            let r = engine
                .docker
                .create_container(Some(opts.clone()), body.clone())
                .await;
            lost |= r.as_ref().is_err_and(is_transient);
            r
        },
        is_transient,
    )
    .await;
    match created {
        Ok(r) => Ok(r.id),
        Err((
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            },
            ..,
        )) => Err(Error::ImageMissing {
            reference: body.image.unwrap_or_default(),
            host: engine.host.clone(),
        }),
        Err((
            e @ bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            },
            ..,
        )) if lost => {
            let found = engine
                .call("inspect a container", || {
                    engine.docker.inspect_container(name, None)
                })
                .await?;
            let labels = found.config.and_then(|c| c.labels).unwrap_or_default();
            let ours = body
                .labels
                .as_ref()
                .is_some_and(|want| want.iter().all(|(k, v)| labels.get(k) == Some(v)));
            match found.id {
                Some(id) if ours => Ok(id),
                _ => Err(permanent("create a container", e)),
            }
        }
        Err(failed) => Err(failure(&engine.host, "create a container", failed)),
    }
}

/// Removes a container (forced, with its anonymous volumes). `false`: it was gone already
/// (also when a try whose answer was lost removed it), or is being removed concurrently.
pub async fn remove(engine: &Engine, id: &str) -> Result<bool> {
    let opts = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    let r = engine
        .call("remove a container", || {
            engine.docker.remove_container(id, Some(opts.clone()))
        })
        .await;
    removed(r)
}

/// Removes a volume. `false`: it was gone already, or a container still mounts it (left for
/// later).
pub async fn remove_volume(engine: &Engine, name: &str) -> Result<bool> {
    let opts = RemoveVolumeOptionsBuilder::default().force(true).build();
    let r = engine
        .call("remove a volume", || {
            engine.docker.remove_volume(name, Some(opts.clone()))
        })
        .await;
    removed(r)
}

/// A removal's answer: `false` if the thing was gone already (404) or is in use or being
/// removed (409).
fn removed(answer: Result<()>) -> Result<bool> {
    match answer {
        Ok(()) => Ok(true),
        Err(Error::Engine {
            status: 404 | 409, ..
        }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Containers in any state matching one filter (`label`, `volume`, ...).
pub async fn list(engine: &Engine, filter: &str, value: &str) -> Result<Vec<ContainerSummary>> {
    let filters = HashMap::from([(filter.to_string(), vec![value.to_string()])]);
    engine
        .call("list containers", || {
            engine.docker.list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
        })
        .await
}

/// Volumes carrying `label`.
pub async fn list_volumes(engine: &Engine, label: &str) -> Result<Vec<Volume>> {
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let listed = engine
        .call("list volumes", || {
            engine.docker.list_volumes(Some(
                ListVolumesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
        })
        .await?;
    Ok(listed.volumes.unwrap_or_default())
}

/// Uploads a tar archive and unpacks it at `dest` (a volume path: the root filesystem is
/// read-only).
/// Unpacking the same archive again gives the same files, so a retry re-sends it whole.
pub async fn upload(engine: &Engine, id: &str, dest: &str, bytes: bytes::Bytes) -> Result<()> {
    engine
        .call("upload files", || {
            engine.docker.upload_to_container(
                id,
                Some(
                    UploadToContainerOptionsBuilder::default()
                        .path(dest)
                        .build(),
                ),
                bollard::body_full(bytes.clone()),
            )
        })
        .await
}

/// Why streaming a file out stopped.
pub enum StreamError {
    /// The engine failed, after `attempts` tries.
    Engine {
        error: bollard::errors::Error,
        attempts: u32,
    },
    /// The path is missing or not a regular file.
    NotAFile(String),
    /// The receiver failed (e.g. writing to disk).
    Sink(std::io::Error),
}

/// Where the single file of a download goes: its size once its tar header has arrived,
/// then its bytes as they arrive.
pub trait FileSink {
    fn begin(&mut self, size: u64) -> std::io::Result<()>;
    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

/// Streams the regular file at `path` out of a container into `sink`, without holding it
/// in memory. A transient failure is retried only until the sink has seen the file begin:
/// after that, a retry would hand it the same bytes twice.
pub async fn download_file(
    engine: &Engine,
    id: &str,
    path: &str,
    sink: &mut dyn FileSink,
) -> std::result::Result<(), StreamError> {
    let started = std::cell::Cell::new(false);
    retry_while(
        RetryPolicy::default(),
        async || stream_file(engine, id, path, sink, &started).await,
        |e| !started.get() && matches!(e, StreamError::Engine { error, .. } if is_transient(error)),
    )
    .await
    .map_err(|(e, attempts, _)| match e {
        StreamError::Engine { error, .. } => StreamError::Engine { error, attempts },
        other => other,
    })
}

async fn stream_file(
    engine: &Engine,
    id: &str,
    path: &str,
    sink: &mut dyn FileSink,
    started: &std::cell::Cell<bool>,
) -> std::result::Result<(), StreamError> {
    let mut stream = engine.docker.download_from_container(
        id,
        Some(
            DownloadFromContainerOptionsBuilder::default()
                .path(path)
                .build(),
        ),
    );
    let mut parser = SingleFileTar::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message,
            } => StreamError::NotAFile(message),
            error => StreamError::Engine { error, attempts: 1 },
        })?;
        if parser.feed(&chunk, sink, started)? {
            return Ok(());
        }
    }
    parser.end()
}

/// Reads the engine's tar of one file as it arrives (hostile: any bytes): optional
/// extension headers, then the file's header and its bytes, handed to the sink without
/// holding them. Anything else is "not a file".
#[derive(Debug, Default)]
pub struct SingleFileTar {
    pending: Vec<u8>,
    skip: u64,
    remaining: Option<u64>,
}

impl SingleFileTar {
    /// Takes the next bytes; `Ok(true)` once the whole file has gone to `sink` (the rest is
    /// padding and the end-of-archive blocks).
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        sink: &mut dyn FileSink,
        started: &std::cell::Cell<bool>,
    ) -> std::result::Result<bool, StreamError> {
        while !bytes.is_empty() {
            if let Some(left) = self.remaining {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                sink.data(&bytes[..n]).map_err(StreamError::Sink)?;
                self.remaining = Some(left - n as u64);
                if left == n as u64 {
                    return Ok(true);
                }
                bytes = &bytes[n..];
                continue;
            }
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.skip -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let n = (512 - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.pending.len() < 512 {
                continue;
            }
            let header = tar::Header::from_byte_slice(&self.pending);
            if self.pending.iter().all(|b| *b == 0) {
                return Err(StreamError::NotAFile("an empty archive".into()));
            }
            let size = header
                .entry_size()
                .map_err(|e| StreamError::NotAFile(e.to_string()))?;
            let kind = header.entry_type();
            self.pending.clear();
            if kind.is_file() {
                started.set(true);
                sink.begin(size).map_err(StreamError::Sink)?;
                if size == 0 {
                    return Ok(true);
                }
                self.remaining = Some(size);
            } else if kind.is_pax_global_extensions()
                || kind.is_pax_local_extensions()
                || kind.is_gnu_longname()
                || kind.is_gnu_longlink()
            {
                // An extension header's size is the archive's word: rounded up to whole
                // blocks without overflowing.
                self.skip = size.div_ceil(512).saturating_mul(512);
            } else {
                return Err(StreamError::NotAFile(format!("a {kind:?} entry")));
            }
        }
        Ok(false)
    }

    /// The stream ended before the file was complete.
    pub fn end(self) -> std::result::Result<(), StreamError> {
        match self.remaining {
            // The connection ended early: an engine failure, not a missing file.
            Some(left) => Err(StreamError::Engine {
                error: bollard::errors::Error::IOError {
                    err: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the download ended {left} bytes short"),
                    ),
                },
                attempts: 1,
            }),
            None => Err(StreamError::NotAFile("no file in the archive".into())),
        }
    }
}

/// Starts a container; starting one that a lost try already started answers 304, which
/// is success.
pub async fn start(engine: &Engine, id: &str) -> Result<()> {
    engine
        .call("start a container", || {
            engine
                .docker
                .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        })
        .await
}

/// How waiting for a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// It exited with this code, and the wait was never broken.
    Exited(i64),
    /// It exited with this code, but the connection broke while waiting (the engine may
    /// have restarted and stopped it): the caller decides whether the exit was the build's.
    ExitedAfterBreak(i64),
    /// It ran past the timeout and was killed.
    TimedOut,
}

/// Waits for a container to exit, at most `timeout`; on timeout it is killed. A wait whose
/// connection breaks is made again (waiting has no effect), within the retry policy.
pub async fn wait(engine: &Engine, id: &str, timeout: Duration) -> Result<Waited> {
    // The shared retry: a wait has no effect, so a broken one is simply made again.
    let waiting = async {
        let mut tries = 0;
        let waited = retry_while(
            RetryPolicy::default(),
            async || {
                tries += 1;
                let mut stream = engine
                    .docker
                    .wait_container(id, None::<WaitContainerOptions>);
                match stream.next().await {
                    Some(Ok(r)) => Ok(r.status_code),
                    // bollard reports a non-zero exit as an error carrying the code.
                    Some(Err(bollard::errors::Error::DockerContainerWaitError {
                        code, ..
                    })) => Ok(code),
                    Some(Err(e)) => Err(e),
                    None => Err(bollard::errors::Error::IOError {
                        err: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the engine closed the wait stream without a status",
                        ),
                    }),
                }
            },
            is_transient,
        )
        .await;
        waited
            .map(|code| (code, tries > 1))
            .map_err(|failed| failure(&engine.host, "wait for a container", failed))
    };
    match tokio::time::timeout(timeout, waiting).await {
        Ok(Ok((code, false))) => Ok(Waited::Exited(code)),
        Ok(Ok((code, true))) => Ok(Waited::ExitedAfterBreak(code)),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            let _ = engine
                .call("kill a container", || {
                    engine
                        .docker
                        .kill_container(id, None::<KillContainerOptions>)
                })
                .await;
            Ok(Waited::TimedOut)
        }
    }
}

/// Follows a container's output, handing each chunk to `sink`, until it exits. A stream
/// that breaks is asked for again, and the bytes already handed over are skipped (the
/// engine replays the log from its start, in the same order).
pub async fn follow_logs(engine: &Engine, id: &str, mut sink: impl FnMut(&[u8])) {
    let policy = RetryPolicy::default();
    let started = std::time::Instant::now();
    let mut handed: u64 = 0;
    let mut tries = 1;
    loop {
        let mut stream = engine.docker.logs(
            id,
            Some(
                LogsOptionsBuilder::default()
                    .follow(true)
                    .stdout(true)
                    .stderr(true)
                    .build(),
            ),
        );
        let mut seen: u64 = 0;
        let broke = loop {
            match stream.next().await {
                Some(Ok(chunk)) => {
                    let bytes = chunk.into_bytes();
                    let skip = usize::try_from(handed.saturating_sub(seen))
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    seen += bytes.len() as u64;
                    if skip < bytes.len() {
                        sink(&bytes[skip..]);
                        handed = seen;
                    }
                }
                Some(Err(e)) if is_transient(&e) => break true,
                Some(Err(_)) | None => break false,
            }
        };
        let delay = policy.delay(tries);
        if !broke || tries >= policy.attempts || started.elapsed() + delay > policy.total {
            return;
        }
        tries += 1;
        tokio::time::sleep(delay).await;
    }
}

/// Runs `cmd` once in a hardened container of `image` and returns (exit code, output).
/// For short probes such as `rustc -vV`.
pub async fn run_probe(
    engine: &Engine,
    run: &RunId,
    image: &str,
    cmd: &[&str],
) -> Result<(i64, String)> {
    let name = format!("hermetic-{}-probe-{:04x}", run.0, fastrand::u16(..));
    let body = ContainerCreateBody {
        image: Some(image.into()),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        user: Some("10001:10001".into()),
        labels: Some(run.labels()),
        host_config: Some(hardened_host_config(vec![], &Limits::default())),
        ..Default::default()
    };
    let id = create(engine, &name, body).await?;
    let result = async {
        start(engine, &id).await?;
        let code = match wait(engine, &id, Duration::from_secs(60)).await? {
            Waited::Exited(c) | Waited::ExitedAfterBreak(c) => Some(c),
            Waited::TimedOut => None,
        };
        // The engine's answer, bounded in size and time: a hostile engine may stream
        // without end.
        const MAX_PROBE_OUTPUT: usize = 64 << 10;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(60),
            follow_logs(engine, &id, |b| {
                let room = MAX_PROBE_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&b[..b.len().min(room)]);
            }),
        )
        .await;
        Ok::<_, Error>((
            code.unwrap_or(-1),
            String::from_utf8_lossy(&out).into_owned(),
        ))
    }
    .await;
    remove(engine, &id).await?;
    result
}
