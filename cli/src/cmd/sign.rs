//! `hermetic keygen`, `sign`, `attest` and `verify-attestation`, and the key a build signs
//! with by default.

use crate::exit::{Code, Failure, Output};
use hermetic_attest::bundle::sign_blob;
use hermetic_attest::documents;
use hermetic_attest::keys::{self, PublicKey, SigningKey};
use hermetic_attest::record::{BuildRecord, RECORD};
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Environment variable holding the private key's password (cosign's name).
pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// Where the default local key lives: `$HERMETIC_KEY`, else the user's config directory.
pub fn default_key_path() -> PathBuf {
    if let Some(p) = std::env::var_os("HERMETIC_KEY") {
        return PathBuf::from(p);
    }
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from(".config"))
        .join("hermetic")
        .join("cosign.key")
}

fn password_for(path: &Path, confirm: bool) -> Result<zeroize::Zeroizing<String>, Failure> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p.into());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure {
            code: Code::Input,
            message: format!(
                "{}: no password: {PASSWORD_ENV} is not set and there is no terminal to ask",
                path.display()
            ),
            causes: vec![],
            fix: Some(format!("set {PASSWORD_ENV} (it may be empty)")),
        });
    }
    let p = rpassword::prompt_password(format!("Password for {}: ", path.display()))
        .map_err(|e| Failure::io("password prompt", e))?;
    if confirm {
        let again = rpassword::prompt_password("Password again: ")
            .map_err(|e| Failure::io("password prompt", e))?;
        if again != p {
            return Err(Failure {
                code: Code::Input,
                message: "the passwords differ".into(),
                causes: vec![],
                fix: Some("run keygen again".into()),
            });
        }
    }
    Ok(p.into())
}

/// Writes a new key pair; refuses to overwrite unless `force`.
fn write_key_pair(
    prefix: &Path,
    password: &str,
    force: bool,
) -> Result<(PathBuf, PathBuf), Failure> {
    let key_path = prefix.with_file_name(format!(
        "{}.key",
        prefix
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let pub_path = key_path.with_extension("pub");
    for p in [&key_path, &pub_path] {
        if p.exists() && !force {
            return Err(Failure {
                code: Code::Input,
                message: format!("{}: already exists", p.display()),
                causes: vec![],
                fix: Some(
                    "pass --force to replace it, or choose another --output-key-prefix".into(),
                ),
            });
        }
    }
    let (private, public) = keys::generate(password.as_bytes())?;
    if let Some(dir) = key_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Failure::io(&dir.display().to_string(), e))?;
    }
    write_private(&key_path, private.as_bytes(), force)?;
    std::fs::write(&pub_path, public)
        .map_err(|e| Failure::io(&pub_path.display().to_string(), e))?;
    Ok((key_path, pub_path))
}

fn write_private(path: &Path, data: &[u8], force: bool) -> Result<(), Failure> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    // Without --force, never replace a key, even one made a moment ago by another process.
    if force {
        opts.write(true).create(true).truncate(true);
    } else {
        opts.write(true).create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| Failure::io(&path.display().to_string(), e))?;
    f.write_all(data)
        .map_err(|e| Failure::io(&path.display().to_string(), e))
}

/// The key to sign with: `--key`, else the default local key, made on first use (with the
/// password in COSIGN_PASSWORD, or none).
pub fn signing_key(explicit: Option<&Path>, notes: &dyn Fn(&str)) -> Result<SigningKey, Failure> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = default_key_path();
            if !p.exists() {
                let password = std::env::var(PASSWORD_ENV).unwrap_or_default();
                let prefix = p.with_extension("");
                let (k, pubk) = match write_key_pair(&prefix, &password, false) {
                    Ok(made) => made,
                    // Another hermetic made it first: use that one.
                    Err(_) if p.exists() => return signing_key(Some(&p), notes),
                    Err(e) => return Err(e),
                };
                notes(&format!(
                    "note: made the local signing key {} ({}); its public key is {}",
                    k.display(),
                    if password.is_empty() {
                        "no password: set COSIGN_PASSWORD before first use to protect it"
                    } else {
                        "password from COSIGN_PASSWORD"
                    },
                    pubk.display()
                ));
            }
            p
        }
    };
    if !path.exists() {
        return Err(Failure {
            code: Code::Input,
            message: format!("{}: no such key", path.display()),
            causes: vec![],
            fix: Some(
                "make one with `hermetic keygen`, or pass the path of an existing cosign.key"
                    .into(),
            ),
        });
    }
    let password = if explicit.is_none() {
        std::env::var(PASSWORD_ENV).unwrap_or_default().into()
    } else {
        password_for(&path, false)?
    };
    Ok(SigningKey::load(&path, password.as_bytes())?)
}

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Writes PREFIX.key and PREFIX.pub.
    #[arg(long, default_value = "cosign")]
    pub output_key_prefix: PathBuf,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

pub fn keygen(args: &KeygenArgs, out: &Output) -> Result<Code, Failure> {
    let password = password_for(&args.output_key_prefix, true)?;
    let (key, public) = write_key_pair(&args.output_key_prefix, &password, args.force)?;
    let hint = PublicKey::load(&public)?.hint().to_string();
    if out.json {
        out.emit(&json!({ "status": "ok", "exit_code": 0, "private_key": key, "public_key": public, "key_hint": hint }));
    } else {
        eprintln!("private key written to {}", key.display());
        eprintln!("public key written to {} (hint {hint})", public.display());
    }
    Ok(Code::Success)
}

#[derive(clap::Args)]
pub struct SignArgs {
    /// The file to sign.
    pub file: PathBuf,
    /// cosign private key [default: the local key, made on first use].
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Where to write the base64 signature [default: FILE.sig].
    #[arg(long)]
    pub output_signature: Option<PathBuf>,
    /// Where to write the sigstore bundle [default: FILE.sigstore.json].
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Keyless signing with a Fulcio certificate (needs Fulcio: rejected offline).
    #[arg(long)]
    pub keyless: bool,
    /// Upload the signature to the Rekor transparency log (rejected offline).
    #[arg(long)]
    pub tlog_upload: bool,
}

fn reject_online(keyless: bool, tlog: bool) -> Result<(), Failure> {
    let (what, service) = match (keyless, tlog) {
        (true, _) => (
            "--keyless",
            "a Fulcio certificate authority and an OIDC identity",
        ),
        (false, true) => ("--tlog-upload", "the Rekor transparency log"),
        _ => return Ok(()),
    };
    Err(hermetic_attest::Error::Online {
        what: what.into(),
        service: service.into(),
    }
    .into())
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn sign(args: &SignArgs, out: &Output) -> Result<Code, Failure> {
    reject_online(args.keyless, args.tlog_upload)?;
    let key = signing_key(args.key.as_deref(), &|n| eprintln!("{n}"))?;
    let data = std::fs::read(&args.file).map_err(|e| {
        Failure::input(
            &args.file,
            &format!("cannot read: {e}"),
            "pass an existing file",
        )
    })?;
    let signed = sign_blob(&data, &key)?;
    let sig_path = args
        .output_signature
        .clone()
        .unwrap_or_else(|| with_suffix(&args.file, ".sig"));
    let bundle_path = args
        .bundle
        .clone()
        .unwrap_or_else(|| with_suffix(&args.file, ".sigstore.json"));
    documents::write_atomic(&sig_path, signed.sig_base64.as_bytes())?;
    documents::write_atomic(&bundle_path, &signed.bundle.to_bytes())?;
    if out.json {
        out.emit(&json!({ "status": "ok", "exit_code": 0, "signature": sig_path, "bundle": bundle_path, "key_hint": key.hint() }));
    } else {
        eprintln!(
            "signature: {}\nbundle: {}",
            sig_path.display(),
            bundle_path.display()
        );
    }
    Ok(Code::Success)
}

#[derive(clap::Args)]
pub struct AttestArgs {
    /// An output directory of `hermetic build` (holding hermetic-build.json).
    pub dist: PathBuf,
    /// cosign private key [default: the local key, made on first use].
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Keyless signing (needs Fulcio: rejected offline).
    #[arg(long)]
    pub keyless: bool,
    /// Upload to the Rekor transparency log (rejected offline).
    #[arg(long)]
    pub tlog_upload: bool,
    /// A key whose signed provenance vouches for the directory's build record (the key
    /// of the runner that built it); the signing key's own signature always counts.
    #[arg(long = "trusted-key", value_name = "PUB")]
    pub trusted_keys: Vec<PathBuf>,
    /// The rebuild inputs' digest a gate's quorum agreed on: the record must be about
    /// exactly those (then its dependencies and package are the quorum's word too).
    #[arg(long, value_name = "SHA256")]
    pub inputs_digest: Option<String>,
}

/// Writes the documents of `dir` from its record and signs them with `key`. The artifacts
/// must be the recorded ones: just built, or checked with `documents::check_artifacts`.
pub fn attest_dir(
    dir: &Path,
    rec: &BuildRecord,
    key: Option<&SigningKey>,
) -> Result<Vec<String>, Failure> {
    let mut written = documents::write_unsigned(dir, rec)?;
    // A stale signature must not survive beside a re-written document.
    for f in documents::signature_files(rec) {
        let _ = std::fs::remove_file(dir.join(f));
    }
    if let Some(key) = key {
        written.extend(documents::sign(dir, rec, key)?);
    }
    Ok(written)
}

pub fn attest(args: &AttestArgs, out: &Output) -> Result<Code, Failure> {
    reject_online(args.keyless, args.tlog_upload)?;
    let record_path = args.dist.join(RECORD);
    if !record_path.is_file() {
        return Err(Failure::input(
            &args.dist,
            "no hermetic-build.json: not an output directory of `hermetic build`",
            "pass the --out directory of a build (default dist/)",
        ));
    }
    let key = signing_key(args.key.as_deref(), &|n| eprintln!("{n}"))?;
    let mut trusted = vec![key.public_key()?];
    for p in &args.trusted_keys {
        trusted.push(PublicKey::load(p)?);
    }
    // Signed only on the word of a signature: the record must be the one its provenance
    // was signed from by a trusted key, and every artifact what it records.
    let rec = documents::vouched_record(&args.dist, &trusted, args.inputs_digest.as_deref())?;
    let written = documents::republish(&args.dist, &rec, &key)?;
    if out.json {
        out.emit(
            &json!({ "status": "ok", "exit_code": 0, "written": written, "key_hint": key.hint() }),
        );
    } else {
        for w in &written {
            println!("{}", args.dist.join(w).display());
        }
        eprintln!("signed with key {}", key.hint());
    }
    Ok(Code::Success)
}

#[derive(clap::Args)]
pub struct VerifyAttestationArgs {
    /// A sigstore bundle (`*.sigstore.json`).
    pub bundle: PathBuf,
    /// The public key (cosign.pub).
    #[arg(long)]
    pub key: PathBuf,
    /// The artifact: checked to be what the bundle signs, or a subject of its statement.
    #[arg(long)]
    pub artifact: Option<PathBuf>,
}

pub fn verify_attestation(args: &VerifyAttestationArgs, out: &Output) -> Result<Code, Failure> {
    let key = PublicKey::load(&args.key)?;
    let v =
        hermetic_attest::verify::verify_bundle_file(&args.bundle, &key, args.artifact.as_deref());
    match v {
        Ok(v) => {
            if out.json {
                out.emit(&json!({ "status": "ok", "exit_code": 0, "verified": v }));
            } else {
                eprintln!("ok: {} signed by key {}", args.bundle.display(), v.key_hint);
                if let Some(t) = &v.predicate_type {
                    eprintln!("  statement: {t}, {} subject(s)", v.subjects.len());
                    for s in &v.subjects {
                        eprintln!(
                            "    {}  {}",
                            s.digest.get("sha256").map(String::as_str).unwrap_or("-"),
                            s.name
                        );
                    }
                }
                if let (Some(a), Some(sha)) = (&args.artifact, &v.artifact_sha256) {
                    eprintln!("  artifact {} ({sha}) matches", a.display());
                }
            }
            Ok(Code::Success)
        }
        Err(hermetic_attest::Error::Verification { path, failure }) => {
            let f = Failure {
                code: Code::CheckFailed,
                message: format!("{}: {failure} [{}]", path.display(), failure.code()),
                causes: vec![],
                fix: Some(failure.fix().into()),
            };
            Err(f)
        }
        Err(e) => Err(e.into()),
    }
}
