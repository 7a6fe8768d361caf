"""Reference values for worker/tests/quant_blocks.rs: GGUF blocks decoded by PyPI `gguf`.

Usage: quant_blocks_reference.py DIR NAME...
For each NAME (a ggml type name, e.g. Q4_K) reads DIR/NAME.bin (rows of encoded blocks),
DIR/NAME.shape ("rows cols") and DIR/x.f32 (cols activations), and writes DIR/NAME.values.f32
(gguf.quants.dequantize, row-major; gguf has no Q8_K decoder, so Q8_K
blocks — f32 d, 256 int8 values, 16 int16 sums — are decoded here with numpy) and DIR/NAME.product.f64 (the float64 product with x).
"""

import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize


def main() -> None:
    folder = Path(sys.argv[1])
    for name in sys.argv[2:]:
        rows, cols = (int(v) for v in (folder / f"{name}.shape").read_text().split())
        kind = GGMLQuantizationType[name]
        raw = np.frombuffer((folder / f"{name}.bin").read_bytes(), dtype=np.uint8)
        if kind == GGMLQuantizationType.Q8_K:
            blocks = raw.reshape(-1, 292)
            d = blocks[:, :4].copy().view(np.float32)
            values = (d * blocks[:, 4:260].copy().view(np.int8).astype(np.float32)).reshape(rows, cols)
        else:
            values = dequantize(raw.reshape(rows, -1), kind).astype(np.float32).reshape(rows, cols)
        x = np.frombuffer((folder / "x.f32").read_bytes(), dtype=np.float32)[:cols]
        (folder / f"{name}.values.f32").write_bytes(values.tobytes())
        product = values.astype(np.float64) @ x.astype(np.float64)
        (folder / f"{name}.product.f64").write_bytes(product.astype(np.float64).tobytes())


if __name__ == "__main__":
    main()
