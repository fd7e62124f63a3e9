use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// SPDX license ids accepted for every crate.
    pub allow: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub exceptions: Vec<Exception>,
}

/// Extra licenses accepted for one crate only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    #[serde(rename = "crate")]
    pub krate: Spanned<String>,
    pub allow: Vec<Spanned<String>>,
}

impl Config {
    /// Every id must be a real SPDX license id (or a `LicenseRef-`), so that a typo cannot
    /// silently allow nothing.
    pub fn validate(&self) -> Result<(), (Range<usize>, String)> {
        let ids = self
            .allow
            .get_ref()
            .iter()
            .chain(self.exceptions.iter().flat_map(|e| e.allow.iter()));
        for id in ids {
            let name = id.get_ref();
            if spdx::license_id(name).is_none() && !name.starts_with("LicenseRef-") {
                let hint = spdx::imprecise_license_id(name)
                    .map(|(l, _)| format!(" (did you mean `{}`?)", l.name))
                    .unwrap_or_default();
                return Err((
                    id.span(),
                    format!("`{name}` is not an SPDX license id{hint}"),
                ));
            }
        }
        Ok(())
    }
}
