//! A loaded policy model: its directory's files read and checked, its graph opened on a
//! device and probed, and its decoder thread running.
//!
//! Invariants: a [`Model`] that loaded can generate — the tokenizer's ids all index the
//! graph's vocabulary, the stop ids are in range, the chat template (if any) compiles — so
//! request-time failures come only from the request (an over-long prompt) or the runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::chat_template::ChatTemplate;
use super::decoder::Decoder;
use super::error::LoadError;
use super::generator::{DEFAULT_MAX_BATCH, Generator};
use super::graph::Signature;
use super::model_dir::{Architecture, GenerationDefaults, ModelDir, SpecialTokens, TOKENIZER_FILE};
use super::runtime::{Device, SessionOptions};
use super::stop::StopSet;
use super::tokenizer::Tokenizer;

/// How to load a model.
#[derive(Clone, Debug)]
pub struct ModelOptions {
    pub session: SessionOptions,
    /// Sequences decoded together at most (1 = no batching: one request at a time).
    pub max_batch: usize,
    /// The name logs and metrics use for it.
    pub label: String,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions { session: SessionOptions::default(), max_batch: DEFAULT_MAX_BATCH, label: "policy".into() }
    }
}

pub struct Model {
    pub dir: PathBuf,
    pub tokenizer: Arc<Tokenizer>,
    pub special: SpecialTokens,
    pub chat_template: Option<String>,
    /// The file the chat template came from.
    pub chat_template_file: Option<&'static str>,
    pub generation: GenerationDefaults,
    pub architecture: Architecture,
    pub signature: Signature,
    /// The logits' vocabulary size.
    pub vocab: usize,
    /// Where the passes run (never `auto`).
    pub device: Device,
    pub generator: Generator,
}

impl Model {
    pub fn load(dir: &Path, options: &ModelOptions) -> Result<Model, LoadError> {
        let files = ModelDir::read(dir)?;
        let decoder = Decoder::open(&files.model, &options.session, &files.architecture)?;
        let tokens = files.tokenizer.vocab_size();
        if tokens > decoder.vocab {
            return Err(LoadError::file(
                dir.join(TOKENIZER_FILE),
                format!("has {tokens} tokens, more than the {} logits of model.onnx: wrong tokenizer?", decoder.vocab),
            ));
        }
        let (signature, vocab, device) = (decoder.signature.clone(), decoder.vocab, decoder.device);
        let tokenizer = Arc::new(files.tokenizer);
        let generator = Generator::start(
            decoder,
            tokenizer.clone(),
            options.max_batch,
            files.architecture.max_position_embeddings,
            &options.label,
        )?;
        Ok(Model {
            dir: files.dir,
            tokenizer,
            special: files.special,
            chat_template: files.chat_template,
            chat_template_file: files.chat_template_file,
            generation: files.generation,
            architecture: files.architecture,
            signature,
            vocab,
            device,
            generator,
        })
    }

    /// The model's chat template, when its directory has one.
    pub fn chat_template(&self) -> Option<ChatTemplate> {
        let source = self.chat_template.as_deref()?;
        let (bos, eos) = (self.special.bos.as_deref().unwrap_or(""), self.special.eos.as_deref().unwrap_or(""));
        // Compiled once at load (ModelDir::read), so this cannot fail.
        ChatTemplate::new(source, bos, eos).ok()
    }

    /// The stop conditions `generation_config.json` gives, plus `extra` strings.
    pub fn stops(&self, extra: &[&str]) -> StopSet {
        let strings = self.generation.stop_strings.iter().cloned().chain(extra.iter().map(|s| s.to_string())).collect();
        StopSet::new(self.generation.stop_ids.clone(), strings)
    }
}
