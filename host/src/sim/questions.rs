//! Questions over the world: templates (several phrasings each), the
//! generator with gold answers by construction, the parser the simulated
//! models use to understand questions, splits, and FlashRAG-layout export.
//!
//! Invariants: a question's gold answers are computed from the facts it was
//! generated from; every phrasing parses back to its intent; train, dev and
//! test are assigned by a hash of the intent, so no question (in any
//! phrasing) appears in two splits.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::world::{Attribute, Domain, EntityType, Relation, World};

/// What a question asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Intent {
    /// `relation(subject)`.
    Fact(Relation, usize),
    /// The value of `attribute` for an entity.
    Value(Attribute, usize),
    /// `outer(inner(subject))`: the answer of the first hop is the subject of the second.
    TwoHop(Relation, Relation, usize),
    /// Which of two entities has the greater (or earlier) attribute.
    Compare(Attribute, usize, usize),
}

impl Intent {
    pub fn hops(self) -> u8 {
        match self {
            Intent::Fact(..) | Intent::Value(..) => 1,
            Intent::TwoHop(..) | Intent::Compare(..) => 2,
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Intent::Fact(..) | Intent::Value(..) => "one-hop",
            Intent::TwoHop(..) => "two-hop",
            Intent::Compare(..) => "comparison",
        }
    }

    pub fn domain(self) -> Domain {
        match self {
            Intent::Fact(r, _) | Intent::TwoHop(r, _, _) => r.domain(),
            Intent::Value(a, _) | Intent::Compare(a, _, _) => a.signature().1,
        }
    }
}

/// Question phrasings with one `{}` slot for the subject (or a description).
pub fn fact_templates(r: Relation) -> &'static [&'static str] {
    match r {
        Relation::CityCountry => &["Which country is {} in?", "In which country is {}?", "{} is in which country?"],
        Relation::Capital => &["What is the capital of {}?", "Which city is the capital of {}?"],
        Relation::RiverCity => &["Which city does {} flow through?", "Through which city does {} flow?"],
        Relation::MountainCountry => &["In which country is {}?", "Which country is {} located in?"],
        Relation::Founder => &["Who founded {}?", "Who is the founder of {}?"],
        Relation::Headquarters => &["Where is {} headquartered?", "In which city is {} headquartered?"],
        Relation::Ceo => &["Who is the CEO of {}?", "Who runs {}?"],
        Relation::AlbumBand => &["Which band recorded {}?", "Who recorded the album {}?"],
        Relation::BandCity => &["Where was {} formed?", "In which city was {} formed?"],
        Relation::NovelAuthor => &["Who wrote {}?", "Who is the author of {}?"],
        Relation::AlmaMater => &["Where did {} study?", "Which university did {} attend?"],
        Relation::UniversityCity => &["In which city is {}?", "Where is {} located?"],
        Relation::Discoverer => &["Who discovered {}?", "Which scientist discovered {}?"],
        Relation::TeamCity => &["Which city is {} based in?", "Where is {} based?"],
        Relation::Coach => &["Who coaches {}?", "Who is the coach of {}?"],
        Relation::Birthplace => &["Where was {} born?", "In which city was {} born?"],
    }
}

/// A noun phrase naming `relation(subject)`, for two-hop questions.
pub fn description(r: Relation) -> &'static str {
    match r {
        Relation::CityCountry => "the country {} is in",
        Relation::Capital => "the capital of {}",
        Relation::RiverCity => "the city {} flows through",
        Relation::MountainCountry => "the country where {} is",
        Relation::Founder => "the founder of {}",
        Relation::Headquarters => "the city where {} is headquartered",
        Relation::Ceo => "the CEO of {}",
        Relation::AlbumBand => "the band that recorded {}",
        Relation::BandCity => "the city where {} formed",
        Relation::NovelAuthor => "the author of {}",
        Relation::AlmaMater => "the university {} attended",
        Relation::UniversityCity => "the city {} is in",
        Relation::Discoverer => "the discoverer of {}",
        Relation::TeamCity => "the city {} is based in",
        Relation::Coach => "the coach of {}",
        Relation::Birthplace => "the birthplace of {}",
    }
}

pub fn value_templates(a: Attribute) -> &'static [&'static str] {
    match a {
        Attribute::BirthYear => &["When was {} born?", "In which year was {} born?"],
        Attribute::HeightM => &["How tall is {}?", "What is the height of {}?"],
        Attribute::FoundedYear => &["When was {} founded?", "In which year was {} founded?"],
        Attribute::LengthKm => &["How long is {}?", "What is the length of {}?"],
        Attribute::Population => &["What is the population of {}?", "How many people live in {}?"],
    }
}

/// Comparison phrasings with two slots, and whether the smaller value wins.
pub fn compare_templates(a: Attribute) -> (&'static [&'static str], bool) {
    match a {
        Attribute::BirthYear => (&["Who was born first, {} or {}?", "Who is older, {} or {}?"], true),
        Attribute::HeightM => (&["Which is taller, {} or {}?", "Which mountain is higher, {} or {}?"], false),
        Attribute::FoundedYear => (&["Which company is older, {} or {}?", "Which was founded first, {} or {}?"], true),
        Attribute::LengthKm => (&["Which river is longer, {} or {}?", "Which is longer, {} or {}?"], false),
        Attribute::Population => (&["Which city is larger, {} or {}?", "Which city has more people, {} or {}?"], false),
    }
}

/// How a value is said, and its unit words accepted as gold aliases.
pub fn value_text(a: Attribute, v: i64) -> (String, Vec<String>) {
    match a {
        Attribute::BirthYear | Attribute::FoundedYear => (v.to_string(), vec![]),
        Attribute::HeightM => (format!("{v} metres"), vec![v.to_string(), format!("{v} m"), format!("{v} meters")]),
        Attribute::LengthKm => (format!("{v} km"), vec![v.to_string(), format!("{v} kilometres")]),
        Attribute::Population => (v.to_string(), vec![]),
    }
}

/// The answer to `intent`, computed from the facts.
pub fn answer(world: &World, intent: Intent) -> Option<Vec<String>> {
    match intent {
        Intent::Fact(r, s) => world.fact(r, s).map(|o| world.answers(o)),
        Intent::TwoHop(inner, outer, s) => {
            world.fact(inner, s).and_then(|b| world.fact(outer, b)).map(|o| world.answers(o))
        }
        Intent::Value(a, e) => world.attribute(a, e).map(|v| {
            let (text, mut aliases) = value_text(a, v);
            aliases.insert(0, text);
            aliases
        }),
        Intent::Compare(a, x, y) => {
            let (vx, vy) = (world.attribute(a, x)?, world.attribute(a, y)?);
            if vx == vy {
                return None; // no single answer
            }
            let smaller_wins = compare_templates(a).1;
            let winner = if (vx < vy) == smaller_wins { x } else { y };
            Some(world.answers(winner))
        }
    }
}

/// Phrase `intent` with template `variant` (modulo the number of phrasings).
pub fn phrase(world: &World, intent: Intent, variant: usize) -> String {
    let text = phrase_raw(world, intent, variant);
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn phrase_raw(world: &World, intent: Intent, variant: usize) -> String {
    let fill = |t: &str, a: &str| t.replacen("{}", a, 1);
    let pick = |ts: &'static [&'static str]| ts[variant % ts.len()];
    match intent {
        Intent::Fact(r, s) => fill(pick(fact_templates(r)), world.name(s)),
        Intent::Value(a, e) => fill(pick(value_templates(a)), world.name(e)),
        Intent::TwoHop(inner, outer, s) => fill(pick(fact_templates(outer)), &fill(description(inner), world.name(s))),
        Intent::Compare(a, x, y) => fill(&fill(pick(compare_templates(a).0), world.name(x)), world.name(y)),
    }
}

/// Lowercase, punctuation to spaces, whitespace collapsed: what parsing compares.
pub fn normalize(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads questions back into intents: tolerant of case, punctuation and
/// spacing, and of every phrasing above; anything else is not understood.
pub struct Parser {
    names: BTreeMap<String, usize>,
}

fn split_template(t: &str) -> (String, String) {
    let (pre, post) = t.split_once("{}").unwrap_or((t, ""));
    (normalize(pre), normalize(post))
}

/// The slot text if `q` matches `prefix <slot> suffix` (all normalized).
fn slot<'a>(q: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    let rest = if prefix.is_empty() { q } else { q.strip_prefix(prefix)?.strip_prefix(' ')? };
    let middle = if suffix.is_empty() { rest } else { rest.strip_suffix(suffix)?.strip_suffix(' ')? };
    (!middle.is_empty()).then_some(middle)
}

impl Parser {
    pub fn new(world: &World) -> Parser {
        let mut names = BTreeMap::new();
        for e in &world.entities {
            for n in std::iter::once(&e.name).chain(&e.aliases) {
                names.insert(normalize(n), e.id);
            }
        }
        Parser { names }
    }

    fn entity(&self, world: &World, text: &str, kind: EntityType) -> Option<usize> {
        let text = text.strip_prefix("the album ").unwrap_or(text);
        let id = *self.names.get(text).or_else(|| self.names.get(text.strip_prefix("the ").unwrap_or("\u{0}")))?;
        (world.entity(id).kind == kind).then_some(id)
    }

    /// An entity of `kind`, named or described by one hop.
    fn subject(&self, world: &World, text: &str, kind: EntityType) -> Option<(Option<Relation>, usize)> {
        if let Some(id) = self.entity(world, text, kind) {
            return Some((None, id));
        }
        for inner in Relation::ALL.into_iter().filter(|r| r.object() == kind) {
            let (pre, post) = split_template(description(inner));
            if let Some(s) = slot(text, &pre, &post).and_then(|s| self.entity(world, s, inner.subject())) {
                return Some((Some(inner), s));
            }
        }
        None
    }

    pub fn parse(&self, world: &World, question: &str) -> Option<Intent> {
        let q = normalize(question);
        for r in Relation::ALL {
            for t in fact_templates(r) {
                let (pre, post) = split_template(t);
                if let Some((inner, s)) = slot(&q, &pre, &post).and_then(|s| self.subject(world, s, r.subject())) {
                    return Some(match inner {
                        None => Intent::Fact(r, s),
                        Some(inner) => Intent::TwoHop(inner, r, s),
                    });
                }
            }
        }
        for a in Attribute::ALL {
            let kind = a.signature().0;
            for t in value_templates(a) {
                let (pre, post) = split_template(t);
                if let Some(e) = slot(&q, &pre, &post).and_then(|s| self.entity(world, s, kind)) {
                    return Some(Intent::Value(a, e));
                }
            }
            for t in compare_templates(a).0 {
                let (pre, post) = split_template(&t.replacen("{} or {}", "{}", 1));
                let Some(both) = slot(&q, &pre, &post) else { continue };
                let mut at = 0;
                while let Some(i) = both[at..].find(" or ") {
                    let (x, y) = (&both[..at + i], &both[at + i + 4..]);
                    if let (Some(x), Some(y)) = (self.entity(world, x, kind), self.entity(world, y, kind)) {
                        return Some(Intent::Compare(a, x, y));
                    }
                    at += i + 4;
                }
            }
        }
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    Train,
    Dev,
    Test,
}

/// 80/10/10 by a hash of the intent.
pub fn split_of(intent: Intent) -> Split {
    let digest = Sha256::digest(serde_json::to_vec(&intent).unwrap_or_default());
    match digest[0] % 10 {
        0 => Split::Test,
        1 => Split::Dev,
        _ => Split::Train,
    }
}

/// One dataset line, FlashRAG layout plus our fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Question {
    pub id: String,
    pub question: String,
    pub golden_answers: Vec<String>,
    pub hops: u8,
    pub domain: Domain,
    pub kind: String,
    pub split: Split,
    #[serde(skip)]
    pub intent: Option<Intent>,
}

/// `n` distinct questions, drawn 40% one-hop, 40% two-hop, 20% comparisons. Distinct
/// one-hop and two-hop intents run out first (a few thousand of each in the default world),
/// so a larger `n` holds more comparisons: about a third each at 5,000, 61% comparisons at
/// 20,000, and nearly all of the questions past 20,000. A larger `n` keeps the first `n`
/// questions of a smaller one, in order.
pub fn generate(world: &World, n: usize, seed: u64) -> Vec<Question> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5157_4954_4348_5944);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let compositions: Vec<(Relation, Relation)> = Relation::ALL
        .iter()
        .flat_map(|&inner| {
            Relation::ALL.iter().filter(move |o| o.subject() == inner.object()).map(move |&o| (inner, o))
        })
        .collect();
    let mut attempts = 0;
    while out.len() < n && attempts < n * 50 {
        attempts += 1;
        let roll: f64 = rng.random();
        let intent = if roll < 0.3 {
            let r = *Relation::ALL.choose(&mut rng).unwrap_or(&Relation::Capital);
            Intent::Fact(r, *world.of_type(r.subject()).choose(&mut rng).unwrap_or(&0))
        } else if roll < 0.4 {
            let a = *Attribute::ALL.choose(&mut rng).unwrap_or(&Attribute::BirthYear);
            Intent::Value(a, *world.of_type(a.signature().0).choose(&mut rng).unwrap_or(&0))
        } else if roll < 0.8 {
            let (inner, outer) =
                *compositions.choose(&mut rng).unwrap_or(&(Relation::Headquarters, Relation::CityCountry));
            Intent::TwoHop(inner, outer, *world.of_type(inner.subject()).choose(&mut rng).unwrap_or(&0))
        } else {
            let a = *Attribute::ALL.choose(&mut rng).unwrap_or(&Attribute::HeightM);
            let pool = world.of_type(a.signature().0);
            let (x, y) = (*pool.choose(&mut rng).unwrap_or(&0), *pool.choose(&mut rng).unwrap_or(&0));
            if x == y {
                continue;
            }
            Intent::Compare(a, x, y)
        };
        // A two-hop question whose bridge is the subject itself is not two hops.
        if let Intent::TwoHop(inner, outer, s) = intent
            && world.fact(inner, s).and_then(|b| world.fact(outer, b)) == Some(s)
        {
            continue;
        }
        if !seen.insert(intent) {
            continue;
        }
        let Some(golden_answers) = answer(world, intent) else { continue };
        let variant = rng.random_range(0..4);
        out.push(Question {
            id: format!("sim-{}-{}", world.config.seed, out.len()),
            question: phrase(world, intent, variant),
            golden_answers,
            hops: intent.hops(),
            domain: intent.domain(),
            kind: intent.kind().to_string(),
            split: split_of(intent),
            intent: Some(intent),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::world::WorldConfig;

    #[test]
    fn every_phrasing_parses_back_to_its_intent_and_golds_are_right() {
        let world = World::generate(&WorldConfig::default());
        let parser = Parser::new(&world);
        let questions = generate(&world, 600, 1);
        assert_eq!(questions.len(), 600);
        for q in &questions {
            let intent = q.intent.unwrap();
            for variant in 0..3 {
                let text = phrase(&world, intent, variant);
                let parsed = parser.parse(&world, &text).unwrap_or_else(|| panic!("cannot parse {text}"));
                // A different intent may share the text only if it has the same answer.
                assert_eq!(answer(&world, parsed), answer(&world, intent), "{text}: {parsed:?} vs {intent:?}");
            }
            // Tolerant: case, punctuation, spacing.
            let shouted = format!("  {}!!", q.question.to_uppercase().replace('?', ""));
            assert!(parser.parse(&world, &shouted).is_some(), "{shouted}");
        }
        assert!(parser.parse(&world, "What is the meaning of life?").is_none());
        let kinds: BTreeSet<&str> = questions.iter().map(|q| q.kind.as_str()).collect();
        assert_eq!(kinds.len(), 3);
    }

    #[test]
    fn gold_answers_follow_the_facts() {
        let world = World::generate(&WorldConfig::default());
        let country = world.of_type(EntityType::Country)[0];
        let capital = world.fact(Relation::Capital, country).unwrap();
        assert_eq!(answer(&world, Intent::Fact(Relation::Capital, country)).unwrap()[0], world.name(capital));
        let company = world.of_type(EntityType::Company)[0];
        let hq = world.fact(Relation::Headquarters, company).unwrap();
        let land = world.fact(Relation::CityCountry, hq).unwrap();
        assert_eq!(
            answer(&world, Intent::TwoHop(Relation::Headquarters, Relation::CityCountry, company)).unwrap()[0],
            world.name(land)
        );
    }

    #[test]
    fn splits_share_no_intent() {
        let world = World::generate(&WorldConfig::default());
        let questions = generate(&world, 2000, 3);
        let mut by_split: BTreeMap<Split, BTreeSet<Intent>> = BTreeMap::new();
        let mut texts: BTreeMap<String, Split> = BTreeMap::new();
        for q in &questions {
            by_split.entry(q.split).or_default().insert(q.intent.unwrap());
            if let Some(prev) = texts.insert(q.question.clone(), q.split) {
                assert_eq!(prev, q.split, "{}", q.question);
            }
        }
        let (train, dev, test) = (&by_split[&Split::Train], &by_split[&Split::Dev], &by_split[&Split::Test]);
        assert!(train.is_disjoint(test) && train.is_disjoint(dev) && dev.is_disjoint(test));
        assert!(test.len() > 100 && train.len() > 1200, "{} {}", test.len(), train.len());
    }
}
