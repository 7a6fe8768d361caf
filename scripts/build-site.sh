#!/usr/bin/env bash
# Builds the web UI's browser bundles into target/site (or $HORDE_SITE_DIR): the frontend crate to
# wasm32 once per page, wasm-bindgen (exactly the wasm-bindgen crate's version, 0.2.130), and in release
# wasm-opt from npm's binaryen; missing tools are installed first. The horde binary embeds what is
# there when it is built next (debug builds read it from disk).
#
#   scripts/build-site.sh            # debug bundle (fast to build, large)
#   scripts/build-site.sh --release  # small bundle (wasm-release profile, wasm-opt -Oz, esbuild --minify)
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=debug
[ "${1:-}" = "--release" ] && MODE=release
SITE="${HORDE_SITE_DIR:-$PWD/target/site}"
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# Progress on stderr: each step with the time since the start (a first build takes minutes).
START=$SECONDS
say() { printf 'build-site [%d:%02d] %s\n' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60)) "$*" >&2; }

# Tools, installed on first use from crates.io and npm (nothing else is downloaded).
rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if ! wasm-bindgen --version 2>/dev/null | grep -q ' 0.2.130'; then
  echo "build-site: installing wasm-bindgen-cli 0.2.130 (crates.io, about 3 minutes)" >&2
  CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo install wasm-bindgen-cli --version 0.2.130
fi
if [ "$MODE" = release ] && { [ ! -x node_modules/.bin/wasm-opt ] || [ ! -x node_modules/.bin/esbuild ]; }; then
  echo "build-site: installing npm packages (binaryen's wasm-opt, esbuild)" >&2
  npm ci --no-audit --no-fund
fi

PROFILE=dev OUT=debug
[ "$MODE" = release ] && PROFILE=wasm-release OUT=wasm-release
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
chmod 755 "$STAGE"
mkdir -p "$STAGE/pkg"
# One bundle per page (pkg/horde-<page>.js and .wasm): a first visit loads only its page's code.
N=0
for PAGE in write images account workers; do
  N=$((N + 1))
  say "page $N of 4 ($PAGE): compiling to WASM ($PROFILE)"
  cargo build -p horde-frontend --lib --target wasm32-unknown-unknown --profile "$PROFILE" --features "$PAGE"
  wasm-bindgen --target web --no-typescript --out-dir "$STAGE/pkg" --out-name "horde-$PAGE" \
    "$TARGET_DIR/wasm32-unknown-unknown/$OUT/horde_frontend.wasm"
  mv "$STAGE/pkg/horde-${PAGE}_bg.wasm" "$STAGE/pkg/horde-$PAGE.wasm"
  if [ "$MODE" = release ]; then
    say "page $N of 4 ($PAGE): wasm-opt -Oz"
    # npm's binaryen: Debian's wasm-opt 108 produces WASM that never hydrates. Rust keeps its
    # stack below the data (at 1 MiB, growing down), so the low kilobyte is never addressed and
    # --low-memory-unused may fold offsets into loads.
    node_modules/.bin/wasm-opt -Oz --converge --low-memory-unused --enable-bulk-memory --enable-nontrapping-float-to-int \
      "$STAGE/pkg/horde-$PAGE.wasm" -o "$STAGE/pkg/horde-$PAGE.wasm"
  fi
done
cp style/main.css "$STAGE/pkg/horde.css"
# Modules a page loads on demand (app/js/), so they are not in its first load.
cp app/js/*.js "$STAGE/pkg/"
if [ "$MODE" = release ]; then
  # Minified glue and styles (esbuild from npm).
  say "minifying the JavaScript and CSS"
  for f in "$STAGE"/pkg/*.js "$STAGE/pkg/horde.css"; do
    node_modules/.bin/esbuild --minify --log-level=warning "$f" --outfile="$f.min" && mv "$f.min" "$f"
  done
fi
cp -r public/. "$STAGE/"

say "writing brotli and gzip copies"
# Precompressed copies (brotli quality 11, gzip 9), served instead of compressing per request.
# The WASM only in release: its debug build is too large to be worth it.
node -e '
const fs = require("fs"), z = require("zlib"), path = require("path");
const [dir, release] = [process.argv[1], process.argv[2] === "release"];
for (const f of fs.readdirSync(dir)) {
  if (!/\.(js|css|wasm)$/.test(f) || (f.endsWith(".wasm") && !release)) continue;
  const raw = fs.readFileSync(path.join(dir, f));
  fs.writeFileSync(path.join(dir, f + ".br"), z.brotliCompressSync(raw, { params: {
    [z.constants.BROTLI_PARAM_QUALITY]: 11, [z.constants.BROTLI_PARAM_SIZE_HINT]: raw.length } }));
  fs.writeFileSync(path.join(dir, f + ".gz"), z.gzipSync(raw, { level: 9 }));
}' "$STAGE/pkg" "$MODE"

# Replace the site in one step so a running debug horde never reads half a bundle.
mkdir -p "$(dirname "$SITE")"
rm -rf "$SITE.old"
[ -d "$SITE" ] && mv "$SITE" "$SITE.old"
mv "$STAGE" "$SITE"
rm -rf "$SITE.old"
trap - EXIT
say "done"
echo "build-site: $MODE bundles in $SITE: $(cd "$SITE/pkg" && du -h horde-*.wasm | tr '\t\n' ' ,')"
