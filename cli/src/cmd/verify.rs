//! `hermetic verify`: builds the same inputs on several runners with varied environments,
//! compares every output, explains any difference and names the variation that causes it.

use crate::cmd::build::{self, Built, build_project};
use crate::exit::{Code, Failure, Output};
use crate::progress::Spinner;
use hermetic_attest::compare::{self, FileDiff, RunnerOutputs, RunnerStrings};
use hermetic_attest::record::{RECORD, VerifiedRunner};
use hermetic_attest::report::{
    Attribution, Probe, RunnerReport, Unavailable, Unsupported, Verdict, VerifyReport,
};
use hermetic_sandbox::breaker::{Admission, Breakers};
use hermetic_sandbox::build::BuildEnv;
use hermetic_sandbox::endpoint::Endpoint;
use hermetic_sandbox::engine::Engine;
use hermetic_sandbox::run::RunId;
use hermetic_sandbox::vary;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const REPORT_JSON: &str = hermetic_attest::documents::KEPT_REPORTS[0];
pub const REPORT_MD: &str = hermetic_attest::documents::KEPT_REPORTS[1];

#[derive(clap::Args, Clone)]
#[group(id = "verify-options")]
pub struct Args {
    /// The project: its directory or its Cargo.toml [default: --manifest-path].
    pub path: Option<PathBuf>,
    /// Number of runners on the local engine; runner 1 is the reference, the others vary.
    #[arg(long, default_value_t = 3)]
    pub runners: usize,
    /// A runner's Docker endpoint: `local`, `unix:///path.sock`, `docker+unix://…`,
    /// `tcp://HOST:PORT` (TLS from DOCKER_TLS_VERIFY/DOCKER_CERT_PATH), `https://HOST:PORT`
    /// or `ssh://[USER@]HOST[:PORT]`. Repeat once per runner (the first is the reference);
    /// replaces --runners and the runners of hermetic.toml.
    #[arg(long = "runner", value_name = "ENDPOINT")]
    pub runner: Vec<String>,
    /// Runner configuration [default: hermetic.toml beside the project's Cargo.toml, if
    /// present]; its `[[runners]]` replace --runners. Only a file named here may choose
    /// engines other than the local one: the project's own file is not trusted to.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Variations for runners 2..N: `all`, `none`, or a list such as `build-path,tz`.
    #[arg(long, default_value = "all")]
    pub vary: String,
    /// Builds run at the same time on each engine [default: that engine's CPU count].
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Do not rebuild with one variation at a time to name the cause of a mismatch.
    #[arg(long)]
    pub no_explain: bool,
    /// Do not hash what each build made on the way, so a mismatch is not traced to a crate.
    #[arg(long)]
    pub no_trace: bool,
    /// Rebuild even if the memo holds a verdict for these exact inputs.
    #[arg(long)]
    pub no_cache: bool,
    /// Attach diffoscope's report for differing files (needs diffoscope installed).
    #[arg(long)]
    pub diffoscope: bool,
    /// Runners that must answer (and agree) [default: all]. An unreachable engine then
    /// costs a runner, not the verification.
    #[arg(long)]
    pub quorum: Option<usize>,
    /// Consecutive infrastructure failures after which an endpoint is skipped.
    #[arg(long, default_value_t = 2)]
    pub breaker_threshold: u32,
    /// Seconds an endpoint is skipped once its breaker is open.
    #[arg(long, default_value_t = 300)]
    pub breaker_cooldown: u64,
    #[command(flatten)]
    pub build: build::Args,
}

/// Where a runner builds: the local engine, or an endpoint as written.
#[derive(Clone)]
struct Place {
    /// `None`: the local engine.
    endpoint: Option<Endpoint>,
    /// `local`, or the endpoint as written (reports, breakers, the memo key).
    label: String,
    name: Option<String>,
    /// This runner's own variations (hermetic.toml), as written and as parsed, else --vary.
    vary: Option<(String, Vec<String>)>,
}

/// A runner: its name, environment and the variations that made it.
#[derive(Clone)]
struct Runner {
    name: String,
    /// Runner 1: the fixed environment, the image as named, the outputs that are released.
    reference: bool,
    place: Place,
    env: BuildEnv,
    variations: Vec<String>,
}

impl Runner {
    fn engine_name(&self) -> &str {
        &self.place.label
    }
}

fn strings(r: &Runner) -> RunnerStrings {
    let mut environment = vec![r.env.locale.clone(), r.env.tz.clone()];
    if let Some(h) = &r.env.home {
        environment.push(h.clone());
    }
    environment.extend(r.env.extra_env.iter().map(|(_, v)| v.clone()));
    RunnerStrings {
        runner: r.name.clone(),
        build_path: r.env.build_path.clone(),
        hostname: r.env.hostname.clone(),
        domainname: r.env.domainname.clone(),
        environment,
    }
}

fn input(message: String, fix: &str) -> Failure {
    Failure {
        code: Code::Input,
        message,
        causes: vec![],
        fix: Some(fix.into()),
    }
}

fn local() -> Place {
    Place {
        endpoint: None,
        label: "local".into(),
        name: None,
        vary: None,
    }
}

/// Where each runner builds: --runner, else the runners of hermetic.toml, else --runners
/// on the local engine.
fn places(args: &Args) -> Result<Vec<Place>, Failure> {
    let config_path = args.config.clone().unwrap_or_else(|| {
        args.build
            .manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(hermetic_sandbox::config::FILE)
    });
    let config = if args.runner.is_empty() {
        let origin = match args.config {
            Some(_) => hermetic_sandbox::config::Origin::User,
            None => hermetic_sandbox::config::Origin::Project,
        };
        let loaded = hermetic_sandbox::config::Config::load(&config_path, origin).map_err(|e| {
            input(
                e.to_string(),
                "fix the runners table (see the README's hermetic.toml section)",
            )
        })?;
        if loaded.is_none() && args.config.is_some() {
            return Err(input(
                format!("--config {}: no such file", config_path.display()),
                "pass an existing hermetic.toml",
            ));
        }
        loaded.unwrap_or_default()
    } else {
        Default::default()
    };
    let endpoints: Vec<Place> = if !args.runner.is_empty() {
        args.runner
            .iter()
            .map(|r| match r.as_str() {
                "local" => Ok(local()),
                e => Endpoint::parse(e, None)
                    .map(|endpoint| Place {
                        endpoint: Some(endpoint),
                        label: e.to_string(),
                        name: None,
                        vary: None,
                    })
                    .map_err(|m| {
                        input(
                            format!("--runner {e}: {m}"),
                            "write local, unix:///path/to/docker.sock, tcp://HOST:PORT or ssh://USER@HOST",
                        )
                    }),
            })
            .collect::<Result<_, _>>()?
    } else if !config.runners.is_empty() {
        config
            .runners
            .into_iter()
            .map(|r| {
                let vary = r
                    .vary
                    .map(|v| {
                        let written = v.join(",");
                        vary::parse(&written).map(|parsed| (written, parsed))
                    })
                    .transpose()
                    .map_err(|e| {
                        input(
                            format!("{}: runner {}: vary: {e}", config_path.display(), r.spec),
                            "use names from the README's variation table",
                        )
                    })?;
                Ok(Place {
                    endpoint: (r.spec != "local").then_some(r.endpoint),
                    label: r.spec,
                    name: r.name,
                    vary,
                })
            })
            .collect::<Result<_, Failure>>()?
    } else {
        vec![local(); args.runners]
    };
    if endpoints.len() < 2 {
        return Err(input(
            format!(
                "{} runner(s): verification needs at least 2 runners",
                endpoints.len()
            ),
            "pass --runners 2 or more, or --runner twice or more",
        ));
    }
    Ok(endpoints)
}

/// Digest of everything a verdict depends on.
fn inputs_digest(
    args: &Args,
    vendored: &hermetic_deps::VendorOutcome,
    inputs: &build::Inputs,
    image_id: &str,
    runners: &[Runner],
) -> String {
    let doc = json!({
        "hermetic": env!("CARGO_PKG_VERSION"),
        "lockfile": vendored.manifest.lockfile_sha256,
        "vendor": vendored.manifest.vendor_key,
        "vendor_tree": inputs.snapshot.vendor_tree_sha256,
        "image": image_id,
        // Names, modes, contents and SOURCE_DATE_EPOCH of every file sent in.
        "sources": inputs.snapshot.source_tree_sha256,
        "runners": runners.iter().map(|r| json!([r.name, r.engine_name(), r.variations])).collect::<Vec<_>>(),
        "features": args.build.features,
        // A report made without attribution must not answer a run that asks for it.
        "explain": !args.no_explain,
        "trace": !args.no_trace,
    });
    hex::encode(Sha256::digest(doc.to_string()))
}

/// What every build of one verification shares: the arguments, the vendored tree, how many
/// builds may run at once and where progress goes.
struct Fleet<'a> {
    args: &'a Args,
    vendored: &'a hermetic_deps::VendorOutcome,
    /// Per engine label: how many of its builds run at once, and with how many jobs.
    slots: HashMap<String, Slots>,
    json_out: bool,
    multi: &'a indicatif::MultiProgress,
    /// The reference engine's builder image.
    image_id: String,
    /// What every runner builds.
    inputs: &'a build::Inputs,
}

impl Fleet<'_> {
    /// Builds every runner into `work/NAME`, as many at a time on each engine as its slots
    /// allow; results in runner order.
    async fn build(&self, runners: &[Runner], work: &Path) -> Vec<Result<Built, Failure>> {
        let futures = runners.iter().map(|r| {
            let slots = self.slots.get(&r.place.label);
            let sem = slots.map(|s| s.running.clone());
            let mut bargs = self.args.build.clone();
            if bargs.jobs.is_none() {
                bargs.jobs = slots.and_then(|s| s.jobs);
            }
            bargs.out = work.join(&r.name);
            // Runners are compared, not released: only the verified result is signed.
            bargs.no_sign = true;
            bargs.key = None;
            if !r.reference {
                // Every other runner builds with the reference's image, by digest (copied
                // to its engine if it lacked it).
                bargs.image = self.image_id.clone();
            }
            let spinner = Spinner::attached(self.multi, self.json_out, &r.name);
            async move {
                spinner.stage("waiting for a slot");
                let _permit = match &sem {
                    Some(sem) => Some(sem.acquire().await),
                    None => None,
                };
                let built = build_project(
                    &bargs,
                    self.vendored,
                    &spinner,
                    &RunId::new(),
                    build::Runner {
                        id: &r.name,
                        endpoint: r.place.endpoint.as_ref(),
                        env: r.env.clone(),
                        variations: &r.variations,
                        inputs: Some(self.inputs),
                        trace: !self.args.no_trace,
                    },
                    false,
                )
                .await;
                match &built {
                    Ok(_) => spinner.done("built"),
                    Err(e) => spinner.done(&format!("failed: {}", e.message)),
                }
                built.map_err(|mut e| {
                    e.message = format!("{}: {}", r.name, e.message);
                    e
                })
            }
        });
        futures_util::future::join_all(futures).await
    }

    /// Builds all runners; the first failure fails the verification.
    async fn build_ok(&self, runners: &[Runner], work: &Path) -> Result<Vec<Built>, Failure> {
        self.build(runners, work).await.into_iter().collect()
    }
}

/// One engine's share of the builds.
struct Slots {
    /// Its builds running at once.
    running: Arc<tokio::sync::Semaphore>,
    /// Cargo jobs per build; `None`: cargo's default (one per CPU of the engine).
    jobs: Option<u32>,
    cpus: usize,
    parallel: usize,
}

/// The CPUs an engine's containers get (`docker info`'s NCPU). An engine that does not
/// answer counts as this machine; its builds then fail on their own.
async fn engine_cpus(place: &Place) -> usize {
    let here = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let engine = match &place.endpoint {
        Some(e) => Engine::connect_endpoint(e).await,
        None => Engine::connect().await,
    };
    match engine {
        Ok(engine) => engine
            .docker
            .info()
            .await
            .ok()
            .and_then(|i| i.ncpu)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(here),
        Err(_) => here,
    }
}

/// CPU budget, per engine: builds running at once on one engine share its CPUs, instead of
/// each starting one job per CPU and slowing all of them down. An engine runs at most
/// `parallel` (default: its CPUs) builds at a time, each with `CPUs / running` jobs (at
/// least 1); `jobs` (--jobs) overrides. Runners on other engines do not count: they use
/// their own CPUs.
async fn budget(
    runners: &[Runner],
    parallel: Option<usize>,
    jobs: Option<u32>,
) -> HashMap<String, Slots> {
    let mut slots = HashMap::new();
    for r in runners {
        if slots.contains_key(&r.place.label) {
            continue;
        }
        let on_engine = runners
            .iter()
            .filter(|o| o.place.label == r.place.label)
            .count();
        let cpus = engine_cpus(&r.place).await;
        // One build per CPU at a time. Measured on ripgrep with 3 runners on 2 CPUs: all
        // three at once (one job each) took 166 s against 152 s this way (mean of 2 rounds).
        let at_once = parallel.unwrap_or(cpus).min(on_engine).max(1);
        let jobs = match jobs {
            Some(j) => Some(j),
            None if at_once > 1 => u32::try_from((cpus / at_once).max(1)).ok(),
            None => None,
        };
        slots.insert(
            r.place.label.clone(),
            Slots {
                running: Arc::new(tokio::sync::Semaphore::new(at_once)),
                jobs,
                cpus,
                parallel: at_once,
            },
        );
    }
    slots
}

/// Makes the reference's image present on every other engine the runners use, once per
/// engine: per engine label, whether it was there or copied, or why it could not be.
async fn copy_image(
    reference: &Engine,
    image_id: &str,
    reference_place: &Place,
    runners: &[Runner],
    main: &Spinner,
) -> HashMap<String, Result<hermetic_sandbox::image::Presence, String>> {
    let mut copies = HashMap::new();
    for r in runners.iter().skip(1) {
        let Some(endpoint) = &r.place.endpoint else {
            continue;
        };
        if Some(endpoint) == reference_place.endpoint.as_ref()
            || copies.contains_key(&r.place.label)
        {
            continue;
        }
        main.stage(&format!("checking the builder image on {}", r.place.label));
        let copied = async {
            let to = Engine::connect_endpoint(endpoint).await?;
            hermetic_sandbox::image::ensure_present(reference, &to, image_id).await
        }
        .await;
        if let Ok(hermetic_sandbox::image::Presence::Transferred) = copied {
            main.println(&format!(
                "note: copied the builder image {image_id} to {}",
                r.place.label
            ));
        }
        copies.insert(
            r.place.label.clone(),
            copied.map_err(|e| Failure::from(e).message),
        );
    }
    copies
}

fn outputs(name: &str, b: &Built) -> RunnerOutputs {
    RunnerOutputs {
        runner: name.into(),
        digests: b.artifacts.clone(),
    }
}

/// Binaries that differ between two builds (the archive follows from them).
fn differing(a: &Built, b: &Built) -> Vec<String> {
    compare::compare(&[outputs("a", a), outputs("b", b)])
        .into_iter()
        .filter(|f| !f.same && f.name != a.archive)
        .map(|f| f.name)
        .collect()
}

pub async fn run(args: &Args, out: &Output) -> Result<Code, Failure> {
    let args = &Args {
        build: crate::cmd::build::with_project_image(&args.build, args.config.as_deref())?,
        ..args.clone()
    };
    let variations = vary::parse(&args.vary).map_err(|e| {
        input(
            format!("--vary: {e}"),
            "pass all, none, or names from the README's variation table",
        )
    })?;
    let mut args = args.clone();
    if let Some(p) = &args.path {
        args.build.manifest_path = if p.is_dir() {
            p.join("Cargo.toml")
        } else {
            p.clone()
        };
    }
    let places = places(&args)?;
    let multi = indicatif::MultiProgress::new();
    let main = Spinner::attached(&multi, out.json, "verify");
    let vendored = crate::cmd::vendor::vendor_step(
        &args.build.manifest_path,
        args.build.policy.as_deref(),
        &main,
    )?;
    let workspace = vendored.workspace_root.clone();
    let out_dir = if args.build.out.is_relative() {
        std::env::current_dir()
            .map_err(|e| Failure::io("current directory", e))?
            .join(&args.build.out)
    } else {
        args.build.out.clone()
    };
    build::guard_out(&out_dir)?;
    build::writable_dirs(
        &workspace,
        &[workspace.join("target").join("hermetic").join("verify")],
        &out_dir,
    )?;
    let key = if args.build.no_sign {
        None
    } else {
        Some(crate::cmd::sign::signing_key(
            args.build.key.as_deref(),
            &|n| main.println(n),
        )?)
    };
    // The reference engine's image names the inputs; every runner reports its own.
    let engine = match &places[0].endpoint {
        Some(e) => Engine::connect_endpoint(e).await?,
        None => Engine::connect().await?,
    };
    main.stage("inspecting the builder image");
    let image = hermetic_sandbox::image::show(&engine, &args.build.image).await?;
    let image_id = image.digest.clone();
    // What the image cannot vary is left out of `--vary all`, and refused by name.
    let no_clock = |e: String| {
        input(
            format!("--vary: {e}"),
            "leave clock out, or make the image with `hermetic image bootstrap --update-lock`",
        )
    };
    let has_faketime = image.faketime.is_some();
    let (variations, mut not_applied) =
        vary::fit_to_image(&args.vary, variations, has_faketime).map_err(no_clock)?;
    let mut runners: Vec<Runner> = vec![];
    for (i, place) in places.iter().enumerate() {
        let k = i + 1;
        let name = place.name.clone().unwrap_or_else(|| format!("runner-{k}"));
        let vars = match (k, &place.vary) {
            (1, _) => vec![],
            // A runner's own list is held to the image like --vary (`all` fits it).
            (_, Some((written, v))) => {
                let (kept, dropped) = vary::fit_to_image(written, v.clone(), has_faketime)
                    .map_err(|e| {
                        input(
                            format!("hermetic.toml: runner {name}: vary: {e}"),
                            "leave clock out of that runner's vary, or make the image with \
                             `hermetic image bootstrap --update-lock`",
                        )
                    })?;
                not_applied.extend(dropped);
                kept
            }
            (_, None) => variations.clone(),
        };
        runners.push(Runner {
            name,
            reference: k == 1,
            place: place.clone(),
            env: vary::env_for(&vars, k),
            variations: vars,
        });
    }
    not_applied.sort();
    not_applied.dedup();
    for (name, why) in &not_applied {
        main.println(&format!("note: variation {name} is not applied: {why}"));
    }
    // Read once: every runner builds these bytes, whatever happens to the workspace now.
    main.stage("reading inputs");
    let snapshot = build::Inputs::take(&vendored, &out_dir)?;
    let inputs = inputs_digest(&args, &vendored, &snapshot, &image_id, &runners);

    let memo = hermetic_attest::memo::Memo::in_cache(&hermetic_deps::cache::Cache::from_env())?;
    let memo_key = hermetic_attest::memo::key(&inputs, key.as_ref().map(|k| k.hint()));
    if !args.no_cache {
        match memo.lookup(&memo_key, &out_dir) {
            hermetic_attest::memo::Lookup::Hit(mut report) => {
                main.done("answered from the memo");
                report.memo = true;
                emit(out, &report, &out_dir);
                return Ok(exit_code(&report));
            }
            hermetic_attest::memo::Lookup::Miss => {}
            hermetic_attest::memo::Lookup::Stale(warning) => {
                main.println(&format!("warning: {warning}"))
            }
        }
    }

    let run = RunId::new();
    let work = workspace
        .join("target")
        .join("hermetic")
        .join("verify")
        .join(&run.0);
    let breakers = Breakers::in_cache(
        args.breaker_threshold,
        std::time::Duration::from_secs(args.breaker_cooldown),
    );
    let quorum = hermetic_sandbox::quorum::required(args.quorum, runners.len());
    // Endpoints whose breaker is open are not even tried.
    let mut unavailable: Vec<Unavailable> = vec![];
    let mut admitted = vec![];
    for r in runners {
        match breakers.admit(r.engine_name()) {
            Admission::Open {
                until_unix,
                failures,
            } => unavailable.push(Unavailable {
                runner: r.name.clone(),
                engine: r.engine_name().into(),
                reason: format!(
                    "skipped: breaker open after {failures} consecutive failure(s), until {}",
                    hermetic_attest::time::rfc3339(until_unix as i64)
                ),
                breaker_open: true,
            }),
            Admission::HalfOpen => {
                main.println(&format!(
                    "note: {}: cooldown over, trying {} again",
                    r.name,
                    r.engine_name()
                ));
                admitted.push(r);
            }
            Admission::Closed => admitted.push(r),
        }
    }
    // Engines that lack the reference's image get a copy, once per engine, before any
    // build; an engine that cannot take it costs its runners.
    let copies = copy_image(&engine, &image_id, &places[0], &admitted, &main).await;
    let (admitted, lost): (Vec<Runner>, Vec<Runner>) = admitted
        .into_iter()
        .partition(|r| !matches!(copies.get(&r.place.label), Some(Err(_))));
    for r in lost {
        let reason = match copies.get(&r.place.label) {
            Some(Err(m)) => m.clone(),
            _ => String::new(),
        };
        let open = breakers.record(r.engine_name(), false);
        unavailable.push(Unavailable {
            runner: r.name.clone(),
            engine: r.engine_name().into(),
            reason: format!("the builder image could not be made present: {reason}"),
            breaker_open: open,
        });
    }
    let slots = budget(&admitted, args.parallel, args.build.jobs).await;
    // The jobs variation must differ from what the reference runs with.
    let reference_jobs = admitted
        .first()
        .and_then(|r| slots.get(&r.place.label))
        .and_then(|s| s.jobs);
    let mut admitted = admitted;
    for r in admitted.iter_mut().skip(1) {
        if r.variations.iter().any(|v| v == "jobs") && r.env.jobs == reference_jobs {
            r.env.jobs = Some(if reference_jobs == Some(1) { 2 } else { 1 });
        }
    }
    let mut engines: Vec<String> = slots
        .iter()
        .map(|(label, s)| format!("{label}: {} at a time on {} CPUs", s.parallel, s.cpus))
        .collect();
    engines.sort();
    main.stage(&format!(
        "building on {} runners ({})",
        admitted.len(),
        engines.join("; ")
    ));
    let fleet = Fleet {
        args: &args,
        vendored: &vendored,
        slots,
        json_out: out.json,
        multi: &multi,
        image_id: image_id.clone(),
        inputs: &snapshot,
    };
    let started = std::time::Instant::now();
    let results = fleet.build(&admitted, &work).await;
    let build_secs = started.elapsed().as_secs_f64();
    let mut runners = vec![];
    let mut built = vec![];
    for (r, result) in admitted.into_iter().zip(results) {
        match result {
            Ok(b) => {
                breakers.record(r.engine_name(), true);
                runners.push(r);
                built.push(b);
            }
            Err(e)
                if hermetic_sandbox::quorum::cost(e.code == Code::Infrastructure)
                    == hermetic_sandbox::quorum::Cost::Runner =>
            {
                let open = breakers.record(r.engine_name(), false);
                unavailable.push(Unavailable {
                    runner: r.name.clone(),
                    engine: r.engine_name().into(),
                    reason: e.message.clone(),
                    breaker_open: open,
                });
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(message) = hermetic_sandbox::quorum::short(
        runners.first().is_some_and(|r| r.reference),
        runners.len(),
        runners.len() + unavailable.len(),
        quorum,
    ) {
        return Err(Failure {
            code: Code::Infrastructure,
            message,
            causes: unavailable
                .iter()
                .map(|u| format!("{} ({}): {}", u.runner, u.engine, u.reason))
                .collect(),
            fix: Some(
                "bring the engines back, or lower --quorum; an open breaker is retried after --breaker-cooldown seconds"
                    .into(),
            ),
        });
    }
    let outs: Vec<RunnerOutputs> = runners
        .iter()
        .zip(&built)
        .map(|(r, b)| outputs(&r.name, b))
        .collect();
    let files = compare::compare(&outs);
    let reproducible = files.iter().all(|f| f.same);

    let mut differences: Vec<FileDiff> = vec![];
    let mut attribution = None;
    let mut crates = vec![];
    if !reproducible {
        main.stage("explaining the differences");
        for (k, b) in built.iter().enumerate().skip(1) {
            for name in differing(&built[0], b) {
                let d = compare::diff_files(
                    &name,
                    (&runners[0].name, &built[0].out.join(&name)),
                    (&runners[k].name, &b.out.join(&name)),
                    &strings(&runners[0]),
                    &strings(&runners[k]),
                )
                .map_err(|e| Failure::io(&name, e))?;
                differences.push(d);
            }
        }
        // The crates that differ first, from what the reference and the first differing
        // runner made on the way.
        if let Some(k) = (1..built.len()).find(|&k| !differing(&built[0], &built[k]).is_empty())
            && let (Some(a), Some(b)) = (made(&built[0]), made(&built[k]))
        {
            crates = hermetic_attest::culprit::culprits(&a, &b, &vendored.manifest);
        }
        if !args.no_explain {
            attribution = attribute(&fleet, &runners, &built, &work).await?;
            if attribution.as_ref().is_some_and(|a| a.inherent) {
                differences.iter_mut().for_each(FileDiff::mark_inherent);
            }
        }
    }

    let report = VerifyReport {
        verdict: if reproducible {
            Verdict::Reproducible
        } else {
            Verdict::Mismatch
        },
        inputs_digest: inputs.clone(),
        image: image_id,
        runners: runners
            .iter()
            .zip(&built)
            .map(|(r, b)| RunnerReport {
                runner: r.name.clone(),
                engine: r.engine_name().to_string(),
                image: b.record.image.digest.clone(),
                image_transferred: matches!(
                    copies.get(&r.place.label),
                    Some(Ok(hermetic_sandbox::image::Presence::Transferred))
                ),
                deps_reused: b.result.deps_reused,
                toolchain_reused: b.result.toolchain_reused,
                variations: r.variations.clone(),
                // As built: with the jobs its engine's budget gave it.
                environment: serde_json::to_value(&b.result.env).unwrap_or_default(),
                artifacts: b.artifacts.clone(),
            })
            .collect(),
        unsupported_variations: not_applied
            .iter()
            .map(|(n, why)| Unsupported {
                name: n.clone(),
                why: why.clone(),
            })
            .collect(),
        files,
        differences,
        crates,
        attribution,
        build_seconds: (build_secs * 10.0).round() / 10.0,
        quorum,
        unavailable,
        memo: false,
    };

    // The output directory: a release (outputs, documents, reports) only when reproducible.
    let staging = build::staging_for(&out_dir, &run);
    let _ = std::fs::remove_dir_all(&staging);
    let write = || -> Result<(), Failure> {
        if reproducible {
            // The reference's outputs become the release; a copy only across file systems.
            if std::fs::rename(&built[0].out, &staging).is_err() {
                copy_dir(&built[0].out, &staging)?;
            }
            let mut rec = built[0].record.clone();
            rec.verified_by = runners
                .iter()
                .map(|r| VerifiedRunner {
                    runner: r.name.clone(),
                    engine: r.engine_name().to_string(),
                    variations: r.variations.clone(),
                    container: serde_json::to_value(&r.env).unwrap_or_default(),
                })
                .collect();
            hermetic_attest::documents::write_atomic(&staging.join(RECORD), &rec.to_bytes())?;
            crate::cmd::sign::attest_dir(&staging, &rec, key.as_ref())?;
        } else {
            std::fs::create_dir_all(&staging)
                .map_err(|e| Failure::io(&staging.display().to_string(), e))?;
        }
        if args.diffoscope && !reproducible {
            attach_diffoscope(&staging, &built, &report.differences, &main);
        }
        write_reports(&staging, &report)?;
        build::replace_dir(&staging, &out_dir)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    // The runners' outputs are kept only when they explain a mismatch.
    if reproducible {
        let _ = std::fs::remove_dir_all(&work);
    }
    // A verdict reached without every runner is not the answer for these inputs.
    if report.unavailable.is_empty()
        && let Err(e) = memo.remember(&memo_key, &report, &out_dir)
    {
        // Only a shortcut: the next run builds again.
        main.println(&format!(
            "warning: the verdict could not be remembered: {e}"
        ));
    }
    main.done(if reproducible {
        "reproducible"
    } else {
        "MISMATCH"
    });
    emit(out, &report, &out_dir);
    Ok(exit_code(&report))
}

fn exit_code(report: &VerifyReport) -> Code {
    if report.reproducible() {
        Code::Success
    } else {
        Code::CheckFailed
    }
}

/// What a runner's build made on the way, as its container left it.
fn made(b: &Built) -> Option<hermetic_attest::culprit::Made> {
    let i = b.result.intermediates.as_ref()?;
    hermetic_attest::culprit::Made::read(&i.sums, &i.build_outputs, &b.result.env.build_path)
}

/// Rebuilds to name the cause: the reference again (inherent nondeterminism), then each
/// variation of the first differing runner alone.
async fn attribute(
    fleet: &Fleet<'_>,
    runners: &[Runner],
    built: &[Built],
    work: &Path,
) -> Result<Option<Attribution>, Failure> {
    let Some(k) = (1..built.len()).find(|&k| !differing(&built[0], &built[k]).is_empty()) else {
        return Ok(None);
    };
    let target = &runners[k];
    let explain_dir = work.join("explain");
    // First the reference again: if identical builds differ, no variation can be blamed.
    let again = Runner {
        name: "explain-reference-again".into(),
        reference: false,
        place: runners[0].place.clone(),
        env: BuildEnv::default(),
        variations: vec![],
    };
    let again = fleet
        .build_ok(std::slice::from_ref(&again), &explain_dir)
        .await?;
    let inherent = again
        .first()
        .is_some_and(|b| !differing(&built[0], b).is_empty());
    let mut tested = vec![];
    if !inherent {
        let probes: Vec<Runner> = target
            .variations
            .iter()
            .map(|v| Runner {
                name: format!("explain-{v}"),
                reference: false,
                // The reference's engine: only the variation differs from it.
                place: runners[0].place.clone(),
                // Runner k's own value of the variation: the one that showed the difference.
                env: {
                    let mut env = vary::env_for(std::slice::from_ref(v), k + 1);
                    if v == "jobs" {
                        env.jobs = target.env.jobs;
                    }
                    env
                },
                variations: vec![v.clone()],
            })
            .collect();
        let rebuilt = fleet.build_ok(&probes, &explain_dir).await?;
        for (p, b) in probes.iter().zip(&rebuilt) {
            let files = differing(&built[0], b);
            tested.push(Probe {
                variation: p.variations[0].clone(),
                differs: !files.is_empty(),
                files,
            });
        }
    }
    Ok(Some(Attribution {
        against: target.name.clone(),
        inherent,
        culprits: tested
            .iter()
            .filter(|p| p.differs)
            .map(|p| p.variation.clone())
            .collect(),
        tested,
    }))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(to).map_err(|e| Failure::io(&to.display().to_string(), e))?;
    for e in std::fs::read_dir(from).map_err(|e| Failure::io(&from.display().to_string(), e))? {
        let e = e.map_err(|e| Failure::io(&from.display().to_string(), e))?;
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), &dest)
                .map_err(|err| Failure::io(&dest.display().to_string(), err))?;
        }
    }
    Ok(())
}

fn attach_diffoscope(dir: &Path, built: &[Built], diffs: &[FileDiff], main: &Spinner) {
    if !hermetic_deps::host::scrub(&mut std::process::Command::new("diffoscope"))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        main.println("note: --diffoscope: diffoscope is not installed or does not start (`diffoscope --version` fails); skipped");
        return;
    }
    for (i, d) in diffs.iter().enumerate() {
        let Some(other) = built.iter().find(|b| b.out.ends_with(&d.other_runner)) else {
            continue;
        };
        let report = dir.join(format!("diffoscope-{i}-{}.txt", d.name));
        let _ = hermetic_deps::host::scrub(&mut std::process::Command::new("diffoscope"))
            .arg("--text")
            .arg(&report)
            .arg(built[0].out.join(&d.name))
            .arg(other.out.join(&d.name))
            .output();
    }
}

fn write_reports(dir: &Path, report: &VerifyReport) -> Result<(), Failure> {
    let json = hermetic_attest::statement::to_pretty(report);
    hermetic_attest::documents::write_atomic(&dir.join(REPORT_JSON), &json)?;
    hermetic_attest::documents::write_atomic(&dir.join(REPORT_MD), report.markdown().as_bytes())?;
    Ok(())
}

fn emit(out: &Output, report: &VerifyReport, out_dir: &Path) {
    if out.json {
        let mut r = serde_json::to_value(report).unwrap_or_default();
        r["status"] = json!(if report.reproducible() {
            "ok"
        } else {
            "mismatch"
        });
        r["exit_code"] = json!(exit_code(report) as u8);
        r["out"] = json!(out_dir);
        r["cause"] = json!(report.cause());
        out.emit(&r);
        return;
    }
    let verdict = if report.reproducible() {
        "reproducible"
    } else {
        "mismatch"
    };
    let n = report.runners.len();
    if report.memo {
        eprintln!(
            "{verdict} on {n} runners (from the memo for these inputs: no build ran; --no-cache rebuilds)"
        );
        return;
    }
    eprintln!("{verdict} on {n} runners → {}", out_dir.display());
    for line in report.summary_lines() {
        eprintln!("  {line}");
    }
    if !report.reproducible() {
        eprintln!("  details: {}", out_dir.join(REPORT_MD).display());
    }
}
