use std::path::PathBuf;

/// Errors of the vendoring stage. Each says which file is concerned and, through
/// [`Error::fix`], what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: no Cargo.toml here")]
    ManifestNotFound { path: PathBuf },
    #[error("{path}: the workspace has no Cargo.lock")]
    NoLockfile { path: PathBuf },
    #[error("{path}: Cargo.lock is out of date with the manifests: {detail}")]
    LockOutdated { path: PathBuf, detail: String },
    #[error("{path}: cannot read Cargo.lock: {detail}")]
    BadLockfile { path: PathBuf, detail: String },
    #[error("{path}: [[package]] number {package}: `{field}` = {value:?} is refused: {why}")]
    LockfileField {
        path: PathBuf,
        package: usize,
        field: &'static str,
        value: String,
        why: String,
    },
    #[error("{path}: cargo could not read the workspace: {detail}")]
    Cargo { path: PathBuf, detail: String },
    #[error("could not run cargo: {0}")]
    CargoMissing(std::io::Error),
    #[error("{0}")]
    SandboxMissing(#[from] crate::host::SandboxMissing),
    #[error("the package registry could not be reached while vendoring {path}: {detail}")]
    RegistryUnreachable { path: PathBuf, detail: String },
    #[error("{manifest}: path dependency `{name}` at {dep_path} is outside the workspace {root}")]
    PathDependencyOutside {
        manifest: PathBuf,
        name: String,
        dep_path: PathBuf,
        root: PathBuf,
    },
    #[error("{archive}: {detail}")]
    BadArchive { archive: PathBuf, detail: String },
    #[error("{path}: in hermetic's cache: {detail}")]
    BadCache { path: PathBuf, detail: String },
    #[error("{path}: the secret that seals hermetic's cache entries is refused: {detail}")]
    Secret { path: PathBuf, detail: String },
    #[error(
        "{name}@{version}: the downloaded archive has sha256 {actual}, Cargo.lock says {expected}"
    )]
    ArchiveChecksum {
        name: String,
        version: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{archive}: the cached archive has sha256 {actual}, Cargo.lock pins {expected}; \
         it was removed from the cache"
    )]
    CachedArchiveChecksum {
        archive: PathBuf,
        expected: String,
        actual: String,
    },
    /// Several cached archives that are not what Cargo.lock pins (each a
    /// `CachedArchiveChecksum`); vendoring evicts them all and fetches again.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    WrongArchives(Vec<Error>),
    #[error("{name}@{version}: cargo fetched it, but no archive was found under {searched}")]
    ArchiveNotFound {
        name: String,
        version: String,
        searched: PathBuf,
    },
    #[error("{path}: {name}@{version} comes from {url:?}: {why}")]
    HostSource {
        path: PathBuf,
        name: String,
        version: String,
        url: String,
        why: &'static str,
    },
    #[error("{path}: a dependency needs credentials to be fetched: {detail}")]
    CredentialsNeeded { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    Unsupported { path: PathBuf, detail: String },
    #[error("{path}: {message}")]
    Policy {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{path}: {detail}")]
    BadVendorDir { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an error is; the CLI maps it to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input from the user (exit 2).
    Input,
    /// Something outside the user's input failed: registry, disk, cargo itself (exit 4).
    Infrastructure,
    /// Inputs were read, and a check on them failed (exit 1).
    Check,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ManifestNotFound { .. }
            | Error::NoLockfile { .. }
            | Error::LockOutdated { .. }
            | Error::BadLockfile { .. }
            | Error::LockfileField { .. }
            | Error::Cargo { .. }
            | Error::PathDependencyOutside { .. }
            | Error::Unsupported { .. }
            | Error::HostSource { .. }
            | Error::CredentialsNeeded { .. }
            | Error::Policy { .. }
            | Error::BadVendorDir { .. }
            | Error::Secret { .. } => ErrorKind::Input,
            Error::ArchiveChecksum { .. }
            | Error::CachedArchiveChecksum { .. }
            | Error::BadArchive { .. }
            | Error::BadCache { .. }
            | Error::WrongArchives(_) => ErrorKind::Check,
            Error::CargoMissing(_)
            | Error::SandboxMissing(_)
            | Error::RegistryUnreachable { .. }
            | Error::ArchiveNotFound { .. }
            | Error::Io { .. }
            | Error::Json { .. } => ErrorKind::Infrastructure,
        }
    }

    /// A sentence telling the user how to fix the problem, where there is one.
    pub fn fix(&self) -> Option<String> {
        Some(match self {
            Error::ManifestNotFound { .. } => {
                "run from the project root or pass --manifest-path path/to/Cargo.toml".into()
            }
            Error::NoLockfile { .. } => "run `cargo generate-lockfile` and commit Cargo.lock: \
                 a hermetic build only builds what the lockfile pins"
                .into(),
            Error::LockOutdated { .. } => {
                "run `cargo update --workspace` (or `cargo generate-lockfile`), \
                 review the change and commit Cargo.lock"
                    .into()
            }
            Error::BadLockfile { .. } => {
                "regenerate it with `cargo generate-lockfile` (format version 3 or later)".into()
            }
            Error::LockfileField { .. } => "cargo never writes such a value: regenerate \
                 Cargo.lock with `cargo generate-lockfile`, review what changed, and do not \
                 build a project whose lockfile was edited by hand until you know why"
                .into(),
            Error::Cargo { .. } => {
                "fix the manifest so that `cargo metadata --locked` succeeds".into()
            }
            Error::CargoMissing(_) => "install cargo (rustup) and make sure it is on PATH".into(),
            Error::SandboxMissing(_) => {
                "install bubblewrap (`apt-get install bubblewrap`, `dnf install bubblewrap`)".into()
            }
            Error::RegistryUnreachable { .. } => "vendoring needs the registry once per lockfile: \
                 run again with network access, or on a machine whose hermetic cache \
                 (HERMETIC_CACHE) already holds this lockfile's crates"
                .into(),
            Error::PathDependencyOutside { .. } => {
                "move the dependency into the workspace or depend on a published version: \
                 a hermetic build only sees the workspace tree"
                    .into()
            }
            Error::ArchiveChecksum { .. } => "the registry or the local cargo cache served other \
                 bytes than Cargo.lock pins: clear ~/.cargo/registry/cache for this crate and \
                 investigate before trusting this dependency"
                .into(),
            Error::BadArchive { .. } => "remove the file; it is fetched again".into(),
            Error::BadCache { .. } => "someone else can write this cache (HERMETIC_CACHE): \
                 remove the entry, find out who made it, and keep the cache where only you \
                 write"
                .into(),
            Error::Secret { .. } => "remove the file (`chmod 600` it if it is yours and \
                 only you could have read it), or point HERMETIC_STATE at a private directory \
                 outside HERMETIC_CACHE: a new secret is made there, and every cache entry \
                 sealed with the old one is re-derived once"
                .into(),
            Error::CachedArchiveChecksum { .. } | Error::WrongArchives(_) => {
                "run again: the archive is fetched anew \
                 and checked; if this repeats, someone can write your hermetic cache \
                 (HERMETIC_CACHE): find out who before trusting it"
                    .into()
            }
            Error::ArchiveNotFound { .. } => {
                "check that no source replacement in your cargo config hides the registry".into()
            }
            Error::HostSource { url, .. } => format!(
                "a project cannot make hermetic read this machine's files or use its keys: \
                 depend on a published version or an https:// repository, or, if you trust \
                 this source, list it in a policy of your own and pass it with --policy \
                 ([sources] {} = [\"{}\"]); a project's own vendor-policy.toml cannot \
                 allow it",
                if url.starts_with("git+") {
                    "git"
                } else {
                    "registries"
                },
                url.split_once('+')
                    .map_or(url.as_str(), |(_, u)| u)
                    .split(['?', '#'])
                    .next()
                    .unwrap_or_default()
            ),
            Error::CredentialsNeeded { .. } => "hermetic lends host cargo none of your \
                 credentials, since the project chooses where it fetches from: only for a \
                 project you trust, lend it a cargo home that can fetch this dependency \
                 (HERMETIC_CARGO_HOME=~/.cargo), knowing that its tokens and your git \
                 credentials then serve the project's URLs"
                .into(),
            Error::Policy { .. } => "see the policy format in the README".into(),
            Error::BadVendorDir { .. } => {
                "pass a directory written by `hermetic vendor --out DIR`".into()
            }
            Error::Unsupported { .. } | Error::Io { .. } | Error::Json { .. } => return None,
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
