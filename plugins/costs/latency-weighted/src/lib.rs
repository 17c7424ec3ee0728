//! Cost plugin `latency-weighted`: the token price of a call plus a charge
//! for the time it took,
//! `input_tokens * price_in / 1e6 + output_tokens * price_out / 1e6 + per_second * latency_ms / 1000`.
//!
//! Settings: `per-second` (US dollars per second of latency, default 0, must
//! be >= 0). Unknown settings are refused with `unsupported`; negative, NaN or
//! infinite prices and a negative `per-second` with `invalid-input`. With
//! valid inputs the result is always finite and non-negative.

wit_bindgen::generate!({ world: "cost", path: "../../../wit" });

use switchyard::plugin::types::ErrorKind;
use switchyard_plugin_sdk::settings::Settings;

/// The only setting this plugin understands.
const PER_SECOND: &str = "per-second";

/// Dollar cost of `usage` at the descriptor's per-million-token prices.
pub fn token_price(model: &ModelDescriptor, usage: Usage) -> f64 {
    f64::from(usage.input_tokens) * model.price_in_per_mtok / 1e6
        + f64::from(usage.output_tokens) * model.price_out_per_mtok / 1e6
}

/// Token price plus `per_second` dollars for each second of `latency_ms`.
pub fn latency_weighted(model: &ModelDescriptor, usage: Usage, latency_ms: u32, per_second: f64) -> f64 {
    token_price(model, usage) + per_second * f64::from(latency_ms) / 1000.0
}

/// Validates the inputs and computes the cost; the plugin's whole behaviour.
pub fn compute(
    model: &ModelDescriptor,
    usage: Usage,
    latency_ms: u32,
    settings: &[Setting],
) -> Result<f64, PluginError> {
    let pairs: Vec<(&str, f64)> = settings.iter().map(|s| (s.name.as_str(), s.value)).collect();
    let parsed = Settings::parse(&pairs, &[PER_SECOND]).map_err(|e| {
        let kind = if e.is_unknown() { ErrorKind::Unsupported } else { ErrorKind::InvalidInput };
        PluginError { kind, message: format!("latency-weighted: {e}") }
    })?;
    let per_second = parsed.get_or(PER_SECOND, 0.0);
    if per_second < 0.0 {
        return Err(invalid(format!("setting `{PER_SECOND}` must be >= 0, got {per_second}")));
    }
    for (what, price) in
        [("price-in-per-mtok", model.price_in_per_mtok), ("price-out-per-mtok", model.price_out_per_mtok)]
    {
        // Infinite prices are refused too: they would make every sum infinite.
        if !(price.is_finite() && price >= 0.0) {
            return Err(invalid(format!("model `{}` has an invalid {what}: {price}", model.name)));
        }
    }
    Ok(latency_weighted(model, usage, latency_ms, per_second))
}

fn invalid(message: String) -> PluginError {
    PluginError { kind: ErrorKind::InvalidInput, message: format!("latency-weighted: {message}") }
}

struct LatencyWeighted;

impl Guest for LatencyWeighted {
    fn cost(model: ModelDescriptor, usage: Usage, latency_ms: u32, settings: Vec<Setting>) -> Result<f64, PluginError> {
        compute(&model, usage, latency_ms, &settings)
    }
}

export!(LatencyWeighted);

#[cfg(test)]
mod tests {
    use super::*;

    fn model(price_in: f64, price_out: f64) -> ModelDescriptor {
        ModelDescriptor {
            name: "m".into(),
            aliases: vec![],
            price_in_per_mtok: price_in,
            price_out_per_mtok: price_out,
            latency_ms: 500,
            context_tokens: 8192,
            size_b: None,
            strengths: vec![],
            example_scores: vec![],
        }
    }

    fn setting(name: &str, value: f64) -> Setting {
        Setting { name: name.into(), value }
    }

    const USAGE: Usage = Usage { input_tokens: 1_000_000, output_tokens: 500_000 };

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn default_is_token_price_only() {
        let cost = compute(&model(2.0, 8.0), USAGE, 1500, &[]).unwrap();
        assert!(close(cost, 2.0 + 4.0), "{cost}");
    }

    #[test]
    fn adds_per_second_charge() {
        let cost = compute(&model(2.0, 8.0), USAGE, 1500, &[setting(PER_SECOND, 0.01)]).unwrap();
        assert!(close(cost, 6.0 + 0.015), "{cost}");
        let no_tokens = Usage { input_tokens: 0, output_tokens: 0 };
        let cost = compute(&model(0.0, 0.0), no_tokens, 250, &[setting(PER_SECOND, 0.002)]).unwrap();
        assert!(close(cost, 0.0005), "{cost}");
    }

    #[test]
    fn extreme_inputs_stay_finite() {
        let max = Usage { input_tokens: u32::MAX, output_tokens: u32::MAX };
        let cost = compute(&model(1e6, 1e6), max, u32::MAX, &[setting(PER_SECOND, 1e6)]).unwrap();
        assert!(cost.is_finite() && cost > 0.0);
    }

    #[test]
    fn unknown_setting_is_unsupported() {
        let err = compute(&model(1.0, 1.0), USAGE, 0, &[setting("per-secnd", 1.0)]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported);
        assert!(err.message.contains("per-secnd"), "{}", err.message);
    }

    #[test]
    fn bad_setting_values_are_invalid_input() {
        for v in [-0.5, f64::NAN, f64::INFINITY] {
            let err = compute(&model(1.0, 1.0), USAGE, 0, &[setting(PER_SECOND, v)]).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{v}");
        }
    }

    #[test]
    fn bad_prices_are_invalid_input() {
        for (pi, po) in [(-1.0, 1.0), (1.0, f64::NAN), (f64::INFINITY, 0.0)] {
            let err = compute(&model(pi, po), USAGE, 0, &[]).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{pi} {po}");
            assert!(err.message.contains("`m`"), "{}", err.message);
        }
    }
}
