//! Cost plugin `token-price`: the dollar cost of one call is
//! `input_tokens * price_in / 1e6 + output_tokens * price_out / 1e6`.
//! Takes no settings.

wit_bindgen::generate!({ world: "cost", path: "../../../wit" });

use switchyard::plugin::types::ErrorKind;

/// Dollar cost of `usage` at the descriptor's per-million-token prices.
pub fn token_price(model: &ModelDescriptor, usage: Usage) -> f64 {
    f64::from(usage.input_tokens) * model.price_in_per_mtok / 1e6
        + f64::from(usage.output_tokens) * model.price_out_per_mtok / 1e6
}

struct TokenPrice;

impl Guest for TokenPrice {
    fn cost(
        model: ModelDescriptor,
        usage: Usage,
        _latency_ms: u32,
        settings: Vec<Setting>,
    ) -> Result<f64, PluginError> {
        if let Some(s) = settings.first() {
            return Err(PluginError {
                kind: ErrorKind::Unsupported,
                message: format!("token-price takes no settings, got `{}`", s.name),
            });
        }
        if !(model.price_in_per_mtok >= 0.0 && model.price_out_per_mtok >= 0.0) {
            return Err(PluginError {
                kind: ErrorKind::InvalidInput,
                message: format!("model `{}` has a negative or NaN price", model.name),
            });
        }
        Ok(token_price(&model, usage))
    }
}

export!(TokenPrice);
