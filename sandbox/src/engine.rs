//! Connecting to a Docker engine, classifying its failures, and retrying the transient ones.

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
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
        .map_err(|e| classify_connect(&host, e))?;
        match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
            Err(_) => {
                return Err(Error::EngineUnreachable {
                    host,
                    detail: "no answer to a ping within 5 s".into(),
                });
            }
            Ok(Err(e)) => return Err(classify_connect(&host, e)),
            Ok(Ok(_)) => {}
        }
        // The engine may speak an older API than bollard's default (Debian's 20.10 speaks
        // 1.41): agree on the highest common version.
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| classify_connect(&host, e))?;
        Ok(Engine {
            docker,
            host,
            _tunnel: tunnel,
        })
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
        _ if chain.contains("Permission denied") || chain.contains("permission denied") => {
            Error::PermissionDenied {
                socket: host.trim_start_matches("unix://").into(),
            }
        }
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

/// True for failures worth retrying: the engine restarting, refusing or resetting
/// connections, 5xx other than a plain 500, timeouts. Never for 4xx.
pub fn is_transient(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError { status_code, .. } => {
            matches!(status_code, 502..=504)
        }
        B::RequestTimeoutError => true,
        B::HyperResponseError { .. } | B::HttpClientError { .. } | B::IOError { .. } => true,
        _ => {
            let chain = error_chain(e);
            chain.contains("Connection refused")
                || chain.contains("Connection reset")
                || chain.contains("broken pipe")
                || chain.contains("Broken pipe")
        }
    }
}

/// Bounded exponential backoff with full jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
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

/// Runs an engine call, retrying transient failures only. Permanent ones (4xx, a missing
/// image, a failed build) come back at once. `op` names the call for messages.
pub async fn retry<T>(
    op: &str,
    policy: RetryPolicy,
    f: impl AsyncFnMut() -> std::result::Result<T, bollard::errors::Error>,
) -> Result<T> {
    match retry_while(policy, f, is_transient).await {
        Ok(v) => Ok(v),
        Err((e, attempts)) if is_transient(&e) => Err(Error::Transient {
            op: op.into(),
            attempts,
            message: error_chain(&e),
        }),
        Err((e, _)) => Err(permanent(op, e)),
    }
}

/// Runs `f` again, after a backoff, while it fails with an error that `may_retry` accepts
/// and `policy` has attempts left. The last error comes back with the attempts made.
pub async fn retry_while<T, E>(
    policy: RetryPolicy,
    mut f: impl AsyncFnMut() -> std::result::Result<T, E>,
    may_retry: impl Fn(&E) -> bool,
) -> std::result::Result<T, (E, u32)> {
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if may_retry(&e) && attempt < policy.attempts => {
                tokio::time::sleep(policy.delay(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err((e, attempt)),
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
        assert_eq!(ok, Ok(3));
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
        assert_eq!(stop, Err(("final", 2)));
        let spent = retry_while(
            policy,
            async || -> std::result::Result<(), &str> { Err("again") },
            |e| *e == "again",
        )
        .await;
        assert_eq!(spent, Err(("again", 4)));
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
        };
        let mut calls = 0;
        let r: Result<()> = retry("ping", fast, || {
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
        assert_eq!(calls, 3);

        let mut calls = 0;
        let r: Result<()> = retry("inspect", fast, || {
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
