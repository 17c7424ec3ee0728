//! The turn loop, driven by scripted policies over a real pool on loopback:
//! routing, the final routing-free turn, limits, and error observations.

use std::path::Path;
use std::sync::Arc;

use switchyard::backend::Pool;
use switchyard::config::{Config, EngineConfig};
use switchyard::engine::{ScriptedPolicy, StopReason, run};
use switchyard::plugin::types::Author;
use switchyard_tests::{backend, server::pool_config};

async fn pool() -> (backend::TestBackend, Arc<Pool>) {
    let backend = backend::start().await;
    let config = Config::parse(&pool_config(&backend.url()), Path::new("engine-test.toml")).unwrap();
    let runtime =
        switchyard_tests::runtime_with(true, Some(switchyard_tests::repo_root().join("target/test-component-cache")));
    (backend, Arc::new(Pool::from_config(&config, &runtime).unwrap()))
}

fn script(turns: &[&str]) -> ScriptedPolicy {
    ScriptedPolicy::new("scripted", turns.iter().map(|t| t.to_string()).collect())
}

#[tokio::test]
async fn multi_round_routing_records_every_call_and_answers() {
    let (_backend, pool) = pool().await;
    let policy = script(&[
        "<think>Capital first.</think>\n<search>geo-7b: What is the capital of Veloria?</search>",
        "<think>Now the river; the query has a colon: fine.</think>\n<search>GEO: Which river flows through Karsk? Note: one river</search>",
        "<think>Both known.</think>\n<answer>the Amsel</answer>",
    ]);
    let trace = run(&EngineConfig::default(), &policy, &pool, "Which river flows through the capital of Veloria?")
        .await
        .unwrap();
    assert_eq!(trace.stop, StopReason::Answered);
    assert_eq!(trace.answer.as_deref(), Some("the Amsel"));
    assert_eq!(trace.turns, 3);
    let calls = &trace.trajectory.calls;
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].model.as_str(), calls[0].reply.as_str()), ("geo", "Karsk."));
    assert_eq!(calls[1].query, "Which river flows through Karsk? Note: one river");
    assert_eq!(calls[1].reply, "The Amsel.");
    assert!(trace.cost > 0.0 && (trace.cost - calls.iter().map(|c| c.cost).sum::<f64>()).abs() < 1e-15);
    let authors: Vec<Author> = trace.trajectory.segments.iter().map(|s| s.author).collect();
    assert_eq!(authors, [Author::Router, Author::Host, Author::Router, Author::Host, Author::Router]);
    assert!(trace.text().contains("<information>Karsk.</information>"));
}

#[tokio::test]
async fn unknown_models_get_an_explicit_error_observation() {
    let (_backend, pool) = pool().await;
    let policy = script(&["<think>t</think><search>gpt-9: anything?</search>", "<think>t</think><answer>x</answer>"]);
    let trace = run(&EngineConfig::default(), &policy, &pool, "q").await.unwrap();
    let call = &trace.trajectory.calls[0];
    assert!(call.error.as_deref().unwrap().contains("gpt-9"));
    assert!(trace.trajectory.segments[1].text.contains("<information>Error: no model named `gpt-9`"));
    assert_eq!(trace.cost, 0.0);
}

#[tokio::test]
async fn after_max_turns_one_final_turn_without_routing() {
    let (backend, pool) = pool().await;
    let search = "<think>again</think><search>echo: ping</search>";
    let policy = script(&[search, search, search]);
    let config = EngineConfig { max_turns: 2, ..EngineConfig::default() };
    let trace = run(&config, &policy, &pool, "q").await.unwrap();
    assert_eq!(trace.stop, StopReason::NoAnswer);
    assert_eq!(trace.trajectory.calls.len(), 2, "the final turn's search is not sent");
    assert_eq!(backend.recorded.calls_to("echo"), 2);
    let last = &trace.trajectory.segments.last().unwrap().text;
    assert!(last.contains("Error: the routing budget is spent"), "{last}");
}

#[tokio::test]
async fn replies_are_neutralised_and_capped_without_cutting_the_closing_tag() {
    let (_backend, pool) = pool().await;
    let policy =
        script(&["<think>t</think><search>taggy: say something</search>", "<think>t</think><answer>y</answer>"]);
    let config = EngineConfig { observation_cap_chars: 50, ..EngineConfig::default() };
    let trace = run(&config, &policy, &pool, "q").await.unwrap();
    let info = &trace.trajectory.segments[1].text;
    assert!(info.trim_end().ends_with("</information>"), "{info}");
    assert!(!info.contains("<answer>"), "tag text in a reply is neutralised: {info}");
    assert!(info.contains("[truncated]"));
    assert_eq!(trace.answer.as_deref(), Some("y"));
}

#[tokio::test]
async fn context_limit_and_no_action_stop_the_episode() {
    let (_backend, pool) = pool().await;
    let long = format!("<think>{}</think><search>echo: hi</search>", "x".repeat(500));
    let policy = script(&[&long, &long, &long]);
    let config = EngineConfig { max_context_chars: 550, ..EngineConfig::default() };
    let trace = run(&config, &policy, &pool, "q").await.unwrap();
    assert_eq!(trace.stop, StopReason::ContextLimit);
    assert_eq!(trace.trajectory.calls.len(), 1);

    let trace = run(&EngineConfig::default(), &script(&["<think>hmm</think>"]), &pool, "q").await.unwrap();
    assert_eq!(trace.stop, StopReason::NoAction);
    assert!(trace.trajectory.calls.is_empty());
}

#[tokio::test]
async fn a_malformed_search_still_gets_its_information_block() {
    let (_backend, pool) = pool().await;
    let policy = script(&["<think>t</think><search>no colon here</search>", "<think>t</think><answer>z</answer>"]);
    let trace = run(&EngineConfig::default(), &policy, &pool, "q").await.unwrap();
    assert!(trace.trajectory.calls.is_empty());
    assert_eq!(trace.trajectory.segments[1].author, Author::Host);
    assert!(trace.trajectory.segments[1].text.contains("Error:"));
    assert_eq!(trace.answer.as_deref(), Some("z"));
}
