//! `switchyard-train`: trains the Switchyard router policy (supervised
//! warm-up, then PPO or GRPO with the `router-r1` reward component) with tch
//! and exports it to ONNX for the host. The training pipeline is being built
//! (see the training issue); today this binary only describes itself.

use clap::Parser;

/// Train the Switchyard router policy and export it to ONNX.
#[derive(Debug, Parser)]
#[command(name = "switchyard-train", version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    println!("switchyard-train: no training commands yet; the pipeline lands with the training issue.");
}
