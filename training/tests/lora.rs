//! LoRA adapters: a fresh adapter changes nothing; training moves the adapter only; the adapter
//! saves in PEFT's layout (names, shapes, config) and loads back to the same outputs; merging
//! leaves base + scale * B @ A; an adapter trained on other base weights, or with missing or
//! misshapen tensors, is refused; warm-up, PPO and GRPO with an adapter resume bit-exactly; bf16
//! compute stays close to f32 and trains float32 adapter weights.

use std::collections::BTreeMap;
use std::path::Path;

use switchyard::sim::questions::Split;
use switchyard_train::batch::Batch;
use switchyard_train::checkpoint::RunDir;
use switchyard_train::lora::{self, LoraOptions};
use switchyard_train::model::{Config, Transformer, position_ids};
use switchyard_train::optim::AdamW;
use switchyard_train::rl::{self, Algorithm, RlOptions};
use switchyard_train::sft::{self, SftOptions};
use tch::{Device, Kind, Tensor};

use crate::common;

fn config() -> Config {
    Config {
        model_type: "llama".into(),
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        ..Config::tiny(60)
    }
}

/// A perturbed random model saved as a snapshot in a temporary directory.
fn base_snapshot(seed: i64) -> tempfile::TempDir {
    tch::manual_seed(seed);
    let model = Transformer::new(config(), Device::Cpu).unwrap();
    switchyard_train::model::perturb(&model, 1.0);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    dir
}

fn ids() -> Tensor {
    Tensor::from_slice(&[3i64, 17, 5, 42, 8, 9, 30, 2, 11, 59]).view([2, 5])
}

fn logits(model: &Transformer) -> Tensor {
    let mask = Tensor::ones([2, 5], (Kind::Int64, Device::Cpu));
    tch::no_grad(|| model.forward(&ids(), &mask, &position_ids(&mask), &[]).logits)
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1)).unwrap()
}

fn snapshot_of(vars: BTreeMap<String, Tensor>) -> BTreeMap<String, Vec<f32>> {
    vars.into_iter().map(|(n, t)| (n, values(&t))).collect()
}

fn no_dropout() -> LoraOptions {
    LoraOptions { dropout: 0.0, ..LoraOptions::default() }
}

/// A few supervised steps on a fixed random batch, loss on the second half of each row.
fn train_steps(model: &Transformer, steps: usize) -> (f64, f64) {
    let rows: Vec<Vec<i64>> = Vec::try_from(Tensor::randint(60, [4, 12], (Kind::Int64, Device::Cpu))).unwrap();
    let mask: Vec<bool> = (0..12).map(|i| i >= 6).collect();
    let seqs: Vec<(&[i64], &[bool])> = rows.iter().map(|r| (r.as_slice(), mask.as_slice())).collect();
    let batch = Batch::new(&seqs, 0, Device::Cpu);
    let mut opt = AdamW::new(model.trainable(), 1e-2, 0.0);
    let first = sft::sft_loss(model, &batch).double_value(&[]);
    for _ in 0..steps {
        opt.zero_grad();
        model.set_training(true);
        let loss = sft::sft_loss(model, &batch);
        loss.backward();
        model.set_training(false);
        opt.step(1.0);
    }
    (first, sft::sft_loss(model, &batch).double_value(&[]))
}

#[test]
fn a_fresh_adapter_changes_nothing_and_training_moves_only_the_adapter() {
    let _serial = common::torch_rng();
    let base = base_snapshot(1);
    let mut model = Transformer::load(base.path(), Device::Cpu).unwrap();
    let before = logits(&model);
    let base_weights = snapshot_of(model.vs.variables().into_iter().collect());
    model.attach_lora(&LoraOptions::default()).unwrap();
    assert!(logits(&model).equal(&before), "B starts at zero, so the outputs are the base's exactly");

    let trainable = model.trainable();
    assert_eq!(trainable.len(), 2 * 7 * 2, "A and B for seven projections in each of two layers");
    assert!(trainable.keys().all(|n| n.starts_with("base_model.model.model.layers.")), "{trainable:?}");
    let (first, last) = train_steps(&model, 8);
    assert!(last < first, "the adapter learns: loss {first} -> {last}");
    assert_eq!(
        snapshot_of(model.vs.variables().into_iter().collect()),
        base_weights,
        "base, embeddings and LM head stay frozen"
    );
    assert!(!logits(&model).equal(&before));
    assert!(model.attach_lora(&LoraOptions::default()).is_err(), "one adapter at a time");
    let mut fresh = Transformer::load(base.path(), Device::Cpu).unwrap();
    let err = fresh.attach_lora(&LoraOptions { layers: Some(vec![1, 2]), ..no_dropout() }).unwrap_err().to_string();
    assert!(err.contains("layer 2") && err.contains("2 layers"), "{err}");
}

#[test]
fn an_adapter_saves_in_peft_layout_and_loads_back_to_the_same_outputs() {
    let _serial = common::torch_rng();
    let base = base_snapshot(2);
    let mut model = Transformer::load(base.path(), Device::Cpu).unwrap();
    let options =
        LoraOptions { rank: 4, alpha: 8.0, target_modules: vec!["q_proj".into(), "down_proj".into()], ..no_dropout() };
    model.attach_lora(&options).unwrap();
    train_steps(&model, 3);
    let out = tempfile::tempdir().unwrap();
    model.save(out.path()).unwrap();
    assert!(!out.path().join("model.safetensors").exists(), "an adapter run saves the adapter only");

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["task_type"], "CAUSAL_LM");
    assert_eq!(config["r"], 4);
    assert_eq!(config["lora_alpha"], 8.0);
    assert_eq!(config["bias"], "none");
    assert_eq!(config["target_modules"], serde_json::json!(["q_proj", "down_proj"]));
    assert_eq!(config["base_model_name_or_path"], base.path().display().to_string());

    // PEFT's tensor names (adapter name stripped) and shapes: A [r, in], B [out, r].
    let tensors: BTreeMap<String, Vec<i64>> = Tensor::read_safetensors(out.path().join("adapter_model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, t)| {
            assert_eq!(t.kind(), Kind::Float, "{n}: adapter weights are float32");
            (n, t.size())
        })
        .collect();
    let mut expected = BTreeMap::new();
    for layer in 0..2 {
        let q = format!("base_model.model.model.layers.{layer}.self_attn.q_proj");
        expected.insert(format!("{q}.lora_A.weight"), vec![4, 32]);
        expected.insert(format!("{q}.lora_B.weight"), vec![32, 4]);
        let down = format!("base_model.model.model.layers.{layer}.mlp.down_proj");
        expected.insert(format!("{down}.lora_A.weight"), vec![4, 64]);
        expected.insert(format!("{down}.lora_B.weight"), vec![32, 4]);
    }
    assert_eq!(tensors, expected);

    let record: lora::BaseRecord =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("base.json")).unwrap()).unwrap();
    assert_eq!(record.weights_sha256, lora::sha256_file(&base.path().join("model.safetensors")).unwrap());

    // The adapter directory loads as a model: its base found by name, the outputs identical.
    let back = Transformer::load(out.path(), Device::Cpu).unwrap();
    assert_eq!(back.lora(), Some(&options));
    assert!(logits(&back).equal(&logits(&model)));
}

#[test]
fn merging_leaves_base_plus_scaled_b_times_a_and_the_same_outputs() {
    let _serial = common::torch_rng();
    let base = base_snapshot(3);
    let mut model = Transformer::load(base.path(), Device::Cpu).unwrap();
    let options = LoraOptions { rank: 2, alpha: 6.0, ..no_dropout() };
    model.attach_lora(&options).unwrap();
    // Move B off zero so the merge has something to add.
    tch::no_grad(|| {
        for (_, mut t) in model.trainable() {
            let noise = t.randn_like() * 0.3;
            t.copy_(&noise);
        }
    });
    let adapter = model.trainable();
    let name = "model.layers.1.self_attn.v_proj";
    let a = &adapter[&lora::tensor_name(name, 'A')];
    let b = &adapter[&lora::tensor_name(name, 'B')];
    let expected = model.vs.variables()[&format!("{name}.weight")].copy() + b.matmul(a) * options.scale();
    let with_adapter = logits(&model);
    model.merge_adapter().unwrap();
    let merged = &model.vs.variables()[&format!("{name}.weight")];
    let worst = (merged - expected).abs().max().double_value(&[]);
    assert!(worst < 1e-6, "merged weight differs from base + scale * B @ A by {worst}");
    let worst = (logits(&model) - with_adapter).abs().max().double_value(&[]);
    assert!(worst < 1e-4, "merged logits differ by {worst}");
    assert!(model.lora().is_none() && model.merge_adapter().is_err());
}

#[test]
fn an_adapter_for_other_base_weights_or_with_bad_tensors_is_refused() {
    let _serial = common::torch_rng();
    let base = base_snapshot(4);
    let mut model = Transformer::load(base.path(), Device::Cpu).unwrap();
    model.attach_lora(&no_dropout()).unwrap();
    let out = tempfile::tempdir().unwrap();
    model.save(out.path()).unwrap();

    // Another base at the same path: refused by hash, naming both.
    let other = base_snapshot(5);
    std::fs::copy(other.path().join("model.safetensors"), base.path().join("model.safetensors")).unwrap();
    let err = Transformer::load(out.path(), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("SHA-256") && err.contains("trained on"), "{err}");
    std::fs::remove_file(out.path().join("base.json")).unwrap();
    Transformer::load(out.path(), Device::Cpu)
        .expect("an adapter without a base record (e.g. from peft) loads as it is");

    let edit = |f: &dyn Fn(&mut Named)| {
        let path = out.path().join("adapter_model.safetensors");
        let mut tensors = Tensor::read_safetensors(&path).unwrap();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        f(&mut tensors);
        Tensor::write_safetensors(&tensors, &path).unwrap();
    };
    // One adapter tensor set to `value` throughout: NaN is refused, naming it; 0 is fine.
    let set_q_a = |value: f64| {
        edit(&|t| {
            for (_, x) in t.iter_mut().filter(|(n, _)| n.contains("layers.0.self_attn.q_proj.lora_A")) {
                *x = x.fill(value);
            }
        })
    };
    set_q_a(f64::NAN);
    let err = Transformer::load(out.path(), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("layers.0.self_attn.q_proj.lora_A") && err.contains("NaN"), "{err}");
    set_q_a(0.0);
    edit(&|t| t.retain(|(n, _)| !n.contains("layers.1.mlp.up_proj.lora_B")));
    let err = Transformer::load(out.path(), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("layers.1.mlp.up_proj.lora_B"), "{err}");
    edit(&|t| {
        t.push((
            "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight".into(),
            Tensor::zeros([64, 3], (Kind::Float, Device::Cpu)),
        ))
    });
    let err = Transformer::load(out.path(), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("up_proj.lora_B") && err.contains("shape"), "{err}");

    let config_path = out.path().join("adapter_config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["use_dora"] = true.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let err = Transformer::load(out.path(), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("DoRA") && err.contains("not supported"), "{err}");
    config["use_dora"] = false.into();
    config["base_model_name_or_path"] = "nowhere/at-all".into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let err = Transformer::load(out.path(), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("nowhere/at-all"), "{err}");
}

/// An adapter file's tensors, as read and written.
type Named = Vec<(String, Tensor)>;

fn adapter_weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("adapter_model.safetensors")).unwrap()
}

#[test]
fn lora_warm_up_ppo_and_grpo_resume_bit_exactly() {
    let _serial = common::torch_rng();
    let env = common::env();
    let tokenizer = common::tokenizer(&env);
    let lora_model = |seed: i64| {
        let mut m = common::tiny_model(tokenizer.vocab_size(), seed);
        m.attach_lora(&LoraOptions { rank: 2, dropout: 0.1, ..LoraOptions::default() }).unwrap();
        m
    };
    let root = tempfile::tempdir().unwrap();

    // Warm-up (with dropout: its draws are seeded like the rest of the step).
    let questions: Vec<_> = env.split(Split::Train).into_iter().take(6).collect();
    let examples = sft::teacher_examples(
        &env,
        &tokenizer,
        &questions,
        &SftOptions { only_correct: false, ..Default::default() },
        0,
    )
    .unwrap();
    let opts = SftOptions { epochs: 1, batch_size: 2, warmup_steps: 1, save_every: 1, ..Default::default() };
    let warm_up = |name: &str| {
        let run = RunDir::open(&root.path().join(name), &opts, true).unwrap();
        tch::manual_seed(11);
        sft::train(&lora_model(9), &tokenizer, &examples, &[], &opts, 1, &run, false).unwrap();
        run
    };
    let straight = warm_up("sft-a");
    let last = format!("checkpoints/step-{:06}", examples.len().div_ceil(2));
    let interrupted = warm_up("sft-b");
    std::fs::remove_dir_all(interrupted.root.join(&last)).unwrap();
    let resumed = warm_up("sft-b");
    assert_eq!(adapter_weights(&straight.root.join(&last)), adapter_weights(&resumed.root.join(&last)));
    assert!(resumed.root.join("final/adapter_model.safetensors").is_file());
    assert!(!resumed.root.join("final/model.safetensors").exists());

    // PPO and GRPO on the adapter, the reference the frozen starting policy.
    for algorithm in [Algorithm::Ppo, Algorithm::Grpo] {
        let rl_opts = RlOptions {
            algorithm,
            group_size: 2,
            steps: 2,
            questions_per_step: 3,
            mini_batch: 2,
            eval_questions: 0,
            save_every: 1,
            lr: 1e-2,
            sampling: switchyard_train::generate::Sampling { max_new_tokens: 12, ..Default::default() },
            ..Default::default()
        };
        let rl_run = |name: &str| {
            let run = RunDir::open(&root.path().join(format!("{algorithm:?}-{name}")), &rl_opts, true).unwrap();
            let policy = lora_model(7);
            let reference = common::tiny_model(tokenizer.vocab_size(), 7);
            reference.freeze();
            rl::train(&policy, &reference, &tokenizer, &env, &rl_opts, 3, &run, false).unwrap();
            run
        };
        let straight = rl_run("a");
        let interrupted = rl_run("b");
        std::fs::remove_dir_all(interrupted.root.join("checkpoints/step-000002")).unwrap();
        let resumed = rl_run("b");
        let a = straight.root.join("checkpoints/step-000002");
        assert_eq!(
            adapter_weights(&a),
            adapter_weights(&resumed.root.join("checkpoints/step-000002")),
            "{algorithm:?}: the resumed step differs"
        );
        assert_ne!(
            adapter_weights(&a),
            adapter_weights(&straight.root.join("checkpoints/step-000001")),
            "{algorithm:?} moved the adapter"
        );
    }
}

#[test]
fn bf16_compute_stays_close_to_f32_and_trains_float32_adapter_weights() {
    let _serial = common::torch_rng();
    let base = base_snapshot(6);
    let mut model = Transformer::load(base.path(), Device::Cpu).unwrap();
    assert!(model.use_bf16().is_err(), "full fine-tuning keeps float32 master weights");
    model.attach_lora(&no_dropout()).unwrap();
    let f32_logits = logits(&model);
    model.use_bf16().unwrap();
    assert_eq!(model.compute_kind(), Kind::BFloat16);
    let bf16_logits = logits(&model);
    assert_eq!(bf16_logits.kind(), Kind::Float, "logits come back in float32");
    let scale = f32_logits.abs().max().double_value(&[]);
    let worst = (bf16_logits - &f32_logits).abs().max().double_value(&[]);
    assert!(worst < 0.05 * scale.max(1.0), "bf16 logits differ by {worst} (scale {scale})");
    let (first, last) = train_steps(&model, 8);
    assert!(last < first, "bf16 training learns: {first} -> {last}");
    assert!(model.trainable().values().all(|t| t.kind() == Kind::Float), "adapter weights stay float32");
}
