//! A cost component that misbehaves for models named after what it does,
//! and prices every other model at $0.000001 per token:
//! - "cost-nan", "cost-inf", "cost-negative": a NaN, infinite or negative cost;
//! - "cost-huge": $1e300 for one call (finite, but sums overflow);
//! - "cost-spin": spins until its deadline (guest code on the workers);
//! - "cost-long-error": refuses with a 50 KiB message (cut to the error cap);
//! - "cost-huge-error": refuses with an 8 MiB message (stopped before the copy).

wit_bindgen::generate!({ world: "cost", path: "../../../wit" });

use std::hint::black_box;
use switchyard::plugin::types::ErrorKind;

struct HostileCost;

impl Guest for HostileCost {
    fn cost(
        model: ModelDescriptor,
        usage: Usage,
        _latency_ms: u32,
        _settings: Vec<Setting>,
    ) -> Result<f64, PluginError> {
        let refuse = |message: String| Err(PluginError { kind: ErrorKind::InvalidInput, message });
        match model.name.as_str() {
            "cost-nan" => Ok(f64::NAN),
            "cost-inf" => Ok(f64::INFINITY),
            "cost-negative" => Ok(-1.0),
            "cost-huge" => Ok(1e300),
            "cost-spin" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "cost-long-error" => refuse("x".repeat(50 << 10)),
            "cost-huge-error" => refuse("x".repeat(8 << 20)),
            _ => Ok(f64::from(usage.input_tokens + usage.output_tokens) * 1e-6),
        }
    }
}

export!(HostileCost);
