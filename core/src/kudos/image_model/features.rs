//! What the model sees of a payload (`PayloadFeatures`), and timings (a payload and its seconds)
//! as the CSV the fit command reads and the export writes.

use serde::{Deserialize, Serialize};

use crate::image::request::{CONTROL_TYPES, OTHER_POST_PROCESSORS, SAMPLERS, UPSCALERS};
use crate::{HordeError, Result};

/// Source processing modes the model knows (`remix` counts as img2img).
pub const SOURCE_MODES: &[&str] = &["txt2img", "img2img", "inpainting", "outpainting"];

/// What the model sees of a payload: everything that changes generation time, nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadFeatures {
    pub width: i64,
    pub height: i64,
    pub steps: i64,
    pub sampler: String,
    pub cfg_scale: f64,
    /// 1.0 without a source image.
    pub denoising_strength: f64,
    pub karras: bool,
    pub hires_fix: bool,
    /// `txt2img`, `img2img`, `inpainting` or `outpainting`.
    pub source_processing: String,
    /// Empty for none.
    pub control_type: String,
    pub post_processing: Vec<String>,
    pub loras: i64,
    pub tis: i64,
}

impl PayloadFeatures {
    /// The payload that costs exactly 10 kudos: 512×512, 50 steps, k_euler, cfg 7.5, txt2img.
    pub fn baseline() -> Self {
        Self {
            width: 512,
            height: 512,
            steps: 50,
            sampler: "k_euler".into(),
            cfg_scale: 7.5,
            denoising_strength: 1.0,
            karras: true,
            hires_fix: false,
            source_processing: "txt2img".into(),
            control_type: String::new(),
            post_processing: vec![],
            loras: 0,
            tis: 0,
        }
    }

    pub(super) fn post_processors() -> impl Iterator<Item = &'static str> {
        UPSCALERS.iter().chain(OTHER_POST_PROCESSORS.iter()).copied()
    }

    /// Names of the network's inputs, in order.
    pub fn names() -> Vec<String> {
        let mut n: Vec<String> = [
            "ln_width",
            "ln_height",
            "ln_pixels",
            "ln_steps",
            "steps",
            "pixels",
            "cfg_scale",
            "denoise",
            "ln_denoise",
            "karras",
            "hires_fix",
            "loras",
            "tis",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        n.extend(SAMPLERS.iter().map(|s| format!("sampler={s}")));
        n.extend(std::iter::once("control=none".to_string()).chain(CONTROL_TYPES.iter().map(|s| format!("control={s}"))));
        n.extend(SOURCE_MODES.iter().map(|s| format!("source={s}")));
        n.extend(Self::post_processors().map(|s| format!("pp={s}")));
        n
    }

    /// Inputs that only ever make a payload slower (constrained to non-negative weights).
    pub fn monotone_inputs() -> Vec<usize> {
        vec![0, 1, 2, 3, 4, 5]
    }

    /// The normalized input vector.
    pub fn vector(&self) -> Vec<f32> {
        let w = self.width.max(1) as f64 / 512.0;
        let h = self.height.max(1) as f64 / 512.0;
        let mut v: Vec<f64> = vec![
            w.ln(),
            h.ln(),
            (w * h).ln(),
            (self.steps.max(1) as f64).ln() / 4.0,
            self.steps as f64 / 100.0,
            w * h / 4.0,
            self.cfg_scale / 30.0,
            self.denoising_strength,
            self.denoising_strength.clamp(0.01, 1.0).ln(),
            f64::from(u8::from(self.karras)),
            f64::from(u8::from(self.hires_fix)),
            self.loras as f64 / 5.0,
            self.tis as f64 / 20.0,
        ];
        let sampler = if SAMPLERS.contains(&self.sampler.as_str()) {
            self.sampler.as_str()
        } else {
            "k_euler"
        };
        v.extend(SAMPLERS.iter().map(|s| f64::from(u8::from(*s == sampler))));
        v.push(f64::from(u8::from(self.control_type.is_empty())));
        v.extend(CONTROL_TYPES.iter().map(|c| f64::from(u8::from(*c == self.control_type))));
        let mode = if self.source_processing == "remix" {
            "img2img"
        } else {
            self.source_processing.as_str()
        };
        v.extend(SOURCE_MODES.iter().map(|m| f64::from(u8::from(*m == mode))));
        v.extend(Self::post_processors().map(|p| f64::from(u8::from(self.post_processing.iter().any(|x| x == p)))));
        v.into_iter().map(|x| x as f32).collect()
    }

    /// One CSV row (without seconds).
    pub(super) fn csv_fields(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.width,
            self.height,
            self.steps,
            self.sampler,
            self.cfg_scale,
            self.denoising_strength,
            u8::from(self.karras),
            u8::from(self.hires_fix),
            self.source_processing,
            self.control_type,
            self.post_processing.join(";"),
            self.loras,
            self.tis
        )
    }
}

/// Header of the timing CSV the fit command reads and the export writes.
pub const CSV_HEADER: &str =
    "width,height,steps,sampler,cfg_scale,denoising_strength,karras,hires_fix,source_processing,control_type,post_processing,loras,tis,seconds";

/// One training example.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    pub payload: PayloadFeatures,
    pub seconds: f64,
}

/// Writes timings as CSV.
pub fn to_csv(rows: &[Timing]) -> String {
    let mut out = String::with_capacity(rows.len() * 80);
    out.push_str(CSV_HEADER);
    out.push('\n');
    for r in rows {
        out.push_str(&r.payload.csv_fields());
        out.push_str(&format!(",{:.4}\n", r.seconds));
    }
    out
}

/// Reads timings from CSV (the header line is required).
pub fn from_csv(text: &str) -> Result<Vec<Timing>> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(CSV_HEADER) {
        return Err(HordeError::Validation(format!(
            "the CSV must start with the header line: {CSV_HEADER}"
        )));
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = || HordeError::Validation(format!("CSV line {}: expected 14 valid fields", i + 2));
        if f.len() != 14 {
            return Err(bad());
        }
        let int = |s: &str| s.parse::<i64>().map_err(|_| bad());
        let float = |s: &str| s.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(bad);
        let seconds = float(f[13])?;
        if seconds <= 0.0 {
            return Err(bad());
        }
        rows.push(Timing {
            payload: PayloadFeatures {
                width: int(f[0])?,
                height: int(f[1])?,
                steps: int(f[2])?,
                sampler: f[3].to_string(),
                cfg_scale: float(f[4])?,
                denoising_strength: float(f[5])?,
                karras: f[6] == "1",
                hires_fix: f[7] == "1",
                source_processing: f[8].to_string(),
                control_type: f[9].to_string(),
                post_processing: f[10].split(';').filter(|s| !s.is_empty()).map(String::from).collect(),
                loras: int(f[11])?,
                tis: int(f[12])?,
            },
            seconds,
        });
    }
    Ok(rows)
}
