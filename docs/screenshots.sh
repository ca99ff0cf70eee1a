#!/bin/sh
# Look at the rendered site: build it, serve it on 127.0.0.1 only (a free port), and
# screenshot some pages with headless Chromium (Debian's `chromium` package):
#
#     sh docs/screenshots.sh OUT_DIR [page ...]      e.g. pages: optimizers/adam/ schedules/
#
# Formulas are typeset by the vendored MathJax (docs/javascripts/mathjax/), so this works
# without network access; --virtual-time-budget gives MathJax time to run before the shot.
set -eu
OUT=${1:?usage: sh docs/screenshots.sh OUT_DIR [page ...]}
shift
[ $# -gt 0 ] || set -- "" optimizers/adam/ schedules/ regularization/normalization/ parity/ benchmarks/
SITE=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 python -m mkdocs build --strict -q -d "$SITE"
mkdir -p "$OUT"
# On the loopback interface only, on a port that is free now (the OS picks it).
PORT=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python -m http.server "$PORT" --bind 127.0.0.1 --directory "$SITE" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER' EXIT
sleep 1
for page in "$@"; do
  name=$(printf '%s' "${page:-index}" | tr '/' '_' | sed 's/_$//')
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d)" --window-size=1400,2000 --virtual-time-budget=8000 \
    --screenshot="$OUT/$name.png" "http://127.0.0.1:$PORT/$page" 2>/dev/null
  echo "$OUT/$name.png"
done
