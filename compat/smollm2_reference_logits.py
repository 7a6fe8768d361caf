"""Runs the numpy reference (shared/reference/smollm2_gguf_numpy.py) on a prompt and saves what the
Rust golden test compares: the prompt's token ids, the logits of the first generated position
(little-endian f32), and the reference's greedy continuation ids.

Usage: python smollm2_reference_logits.py REFERENCE.py MODEL.gguf PROMPT N_NEW OUT_PREFIX
Writes OUT_PREFIX.logits.f32 and OUT_PREFIX.json."""
import json
import runpy
import sys

import numpy as np

reference, model, prompt, n_new, prefix = sys.argv[1:6]
sys.argv = [reference, model, prompt, n_new]
ns = runpy.run_path(reference, run_name="__main__")  # builds the model and prints its greedy continuation
ids = ns["tk"].encode(prompt).ids
logits = ns["forward"](np.array(ids), {}, 0)
np.asarray(logits, dtype="<f4").tofile(prefix + ".logits.f32")
with open(prefix + ".json", "w") as f:
    json.dump({"prompt_ids": [int(i) for i in ids], "greedy": [int(t) for t in ns["out"]]}, f)
