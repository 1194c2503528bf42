#!/usr/bin/env bash
# Vendor the dashboard's chart library (uPlot, MIT) into api/static/vendor/.
#
# Run by hand when upgrading uPlot; the copied files are committed, so neither the build, the tests
# nor a running topfib ever fetch anything (dashboards run on isolated management networks).
# The version is part of the file names: the API serves vendor files with a one-year immutable
# cache, so a new version must get new URLs. After running it, update UPLOT_VERSION in
# api/dashboard.py and the <script>/<link> tags in api/static/index.html.
set -euo pipefail

VERSION="${1:-1.6.32}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/api/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
npm init -y >/dev/null
npm install --no-audit --no-fund --ignore-scripts "uplot@$VERSION" >/dev/null
SRC="$WORK/node_modules/uplot"
test "$(node -p "require('$SRC/package.json').version")" = "$VERSION"

mkdir -p "$DEST"
rm -f "$DEST"/uPlot-*.iife.min.js "$DEST"/uPlot-*.min.css "$DEST"/uPlot-*.LICENSE
cp "$SRC/dist/uPlot.iife.min.js" "$DEST/uPlot-$VERSION.iife.min.js"
cp "$SRC/dist/uPlot.min.css" "$DEST/uPlot-$VERSION.min.css"
cp "$SRC/LICENSE" "$DEST/uPlot-$VERSION.LICENSE"
(cd "$DEST" && sha256sum "uPlot-$VERSION".* > "uPlot-$VERSION.sha256")
echo "vendored uPlot $VERSION into $DEST:"
ls -l "$DEST"
