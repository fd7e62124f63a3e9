//! The builder image on a base pinned by digest (`hermetic image build --base
//! REF@sha256:…`), for projects that take their toolchain from a registry image.
//!
//! The engine's builder would stamp the build's own time and host into the result, so two
//! machines with the same base would get two builder digests. Instead the base is saved
//! from the engine, each of its layers re-hashed against its configuration, and one layer
//! of hermetic's own (the build user 10001 over the base's `/etc/passwd` and `/etc/group`,
//! and `/hermetic`) is added with fixed times; the configuration is the base's with that
//! layer, the build user and the environment of `Dockerfile.hermetic`. The result is a
//! function of the base alone: loaded here, its id is the same on every machine.

use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};
use crate::{layers, recipe};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The time of every entry of hermetic's layer (1980-01-01).
const LAYER_EPOCH: u64 = 315_532_800;

/// The environment `Dockerfile.hermetic` sets, over the base's.
const ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/opt/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("TZ", "UTC"),
];

/// A base is pinned when it names its content: `REF@sha256:<64 hex>` (a registry digest)
/// or `sha256:<64 hex>` (an image id).
pub fn pinned(base: &str) -> std::result::Result<(), String> {
    let digest = base.rsplit_once('@').map_or(base, |(_, d)| d);
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(
            "a base must be pinned by digest (REF@sha256:… or sha256:…): a tag can name \
             other bytes tomorrow, and every machine must build on the same base"
                .into(),
        )
    }
}

/// An image as the engine saved it: its configuration, and its layers in order, each
/// extracted to a file whose SHA-256 is its diff id.
#[derive(Debug)]
pub struct Saved {
    pub config: serde_json::Value,
    pub layers: Vec<PathBuf>,
}

/// The largest configuration read.
const MAX_CONFIG: u64 = 16 << 20;

/// The most layers a base may have (overlayfs stacks at most 128).
const MAX_LAYERS: usize = 127;

/// Reads a `docker save` archive of one image into `dir`: the configuration its manifest
/// names, and each layer, re-hashed against the configuration's diff ids (the engine is
/// not believed).
pub fn read_saved(file: &Path, dir: &Path) -> Result<Saved> {
    let bad = |detail: String| Error::Bootstrap {
        what: format!("read the saved base {}", file.display()),
        detail,
    };
    // The manifest first (small, near the end in docker's archives): names are needed
    // before the layers can be recognised.
    let mut manifest: Option<serde_json::Value> = None;
    {
        let f = std::fs::File::open(file).at(file)?;
        let mut archive = tar::Archive::new(std::io::BufReader::new(f));
        for entry in archive.entries().at(file)? {
            let mut e = entry.at(file)?;
            let name = e.path().at(file)?.to_string_lossy().into_owned();
            if name.trim_start_matches("./") == "manifest.json" {
                if e.size() > MAX_CONFIG {
                    return Err(bad("manifest.json is too large".into()));
                }
                let mut bytes = vec![];
                e.read_to_end(&mut bytes).at(file)?;
                manifest = Some(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| bad(format!("manifest.json: {e}")))?,
                );
            }
        }
    }
    let manifest = manifest.ok_or_else(|| bad("no manifest.json".into()))?;
    if manifest.as_array().map(Vec::len) != Some(1) {
        return Err(bad("manifest.json must name exactly one image".into()));
    }
    let config_name = manifest[0]["Config"]
        .as_str()
        .ok_or_else(|| bad("manifest.json names no configuration".into()))?
        .trim_start_matches("./")
        .to_string();
    let layer_names: Vec<String> = manifest[0]["Layers"]
        .as_array()
        .ok_or_else(|| bad("manifest.json names no layers".into()))?
        .iter()
        .map(|l| {
            l.as_str()
                .unwrap_or_default()
                .trim_start_matches("./")
                .to_string()
        })
        .collect();
    // Each layer once, and no more than an engine stacks: every one is hashed and written
    // again, so a manifest naming one layer a million times would exhaust the host.
    if layer_names.len() > MAX_LAYERS {
        return Err(bad(format!(
            "{} layers: at most {MAX_LAYERS}",
            layer_names.len()
        )));
    }
    for (i, l) in layer_names.iter().enumerate() {
        if layer_names[..i].contains(l) || *l == config_name {
            return Err(bad(format!("{l} is named twice in manifest.json")));
        }
    }
    std::fs::create_dir_all(dir).at(dir)?;
    let mut config_bytes = None;
    let mut layers: Vec<Option<PathBuf>> = vec![None; layer_names.len()];
    let f = std::fs::File::open(file).at(file)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    for entry in archive.entries().at(file)? {
        let mut e = entry.at(file)?;
        let name = e
            .path()
            .at(file)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if name == config_name {
            if e.size() > MAX_CONFIG {
                return Err(bad("the configuration is too large".into()));
            }
            let mut bytes = vec![];
            e.read_to_end(&mut bytes).at(file)?;
            config_bytes = Some(bytes);
        } else if let Some(i) = layer_names.iter().position(|l| *l == name) {
            if layers[i].is_some() {
                return Err(bad(format!("{name} is in the archive twice")));
            }
            let out = dir.join(format!("layer-{i}.tar"));
            let mut w = std::fs::File::create(&out).at(&out)?;
            std::io::copy(&mut e, &mut w).at(&out)?;
            layers[i] = Some(out);
        }
    }
    let config_bytes = config_bytes.ok_or_else(|| bad(format!("no {config_name}")))?;
    let config: serde_json::Value =
        serde_json::from_slice(&config_bytes).map_err(|e| bad(format!("{config_name}: {e}")))?;
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
        .unwrap_or_default();
    if diff_ids.len() != layer_names.len() {
        return Err(bad(format!(
            "the configuration has {} layers, the manifest {}",
            diff_ids.len(),
            layer_names.len()
        )));
    }
    if !config.is_object() || !config["rootfs"].is_object() {
        return Err(bad(format!("{config_name} is not an image configuration")));
    }
    let mut files = Vec::with_capacity(layers.len());
    for (i, (layer, diff)) in layers.into_iter().zip(&diff_ids).enumerate() {
        let path = layer.ok_or_else(|| bad(format!("no {}", layer_names[i])))?;
        let got = layers::file_digest(&path)?;
        if got != *diff {
            return Err(bad(format!(
                "layer {} has digest {got}, its configuration says {diff}",
                layer_names[i]
            )));
        }
        files.push(path);
    }
    Ok(Saved {
        config,
        layers: files,
    })
}

/// The files a layer holds at `names`, and whether it deletes them (a whiteout).
fn find_in_layer(layer: &Path, names: &[&str]) -> Result<Vec<Found>> {
    let f = std::fs::File::open(layer).at(layer)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    let mut found = vec![Found::Absent; names.len()];
    for entry in archive.entries().at(layer)? {
        let mut e = entry.at(layer)?;
        let path = e.path().at(layer)?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").trim_start_matches('/');
        for (i, name) in names.iter().enumerate() {
            let (dir, file) = name.rsplit_once('/').unwrap_or(("", name));
            if path == *name && e.header().entry_type().is_file() {
                if e.size() > MAX_CONFIG {
                    return Err(Error::Bootstrap {
                        what: format!("read {}", layer.display()),
                        detail: format!("{name} is larger than 16 MiB"),
                    });
                }
                let mut bytes = vec![];
                e.read_to_end(&mut bytes).at(layer)?;
                found[i] = Found::File(bytes);
                break;
            } else if (path == format!("{dir}/.wh.{file}") || path == format!("{dir}/.wh..wh..opq"))
                && !matches!(found[i], Found::File(_))
            {
                // A whiteout hides what lower layers have, not this layer's own file.
                found[i] = Found::Deleted;
            }
        }
    }
    Ok(found)
}

#[derive(Debug, Clone)]
enum Found {
    Absent,
    Deleted,
    File(Vec<u8>),
}

/// `/etc/passwd` and `/etc/group` as the base's layers leave them (empty if none has them).
fn users_of(saved: &Saved) -> Result<recipe::RootfsFacts> {
    const NAMES: [&str; 2] = ["etc/passwd", "etc/group"];
    let mut result: [Option<Vec<u8>>; 2] = [None, None];
    for layer in saved.layers.iter().rev() {
        if result.iter().all(Option::is_some) {
            break;
        }
        for (i, f) in find_in_layer(layer, &NAMES)?.into_iter().enumerate() {
            if result[i].is_none() {
                match f {
                    Found::File(b) => result[i] = Some(b),
                    Found::Deleted => result[i] = Some(vec![]),
                    Found::Absent => {}
                }
            }
        }
    }
    let [passwd, group] = result;
    Ok(recipe::RootfsFacts {
        passwd: passwd.unwrap_or_default(),
        group: group.unwrap_or_default(),
        installed: Default::default(),
    })
}

/// The builder's configuration: the base's, with hermetic's layer, history line, user,
/// working directory, environment and labels. serde_json's maps are sorted, so the bytes
/// follow from the content.
pub fn builder_config(
    base_config: &serde_json::Value,
    base: &str,
    base_id: &str,
    layer_diff: &str,
) -> Vec<u8> {
    let mut c = base_config.clone();
    let created = c["created"].clone();
    if let Some(diffs) = c["rootfs"]["diff_ids"].as_array_mut() {
        diffs.push(layer_diff.into());
    }
    let entry = serde_json::json!({
        "created": created,
        "created_by": "hermetic image build: the build user (10001) and /hermetic",
    });
    match c["history"].as_array_mut() {
        Some(h) => h.push(entry),
        None => c["history"] = serde_json::json!([entry]),
    }
    if !c["config"].is_object() {
        c["config"] = serde_json::json!({});
    }
    let config = &mut c["config"];
    let mut env: Vec<String> = config["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .filter(|kv| {
                    let k = kv.split('=').next().unwrap_or_default();
                    !ENV.iter().any(|(name, _)| *name == k)
                })
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    env.extend(ENV.iter().map(|(k, v)| format!("{k}={v}")));
    config["Env"] = env.into();
    config["User"] = "10001:10001".into();
    config["WorkingDir"] = "/hermetic".into();
    if !config["Labels"].is_object() {
        config["Labels"] = serde_json::json!({});
    }
    config["Labels"]["dev.hermetic.builder"] = "1".into();
    config["Labels"]["dev.hermetic.base"] = base.into();
    // What the engine's copy of the base is, by content: a registry digest is the engine's
    // word for it, the configuration's digest is not.
    config["Labels"]["dev.hermetic.base-id"] = base_id.into();
    c.to_string().into_bytes()
}

/// Makes the builder on `base` (pinned, present in the engine) and tags it `tag`; returns
/// its digest. `scratch` holds the base's saved copy while it is assembled.
pub async fn build(
    engine: &Engine,
    base: &str,
    tag: &str,
    scratch: &Path,
    stage: &dyn Fn(&str),
) -> Result<String> {
    pinned(base).map_err(|why| Error::BaseNotPinned {
        base: base.into(),
        why,
    })?;
    let info = crate::image::inspect(engine, base).await?;
    let id = info.id.clone().unwrap_or_default();
    // The engine's answer is checked: the image carries the digest it was asked by.
    let held = match base.rsplit_once('@') {
        Some((_, digest)) => info
            .repo_digests
            .as_ref()
            .is_some_and(|r| r.iter().any(|d| d.ends_with(&format!("@{digest}")))),
        None => id == base,
    };
    if !held {
        return Err(Error::ImageDigestMismatch {
            host: engine.host.clone(),
            expected: base.into(),
            found: id,
        });
    }
    std::fs::create_dir_all(scratch).at(scratch)?;
    let work = tempfile::Builder::new()
        .prefix("on-base-")
        .tempdir_in(scratch)
        .at(scratch)?;
    stage("saving the base from the engine");
    let saved_file = work.path().join("base.tar");
    crate::image::export(engine, &id, &saved_file).await?;
    stage("checking the base's layers");
    let saved = read_saved(&saved_file, &work.path().join("layers"))?;
    std::fs::remove_file(&saved_file).at(&saved_file)?;
    let users = users_of(&saved)?;
    let layer = work.path().join("hermetic-layer.tar");
    let diff = recipe::builder_layer(&users, LAYER_EPOCH, &layer)?;
    let config = builder_config(&saved.config, base, &id, &diff);
    let mut files = saved.layers.clone();
    files.push(layer);
    stage("loading the builder image");
    let archive = work.path().join("builder.tar");
    let digest = layers::write_archive(&archive, &config, &files, tag)?;
    layers::load(engine, &archive, &digest).await?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_base_pinned_by_digest_is_taken() {
        let d = "a".repeat(64);
        assert!(pinned(&format!("docker.io/library/rust:1.95@sha256:{d}")).is_ok());
        assert!(pinned(&format!("sha256:{d}")).is_ok());
        for bad in [
            "docker.io/library/rust:1.95.0-slim-bookworm".to_string(),
            format!("rust@sha256:{}", &d[..63]),
            format!("rust@sha256:{}", "A".repeat(64)),
            "rust@sha512:00".into(),
        ] {
            assert!(pinned(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_configuration_is_the_bases_with_hermetics_layer() {
        let base = serde_json::json!({
            "architecture": "amd64",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Env": ["PATH=/usr/bin", "RUSTUP_HOME=/usr/local/rustup"], "User": "root"},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
            "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "base"}],
            "os": "linux",
        });
        let a = builder_config(&base, "rust@sha256:x", "sha256:id", "sha256:bb");
        // The same base gives the same bytes (and so the same image id).
        assert_eq!(
            a,
            builder_config(&base, "rust@sha256:x", "sha256:id", "sha256:bb")
        );
        let c: serde_json::Value = serde_json::from_slice(&a).expect("json");
        assert_eq!(
            c["rootfs"]["diff_ids"],
            serde_json::json!(["sha256:aa", "sha256:bb"])
        );
        assert_eq!(c["config"]["User"], "10001:10001");
        let env: Vec<&str> = c["config"]["Env"]
            .as_array()
            .expect("env")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(env.contains(&"RUSTUP_HOME=/usr/local/rustup"));
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
        assert_eq!(c["config"]["Labels"]["dev.hermetic.base"], "rust@sha256:x");
        assert_eq!(c["created"], "2026-01-01T00:00:00Z");
        assert_eq!(c["history"].as_array().map(Vec::len), Some(2));
    }
}
