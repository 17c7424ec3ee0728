//! The decoder graph's interface, checked against the layout Hugging Face optimum gives
//! decoder-with-past models:
//!
//! ```text
//! in:  input_ids int64 [batch, seq]   attention_mask int64 [batch, past + seq]
//!      position_ids int64 [batch, seq] (optional)
//!      past_key_values.{i}.key|value float32 [batch, kv_heads, past, head_dim]   for i in 0..layers
//! out: logits float32 [batch, seq, vocab]
//!      present.{i}.key|value float32 [batch, kv_heads, past + seq, head_dim]
//! ```
//!
//! Invariants: a [`Signature`] exists only for a graph with exactly these inputs (no others),
//! at least these outputs, float32 caches and logits, and a known number of KV heads and head
//! dimension (from the graph, else from `config.json`); anything else is refused at load with
//! the name of the offending input or output.

use ort::value::{Outlet, TensorElementType, ValueType};

use super::model_dir::Architecture;

/// One graph input or output, as `policy check` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    pub name: String,
    /// The element type, for tensors.
    pub element: Option<TensorElementType>,
    /// Dimensions; -1 where symbolic.
    pub shape: Vec<i64>,
    /// Type and shape as ONNX Runtime prints them, symbols included.
    pub display: String,
}

impl Port {
    pub fn from_outlet(outlet: &Outlet) -> Port {
        let dtype = outlet.dtype();
        let (element, shape) = match dtype {
            ValueType::Tensor { ty, shape, .. } => (Some(*ty), shape.iter().copied().collect()),
            _ => (None, Vec::new()),
        };
        Port { name: outlet.name().to_string(), element, shape, display: dtype.to_string() }
    }
}

/// What the decoder needs to know about its graph.
#[derive(Clone, Debug)]
pub struct Signature {
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// The logits' last dimension when the graph fixes it.
    pub vocab: Option<usize>,
    /// Whether the graph takes `position_ids` (some exports compute positions from the mask).
    pub position_ids: bool,
    /// `past_key_values.{i}.key`, `past_key_values.{i}.value` for each layer, in order.
    pub past_names: Vec<String>,
    /// `present.{i}.key`, `present.{i}.value`, matching `past_names`.
    pub present_names: Vec<String>,
}

fn element_name(e: Option<TensorElementType>) -> String {
    e.map_or_else(|| "not a tensor".to_string(), |e| e.to_string())
}

fn names(ports: &[Port]) -> String {
    ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// `port`, checked to be a tensor of `element` with `rank` dimensions.
fn expect<'p>(
    all: &[Port],
    port: Option<&'p Port>,
    what: &str,
    name: &str,
    element: TensorElementType,
    rank: usize,
) -> Result<&'p Port, String> {
    let Some(port) = port else {
        return Err(format!("the graph has no {what} `{name}` (its {what}s: {})", names(all)));
    };
    if port.element != Some(element) {
        let hint = if element == TensorElementType::Float32 { " (only float32 models are supported)" } else { "" };
        return Err(format!("{what} `{name}` is {}, expected {element}{hint}", element_name(port.element)));
    }
    if port.shape.len() != rank {
        return Err(format!("{what} `{name}` has rank {}, expected {rank} ({})", port.shape.len(), port.display));
    }
    Ok(port)
}

impl Signature {
    /// Check `inputs`/`outputs`; `Err` is the reason, for the caller to attach the file name.
    pub fn inspect(inputs: Vec<Port>, outputs: Vec<Port>, fallback: &Architecture) -> Result<Signature, String> {
        let input = |name: &str| inputs.iter().find(|p| p.name == name);
        let output = |name: &str| outputs.iter().find(|p| p.name == name);
        expect(&inputs, input("input_ids"), "input", "input_ids", TensorElementType::Int64, 2)?;
        expect(&inputs, input("attention_mask"), "input", "attention_mask", TensorElementType::Int64, 2)?;
        let position_ids = input("position_ids").is_some();
        if position_ids {
            expect(&inputs, input("position_ids"), "input", "position_ids", TensorElementType::Int64, 2)?;
        }
        let logits = expect(&outputs, output("logits"), "output", "logits", TensorElementType::Float32, 3)?;
        let vocab = usize::try_from(logits.shape[2]).ok();

        let layers = inputs.iter().filter(|p| p.name.starts_with("past_key_values.")).count() / 2;
        if layers == 0 {
            return Err(format!(
                "the graph has no `past_key_values.*` inputs: it is not a decoder with past key values (its inputs: {})",
                names(&inputs)
            ));
        }
        let mut past_names = Vec::with_capacity(2 * layers);
        let mut present_names = Vec::with_capacity(2 * layers);
        let (mut kv_heads, mut head_dim) = (None::<usize>, None::<usize>);
        for i in 0..layers {
            for part in ["key", "value"] {
                let past = format!("past_key_values.{i}.{part}");
                let port = expect(&inputs, input(&past), "input", &past, TensorElementType::Float32, 4)?;
                let present = format!("present.{i}.{part}");
                expect(&outputs, output(&present), "output", &present, TensorElementType::Float32, 4)?;
                for (found, dim, what) in
                    [(&mut kv_heads, port.shape[1], "KV heads"), (&mut head_dim, port.shape[3], "head dim")]
                {
                    if let Ok(d) = usize::try_from(dim) {
                        match *found {
                            Some(prev) if prev != d => {
                                return Err(format!("`{past}` has {d} {what}, earlier layers {prev}"));
                            }
                            _ => *found = Some(d),
                        }
                    }
                }
                past_names.push(past);
                present_names.push(present);
            }
        }
        let known =
            |p: &str| matches!(p, "input_ids" | "attention_mask" | "position_ids") || past_names.iter().any(|n| n == p);
        if let Some(extra) = inputs.iter().find(|p| !known(&p.name)) {
            return Err(format!(
                "unsupported input `{}` ({}): the decoder feeds only input_ids, attention_mask, position_ids and past_key_values.*",
                extra.name, extra.display
            ));
        }
        let kv_heads = kv_heads.or(fallback.num_key_value_heads).ok_or(
            "the number of KV heads is symbolic in the graph and config.json does not give num_key_value_heads",
        )?;
        let head_dim = head_dim
            .or(fallback.head_dim)
            .ok_or("the head dimension is symbolic in the graph and config.json does not give it")?;
        if kv_heads == 0 || head_dim == 0 {
            return Err(format!("KV heads ({kv_heads}) and head dim ({head_dim}) must be positive"));
        }
        Ok(Signature { inputs, outputs, layers, kv_heads, head_dim, vocab, position_ids, past_names, present_names })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, element: TensorElementType, shape: &[i64]) -> Port {
        Port { name: name.into(), element: Some(element), shape: shape.to_vec(), display: String::new() }
    }

    fn optimum(layers: usize, cache: TensorElementType) -> (Vec<Port>, Vec<Port>) {
        use TensorElementType::*;
        let mut inputs = vec![
            port("input_ids", Int64, &[-1, -1]),
            port("attention_mask", Int64, &[-1, -1]),
            port("position_ids", Int64, &[-1, -1]),
        ];
        let mut outputs = vec![port("logits", Float32, &[-1, -1, 600])];
        for i in 0..layers {
            for part in ["key", "value"] {
                inputs.push(port(&format!("past_key_values.{i}.{part}"), cache, &[-1, 2, -1, 8]));
                outputs.push(port(&format!("present.{i}.{part}"), cache, &[-1, 2, -1, 8]));
            }
        }
        (inputs, outputs)
    }

    #[test]
    fn the_optimum_layout_gives_layers_heads_and_head_dim() {
        let (inputs, outputs) = optimum(3, TensorElementType::Float32);
        let s = Signature::inspect(inputs, outputs, &Architecture::default()).unwrap();
        assert_eq!((s.layers, s.kv_heads, s.head_dim, s.vocab, s.position_ids), (3, 2, 8, Some(600), true));
        assert_eq!(s.past_names[5], "past_key_values.2.value");
        assert_eq!(s.present_names[0], "present.0.key");
    }

    #[test]
    fn half_precision_caches_and_missing_or_extra_inputs_are_refused_by_name() {
        let (inputs, outputs) = optimum(2, TensorElementType::Float16);
        let err = Signature::inspect(inputs, outputs, &Architecture::default()).unwrap_err();
        assert!(err.contains("past_key_values.0.key") && err.contains("float32"), "{err}");

        let (mut inputs, outputs) = optimum(2, TensorElementType::Float32);
        inputs.retain(|p| p.name != "attention_mask");
        let err = Signature::inspect(inputs, outputs, &Architecture::default()).unwrap_err();
        assert!(err.contains("no input `attention_mask`"), "{err}");

        let (mut inputs, outputs) = optimum(2, TensorElementType::Float32);
        inputs.push(port("use_cache_branch", TensorElementType::Bool, &[1]));
        let err = Signature::inspect(inputs, outputs, &Architecture::default()).unwrap_err();
        assert!(err.contains("use_cache_branch"), "{err}");

        let (inputs, mut outputs) = optimum(2, TensorElementType::Float32);
        outputs.retain(|p| p.name != "present.1.value");
        let err = Signature::inspect(inputs, outputs, &Architecture::default()).unwrap_err();
        assert!(err.contains("present.1.value"), "{err}");
    }

    #[test]
    fn symbolic_heads_come_from_config_json() {
        let (mut inputs, outputs) = optimum(1, TensorElementType::Float32);
        for p in &mut inputs {
            if p.name.starts_with("past") {
                p.shape = vec![-1, -1, -1, -1];
            }
        }
        assert!(Signature::inspect(inputs.clone(), outputs.clone(), &Architecture::default()).is_err());
        let arch = Architecture { num_key_value_heads: Some(4), head_dim: Some(16), ..Default::default() };
        let s = Signature::inspect(inputs, outputs, &arch).unwrap();
        assert_eq!((s.kv_heads, s.head_dim), (4, 16));
    }
}
