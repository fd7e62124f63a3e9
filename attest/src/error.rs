use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    /// A key that cannot be read, decrypted or used.
    #[error("{path}: {detail}")]
    Key {
        path: PathBuf,
        detail: String,
        fix: String,
    },
    /// A signature, bundle or statement that does not verify.
    #[error("{path}: {failure} [{}]", .failure.code())]
    Verification {
        path: PathBuf,
        failure: crate::verify::Failure,
    },
    /// Something that needs a service this tool does not reach offline.
    #[error("{what} needs {service}, which is not reachable from an offline build")]
    Online { what: String, service: String },
}

/// What kind of failure an error is, for exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Input,
    Check,
    Infrastructure,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Infrastructure,
            Error::Invalid { .. } | Error::Key { .. } | Error::Online { .. } => ErrorKind::Input,
            Error::Verification { .. } => ErrorKind::Check,
        }
    }

    /// How to fix it, when there is one thing to do.
    pub fn fix(&self) -> Option<String> {
        match self {
            Error::Key { fix, .. } => Some(fix.clone()),
            Error::Verification { failure, .. } => Some(failure.fix().into()),
            Error::Online { .. } => Some(
                "sign with a key (`hermetic keygen`, then --key); keyless signing and \
                 transparency-log upload need Fulcio and Rekor"
                    .into(),
            ),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
