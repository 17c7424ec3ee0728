//! `switchyard serve [--config <file>]`: the OpenAI-compatible server. With
//! no config it serves the embedded default: the simulated pool, in-process,
//! and the trained router when `models/router-r1/` holds one (and the router built on the
//! pretrained 135M base when setup has exported `models/router-r1-135m/`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::plugin::Runtime;
use crate::server::{self, AppState, Snapshot};
use crate::sim::embedded;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); see host/config/ for annotated ones. Without
    /// it, the embedded default: the simulated pool, no API keys needed.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override `server.listen` (e.g. 127.0.0.1:0 for any free port).
    #[arg(long)]
    listen: Option<String>,
    #[command(flatten)]
    router: EmbeddedRouter,
}

/// How the embedded default's trained router decodes (a config file says it per policy).
///
/// The default is extractive: in the simulated world every answer is a name or a value the
/// question or a model's reply spells out, and copying it is what the tiny router is worst at
/// (EVALUATION.md measures all four). A config file's `[[policies]]` decode freely unless told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Decoding {
    /// Unconstrained.
    Free,
    /// Under the tag grammar (`tag_grammar`).
    Tags,
    /// Under the whole protocol grammar (`protocol_grammar`).
    Protocol,
    /// Under the protocol grammar, with answers copied from the question and the replies
    /// (`extractive_answers`).
    #[default]
    Extractive,
}

/// The embedded default's trained router: which model directory, decoded how.
#[derive(Clone, Debug, Default, Args)]
pub struct EmbeddedRouter {
    /// With the embedded default, serve this exported router as `switchyard/router-r1`
    /// instead of the shipped `models/router-r1/`.
    #[arg(long = "router", conflicts_with = "config")]
    pub dir: Option<PathBuf>,
    /// With the embedded default, how the trained router decodes.
    #[arg(long = "router-decoding", value_enum, default_value_t = Decoding::default(), conflicts_with = "config")]
    pub decoding: Decoding,
}

impl ServeArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let runtime = Runtime::with_defaults()?;
        let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
        tokio.block_on(async move {
            let snapshot = match &self.config {
                Some(path) => Snapshot::load(path, &runtime)?,
                None => embedded_snapshot(&runtime, embedded::HeldOut::Excluded, &self.router).await?,
            };
            let listen = self.listen.clone().unwrap_or_else(|| snapshot.config.server.listen.clone());
            let listener =
                tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
            let addr = listener.local_addr()?;
            let (models, policies) = (snapshot.pool.backends().len(), snapshot.policies.len());
            let auth = if snapshot.api_keys.is_empty() { "off" } else { "on" };
            let state = AppState::new(snapshot, runtime, self.config.clone());
            server::reload_on_sighup(state.clone());
            // The first line on stdout is the address: scripts and tests read it.
            println!("listening on http://{addr}");
            eprintln!(
                "switchyard: {models} models, {policies} policies, auth {auth}, config {}",
                self.config
                    .as_deref()
                    .map_or_else(|| "(embedded default: simulated pool)".into(), |p| p.display().to_string())
            );
            server::serve(listener, state, server::shutdown_signal()).await.context("server failed")
        })
    }
}

/// The embedded default: the simulated pool served in-process on loopback, the strategies,
/// the teacher, and the trained router when one is shipped. Must run inside a tokio runtime.
pub(super) async fn embedded_snapshot(
    runtime: &std::sync::Arc<Runtime>,
    held_out: embedded::HeldOut,
    router: &EmbeddedRouter,
) -> anyhow::Result<Snapshot> {
    let config = embedded::start(&embedded::find_plugins_dir()?, held_out).await?;
    let mut snapshot = Snapshot::from_config(config, runtime)?;
    // The teacher shows multi-round routing until a trained router is served.
    let world = std::sync::Arc::new(crate::sim::world::World::generate(&Default::default()));
    let teacher = crate::sim::teacher::TeacherPolicy::new("switchyard/teacher", world);
    snapshot.policies.insert("switchyard/teacher".into(), std::sync::Arc::new(teacher));
    if let Some(router) = trained_router(router)? {
        snapshot.policies.insert(embedded::ROUTER_POLICY.into(), router);
    }
    if let Some(router) = router_135m() {
        snapshot.policies.insert(embedded::ROUTER_135M_POLICY.into(), router);
    }
    // Shipped learned routers, like the trained router: served when present and sound,
    // reported and left out otherwise.
    for (name, relative) in embedded::LEARNED_ROUTERS {
        let Some(file) = embedded::find_learned(relative) else { continue };
        let mut entry = crate::config::PolicyConfig::strategy(name, "learned");
        entry.parameters = Some(file.clone());
        match crate::server::snapshot::strategy_policy(&snapshot.config, &entry, "learned", runtime, &snapshot.pool) {
            Ok(policy) => {
                snapshot.policies.insert(name.into(), std::sync::Arc::new(policy));
            }
            Err(e) => eprintln!("switchyard: not serving {name} ({}): {e:#}", file.display()),
        }
    }
    Ok(snapshot)
}

/// The router built on the pretrained 135M base, when setup has exported it: greedy and
/// unconstrained, as its warm-up evaluated it (its tokenizer has no single-token tags for the
/// tag grammar to work on). Absent or broken, it is reported and left out.
fn router_135m() -> Option<std::sync::Arc<dyn crate::engine::Policy>> {
    use crate::policy::{ModelOptions, RouterOptions};
    let dir = embedded::find_router_135m_dir()?;
    let options = RouterOptions {
        model: ModelOptions { label: embedded::ROUTER_135M_POLICY.into(), ..ModelOptions::default() },
        ..RouterOptions::default()
    };
    load_shipped(embedded::ROUTER_135M_POLICY, "", &dir, &options, "not serving it")
}

/// A shipped router, loaded and reported on stderr (`serving {what}{name} from {dir}`); one
/// that does not load is reported with `otherwise` (what is served instead) and left out.
fn load_shipped(
    name: &str,
    what: &str,
    dir: &std::path::Path,
    options: &crate::policy::RouterOptions,
    otherwise: &str,
) -> Option<std::sync::Arc<dyn crate::engine::Policy>> {
    match crate::policy::OnnxPolicy::load(name, dir, options) {
        Ok(policy) => {
            eprintln!("switchyard: serving {what}{name} from {}", dir.display());
            Some(std::sync::Arc::new(policy))
        }
        Err(e) => {
            eprintln!("switchyard: {what}{name} in {} did not load ({e}); {otherwise}", dir.display());
            None
        }
    }
}

/// The trained router for the embedded default, when one is shipped and loads. Its absence
/// (or a broken one) is reported and the strategies and the teacher are served without it:
/// the embedded default is for trying Switchyard, and must start without a trained model.
/// A router named with `--router` is another matter: it must load.
fn trained_router(router: &EmbeddedRouter) -> anyhow::Result<Option<std::sync::Arc<dyn crate::engine::Policy>>> {
    use crate::policy::{ModelOptions, OnnxPolicy, RouterOptions};
    let options = RouterOptions {
        model: ModelOptions { label: embedded::ROUTER_POLICY.into(), ..ModelOptions::default() },
        tag_grammar: router.decoding == Decoding::Tags,
        protocol_grammar: router.decoding == Decoding::Protocol,
        extractive_answers: router.decoding == Decoding::Extractive,
        ..RouterOptions::default()
    };
    if let Some(dir) = &router.dir {
        let policy = OnnxPolicy::load(embedded::ROUTER_POLICY, dir, &options)
            .with_context(|| format!("the router in {} (--router)", dir.display()))?;
        eprintln!("switchyard: serving the trained router {} from {}", embedded::ROUTER_POLICY, dir.display());
        return Ok(Some(std::sync::Arc::new(policy)));
    }
    let dir = match embedded::find_router_dir() {
        Ok(dir) => dir,
        Err(tried) => {
            eprintln!(
                "switchyard: no trained router (looked for {} in {}); serving the strategies and the teacher",
                embedded::ROUTER_DIR,
                tried
                    .iter()
                    .filter_map(|p| p.parent()?.parent())
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Ok(None);
        }
    };
    Ok(load_shipped(
        embedded::ROUTER_POLICY,
        "the trained router ",
        &dir,
        &options,
        "serving the strategies and the teacher",
    ))
}
