//! The protocol grammar of one router turn: the tag grammar ([`super::grammar`]) plus rules on
//! the text between the tags and on the turn's token budget, for constrained decoding.
//!
//! The text rules (each one something the reward's format check or the engine rejects; none
//! forbids what a valid trajectory needs):
//! - between blocks only whitespace, and the episode's first turn opens with `<think>`;
//! - a turn ends at the closing tag of a `<search>` or an `<answer>` (the stop strings), never
//!   at a stop token: a turn that ends otherwise is one the engine cannot act on;
//! - no block is closed empty (a `<think>` of only `...` neither);
//! - a search names a pool model (a name or an alias, any case) before its colon, with at most
//!   [`MAX_NAME_PADDING`] whitespace characters on either side of the name;
//! - with [`TurnRules::evidence`] (extractive answers), an answer is a span of the evidence
//!   ([`super::answer_spans`]), with at most [`MAX_NAME_PADDING`] whitespace characters before it.
//!   This one is a choice of the operator, not a format rule: it forbids answers the question and
//!   the replies do not spell out.
//!
//! The budget rule: a quarter of the turn's tokens is reserved for its action. With one more than
//! the reserve left an open `<think>` is closed; a `<search>` is opened only with the reserve still
//! left, and an `<answer>` always may be; with one token left an open block is closed. A turn that
//! would have run out of tokens inside a block ends in a complete action instead — except a
//! search whose model name, spelled a character a token, does not fit in the reserve (more than
//! the reserve less 7 characters): its name can still be cut, and the search is malformed.
//!
//! Invariants:
//! - [`TurnState::mask`] never allows nothing: when the rules leave no token, it falls back to
//!   the tag grammar's mask;
//! - the text rules are prefix-closed, so [`check_turn_text`], which walks a text character by
//!   character, accepts what token-by-token decoding can write (the budget aside);
//! - with `text_rules` off the mask is exactly the tag grammar's, and with no tag tokens in the
//!   vocabulary nothing is masked.

use std::sync::Arc;

use super::answer_spans::Evidence;
use super::grammar::{Tag, TagTokens, TurnGrammar};
use crate::plugin::types::ModelDescriptor;

/// A `<think>` is opened only with room for this many tokens of thought before the reserve.
const MIN_THINK_TOKENS: usize = 4;

/// The most whitespace characters before, and after, a search's model name.
pub const MAX_NAME_PADDING: usize = 2;

/// What the grammar needs to know of a vocabulary: its tag and stop columns, and each token's
/// text.
#[derive(Clone, Debug)]
pub struct Vocabulary {
    tags: TagTokens,
    /// Per token id, its text decoded alone (columns' entries are unused).
    texts: Vec<String>,
    /// The same, lower-cased, for matching model names.
    lower: Vec<String>,
    /// Ids of the tokens that are whitespace and nothing else.
    whitespace: Vec<u32>,
}

impl Vocabulary {
    /// `texts[id]` is token `id` decoded on its own.
    pub fn new(tags: TagTokens, texts: Vec<String>) -> Vocabulary {
        let whitespace = (0..texts.len() as u32)
            .filter(|&id| {
                let t = &texts[id as usize];
                !tags.is_column(id) && !t.is_empty() && t.chars().all(char::is_whitespace)
            })
            .collect();
        let lower = texts.iter().map(|t| t.to_lowercase()).collect();
        Vocabulary { tags, texts, lower, whitespace }
    }

    /// From a tokenizer of `size` tokens: `decode(id)` is one token's text. A token that does
    /// not decode alone (a piece of a UTF-8 character) counts as empty: it never spells a name.
    pub fn from_decoder(tags: TagTokens, size: usize, decode: impl Fn(u32) -> Option<String>) -> Vocabulary {
        let texts = (0..size as u32).map(|id| decode(id).unwrap_or_default()).collect();
        Vocabulary::new(tags, texts)
    }

    pub fn tags(&self) -> &TagTokens {
        &self.tags
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    fn text(&self, token: u32) -> &str {
        self.texts.get(token as usize).map_or("", String::as_str)
    }
}

/// What a decoder may write next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mask {
    /// Every token but the tag columns whose bits are set ([`TagTokens::forbidden`]); 0 is no
    /// constraint at all.
    Forbid(u32),
    /// Only these token ids (never empty).
    Only(Arc<[u32]>),
}

impl Mask {
    pub const FREE: Mask = Mask::Forbid(0);

    /// May `token` be written under this mask?
    pub fn allows(&self, tags: &TagTokens, token: u32) -> bool {
        match self {
            Mask::Forbid(bits) => !tags.forbidden_ids(*bits).any(|id| id == token),
            Mask::Only(ids) => ids.contains(&token),
        }
    }
}

/// The rules one turn is decoded under.
#[derive(Clone, Debug)]
pub struct TurnRules {
    /// The engine's final turn: no `<search>`.
    pub final_turn: bool,
    /// The episode's first turn: it opens with `<think>`.
    pub first_turn: bool,
    /// The most tokens the turn may write (the decoder's `max_new_tokens`).
    pub budget: usize,
    /// Lower-cased, trimmed names and aliases a search may call.
    pub models: Arc<[String]>,
    /// False: the tag grammar alone (how runs before the text rules decoded).
    pub text_rules: bool,
    /// Extractive answers: an answer must be a span of this evidence (with `text_rules`).
    pub evidence: Option<Arc<Evidence>>,
}

impl TurnRules {
    /// The tag grammar alone.
    pub fn tags_only(final_turn: bool) -> TurnRules {
        TurnRules {
            final_turn,
            first_turn: false,
            budget: usize::MAX,
            models: Arc::from([]),
            text_rules: false,
            evidence: None,
        }
    }

    /// The names and aliases of `pool`'s models, as [`TurnRules::models`] holds them.
    pub fn pool_names(pool: &[ModelDescriptor]) -> Arc<[String]> {
        let names = pool.iter().flat_map(|m| std::iter::once(&m.name).chain(&m.aliases));
        TurnRules::model_names(names.map(String::as_str))
    }

    /// The names a search may call, from a pool's names and aliases.
    pub fn model_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Arc<[String]> {
        let mut names: Vec<String> =
            names.into_iter().map(|n| n.trim().to_lowercase()).filter(|n| !n.is_empty()).collect();
        names.sort();
        names.dedup();
        names.into()
    }

    /// Tokens kept for the action after a `<think>`: a quarter of the budget.
    fn reserve(&self) -> usize {
        self.budget / 4
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Outside,
    Think,
    /// In a `<search>`, before its colon.
    SearchName,
    /// In a `<search>`, after its colon.
    SearchQuery,
    Answer,
}

/// Where one turn's decoding stands.
#[derive(Clone, Debug)]
pub struct TurnState {
    rules: TurnRules,
    grammar: TurnGrammar,
    phase: Phase,
    /// Text of the open block so far (in a search's query phase: the text after the colon).
    content: String,
    /// Tokens written so far.
    written: usize,
    opened_any: bool,
    /// The last tag closed a search or an answer: the turn is complete.
    complete: bool,
}

impl TurnState {
    pub fn new(rules: TurnRules) -> TurnState {
        let grammar = TurnGrammar::new(rules.final_turn);
        TurnState {
            rules,
            grammar,
            phase: Phase::Outside,
            content: String::new(),
            written: 0,
            opened_any: false,
            complete: false,
        }
    }

    /// Tokens left, counting the next one.
    fn left(&self) -> usize {
        self.rules.budget.saturating_sub(self.written)
    }

    fn blank(&self) -> bool {
        let c = self.content.trim();
        c.is_empty() || (self.phase == Phase::Think && c == "...")
    }

    /// May `tag` be written next?
    pub fn allows_tag(&self, tag: Tag) -> bool {
        if !self.grammar.allows(tag) {
            return false;
        }
        if !self.rules.text_rules {
            return true;
        }
        let left = self.left();
        match self.phase {
            Phase::Outside if self.rules.first_turn && !self.opened_any => tag == Tag::ThinkOpen,
            Phase::Outside => match tag {
                Tag::ThinkOpen => left > self.rules.reserve() + 1 + MIN_THINK_TOKENS,
                Tag::SearchOpen => left >= self.rules.reserve(),
                _ => true,
            },
            Phase::Think => !self.blank() || left <= self.rules.reserve() + 1,
            Phase::SearchName => left <= 1,
            Phase::SearchQuery => !self.blank() || left <= 1,
            Phase::Answer => (!self.blank() && self.answer_is_a_span()) || left <= 1,
        }
    }

    /// Without evidence any answer is; with it, a whole span of it.
    fn answer_is_a_span(&self) -> bool {
        self.rules.evidence.as_ref().is_none_or(|e| e.holds_span(self.content.trim().to_lowercase().as_str()))
    }

    /// With evidence, may the answer so far go on with `piece` (lower-cased)?
    fn answer_allows(&self, evidence: &Evidence, piece: &str) -> bool {
        let candidate = format!("{}{piece}", self.content.to_lowercase());
        let body = candidate.trim_start();
        candidate[..candidate.len() - body.len()].chars().count() <= MAX_NAME_PADDING && evidence.allows_prefix(body)
    }

    /// May `text` (an ordinary token's text, no tag) be written next?
    pub fn allows_text(&self, text: &str) -> bool {
        if !self.rules.text_rules {
            return true;
        }
        let left = self.left();
        match self.phase {
            Phase::Outside => left > self.rules.reserve() && text.chars().all(char::is_whitespace),
            Phase::Think => left > self.rules.reserve() + 1,
            Phase::SearchName => {
                left > 1 && names_a_model_lower(&format!("{}{text}", self.content).to_lowercase(), &self.rules.models)
            }
            Phase::SearchQuery => left > 1,
            Phase::Answer => {
                left > 1 && self.rules.evidence.as_ref().is_none_or(|e| self.answer_allows(e, &text.to_lowercase()))
            }
        }
    }

    /// May a stop token end the turn here? Under the text rules never: a turn ends at its
    /// action's closing tag.
    pub fn may_end(&self) -> bool {
        !self.rules.text_rules && self.grammar.may_end()
    }

    /// True once the turn has closed a search or an answer.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The mask for the next token.
    pub fn mask(&self, vocab: &Vocabulary) -> Mask {
        let tags = vocab.tags();
        if tags.has_no_tags() {
            return Mask::FREE;
        }
        let text_is_free = !self.rules.text_rules
            || match self.phase {
                Phase::Think => self.left() > self.rules.reserve() + 1,
                Phase::SearchQuery => self.left() > 1,
                Phase::Answer => self.left() > 1 && self.rules.evidence.is_none(),
                Phase::Outside | Phase::SearchName => false,
            };
        if text_is_free {
            return Mask::Forbid(tags.forbidden_by(|t| self.allows_tag(t), self.may_end()));
        }
        let mut only: Vec<u32> =
            Tag::ALL.iter().filter(|t| self.allows_tag(**t)).filter_map(|t| tags.id_of(*t)).collect();
        match self.phase {
            Phase::Outside => {
                only.extend(vocab.whitespace.iter().copied().filter(|&id| self.allows_text(vocab.text(id))))
            }
            Phase::SearchName if self.left() > 1 => {
                // The hot loop of a search: every token against the names, without allocating.
                let content = self.content.to_lowercase();
                let mut candidate = String::with_capacity(content.len() + 16);
                only.extend((0..vocab.len() as u32).filter(|&id| {
                    let piece = &vocab.lower[id as usize];
                    if piece.is_empty() || tags.is_column(id) {
                        return false;
                    }
                    candidate.clear();
                    candidate.push_str(&content);
                    candidate.push_str(piece);
                    names_a_model_lower(&candidate, &self.rules.models)
                }));
            }
            Phase::Answer if self.left() > 1 => {
                if let Some(evidence) = &self.rules.evidence {
                    only.extend(self.answer_tokens(vocab, evidence));
                }
            }
            // Anywhere else text is free (handled above) or, at the budget's end, not allowed.
            _ => {}
        }
        if only.is_empty() { Mask::Forbid(tags.forbidden(&self.grammar)) } else { Mask::Only(only.into()) }
    }

    /// The text tokens that keep an answer a viable span of `evidence`: the word starts the
    /// answer so far matches at are found once, then each token is tried against them alone.
    fn answer_tokens<'v>(&self, vocab: &'v Vocabulary, evidence: &'v Evidence) -> impl Iterator<Item = u32> + 'v {
        let answer = self.content.to_lowercase();
        let body = answer.trim_start().to_string();
        let padding = answer[..answer.len() - body.len()].chars().count();
        // Without a body yet each token finds its own candidates (`begins_span`).
        let at = if body.is_empty() { Vec::new() } else { evidence.starts_of(&body) };
        let tags = vocab.tags();
        (0..vocab.len() as u32).filter(move |&id| {
            let piece = &vocab.lower[id as usize];
            if piece.is_empty() || tags.is_column(id) {
                return false;
            }
            if !body.is_empty() {
                return evidence.continues(&at, body.len(), piece);
            }
            let word = piece.trim_start();
            padding + piece[..piece.len() - word.len()].chars().count() <= MAX_NAME_PADDING
                && evidence.begins_span(word)
        })
    }

    /// Record a written token.
    pub fn observe(&mut self, vocab: &Vocabulary, token: u32) {
        self.written += 1;
        let tags = vocab.tags();
        if let Some(tag) = tags.tag_of(token) {
            self.observe_tag(tag);
        } else if !tags.is_column(token) {
            self.observe_text(vocab.text(token));
        }
    }

    fn observe_tag(&mut self, tag: Tag) {
        self.grammar.advance(tag);
        self.opened_any |= tag.opens();
        self.complete = matches!(tag, Tag::SearchClose | Tag::AnswerClose);
        self.content.clear();
        self.phase = match self.grammar.closer() {
            None => Phase::Outside,
            Some(Tag::ThinkClose) => Phase::Think,
            Some(Tag::SearchClose) => Phase::SearchName,
            Some(_) => Phase::Answer,
        };
    }

    fn observe_text(&mut self, text: &str) {
        if self.phase == Phase::Outside {
            return;
        }
        self.content.push_str(text);
        if self.phase == Phase::SearchName
            && let Some((_, query)) = self.content.split_once(':')
        {
            self.content = query.to_string();
            self.phase = Phase::SearchQuery;
        }
    }
}

/// Can `text`, the start of a search's content, lower-cased, still become `name:` for one of
/// `models` (lower-cased)? Once it holds the colon, the part before it must be one of them.
fn names_a_model_lower(text: &str, models: &[String]) -> bool {
    let padding = |s: &str, trimmed: &str| s[trimmed.len()..].chars().count();
    let rest = text.trim_start();
    if text[..text.len() - rest.len()].chars().count() > MAX_NAME_PADDING {
        return false;
    }
    let (head, colon) = match rest.split_once(':') {
        Some((head, _)) => (head, true),
        None => (rest, false),
    };
    if padding(head, head.trim_end()) > MAX_NAME_PADDING {
        return false;
    }
    if colon {
        let head = head.trim();
        return models.iter().any(|m| m == head);
    }
    let name = rest.trim_end();
    models.iter().any(|m| m.starts_with(rest) || (name.len() < rest.len() && m == name))
}

/// Does the protocol grammar accept `turn`, a whole router turn, under `rules` (its budget
/// aside)? Err says where it stops accepting.
pub fn check_turn_text(turn: &str, rules: TurnRules) -> Result<(), String> {
    let mut state = TurnState::new(TurnRules { budget: usize::MAX, ..rules });
    let mut rest = turn;
    while let Some(c) = rest.chars().next() {
        let at = turn.len() - rest.len();
        if let Some(tag) = Tag::ALL.into_iter().find(|t| rest.starts_with(t.text())) {
            if !state.allows_tag(tag) {
                return Err(format!("`{}` is not allowed at byte {at}", tag.text()));
            }
            state.observe_tag(tag);
            rest = &rest[tag.text().len()..];
            continue;
        }
        let piece = &rest[..c.len_utf8()];
        if !state.allows_text(piece) {
            return Err(format!("{piece:?} is not allowed at byte {at} (in {:?})", state.phase));
        }
        state.observe_text(piece);
        rest = &rest[piece.len()..];
    }
    if state.is_complete() { Ok(()) } else { Err(format!("the turn ends in {:?}, before an action", state.phase)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(final_turn: bool, first_turn: bool, budget: usize) -> TurnRules {
        TurnRules {
            final_turn,
            first_turn,
            budget,
            models: TurnRules::model_names(["qwen-2.5-7b", "llama 3 70b", "Mistral-7B"]),
            text_rules: true,
            evidence: None,
        }
    }

    #[test]
    fn teacher_shaped_turns_are_accepted() {
        let ok = [
            ("<think>Need the capital.</think>\n<search>qwen-2.5-7b: What is the capital of Karsk?</search>", false),
            ("<think>Known now.</think>\n<answer>Paris</answer>", true),
            ("<think>x</think> <search> LLAMA 3 70B :who?</search>", false),
            ("\n<think>a</think><think>b</think><answer>c</answer>", false),
        ];
        for (turn, final_turn) in ok {
            check_turn_text(turn, rules(final_turn, true, 96)).unwrap_or_else(|e| panic!("{turn}: {e}"));
        }
    }

    #[test]
    fn text_the_format_check_rejects_is_refused() {
        let bad = [
            ("<answer>Paris</answer>", true, "the first turn opens with think"),
            ("<think>a</think> so <answer>b</answer>", false, "text between blocks"),
            ("<think></think><answer>b</answer>", false, "an empty think"),
            ("<think>...</think><answer>b</answer>", false, "a think of only ..."),
            ("<think>a</think><search>gpt-9: q</search>", false, "an unknown model"),
            ("<think>a</think><search>qwen-2.5-7b q</search>", false, "no colon"),
            ("<think>a</think><search>qwen-2.5-7b: </search>", false, "an empty query"),
            ("<think>a</think><answer> </answer>", false, "an empty answer"),
            ("<think>a</think>", false, "no action"),
            ("<think>a</think><search>qwen-2.5-7b: q</search>", true, "a search on the final turn"),
        ];
        for (turn, final_turn, why) in bad {
            assert!(check_turn_text(turn, rules(final_turn, true, 96)).is_err(), "{why}: {turn}");
        }
        // Later turns need not open with a think.
        assert!(check_turn_text("<answer>Paris</answer>", rules(true, false, 96)).is_ok());
    }

    #[test]
    fn search_names_are_matched_as_prefixes_of_pool_names() {
        let models = TurnRules::model_names(["qwen-2.5-7b", "llama 3 70b"]);
        for viable in ["", "  ", " qw", "QWEN-2.5-7b", "qwen-2.5-7b  ", "llama 3", "qwen-2.5-7b:", " llama 3 70b : x"] {
            assert!(names_a_model_lower(&viable.to_lowercase(), &models), "{viable:?}");
        }
        for dead in
            ["x", "qwen-2.5-7bx", "qwen-2.5-7b x", "llama:", "qwen-2.5-7b.", "llama  3", "   qwen", "qwen-2.5-7b\n\n\n"]
        {
            assert!(!names_a_model_lower(&dead.to_lowercase(), &models), "{dead:?}");
        }
    }

    /// Ids: 0..8 tags, 8 end of turn, then text tokens.
    fn vocab() -> Vocabulary {
        let tags = TagTokens::new(|t| Tag::ALL.iter().position(|x| x.text() == t).map(|i| i as u32), &[3, 7, 8]);
        let mut texts: Vec<String> = Tag::ALL.iter().map(|t| t.text().to_string()).collect();
        texts.push("<|im_end|>".into());
        for t in ["\n", " ", "qwen", "-2.5-7b", ":", " who", "?", "llama", "mist", "x", ""] {
            texts.push(t.into());
        }
        Vocabulary::new(tags, texts)
    }

    fn id(v: &Vocabulary, text: &str) -> u32 {
        (0..v.len() as u32).find(|&i| v.text(i) == text).unwrap()
    }

    fn only(mask: &Mask, v: &Vocabulary) -> Vec<String> {
        match mask {
            Mask::Only(ids) => ids.iter().map(|&i| v.text(i).to_string()).collect(),
            other => panic!("expected an Only mask, got {other:?}"),
        }
    }

    #[test]
    fn masks_follow_the_rules_token_by_token() {
        let v = vocab();
        let mut s = TurnState::new(rules(false, true, 40));
        // Whitespace may lead; the first block is a think.
        assert_eq!(only(&s.mask(&v), &v), ["<think>", "\n", " "]);
        s.observe(&v, id(&v, "<think>"));
        // In a think: text free, the closer forbidden while it is empty, no ending.
        let Mask::Forbid(bits) = s.mask(&v) else { panic!() };
        let forbidden: Vec<u32> = v.tags().forbidden_ids(bits).collect();
        assert!(forbidden.contains(&id(&v, "</think>")) && forbidden.contains(&8));
        s.observe(&v, id(&v, "x"));
        assert!(s.mask(&v).allows(v.tags(), id(&v, "</think>")));
        s.observe(&v, id(&v, "</think>"));
        assert_eq!(only(&s.mask(&v), &v), ["<think>", "<search>", "<answer>", "\n", " "]);
        s.observe(&v, id(&v, "<search>"));
        // Before the colon: pieces of pool names (and whitespace) only; never the empty token.
        assert_eq!(only(&s.mask(&v), &v), ["\n", " ", "qwen", "llama", "mist"]);
        s.observe(&v, id(&v, "qwen"));
        assert_eq!(only(&s.mask(&v), &v), ["-2.5-7b"]);
        s.observe(&v, id(&v, "-2.5-7b"));
        assert_eq!(only(&s.mask(&v), &v), ["\n", " ", ":"]);
        s.observe(&v, id(&v, ":"));
        // An empty query may not be closed.
        assert!(!s.mask(&v).allows(v.tags(), id(&v, "</search>")));
        s.observe(&v, id(&v, " who"));
        assert!(s.mask(&v).allows(v.tags(), id(&v, "</search>")));
        s.observe(&v, id(&v, "</search>"));
        assert!(s.is_complete());
    }

    #[test]
    fn the_budget_closes_a_runaway_think_and_forces_an_action() {
        let v = vocab();
        // Budget 20: reserve 5.
        let mut s = TurnState::new(rules(true, false, 20));
        s.observe(&v, id(&v, "<think>"));
        let mut forced_at = None;
        for written in 1..20 {
            let mask = s.mask(&v);
            if let Mask::Only(ids) = &mask {
                assert_eq!(**ids, [id(&v, "</think>")]);
                forced_at = Some(written);
                break;
            }
            s.observe(&v, id(&v, "x"));
        }
        assert_eq!(forced_at, Some(14), "closed with one more than the reserve of 5 left");
        s.observe(&v, id(&v, "</think>"));
        // Final turn, reserve reached: only an answer may open, not even whitespace.
        assert_eq!(only(&s.mask(&v), &v), ["<answer>"]);
        s.observe(&v, id(&v, "<answer>"));
        for _ in 0..3 {
            assert!(matches!(s.mask(&v), Mask::Forbid(_)));
            s.observe(&v, id(&v, "x"));
        }
        // The last token closes the answer.
        assert_eq!(only(&s.mask(&v), &v), ["</answer>"]);
        s.observe(&v, id(&v, "</answer>"));
        assert!(s.is_complete());
    }

    #[test]
    fn extractive_answers_copy_a_span_of_the_evidence() {
        let evidence = Arc::new(Evidence::new(["Who is older, Qwen Lama or Mist?", "1949."]));
        let extractive = TurnRules { evidence: Some(evidence), ..rules(true, false, 40) };
        for turn in ["<answer>Qwen Lama</answer>", "<answer> mist</answer>", "<answer>1949</answer>"] {
            check_turn_text(turn, extractive.clone()).unwrap_or_else(|e| panic!("{turn}: {e}"));
            // Without evidence the same answers are fine too.
            check_turn_text(turn, rules(true, false, 40)).unwrap();
        }
        for turn in
            ["<answer>Qwen Mist</answer>", "<answer>Qw</answer>", "<answer>   Mist</answer>", "<answer>x</answer>"]
        {
            assert!(check_turn_text(turn, extractive.clone()).is_err(), "{turn}");
        }
        assert!(check_turn_text("<answer>x</answer>", rules(true, false, 40)).is_ok());

        // Token by token: "qwen", " who" and "mist" start words of the evidence, "llama", "x"
        // and "?" do not (a span starts at a letter or digit).
        let v = vocab();
        let mut s = TurnState::new(extractive);
        s.observe(&v, id(&v, "<answer>"));
        assert_eq!(only(&s.mask(&v), &v), ["\n", " ", "qwen", " who", "mist"]);
        s.observe(&v, id(&v, "mist"));
        // "mist" is a whole word of the evidence: it may close, or go on as "mist?".
        assert_eq!(only(&s.mask(&v), &v), ["</answer>", "?"]);
        s.observe(&v, id(&v, "</answer>"));
        assert!(s.is_complete());
    }

    #[test]
    fn without_text_rules_the_mask_is_the_tag_grammars() {
        let v = vocab();
        let mut s = TurnState::new(TurnRules::tags_only(false));
        let mut g = TurnGrammar::new(false);
        for token in ["x", "<think>", "x", "</think>", " ", "<answer>"] {
            assert_eq!(s.mask(&v), Mask::Forbid(v.tags().forbidden(&g)));
            s.observe(&v, id(&v, token));
            v.tags().observe(&mut g, id(&v, token));
        }
    }

    #[test]
    fn a_vocabulary_without_tags_masks_nothing() {
        let v = Vocabulary::new(TagTokens::new(|_| None, &[0]), vec!["a".into(), " ".into()]);
        let s = TurnState::new(rules(false, true, 10));
        assert_eq!(s.mask(&v), Mask::FREE);
    }

    #[test]
    fn a_search_with_no_viable_name_falls_back_to_the_tag_grammar() {
        let v = vocab();
        let mut s = TurnState::new(TurnRules { models: TurnRules::model_names(["zzz"]), ..rules(false, false, 40) });
        s.observe(&v, id(&v, "<search>"));
        // Whitespace keeps "zzz" viable; with no whitespace token viable either, the fallback.
        assert_eq!(only(&s.mask(&v), &v), ["\n", " "]);
        let texts = v.texts.iter().map(|t| if t.trim().is_empty() && !t.is_empty() { "y".into() } else { t.clone() });
        let v2 = Vocabulary::new(v.tags().clone(), texts.collect());
        assert!(matches!(s.mask(&v2), Mask::Forbid(_)));
    }
}
