//! Extractive answers: the evidence an answer may be copied from, and the span matching the
//! protocol grammar ([`super::protocol_grammar`]) decodes an `<answer>` by when a policy asks
//! for extractive answers.
//!
//! The evidence of a turn is the question and the text of every information block so far
//! (the tags themselves left out): what the pool's models said, and the names the question
//! gives. A router's own `<think>` is not evidence — copying from it would copy its own
//! miscopies.
//!
//! Invariants:
//! - matching is on lower-cased text (exact match is scored case-insensitively);
//! - a span starts at a word start (a letter or digit after none) and ends at a word end of the
//!   evidence (no half words), and its inner whitespace is the evidence's own;
//! - span prefixes are prefix-closed: every prefix of an acceptable span is a viable prefix,
//!   so decoding token by token and checking character by character agree.

use std::collections::HashMap;

use crate::engine::protocol::{INFORMATION_CLOSE, INFORMATION_OPEN};
use crate::plugin::types::{Author, Segment};

/// The text an extractive answer is copied from, lower-cased, with its word starts.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    text: String,
    /// Byte offsets of the word starts of `text`, ascending, by their first character: a
    /// span's first character finds its candidates without scanning every word (the first
    /// answer token tries the whole vocabulary).
    by_first: HashMap<char, Vec<usize>>,
}

/// Joins the passages: no span may hold it, so none runs from one passage into the next.
const SEPARATOR: char = '\u{1e}';

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

impl Evidence {
    /// Evidence from passages, each kept apart (a span never runs from one into the next).
    pub fn new<'a>(passages: impl IntoIterator<Item = &'a str>) -> Evidence {
        let mut text = String::new();
        for passage in passages {
            if !text.is_empty() {
                text.push(SEPARATOR);
            }
            text.push_str(&passage.to_lowercase().replace(SEPARATOR, " "));
        }
        let mut by_first = HashMap::<char, Vec<usize>>::new();
        let mut previous: Option<char> = None;
        for (at, c) in text.char_indices() {
            let starts_word = is_word_char(c) && previous.is_none_or(|p| !is_word_char(p));
            if starts_word {
                by_first.entry(c).or_default().push(at);
            }
            previous = Some(c);
        }
        Evidence { text, by_first }
    }

    /// An episode's evidence: its question and the replies in its host segments.
    pub fn of_episode(question: &str, segments: &[Segment]) -> Evidence {
        let replies = segments.iter().filter(|s| s.author == Author::Host).map(|s| {
            let text = s.text.trim();
            let text = text.strip_prefix(INFORMATION_OPEN).unwrap_or(text);
            text.strip_suffix(INFORMATION_CLOSE).unwrap_or(text)
        });
        Evidence::new(std::iter::once(question).chain(replies))
    }

    /// Where `prefix` (lower-cased, not starting with whitespace) starts a span: the word
    /// starts it begins at (none for an empty prefix).
    pub fn starts_of(&self, prefix: &str) -> Vec<usize> {
        let Some(first) = prefix.chars().next() else { return Vec::new() };
        if prefix.contains(SEPARATOR) {
            return Vec::new();
        }
        let candidates = self.by_first.get(&first).map_or(&[][..], Vec::as_slice);
        candidates.iter().copied().filter(|&s| self.text[s..].starts_with(prefix)).collect()
    }

    /// Does a span begin with `piece` (lower-cased, not starting with whitespace)?
    pub fn begins_span(&self, piece: &str) -> bool {
        let Some(first) = piece.chars().next() else { return true };
        !piece.contains(SEPARATOR)
            && self.by_first.get(&first).is_some_and(|at| at.iter().any(|&s| self.text[s..].starts_with(piece)))
    }

    /// Does `piece` (lower-cased) continue a span of `len` bytes begun at one of `at`?
    pub fn continues(&self, at: &[usize], len: usize, piece: &str) -> bool {
        !piece.contains(SEPARATOR)
            && at.iter().any(|&s| self.text.get(s + len..).is_some_and(|rest| rest.starts_with(piece)))
    }

    /// Is `span` (lower-cased) a whole span: from a word start to a word end?
    pub fn holds_span(&self, span: &str) -> bool {
        !span.is_empty() && self.starts_of(span).into_iter().any(|s| self.ends_word(s + span.len()))
    }

    /// Is `span` (lower-cased, leading whitespace allowed) the start of a span?
    pub fn allows_prefix(&self, span: &str) -> bool {
        self.begins_span(span.trim_start())
    }

    fn ends_word(&self, end: usize) -> bool {
        let (before, after) = (self.text[..end].chars().next_back(), self.text[end..].chars().next());
        match (before, after) {
            (Some(b), Some(a)) => !is_word_char(b) || !is_word_char(a),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_start_and_end_at_word_boundaries() {
        let e = Evidence::new(["Which is older, Tarfiakeir Systems or Virglai Works?", "1949.\nI hope this helps."]);
        for span in ["tarfiakeir systems", "virglai works", "1949", "older", "i hope", "virglai works?", "1949."] {
            assert!(e.holds_span(span), "{span:?}");
        }
        // Half words, spans across passages, words the evidence does not have, the empty span.
        for span in ["tarfia", "arfiakeir", "works?\n1949", "seithfi systems", "tarfiakeir  systems", "", "?"] {
            assert!(!e.holds_span(span), "{span:?}");
        }
        // Half words are viable prefixes, a miscopy is not.
        assert!(e.allows_prefix("  tarfia") && e.allows_prefix(" ") && !e.allows_prefix("tarfiak systems"));
        assert!(e.begins_span("tarf") && e.begins_span("1949.") && !e.begins_span("arf") && !e.begins_span("?"));
    }

    #[test]
    fn continuations_follow_the_evidence() {
        let e = Evidence::new(["Kithsu is in Zakdru. Kithsu River"]);
        let at = e.starts_of("kithsu");
        assert_eq!(at.len(), 2);
        assert!(e.continues(&at, "kithsu".len(), " river") && e.continues(&at, "kithsu".len(), " is"));
        assert!(!e.continues(&at, "kithsu".len(), " lake"));
        // Past the end of the evidence nothing continues.
        assert!(!e.continues(&e.starts_of("river"), "river".len(), "s"));
    }

    #[test]
    fn an_episode_gives_its_question_and_replies_not_the_routers_text() {
        let segments = [
            Segment { author: Author::Router, text: "<think>Maybe Lorvath.</think><search>m: q</search>".into() },
            Segment { author: Author::Host, text: "\n\n<information>Kithsu.</information>\n\n".into() },
        ];
        let e = Evidence::of_episode("Where was Bribi born?", &segments);
        assert!(e.holds_span("kithsu") && e.holds_span("bribi"));
        assert!(!e.holds_span("lorvath") && !e.holds_span("information"));
    }
}
