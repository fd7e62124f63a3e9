//! A fault-injecting proxy on a Unix socket in front of a Docker engine: each request it
//! forwards goes to the engine on its own connection (it asks for `Connection: close`, so
//! every client connection carries exactly one request and requests can be counted); the
//! requests a plan selects are answered with a fault instead, and never reach the engine.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a faulted request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The connection is closed once the request head has arrived, with no answer (what
    /// hyper sees when an engine drops a pooled keep-alive connection, or restarts).
    Close,
    /// `503 Service Unavailable`, "engine restarting".
    Unavailable,
    /// Held without an answer for this long, then closed.
    Delay(Duration),
    /// Image lookups are answered 404 "No such image"; other requests are not faulted.
    NoImages,
    /// The request reaches the engine and takes effect, but its answer is lost: the
    /// connection is closed once the engine has answered (a create that happened, though
    /// the client never heard).
    Lose,
    /// A hostile engine: image lookups are answered with the real answer, its `Id` replaced
    /// by this string. Other requests are not faulted.
    ImageId(&'static str),
}

/// Which requests are faulted: after `pass` requests have gone through, every `every`-th
/// one, starting `phase` requests in. `every == 1` faults every request after `pass`;
/// [`Plan::once`] faults only request number `pass`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub mode: Mode,
    pub pass: usize,
    pub every: usize,
    pub phase: usize,
    /// Only calls of this kind ([`Seen::call`]) are counted and faulted: concurrent calls
    /// arrive in any order, so a position alone does not pick one.
    pub only: Option<&'static str>,
}

impl Plan {
    /// Request number `n` (from 0) is faulted, and no other.
    pub fn once(mode: Mode, n: usize) -> Plan {
        Plan {
            mode,
            pass: n,
            every: usize::MAX,
            phase: 0,
            only: None,
        }
    }

    /// The first call of kind `call` is faulted, and no other.
    pub fn first(mode: Mode, call: &'static str) -> Plan {
        Plan {
            only: Some(call),
            ..Plan::once(mode, 0)
        }
    }

    /// Nothing is faulted: the proxy only counts.
    pub fn none() -> Plan {
        Plan::once(Mode::Close, usize::MAX)
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Without the API version prefix and the query: `/containers/create`.
    pub path: String,
    pub faulted: bool,
}

impl Seen {
    /// A short name of the call, for coverage: `POST /containers/{id}/start` → `start`.
    pub fn call(&self) -> String {
        let parts: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        match (self.method.as_str(), parts.as_slice()) {
            (_, ["_ping"]) => "ping".into(),
            (_, ["version"]) => "version".into(),
            ("POST", ["volumes", "create"]) => "create volume".into(),
            ("DELETE", ["volumes", ..]) => "remove volume".into(),
            ("GET", ["volumes"]) => "list volumes".into(),
            ("POST", ["containers", "create"]) => "create container".into(),
            ("GET", ["containers", "json"]) => "list containers".into(),
            ("PUT", ["containers", _, "archive"]) => "upload".into(),
            ("GET", ["containers", _, "archive"]) => "download".into(),
            ("POST", ["containers", _, "start"]) => "start".into(),
            ("POST", ["containers", _, "wait"]) => "wait".into(),
            ("GET", ["containers", _, "logs"]) => "logs".into(),
            ("GET", ["containers", _, "json"]) => "inspect container".into(),
            ("DELETE", ["containers", _]) => "remove container".into(),
            ("GET", ["images", ..]) => "inspect image".into(),
            (m, _) => format!("{m} {}", self.path),
        }
    }
}

pub struct FaultProxy {
    dir: tempfile::TempDir,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    accepter: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `engine` (a Unix socket) that faults as `plan` says.
    pub fn start(engine: &Path, plan: Plan) -> FaultProxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = UnixListener::bind(dir.path().join("engine.sock")).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let engine = engine.to_path_buf();
        let accepter = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            let (seen, count, engine) =
                                (seen.clone(), count.clone(), engine.clone());
                            std::thread::spawn(move || serve(client, &engine, plan, &count, &seen));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        FaultProxy {
            dir,
            seen,
            stop,
            accepter: Some(accepter),
        }
    }

    /// `unix://…` of the proxy's socket, for DOCKER_HOST.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("engine.sock")
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.accepter.take() {
            let _ = a.join();
        }
    }
}

fn selected(plan: Plan, n: usize, seen: &Seen) -> bool {
    if let Mode::NoImages | Mode::ImageId(_) = plan.mode {
        return seen.method == "GET" && seen.path.starts_with("/images/");
    }
    n >= plan.pass && (n - plan.pass) % plan.every.max(1) == plan.phase % plan.every.max(1)
}

fn serve(
    mut client: UnixStream,
    engine: &Path,
    plan: Plan,
    count: &AtomicUsize,
    seen: &Mutex<Vec<Seen>>,
) {
    // The request head, and whatever of the body came with it.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut request_line = head.lines().next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_string();
    let target = request_line.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    // "/v1.41/containers/create" → "/containers/create"
    let path = match path.strip_prefix("/v").and_then(|r| r.split_once('/')) {
        Some((version, rest)) if version.chars().all(|c| c.is_ascii_digit() || c == '.') => {
            format!("/{rest}")
        }
        _ => path.to_string(),
    };
    let mut this = Seen {
        method,
        path,
        faulted: false,
    };
    // A test's own event watcher may use the proxy too: it is neither counted nor faulted.
    if this.path != "/events" && plan.only.is_none_or(|c| this.call() == c) {
        let n = count.fetch_add(1, Ordering::SeqCst);
        this.faulted = selected(plan, n, &this);
    }
    if let Ok(mut s) = seen.lock() {
        s.push(this.clone());
    }
    if this.faulted && !matches!(plan.mode, Mode::Lose | Mode::ImageId(_)) {
        match plan.mode {
            Mode::Close => {}
            Mode::Unavailable => {
                answer(&mut client, "503 Service Unavailable", "engine restarting")
            }
            Mode::Delay(d) => std::thread::sleep(d),
            Mode::NoImages | Mode::Lose | Mode::ImageId(_) => answer(
                &mut client,
                "404 Not Found",
                &format!(
                    "No such image: {}",
                    this.path.trim_start_matches("/images/")
                ),
            ),
        }
        let _ = client.shutdown(std::net::Shutdown::Both);
        return;
    }
    let Ok(mut upstream) = UnixStream::connect(engine) else {
        return;
    };
    // One request per connection: the engine closes after answering, and the client sees
    // `Connection: close` and does not reuse it.
    let mut forwarded = String::new();
    for line in head[..head.len() - 2].split_inclusive("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            forwarded.push_str(line);
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    if upstream.write_all(forwarded.as_bytes()).is_err()
        || upstream.write_all(&buf[head_end..]).is_err()
    {
        return;
    }
    let (Ok(mut client_in), Ok(mut upstream_out)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    // The rest of the request body, as the client sends it.
    let body = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut upstream_out);
    });
    if let (true, Mode::ImageId(id)) = (this.faulted, plan.mode) {
        let mut whole = Vec::new();
        let _ = upstream.read_to_end(&mut whole);
        let _ = client.write_all(&with_image_id(&whole, id));
    } else if this.faulted {
        // Mode::Lose: the engine's whole answer is read, and none of it reaches the client.
        let _ = std::io::copy(&mut upstream, &mut std::io::sink());
    } else {
        let _ = std::io::copy(&mut upstream, &mut client);
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = upstream.shutdown(std::net::Shutdown::Both);
    let _ = body.join();
}

fn answer(client: &mut UnixStream, status: &str, message: &str) {
    let body = serde_json::json!({ "message": message }).to_string();
    let _ = write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The engine's whole HTTP answer (read to its end), with its JSON body's `Id` replaced.
fn with_image_id(answer: &[u8], id: &str) -> Vec<u8> {
    let Some(split) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return answer.to_vec();
    };
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let mut body = answer[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut plain = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16)
                .unwrap_or(0);
            if size == 0 || rest.len() < eol + 2 + size {
                break;
            }
            plain.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[(eol + 4 + size).min(rest.len())..];
        }
        body = plain;
    }
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return answer.to_vec();
    };
    json["Id"] = serde_json::Value::String(id.to_string());
    let body = json.to_string();
    let status = String::from_utf8_lossy(&answer[..split])
        .lines()
        .next()
        .unwrap_or("HTTP/1.1 200 OK")
        .to_string();
    format!(
        "{status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
