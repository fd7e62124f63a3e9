use std::path::PathBuf;
use std::time::Duration;

/// Errors of the sandbox stage, each with its kind (for the exit code) and a fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no Docker engine answers at {host}: {detail}")]
    EngineUnreachable { host: String, detail: String },
    #[error("permission denied on the Docker socket {socket}")]
    PermissionDenied { socket: String },
    #[error("DOCKER_HOST={value} is not a usable engine address: {detail}")]
    BadDockerHost { value: String, detail: String },
    #[error("no Docker engine answers at {host} over ssh: {detail}")]
    SshTunnel { host: String, detail: String },
    #[error("the engine at {host} accepts only TLS connections")]
    TlsRequired { host: String },
    #[error("TLS for {host}: {missing} does not exist")]
    TlsFiles { host: String, missing: PathBuf },
    #[error("image {reference} is not present in the engine at {host}")]
    ImageMissing { reference: String, host: String },
    #[error("the builder image {image} lacks {} that hermetic.toml declares", missing.join(", "))]
    ImageLacksPackages { image: String, missing: Vec<String> },
    #[error("the builder image {image} has no libfaketime, which the clock variation needs")]
    NoFaketime { image: String },
    #[error("--base {base}: {why}")]
    BaseNotPinned { base: String, why: String },
    #[error("the image loaded into {host} has digest {found}, not {expected}")]
    ImageDigestMismatch {
        host: String,
        expected: String,
        found: String,
    },
    #[error("the engine refused to {op}: {message}")]
    Engine {
        op: String,
        status: u16,
        message: String,
    },
    #[error(
        "{host}: could not {op}: {message} (retried {} times over {:.1} s)",
        attempts.saturating_sub(1),
        elapsed.as_secs_f64()
    )]
    Transient {
        host: String,
        op: String,
        attempts: u32,
        elapsed: Duration,
        message: String,
    },
    #[error("{host}: the engine went away while the build ran ({detail}); its result is not used")]
    EngineLost { host: String, detail: String },
    #[error("the build failed with exit code {exit_code}{}; diagnostics in {diagnostics}", cause.as_ref().map(|c| format!(": {}", c.sentence())).unwrap_or_default())]
    BuildFailed {
        exit_code: i64,
        diagnostics: PathBuf,
        /// What the log says the image lacked, if it says.
        cause: Option<Box<crate::needs::Missing>>,
        /// The packages the project already adds to its image.
        declared: Vec<String>,
    },
    #[error("the {stage} stage timed out after {after:?}{}", diagnostics.as_ref().map(|d| format!("; diagnostics in {}", d.display())).unwrap_or_default())]
    Timeout {
        stage: &'static str,
        after: Duration,
        diagnostics: Option<PathBuf>,
    },
    #[error("interrupted; containers and volumes of this run were removed")]
    Interrupted,
    #[error("{what}: {detail}")]
    Bootstrap { what: String, detail: String },
    #[error("{path}: not a builder image lock: {detail}")]
    BadImageLock { path: PathBuf, detail: String },
    #[error(
        "the builder image made here differs from {}:\n  {}",
        lock.display(),
        differences.join("\n  ")
    )]
    ImageDiffers {
        lock: PathBuf,
        differences: Vec<String>,
    },
    #[error("output {name} was not produced by the build ({detail})")]
    MissingOutput { name: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    UnsafeSource { path: PathBuf, detail: String },
    #[error(
        "output {name} goes past the output limits ({cap} bytes for one output, \
         {total_cap} for all of them)"
    )]
    OutputTooLarge {
        name: String,
        cap: u64,
        total_cap: u64,
    },
    #[error("{path} changed while hermetic was reading it")]
    InputsChanged { path: PathBuf },
    #[error(transparent)]
    Deps(#[from] hermetic_deps::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an error is; the CLI maps it to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Input,
    Infrastructure,
    BuildFailed,
    Check,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ImageMissing { .. }
            | Error::BaseNotPinned { .. }
            | Error::ImageLacksPackages { .. }
            | Error::NoFaketime { .. }
            | Error::InputsChanged { .. }
            | Error::BadImageLock { .. }
            | Error::UnsafeSource { .. } => ErrorKind::Input,
            Error::ImageDiffers { .. } => ErrorKind::Check,
            Error::BuildFailed { .. }
            | Error::MissingOutput { .. }
            | Error::OutputTooLarge { .. } => ErrorKind::BuildFailed,
            Error::Timeout { stage, .. } if *stage == "build" => ErrorKind::BuildFailed,
            Error::Deps(e) => match e.kind() {
                hermetic_deps::ErrorKind::Input => ErrorKind::Input,
                hermetic_deps::ErrorKind::Infrastructure => ErrorKind::Infrastructure,
                hermetic_deps::ErrorKind::Check => ErrorKind::Check,
            },
            _ => ErrorKind::Infrastructure,
        }
    }

    pub fn fix(&self) -> Option<String> {
        Some(match self {
            Error::EngineUnreachable { .. } => {
                "start the Docker engine (e.g. `systemctl start docker`), \
                 or point DOCKER_HOST at a running one"
                    .into()
            }
            Error::PermissionDenied { .. } => {
                "run as a user in the `docker` group, or as root".into()
            }
            Error::BadDockerHost { .. } => {
                "use unix:///path/to/docker.sock, tcp://HOST:PORT, https://HOST:PORT or \
                 ssh://USER@HOST, or unset DOCKER_HOST for the local engine"
                    .into()
            }
            Error::SshTunnel { .. } => "check that `ssh HOST` works without prompting (key \
                 loaded, host key known) and that the remote user may use the Docker socket; \
                 HERMETIC_SSH_COMMAND passes options, e.g. `ssh -F ./ssh_config`"
                .into(),
            Error::TlsRequired { .. } => "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to the \
                 directory with ca.pem, cert.pem and key.pem (or write https://, or set the \
                 runner's cert-path in hermetic.toml)"
                .into(),
            Error::TlsFiles { .. } => "put ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH \
                 (default ~/.docker), or set the runner's cert-path in hermetic.toml"
                .into(),
            Error::ImageLacksPackages { .. } => "run `hermetic image bootstrap` in the \
                 project: it makes the image for the packages hermetic.toml declares (and \
                 tags it as the project's builds look for it)"
                .into(),
            Error::NoFaketime { .. } => "leave clock out of --vary, or make the image with \
                 `hermetic image bootstrap --update-lock` (its images carry libfaketime), or \
                 install Debian's libfaketime in the image's Dockerfile"
                .into(),
            Error::BaseNotPinned { base, .. } => format!(
                "pull it and pass the digest the engine records: `docker pull {base}`, then \
                 `docker inspect --format '{{{{index .RepoDigests 0}}}}' {base}`"
            ),
            Error::ImageMissing { .. } => {
                "run `hermetic image bootstrap` to make the builder image \
                 offline, or `hermetic image build` if a base image is present"
                    .into()
            }
            Error::OutputTooLarge { .. } => "if the binary really is that large, raise the \
                 limits with --max-output-mib and --max-outputs-total-mib; otherwise find out why the build made it"
                .into(),
            Error::UnsafeSource { .. } => "a build only sees the workspace: replace the link \
                 by the file itself (or by a link to a file inside the workspace), and remove \
                 sockets, fifos and devices from the tree"
                .into(),
            Error::BuildFailed {
                cause: Some(cause),
                declared,
                ..
            } => cause.fix(declared),
            Error::BuildFailed { .. } => "read build.log in the diagnostics folder; \
                 reproduce.sh there reruns the same build"
                .into(),
            Error::Timeout { .. } => "raise the stage timeout (--build-timeout etc.) if the build \
                 is just slow"
                .into(),
            Error::InputsChanged { .. } => "leave the vendored tree alone while hermetic runs \
                 (`hermetic vendor` rewrites it), then run again"
                .into(),
            Error::Transient { .. } => "check the engine's health (`docker info`) and retry".into(),
            Error::BadImageLock { .. } => "it is written by `hermetic image bootstrap`: \
                 restore it from version control, or remove it and bootstrap again to write a \
                 new one"
                .into(),
            Error::ImageDiffers { .. } => "the first lines are the cause: a package version \
                 means the mirror has moved on (use a snapshot mirror, \
                 https://snapshot.debian.org/archive/debian/YYYYMMDDThhmmssZ, to pin \
                 versions for good); a toolchain component means another Rust toolchain \
                 (`rustup toolchain install` the locked version). To adopt this machine's \
                 result instead, run again with --update-lock and commit the lock"
                .into(),
            Error::EngineLost { .. } => "check the engine (`docker info`, its log) and run \
                 again: what the lost run left is removed by the next one; a build is never \
                 retried, as that would hide nondeterminism"
                .into(),
            Error::Deps(e) => return e.fix(),
            _ => return None,
        })
    }
}

pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
