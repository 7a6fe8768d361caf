"""The reference side of the UNet benchmark (BENCHMARKS.md): a UNet with Stable Diffusion 1.5's
shape and random weights, saved in diffusers layout for the Rust bench, and timed in diffusers on
the CPU: one guided step at 512×512 (batch 2: negative and positive, 64×64 latents, 77 text
tokens of width 768).

    /tmp/sdref/bin/python compat/sd_unet_step.py /tmp/sd15-unet [--threads N] [--runs 3] [--size 512]
    cargo bench -p horde-worker --bench unet_step -- /tmp/sd15-unet [--size 512]
"""

import argparse
import os
import time

import torch
from diffusers import UNet2DConditionModel

parser = argparse.ArgumentParser()
parser.add_argument("dir")
parser.add_argument("--threads", type=int, default=os.cpu_count())
parser.add_argument("--runs", type=int, default=3)
parser.add_argument("--size", type=int, default=512, help="image side in pixels (latents are an eighth)")
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.set_grad_enabled(False)
torch.manual_seed(0)

unet_dir = os.path.join(args.dir, "unet")
if os.path.exists(os.path.join(unet_dir, "config.json")):
    unet = UNet2DConditionModel.from_pretrained(unet_dir).eval()
else:
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768).eval()
    unet.save_pretrained(unet_dir, safe_serialization=True)
print("parameters", sum(p.numel() for p in unet.parameters()))

sample = torch.randn(2, 4, args.size // 8, args.size // 8)
context = torch.randn(2, 77, 768)
times = []
for _ in range(args.runs + 1):
    start = time.perf_counter()
    unet(sample, torch.tensor(999.0), encoder_hidden_states=context)
    times.append(time.perf_counter() - start)
times = times[1:]  # the first run warms up
print(f"diffusers on torch {torch.__version__}, threads={args.threads}: guided {args.size}x{args.size} UNet step {min(times):.2f} s (best of {args.runs}), all {[round(t, 2) for t in times]}")
