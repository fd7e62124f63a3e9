//! What an engine failure means: worth retrying (the engine restarting, a connection it
//! refused, reset or closed, a gateway error, a timeout) or not (anything it answered on
//! purpose: 4xx, a missing image or container; TLS and permission failures; an answer
//! that is not HTTP or not JSON). Decided on the error values bollard, hyper and the
//! operating system give, never on message text.

use bollard::errors::Error as B;

/// Why a failure is worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transient {
    /// Nobody accepted the connection (the engine is starting, or restarting).
    Refused,
    /// The socket is gone (the engine removed it while restarting).
    SocketGone,
    /// The connection was reset, broken, or closed before the answer was complete: an
    /// engine restarting, or a keep-alive connection it dropped.
    Closed,
    /// No answer in time.
    Timeout,
    /// 502, 503 or 504: the engine or a proxy in front of it says "not now".
    Unavailable(u16),
}

/// What to do about a failed engine call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Transient(Transient),
    Permanent,
}

impl Fault {
    pub fn is_transient(self) -> bool {
        matches!(self, Fault::Transient(_))
    }
}

/// Classifies one engine error.
pub fn classify(e: &B) -> Fault {
    match e {
        B::DockerResponseServerError { status_code, .. } => match status_code {
            502..=504 => Fault::Transient(Transient::Unavailable(*status_code)),
            _ => Fault::Permanent,
        },
        B::RequestTimeoutError => Fault::Transient(Transient::Timeout),
        B::IOError { err } => io_fault(err).unwrap_or(Fault::Permanent),
        B::HyperResponseError { .. } | B::HyperLegacyError { .. } => {
            chain_fault(e).unwrap_or(Fault::Permanent)
        }
        // Everything else is the request itself, the answer's content, or the setup
        // (certificates, a socket path that does not exist at all).
        _ => Fault::Permanent,
    }
}

/// The first decisive error in `e`'s sources: TLS and permission failures are permanent
/// wherever they sit; hyper's and the OS's connection errors are transient.
fn chain_fault(e: &(dyn std::error::Error + 'static)) -> Option<Fault> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut decided = None;
    while let Some(err) = cur {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return Some(Fault::Permanent);
        }
        if decided.is_none() {
            if let Some(h) = err.downcast_ref::<hyper::Error>() {
                decided = hyper_fault(h);
            } else if let Some(io) = err.downcast_ref::<std::io::Error>() {
                // An io::Error may carry a TLS error inside (rustls reports that way).
                if io
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
                {
                    return Some(Fault::Permanent);
                }
                decided = io_fault(io);
            }
        }
        cur = err.source();
    }
    decided
}

fn hyper_fault(h: &hyper::Error) -> Option<Fault> {
    if h.is_parse() || h.is_user() || h.is_parse_status() {
        // Not HTTP, or a request hyper refused to send: trying again gives the same.
        return Some(Fault::Permanent);
    }
    if h.is_timeout() {
        return Some(Fault::Transient(Transient::Timeout));
    }
    if h.is_incomplete_message() || h.is_closed() || h.is_canceled() || h.is_body_write_aborted() {
        return Some(Fault::Transient(Transient::Closed));
    }
    // Other hyper errors wrap an io::Error: the caller looks further down.
    None
}

fn io_fault(e: &std::io::Error) -> Option<Fault> {
    use std::io::ErrorKind as K;
    Some(match e.kind() {
        K::ConnectionRefused => Fault::Transient(Transient::Refused),
        K::NotFound => Fault::Transient(Transient::SocketGone),
        K::ConnectionReset
        | K::ConnectionAborted
        | K::BrokenPipe
        | K::UnexpectedEof
        | K::NotConnected => Fault::Transient(Transient::Closed),
        K::TimedOut => Fault::Transient(Transient::Timeout),
        K::PermissionDenied => Fault::Permanent,
        _ => return None,
    })
}

/// One line for a message: what the engine answered, or how the connection failed.
pub fn describe(e: &B) -> String {
    match e {
        B::DockerResponseServerError {
            status_code,
            message,
        } => format!("the engine answered {status_code}: {}", message.trim()),
        B::RequestTimeoutError => "the engine did not answer in time".into(),
        other => crate::engine::error_chain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::Docker;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    /// A Unix socket "engine" whose every connection is handled by `answer` after the
    /// request head has arrived; the real bollard error of a ping against it comes back.
    async fn ping_against<F, Fut>(answer: F, timeout_secs: u64) -> B
    where
        F: Fn(tokio::net::UnixStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&sock).expect("bind");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                answer(s).await;
            }
        });
        let docker = Docker::connect_with_socket(
            &sock.to_string_lossy(),
            timeout_secs,
            bollard::API_DEFAULT_VERSION,
        )
        .expect("client");
        let e = docker.ping().await.expect_err("the fake engine fails");
        drop(dir);
        e
    }

    fn respond(
        status: &'static str,
        body: &'static str,
    ) -> impl Fn(
        tokio::net::UnixStream,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    + Send
    + 'static {
        move |mut s| {
            Box::pin(async move {
                let r = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(r.as_bytes()).await;
                let _ = s.shutdown().await;
            })
        }
    }

    #[tokio::test]
    async fn a_closed_connection_is_transient() {
        let e = ping_against(|s| async move { drop(s) }, 10).await;
        assert_eq!(classify(&e), Fault::Transient(Transient::Closed), "{e:?}");
    }

    #[tokio::test]
    async fn gateway_answers_are_transient_and_described() {
        let e = ping_against(
            respond(
                "503 Service Unavailable",
                r#"{"message":"engine restarting"}"#,
            ),
            10,
        )
        .await;
        assert_eq!(
            classify(&e),
            Fault::Transient(Transient::Unavailable(503)),
            "{e:?}"
        );
        assert_eq!(describe(&e), "the engine answered 503: engine restarting");
        let e = ping_against(respond("502 Bad Gateway", r#"{"message":"x"}"#), 10).await;
        assert_eq!(classify(&e), Fault::Transient(Transient::Unavailable(502)));
    }

    #[tokio::test]
    async fn answers_on_purpose_are_permanent() {
        for status in [
            "404 Not Found",
            "409 Conflict",
            "400 Bad Request",
            "500 Internal Server Error",
        ] {
            let e = ping_against(respond(status, r#"{"message":"no"}"#), 10).await;
            assert_eq!(classify(&e), Fault::Permanent, "{status}: {e:?}");
        }
    }

    #[tokio::test]
    async fn an_answer_that_is_not_http_is_permanent() {
        let e = ping_against(
            |mut s| async move {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
                let _ = s.shutdown().await;
            },
            10,
        )
        .await;
        assert_eq!(classify(&e), Fault::Permanent, "{e:?}");
    }

    #[tokio::test]
    async fn no_answer_in_time_is_transient() {
        let e = ping_against(
            |s| async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                drop(s)
            },
            1,
        )
        .await;
        assert_eq!(classify(&e), Fault::Transient(Transient::Timeout), "{e:?}");
    }

    #[tokio::test]
    async fn a_refused_or_vanished_socket_is_transient() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("engine.sock");
        // Bound, then closed: the file stays and nobody listens, as after an engine crash.
        drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind"));
        let docker =
            Docker::connect_with_socket(&sock.to_string_lossy(), 10, bollard::API_DEFAULT_VERSION)
                .expect("client");
        let e = docker.ping().await.expect_err("refused");
        assert_eq!(classify(&e), Fault::Transient(Transient::Refused), "{e:?}");
        std::fs::remove_file(&sock).expect("rm");
        let e = docker.ping().await.expect_err("gone");
        assert_eq!(
            classify(&e),
            Fault::Transient(Transient::SocketGone),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_tls_failure_is_permanent() {
        // A plain-text server that a TLS client reaches: the handshake fails in rustls.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nplain").await;
            }
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = test_certificates(dir.path());
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let docker = Docker::connect_with_ssl(
            &format!("tcp://{addr}"),
            &key,
            &cert,
            &ca,
            10,
            bollard::API_DEFAULT_VERSION,
        )
        .expect("client");
        let e = docker.ping().await.expect_err("not TLS");
        assert_eq!(classify(&e), Fault::Permanent, "{e:?}");
    }

    /// A CA and a client certificate made with openssl, as a docker user would have them.
    fn test_certificates(
        dir: &std::path::Path,
    ) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        let run = |args: &[&str]| {
            let ok = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "openssl {args:?}");
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=ca",
            "-days",
            "1",
        ]);
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "client.csr",
            "-subj",
            "/CN=client",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "1",
        ]);
        (
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
        )
    }
}
