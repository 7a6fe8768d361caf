"""An independent numpy forward pass of Real-ESRGAN's RRDBNet, for worker/tests/upscale.rs.

Usage: rrdbnet_reference.py IN.safetensors OUT.f32

IN holds the network's weights under Real-ESRGAN's state-dict names (conv_first, body.N.rdbK.convJ,
conv_body, conv_up1, conv_up2, conv_hr, conv_last; float32) and the image `input` [1, 3, H, W] in
[0, 1]. OUT gets the network's output [1, 3, H*s, W*s] as little-endian float32, unclamped.
Written from the architecture's description (basicsr's rrdbnet_arch: dense blocks of five 3x3
convolutions with 0.2 residual scaling, nearest-neighbour 2x upsampling twice, leaky ReLU 0.2;
pixel-unshuffle in front for scales 2 and 1); only numpy is needed.
"""

import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: {info['dtype']}"
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return tensors


def conv3x3(x, w, b):
    """x [c, h, w], weight [o, c, 3, 3], padding 1."""
    c, h, wd = x.shape
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((w.shape[0], h, wd))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("oc,chw->ohw", w[:, :, dy, dx], p[:, dy : dy + h, dx : dx + wd])
    return out + b[:, None, None]


def lrelu(x):
    return np.where(x >= 0, x, 0.2 * x)


def conv(t, name, x):
    return conv3x3(x, t[name + ".weight"], t[name + ".bias"])


def dense_block(t, prefix, x):
    seen = [x]
    for j in range(1, 5):
        seen.append(lrelu(conv(t, f"{prefix}.conv{j}", np.concatenate(seen, axis=0))))
    return conv(t, f"{prefix}.conv5", np.concatenate(seen, axis=0)) * 0.2 + x


def rrdb(t, prefix, x):
    out = x
    for k in (1, 2, 3):
        out = dense_block(t, f"{prefix}.rdb{k}", out)
    return out * 0.2 + x


def pixel_unshuffle(x, r):
    c, h, w = x.shape
    return x.reshape(c, h // r, r, w // r, r).transpose(0, 2, 4, 1, 3).reshape(c * r * r, h // r, w // r)


def upsample2(x):
    return x.repeat(2, axis=1).repeat(2, axis=2)


def forward(t, x):
    in_ch = t["conv_first.weight"].shape[1]
    scale = {3: 4, 12: 2, 48: 1}[in_ch]
    if scale != 4:
        x = pixel_unshuffle(x, 4 // scale)
    feat = conv(t, "conv_first", x)
    body = feat
    i = 0
    while f"body.{i}.rdb1.conv1.weight" in t:
        body = rrdb(t, f"body.{i}", body)
        i += 1
    feat = feat + conv(t, "conv_body", body)
    feat = lrelu(conv(t, "conv_up1", upsample2(feat)))
    feat = lrelu(conv(t, "conv_up2", upsample2(feat)))
    return conv(t, "conv_last", lrelu(conv(t, "conv_hr", feat)))


def main():
    t = read_safetensors(sys.argv[1])
    out = forward(t, t["input"][0])
    out.astype("<f4").tofile(sys.argv[2])


if __name__ == "__main__":
    main()
