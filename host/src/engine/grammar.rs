//! The tag grammar of one router turn, for constrained decoding.
//!
//! A turn the engine can act on is a sequence of blocks — `<think>...</think>`, then one
//! `<search>...</search>` or `<answer>...</answer>` — with no block inside another and no
//! `<information>` written by the router. [`TurnGrammar`] tracks which block is open and says
//! which tags may come next, so a decoder can forbid the others: a `</answer>` cannot close a
//! `<think>`, a `<search>` cannot be opened on the final turn (where the engine would refuse it
//! anyway), and the turn cannot end while a block is open.
//!
//! Invariants:
//! - the grammar only forbids what the reward's format check rejects or the engine refuses:
//!   every turn the teacher writes is accepted (a test walks the teacher's trajectories);
//! - at least one tag is always allowed (outside a block, `<think>` and `<answer>`; inside,
//!   the block's own closing tag), so masking never leaves a decoder without a protocol move;
//! - text between tags is never constrained: the grammar reads tags, not words.

use super::protocol::{
    ANSWER_CLOSE, ANSWER_OPEN, INFORMATION_CLOSE, INFORMATION_OPEN, SEARCH_CLOSE, SEARCH_OPEN, THINK_CLOSE, THINK_OPEN,
};

/// A protocol tag, as the router writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tag {
    ThinkOpen,
    ThinkClose,
    SearchOpen,
    SearchClose,
    AnswerOpen,
    AnswerClose,
    InformationOpen,
    InformationClose,
}

impl Tag {
    pub const ALL: [Tag; 8] = [
        Tag::ThinkOpen,
        Tag::ThinkClose,
        Tag::SearchOpen,
        Tag::SearchClose,
        Tag::AnswerOpen,
        Tag::AnswerClose,
        Tag::InformationOpen,
        Tag::InformationClose,
    ];

    pub fn text(self) -> &'static str {
        match self {
            Tag::ThinkOpen => THINK_OPEN,
            Tag::ThinkClose => THINK_CLOSE,
            Tag::SearchOpen => SEARCH_OPEN,
            Tag::SearchClose => SEARCH_CLOSE,
            Tag::AnswerOpen => ANSWER_OPEN,
            Tag::AnswerClose => ANSWER_CLOSE,
            Tag::InformationOpen => INFORMATION_OPEN,
            Tag::InformationClose => INFORMATION_CLOSE,
        }
    }

    /// The router blocks a tag opens or closes; information is the host's.
    fn block(self) -> Option<Block> {
        match self {
            Tag::ThinkOpen | Tag::ThinkClose => Some(Block::Think),
            Tag::SearchOpen | Tag::SearchClose => Some(Block::Search),
            Tag::AnswerOpen | Tag::AnswerClose => Some(Block::Answer),
            Tag::InformationOpen | Tag::InformationClose => None,
        }
    }

    /// An opening tag?
    pub fn opens(self) -> bool {
        matches!(self, Tag::ThinkOpen | Tag::SearchOpen | Tag::AnswerOpen | Tag::InformationOpen)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    Think,
    Search,
    Answer,
}

/// Where a turn's generation stands in the grammar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnGrammar {
    open: Option<Block>,
    final_turn: bool,
}

impl TurnGrammar {
    /// A turn starts outside every block (the previous turn ended at a closing tag, or the
    /// prompt opened the assistant's message).
    pub fn new(final_turn: bool) -> TurnGrammar {
        TurnGrammar { open: None, final_turn }
    }

    /// May `tag` be written next?
    pub fn allows(&self, tag: Tag) -> bool {
        match (self.open, tag.block()) {
            (_, None) => false,
            (None, Some(Block::Search)) if self.final_turn => false,
            (None, Some(_)) => tag.opens(),
            (Some(open), Some(block)) => !tag.opens() && open == block,
        }
    }

    /// May the turn end here (a stop token of the model)? Not inside a block.
    pub fn may_end(&self) -> bool {
        self.open.is_none()
    }

    /// The tag that closes the open block, if one is open.
    pub fn closer(&self) -> Option<Tag> {
        self.open.map(|b| match b {
            Block::Think => Tag::ThinkClose,
            Block::Search => Tag::SearchClose,
            Block::Answer => Tag::AnswerClose,
        })
    }

    /// Record that `tag` was written. A tag [`TurnGrammar::allows`] forbids (written in pieces,
    /// which the decoder cannot mask) is recorded as far as it makes sense: an opening tag
    /// opens its block, a closing tag closes whatever is open.
    pub fn advance(&mut self, tag: Tag) {
        if tag.block().is_none() {
            return;
        }
        self.open = if tag.opens() { tag.block() } else { None };
    }
}

/// The tags in `text`, in order.
fn tags_in(text: &str) -> impl Iterator<Item = Tag> + '_ {
    let mut rest = text;
    std::iter::from_fn(move || {
        let (at, tag) = Tag::ALL.iter().filter_map(|t| rest.find(t.text()).map(|i| (i, *t))).min_by_key(|(i, _)| *i)?;
        rest = &rest[at + tag.text().len()..];
        Some(tag)
    })
}

/// Does the grammar accept `turn`, a whole router turn, as written? Err names the first tag it
/// forbids (or the block left open).
pub fn check_turn(turn: &str, final_turn: bool) -> Result<(), String> {
    let mut grammar = TurnGrammar::new(final_turn);
    for tag in tags_in(turn) {
        if !grammar.allows(tag) {
            return Err(format!("`{}` is not allowed here (state {grammar:?})", tag.text()));
        }
        grammar.advance(tag);
    }
    if grammar.may_end() { Ok(()) } else { Err(format!("the turn ends inside a block ({grammar:?})")) }
}

/// The most columns a [`TagTokens`] masks (its forbidden set is a `u32` of bits).
pub const MAX_COLUMNS: usize = 32;

/// What a vocabulary column is to the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Tag(Tag),
    /// A stop token of the model that is not a tag (end of turn, padding).
    End,
}

/// The protocol tags that are single tokens of a vocabulary, and its stop tokens: the columns a
/// constrained decoder masks. A tag the vocabulary spells in several tokens has no column (its
/// pieces are ordinary text the grammar cannot forbid); with no tag tokens at all the grammar
/// masks nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagTokens {
    columns: Vec<(u32, Column)>,
}

impl TagTokens {
    /// `id_of` gives a text's id when the vocabulary holds it as one token.
    pub fn new(id_of: impl Fn(&str) -> Option<u32>, stop_ids: &[u32]) -> TagTokens {
        let mut columns: Vec<(u32, Column)> =
            Tag::ALL.iter().filter_map(|t| id_of(t.text()).map(|id| (id, Column::Tag(*t)))).collect();
        for &id in stop_ids {
            if !columns.iter().any(|(c, _)| *c == id) {
                columns.push((id, Column::End));
            }
        }
        columns.truncate(MAX_COLUMNS);
        TagTokens { columns }
    }

    /// Token ids of the columns, in the order of [`TagTokens::forbidden`]'s bits.
    pub fn ids(&self) -> Vec<u32> {
        self.columns.iter().map(|(id, _)| *id).collect()
    }

    /// True when the vocabulary has none of the tags as a token (nothing to constrain).
    pub fn has_no_tags(&self) -> bool {
        !self.columns.iter().any(|(_, c)| matches!(c, Column::Tag(_)))
    }

    /// Bit i set: column i may not be written next.
    pub fn forbidden(&self, grammar: &TurnGrammar) -> u32 {
        self.forbidden_by(|tag| grammar.allows(tag), grammar.may_end())
    }

    /// [`TagTokens::forbidden`] for any rule: `allows` says which tags may come next,
    /// `may_end` whether a stop token may.
    pub fn forbidden_by(&self, allows: impl Fn(Tag) -> bool, may_end: bool) -> u32 {
        if self.has_no_tags() {
            return 0;
        }
        self.columns.iter().enumerate().fold(0, |bits, (i, (_, column))| {
            let allowed = match column {
                Column::Tag(tag) => allows(*tag),
                Column::End => may_end,
            };
            if allowed { bits } else { bits | (1 << i) }
        })
    }

    /// The forbidden token ids, from [`TagTokens::forbidden`]'s bits.
    pub fn forbidden_ids(&self, bits: u32) -> impl Iterator<Item = u32> + '_ {
        self.columns.iter().enumerate().filter(move |(i, _)| bits & (1 << i) != 0).map(|(_, (id, _))| *id)
    }

    /// The id of `tag`'s token, when the vocabulary has it as one.
    pub fn id_of(&self, tag: Tag) -> Option<u32> {
        self.columns.iter().find(|(_, c)| *c == Column::Tag(tag)).map(|(id, _)| *id)
    }

    /// The tag `token` is, if it is one of the columns.
    pub fn tag_of(&self, token: u32) -> Option<Tag> {
        self.columns.iter().find(|(id, _)| *id == token).and_then(|(_, c)| match c {
            Column::Tag(tag) => Some(*tag),
            Column::End => None,
        })
    }

    /// Whether `token` is one of the columns (a tag or a stop token).
    pub fn is_column(&self, token: u32) -> bool {
        self.columns.iter().any(|(id, _)| *id == token)
    }

    /// Advance `grammar` over a written token (only tag tokens move it).
    pub fn observe(&self, grammar: &mut TurnGrammar, token: u32) {
        if let Some((_, Column::Tag(tag))) = self.columns.iter().find(|(id, _)| *id == token) {
            grammar.advance(*tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(g: &TurnGrammar) -> Vec<Tag> {
        Tag::ALL.into_iter().filter(|t| g.allows(*t)).collect()
    }

    #[test]
    fn outside_a_block_only_openings_and_inside_only_the_own_closing_tag() {
        let mut g = TurnGrammar::new(false);
        assert_eq!(allowed(&g), [Tag::ThinkOpen, Tag::SearchOpen, Tag::AnswerOpen]);
        assert!(g.may_end());
        g.advance(Tag::ThinkOpen);
        assert_eq!(allowed(&g), [Tag::ThinkClose]);
        assert!(!g.may_end());
        g.advance(Tag::ThinkClose);
        g.advance(Tag::AnswerOpen);
        assert_eq!(allowed(&g), [Tag::AnswerClose]);
    }

    #[test]
    fn the_final_turn_forbids_opening_a_search() {
        let g = TurnGrammar::new(true);
        assert_eq!(allowed(&g), [Tag::ThinkOpen, Tag::AnswerOpen]);
    }

    #[test]
    fn information_is_never_the_routers_to_write() {
        let mut g = TurnGrammar::new(false);
        assert!(!g.allows(Tag::InformationOpen));
        g.advance(Tag::InformationOpen);
        assert_eq!(g, TurnGrammar::new(false), "an information tag moves nothing");
    }

    #[test]
    fn tags_written_in_text_advance_in_order() {
        let mut g = TurnGrammar::new(false);
        tags_in("<think>a</think>\n<answer>b").for_each(|t| g.advance(t));
        assert_eq!(allowed(&g), [Tag::AnswerClose]);
        // A forbidden closer still closes what is open.
        let mut g = TurnGrammar::new(false);
        tags_in("<think>x</answer>").for_each(|t| g.advance(t));
        assert!(g.may_end());
    }

    /// A vocabulary: tags are ids 10.., `</search>` is also a stop id, 99 is end of turn.
    fn tokens() -> TagTokens {
        TagTokens::new(|t| Tag::ALL.iter().position(|x| x.text() == t).map(|i| 10 + i as u32), &[13, 99])
    }

    #[test]
    fn tag_tokens_mask_what_the_grammar_forbids() {
        let tokens = tokens();
        assert_eq!(tokens.ids(), [10, 11, 12, 13, 14, 15, 16, 17, 99]);
        let mut g = TurnGrammar::new(false);
        let forbidden = |g: &TurnGrammar| tokens.forbidden_ids(tokens.forbidden(g)).collect::<Vec<_>>();
        // Outside: closers and information forbidden; ending allowed.
        assert_eq!(forbidden(&g), [11, 13, 15, 16, 17]);
        tokens.observe(&mut g, 10);
        // Inside <think>: everything but </think>, and the end of turn.
        assert_eq!(forbidden(&g), [10, 12, 13, 14, 15, 16, 17, 99]);
        tokens.observe(&mut g, 500); // ordinary text moves nothing
        tokens.observe(&mut g, 11);
        assert_eq!(forbidden(&TurnGrammar::new(true)), [11, 12, 13, 15, 16, 17]);
    }

    #[test]
    fn a_vocabulary_without_tag_tokens_masks_nothing() {
        let tokens = TagTokens::new(|_| None, &[99]);
        assert!(tokens.has_no_tags());
        let mut g = TurnGrammar::new(false);
        g.advance(Tag::ThinkOpen);
        assert_eq!(tokens.forbidden(&g), 0);
    }

    #[test]
    fn whole_turns_are_checked_tag_by_tag() {
        assert!(check_turn("<think>a</think>\n<search>m: q</search>", false).is_ok());
        assert!(check_turn("<think>a</think>\n<answer>b</answer>", true).is_ok());
        assert!(check_turn("<think>a</think>\n<search>m: q</search>", true).is_err());
        assert!(check_turn("<think>The answer is X</answer>", false).is_err());
        assert!(check_turn("<answer>X.</think>", false).is_err());
        assert!(check_turn("<think>unfinished", false).is_err());
    }

    #[test]
    fn something_is_always_allowed() {
        for final_turn in [false, true] {
            for start in [None, Some(Tag::ThinkOpen), Some(Tag::SearchOpen), Some(Tag::AnswerOpen)] {
                let mut g = TurnGrammar::new(final_turn);
                if let Some(t) = start {
                    g.advance(t);
                }
                assert!(!allowed(&g).is_empty(), "{g:?}");
            }
        }
    }
}
