//! The policy runtime's errors: [`LoadError`] when a model directory cannot be served (every
//! check happens at load, so a loaded model never fails for a reason its files could have
//! shown), [`GenerateError`] when one generation cannot complete.

use std::path::PathBuf;

/// Why a model directory (or the ONNX Runtime library) could not be loaded. Each names the
/// file it is about.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The ONNX Runtime shared library: not found, not loadable, or too old.
    #[error("ONNX Runtime: {reason}")]
    Runtime { reason: String },
    /// A file of the model directory is missing or malformed.
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    /// The requested execution provider could not be used.
    #[error("{}: device `{device}`: {reason}", path.display())]
    Device { path: PathBuf, device: String, reason: String },
}

impl LoadError {
    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl Into<String>) -> LoadError {
        LoadError::File { path: path.into(), reason: reason.into() }
    }
}

/// Why one generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("token id {id} is outside the vocabulary of {vocab} tokens")]
    TokenOutOfRange { id: u32, vocab: usize },
    #[error("the prompt has {prompt} tokens; the model reads at most {max}")]
    ContextFull { prompt: usize, max: usize },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("ONNX Runtime failed running {model}: {reason}")]
    Run { model: String, reason: String },
    /// The decoder thread is gone (it failed earlier, or the policy was dropped).
    #[error("the decoder of {model} stopped")]
    Stopped { model: String },
}
