//! The `switchyard` command line. Subcommands live one per module; this
//! file only declares them and dispatches.

use clap::{Parser, Subcommand};

mod demo;
mod eval;
mod learned;
mod plugin;
mod policy;
mod score;
mod serve;
mod sim;
mod teacher;

/// Switchyard: an LLM router trained with RL, with sandboxed Wasm plugins.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build, inspect and run plugin components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Inspect and run a trained router (an ONNX model directory).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Run the reference plugins end to end on a sample routing episode.
    Demo(demo::DemoArgs),
    /// Serve the OpenAI-compatible routing API.
    Serve(serve::ServeArgs),
    /// Run datasets through policies and score them: traces, summaries, report.
    Eval(eval::EvalArgs),
    /// Train the single-round learned routers (KNN, MLP) from evaluation traces.
    #[command(subcommand)]
    Learned(learned::LearnedCommand),
    /// Score raw trajectories (JSONL) with a reward component.
    Score(score::ScoreArgs),
    /// The simulated world: serve its models, export its questions.
    #[command(subcommand)]
    Sim(sim::SimCommand),
}

/// Let SIGPIPE end the process, as it does other Unix tools. Rust ignores it, so `println!` into
/// a closed pipe (`switchyard eval ... | head`) panics instead. For jobs, not servers: a
/// supervisor closing a server's log pipe must not kill it. Call before spawning threads.
pub fn end_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: resets one signal's disposition; called before other threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

impl Cli {
    /// Whether the command serves (runs until stopped) rather than doing a job and exiting.
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Serve(_) | Command::Sim(sim::SimCommand::Serve { .. }))
    }

    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Plugin(cmd) => cmd.run(),
            Command::Policy(cmd) => cmd.run(),
            Command::Demo(args) => args.run(),
            Command::Serve(args) => args.run(),
            Command::Eval(args) => args.run(),
            Command::Learned(cmd) => cmd.run(),
            Command::Score(args) => args.run(),
            Command::Sim(cmd) => cmd.run(),
        }
    }
}
