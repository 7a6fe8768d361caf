//! The noise schedule of Stable Diffusion and the horde's samplers, as diffusers computes them
//! (the same timesteps and sigmas, so the same images from the same start).
//!
//! Every sampler runs in k-diffusion's space, `x = x_vp · √(σ² + 1)`: the model sees
//! `x / √(σ² + 1)` and predicts the noise ε, the clean estimate is `x₀ = x − σ·ε`. Euler and DDIM
//! (η = 0) are then the same update on different grids; DPM++ 2M is diffusers'
//! `dpmsolver++` of order 2 with a first-order final step; Euler ancestral adds fresh noise.

use burn::prelude::*;

/// The samplers this worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    Euler,
    EulerAncestral,
    DpmPp2M,
    Ddim,
}

impl SamplerKind {
    /// The sampler for a horde `sampler_name`, and whether it is that sampler itself (`false`:
    /// the nearest one this worker has: ancestral samplers map to Euler ancestral, `dpmsolver`
    /// to DPM++ 2M, the other k-diffusion ones to Euler).
    pub fn from_horde(name: &str) -> (Self, bool) {
        match name {
            "k_euler" => (SamplerKind::Euler, true),
            "k_euler_a" => (SamplerKind::EulerAncestral, true),
            "k_dpmpp_2m" => (SamplerKind::DpmPp2M, true),
            "DDIM" | "ddim" => (SamplerKind::Ddim, true),
            "dpmsolver" => (SamplerKind::DpmPp2M, false),
            "k_dpm_2_a" | "k_dpmpp_2s_a" | "k_dpmpp_sde" => (SamplerKind::EulerAncestral, false),
            _ => (SamplerKind::Euler, false),
        }
    }

    pub fn horde_name(self) -> &'static str {
        match self {
            SamplerKind::Euler => "k_euler",
            SamplerKind::EulerAncestral => "k_euler_a",
            SamplerKind::DpmPp2M => "k_dpmpp_2m",
            SamplerKind::Ddim => "DDIM",
        }
    }
}

/// The training noise schedule: ᾱ per training timestep and σ = √((1 − ᾱ)/ᾱ).
#[derive(Debug, Clone)]
pub struct NoiseSchedule {
    pub alphas_cumprod: Vec<f64>,
    pub sigmas: Vec<f64>,
}

impl NoiseSchedule {
    /// `scaled_linear` betas: linear in √β from `start` to `end` (f32 like diffusers).
    pub fn scaled_linear(beta_start: f64, beta_end: f64, steps: usize) -> Self {
        let (a, b) = (beta_start.sqrt() as f32, beta_end.sqrt() as f32);
        let step = (b - a) / (steps.max(2) - 1) as f32;
        let mut cumprod = 1f32;
        let alphas_cumprod: Vec<f64> = (0..steps)
            .map(|i| {
                let beta = (a + step * i as f32).powi(2);
                cumprod *= 1.0 - beta;
                f64::from(cumprod)
            })
            .collect();
        let sigmas = alphas_cumprod.iter().map(|&ac| (((1.0 - ac) / ac).sqrt() as f32) as f64).collect();
        Self { alphas_cumprod, sigmas }
    }

    /// Stable Diffusion 1.x/2.x: 1000 steps, β from 0.00085 to 0.012.
    pub fn stable_diffusion() -> Self {
        Self::scaled_linear(0.00085, 0.012, 1000)
    }

    fn train_steps(&self) -> usize {
        self.sigmas.len()
    }

    /// σ at a fractional timestep, linear between training steps.
    fn sigma_at(&self, t: f64) -> f64 {
        let last = self.sigmas.len() - 1;
        let t = t.clamp(0.0, last as f64);
        let low = (t.floor() as usize).min(last);
        let high = (low + 1).min(last);
        let w = t - low as f64;
        self.sigmas[low] * (1.0 - w) + self.sigmas[high] * w
    }

    /// The fractional timestep of σ, linear in log σ (diffusers' `_sigma_to_t`).
    fn t_at(&self, sigma: f64) -> f64 {
        let log_sigma = sigma.max(1e-10).ln();
        let logs: Vec<f64> = self.sigmas.iter().map(|s| s.ln()).collect();
        let below = logs.iter().filter(|&&l| l <= log_sigma).count();
        let low = below.saturating_sub(1).min(logs.len() - 2);
        let w = ((logs[low] - log_sigma) / (logs[low] - logs[low + 1])).clamp(0.0, 1.0);
        (1.0 - w) * low as f64 + w * (low + 1) as f64
    }
}

/// Karras et al.'s σ spacing (ρ = 7) between `max` and `min`.
fn karras(min: f64, max: f64, steps: usize) -> Vec<f64> {
    let rho = 7.0;
    let (min_inv, max_inv) = (min.powf(1.0 / rho), max.powf(1.0 / rho));
    (0..steps)
        .map(|i| {
            let ramp = if steps > 1 { i as f64 / (steps - 1) as f64 } else { 0.0 };
            (max_inv + ramp * (min_inv - max_inv)).powf(rho)
        })
        .collect()
}

/// `np.linspace(a, b, n)`, with numpy's rounding (`i · step + a`, the last value exactly `b`),
/// since the timesteps are then rounded half to even like numpy does.
fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    match n {
        0 => vec![],
        1 => vec![a],
        _ => {
            let step = (b - a) / (n - 1) as f64;
            (0..n).map(|i| if i == n - 1 { b } else { i as f64 * step + a }).collect()
        }
    }
}

/// The timesteps and sigmas of one generation.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub kind: SamplerKind,
    /// The model's timestep at each step.
    pub timesteps: Vec<f64>,
    /// σ at each step, and the final σ after the last step.
    pub sigmas: Vec<f64>,
    /// The initial noise's scale (diffusers' `init_noise_sigma` in this space).
    init_scale: f64,
}

impl Schedule {
    pub fn new(kind: SamplerKind, steps: usize, karras_sigmas: bool, noise: &NoiseSchedule) -> Self {
        let steps = steps.max(1);
        let train = noise.train_steps();
        let last = (train - 1) as f64;
        let (timesteps, mut sigmas, final_sigma) = match kind {
            SamplerKind::Euler | SamplerKind::EulerAncestral => {
                let t: Vec<f64> = linspace(0.0, last, steps).into_iter().rev().map(|t| t as f32 as f64).collect();
                let s: Vec<f64> = t.iter().map(|&t| noise.sigma_at(t)).collect();
                if karras_sigmas {
                    let s = karras(s[s.len() - 1], s[0], steps);
                    (s.iter().map(|&s| noise.t_at(s)).collect(), s, 0.0)
                } else {
                    (t, s, 0.0)
                }
            }
            SamplerKind::DpmPp2M => {
                if karras_sigmas {
                    let s = karras(noise.sigmas[0], noise.sigmas[train - 1], steps);
                    (s.iter().map(|&s| noise.t_at(s).round_ties_even()).collect(), s, 0.0)
                } else {
                    let mut t: Vec<f64> = linspace(0.0, last, steps + 1).into_iter().map(f64::round_ties_even).rev().collect();
                    t.pop();
                    let s = t.iter().map(|&t| noise.sigma_at(t)).collect();
                    (t, s, 0.0)
                }
            }
            SamplerKind::Ddim => {
                let ratio = (train / steps).max(1);
                let t: Vec<f64> = (0..steps).rev().map(|i| ((i * ratio + 1).min(train - 1)) as f64).collect();
                let s = t.iter().map(|&t| noise.sigmas[t as usize]).collect();
                (t, s, noise.sigmas[0])
            }
        };
        // diffusers keeps sigmas in f32.
        sigmas.iter_mut().for_each(|s| *s = *s as f32 as f64);
        sigmas.push(final_sigma);
        let init_scale = match kind {
            SamplerKind::Euler | SamplerKind::EulerAncestral => sigmas[0],
            SamplerKind::DpmPp2M | SamplerKind::Ddim => (sigmas[0] * sigmas[0] + 1.0).sqrt(),
        };
        Self {
            kind,
            timesteps,
            sigmas,
            init_scale,
        }
    }

    pub fn steps(&self) -> usize {
        self.timesteps.len()
    }

    /// The starting point of text-to-image from unit Gaussian noise.
    pub fn initial(&self, noise: Tensor<4>) -> Tensor<4> {
        noise.mul_scalar(self.init_scale)
    }

    /// The starting point of image-to-image at step `start`: the clean latents with noise of σ.
    pub fn noised(&self, clean: Tensor<4>, noise: Tensor<4>, start: usize) -> Tensor<4> {
        clean + noise.mul_scalar(self.sigmas[start.min(self.steps() - 1)])
    }

    /// Runs steps `start..` from `x`. `denoise(input, t)` is the model's noise prediction for the
    /// scaled input at timestep `t`; `fresh_noise()` gives unit Gaussian noise (ancestral steps).
    /// Returns the latents in the model's (variance-preserving) space.
    pub fn run(
        &self,
        mut x: Tensor<4>,
        start: usize,
        denoise: &mut dyn FnMut(Tensor<4>, f64) -> Tensor<4>,
        fresh_noise: &mut dyn FnMut() -> Tensor<4>,
        progress: &mut dyn FnMut(usize),
    ) -> Tensor<4> {
        let n = self.steps();
        let mut previous_x0: Option<(Tensor<4>, f64)> = None;
        for i in start..n {
            let (sigma, next) = (self.sigmas[i], self.sigmas[i + 1]);
            let input = x.clone().div_scalar((sigma * sigma + 1.0).sqrt());
            let eps = denoise(input, self.timesteps[i]);
            let x0 = x.clone() - eps.clone().mul_scalar(sigma);
            x = match self.kind {
                SamplerKind::Euler | SamplerKind::Ddim => x0 + eps.mul_scalar(next),
                SamplerKind::EulerAncestral => {
                    let up = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).max(0.0).sqrt();
                    let down = (next * next - up * up).max(0.0).sqrt();
                    let stepped = x0 + eps.mul_scalar(down);
                    if up > 0.0 {
                        stepped + fresh_noise().mul_scalar(up)
                    } else {
                        stepped
                    }
                }
                SamplerKind::DpmPp2M => {
                    let denoised = match (&previous_x0, next > 0.0) {
                        // Second order from the last two estimates; the final step to σ = 0 is first order.
                        (Some((old, old_sigma)), true) => {
                            let h = (sigma / next).ln();
                            let r = (old_sigma / sigma).ln() / h;
                            x0.clone().mul_scalar(1.0 + 1.0 / (2.0 * r)) - old.clone().mul_scalar(1.0 / (2.0 * r))
                        }
                        _ => x0.clone(),
                    };
                    previous_x0 = Some((x0, sigma));
                    x.mul_scalar(next / sigma) + denoised.mul_scalar(1.0 - next / sigma)
                }
            };
            progress(i + 1);
        }
        let last = self.sigmas[n];
        x.div_scalar((last * last + 1.0).sqrt())
    }
}
