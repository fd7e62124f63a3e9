use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Most versions of one crate allowed in the graph.
    pub max_versions: Spanned<usize>,
}
