//! What images cost and pay. The seed's rule: a 50-step 512×512 image (k_euler, cfg 7.5,
//! txt2img) pays its worker exactly 10 kudos, and a payload the kudos model predicts to take `r`
//! times as long pays `10 × r`, times its model family's multiplier. The requester pays that
//! (×1.3 with a source image) plus 1 kudos tax per job, ×1.2 when only fast workers may serve it,
//! ×1.1 with a worker block-list, and nothing for a job that came back censored; plus the 1 kudos
//! request tax when the request is accepted.

use super::image_model::{KudosModel, PayloadFeatures};
use super::{to_centikudos, Centikudos};
use crate::image::ImageRequest;

/// Worker reward for the baseline payload.
pub const BASELINE_KUDOS: f64 = 10.0;

/// The kudos-model view of a request.
pub fn features_of(r: &ImageRequest) -> PayloadFeatures {
    PayloadFeatures {
        width: r.width,
        height: r.height,
        steps: r.steps,
        sampler: r.payload.sampler_name.clone(),
        cfg_scale: r.payload.cfg_scale,
        denoising_strength: r.payload.denoising_strength.unwrap_or(1.0),
        karras: r.payload.karras,
        hires_fix: r.payload.hires_fix,
        source_processing: if r.is_img2img() {
            r.source_processing.clone()
        } else {
            "txt2img".into()
        },
        control_type: r.payload.control_type.clone().unwrap_or_default(),
        post_processing: r.payload.post_processing.clone(),
        loras: r.payload.loras.as_ref().map_or(0, |l| l.len() as i64),
        tis: r.payload.tis.as_ref().map_or(0, |t| t.len() as i64),
    }
}

/// How much heavier than SD 1.5 a model family is to run: SDXL-class ×2, Stable Cascade ×4,
/// Flux and Z-Image ×8, Qwen-Image ×12, anything else ×1. Read from the model's name.
pub fn family_multiplier(model: &str) -> f64 {
    let lower = model.to_ascii_lowercase();
    let tokens: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    let has = |t: &str| tokens.contains(&t);
    if has("qwen") {
        12.0
    } else if has("flux") || lower.contains("z-image") || has("zimage") {
        8.0
    } else if has("cascade") {
        4.0
    } else if has("sdxl") || has("xl") || lower.contains("stable_diffusion_xl") {
        2.0
    } else {
        1.0
    }
}

/// A worker's reward for one image of `r` made with `model`.
pub fn job_reward(kudos_model: &KudosModel, r: &ImageRequest, model: &str) -> Centikudos {
    to_centikudos(BASELINE_KUDOS * kudos_model.relative_time(&features_of(r)) * family_multiplier(model))
}

/// What the requester pays for one image whose worker earned `reward`.
pub fn job_charge(reward: Centikudos, img2img: bool, slow_workers: bool, worker_blacklist: bool) -> Centikudos {
    let mut c = reward as f64;
    if img2img {
        c *= 1.3;
    }
    c += 100.0;
    if !slow_workers {
        c *= 1.2;
    }
    if worker_blacklist {
        c *= 1.1;
    }
    c.round() as Centikudos
}

/// Expected charge of one image of `r`: priced with the heaviest model family it names (SD 1.5
/// class when it names none), so it equals the charge when its models are of one family.
pub fn estimate_job(kudos_model: &KudosModel, r: &ImageRequest) -> Centikudos {
    let heaviest = r.models.iter().max_by(|a, b| family_multiplier(a).total_cmp(&family_multiplier(b)));
    let reward = job_reward(kudos_model, r, heaviest.map_or("", String::as_str));
    job_charge(reward, r.is_img2img(), r.slow_workers, r.worker_blacklist)
}

/// Kudos for 10 minutes online: `50 + 2 × models`, +30 with LoRAs allowed.
pub fn uptime_reward(models: usize, allow_lora: bool) -> Centikudos {
    (50 + 2 * models as Centikudos + if allow_lora { 30 } else { 0 }) * 100
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HordeConfig;
    use horde_protocol::image::GenerateImageRequest;
    use serde_json::json;

    fn req(v: serde_json::Value) -> ImageRequest {
        let r: GenerateImageRequest = serde_json::from_value(v).expect("json");
        ImageRequest::parse(r, &HordeConfig::default()).expect("valid")
    }

    fn baseline() -> serde_json::Value {
        json!({"prompt": "x", "params": {"steps": 50, "sampler_name": "k_euler", "cfg_scale": 7.5, "width": 512, "height": 512}})
    }

    #[test]
    fn baseline_pays_exactly_ten() {
        let m = KudosModel::shipped().expect("model");
        assert_eq!(job_reward(&m, &req(baseline()), "stable_diffusion"), 1000);
        // Charged: 10 + 1 job tax; the request adds its 1 kudos tax on top.
        assert_eq!(estimate_job(&m, &req(baseline())), 1100);
    }

    #[test]
    fn twice_the_predicted_time_costs_twice() {
        let m = KudosModel::shipped().expect("model");
        let base = req(baseline());
        let base_reward = job_reward(&m, &base, "sd") as f64;
        for (w, h, steps) in [(1024, 512, 40), (768, 768, 30), (512, 512, 100)] {
            let r = req(
                json!({"prompt": "x", "params": {"steps": steps, "sampler_name": "k_euler", "cfg_scale": 7.5, "width": w, "height": h}}),
            );
            let ratio = m.relative_time(&features_of(&r));
            let reward = job_reward(&m, &r, "sd") as f64;
            assert!((reward / base_reward - ratio).abs() < 0.01, "{w}x{h}/{steps}: {reward} vs {ratio}");
        }
    }

    #[test]
    fn monotonic_in_steps_and_pixels() {
        let m = KudosModel::shipped().expect("model");
        let mut last = 0;
        for steps in (1..=500).step_by(7) {
            let r = req(json!({"prompt": "x", "params": {"steps": steps}}));
            let k = job_reward(&m, &r, "sd");
            assert!(k >= last, "steps {steps}");
            last = k;
        }
        assert!(
            job_reward(&m, &req(json!({"prompt": "x", "params": {"steps": 100}})), "sd")
                > job_reward(&m, &req(json!({"prompt": "x", "params": {"steps": 50}})), "sd")
        );
        let mut last = 0;
        for side in (64..=2048).step_by(64) {
            let r = req(json!({"prompt": "x", "params": {"width": side, "height": side}}));
            let k = job_reward(&m, &r, "sd");
            assert!(k >= last, "side {side}");
            last = k;
        }
    }

    #[test]
    fn taxes_and_multipliers() {
        assert_eq!(job_charge(1000, false, true, false), 1100);
        assert_eq!(job_charge(1000, true, true, false), 1400);
        assert_eq!(job_charge(1000, false, false, false), 1320);
        assert_eq!(job_charge(1000, false, true, true), 1210);
        assert_eq!(family_multiplier("stable_diffusion"), 1.0);
        assert_eq!(family_multiplier("AlbedoBase XL (SDXL)"), 2.0);
        assert_eq!(family_multiplier("Stable Cascade 1.0"), 4.0);
        assert_eq!(family_multiplier("Flux.1-Schnell fp8 (Compact)"), 8.0);
        assert_eq!(family_multiplier("Qwen-Image"), 12.0);
        let m = KudosModel::shipped().expect("model");
        assert_eq!(job_reward(&m, &req(baseline()), "SDXL 1.0"), 2000);
        let mut xl = baseline();
        xl["models"] = json!(["SDXL 1.0"]);
        assert_eq!(estimate_job(&m, &req(xl)), 2100);
        assert_eq!(uptime_reward(2, true), 8400);
    }
}
