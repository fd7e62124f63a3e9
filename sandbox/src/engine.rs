//! Connecting to a Docker engine, classifying its failures, and retrying the transient ones.

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::fault;
use crate::ssh;
use bollard::Docker;
use std::sync::Arc;
use std::time::Duration;

/// A connected, version-negotiated engine.
#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
    /// Where it was reached, for messages.
    pub host: String,
    // An ssh endpoint's tunnel lives as long as some handle to the engine does.
    _tunnel: Option<Arc<ssh::Tunnel>>,
}

impl Engine {
    /// Connects like the docker CLI: `DOCKER_HOST` if set, else the local socket. Probes the
    /// engine with a short ping so that a dead engine is one clear error, not a hang.
    pub async fn connect() -> Result<Engine> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "local".into());
        Engine::connect_to(&host).await
    }

    /// Connects to an endpoint as written on the command line (see [`Endpoint::parse`]).
    pub async fn connect_to(spec: &str) -> Result<Engine> {
        let endpoint = Endpoint::parse(spec, None).map_err(|detail| Error::BadDockerHost {
            value: spec.into(),
            detail,
        })?;
        Engine::connect_endpoint(&endpoint).await
    }

    /// Connects to an endpoint and checks that an engine answers there.
    pub async fn connect_endpoint(endpoint: &Endpoint) -> Result<Engine> {
        let host = endpoint.to_string();
        let mut tunnel = None;
        let docker = match endpoint {
            Endpoint::Unix(path) => Docker::connect_with_socket(
                &path.to_string_lossy(),
                120,
                bollard::API_DEFAULT_VERSION,
            ),
            Endpoint::Tcp { addr, tls: None } => Docker::connect_with_http(
                &format!("tcp://{addr}"),
                120,
                bollard::API_DEFAULT_VERSION,
            ),
            Endpoint::Tcp {
                addr,
                tls: Some(tls),
            } => {
                for f in [&tls.ca, &tls.cert, &tls.key] {
                    if !f.is_file() {
                        return Err(Error::TlsFiles {
                            host,
                            missing: f.clone(),
                        });
                    }
                }
                // One provider for the whole process; a second install is harmless.
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                Docker::connect_with_ssl(
                    &format!("tcp://{addr}"),
                    &tls.key,
                    &tls.cert,
                    &tls.ca,
                    120,
                    bollard::API_DEFAULT_VERSION,
                )
            }
            Endpoint::Ssh {
                user,
                host: ssh_host,
                port,
                socket,
            } => {
                let t = ssh::open(&host, user.as_deref(), ssh_host, *port, socket).await?;
                let docker = Docker::connect_with_socket(
                    &t.socket.to_string_lossy(),
                    120,
                    bollard::API_DEFAULT_VERSION,
                );
                tunnel = Some(Arc::new(t));
                docker
            }
        }
        .map_err(|e| classify_connect(&host, e))?
        .with_timeout(call_timeout());
        // The first call may meet an engine that is (re)starting: it is retried like every
        // other, with a shorter bound so that a stopped engine is reported soon.
        let policy = RetryPolicy::default();
        let probe = RetryPolicy {
            total: policy.total / 2,
            ..policy
        };
        let transient = |e: &bollard::errors::Error| fault::classify(e).is_transient();
        let pinged = retry_while(
            probe,
            async || match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
                Ok(r) => r,
                Err(_) => Err(bollard::errors::Error::RequestTimeoutError),
            },
            transient,
        )
        .await;
        if let Err(failed) = pinged {
            return Err(connect_failure(&host, failed));
        }
        // The engine may speak an older API than bollard's default (Debian's 20.10 speaks
        // 1.41): agree on the highest common version.
        let docker = retry_while(
            probe,
            async || docker.clone().negotiate_version().await,
            transient,
        )
        .await
        .map_err(|failed| connect_failure(&host, failed))?;
        Ok(Engine {
            docker,
            host,
            _tunnel: tunnel,
        })
    }
}

/// How long one engine call may wait for the engine's answer to begin
/// (`HERMETIC_ENGINE_TIMEOUT`, seconds; default 120). Streams (a build's log, its wait, a
/// download) are bounded by their stage's timeout instead, once the answer has begun.
pub fn call_timeout() -> Duration {
    std::env::var("HERMETIC_ENGINE_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(120))
}

/// The first calls failed: a transient failure that outlasted the retries says so, with
/// what the engine answered; anything else is classified as before.
fn connect_failure(host: &str, (e, attempts, elapsed): Failed<bollard::errors::Error>) -> Error {
    match fault::classify(&e) {
        fault::Fault::Transient(fault::Transient::Unavailable(_)) => Error::Transient {
            host: host.into(),
            op: "reach the engine".into(),
            attempts,
            elapsed,
            message: fault::describe(&e),
        },
        fault::Fault::Transient(_) => Error::EngineUnreachable {
            host: host.into(),
            detail: format!(
                "{} (retried {} times over {:.1} s)",
                fault::describe(&e),
                attempts.saturating_sub(1),
                elapsed.as_secs_f64()
            ),
        },
        fault::Fault::Permanent => classify_connect(host, e),
    }
}

fn classify_connect(host: &str, e: bollard::errors::Error) -> Error {
    use bollard::errors::Error as B;
    let chain = error_chain(&e);
    match &e {
        B::SocketNotFoundError(path) => Error::EngineUnreachable {
            host: host.into(),
            detail: format!("socket {path} does not exist"),
        },
        // A TLS-only engine answers plain HTTP with this 400.
        _ if chain.contains("HTTP request to an HTTPS server") => {
            Error::TlsRequired { host: host.into() }
        }
        _ if io_kind_in(&e, std::io::ErrorKind::PermissionDenied) => Error::PermissionDenied {
            socket: host.trim_start_matches("unix://").into(),
        },
        _ if chain.contains("Connection refused")
            || chain.contains("No such file")
            || chain.contains("connection error")
            || chain.contains("error trying to connect")
            || chain.contains("dns error")
            || chain.contains("failed to lookup") =>
        {
            Error::EngineUnreachable {
                host: host.into(),
                detail: chain,
            }
        }
        B::HttpClientError { .. } | B::HyperLegacyError { .. } => Error::EngineUnreachable {
            host: host.into(),
            detail: chain,
        },
        _ => Error::BadDockerHost {
            value: host.into(),
            detail: chain,
        },
    }
}

/// True if an OS error of `kind` is among `e`'s sources.
fn io_kind_in(e: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == kind)
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// The error and all its sources, joined: connection failures hide deep inside hyper.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        parts.push(c.to_string());
        cur = c.source();
    }
    parts.join(": ")
}

/// True for failures worth retrying (see [`fault::classify`]).
pub fn is_transient(e: &bollard::errors::Error) -> bool {
    fault::classify(e).is_transient()
}

/// Bounded exponential backoff with full jitter, within a total time.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
    /// No retry starts later than this after the first try: an engine that stays away
    /// longer is reported, not waited for.
    pub total: Duration,
}

impl Default for RetryPolicy {
    /// Up to 8 tries within 60 s (`HERMETIC_ENGINE_RETRY_SECS`): long enough for an
    /// engine to restart (a few seconds), short enough that a dead one is named within a
    /// minute.
    fn default() -> Self {
        let total = std::env::var("HERMETIC_ENGINE_RETRY_SECS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(60));
        RetryPolicy {
            attempts: 8,
            base: Duration::from_millis(250),
            max: Duration::from_secs(8),
            total,
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `n` (1-based): uniform in [0, min(max, base * 2^(n-1))].
    pub fn delay(&self, n: u32) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32 << (n.saturating_sub(1)).min(16))
            .min(self.max);
        cap.mul_f64(fastrand::f64())
    }
}

/// A call that failed for good: its last error, the tries made and the time spent.
pub type Failed<E> = (E, u32, Duration);

impl Engine {
    /// Makes one engine call (`op` names it for messages), retrying transient failures
    /// with the default policy; permanent ones come back at once.
    pub async fn call<T>(
        &self,
        op: &str,
        f: impl AsyncFnMut() -> std::result::Result<T, bollard::errors::Error>,
    ) -> Result<T> {
        retry(&self.host, op, RetryPolicy::default(), f).await
    }
}

/// How one try of a compound call (a stream fed from a process, a build) failed: at the
/// engine (retried when transient) or otherwise (never retried).
pub enum Attempt {
    Engine(bollard::errors::Error),
    Fatal(Error),
}

impl From<bollard::errors::Error> for Attempt {
    fn from(e: bollard::errors::Error) -> Self {
        Attempt::Engine(e)
    }
}

impl Engine {
    /// Like [`Engine::call`], for a call that is made again whole, from its start, after a
    /// transient failure (its body is made anew for each try).
    pub async fn call_whole<T>(
        &self,
        op: &str,
        f: impl AsyncFnMut() -> std::result::Result<T, Attempt>,
    ) -> Result<T> {
        let may_retry = |a: &Attempt| matches!(a, Attempt::Engine(e) if is_transient(e));
        match retry_while(RetryPolicy::default(), f, may_retry).await {
            Ok(v) => Ok(v),
            Err((Attempt::Fatal(e), ..)) => Err(e),
            Err((Attempt::Engine(e), tries, spent)) => {
                Err(failure(&self.host, op, (e, tries, spent)))
            }
        }
    }
}

/// Runs an engine call, retrying transient failures only. Permanent ones (4xx, a missing
/// image, a failed build) come back at once. `op` names the call for messages.
pub async fn retry<T>(
    host: &str,
    op: &str,
    policy: RetryPolicy,
    f: impl AsyncFnMut() -> std::result::Result<T, bollard::errors::Error>,
) -> Result<T> {
    retry_while(policy, f, is_transient)
        .await
        .map_err(|failed| failure(host, op, failed))
}

/// Ours, for a call that failed for good.
pub fn failure(
    host: &str,
    op: &str,
    (e, attempts, elapsed): Failed<bollard::errors::Error>,
) -> Error {
    if is_transient(&e) {
        Error::Transient {
            host: host.into(),
            op: op.into(),
            attempts,
            elapsed,
            message: fault::describe(&e),
        }
    } else {
        permanent(op, e)
    }
}

/// Runs `f` again, after a backoff, while it fails with an error that `may_retry` accepts
/// and `policy` has attempts and time left. The last error comes back with the tries made
/// and the time spent.
pub async fn retry_while<T, E>(
    policy: RetryPolicy,
    mut f: impl AsyncFnMut() -> std::result::Result<T, E>,
    may_retry: impl Fn(&E) -> bool,
) -> std::result::Result<T, Failed<E>> {
    let started = std::time::Instant::now();
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if may_retry(&e) && attempt < policy.attempts => {
                let delay = policy.delay(attempt);
                if started.elapsed() + delay > policy.total {
                    return Err((e, attempt, started.elapsed()));
                }
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err((e, attempt, started.elapsed())),
        }
    }
}

/// Turns a non-retryable engine error into ours.
pub fn permanent(op: &str, e: bollard::errors::Error) -> Error {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError {
            status_code,
            message,
        } => Error::Engine {
            op: op.into(),
            status: status_code,
            message,
        },
        other => Error::Engine {
            op: op.into(),
            status: 0,
            message: error_chain(&other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let p = RetryPolicy::default();
        for n in 1..10 {
            assert!(p.delay(n) <= p.max);
        }
        assert!(p.delay(1) <= p.base);
    }

    /// Retries stop at success, at an error that may not be retried, or when the attempts
    /// are spent; the attempts made come back with the error.
    #[tokio::test]
    async fn retry_while_counts_and_stops() {
        let policy = RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
            total: Duration::from_secs(10),
        };
        let mut calls = 0;
        let ok = retry_while(
            policy,
            async || {
                calls += 1;
                if calls < 3 { Err("again") } else { Ok(calls) }
            },
            |e| *e == "again",
        )
        .await;
        assert_eq!(ok.map_err(|e| e.0), Ok(3));
        let mut calls = 0;
        let stop = retry_while(
            policy,
            async || -> std::result::Result<(), &str> {
                calls += 1;
                Err(if calls < 2 { "again" } else { "final" })
            },
            |e| *e == "again",
        )
        .await;
        assert_eq!(stop.map_err(|(e, n, _)| (e, n)), Err(("final", 2)));
        let spent = retry_while(
            policy,
            async || -> std::result::Result<(), &str> { Err("again") },
            |e| *e == "again",
        )
        .await;
        assert_eq!(spent.map_err(|(e, n, _)| (e, n)), Err(("again", 4)));
        // The total bound stops retries before the attempts are spent.
        let slow = RetryPolicy {
            attempts: 100,
            base: Duration::from_millis(40),
            max: Duration::from_millis(40),
            total: Duration::from_millis(200),
        };
        let started = std::time::Instant::now();
        let bounded = retry_while(
            slow,
            async || -> std::result::Result<(), &str> { Err("again") },
            |e| *e == "again",
        )
        .await;
        // Far fewer tries than allowed: the total bound stopped them. (No bound on the time
        // itself: on a loaded machine sleeps overrun, and that is not what is tested.)
        let (_, tries, _) = bounded.expect_err("gives up");
        assert!(tries < 100, "{tries}");
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn classification() {
        use bollard::errors::Error as B;
        let server = |status_code| B::DockerResponseServerError {
            status_code,
            message: String::new(),
        };
        assert!(is_transient(&server(503)));
        assert!(!is_transient(&server(404)));
        assert!(!is_transient(&server(409)));
        assert!(!is_transient(&server(400)));
        assert!(is_transient(&B::RequestTimeoutError));
    }

    #[tokio::test]
    async fn retries_transient_then_gives_up_and_never_retries_permanent() {
        let fast = RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
            total: Duration::from_secs(10),
        };
        let mut calls = 0;
        let r: Result<()> = retry("unix:///e.sock", "ping", fast, || {
            calls += 1;
            async {
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 503,
                    message: "restarting".into(),
                })
            }
        })
        .await;
        assert!(matches!(r, Err(Error::Transient { attempts: 3, .. })));
        let msg = r.map_err(|e| e.to_string()).expect_err("transient");
        assert!(
            msg.starts_with("unix:///e.sock: could not ping: the engine answered 503: restarting (retried 2 times over"),
            "{msg}"
        );
        assert_eq!(calls, 3);

        let mut calls = 0;
        let r: Result<()> = retry("unix:///e.sock", "inspect", fast, || {
            calls += 1;
            async {
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    message: "no such image".into(),
                })
            }
        })
        .await;
        assert!(matches!(r, Err(Error::Engine { status: 404, .. })));
        assert_eq!(calls, 1);
    }
}
