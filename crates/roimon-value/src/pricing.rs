//! What served tokens and requests are worth: configured prices per million
//! tokens and per request, optionally per model, applied to a [`Delta`].

use crate::state::Delta;
use roimon_core::Money;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Value prices, in the configured (price) currency.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Value per million prompt tokens that were not cache hits (and of
    /// cache hits too, when `cached_input_per_million` is unset).
    #[serde(default)]
    pub input_per_million: f64,
    /// Value per million generated tokens.
    #[serde(default)]
    pub output_per_million: f64,
    /// Value per million prompt tokens served from a prefix cache.
    #[serde(default)]
    pub cached_input_per_million: Option<f64>,
    /// Value per successful request.
    #[serde(default)]
    pub per_request: f64,
    /// Prices for named models, each replacing these prices as a whole for
    /// that model (its own `per_model` must be empty).
    #[serde(default)]
    pub per_model: BTreeMap<String, Prices>,
}

/// Why prices are not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PricesError(pub String);

impl Prices {
    /// Check every price is finite and >= 0 and per-model prices do not nest.
    pub fn validate(&self) -> Result<(), PricesError> {
        self.validate_at("")?;
        for (model, p) in &self.per_model {
            if !p.per_model.is_empty() {
                return Err(PricesError(format!(
                    "per_model.\"{model}\": per_model prices do not nest"
                )));
            }
            p.validate_at(&format!("per_model.\"{model}\"."))?;
        }
        Ok(())
    }

    fn validate_at(&self, at: &str) -> Result<(), PricesError> {
        let all = [
            ("input_per_million", Some(self.input_per_million)),
            ("output_per_million", Some(self.output_per_million)),
            ("cached_input_per_million", self.cached_input_per_million),
            ("per_request", Some(self.per_request)),
        ];
        for (key, v) in all {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(PricesError(format!(
                    "{at}{key} = {v}: a price must be a finite number >= 0"
                )));
            }
        }
        Ok(())
    }

    /// The prices that apply to `model`.
    pub fn for_model(&self, model: &str) -> &Prices {
        self.per_model.get(model).unwrap_or(self)
    }

    /// The value of what `model` served.
    pub fn value(&self, model: &str, d: &Delta) -> Money {
        self.for_model(model).value_flat(d)
    }

    /// The value of `d` at these prices, ignoring `per_model`.
    pub fn value_flat(&self, d: &Delta) -> Money {
        let cached = d.cached_input_tokens.min(d.input_tokens).max(0.0);
        let uncached = d.uncached_input_tokens();
        let cached_price = self
            .cached_input_per_million
            .unwrap_or(self.input_per_million);
        let tokens = uncached * self.input_per_million
            + cached * cached_price
            + d.output_tokens * self.output_per_million;
        Money(tokens / 1e6 + d.requests * self.per_request)
    }
}
