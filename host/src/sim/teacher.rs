//! The teacher: a privileged policy that writes well-formed Router-R1
//! trajectories — think, decompose, choose a model from the descriptors,
//! aggregate, answer — the source of supervised warm-up data for training.
//!
//! It reads the question's structure from the world's parser (privileged:
//! a trained router must learn this), but knows answers only from what the
//! models it calls reply, so its trajectories show real routing: cheap
//! specialists first, escalation on refusal, decomposition of two-hop and
//! comparison questions. Stateless: each turn is derived from the episode.
//!
//! Its routing is a choice ([`TeacherRouting`]): by the descriptors (near the
//! best the pool allows), or routing-blind — the same protocol, decomposition
//! and escalation with models drawn at random — so a warm-up on its
//! trajectories teaches the protocol and leaves *where to route* to RL, as
//! Router-R1 learns it from the reward alone.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::questions::{Intent, Parser, fact_templates, phrase};
use super::world::{Domain, World};
use crate::engine::{Episode, Policy, PolicyError};
use crate::plugin::types::ModelDescriptor;

/// How the teacher picks the model for a step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TeacherRouting {
    /// The cheapest model the descriptors score at least 0.7 in the step's domain, then by
    /// score; whole questions to multi-hop models first.
    #[default]
    Descriptors,
    /// Routing-blind: a random order of the pool per step, fixed by (seed, question, step),
    /// so an episode replays identically and escalation still walks untried models.
    Uniform,
}

/// Prints the name configuration files and `--routing` use (clap's, which serde's
/// kebab-case matches; a test holds them together).
impl std::fmt::Display for TeacherRouting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
}

pub struct TeacherPolicy {
    name: String,
    world: Arc<World>,
    parser: Parser,
    routing: TeacherRouting,
    seed: u64,
    reads_listing: bool,
}

/// How the steps' answers combine into the final answer, with the reasoning that gets there
/// when it is more than reading the last step's answer.
type Compose = Box<dyn Fn(&[String]) -> (String, Option<String>)>;

/// One sub-question of a plan, and what it is about.
struct Step {
    question: String,
    domain: Option<Domain>,
}

fn answer_line(reply: &str) -> &str {
    reply.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").trim_end_matches('.')
}

fn refused(reply: &str) -> bool {
    let l = answer_line(reply).to_lowercase();
    l.is_empty() || ["don't know", "cannot answer", "not sure"].iter().any(|p| l.contains(p))
}

fn number(text: &str) -> Option<i64> {
    text.split(|c: char| !c.is_ascii_digit()).find(|t| !t.is_empty())?.parse().ok()
}

fn score(model: &ModelDescriptor, domain: Option<Domain>) -> f64 {
    let wanted = domain.map(|d| format!("{}-em", d.name()));
    model.example_scores.iter().find(|s| Some(&s.benchmark) == wanted.as_ref()).map_or(0.0, |s| s.score)
}

/// The score a model needs in a step's domain to be worth calling for it.
const GOOD_ENOUGH: f64 = 0.7;

/// How the teacher reads the listing for a step in `domain` before calling `chosen`: the
/// models scoring at least [`GOOD_ENOUGH`] there, in listing order, with their prices, then
/// the cheapest of them (or, when none does, the best). Numbers are quoted as the prompt
/// writes them, so that a router learning this reads its listing line by line — which models
/// qualify, then which is cheapest — rather than recalling a model for the domain: the skill a
/// pool with new models asks for.
fn scan(pool: &[ModelDescriptor], domain: Domain, chosen: &ModelDescriptor) -> String {
    use crate::policy::prompt::number;
    let d = domain.name();
    let good: Vec<String> = pool
        .iter()
        .filter(|m| score(m, Some(domain)) >= GOOD_ENOUGH)
        .map(|m| format!("{} ${}", m.name, number(m.price_out_per_mtok)))
        .collect();
    if good.is_empty() {
        format!(
            "No {d} score reaches {}; the best is {} with {}.",
            number(GOOD_ENOUGH),
            chosen.name,
            number(score(chosen, Some(domain)))
        )
    } else {
        let mut domain = d.to_string();
        domain[..1].make_ascii_uppercase();
        format!(
            "{domain} scores of {} or more: {}. The cheapest is {}.",
            number(GOOD_ENOUGH),
            good.join(", "),
            chosen.name
        )
    }
}

/// A comparison's answer from its two steps' answers (values of the first and second entity
/// in `names`), and the reasoning: spelled out one decision at a time — which value is
/// smaller, which kind of value wins, so which entity — because a small router learns three
/// simple steps sooner than one jump from two numbers to a name.
fn comparison(answers: &[String], names: (&str, &str), smaller_wins: bool) -> (String, Option<String>) {
    let dont_know = "I don't know".to_string();
    match (answers.first().and_then(|a| number(a)), answers.get(1).and_then(|a| number(a))) {
        (Some(x), Some(y)) if x != y => {
            let first_wins = (x < y) == smaller_wins;
            let winner = if first_wins { names.0 } else { names.1 };
            let size = |smaller: bool| if smaller { "smaller" } else { "larger" };
            let why = format!(
                "The first is {}; the {} wins: the {}, {winner}.",
                size(x < y),
                size(smaller_wins),
                if first_wins { "first" } else { "second" }
            );
            (winner.to_string(), Some(why))
        }
        (Some(_), Some(_)) => (dont_know, Some("The two values are equal.".into())),
        _ => (dont_know, None),
    }
}

impl TeacherPolicy {
    pub fn new(name: impl Into<String>, world: Arc<World>) -> Self {
        let parser = Parser::new(&world);
        TeacherPolicy {
            name: name.into(),
            world,
            parser,
            routing: TeacherRouting::Descriptors,
            seed: 0,
            reads_listing: false,
        }
    }

    /// The same teacher routing by `routing`; `seed` fixes the random orders of
    /// [`TeacherRouting::Uniform`].
    pub fn with_routing(mut self, routing: TeacherRouting, seed: u64) -> Self {
        self.routing = routing;
        self.seed = seed;
        self
    }

    /// With `yes`, a think before a call (routing by descriptors, a step with a domain) names
    /// the models that qualify, in listing order, then the cheapest ([`scan`]), and counts a
    /// two-hop plan as two steps from its first; otherwise it names only the model it calls
    /// (how the teacher wrote before, so earlier warm-ups replay).
    pub fn reading_listing(mut self, yes: bool) -> Self {
        self.reads_listing = yes;
        self
    }

    /// Models in the order the teacher tries them for a step of `question`.
    fn ranking<'a>(
        &self,
        pool: &'a [ModelDescriptor],
        question: &str,
        step: &Step,
        whole: bool,
    ) -> Vec<&'a ModelDescriptor> {
        match self.routing {
            TeacherRouting::Descriptors => Self::by_descriptors(pool, step, whole),
            TeacherRouting::Uniform => {
                let seed = self.seed.to_string();
                let key = |m: &ModelDescriptor| super::models::unit(&[&seed, question, &step.question, &m.name]);
                let mut ranked: Vec<&ModelDescriptor> = pool.iter().collect();
                ranked.sort_by(|a, b| key(a).total_cmp(&key(b)).then_with(|| a.name.cmp(&b.name)));
                ranked
            }
        }
    }

    /// The cheapest model scoring at least 0.7 in the domain first, then by
    /// score (price breaking ties); whole questions go to multi-hop models first.
    fn by_descriptors<'a>(pool: &'a [ModelDescriptor], step: &Step, whole: bool) -> Vec<&'a ModelDescriptor> {
        let price = |m: &ModelDescriptor| m.price_in_per_mtok + m.price_out_per_mtok;
        let mut ranked: Vec<&ModelDescriptor> = pool.iter().collect();
        ranked.sort_by(|a, b| {
            let key = |m: &ModelDescriptor| {
                let multi = whole && m.strengths.iter().any(|s| s == "multi-hop");
                let good = score(m, step.domain) >= GOOD_ENOUGH;
                (!multi, !good, if good { price(m) } else { -score(m, step.domain) })
            };
            key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.name.cmp(&b.name))
        });
        ranked
    }

    fn write_turn(&self, ep: &Episode) -> String {
        let intent = self.parser.parse(&self.world, &ep.question);
        // Answers so far, per sub-question text (first informative reply wins).
        let answered = |q: &str| {
            ep.calls
                .iter()
                .filter(|c| c.query == q && c.error.is_none() && !refused(&c.reply))
                .map(|c| answer_line(&c.reply).to_string())
                .next()
        };
        let tried = |q: &str| ep.calls.iter().filter(|c| c.query == q).map(|c| c.model.as_str()).collect::<Vec<_>>();
        let w = &self.world;
        // The plan: the next step to ask, or the final answer.
        let (steps, whole, compose): (Vec<Step>, bool, Compose) = match intent {
            Some(Intent::Fact(r, _)) => (
                vec![Step { question: ep.question.clone(), domain: Some(r.domain()) }],
                false,
                Box::new(|a| (a[0].clone(), None)),
            ),
            Some(Intent::Value(a, _)) => (
                vec![Step { question: ep.question.clone(), domain: Some(a.signature().1) }],
                false,
                Box::new(|a| (a[0].clone(), None)),
            ),
            Some(Intent::TwoHop(inner, outer, s)) => {
                let first = phrase(w, Intent::Fact(inner, s), 0);
                let mut steps = vec![Step { question: first.clone(), domain: Some(inner.domain()) }];
                if let Some(bridge) = answered(&first) {
                    let t = fact_templates(outer)[0];
                    steps.push(Step { question: t.replacen("{}", &bridge, 1), domain: Some(outer.domain()) });
                }
                (steps, false, Box::new(|a| (a.last().cloned().unwrap_or_default(), None)))
            }
            Some(Intent::Compare(a, x, y)) => {
                let d = Some(a.signature().1);
                let (nx, ny) = (w.name(x).to_string(), w.name(y).to_string());
                let smaller_wins = super::questions::compare_templates(a).1;
                let steps = vec![
                    Step { question: phrase(w, Intent::Value(a, x), 0), domain: d },
                    Step { question: phrase(w, Intent::Value(a, y), 0), domain: d },
                ];
                let compose = move |ans: &[String]| comparison(ans, (&nx, &ny), smaller_wins);
                (steps, false, Box::new(compose))
            }
            None => {
                (vec![Step { question: ep.question.clone(), domain: None }], true, Box::new(|a| (a[0].clone(), None)))
            }
        };
        let kind = intent.map_or("an unfamiliar", |i| match i.kind() {
            "one-hop" => "a one-hop",
            "two-hop" => "a two-hop",
            _ => "a comparison",
        });
        let mut answers = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if let Some(a) = answered(&step.question) {
                answers.push(a);
                continue;
            }
            let tried = tried(&step.question);
            let next = self
                .ranking(&ep.pool, &ep.question, step, whole)
                .into_iter()
                .find(|m| !tried.contains(&m.name.as_str()));
            match next {
                Some(m) if !ep.final_turn => {
                    let why = if tried.is_empty() {
                        // A two-hop plan has two steps before its second is known.
                        let planned = match intent {
                            Some(Intent::TwoHop(..)) if self.reads_listing => 2,
                            _ => steps.len().max(i + 1),
                        };
                        let step_text =
                            format!("This is {kind} question. Step {} of {planned}: {}", i + 1, step.question);
                        match (self.routing, step.domain) {
                            (TeacherRouting::Descriptors, Some(d)) if self.reads_listing && !whole => {
                                format!("{step_text} {}", scan(&ep.pool, d, m))
                            }
                            _ => {
                                let d = step.domain.map_or("general".to_string(), |d| d.name().to_string());
                                format!(
                                    "{step_text} For {d} facts, {} scores {:.2} at ${:.2} per million output tokens.",
                                    m.name,
                                    score(m, step.domain),
                                    m.price_out_per_mtok
                                )
                            }
                        }
                    } else {
                        format!("{} could not answer; escalating to {}.", tried.join(" and "), m.name)
                    };
                    return format!("<think>{why}</think>\n<search>{}: {}</search>", m.name, step.question);
                }
                _ => {
                    return format!(
                        "<think>No model could answer step {}; I cannot complete the answer.</think>\n<answer>I don't know</answer>",
                        i + 1
                    );
                }
            }
        }
        let (answer, why) = compose(&answers);
        let mut summary = if answers.len() > 1 {
            format!("The steps gave {}.", answers.join(", then "))
        } else {
            format!("The answer is {answer}.")
        };
        if let Some(why) = why {
            summary = format!("{summary} {why}");
        }
        format!("<think>{summary}</think>\n<answer>{answer}</answer>")
    }
}

impl Policy for TeacherPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_turn<'a>(&'a self, episode: &'a Episode) -> BoxFuture<'a, Result<String, PolicyError>> {
        let text = self.write_turn(episode);
        Box::pin(async move { Ok(text) })
    }
}

#[cfg(test)]
mod tests {
    use super::{Domain, ModelDescriptor, Step, TeacherPolicy, TeacherRouting, comparison, scan};
    use crate::plugin::types::ExampleScore;
    use clap::ValueEnum;

    fn model(name: &str, price: f64, sports: f64) -> ModelDescriptor {
        ModelDescriptor {
            name: name.into(),
            aliases: vec![],
            price_in_per_mtok: price,
            price_out_per_mtok: price,
            latency_ms: 500,
            context_tokens: 32_768,
            size_b: None,
            strengths: vec![],
            example_scores: vec![
                ExampleScore { benchmark: "arts-em".into(), score: 0.9 },
                ExampleScore { benchmark: "sports-em".into(), score: sports },
            ],
        }
    }

    #[test]
    fn the_teacher_names_the_qualifying_models_in_listing_order_then_calls_the_cheapest() {
        let pool = vec![model("big-70b", 0.88, 0.8), model("small-3b", 0.12, 0.4), model("spec-8b", 0.18, 0.93)];
        let step = Step { question: "Who coaches the Karsk Lions?".into(), domain: Some(Domain::Sports) };
        let ranked = TeacherPolicy::by_descriptors(&pool, &step, false);
        assert_eq!(ranked[0].name, "spec-8b");
        assert_eq!(
            scan(&pool, Domain::Sports, ranked[0]),
            "Sports scores of .7 or more: big-70b $.88, spec-8b $.18. The cheapest is spec-8b."
        );
        // Nobody good enough: the best score, said so.
        let weak = vec![model("a-7b", 0.2, 0.3), model("b-8b", 0.18, 0.55)];
        let ranked = TeacherPolicy::by_descriptors(&weak, &step, false);
        assert_eq!(scan(&weak, Domain::Sports, ranked[0]), "No sports score reaches .7; the best is b-8b with .55.");
    }

    #[test]
    fn a_comparison_is_reasoned_one_decision_at_a_time_to_the_right_entity() {
        let names = ("Tarfiakeir Systems", "Virglai Systems");
        let of = |a: &str, b: &str, smaller_wins| comparison(&[a.to_string(), b.to_string()], names, smaller_wins);
        // Founded first: the smaller year wins.
        assert_eq!(
            of("1949", "2020", true),
            (
                "Tarfiakeir Systems".into(),
                Some("The first is smaller; the smaller wins: the first, Tarfiakeir Systems.".into())
            )
        );
        assert_eq!(of("2011", "1924", true).0, "Virglai Systems");
        // Longer, more people: the larger value wins, units and all.
        assert_eq!(
            of("150 km", "852 km", false),
            (
                "Virglai Systems".into(),
                Some("The first is smaller; the larger wins: the second, Virglai Systems.".into())
            )
        );
        assert_eq!(
            of("8055895", "2376322", false).1.unwrap(),
            "The first is larger; the larger wins: the first, Tarfiakeir Systems."
        );
        // No single answer: equal values, or a value missing.
        assert_eq!(of("1900", "1900", true).0, "I don't know");
        assert_eq!(of("1900", "I don't know", true), ("I don't know".into(), None));
    }

    #[test]
    fn routing_names_agree_across_display_config_files_and_the_command_line() {
        for routing in TeacherRouting::value_variants() {
            let shown = routing.to_string();
            let from_serde: TeacherRouting = serde_json::from_value(serde_json::json!(shown)).unwrap();
            assert_eq!(&from_serde, routing, "serde reads the displayed name {shown}");
            assert_eq!(&TeacherRouting::from_str(&shown, false).unwrap(), routing);
        }
        assert_eq!(TeacherRouting::Uniform.to_string(), "uniform");
    }
}
