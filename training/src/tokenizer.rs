//! The router's tokenizer: byte-level BPE, trained on the simulated world's corpus (router
//! prompts, teacher trajectories, model replies), with the chat framing tokens as special
//! tokens and the protocol's tags as single added tokens — so a stop string is one token and
//! every turn boundary is a token boundary.
//!
//! A Hugging Face `tokenizer.json` of a real base model loads through [`RouterTokenizer::load`]
//! as well; then the tags are ordinary text and stop strings are matched on decoded text.

use std::path::Path;
use std::sync::Arc;

use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, Tokenizer, TokenizerImpl};

use switchyard::engine::grammar::TagTokens;
use switchyard::engine::protocol;
use switchyard::engine::protocol_grammar::Vocabulary;

/// Framing tokens (ChatML); `<|endoftext|>` pads.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
pub const PAD_TOKEN: &str = "<|endoftext|>";
pub const END_OF_TURN: &str = "<|im_end|>";

/// The protocol's tags, one token each.
pub const TAG_TOKENS: [&str; 8] = [
    protocol::THINK_OPEN,
    protocol::THINK_CLOSE,
    protocol::SEARCH_OPEN,
    protocol::SEARCH_CLOSE,
    protocol::INFORMATION_OPEN,
    protocol::INFORMATION_CLOSE,
    protocol::ANSWER_OPEN,
    protocol::ANSWER_CLOSE,
];

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("tokenizer: {0}")]
    Tokenizers(String),
}

fn tk_error(e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Tokenizers(e.to_string())
}

/// A tokenizer plus the ids generation needs.
pub struct RouterTokenizer {
    pub inner: Tokenizer,
    pub pad_id: i64,
    /// Ids that end a turn of generation: `</search>`, `</answer>` and end-of-turn/text,
    /// when the vocabulary has them as single tokens.
    pub stop_ids: Vec<i64>,
    /// The protocol tags and stop tokens, and every token's text: what a constrained decoder
    /// masks by (see `switchyard::engine::protocol_grammar`).
    pub vocab: Arc<Vocabulary>,
}

impl RouterTokenizer {
    fn from_tokenizer(inner: Tokenizer) -> RouterTokenizer {
        let id = |t: &str| inner.token_to_id(t).map(i64::from);
        let pad_id = id(PAD_TOKEN).or_else(|| id("<|end_of_text|>")).unwrap_or(0);
        let stop_ids = [protocol::SEARCH_CLOSE, protocol::ANSWER_CLOSE, END_OF_TURN, PAD_TOKEN, "<|eot_id|>"]
            .iter()
            .filter_map(|t| id(t))
            .collect::<Vec<i64>>();
        let stop_u32: Vec<u32> = stop_ids.iter().filter_map(|&i| u32::try_from(i).ok()).collect();
        let tags = TagTokens::new(|t| inner.token_to_id(t), &stop_u32);
        let size = inner.get_vocab_size(true);
        let vocab = Arc::new(Vocabulary::from_decoder(tags, size, |id| inner.decode(&[id], false).ok()));
        RouterTokenizer { inner, pad_id, stop_ids, vocab }
    }

    /// The tag and stop columns a constrained decoder masks.
    pub fn tags(&self) -> &TagTokens {
        self.vocab.tags()
    }

    /// Train byte-level BPE with `vocab_size` entries (special and tag tokens included).
    pub fn train<I>(texts: I, vocab_size: usize) -> Result<RouterTokenizer, TokenizerError>
    where
        I: Iterator<Item = String> + Send,
    {
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(
                SPECIAL_TOKENS.iter().chain(TAG_TOKENS.iter()).map(|t| AddedToken::from(*t, true)).collect(),
            )
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut tokenizer: TokenizerImpl<BPE, NormalizerWrapper, ByteLevel, PostProcessorWrapper, ByteLevel> =
            TokenizerImpl::new(BPE::default());
        // No prefix space, and decoding restores the text exactly.
        tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        tokenizer.with_decoder(Some(ByteLevel::new(false, true, true)));
        tokenizer.train(&mut trainer, texts).map_err(tk_error)?;
        let mut tokenizer: Tokenizer = tokenizer.into();
        tokenizer.add_special_tokens(&SPECIAL_TOKENS.map(|t| AddedToken::from(t, true)));
        // Tags are added tokens but not "special": decoding keeps them.
        tokenizer.add_tokens(&TAG_TOKENS.map(|t| AddedToken::from(t, false)));
        Ok(RouterTokenizer::from_tokenizer(tokenizer))
    }

    pub fn load(path: &Path) -> Result<RouterTokenizer, TokenizerError> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| TokenizerError::File { path: path.display().to_string(), message: e.to_string() })?;
        Ok(RouterTokenizer::from_tokenizer(inner))
    }

    pub fn save(&self, path: &Path) -> Result<(), TokenizerError> {
        self.inner
            .save(path, false)
            .map_err(|e| TokenizerError::File { path: path.display().to_string(), message: e.to_string() })
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn encode(&self, text: &str) -> Result<Vec<i64>, TokenizerError> {
        let encoding = self.inner.encode(text, false).map_err(tk_error)?;
        Ok(encoding.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    pub fn decode(&self, ids: &[i64]) -> Result<String, TokenizerError> {
        let ids: Vec<u32> = ids.iter().filter_map(|&i| u32::try_from(i).ok()).collect();
        self.inner.decode(&ids, false).map_err(tk_error)
    }

    pub fn id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> impl Iterator<Item = String> + Send {
        (0..200).map(|i| {
            format!(
                "<|im_start|>user\nQuestion: Who founded Kerneth Zaththeth {i}?<|im_end|>\n<think>Ask llama-3.1-8b.</think>\n<search>llama-3.1-8b: Who founded Kerneth?</search>\n\n<information>Zaththeth.</information>\n\n<answer>Zaththeth</answer>"
            )
        })
    }

    #[test]
    fn trained_tokenizer_round_trips_and_tags_are_single_tokens() {
        let t = RouterTokenizer::train(corpus(), 400).unwrap();
        let text = "<think>héllo 42 Zaththeth</think>\n<search>x: y</search>  tabs\tand ünïcode";
        assert_eq!(t.decode(&t.encode(text).unwrap()).unwrap(), text);
        for tag in TAG_TOKENS {
            assert_eq!(t.encode(tag).unwrap(), vec![t.id(tag).unwrap()], "{tag}");
        }
        assert!(t.stop_ids.contains(&t.id("</search>").unwrap()));
        assert!(t.stop_ids.contains(&t.id("</answer>").unwrap()));
        assert!(t.vocab_size() <= 400 + SPECIAL_TOKENS.len() + TAG_TOKENS.len());
    }

    #[test]
    fn save_load_round_trip_and_a_missing_file_is_a_clear_error() {
        let t = RouterTokenizer::train(corpus(), 300).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        t.save(&path).unwrap();
        let back = RouterTokenizer::load(&path).unwrap();
        let text = "<answer>Kerneth Zaththeth</answer>";
        assert_eq!(back.encode(text).unwrap(), t.encode(text).unwrap());
        assert_eq!(back.pad_id, t.pad_id);
        let err = RouterTokenizer::load(&dir.path().join("nope.json")).err().unwrap().to_string();
        assert!(err.contains("nope.json"), "{err}");
    }
}
