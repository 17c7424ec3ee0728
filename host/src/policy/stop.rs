//! When a generation stops: a stop token, a stop string (which may be spread over several
//! tokens, or end inside one), or the token budget.
//!
//! Invariants: stop strings are looked for only in generated text, and only where the newest
//! token could have completed one (the new text plus the longest stop string's length before
//! it), so checking is O(1) per token; [`StopSet::cut`] ends a text right after the earliest-
//! ending stop string, as the engine's own cut does.

use serde::Serialize;

/// Why a generation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finish {
    /// The model wrote a stop token (kept, as the last token).
    StopToken(u32),
    /// The text reached a stop string (the text ends right after it).
    StopString(String),
    /// `max_new_tokens` (or the model's context) ran out.
    Length,
}

#[derive(Clone, Debug, Default)]
pub struct StopSet {
    ids: Vec<u32>,
    strings: Vec<String>,
    longest: usize,
}

impl StopSet {
    pub fn new(ids: Vec<u32>, strings: Vec<String>) -> StopSet {
        let mut strings: Vec<String> = strings.into_iter().filter(|s| !s.is_empty()).collect();
        strings.sort();
        strings.dedup();
        let longest = strings.iter().map(String::len).max().unwrap_or(0);
        StopSet { ids, strings, longest }
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    pub fn strings(&self) -> &[String] {
        &self.strings
    }

    pub fn is_stop_token(&self, id: u32) -> bool {
        self.ids.contains(&id)
    }

    /// The stop string `text` newly contains, given that its first `before` bytes were
    /// already checked.
    pub fn completed(&self, text: &str, before: usize) -> Option<&str> {
        if self.strings.is_empty() || text.len() == before {
            return None;
        }
        let mut from = before.saturating_sub(self.longest.saturating_sub(1));
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        let window = &text[from..];
        self.strings
            .iter()
            .filter_map(|s| window.find(s.as_str()).map(|i| (i + s.len(), s)))
            .min()
            .map(|(_, s)| s.as_str())
    }

    /// `text` up to and including its earliest-ending stop string (all of it when none).
    pub fn cut<'t>(&self, text: &'t str) -> &'t str {
        let end = self.strings.iter().filter_map(|s| text.find(s.as_str()).map(|i| i + s.len())).min();
        &text[..end.unwrap_or(text.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_string_spanning_pushes_is_seen_when_completed() {
        let stops = StopSet::new(vec![], vec!["</search>".into(), "</answer>".into()]);
        let mut text = String::new();
        let mut seen = None;
        for piece in ["<search>m: q</se", "ar", "ch> and more"] {
            let before = text.len();
            text.push_str(piece);
            if let Some(s) = stops.completed(&text, before) {
                seen = Some(s.to_string());
                break;
            }
        }
        assert_eq!(seen.as_deref(), Some("</search>"));
        assert_eq!(stops.cut(&text), "<search>m: q</search>");
    }

    #[test]
    fn text_checked_before_is_not_rescanned_and_multibyte_text_is_safe() {
        let stops = StopSet::new(vec![2], vec!["</answer>".into()]);
        assert!(stops.is_stop_token(2));
        let text = "ééé</answer>ü";
        assert_eq!(stops.completed(text, 3), Some("</answer>"));
        assert_eq!(stops.completed(text, text.len()), None);
        assert_eq!(stops.cut("no stop"), "no stop");
    }
}
