//! Helpers for the rule-based strategies: checking and ordering the
//! candidate pool, recognising replies that decline to answer, picking the
//! final answer from the calls made so far, and the whole decision of a
//! single-round strategy ([`single_round`]).
//!
//! Plain types only (no bindings), so `largest`, `cheapest` and `cascade`
//! share one definition of "cheapest", "largest" and "a refusal", and
//! `largest` and `cheapest` share one decision flow.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

/// The answer given when no call produced a usable reply.
pub const DONT_KNOW: &str = "I don't know";

/// A candidate model as the strategies compare them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate<'a> {
    pub name: &'a str,
    /// US dollars per million input tokens.
    pub price_in: f64,
    /// US dollars per million output tokens.
    pub price_out: f64,
    /// Parameter count in billions, when known.
    pub size_b: Option<f64>,
}

impl Candidate<'_> {
    /// The price used for ordering: input plus output price per million
    /// tokens (a proxy that does not depend on the reply's length).
    pub fn price(&self) -> f64 {
        self.price_in + self.price_out
    }
}

/// One call made so far, as the strategies need to see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome<'a> {
    /// The model's reply ("" when the call failed).
    pub reply: &'a str,
    /// Whether the call failed (the host recorded an error).
    pub failed: bool,
}

/// Checks that the pool is usable for ordering: non-empty, prices finite
/// and non-negative, sizes (when given) finite and non-negative. Rejecting
/// NaN here is what lets the orderings below be total.
pub fn validate(pool: &[Candidate]) -> Result<(), String> {
    if pool.is_empty() {
        return Err(String::from("the candidate pool is empty"));
    }
    for c in pool {
        for (what, v) in [("price-in-per-mtok", c.price_in), ("price-out-per-mtok", c.price_out)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("model `{}` has an invalid {what}: {v}", c.name));
            }
        }
        if let Some(size) = c.size_b
            && !(size.is_finite() && size >= 0.0)
        {
            return Err(format!("model `{}` has an invalid size-b: {size}", c.name));
        }
    }
    Ok(())
}

/// Indices of `pool` from cheapest to most expensive (price-in + price-out),
/// ties broken by name, then by position so the order is deterministic even
/// with duplicate names. Call [`validate`] first.
pub fn cheapest_first(pool: &[Candidate]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pool.len()).collect();
    // Stable sort: equal keys keep their pool position.
    order.sort_by(|&a, &b| {
        let (a, b) = (&pool[a], &pool[b]);
        a.price().total_cmp(&b.price()).then_with(|| a.name.cmp(b.name))
    });
    order
}

/// Index of the largest model: greatest `size_b` (a model without a size
/// ranks below every model with one), ties and all-unknown broken by the
/// higher output price, then by name (alphabetically first wins), then by
/// position. `None` only for an empty pool. Call [`validate`] first.
pub fn largest(pool: &[Candidate]) -> Option<usize> {
    // `Option<f64>` ordering: None < Some(_), which is the rule we want.
    let rank = |a: &Candidate, b: &Candidate| -> Ordering {
        let size = match (a.size_b, b.size_b) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (x, y) => x.is_some().cmp(&y.is_some()),
        };
        size.then_with(|| a.price_out.total_cmp(&b.price_out))
            // Reversed so that, among equals, the alphabetically first name ranks highest.
            .then_with(|| b.name.cmp(a.name))
    };
    let mut best: Option<usize> = None;
    for (i, c) in pool.iter().enumerate() {
        // Strictly greater keeps the earliest position on a full tie.
        if best.is_none_or(|b| rank(c, &pool[b]) == Ordering::Greater) {
            best = Some(i);
        }
    }
    best
}

/// Whether a reply declines to answer rather than answering.
///
/// The check is deliberately simple and predictable. After lowercasing,
/// mapping typographic apostrophes to `'` and collapsing whitespace, a reply
/// is a refusal when it
/// - is empty, or
/// - is exactly "unknown" (ignoring surrounding punctuation), or
/// - contains one of: "i don't know", "i dont know", "i do not know",
///   "cannot answer", "can not answer", "can't answer", "unable to answer",
///   "not sure", "no information".
///
/// Substring matching means a hedged answer ("I'm not sure, but it's Paris")
/// also counts: for a cascade, escalating on doubt is the intended behaviour.
pub fn is_refusal(reply: &str) -> bool {
    let reply = answer_line(reply);
    const PHRASES: [&str; 9] = [
        "i don't know",
        "i dont know",
        "i do not know",
        "cannot answer",
        "can not answer",
        "can't answer",
        "unable to answer",
        "not sure",
        "no information",
    ];
    let mut norm = String::with_capacity(reply.len());
    for word in reply.split_whitespace() {
        if !norm.is_empty() {
            norm.push(' ');
        }
        for ch in word.chars() {
            match ch {
                '\u{2018}' | '\u{2019}' | '\u{02bc}' => norm.push('\''),
                _ => norm.extend(ch.to_lowercase()),
            }
        }
    }
    let bare = norm.trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace());
    bare.is_empty() || bare == "unknown" || PHRASES.iter().any(|p| norm.contains(p))
}

/// The answer in a reply: its first non-empty line, trimmed. The host asks
/// every routed model to put the answer first; later lines are elaboration.
pub fn answer_line(reply: &str) -> &str {
    reply.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
}

/// The answer line of the last call that succeeded with non-empty text.
pub fn last_successful_reply<'a>(calls: &[Outcome<'a>]) -> Option<&'a str> {
    calls.iter().rev().filter(|c| !c.failed).map(|c| answer_line(c.reply)).find(|r| !r.is_empty())
}

/// The answer line of the last successful call that is not a refusal.
pub fn last_informative_reply<'a>(calls: &[Outcome<'a>]) -> Option<&'a str> {
    calls.iter().rev().filter(|c| !c.failed && !is_refusal(c.reply)).map(|c| answer_line(c.reply)).next()
}

/// What a single-round strategy does next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision<'a> {
    /// Send the whole question to the pool model at this index.
    Route(usize),
    /// Finish with this answer.
    Answer(&'a str),
}

/// The decision of a single-round strategy, one that sends the whole
/// question to one model chosen by `choose` and answers with its reply:
/// - the pool must pass [`validate`] (checked first, even once calls exist);
/// - when calls were made, answer with [`last_successful_reply`], else
///   [`DONT_KNOW`];
/// - when the turn budget only allows an answer (`turn + 1 >= max_turns`,
///   where the host would refuse a route), answer [`DONT_KNOW`];
/// - otherwise route to the index `choose` picks from the (validated) pool;
///   a `None` or out-of-range pick answers [`DONT_KNOW`] rather than panic,
///   so a returned [`Decision::Route`] index is always in bounds.
pub fn single_round<'a>(
    pool: &[Candidate],
    calls: &[Outcome<'a>],
    turn: u32,
    max_turns: u32,
    choose: impl FnOnce(&[Candidate]) -> Option<usize>,
) -> Result<Decision<'a>, String> {
    validate(pool)?;
    if !calls.is_empty() {
        return Ok(Decision::Answer(last_successful_reply(calls).unwrap_or(DONT_KNOW)));
    }
    if turn.saturating_add(1) >= max_turns {
        return Ok(Decision::Answer(DONT_KNOW));
    }
    Ok(match choose(pool) {
        Some(i) if i < pool.len() => Decision::Route(i),
        _ => Decision::Answer(DONT_KNOW),
    })
}

/// Defines `candidates(&[ModelDescriptor]) -> Vec<Candidate>` and
/// `outcomes(&[RoutedCall]) -> Vec<Outcome>` in the calling strategy, over
/// the WIT types its own bindings generated (this crate has no bindings, so
/// the mapping is expanded where the types live). Both must be in scope.
#[macro_export]
macro_rules! pool_views {
    () => {
        /// The pool as the shared helpers see it.
        #[allow(dead_code)]
        fn candidates(pool: &[ModelDescriptor]) -> Vec<$crate::pool::Candidate<'_>> {
            pool.iter()
                .map(|m| $crate::pool::Candidate {
                    name: &m.name,
                    price_in: m.price_in_per_mtok,
                    price_out: m.price_out_per_mtok,
                    size_b: m.size_b,
                })
                .collect()
        }

        /// The calls so far as the shared helpers see them.
        #[allow(dead_code)]
        fn outcomes(calls: &[RoutedCall]) -> Vec<$crate::pool::Outcome<'_>> {
            calls.iter().map(|c| $crate::pool::Outcome { reply: &c.reply, failed: c.error.is_some() }).collect()
        }
    };
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_answer_is_the_first_line_of_a_reply() {
        assert_eq!(answer_line("\n  Karsk.\nI hope this helps."), "Karsk.");
        assert_eq!(answer_line(""), "");
        assert!(is_refusal("I don't know.\nSources may differ."));
        assert!(!is_refusal("Karsk.\nI am not sure anyone knows more."));
        let calls = [Outcome { reply: "Karsk.\nThis is based on what I learned.", failed: false }];
        assert_eq!(last_successful_reply(&calls), Some("Karsk."));
        assert_eq!(last_informative_reply(&calls), Some("Karsk."));
    }

    use super::*;

    fn c(name: &str, price_in: f64, price_out: f64, size_b: Option<f64>) -> Candidate<'_> {
        Candidate { name, price_in, price_out, size_b }
    }

    #[test]
    fn validate_rejects_empty_and_bad_numbers() {
        assert!(validate(&[]).unwrap_err().contains("empty"));
        assert!(validate(&[c("a", f64::NAN, 0.0, None)]).unwrap_err().contains("price-in"));
        assert!(validate(&[c("a", 0.0, -1.0, None)]).unwrap_err().contains("price-out"));
        assert!(validate(&[c("a", 0.0, f64::INFINITY, None)]).is_err());
        assert!(validate(&[c("a", 0.0, 0.0, Some(f64::NAN))]).unwrap_err().contains("size-b"));
        assert!(validate(&[c("a", 0.0, 0.0, Some(-3.0))]).is_err());
        assert!(validate(&[c("a", 0.0, 0.0, Some(7.0)), c("b", 1.0, 2.0, None)]).is_ok());
    }

    #[test]
    fn cheapest_first_orders_by_total_price_then_name() {
        let pool = [
            c("mid", 1.0, 1.0, None),
            c("zeta", 0.5, 0.5, None),
            c("alpha", 0.25, 0.75, None),
            c("big", 5.0, 15.0, None),
            c("free", 0.0, 0.0, None),
        ];
        assert_eq!(cheapest_first(&pool), [4, 2, 1, 0, 3]);
    }

    #[test]
    fn cheapest_first_keeps_pool_order_for_duplicates() {
        let pool = [c("x", 1.0, 1.0, None), c("x", 1.0, 1.0, Some(3.0))];
        assert_eq!(cheapest_first(&pool), [0, 1]);
    }

    #[test]
    fn largest_prefers_size_then_price_out_then_name() {
        let pool = [c("small", 0.1, 0.2, Some(8.0)), c("huge", 1.0, 2.0, Some(405.0)), c("mystery", 9.0, 30.0, None)];
        assert_eq!(largest(&pool), Some(1), "a known size beats an unknown one however pricey");

        let tie = [c("b", 0.0, 1.0, Some(70.0)), c("a", 0.0, 1.0, Some(70.0)), c("c", 0.0, 3.0, Some(70.0))];
        assert_eq!(largest(&tie), Some(2), "equal sizes: higher output price");

        let names = [c("b", 0.0, 1.0, Some(70.0)), c("a", 0.0, 1.0, Some(70.0))];
        assert_eq!(largest(&names), Some(1), "then alphabetically first name");

        let unknown = [c("x", 0.0, 2.0, None), c("y", 0.0, 10.0, None)];
        assert_eq!(largest(&unknown), Some(1), "all unknown: higher output price");

        assert_eq!(largest(&[]), None);
        let dup = [c("x", 1.0, 1.0, None), c("x", 1.0, 1.0, None)];
        assert_eq!(largest(&dup), Some(0));
    }

    #[test]
    fn refusal_detector_matches_documented_phrases() {
        for r in [
            "I don't know.",
            "i DO NOT know the answer",
            "Sorry, I cannot answer that.",
            "I can\u{2019}t answer this question",
            "I can not  answer",
            "I am unable to answer.",
            "I'm not sure, but maybe Paris",
            "There is no information about X.",
            "Unknown",
            "  unknown. ",
            "",
            "   \n ",
            "I dont know",
            "I DON'T KNOW\nI hope this helps.",
        ] {
            assert!(is_refusal(r), "{r:?} should be a refusal");
        }
        for r in [
            "Paris",
            "The answer is unknown to most people but it is Paris",
            "Known for his work on X",
            "The capital is Canberra.",
            "I know: 42",
        ] {
            assert!(!is_refusal(r), "{r:?} should not be a refusal");
        }
    }

    #[test]
    fn final_reply_helpers_skip_failures_empties_and_refusals() {
        let calls = [
            Outcome { reply: "  Paris \n", failed: false },
            Outcome { reply: "I don't know", failed: false },
            Outcome { reply: "", failed: true },
            Outcome { reply: "   ", failed: false },
        ];
        assert_eq!(last_successful_reply(&calls), Some("I don't know"));
        assert_eq!(last_informative_reply(&calls), Some("Paris"));
        assert_eq!(last_successful_reply(&calls[2..]), None);
        assert_eq!(last_informative_reply(&calls[1..]), None);
        assert_eq!(last_successful_reply(&[]), None);
    }

    fn single_pool() -> [Candidate<'static>; 3] {
        [c("a", 1.0, 1.0, Some(7.0)), c("b", 0.1, 0.2, None), c("c", 5.0, 15.0, Some(70.0))]
    }

    fn never(_: &[Candidate]) -> Option<usize> {
        panic!("the chooser must not be consulted")
    }

    #[test]
    fn single_round_routes_to_the_chosen_index() {
        let pool = single_pool();
        assert_eq!(
            single_round(&pool, &[], 0, 4, |p| {
                assert_eq!(p, pool);
                Some(2)
            }),
            Ok(Decision::Route(2))
        );
        assert_eq!(single_round(&pool, &[], 2, 4, |_| Some(0)), Ok(Decision::Route(0)), "not yet the last turn");
        // A chooser with no pick, or an out-of-range one, gives an answer, not a panic.
        assert_eq!(single_round(&pool, &[], 0, 4, |_| None), Ok(Decision::Answer(DONT_KNOW)));
        assert_eq!(single_round(&pool, &[], 0, 4, |_| Some(3)), Ok(Decision::Answer(DONT_KNOW)));
    }

    #[test]
    fn single_round_answers_once_calls_exist() {
        let pool = single_pool();
        let calls = [Outcome { reply: " Frank Herbert\n", failed: false }, Outcome { reply: "", failed: true }];
        assert_eq!(single_round(&pool, &calls, 1, 4, never), Ok(Decision::Answer("Frank Herbert")));
        // Calls take precedence over the turn budget.
        assert_eq!(single_round(&pool, &calls, 3, 4, never), Ok(Decision::Answer("Frank Herbert")));
        assert_eq!(single_round(&pool, &calls[1..], 1, 4, never), Ok(Decision::Answer(DONT_KNOW)));
    }

    #[test]
    fn single_round_answers_dont_know_on_the_last_turn() {
        let pool = single_pool();
        assert_eq!(single_round(&pool, &[], 3, 4, never), Ok(Decision::Answer(DONT_KNOW)));
        assert_eq!(single_round(&pool, &[], 0, 1, never), Ok(Decision::Answer(DONT_KNOW)));
        assert_eq!(single_round(&pool, &[], 0, 0, never), Ok(Decision::Answer(DONT_KNOW)));
        assert_eq!(single_round(&pool, &[], u32::MAX, 0, never), Ok(Decision::Answer(DONT_KNOW)));
        assert_eq!(single_round(&pool, &[], u32::MAX, u32::MAX, never), Ok(Decision::Answer(DONT_KNOW)));
    }

    #[test]
    fn single_round_rejects_empty_and_invalid_pools_first() {
        let calls = [Outcome { reply: "Paris", failed: false }];
        assert!(single_round(&[], &[], 0, 4, never).unwrap_err().contains("empty"));
        assert!(single_round(&[], &calls, 0, 4, never).unwrap_err().contains("empty"));
        let bad = [c("x", f64::NAN, 0.0, None)];
        assert!(single_round(&bad, &[], 0, 4, never).unwrap_err().contains("price-in"));
        assert!(single_round(&bad, &calls, 3, 4, never).unwrap_err().contains("price-in"));
    }
}
