use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ban {
    #[serde(rename = "crate")]
    pub krate: Spanned<String>,
    /// A semver requirement such as `<0.9`; all versions when absent.
    pub versions: Option<Spanned<String>>,
    pub reason: Option<String>,
}

impl Ban {
    pub fn version_req(&self) -> Option<semver::VersionReq> {
        self.versions
            .as_ref()
            .and_then(|v| semver::VersionReq::parse(v.get_ref()).ok())
    }

    pub fn validate(&self) -> Result<(), (Range<usize>, String)> {
        if let Some(v) = &self.versions {
            semver::VersionReq::parse(v.get_ref()).map_err(|e| {
                (
                    v.span(),
                    format!("`{}` is not a version requirement: {e}", v.get_ref()),
                )
            })?;
        }
        Ok(())
    }
}
