//! `switchyard serve --config <file>`: the OpenAI-compatible server.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::plugin::Runtime;
use crate::server::{self, AppState, Snapshot};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); see examples/ for annotated ones.
    #[arg(long)]
    config: PathBuf,
    /// Override `server.listen` (e.g. 127.0.0.1:0 for any free port).
    #[arg(long)]
    listen: Option<String>,
}

impl ServeArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let runtime = Runtime::with_defaults()?;
        let snapshot = Snapshot::load(&self.config, &runtime)?;
        let listen = self.listen.clone().unwrap_or_else(|| snapshot.config.server.listen.clone());
        let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
        tokio.block_on(async move {
            let listener =
                tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
            let addr = listener.local_addr()?;
            let (models, policies) = (snapshot.pool.backends().len(), snapshot.policies.len());
            let auth = if snapshot.api_keys.is_empty() { "off" } else { "on" };
            let state = AppState::new(snapshot, runtime, Some(self.config.clone()));
            server::reload_on_sighup(state.clone());
            // The first line on stdout is the address: scripts and tests read it.
            println!("listening on http://{addr}");
            eprintln!(
                "switchyard: {} models, {} policies, auth {auth}, config {}",
                models,
                policies,
                server::describe(Some(&self.config))
            );
            server::serve(listener, state, server::shutdown_signal()).await.context("server failed")
        })
    }
}
