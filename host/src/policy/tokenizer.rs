//! The policy's tokenizer (a Hugging Face `tokenizer.json`) and the incremental detokenizer
//! that lets generation see its text token by token.
//!
//! Invariants: text is encoded without the post-processor's special tokens (the chat
//! template writes whatever framing the model needs, as Hugging Face's `apply_chat_template`
//! followed by `add_special_tokens=False` does, and as the training crate encodes) and decoded
//! with special tokens kept, so a turn's text holds every token the model wrote; a
//! [`TextStream`]'s text is always the decoding of the tokens pushed so far, less a trailing
//! incomplete UTF-8 sequence.

use std::path::Path;

use super::error::{GenerateError, LoadError};

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

fn tokenizer_error(e: tokenizers::Error) -> GenerateError {
    GenerateError::Tokenizer(e.to_string())
}

impl Tokenizer {
    pub fn load(path: &Path) -> Result<Tokenizer, LoadError> {
        if !path.is_file() {
            return Err(LoadError::file(path, "missing (the model directory needs its tokenizer.json)"));
        }
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| LoadError::file(path, format!("not a valid tokenizer: {e}")))?;
        Ok(Tokenizer { inner })
    }

    /// Entries in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, GenerateError> {
        Ok(self.inner.encode(text, false).map_err(tokenizer_error)?.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, GenerateError> {
        self.inner.decode(ids, false).map_err(tokenizer_error)
    }
}

/// Text decoded as tokens arrive (Hugging Face's `DecodeStream` state, owned, so one stream per
/// sequence can live in the decoder's tables).
#[derive(Default)]
pub struct TextStream {
    /// Tokens still needed to decode the next chunk in context.
    window: Vec<u32>,
    prefix: String,
    prefix_index: usize,
    /// Every token pushed.
    all: Vec<u32>,
    /// Set when the stream could not decode incrementally: from then on every push decodes
    /// all tokens (slower, always right).
    whole: bool,
    text: String,
}

impl TextStream {
    /// Append `id`; returns the length the text had before it, so a caller can look for what
    /// the new text completed.
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<usize, GenerateError> {
        let before = self.text.len();
        self.all.push(id);
        if !self.whole {
            let step = tokenizers::tokenizer::step_decode_stream(
                &tokenizer.inner,
                vec![id],
                false,
                &mut self.window,
                &mut self.prefix,
                &mut self.prefix_index,
            );
            match step {
                Ok(Some(chunk)) => self.text.push_str(&chunk),
                Ok(None) => {}
                // A decoder whose output for a window is not a prefix of the next one.
                Err(_) => self.whole = true,
            }
        }
        if self.whole {
            let full = tokenizer.decode(&self.all)?;
            self.text = full.trim_end_matches('\u{FFFD}').to_string();
        }
        Ok(before.min(self.text.len()))
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}
