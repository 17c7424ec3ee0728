//! Import reads an export's weights back exactly: the imported model computes the logits of the
//! model that was exported, bit for bit, from inline and external weights, and a damaged or
//! foreign file is refused with an error that names it.

use switchyard_train::export::import::{ImportError, import};
use switchyard_train::export::onnx::{ExportOptions, export};
use switchyard_train::model::{Config, Transformer, position_ids};
use tch::{Device, Kind, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The export parity tests' small Qwen2, tied or not.
fn config(tied: bool) -> Config {
    Config { tie_word_embeddings: tied, ..crate::export_parity::qwen2() }
}

fn trained_looking(config: Config, seed: i64) -> Result<Transformer, Box<dyn std::error::Error>> {
    tch::manual_seed(seed);
    let model = Transformer::new(config, Device::Cpu)?;
    switchyard_train::model::perturb(&model, 1.0);
    Ok(model)
}

fn logits(model: &Transformer, ids: &Tensor) -> Tensor {
    let mask = Tensor::ones(ids.size(), (Kind::Int64, Device::Cpu));
    model.forward(ids, &mask, &position_ids(&mask), &[]).logits
}

#[test]
fn imported_weights_give_the_exported_models_logits_exactly() -> TestResult {
    for (seed, tied, external_data) in [(51, true, false), (52, false, false), (53, true, true)] {
        let model = trained_looking(config(tied), seed)?;
        let dir = tempfile::tempdir()?;
        export(&model, &dir.path().join("model.onnx"), &ExportOptions { external_data })?;
        // A fresh seed, so weights the import failed to copy would differ.
        tch::manual_seed(seed + 100);
        let back = import(dir.path(), Device::Cpu)?;
        assert_eq!(back.config, model.config);
        assert_eq!(back.vs.variables().len(), model.vs.variables().len());
        let ids = Tensor::randint(50, [2, 7], (Kind::Int64, Device::Cpu));
        let (a, b) = (logits(&model, &ids), logits(&back, &ids));
        assert!(a.equal(&b), "tied {tied}, external {external_data}: logits differ after import");
    }
    Ok(())
}

#[test]
fn import_dir_writes_a_loadable_model_directory() -> TestResult {
    let model = trained_looking(config(true), 54)?;
    let policy = tempfile::tempdir()?;
    export(&model, &policy.path().join("model.onnx"), &ExportOptions::default())?;
    let out = tempfile::tempdir()?;
    let missing = switchyard_train::export::import_dir(policy.path(), out.path()).err().ok_or("no tokenizer")?;
    assert!(matches!(missing, ImportError::NoTokenizer { .. }), "{missing}");

    std::fs::write(policy.path().join("tokenizer.json"), "{\"stand-in\": true}")?;
    std::fs::write(policy.path().join("generation_config.json"), "{}")?;
    switchyard_train::export::import_dir(policy.path(), out.path())?;
    for f in ["config.json", "model.safetensors", "tokenizer.json", "generation_config.json"] {
        assert!(out.path().join(f).is_file(), "{f} not written");
    }
    let loaded = Transformer::load(out.path(), Device::Cpu)?;
    let ids = Tensor::randint(50, [1, 5], (Kind::Int64, Device::Cpu));
    assert!(logits(&model, &ids).equal(&logits(&loaded, &ids)));
    Ok(())
}

#[test]
fn damaged_or_foreign_files_are_refused_with_their_name() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("model.onnx");

    let err = import(dir.path(), Device::Cpu).err().ok_or("no file")?;
    assert!(matches!(err, ImportError::Io { .. }) && err.to_string().contains("model.onnx"), "{err}");

    std::fs::write(&path, b"\xff\xff\xff\xff not protobuf")?;
    let err = import(dir.path(), Device::Cpu).err().ok_or("garbage")?;
    assert!(matches!(err, ImportError::Decode { .. }) && err.to_string().contains("model.onnx"), "{err}");

    // A whole export cut short: protobuf cannot decode a truncated message.
    let model = trained_looking(config(true), 55)?;
    export(&model, &path, &ExportOptions::default())?;
    let bytes = std::fs::read(&path)?;
    std::fs::write(&path, &bytes[..bytes.len() / 2])?;
    let err = import(dir.path(), Device::Cpu).err().ok_or("truncated")?;
    assert!(err.to_string().contains("model.onnx"), "{err}");

    // External weights whose data file is shorter than the graph says.
    export(&model, &path, &ExportOptions { external_data: true })?;
    let data = dir.path().join("model.onnx_data");
    let len = std::fs::metadata(&data)?.len();
    std::fs::OpenOptions::new().write(true).open(&data)?.set_len(len / 2)?;
    let err = import(dir.path(), Device::Cpu).err().ok_or("short data file")?;
    assert!(matches!(err, ImportError::WeightData { .. }) && err.to_string().contains("past its end"), "{err}");
    Ok(())
}
