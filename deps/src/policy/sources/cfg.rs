use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Registry names (`crates-io`) or index URLs.
    #[serde(default = "crates_io")]
    pub registries: Spanned<Vec<Spanned<String>>>,
    /// Repository URLs allowed as git sources.
    #[serde(default = "nothing")]
    pub git: Spanned<Vec<Spanned<String>>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            registries: crates_io(),
            git: nothing(),
        }
    }
}

fn crates_io() -> Spanned<Vec<Spanned<String>>> {
    Spanned::new(0..0, vec![Spanned::new(0..0, "crates-io".to_string())])
}

fn nothing() -> Spanned<Vec<Spanned<String>>> {
    Spanned::new(0..0, Vec::new())
}
