//! Property tests of the request parsers: any JSON a client sends is either accepted within the
//! documented bounds or refused with an error, never a panic; the filter's normalization is stable.

use horde_core::image::request::{seed_from_string, ImageRequest};
use horde_core::safety::filter::{normalize, LEWD, UNDERAGE_REPLACEABLE};
use horde_core::safety::{FilterOutcome, FilterRule, PromptFilter};
use horde_core::text::TextRequest;
use horde_core::HordeConfig;
use horde_protocol::image::GenerateImageRequest;
use horde_protocol::text::GenerateTextRequest;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Arbitrary JSON values, biased toward the shapes and edge numbers requests contain.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop_oneof![any::<i64>(), -10i64..5000, Just(i64::MAX), Just(i64::MIN)].prop_map(Value::from),
        prop_oneof![any::<f64>(), -1.0f64..100.0].prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const IMAGE_KEYS: &[&str] = &[
    "prompt",
    "params",
    "nsfw",
    "censor_nsfw",
    "trusted_workers",
    "slow_workers",
    "models",
    "workers",
    "worker_blacklist",
    "source_image",
    "source_mask",
    "source_processing",
    "r2",
    "shared",
    "replacement_filter",
    "dry_run",
    "webhook",
    "disable_batching",
    "allow_downgrade",
    "extra_slow_workers",
];
const IMAGE_PARAMS: &[&str] = &[
    "width",
    "height",
    "steps",
    "ddim_steps",
    "n",
    "n_iter",
    "seed",
    "seed_variation",
    "cfg_scale",
    "denoising_strength",
    "sampler_name",
    "karras",
    "hires_fix",
    "clip_skip",
    "post_processing",
    "loras",
    "tis",
    "control_type",
];
const TEXT_KEYS: &[&str] = &[
    "prompt",
    "params",
    "models",
    "workers",
    "worker_blacklist",
    "trusted_workers",
    "slow_workers",
    "dry_run",
    "softprompt",
    "proxied_account",
    "disable_batching",
    "webhook",
];
const TEXT_PARAMS: &[&str] = &[
    "max_length",
    "max_context_length",
    "n",
    "temperature",
    "top_p",
    "top_k",
    "rep_pen",
    "stop_sequence",
];

/// A request object whose keys are the real ones, with arbitrary values.
fn request(keys: &'static [&'static str], params: &'static [&'static str]) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec((prop::sample::select(keys), json_value()), 0..8),
        prop::collection::vec((prop::sample::select(params), json_value()), 0..8),
    )
        .prop_map(|(top, inner)| {
            let mut obj: serde_json::Map<String, Value> = top.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            if !inner.is_empty() {
                obj.insert(
                    "params".into(),
                    Value::Object(inner.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
                );
            }
            obj.entry("prompt").or_insert(json!("a lighthouse"));
            Value::Object(obj)
        })
}

fn filter() -> PromptFilter {
    let rule = |id, regex: &str, t, replacement: &str| FilterRule {
        id,
        regex: regex.into(),
        filter_type: t,
        description: String::new(),
        replacement: replacement.into(),
        user_id: 0,
    };
    PromptFilter::new(vec![
        rule(1, r"\b(child|kid)s?\b", UNDERAGE_REPLACEABLE, "adult"),
        rule(2, r"\b(nude|naked)\b", LEWD, ""),
    ])
    .expect("rules compile")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn image_requests_parse_within_bounds_or_fail_cleanly(body in request(IMAGE_KEYS, IMAGE_PARAMS)) {
        let cfg = HordeConfig::default();
        let models_omitted = body.get("models").is_none_or(Value::is_null);
        let Ok(wire) = serde_json::from_value::<GenerateImageRequest>(body) else { return Ok(()) };
        if let Ok(r) = ImageRequest::parse(wire, &cfg) {
            prop_assert!((64..=3072).contains(&r.width) && (64..=3072).contains(&r.height), "{}x{}", r.width, r.height);
            prop_assert!(r.width % 64 == 0 && r.height % 64 == 0);
            prop_assert!((1..=500).contains(&r.steps));
            prop_assert!((1..=20).contains(&r.n));
            // Omitted models mean the default one; an empty list means any model.
            if models_omitted {
                prop_assert_eq!(r.models.clone(), vec!["stable_diffusion".to_string()]);
            }
        }
    }

    #[test]
    fn text_requests_parse_within_bounds_or_fail_cleanly(body in request(TEXT_KEYS, TEXT_PARAMS)) {
        let Ok(wire) = serde_json::from_value::<GenerateTextRequest>(body) else { return Ok(()) };
        if let Ok(r) = TextRequest::try_from(wire) {
            prop_assert!((16..=4096).contains(&r.max_length), "max_length {}", r.max_length);
            prop_assert!((80..=1_048_576).contains(&r.max_context_length));
            prop_assert!(r.max_length <= r.max_context_length);
            prop_assert!((1..=20).contains(&r.n));
        }
    }

    #[test]
    fn seeds_are_total_and_numbers_are_themselves(s in ".{0,64}", n in 0u32..u32::MAX) {
        let _ = seed_from_string(&s);
        prop_assert_eq!(seed_from_string(&n.to_string()), n);
    }

    #[test]
    fn normalization_is_idempotent_and_plain(s in "\\PC{0,200}") {
        let once = normalize(&s);
        prop_assert_eq!(normalize(&once), once.clone());
        prop_assert!(!once.contains("  ") && once.trim() == once);
        prop_assert!(once.chars().all(|c| c.to_lowercase().eq(std::iter::once(c))));
    }

    #[test]
    fn the_filter_never_passes_both_contexts_unchanged(prefix in "[a-z ]{0,30}", suffix in "[a-z ]{0,30}", replace in any::<bool>()) {
        let prompt = format!("{prefix} kid {suffix} nude");
        match filter().check(&prompt, replace) {
            FilterOutcome::Pass => prop_assert!(false, "both contexts passed: {prompt}"),
            FilterOutcome::Replaced(p) => {
                prop_assert!(replace);
                prop_assert!(!normalize(&p).split(' ').any(|w| w == "kid" || w == "kids"), "{p}");
            }
            // With replacement on, a prompt is corrupted only when its underage words survive the
            // rewrite: spelled apart ("k i d"), they are seen by normalization but not replaceable.
            FilterOutcome::Corrupt => {
                let rewritten = regex::Regex::new(r"\b(child|kid)s?\b").expect("compiles").replace_all(&prompt, "adult").into_owned();
                prop_assert!(!replace || filter().contexts(&rewritten).0, "corrupted though replaceable: {prompt}");
            }
        }
    }
}
