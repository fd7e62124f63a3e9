//! Docker endpoints: where a runner's engine is and how to reach it.
//!
//! The forms the docker CLI knows, read the same way: `unix:///path.sock`, `tcp://HOST:PORT`
//! (TLS when `DOCKER_TLS_VERIFY` is set, with `ca.pem`, `cert.pem`, `key.pem` from
//! `DOCKER_CERT_PATH` or `~/.docker`), `https://HOST:PORT` (always TLS) and
//! `ssh://[USER@]HOST[:PORT][/remote/docker.sock]`; each may carry a `docker+` prefix, and
//! `local` means `DOCKER_HOST` or the local socket.

use std::path::{Path, PathBuf};

/// The local engine's socket when `DOCKER_HOST` is unset.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Client certificate, key and the CA that signed the engine's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    /// `ca.pem`, `cert.pem` and `key.pem` in `dir`, as the docker CLI names them.
    pub fn in_dir(dir: &Path) -> Tls {
        Tls {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// From `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`, like the docker CLI: `None` unless
    /// `DOCKER_TLS_VERIFY` is set to something other than empty or `0`.
    pub fn from_env() -> Option<Tls> {
        let verify = std::env::var("DOCKER_TLS_VERIFY").ok()?;
        if verify.is_empty() || verify == "0" {
            return None;
        }
        Some(Tls::in_dir(&default_cert_dir()))
    }
}

/// `DOCKER_CERT_PATH`, else `~/.docker`.
pub fn default_cert_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CERT_PATH").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".docker"),
    }
}

/// How to reach one engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, over plain HTTP or TLS.
    Tcp {
        addr: String,
        tls: Option<Tls>,
    },
    /// The remote engine's socket, forwarded over ssh.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        socket: String,
    },
}

impl Endpoint {
    /// Parses an endpoint as written on the command line or in `hermetic.toml`. `tls`
    /// overrides what the environment says for `tcp://`.
    pub fn parse(spec: &str, tls: Option<Tls>) -> Result<Endpoint, String> {
        let spec = spec.strip_prefix("docker+").unwrap_or(spec);
        if spec == "local" {
            return match std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
                // `docker+local` too: parsing it again would never end.
                Some(h) if h.strip_prefix("docker+").unwrap_or(&h) != "local" => {
                    Endpoint::parse(&h, tls)
                }
                _ => Ok(Endpoint::Unix(DEFAULT_SOCKET.into())),
            };
        }
        if let Some(path) = spec.strip_prefix("unix://") {
            if path.is_empty() {
                return Err("unix:// needs a socket path, e.g. unix:///var/run/docker.sock".into());
            }
            return Ok(Endpoint::Unix(path.into()));
        }
        for (scheme, always_tls) in [("tcp://", false), ("http://", false), ("https://", true)] {
            if let Some(rest) = spec.strip_prefix(scheme) {
                let addr = rest.trim_end_matches('/');
                if addr.is_empty() || addr.contains('/') {
                    return Err(format!("{scheme} needs HOST:PORT and nothing after it"));
                }
                let tls = match (tls, scheme) {
                    (Some(t), _) => Some(t),
                    // Plain http:// never takes TLS from the environment.
                    (None, "http://") => None,
                    (None, _) => Tls::from_env(),
                };
                let tls = match tls {
                    None if always_tls => Some(Tls::in_dir(&default_cert_dir())),
                    t => t,
                };
                return Ok(Endpoint::Tcp {
                    addr: addr.into(),
                    tls,
                });
            }
        }
        if let Some(rest) = spec.strip_prefix("ssh://") {
            let (authority, socket) = match rest.find('/') {
                Some(i) => (&rest[..i], rest[i..].to_string()),
                None => (rest, DEFAULT_SOCKET.to_string()),
            };
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u.to_string()), h),
                None => (None, authority),
            };
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| format!("ssh port {p:?} is not a number"))?,
                    ),
                ),
                None => (hostport, None),
            };
            if host.is_empty() {
                return Err("ssh:// needs a host, e.g. ssh://builder@build-2.example".into());
            }
            return Ok(Endpoint::Ssh {
                user,
                host: host.into(),
                port,
                socket,
            });
        }
        Err(format!(
            "{spec:?} is not a Docker endpoint (local, unix://, tcp://, https:// or ssh://)"
        ))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp { addr, tls: None } => write!(f, "tcp://{addr}"),
            Endpoint::Tcp { addr, tls: Some(_) } => write!(f, "tcp://{addr} (TLS)"),
            Endpoint::Ssh {
                user,
                host,
                port,
                socket,
            } => {
                write!(f, "ssh://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                write!(f, "{host}")?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                if socket != DEFAULT_SOCKET {
                    write!(f, "{socket}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            Endpoint::parse("docker+unix:///tmp/d.sock", None),
            Ok(Endpoint::Unix("/tmp/d.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:2375", None),
            Ok(Endpoint::Tcp {
                addr: "127.0.0.1:2375".into(),
                tls: None
            })
        );
        let tls = Tls::in_dir(Path::new("/certs"));
        assert_eq!(
            Endpoint::parse("tcp://b2:2376", Some(tls.clone())),
            Ok(Endpoint::Tcp {
                addr: "b2:2376".into(),
                tls: Some(tls)
            })
        );
        assert!(matches!(
            Endpoint::parse("https://b2:2376", None),
            Ok(Endpoint::Tcp { tls: Some(_), .. })
        ));
        assert_eq!(
            Endpoint::parse("ssh://build@b3:2222/run/docker.sock", None),
            Ok(Endpoint::Ssh {
                user: Some("build".into()),
                host: "b3".into(),
                port: Some(2222),
                socket: "/run/docker.sock".into()
            })
        );
        assert_eq!(
            Endpoint::parse("ssh://b3", None),
            Ok(Endpoint::Ssh {
                user: None,
                host: "b3".into(),
                port: None,
                socket: DEFAULT_SOCKET.into()
            })
        );
        let e = Endpoint::parse("ssh://build@b3:2222/run/docker.sock", None);
        assert_eq!(
            e.map(|e| e.to_string()),
            Ok("ssh://build@b3:2222/run/docker.sock".to_string())
        );
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        for bad in [
            "b2:2376",
            "unix://",
            "tcp://",
            "tcp://b2:2376/path",
            "ssh://b3:port",
            "ssh://u@",
            "npipe:////./pipe/docker",
        ] {
            assert!(Endpoint::parse(bad, None).is_err(), "{bad}");
        }
    }
}
