"""An independent numpy forward pass of U^2-Net (rembg's u2net), for worker/tests/u2net.rs.

Usage: u2net_reference.py IN.safetensors OUT.f32

IN holds the weights under U^2-Net's state-dict names (stageN.rebnconv*.conv_s1 / bn_s1, sideN,
outconv; float32) and a normalized image `input` [1, 3, S, S]. OUT gets the fused map
sigmoid(d0) [1, 1, S, S] as little-endian float32. Written from the paper's and the reference
model's description: REBNCONV = 3x3 conv (dilated) + batch norm (eps 1e-5, unfused here) + ReLU;
RSU-L blocks pool 2x2 with ceil mode and upsample bilinearly (align_corners=False); RSU-4F
dilates 1, 2, 4, 8. Only numpy is needed.
"""

import sys

import numpy as np

from rrdbnet_reference import read_safetensors


def conv(x, w, b, dilation=1):
    """x [c, h, w], weight [o, c, k, k], 'same' padding for odd k."""
    c, h, wd = x.shape
    k = w.shape[2]
    pad = dilation * (k // 2)
    p = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((w.shape[0], h, wd))
    for dy in range(k):
        for dx in range(k):
            oy, ox = dy * dilation, dx * dilation
            out += np.einsum("oc,chw->ohw", w[:, :, dy, dx], p[:, oy : oy + h, ox : ox + wd])
    return out + b[:, None, None]


def rebnconv(t, prefix, x, dilation):
    y = conv(x, t[f"{prefix}.conv_s1.weight"], t[f"{prefix}.conv_s1.bias"], dilation)
    g, beta = t[f"{prefix}.bn_s1.weight"], t[f"{prefix}.bn_s1.bias"]
    mean, var = t[f"{prefix}.bn_s1.running_mean"], t[f"{prefix}.bn_s1.running_var"]
    y = (y - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5) * g[:, None, None] + beta[:, None, None]
    return np.maximum(y, 0)


def pool(x):
    c, h, w = x.shape
    hp, wp = -(-h // 2) * 2, -(-w // 2) * 2
    p = np.full((c, hp, wp), -np.inf)
    p[:, :h, :w] = x
    return p.reshape(c, hp // 2, 2, wp // 2, 2).max(axis=(2, 4))


def resize_axis(x, axis, out):
    n = x.shape[axis]
    if n == out:
        return x
    src = np.maximum((np.arange(out) + 0.5) * (n / out) - 0.5, 0)
    i0 = np.minimum(np.floor(src).astype(int), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    lam = src - i0
    shape = [1, 1, 1]
    shape[axis] = out
    lam = lam.reshape(shape)
    return np.take(x, i0, axis=axis) * (1 - lam) + np.take(x, i1, axis=axis) * lam


def up_like(x, like):
    return resize_axis(resize_axis(x, 1, like.shape[1]), 2, like.shape[2])


def rsu(t, prefix, x, fused):
    levels = 0
    while f"{prefix}.rebnconv{levels + 1}.conv_s1.weight" in t:
        levels += 1
    hxin = rebnconv(t, f"{prefix}.rebnconvin", x, 1)
    enc = []
    hx = hxin
    for k in range(1, levels + 1):
        d = 2 ** (k - 1) if fused else (2 if k == levels else 1)
        if not fused and 2 <= k <= levels - 1:
            hx = pool(hx)
        hx = rebnconv(t, f"{prefix}.rebnconv{k}", hx, d)
        enc.append(hx)
    d = enc[-1]
    for k in range(levels - 1, 0, -1):
        skip = enc[k - 1]
        if not fused and k < levels - 1:
            d = up_like(d, skip)
        dil = 2 ** (k - 1) if fused else 1
        d = rebnconv(t, f"{prefix}.rebnconv{k}d", np.concatenate([d, skip]), dil)
    return d + hxin


def forward(t, x):
    fused = {"stage5", "stage6", "stage5d"}
    hx = x
    enc = []
    for i in range(1, 7):
        if i > 1:
            hx = pool(hx)
        hx = rsu(t, f"stage{i}", hx, f"stage{i}" in fused)
        enc.append(hx)
    dec = {6: enc[5]}
    d = enc[5]
    for i in range(5, 0, -1):
        skip = enc[i - 1]
        d = rsu(t, f"stage{i}d", np.concatenate([up_like(d, skip), skip]), f"stage{i}d" in fused)
        dec[i] = d
    d1 = conv(dec[1], t["side1.weight"], t["side1.bias"])
    sides = [d1] + [up_like(conv(dec[i], t[f"side{i}.weight"], t[f"side{i}.bias"]), d1) for i in range(2, 7)]
    d0 = conv(np.concatenate(sides), t["outconv.weight"], t["outconv.bias"])
    return 1 / (1 + np.exp(-d0))


def main():
    t = read_safetensors(sys.argv[1])
    forward(t, t["input"][0]).astype("<f4").tofile(sys.argv[2])


if __name__ == "__main__":
    main()
