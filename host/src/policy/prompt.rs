//! The router prompt: a minijinja template rendered with the question and the pool's
//! descriptors into a system and a user message.
//!
//! Invariants: rendering is a pure function of (template, question, descriptors); numbers are
//! formatted here, not in the template, so a template cannot make a price ambiguous; the
//! template must produce both messages (it is checked when loaded).

use std::path::Path;

use minijinja::{Environment, context};
use serde::Serialize;

use super::ChatMessage;
use super::error::LoadError;
use super::model_dir::ROUTER_PROMPT_FILE;
use crate::plugin::types::ModelDescriptor;

/// The default template, shipped with the binary.
pub const DEFAULT_TEMPLATE: &str = include_str!("router_prompt.jinja");

/// A shipped alternative that lists the scores per domain, each model's score and price just
/// before its name (`- sports: .91 $.18 spec-8b, .9 $.88 big-70b`). A causal router reads a
/// name after what it needs to know about it, so choosing a name by its score and price is
/// one look back from the name instead of two (name, then forward along its line).
pub const BY_DOMAIN_TEMPLATE: &str = include_str!("router_prompt_by_domain.jinja");

/// Separates the system message from the user message in the rendered template.
const USER_MARKER: &str = "=== user ===\n";

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("router prompt template: {0}")]
    Template(#[from] minijinja::Error),
    #[error("router prompt template: the output has no `{}` line separating system and user messages", USER_MARKER.trim())]
    NoUserMarker,
}

pub struct RouterPrompt {
    env: Environment<'static>,
    /// Whether the template reads `domains`: the per-domain view is built for those only.
    uses_domains: bool,
}

#[derive(Serialize)]
struct ModelView {
    name: String,
    price_in: String,
    price_out: String,
    latency_ms: u32,
    size_b: Option<String>,
    context_tokens: u32,
    strengths: Vec<String>,
    scores: Vec<ScoreView>,
}

#[derive(Serialize)]
struct ScoreView {
    benchmark: String,
    score: String,
}

/// One benchmark across the pool: `domains` in the template's context.
#[derive(Serialize)]
struct DomainView {
    benchmark: String,
    models: Vec<DomainEntry>,
}

#[derive(Serialize)]
struct DomainEntry {
    name: String,
    score: String,
    price_out: String,
}

/// How the prompt writes a descriptor's number: two decimals at most, no trailing zeros, no
/// leading zero for fractions (`.84`, `1.2`, `27`). A router's reasoning that quotes a
/// descriptor (the teacher's) writes it the same way, so quoting is copying.
pub fn number(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    let s = s.strip_prefix("0.").map_or(s.to_string(), |f| format!(".{f}"));
    if s.is_empty() { "0".into() } else { s }
}

impl RouterPrompt {
    /// The shipped template.
    pub fn new() -> RouterPrompt {
        RouterPrompt::from_template(DEFAULT_TEMPLATE.to_string()).expect("the shipped router prompt renders")
    }

    /// A user template (checked by rendering it once).
    pub fn from_template(source: String) -> Result<RouterPrompt, PromptError> {
        let mut env = Environment::new();
        env.add_template_owned("router", source)?;
        let uses_domains = env.get_template("router")?.undeclared_variables(false).contains("domains");
        let prompt = RouterPrompt { env, uses_domains };
        prompt.messages("Is this a question?", &[])?;
        Ok(prompt)
    }

    /// The template a model directory carries ([`ROUTER_PROMPT_FILE`]: the one the router was
    /// trained on), checked; `None` when it carries none.
    pub fn trained_on(dir: &Path) -> Result<Option<RouterPrompt>, LoadError> {
        let path = dir.join(ROUTER_PROMPT_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let source = std::fs::read_to_string(&path).map_err(|e| LoadError::file(&path, e.to_string()))?;
        RouterPrompt::from_template(source).map(Some).map_err(|e| LoadError::file(&path, e.to_string()))
    }

    /// The system and user messages for `question` over `pool`.
    pub fn messages(&self, question: &str, pool: &[ModelDescriptor]) -> Result<Vec<ChatMessage>, PromptError> {
        let models: Vec<ModelView> = pool
            .iter()
            .map(|m| ModelView {
                name: m.name.clone(),
                price_in: number(m.price_in_per_mtok),
                price_out: number(m.price_out_per_mtok),
                latency_ms: m.latency_ms,
                size_b: m.size_b.map(number),
                context_tokens: m.context_tokens,
                strengths: m.strengths.clone(),
                scores: m
                    .example_scores
                    .iter()
                    .map(|s| ScoreView { benchmark: s.benchmark.clone(), score: number(s.score) })
                    .collect(),
            })
            .collect();
        let domains = if self.uses_domains { by_domain(pool) } else { Vec::new() };
        let text = self.env.get_template("router")?.render(context! { question, models, domains })?;
        let (system, user) = text.split_once(USER_MARKER).ok_or(PromptError::NoUserMarker)?;
        Ok(vec![ChatMessage::new("system", system.trim_end()), ChatMessage::new("user", user.trim_end())])
    }
}

/// The pool's scores grouped by benchmark, benchmarks in order of first appearance, models in
/// listing order.
fn by_domain(pool: &[ModelDescriptor]) -> Vec<DomainView> {
    let mut domains: Vec<DomainView> = Vec::new();
    for m in pool {
        for s in &m.example_scores {
            let entry =
                DomainEntry { name: m.name.clone(), score: number(s.score), price_out: number(m.price_out_per_mtok) };
            match domains.iter_mut().find(|d| d.benchmark == s.benchmark) {
                Some(d) => d.models.push(entry),
                None => domains.push(DomainView { benchmark: s.benchmark.clone(), models: vec![entry] }),
            }
        }
    }
    domains
}

impl Default for RouterPrompt {
    fn default() -> Self {
        RouterPrompt::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::types::ExampleScore;

    fn model(name: &str) -> ModelDescriptor {
        ModelDescriptor {
            name: name.into(),
            aliases: vec![],
            price_in_per_mtok: 0.1,
            price_out_per_mtok: 0.18,
            latency_ms: 300,
            context_tokens: 8192,
            size_b: Some(8.0),
            strengths: vec!["multi-hop".into()],
            example_scores: vec![ExampleScore { benchmark: "geography-em".into(), score: 0.8421 }],
        }
    }

    #[test]
    fn descriptors_are_rendered_into_the_system_message() {
        let m = RouterPrompt::new().messages("Who founded Acme?", &[model("small-8b"), model("big-70b")]).unwrap();
        assert_eq!(m[0].role, "system");
        assert!(
            m[0].content.contains("\n- small-8b $.18 8B: geography .84; multi-hop\n- big-70b $.18 8B:"),
            "{}",
            m[0].content
        );
        assert!(!m[0].content.contains("=== user"));
        assert_eq!(m[1].role, "user");
        assert_eq!(m[1].content, "Question: Who founded Acme?");
    }

    #[test]
    fn the_by_domain_template_puts_each_score_and_price_before_the_name() {
        let mut big = model("big-70b");
        big.price_out_per_mtok = 0.88;
        big.size_b = Some(70.0);
        big.strengths.clear();
        big.example_scores.push(ExampleScore { benchmark: "sports-em".into(), score: 0.9 });
        let mut small = model("small-8b");
        small.example_scores = vec![ExampleScore { benchmark: "sports-em".into(), score: 0.5 }];
        let prompt = RouterPrompt::from_template(BY_DOMAIN_TEMPLATE.into()).unwrap();
        // Only a template that reads the per-domain view has it built.
        assert!(prompt.uses_domains && !RouterPrompt::new().uses_domains);
        let m = prompt.messages("Who won?", &[small, big]).unwrap();
        let system = &m[0].content;
        assert!(system.contains("\n- small-8b $.18 8B; multi-hop\n- big-70b $.88 70B\n"), "{system}");
        assert!(system.contains("\n- sports: .5 $.18 small-8b, .9 $.88 big-70b\n"), "{system}");
        assert!(system.contains("\n- geography: .84 $.88 big-70b"), "{system}");
        assert_eq!(m[1].content, "Question: Who won?");
    }

    #[test]
    fn a_template_without_the_user_marker_or_with_bad_syntax_is_rejected() {
        let err = RouterPrompt::from_template("only {{ question }}".into()).err().unwrap();
        assert!(err.to_string().contains("=== user ==="), "{err}");
        let err = RouterPrompt::from_template("{% for %}".into()).err().unwrap();
        assert!(err.to_string().contains("router prompt template"), "{err}");
    }
}
