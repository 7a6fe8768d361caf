"""Independent numpy forward pass of a GGUF decoder, for the worker's tests.

Architectures (general.architecture): llama (Llama 2/3 incl. rope_freqs, Mistral, Mistral-Nemo),
qwen2, gemma3, phi3 -- written from llama.cpp's description of each, not from the worker's code.
Weights are read and dequantized with PyPI `gguf` (GGUFReader + gguf.quants.dequantize) and kept
in float32; rotary angles are computed in float64.

Usage: python3 gguf_reference.py MODEL.gguf --tokens 2,105,2364 [--positions 0,1,2]
           [--new 32] --out result.json
Writes {"logits": {"<position>": [...]}, "continuation": [ids]}: the logits at the given prompt
positions, and a greedy continuation of `--new` tokens after the whole prompt.
Needs: numpy, gguf.
"""
import argparse
import json
import math

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


class Model:
    def __init__(self, path):
        r = GGUFReader(path)
        self.meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.")}
        self.arch = self.meta["general.architecture"]
        if self.arch not in ("llama", "qwen2", "gemma3", "phi3"):
            raise SystemExit(f"unsupported architecture {self.arch}")
        # Row-major [out][in] float32 matrices, vectors as they are.
        self.w = {}
        for t in r.tensors:
            shape = [int(x) for x in reversed(t.shape)]
            self.w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        a = lambda k, default=None: self.meta.get(f"{self.arch}.{k}", default)
        self.layers = int(a("block_count"))
        self.dim = int(a("embedding_length"))
        self.heads = int(a("attention.head_count"))
        self.kv_heads = int(a("attention.head_count_kv", self.heads))
        self.hd = int(a("attention.key_length", self.dim // self.heads))
        self.vd = int(a("attention.value_length", self.hd))
        self.ffn = int(a("feed_forward_length"))
        self.eps = float(a("attention.layer_norm_rms_epsilon", 1e-5))
        self.rope_dims = int(a("rope.dimension_count", self.hd))
        self.neox = self.arch != "llama"  # llama's q/k rows are permuted for interleaved pairs
        gemma = self.arch == "gemma3"
        self.gemma = gemma
        scale = 1.0
        if a("rope.scaling.type") == "linear" and a("rope.scaling.factor"):
            scale = 1.0 / float(a("rope.scaling.factor"))
        divisors = self.w.get("rope_freqs.weight")
        i = np.arange(self.rope_dims // 2, dtype=np.float64)
        base = float(a("rope.freq_base", 10000.0))
        inv = base ** (-2.0 * i / self.rope_dims) * scale
        if divisors is not None:
            inv = inv / divisors.astype(np.float64)
        self.inv_global = inv
        self.window = int(a("attention.sliding_window", 0)) if gemma else 0
        self.inv_local = 10000.0 ** (-2.0 * i / self.rope_dims)
        if gemma and self.layers == 62:
            self.scale = 1.0 / math.sqrt(self.dim / self.heads)
        else:
            self.scale = 1.0 / math.sqrt(self.hd)
        self.emb_scale = np.float32(math.sqrt(self.dim)) if gemma else np.float32(1.0)
        cap = a("final_logit_softcapping")
        self.softcap = float(cap) if cap else None
        self.emb = self.w["token_embd.weight"]
        self.head = self.w.get("output.weight", self.emb)

    def local(self, layer):
        return self.window > 0 and (layer + 1) % 6 != 0

    def rms(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + np.float32(self.eps)) * w

    def rope(self, x, pos, inv):
        """x: [T, heads, hd]; rotates the first rope_dims of each head."""
        ang = pos[:, None] * inv[None, :]
        c = np.cos(ang).astype(np.float32)[:, None, :]
        s = np.sin(ang).astype(np.float32)[:, None, :]
        n, half = self.rope_dims, self.rope_dims // 2
        out = x.copy()
        if self.neox:
            a, b = x[..., :half], x[..., half:n]
            out[..., :half] = a * c - b * s
            out[..., half:n] = a * s + b * c
        else:
            a, b = x[..., 0:n:2], x[..., 1:n:2]
            out[..., 0:n:2] = a * c - b * s
            out[..., 1:n:2] = a * s + b * c
        return out

    def proj(self, p, name, h):
        y = h @ self.w[p + name + ".weight"].T
        bias = self.w.get(p + name + ".bias")
        return y if bias is None else y + bias

    def forward(self, ids, cache, start):
        """Final hidden states (after output_norm) of `ids` at positions start.."""
        T = len(ids)
        x = self.emb[ids] * self.emb_scale
        pos = np.arange(start, start + T, dtype=np.float64)
        qd, kd = self.heads * self.hd, self.kv_heads * self.hd
        for l in range(self.layers):
            p = f"blk.{l}."
            h = self.rms(x, self.w[p + "attn_norm.weight"])
            if p + "attn_qkv.weight" in self.w:
                qkv = self.proj(p, "attn_qkv", h)
                q, k, v = qkv[:, :qd], qkv[:, qd:qd + kd], qkv[:, qd + kd:]
            else:
                q, k, v = self.proj(p, "attn_q", h), self.proj(p, "attn_k", h), self.proj(p, "attn_v", h)
            q = q.reshape(T, self.heads, self.hd)
            k = k.reshape(T, self.kv_heads, self.hd)
            v = v.reshape(T, self.kv_heads, self.vd)
            if self.gemma:
                q = self.rms(q, self.w[p + "attn_q_norm.weight"])
                k = self.rms(k, self.w[p + "attn_k_norm.weight"])
            inv = self.inv_local if self.local(l) else self.inv_global
            q, k = self.rope(q, pos, inv), self.rope(k, pos, inv)
            K, V = cache.setdefault(l, ([], []))
            K.append(k)
            V.append(v)
            g = self.heads // self.kv_heads
            Kc = np.repeat(np.concatenate(K), g, axis=1)
            Vc = np.repeat(np.concatenate(V), g, axis=1)
            att = np.einsum("thd,shd->hts", q, Kc) * np.float32(self.scale)
            qpos = np.arange(T)[:, None] + start
            kpos = np.arange(Kc.shape[0])[None, :]
            hidden = kpos > qpos
            if self.local(l):
                hidden = hidden | (qpos - kpos >= self.window)
            att = np.where(hidden[None], np.float32(-np.inf), att)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hts,shd->thd", att, Vc).reshape(T, self.heads * self.vd)
            o = o @ self.w[p + "attn_output.weight"].T
            if self.gemma:
                o = self.rms(o, self.w[p + "post_attention_norm.weight"])
            x = x + o
            h = self.rms(x, self.w[p + "ffn_norm.weight"])
            if p + "ffn_gate.weight" in self.w:
                gate, up = self.proj(p, "ffn_gate", h), self.proj(p, "ffn_up", h)
            else:
                gu = self.proj(p, "ffn_up", h)
                gate, up = gu[:, :self.ffn], gu[:, self.ffn:]
            if self.gemma:
                c = np.float32(math.sqrt(2.0 / math.pi))
                act = np.float32(0.5) * gate * (np.float32(1.0) + np.tanh(c * (gate + np.float32(0.044715) * gate ** 3)))
            else:
                act = gate / (np.float32(1.0) + np.exp(-gate))
            o = (act * up) @ self.w[p + "ffn_down.weight"].T
            if self.gemma:
                o = self.rms(o, self.w[p + "post_ffw_norm.weight"])
            x = x + o
            assert x.dtype == np.float32, x.dtype
        return self.rms(x, self.w["output_norm.weight"])

    def logits(self, h):
        out = h @ self.head.T
        if self.softcap:
            out = self.softcap * np.tanh(out / self.softcap)
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--positions", default="")
    ap.add_argument("--new", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    m = Model(args.model)
    ids = [int(t) for t in args.tokens.split(",")]
    positions = [int(p) for p in args.positions.split(",") if p]
    cache = {}
    hidden = m.forward(np.array(ids), cache, 0)
    logits = {str(p): m.logits(hidden[p]).astype(float).tolist() for p in positions}
    out, pos = [], len(ids)
    last = m.logits(hidden[-1])
    for _ in range(args.new):
        nxt = int(np.argmax(last))
        out.append(nxt)
        last = m.logits(m.forward(np.array([nxt]), cache, pos)[-1])
        pos += 1
    with open(args.out, "w") as f:
        json.dump({"logits": logits, "continuation": out}, f)


if __name__ == "__main__":
    main()
