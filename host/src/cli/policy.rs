//! `switchyard policy check | generate`: inspect a policy model directory and run it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::policy::model_dir::{PROVENANCE_FILE, ROUTER_PROMPT_FILE, TOKENIZER_CONFIG_FILE};
use crate::policy::router::DEFAULT_MAX_NEW_TOKENS;
use crate::policy::stop::Finish;
use crate::policy::{
    ChatMessage, Device, GenerateOptions, Model, ModelOptions, RouterPrompt, Sampling, SessionOptions, runtime,
};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load a model directory and report its graph, cache layout, vocabulary, chat template
    /// and stop tokens.
    Check(CheckArgs),
    /// Generate a continuation of a prompt (greedy unless --temperature is given).
    Generate(GenerateArgs),
}

/// Where and how to load the model.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The model directory (model.onnx, tokenizer.json, tokenizer_config.json, generation_config.json).
    dir: PathBuf,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
    /// The ONNX Runtime library (default: ORT_DYLIB_PATH, then .venv/libonnxruntime.so).
    #[arg(long)]
    onnxruntime: Option<PathBuf>,
    /// Threads ONNX Runtime uses inside one operator (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

impl LoadArgs {
    fn load(&self) -> anyhow::Result<Model> {
        let options = ModelOptions {
            session: SessionOptions {
                device: self.device,
                intra_threads: self.threads,
                library: self.onnxruntime.clone(),
            },
            label: self.dir.display().to_string(),
            ..ModelOptions::default()
        };
        Ok(Model::load(&self.dir, &options)?)
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// The prompt text (raw, or the user message with --chat).
    #[arg(long, required_unless_present = "messages")]
    prompt: Option<String>,
    /// A JSON file holding the conversation, `[{"role": "system", "content": "..."}, ...]`,
    /// framed by the model's chat template with the assistant's turn opened (implies --chat).
    #[arg(long, conflicts_with = "prompt")]
    messages: Option<PathBuf>,
    /// Frame the prompt as a user message with the model's chat template and open the
    /// assistant's turn.
    #[arg(long)]
    chat: bool,
    /// Cap on new tokens (default: generation_config.json's max_new_tokens, else 256).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Sampling temperature (absent or 0: greedy).
    #[arg(long)]
    temperature: Option<f32>,
    /// Nucleus sampling mass in (0, 1] (with --temperature).
    #[arg(long)]
    top_p: Option<f32>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print token ids, text, time to first token and tokens/s as JSON.
    #[arg(long)]
    json: bool,
}

impl PolicyCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            PolicyCommand::Check(args) => check(&args),
            PolicyCommand::Generate(args) => generate(&args),
        }
    }
}

fn token_name(model: &Model, id: u32) -> String {
    model.tokenizer.id_to_token(id).unwrap_or_else(|| "?".into())
}

/// The base and adapter a merged model records (`provenance.json`), checked: an adapter
/// trained on other base weights than the ones it was merged into is refused.
fn provenance(dir: &std::path::Path) -> anyhow::Result<Option<serde_json::Value>> {
    let path = dir.join(PROVENANCE_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let base = value["base"]["weights_sha256"].as_str();
    let trained_on = value["adapter"]["base_weights_sha256"].as_str();
    anyhow::ensure!(base.is_some(), "{}: no base.weights_sha256", path.display());
    if let (Some(base), Some(trained_on)) = (base, trained_on) {
        anyhow::ensure!(
            base == trained_on,
            "{}: the adapter was trained on base weights {trained_on} but merged into {base}; rebuild it from the base the adapter names",
            path.display()
        );
    }
    Ok(Some(value))
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let model = args.load.load()?;
    let provenance = provenance(&model.dir)?;
    let library = runtime::library_path(args.load.onnxruntime.as_deref())?;
    let s = &model.signature;
    let template_source = model.chat_template_file;
    // The router prompt the model was trained on, checked as the policy checks it at load.
    let router_prompt = RouterPrompt::trained_on(&model.dir)?.map(|_| ROUTER_PROMPT_FILE);
    let stops: Vec<(u32, String)> = model.generation.stop_ids.iter().map(|&id| (id, token_name(&model, id))).collect();
    if args.json {
        let ports = |ports: &[crate::policy::graph::Port]| {
            ports
                .iter()
                .map(|p| json!({ "name": p.name, "type": p.display, "dtype": p.element.map(|e| e.to_string()) }))
                .collect::<Vec<_>>()
        };
        let report = json!({
            "dir": model.dir,
            "device": model.device,
            "onnxruntime": library,
            "inputs": ports(&s.inputs),
            "outputs": ports(&s.outputs),
            "dtype": "float32",
            "layers": s.layers,
            "kv_heads": s.kv_heads,
            "head_dim": s.head_dim,
            "position_ids": s.position_ids,
            "vocab_size": model.vocab,
            "tokenizer_vocab_size": model.tokenizer.vocab_size(),
            "chat_template": template_source,
            "router_prompt": router_prompt,
            "bos_token": model.special.bos,
            "eos_token": model.special.eos,
            "pad_token": model.special.pad,
            "stop_ids": model.generation.stop_ids,
            "stop_tokens": stops.iter().map(|(_, t)| t).collect::<Vec<_>>(),
            "stop_strings": model.generation.stop_strings,
            "max_position_embeddings": model.architecture.max_position_embeddings,
            "provenance": provenance,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("model:          {}", model.dir.display());
    println!("device:         {}", model.device);
    println!("onnxruntime:    {}", library.display());
    println!("inputs:");
    for p in &s.inputs {
        println!("  {:<28} {}", p.name, p.display);
    }
    println!("outputs:");
    for p in &s.outputs {
        println!("  {:<28} {}", p.name, p.display);
    }
    println!("dtype:          float32");
    println!("layers:         {}", s.layers);
    println!("kv heads:       {}", s.kv_heads);
    println!("head dim:       {}", s.head_dim);
    println!("vocabulary:     {} (tokenizer {})", model.vocab, model.tokenizer.vocab_size());
    match template_source {
        Some(file) => println!("chat template:  found ({file})"),
        None => println!("chat template:  none"),
    }
    match router_prompt {
        Some(file) => println!("router prompt:  the model's own ({file})"),
        None => println!("router prompt:  the shipped one"),
    }
    let or_none = |t: &Option<String>| t.clone().unwrap_or_else(|| "-".into());
    println!(
        "special tokens: bos {}, eos {}, pad {}",
        or_none(&model.special.bos),
        or_none(&model.special.eos),
        or_none(&model.special.pad)
    );
    println!(
        "stop ids:       {}",
        if stops.is_empty() {
            "none".to_string()
        } else {
            stops.iter().map(|(id, t)| format!("{id} {t}")).collect::<Vec<_>>().join(", ")
        }
    );
    println!("stop strings:   {:?}", model.generation.stop_strings);
    if let Some(max) = model.architecture.max_position_embeddings {
        println!("max positions:  {max}");
    }
    if let Some(p) = &provenance {
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
        let (base, adapter) = (&p["base"], &p["adapter"]);
        let package = match (base["package"].as_str(), base["version"].as_str()) {
            (Some(name), Some(version)) => format!(" ({name}=={version})"),
            _ => String::new(),
        };
        println!("base:           {}{package}", text(&base["path"]));
        println!("base sha256:    {}", text(&base["weights_sha256"]));
        println!(
            "adapter:        {} (LoRA r {}, alpha {})",
            text(&adapter["path"]),
            adapter["r"],
            adapter["lora_alpha"]
        );
        println!("adapter sha256: {}", text(&adapter["weights_sha256"]));
        println!("trained on:     {}", text(&adapter["base_weights_sha256"]));
    }
    println!("ok");
    Ok(())
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    if let Some(t) = args.temperature {
        anyhow::ensure!(t.is_finite() && t >= 0.0, "--temperature must be finite and >= 0, got {t}");
    }
    if let Some(p) = args.top_p {
        anyhow::ensure!(p > 0.0 && p <= 1.0, "--top-p must be in (0, 1], got {p}");
    }
    let messages = match &args.messages {
        Some(path) => Some(read_messages(path)?),
        None => None,
    };
    let model = args.load.load()?;
    let raw = args.prompt.clone().unwrap_or_default();
    let text = if args.chat || messages.is_some() {
        let template = model.chat_template().with_context(|| {
            format!("--chat: {} has no chat template", args.load.dir.join(TOKENIZER_CONFIG_FILE).display())
        })?;
        let messages = messages.unwrap_or_else(|| vec![ChatMessage::new("user", &raw)]);
        template.render(&messages, true)?
    } else {
        raw
    };
    let prompt = model.tokenizer.encode(&text)?;
    let sampling = match args.temperature {
        Some(t) if t > 0.0 => Sampling { temperature: t, top_p: args.top_p.unwrap_or(1.0) },
        _ => Sampling::GREEDY,
    };
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens.or(model.generation.max_new_tokens).unwrap_or(DEFAULT_MAX_NEW_TOKENS),
        sampling,
        seed: args.seed,
        stop: model.stops(&[]),
        grammar: None,
    };
    let generation = model.generator.generate_blocking(prompt, options)?;
    // An end-of-turn or padding token that ended the generation (`<|im_end|>`) is the chat
    // framing, not text; a protocol tag that stops a turn (`</search>`) is text and stays.
    let framing = |token: &str| [&model.special.eos, &model.special.pad].iter().any(|s| s.as_deref() == Some(token));
    let text = match generation.finish {
        Finish::StopToken(id) => match model.tokenizer.decode(&[id]) {
            Ok(stop) if framing(&stop) => {
                generation.text.strip_suffix(stop.as_str()).unwrap_or(&generation.text).to_string()
            }
            _ => generation.text.clone(),
        },
        _ => generation.text.clone(),
    };
    if args.json {
        let n = generation.tokens.len();
        let ttft = generation.time_to_first_token.as_secs_f64();
        let elapsed = generation.elapsed.as_secs_f64();
        // The decode rate: tokens after the first over the time after the first.
        let tokens_per_second = if n > 1 && elapsed > ttft { (n - 1) as f64 / (elapsed - ttft) } else { 0.0 };
        let report = json!({
            "prompt_tokens": generation.prompt_tokens,
            "tokens": generation.tokens,
            "text": text,
            "finish": generation.finish,
            "time_to_first_token_ms": ttft * 1e3,
            "elapsed_ms": elapsed * 1e3,
            "tokens_per_second": tokens_per_second,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{text}");
    }
    Ok(())
}

/// The conversation in a `--messages` file: a non-empty JSON array of `{"role", "content"}`.
fn read_messages(path: &std::path::Path) -> anyhow::Result<Vec<ChatMessage>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Message {
        role: String,
        content: String,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let messages: Vec<Message> = serde_json::from_str(&text).with_context(|| {
        format!("{}: expected a JSON array of {{\"role\": ..., \"content\": ...}} messages", path.display())
    })?;
    anyhow::ensure!(!messages.is_empty(), "{}: no messages", path.display());
    Ok(messages.into_iter().map(|m| ChatMessage { role: m.role, content: m.content }).collect())
}
