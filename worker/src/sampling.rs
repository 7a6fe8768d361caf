//! Choosing the next token from logits with the horde payload's sampler settings: repetition
//! penalty (with range and slope), temperature, top-k, top-p, typical, min-p; seeded, so the same
//! seed and logits give the same tokens.

use horde_protocol::text::TextParams;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Sampler settings; neutral values switch a filter off.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerSettings {
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: usize,
    /// 1 = off.
    pub top_p: f32,
    /// 0 = off.
    pub min_p: f32,
    /// 1 = off.
    pub typical: f32,
    /// 1 = off.
    pub rep_pen: f32,
    /// How many recent tokens the penalty looks at (0 = all).
    pub rep_pen_range: usize,
    /// 0 = the same penalty across the range; larger = recent tokens penalized more than old ones.
    pub rep_pen_slope: f32,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            typical: 1.0,
            rep_pen: 1.0,
            rep_pen_range: 0,
            rep_pen_slope: 0.0,
        }
    }
}

impl SamplerSettings {
    /// From a horde text payload (already validated by the horde).
    pub fn from_params(p: &TextParams) -> Self {
        let d = Self::default();
        Self {
            temperature: p.temperature.map(|v| v as f32).unwrap_or(d.temperature).max(0.0),
            top_k: p.top_k.map(|v| v.max(0) as usize).unwrap_or(0),
            top_p: p.top_p.map(|v| v as f32).unwrap_or(1.0).clamp(0.0, 1.0),
            min_p: p.min_p.map(|v| v as f32).unwrap_or(0.0).clamp(0.0, 1.0),
            typical: p.typical.map(|v| v as f32).unwrap_or(1.0).clamp(0.0, 1.0),
            rep_pen: p.rep_pen.map(|v| v as f32).unwrap_or(1.0).max(1.0),
            rep_pen_range: p.rep_pen_range.map(|v| v.max(0) as usize).unwrap_or(0),
            rep_pen_slope: p.rep_pen_slope.map(|v| v as f32).unwrap_or(0.0).max(0.0),
        }
    }
}

/// A seeded sampler.
pub struct Sampler {
    pub settings: SamplerSettings,
    rng: StdRng,
}

/// Weight of the repetition penalty for the token at `index` of a window of `n` (0 = oldest):
/// 1 everywhere with no slope; with a slope, a logistic ramp from old (low) to recent (high),
/// normalised so the newest token gets the full penalty.
pub fn penalty_weight(index: usize, n: usize, slope: f32) -> f32 {
    if slope <= 0.0 || n <= 1 {
        return 1.0;
    }
    let x = index as f32 / (n - 1) as f32 * 2.0 - 1.0; // -1 oldest .. 1 newest
    let s = |x: f32| 1.0 / (1.0 + (-slope * 4.0 * x).exp());
    s(x) / s(1.0)
}

impl Sampler {
    pub fn new(settings: SamplerSettings, seed: u64) -> Self {
        Self {
            settings,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Applies the repetition penalty of `history` (oldest first) to `logits`.
    pub fn penalize(&self, logits: &mut [f32], history: &[u32]) {
        let s = &self.settings;
        if s.rep_pen <= 1.0 || history.is_empty() {
            return;
        }
        let window = if s.rep_pen_range == 0 {
            history
        } else {
            &history[history.len().saturating_sub(s.rep_pen_range)..]
        };
        let mut strongest: std::collections::HashMap<u32, f32> = std::collections::HashMap::new();
        for (i, tok) in window.iter().enumerate() {
            let w = penalty_weight(i, window.len(), s.rep_pen_slope);
            let e = strongest.entry(*tok).or_insert(0.0);
            *e = e.max(w);
        }
        for (tok, w) in strongest {
            if let Some(l) = logits.get_mut(tok as usize) {
                let p = 1.0 + (s.rep_pen - 1.0) * w;
                *l = if *l > 0.0 { *l / p } else { *l * p };
            }
        }
    }

    /// Probabilities after temperature and the filters, as (token, probability), renormalised.
    pub fn distribution(&self, logits: &[f32]) -> Vec<(u32, f32)> {
        let s = &self.settings;
        let mut cands: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, l)| (i as u32, *l))
            .collect();
        // Highest first; among equal logits, the lower token first.
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let Some(&best) = cands.iter().min_by(|a, b| order(a, b)) else {
            return vec![];
        };
        if s.temperature <= 0.0 {
            return vec![(best.0, 1.0)];
        }
        // A vocabulary of 262,144 (Gemma 3) is not sorted for each token: top-k selects its k
        // and sorts those; otherwise only the tokens within 25·T of the top are ranked (any other
        // has a probability under e⁻²⁵ of the top's) and the rest follow unranked, still counted
        // in every sum, so a draw differs from a full sort only when it lands in that tail.
        if s.top_k > 0 && s.top_k < cands.len() {
            cands.select_nth_unstable_by(s.top_k - 1, order);
            cands.truncate(s.top_k);
            cands.sort_unstable_by(order);
        } else {
            let floor = best.1 - 25.0 * s.temperature;
            let (mut head, tail): (Vec<_>, Vec<_>) = cands.into_iter().partition(|c| c.1 >= floor);
            head.sort_unstable_by(order);
            head.extend(tail);
            cands = head;
        }
        let max = cands[0].1;
        let mut probs: Vec<(u32, f32)> = cands.iter().map(|(t, l)| (*t, ((l - max) / s.temperature).exp())).collect();
        normalize(&mut probs);
        if s.typical < 1.0 {
            let entropy: f32 = probs.iter().filter(|(_, p)| *p > 0.0).map(|(_, p)| -p * p.ln()).sum();
            let mut by_surprise: Vec<(u32, f32, f32)> = probs.iter().map(|(t, p)| (*t, *p, (-p.ln() - entropy).abs())).collect();
            by_surprise.sort_by(|a, b| a.2.total_cmp(&b.2));
            let mut kept = vec![];
            let mut mass = 0.0;
            for (t, p, _) in by_surprise {
                kept.push((t, p));
                mass += p;
                if mass >= s.typical {
                    break;
                }
            }
            kept.sort_by(|a, b| b.1.total_cmp(&a.1));
            probs = kept;
            normalize(&mut probs);
        }
        if s.top_p < 1.0 {
            let mut mass = 0.0;
            let mut keep = probs.len();
            for (i, (_, p)) in probs.iter().enumerate() {
                mass += p;
                if mass >= s.top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep.max(1));
            normalize(&mut probs);
        }
        if s.min_p > 0.0 {
            let floor = probs[0].1 * s.min_p;
            probs.retain(|(_, p)| *p >= floor);
            normalize(&mut probs);
        }
        probs
    }

    /// Picks the next token: penalty, then the distribution, then a seeded draw.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        self.penalize(logits, history);
        let probs = self.distribution(logits);
        let r: f32 = self.rng.random();
        let mut acc = 0.0;
        for (t, p) in &probs {
            acc += p;
            if r < acc {
                return *t;
            }
        }
        probs.last().map(|(t, _)| *t).unwrap_or(0)
    }
}

/// The greedy choice: the first of the highest logits.
pub fn argmax(logits: &[f32]) -> u32 {
    logits
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, v)| if *v > best.1 { (i, *v) } else { best })
        .0 as u32
}

fn normalize(probs: &mut [(u32, f32)]) {
    let total: f32 = probs.iter().map(|(_, p)| p).sum();
    if total > 0.0 {
        probs.iter_mut().for_each(|(_, p)| *p /= total);
    }
}

/// Cuts `text` before the first stop sequence it contains; returns whether one was found.
pub fn cut_at_stop(text: &mut String, stops: &[String]) -> bool {
    let first = stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min();
    match first {
        Some(i) => {
            text.truncate(i);
            true
        }
        None => false,
    }
}

/// How much of `text` (not yet cut at a stop sequence) is final while generation goes on: all
/// but a trailing part that could still grow into a stop sequence, and but a trailing
/// replacement character (half a multi-byte character, completed by the next token).
pub fn settled_len(text: &str, stops: &[String]) -> usize {
    let mut end = text.trim_end_matches('\u{FFFD}').len();
    for stop in stops.iter().filter(|s| !s.is_empty()) {
        // The longest proper prefix of `stop` that `text[..end]` ends with.
        let held = stop
            .char_indices()
            .skip(1)
            .map(|(i, _)| &stop[..i])
            .filter(|prefix| text[..end].ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        end -= held;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_text_holds_back_what_may_become_a_stop() {
        let stops = vec!["\nUser:".to_string(), "END".to_string()];
        assert_eq!(settled_len("Hello", &stops), 5);
        assert_eq!(settled_len("Hello\nUs", &stops), 5);
        assert_eq!(settled_len("Hello E", &stops), 6);
        assert_eq!(settled_len("Hello EN", &stops), 6);
        assert_eq!(settled_len("Hello\n", &stops), 5);
        assert_eq!(settled_len("ab\u{FFFD}", &[]), 2);
        assert_eq!(settled_len("", &stops), 0);
    }

    fn logits() -> Vec<f32> {
        vec![4.0, 3.0, 2.0, 1.0, 0.0, -1.0]
    }

    fn with(f: impl FnOnce(&mut SamplerSettings)) -> Sampler {
        let mut s = SamplerSettings {
            temperature: 1.0,
            ..Default::default()
        };
        f(&mut s);
        Sampler::new(s, 7)
    }

    fn tokens(d: &[(u32, f32)]) -> Vec<u32> {
        d.iter().map(|(t, _)| *t).collect()
    }

    #[test]
    fn greedy_at_zero_temperature() {
        let mut s = with(|s| s.temperature = 0.0);
        assert_eq!(s.sample(&mut logits(), &[]), 0);
        // The first of equal highest logits; non-finite logits are never chosen.
        assert_eq!(s.sample(&mut [1.0, f32::NAN, 3.0, f32::INFINITY, 3.0], &[]), 2);
    }

    #[test]
    fn a_large_vocabulary_is_ranked_as_far_as_it_matters() {
        // 50,000 logits in a scrambled order: top-k and the unranked tail give the order and the
        // probabilities of a full sort.
        let logits: Vec<f32> = (0..50_000u32).map(|i| ((i.wrapping_mul(7919) % 50_000) as f32) / 1000.0).collect();
        let mut full: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, l)| (i as u32, *l)).collect();
        full.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top = with(|s| s.top_k = 40).distribution(&logits);
        assert_eq!(tokens(&top), tokens(&full[..40]));
        let all = with(|_| {}).distribution(&logits);
        assert_eq!(all.len(), logits.len());
        // Ranked: everything within 25 of the top (T = 1), highest first.
        assert_eq!(tokens(&all[..25_000]), tokens(&full[..25_000]));
        assert!((all.iter().map(|(_, p)| p).sum::<f32>() - 1.0).abs() < 1e-4);
        let nucleus = with(|s| s.top_p = 0.9).distribution(&logits);
        assert_eq!(tokens(&nucleus), tokens(&full[..nucleus.len()]));
    }

    #[test]
    fn temperature_flattens_and_sharpens() {
        let p_hot = with(|s| s.temperature = 2.0).distribution(&logits())[0].1;
        let p_cold = with(|s| s.temperature = 0.5).distribution(&logits())[0].1;
        let p_one = with(|_| {}).distribution(&logits())[0].1;
        assert!(p_hot < p_one && p_one < p_cold, "{p_hot} {p_one} {p_cold}");
    }

    #[test]
    fn filters_keep_what_they_should() {
        assert_eq!(tokens(&with(|s| s.top_k = 2).distribution(&logits())), vec![0, 1]);
        // Probabilities at T=1: 0.636, 0.234, 0.086, 0.032, … → top_p 0.8 keeps two.
        assert_eq!(tokens(&with(|s| s.top_p = 0.8).distribution(&logits())), vec![0, 1]);
        // min_p 0.1 keeps tokens with p ≥ 0.0636: three.
        assert_eq!(tokens(&with(|s| s.min_p = 0.1).distribution(&logits())), vec![0, 1, 2]);
        let typical = tokens(&with(|s| s.typical = 0.5).distribution(&logits()));
        assert!(!typical.is_empty() && typical.len() < 6, "{typical:?}");
        let all = with(|_| {}).distribution(&logits());
        assert_eq!(all.len(), 6);
        assert!((all.iter().map(|(_, p)| p).sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn repetition_penalty_with_range_and_slope() {
        let s = with(|s| s.rep_pen = 2.0);
        let mut l = logits();
        s.penalize(&mut l, &[0, 5]);
        assert_eq!((l[0], l[5], l[1]), (2.0, -2.0, 3.0));
        // The range only looks at the most recent tokens.
        let s = with(|s| {
            s.rep_pen = 2.0;
            s.rep_pen_range = 1;
        });
        let mut l = logits();
        s.penalize(&mut l, &[0, 1]);
        assert_eq!((l[0], l[1]), (4.0, 1.5));
        // With a slope, the newest token is penalized fully and the oldest less.
        assert!(penalty_weight(0, 10, 1.0) < penalty_weight(9, 10, 1.0));
        assert_eq!(penalty_weight(9, 10, 1.0), 1.0);
        assert_eq!(penalty_weight(0, 10, 0.0), 1.0);
    }

    #[test]
    fn same_seed_same_tokens() {
        let draw = |seed| {
            let mut s = Sampler::new(
                SamplerSettings {
                    temperature: 1.5,
                    ..Default::default()
                },
                seed,
            );
            (0..20).map(|_| s.sample(&mut logits(), &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn stop_sequences_cut_the_text() {
        let mut t = "Hello\nUser: hi".to_string();
        assert!(cut_at_stop(&mut t, &["User:".into(), "\n\n".into()]));
        assert_eq!(t, "Hello\n");
        let mut t = "no stop".to_string();
        assert!(!cut_at_stop(&mut t, &["X".into(), String::new()]));
        assert_eq!(t, "no stop");
    }

    #[test]
    fn settings_from_a_payload() {
        let p: TextParams =
            serde_json::from_value(serde_json::json!({"temperature": 0.0, "top_k": 40, "rep_pen": 1.1, "rep_pen_range": 64}))
                .expect("params");
        let s = SamplerSettings::from_params(&p);
        assert_eq!((s.temperature, s.top_k, s.rep_pen_range), (0.0, 40, 64));
        assert!((s.rep_pen - 1.1).abs() < 1e-6);
    }
}
