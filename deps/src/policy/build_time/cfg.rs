use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Crate names allowed to run code at build time.
    pub allow: Spanned<Vec<Spanned<String>>>,
}
