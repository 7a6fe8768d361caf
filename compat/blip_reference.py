"""An independent numpy forward pass of BLIP's captioning model (Hugging Face's
BlipForConditionalGeneration), for worker/tests/caption.rs.

Usage: blip_reference.py MODEL_DIR INPUTS.safetensors OUT_PREFIX NEW

MODEL_DIR holds config.json and model.safetensors under the Hugging Face names (float32).
INPUTS holds `pixel_values` [1, 3, S, S] (normalized) and `input_ids` [n] (as float32). Writes
OUT_PREFIX.f32, the decoder's logits [n, vocab] as little-endian float32, and
OUT_PREFIX.greedy.json, the greedy continuation of [bos] for up to NEW tokens, stopping before
sep. Written from the BLIP paper and the Hugging Face model's description: the ViT is pre-norm
(layer norm, fused qkv attention, projection; layer norm, fc1, GELU, fc2) after a patch
convolution, a class token and learnt positions, with a final layer norm; the text decoder is
BERT (word + position embeddings, layer norm; per layer causal self-attention, cross-attention
to the image, GELU MLP, each followed by dense + residual + layer norm), then the LM head
(dense, GELU, layer norm, decoder). GELU is the erf one. Only numpy is needed.
"""

import json
import math
import os
import sys

import numpy as np

from rrdbnet_reference import read_safetensors

erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x, w, b, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def linear(t, name, x):
    return x @ t[f"{name}.weight"].T + t[f"{name}.bias"]


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(q, k, v, heads, causal):
    """q [n, d], k and v [m, d]."""
    n, d = q.shape
    m = k.shape[0]
    hd = d // heads
    out = np.zeros((n, d))
    for h in range(heads):
        s = slice(h * hd, (h + 1) * hd)
        scores = q[:, s] @ k[:, s].T / math.sqrt(hd)
        if causal:
            scores = np.where(np.tril(np.ones((n, m))) > 0, scores, -np.inf)
        out[:, s] = softmax(scores) @ v[:, s]
    return out


def vision(t, cfg, pixels):
    w = t["vision_model.embeddings.patch_embedding.weight"]
    b = t["vision_model.embeddings.patch_embedding.bias"]
    d, _, p, _ = w.shape
    img = pixels[0]
    g = img.shape[1] // p
    patches = img[:, : g * p, : g * p].reshape(3, g, p, g, p).transpose(1, 3, 0, 2, 4).reshape(g * g, -1)
    x = patches @ w.reshape(d, -1).T + b
    x = np.concatenate([t["vision_model.embeddings.class_embedding"].reshape(1, d), x], axis=0)
    x = x + t["vision_model.embeddings.position_embedding"][0]
    eps = cfg.get("layer_norm_eps", 1e-5)
    heads = cfg.get("num_attention_heads", 12)
    for i in range(cfg.get("num_hidden_layers", 12)):
        pre = f"vision_model.encoder.layers.{i}"
        h = layer_norm(x, t[f"{pre}.layer_norm1.weight"], t[f"{pre}.layer_norm1.bias"], eps)
        qkv = linear(t, f"{pre}.self_attn.qkv", h)
        a = attention(qkv[:, :d], qkv[:, d : 2 * d], qkv[:, 2 * d :], heads, False)
        x = x + linear(t, f"{pre}.self_attn.projection", a)
        h = layer_norm(x, t[f"{pre}.layer_norm2.weight"], t[f"{pre}.layer_norm2.bias"], eps)
        x = x + linear(t, f"{pre}.mlp.fc2", gelu(linear(t, f"{pre}.mlp.fc1", h)))
    return layer_norm(x, t["vision_model.post_layernorm.weight"], t["vision_model.post_layernorm.bias"], eps)


def bert_attention(t, pre, x, context, heads, eps):
    kv = x if context is None else context
    q = linear(t, f"{pre}.self.query", x)
    a = attention(q, linear(t, f"{pre}.self.key", kv), linear(t, f"{pre}.self.value", kv), heads, context is None)
    y = linear(t, f"{pre}.output.dense", a) + x
    return layer_norm(y, t[f"{pre}.output.LayerNorm.weight"], t[f"{pre}.output.LayerNorm.bias"], eps)


def decoder_logits(t, cfg, ids, image):
    eps = cfg.get("layer_norm_eps", 1e-12)
    heads = cfg.get("num_attention_heads", 8)
    e = "text_decoder.bert.embeddings"
    x = t[f"{e}.word_embeddings.weight"][ids] + t[f"{e}.position_embeddings.weight"][: len(ids)]
    x = layer_norm(x, t[f"{e}.LayerNorm.weight"], t[f"{e}.LayerNorm.bias"], eps)
    for i in range(cfg.get("num_hidden_layers", 12)):
        pre = f"text_decoder.bert.encoder.layer.{i}"
        x = bert_attention(t, f"{pre}.attention", x, None, heads, eps)
        x = bert_attention(t, f"{pre}.crossattention", x, image, heads, eps)
        h = gelu(linear(t, f"{pre}.intermediate.dense", x))
        y = linear(t, f"{pre}.output.dense", h) + x
        x = layer_norm(y, t[f"{pre}.output.LayerNorm.weight"], t[f"{pre}.output.LayerNorm.bias"], eps)
    head = "text_decoder.cls.predictions"
    h = gelu(linear(t, f"{head}.transform.dense", x))
    h = layer_norm(h, t[f"{head}.transform.LayerNorm.weight"], t[f"{head}.transform.LayerNorm.bias"], eps)
    return h @ t[f"{head}.decoder.weight"].T + t[f"{head}.bias"]


def main():
    model_dir, inputs_path, out, new = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    t = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    inputs = read_safetensors(inputs_path)
    ids = [int(v) for v in inputs["input_ids"]]
    tc = cfg["text_config"]
    image = vision(t, cfg["vision_config"], inputs["pixel_values"])
    decoder_logits(t, tc, ids, image).astype("<f4").tofile(out + ".f32")
    tokens = [tc.get("bos_token_id", 30522)]
    while len(tokens) <= new:
        nxt = int(np.argmax(decoder_logits(t, tc, tokens, image)[-1]))
        if nxt == tc.get("sep_token_id", 102):
            break
        tokens.append(nxt)
    with open(out + ".greedy.json", "w") as f:
        json.dump(tokens[1:], f)


if __name__ == "__main__":
    main()
