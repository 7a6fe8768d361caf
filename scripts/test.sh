#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, HTTP tests against the real binary on SQLite,
# on PostgreSQL and on PostgreSQL + Redis (several processes sharing one horde), and the horde-sdk
# compatibility round trip.
#
# PostgreSQL: a temporary cluster is started when Debian's postgresql is installed; in CI
# (CI=true) it is required. The horde-sdk test creates its own Python venv (needs PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/postgres-temp.sh
trap stop_temp_postgres EXIT

if start_temp_postgres; then
  export HORDE_REQUIRE_PG=1
  echo "PostgreSQL test cluster: ${TEST_PG_URL}"
elif [ "${CI:-}" = "true" ]; then
  echo "CI needs PostgreSQL (apt-get install postgresql)" >&2
  exit 1
else
  echo "warning: PostgreSQL not installed; its test runs are skipped" >&2
fi
if [ "${CI:-}" = "true" ]; then
  export HORDE_REQUIRE_COMPAT=1
fi
# Redis: the shared-state tests start their own redis-server (Debian's redis-server package).
if command -v redis-server >/dev/null 2>&1; then
  export HORDE_REQUIRE_REDIS=1
elif [ "${CI:-}" = "true" ]; then
  echo "CI needs redis-server (apt-get install redis-server)" >&2
  exit 1
else
  echo "warning: redis-server not installed; the shared-state (several processes) tests are skipped" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# The web UI's browser bundle (wasm32 + wasm-bindgen), embedded by the horde binary the HTTP and
# browser tests run. Without the tools the pages still render, and the browser tests skip.
site_built=false
if rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown && command -v wasm-bindgen >/dev/null 2>&1; then
  echo "== web UI bundle (scripts/build-site.sh)"
  ./scripts/build-site.sh
  site_built=true
  export HORDE_REQUIRE_SITE=1
elif [ "${CI:-}" = "true" ]; then
  echo "CI needs the wasm32-unknown-unknown target and wasm-bindgen 0.2.130" >&2
  exit 1
else
  echo "warning: wasm32 target or wasm-bindgen missing; the web UI bundle and browser tests are skipped" >&2
fi
echo "== the horde binary links the worker's CPU engine without burn (--local-worker)"
cargo clippy -p horde-worker --no-default-features --lib -- -D warnings
if cargo tree -p horde-server -e normal | grep -q burn; then
  echo "horde-server depends on burn: it must take horde-worker with default-features = false" >&2
  exit 1
fi
echo "== cargo check of the worker's GPU backends (wgpu, cuda)"
# cubecl-cuda's build script would download an LLVM bundle; DOCS_RS makes it skip that, which is
# enough to type-check the code (a real CUDA build happens on a machine that can fetch it).
DOCS_RS=1 cargo check -p horde-worker --features wgpu,cuda
echo "== cargo test"
log=$(mktemp)
trap 'stop_temp_postgres; rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# The worker's GPU path on wgpu: in CI on Mesa's software Vulkan (lavapipe, .ci/run installs it),
# where a missing adapter fails the tests instead of skipping them. Compiling wgpu and cubecl adds
# several minutes on a 2-core machine (once; later runs are incremental).
if [ "$status" -eq 0 ]; then
  echo "== wgpu tests (software Vulkan in CI)"
  if [ "${CI:-}" = "true" ]; then
    export HORDE_REQUIRE_GPU_SMOKE=1
  fi
  set +e
  # The quantized kernels against the host's, the fused attention against a host reference, the
  # text models (tiny, Gemma 3, SmolLM2) against the CPU engine, a wgpu worker serving both through
  # a horde, the image models against burn's CPU backend.
  cargo test -p horde-worker --features wgpu --test gpu_kernels --test gpu_attention --test gpu_model --test gpu_serving --test gpu_diffusion 2>&1 | tee -a "$log"
  status=${PIPESTATUS[0]}
  set -e
fi
# Browser tests of the web UI (Playwright, Debian's Chromium) against the horde binary just built.
if [ "$status" -eq 0 ]; then
  if $site_built && [ -x node_modules/.bin/playwright ] && command -v chromium >/dev/null 2>&1; then
    echo "== browser tests (Playwright)"
    cargo build -p horde-server --bin horde
    set +e
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" node_modules/.bin/playwright test 2>&1 | grep -vE 'dbus|\[pid=' | tee -a "$log"
    status=${PIPESTATUS[0]}
    set -e
  elif [ "${CI:-}" = "true" ]; then
    echo "CI needs the browser tests: npm ci and apt-get install chromium" >&2
    status=1
  else
    echo "warning: node_modules or chromium missing; browser tests skipped (npm ci; apt-get install chromium)" >&2
  fi
fi
read -r passed failed < <(awk '
  /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
  /^  [0-9]+ (passed|failed)( |$)/ { if ($2 == "passed") p += $1; else f += $1 }
  END { print p + 0, f + 0 }' "$log")
echo
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
