//! Simulated LLMs. Each is a profile — prices, latency, knowledge coverage
//! per domain, multi-hop ability, behaviour when it does not know, verbosity
//! — answering questions about the world from what it knows.
//!
//! Invariants: which facts a model knows is a pure function of (world seed,
//! model name, fact); so is whether it hallucinates on a given question, and
//! what. The same question to the same model always gets the same reply.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::questions::{Intent, Parser, answer, value_text};
use super::world::{Domain, EntityType, World};
use crate::plugin::types::{ChatMessage, ExampleScore, ModelDescriptor, Usage};

/// A simulated model's profile.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub price_in_per_mtok: f64,
    pub price_out_per_mtok: f64,
    pub latency_ms: u32,
    pub context_tokens: u32,
    pub size_b: f64,
    /// Probability of knowing a fact, per domain.
    pub coverage: BTreeMap<Domain, f64>,
    /// Answers two-hop and comparison questions in one call.
    pub multi_hop: bool,
    /// When it does not know: probability of inventing a plausible answer
    /// (otherwise it says it does not know).
    pub hallucination: f64,
    /// Extra sentences of elaboration after the answer (output tokens, cost).
    pub verbosity: u32,
    /// Not in the training pool: for the unseen-model experiment.
    #[serde(default)]
    pub held_out: bool,
}

fn coverage(pairs: &[(Domain, f64)], rest: f64) -> BTreeMap<Domain, f64> {
    Domain::ALL.iter().map(|d| (*d, pairs.iter().find(|(x, _)| x == d).map_or(rest, |(_, c)| *c))).collect()
}

/// The default pool, mirroring Router-R1's (prices per 1M tokens as in its
/// table): cheap small models with narrow knowledge, expensive large ones
/// with broad knowledge and multi-hop ability; plus two held-out models.
pub fn default_profiles() -> Vec<Profile> {
    use Domain::*;
    let p = |name: &str,
             price: f64,
             latency_ms,
             size_b,
             cov: BTreeMap<Domain, f64>,
             multi_hop,
             hallucination,
             verbosity,
             held_out| Profile {
        name: name.into(),
        price_in_per_mtok: price,
        price_out_per_mtok: price,
        latency_ms,
        context_tokens: 32_768,
        size_b,
        coverage: cov,
        multi_hop,
        hallucination,
        verbosity,
        held_out,
    };
    vec![
        p(
            "qwen2.5-7b-instruct",
            0.30,
            400,
            7.0,
            coverage(&[(Science, 0.85), (Business, 0.6)], 0.25),
            false,
            0.3,
            1,
            false,
        ),
        p(
            "llama-3.1-8b-instruct",
            0.18,
            350,
            8.0,
            coverage(&[(Geography, 0.85), (Sports, 0.6)], 0.2),
            false,
            0.3,
            1,
            false,
        ),
        p(
            "mistral-7b-instruct",
            0.20,
            380,
            7.0,
            coverage(&[(Arts, 0.85), (Business, 0.45)], 0.2),
            false,
            0.35,
            2,
            false,
        ),
        p(
            "gemma-2-27b-instruct",
            0.80,
            700,
            27.0,
            coverage(&[(Science, 0.75), (Geography, 0.7)], 0.55),
            true,
            0.2,
            3,
            false,
        ),
        p("llama-3.1-70b-instruct", 0.88, 1100, 70.0, coverage(&[], 0.8), true, 0.1, 3, false),
        p(
            "mixtral-8x22b-instruct",
            1.20,
            1300,
            141.0,
            coverage(&[(Arts, 0.9), (Business, 0.9)], 0.82),
            true,
            0.1,
            5,
            false,
        ),
        p("palmyra-creative-122b", 1.80, 1500, 122.0, coverage(&[(Arts, 0.97)], 0.7), true, 0.05, 4, true),
        p(
            "llama3-chatqa-1.5-8b",
            0.18,
            300,
            8.0,
            coverage(&[(Geography, 0.9), (Sports, 0.9)], 0.15),
            false,
            0.2,
            0,
            true,
        ),
    ]
}

/// A reply and its token usage.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub text: String,
    pub usage: Usage,
    /// Whether the reply is the true answer (for calibration and tests).
    pub correct: Option<bool>,
}

/// Token count by a documented word-piece rule: each run of letters or
/// digits counts one token per 4 characters (rounded up), every other
/// non-space character one token. Close to BPE counts on English text.
pub fn count_tokens(text: &str) -> u32 {
    let mut tokens = 0u32;
    let mut run = 0u32;
    for c in text.chars() {
        if c.is_alphanumeric() {
            run += 1;
        } else {
            tokens += run.div_ceil(4);
            run = 0;
            if !c.is_whitespace() {
                tokens += 1;
            }
        }
    }
    tokens + run.div_ceil(4)
}

/// What a model says when it will not answer.
pub const DONT_KNOW: &str = "I don't know.";
pub const NOT_UNDERSTOOD: &str = "I cannot answer that.";
pub const ONE_HOP_ONLY: &str = "I cannot answer that in one step: I only answer direct, single-fact questions.";

/// A uniform number in [0, 1) from the parts: deterministic, portable.
pub(super) fn unit(parts: &[&str]) -> f64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let x = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The simulated models over one world; cheap to share.
pub struct SimModels {
    pub world: Arc<World>,
    parser: Parser,
    profiles: Vec<Profile>,
}

impl SimModels {
    pub fn new(world: Arc<World>, profiles: Vec<Profile>) -> SimModels {
        let parser = Parser::new(&world);
        SimModels { world, parser, profiles }
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name.eq_ignore_ascii_case(name.trim()))
    }

    /// Whether `model` knows the fact keyed `key` in `domain`.
    fn knows(&self, model: &Profile, domain: Domain, key: &str) -> bool {
        let seed = self.world.config.seed.to_string();
        unit(&[&seed, &model.name, key]) < model.coverage.get(&domain).copied().unwrap_or(0.0)
    }

    /// Every fact `intent` needs, with its domain.
    fn facts(&self, intent: Intent) -> Vec<(Domain, String)> {
        let w = &self.world;
        match intent {
            Intent::Fact(r, s) => vec![(r.domain(), format!("{r:?}/{s}"))],
            Intent::Value(a, e) => vec![(a.signature().1, format!("{a:?}/{e}"))],
            Intent::TwoHop(inner, outer, s) => {
                let bridge = w.fact(inner, s).unwrap_or(usize::MAX);
                vec![(inner.domain(), format!("{inner:?}/{s}")), (outer.domain(), format!("{outer:?}/{bridge}"))]
            }
            Intent::Compare(a, x, y) => {
                let d = a.signature().1;
                vec![(d, format!("{a:?}/{x}")), (d, format!("{a:?}/{y}"))]
            }
        }
    }

    /// `model`'s reply to a chat (the last user message is the question).
    /// `None` when there is no such model.
    pub fn reply(&self, model: &str, messages: &[ChatMessage]) -> Option<Reply> {
        let profile = self.profile(model)?;
        let question = messages.iter().rev().find(|m| m.role == "user").map_or("", |m| m.content.as_str());
        let (answer_text, correct) = self.answer(profile, question);
        let mut text = answer_text;
        for i in 0..profile.verbosity {
            text.push_str(&format!(
                "\n{}",
                [
                    "I hope this helps.",
                    "This is based on what I learned during training.",
                    "Let me know if you need more detail on this topic.",
                    "Sources may differ on such facts, so double-check if it matters.",
                    "There is more background I could add if useful.",
                ][i as usize % 5]
            ));
        }
        let input = messages.iter().map(|m| count_tokens(&m.content) + 4).sum();
        Some(Reply { usage: Usage { input_tokens: input, output_tokens: count_tokens(&text) }, text, correct })
    }

    /// The first line of a reply: the answer itself, or a refusal.
    fn answer(&self, profile: &Profile, question: &str) -> (String, Option<bool>) {
        let Some(intent) = self.parser.parse(&self.world, question) else {
            return (NOT_UNDERSTOOD.into(), None);
        };
        let two_facts = matches!(intent, Intent::TwoHop(..) | Intent::Compare(..));
        if two_facts && !profile.multi_hop {
            return (ONE_HOP_ONLY.into(), Some(false));
        }
        let knows_all = self.facts(intent).iter().all(|(d, key)| self.knows(profile, *d, key));
        if knows_all && let Some(golds) = answer(&self.world, intent) {
            return (format!("{}.", golds[0]), Some(true));
        }
        let seed = self.world.config.seed.to_string();
        if unit(&[&seed, &profile.name, "hallucinate", question]) < profile.hallucination {
            return (format!("{}.", self.plausible(profile, intent, question)), Some(false));
        }
        (DONT_KNOW.into(), Some(false))
    }

    /// A wrong answer of the right type, chosen deterministically.
    fn plausible(&self, profile: &Profile, intent: Intent, question: &str) -> String {
        let w = &self.world;
        let seed = w.config.seed.to_string();
        let pick = |kind: EntityType| {
            let pool = w.of_type(kind);
            let i = (unit(&[&seed, &profile.name, "pick", question]) * pool.len() as f64) as usize;
            pool.get(i.min(pool.len().saturating_sub(1))).map_or("nobody".to_string(), |&e| w.name(e).to_string())
        };
        match intent {
            Intent::Fact(r, _) | Intent::TwoHop(_, r, _) => pick(r.object()),
            Intent::Compare(a, ..) => pick(a.signature().0),
            Intent::Value(a, _) => {
                let (lo, hi) = a.signature().2;
                let v = lo + (unit(&[&seed, &profile.name, "value", question]) * (hi - lo) as f64) as i64;
                value_text(a, v).0
            }
        }
    }

    /// Descriptors for the router's prompt: prices, latency, strengths (the
    /// domains it covers well) and example scores measured on `calibration`.
    pub fn descriptor(&self, profile: &Profile, calibration: &[(String, Vec<String>, Domain)]) -> ModelDescriptor {
        let mut by_domain: BTreeMap<Domain, (u32, u32)> = BTreeMap::new();
        for (question, golds, domain) in calibration {
            let (answer_text, _) = self.answer(profile, question);
            let right = golds.iter().any(|g| answer_text.trim_end_matches('.').eq_ignore_ascii_case(g));
            let e = by_domain.entry(*domain).or_default();
            e.0 += u32::from(right);
            e.1 += 1;
        }
        let mut strengths: Vec<String> =
            profile.coverage.iter().filter(|(_, c)| **c >= 0.6).map(|(d, _)| d.name().to_string()).collect();
        if profile.multi_hop {
            strengths.push("multi-hop".into());
        }
        ModelDescriptor {
            name: profile.name.clone(),
            aliases: vec![],
            price_in_per_mtok: profile.price_in_per_mtok,
            price_out_per_mtok: profile.price_out_per_mtok,
            latency_ms: profile.latency_ms,
            context_tokens: profile.context_tokens,
            size_b: Some(profile.size_b),
            strengths,
            example_scores: by_domain
                .into_iter()
                .map(|(d, (right, n))| ExampleScore {
                    benchmark: format!("{}-em", d.name()),
                    score: f64::from(right) / f64::from(n.max(1)),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::questions::{self, Intent};
    use crate::sim::world::{Relation, WorldConfig};

    fn models() -> SimModels {
        SimModels::new(Arc::new(World::generate(&WorldConfig::default())), default_profiles())
    }

    fn user(q: &str) -> Vec<ChatMessage> {
        vec![ChatMessage { role: "user".into(), content: q.into() }]
    }

    #[test]
    fn replies_are_deterministic_and_counted() {
        let m = models();
        let q = questions::generate(&m.world, 20, 5);
        for model in default_profiles() {
            for question in &q {
                let a = m.reply(&model.name, &user(&question.question)).unwrap();
                assert_eq!(Some(&a), m.reply(&model.name, &user(&question.question)).as_ref());
                assert_eq!(a.usage.output_tokens, count_tokens(&a.text));
            }
        }
        assert!(m.reply("no-such-model", &user("hi")).is_none());
        assert_eq!(
            m.reply("llama-3.1-70b-instruct", &user("Tell me a joke")).unwrap().text.lines().next(),
            Some(NOT_UNDERSTOOD)
        );
        // Karsk (5 chars: 2) is (1) the (1) capital (7: 2) . (1)
        assert_eq!(count_tokens("Karsk is the capital."), 2 + 1 + 1 + 2 + 1);
    }

    #[test]
    fn measured_accuracy_per_domain_matches_the_profile() {
        let m = models();
        let w = &m.world;
        for profile in default_profiles() {
            for domain in Domain::ALL {
                let relations: Vec<Relation> = Relation::ALL.into_iter().filter(|r| r.domain() == domain).collect();
                let (mut right, mut n) = (0, 0);
                for r in &relations {
                    for &s in w.of_type(r.subject()).iter().take(150) {
                        let reply =
                            m.reply(&profile.name, &user(&questions::phrase(w, Intent::Fact(*r, s), 0))).unwrap();
                        right += u32::from(reply.correct == Some(true));
                        n += 1;
                    }
                }
                let measured = f64::from(right) / f64::from(n);
                let expected = profile.coverage[&domain];
                // Knowledge is a hash draw per fact: within 0.08 at n >= 150.
                assert!(
                    (measured - expected).abs() < 0.08,
                    "{} {domain:?}: measured {measured:.3}, profile {expected}",
                    profile.name
                );
            }
        }
    }

    #[test]
    fn only_multi_hop_models_answer_two_hop_questions_in_one_call() {
        let m = models();
        let q: Vec<_> = questions::generate(&m.world, 400, 9).into_iter().filter(|q| q.kind == "two-hop").collect();
        let small = q
            .iter()
            .filter(|x| m.reply("llama-3.1-8b-instruct", &user(&x.question)).unwrap().correct == Some(true))
            .count();
        let large = q
            .iter()
            .filter(|x| m.reply("llama-3.1-70b-instruct", &user(&x.question)).unwrap().correct == Some(true))
            .count();
        assert_eq!(small, 0);
        assert!(large as f64 > 0.5 * q.len() as f64, "{large} of {}", q.len());
    }
}
