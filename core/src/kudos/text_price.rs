//! What text costs and pays (public horde's formulas, §5.2 of the reference).
//!
//! A job's reward is `tokens × bonus × P / 125 × ctx_mult`, where `P` is the model size in
//! billions of parameters, `bonus = (max(P, 13) / 13)^0.2` and
//! `ctx_mult = clamp(1.2 + 2.2^(log2(L / 1024)), 0.1, 30)` for `L` tokens of context. Unlike the
//! public horde (which caps `L` at `max_length` by mistake), `L` is the prompt's estimated tokens
//! capped at the request's `max_context_length`; dry runs use `max_context_length`.

use super::{to_centikudos, Centikudos};

/// Model size assumed when a request names no model.
pub const DEFAULT_MODEL_BILLIONS: f64 = 13.0;
/// Model size assumed for a model whose name tells none.
pub const UNKNOWN_MODEL_BILLIONS: f64 = 1.0;

/// Size in billions of parameters read from a model name: `13B`, `1.5b`, `135M`, `8x7B` (→ 56).
pub fn model_billions(name: &str) -> Option<f64> {
    let lower = name.to_ascii_lowercase();
    lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .filter_map(parse_size_token)
        .reduce(f64::max)
}

fn parse_size_token(tok: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = tok.strip_suffix('b') {
        (n, 1.0)
    } else if let Some(n) = tok.strip_suffix('m') {
        (n, 0.001)
    } else {
        return None;
    };
    let value = match num.split_once('x') {
        Some((experts, each)) => experts.parse::<f64>().ok()? * each.parse::<f64>().ok()?,
        None => num.parse::<f64>().ok()?,
    };
    (value.is_finite() && value > 0.0).then_some(value * scale)
}

/// Size used for pricing a model name.
pub fn pricing_billions(name: &str) -> f64 {
    model_billions(name).unwrap_or(UNKNOWN_MODEL_BILLIONS)
}

/// Context multiplier for `context_tokens` of prompt.
pub fn context_multiplier(context_tokens: i64) -> f64 {
    let l = (context_tokens.max(1) as f64) / 1024.0;
    (1.2 + 2.2f64.powf(l.log2())).clamp(0.1, 30.0)
}

/// Tokens a generation is paid for: a quarter of its characters, at least 20, at most `max_length`.
pub fn billed_tokens(generation: &str, max_length: i64) -> i64 {
    let chars = generation.chars().count() as i64;
    ((chars + 3) / 4).max(20).min(max_length.max(1))
}

/// A worker's reward for one job.
pub fn job_reward(model_billions: f64, tokens: i64, context_tokens: i64) -> Centikudos {
    let p = model_billions.max(0.0);
    let bonus = (p.max(13.0) / 13.0).powf(0.2);
    to_centikudos(tokens as f64 * bonus * p / 125.0 * context_multiplier(context_tokens))
}

/// What the requester pays for one job: reward plus 1 kudos tax, ×1.2 when only fast workers may
/// serve it, ×1.1 with a worker block-list.
pub fn job_charge(reward: Centikudos, slow_workers: bool, worker_blacklist: bool) -> Centikudos {
    let mut c = (reward + 100) as f64;
    if !slow_workers {
        c *= 1.2;
    }
    if worker_blacklist {
        c *= 1.1;
    }
    c.round() as Centikudos
}

/// Tax on every request, charged when it is accepted, also if it is later cancelled or faulted.
pub const REQUEST_TAX: Centikudos = 100;

/// Kudos for 10 minutes online: `(25 + 15 × ctx / 1024) × max(P / 7, 0.25)`, or half the base term
/// for a model of unknown size.
pub fn uptime_reward(first_model: Option<&str>, max_context_length: i64) -> Centikudos {
    let ctx = max_context_length.clamp(0, 262_144) as f64;
    match first_model.and_then(model_billions) {
        Some(p) => to_centikudos((25.0 + 15.0 * ctx / 1024.0) * (p / 7.0).max(0.25)),
        None => to_centikudos(25.0 * 0.5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_from_names() {
        assert_eq!(model_billions("koboldcpp/LLaMA2-13B-Psyfighter2"), Some(13.0));
        assert_eq!(model_billions("SmolLM2-135M-Instruct"), Some(0.135));
        assert_eq!(model_billions("Mixtral-8x7B-Instruct"), Some(56.0));
        assert_eq!(model_billions("qwen2.5-1.5b"), Some(1.5));
        assert_eq!(model_billions("mystery-model"), None);
        assert_eq!(pricing_billions("mystery-model"), UNKNOWN_MODEL_BILLIONS);
    }

    #[test]
    fn context_multiplier_values() {
        assert!((context_multiplier(1024) - 2.2).abs() < 1e-9);
        assert!((context_multiplier(2048) - 3.4).abs() < 1e-9);
        assert!(context_multiplier(1 << 30) <= 30.0);
    }

    #[test]
    fn reward_scales_with_size_and_tokens() {
        let small = job_reward(7.0, 100, 1024);
        let big = job_reward(70.0, 100, 1024);
        assert!(big > 10 * small, "{big} vs {small}");
        assert_eq!(job_reward(13.0, 200, 1024), 2 * job_reward(13.0, 100, 1024));
        // 13B, 125 tokens, 1024 context: 125 × 1 × 13/125 × 2.2 = 28.6 kudos.
        assert_eq!(job_reward(13.0, 125, 1024), 2860);
    }

    #[test]
    fn taxes() {
        assert_eq!(job_charge(1000, true, false), 1100);
        assert_eq!(job_charge(1000, false, false), 1320);
        assert_eq!(job_charge(1000, true, true), 1210);
        assert_eq!(job_charge(1000, false, true), 1452);
    }

    #[test]
    fn billing_tokens() {
        assert_eq!(billed_tokens("", 80), 20);
        assert_eq!(billed_tokens(&"x".repeat(400), 80), 80);
        assert_eq!(billed_tokens(&"x".repeat(201), 512), 51);
    }

    #[test]
    fn uptime() {
        assert_eq!(uptime_reward(Some("x-7B"), 1024), 4000);
        assert_eq!(uptime_reward(Some("unknown"), 1024), 1250);
        assert_eq!(uptime_reward(Some("tiny-135M"), 2048), to_centikudos(55.0 * 0.25));
    }
}
