#!/bin/sh
# Vendors the front-end assets the web app serves (no CDN: pages work offline).
# Fetched from the npm registry with `npm pack`; re-run to upgrade, then commit.
set -eu
HTMX=2.0.11
CHARTJS=4.6.1
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htmx.org@$HTMX" "chart.js@$CHARTJS" >/dev/null)
tar xzf "$work/htmx.org-$HTMX.tgz" -O package/dist/htmx.min.js > web/static/vendor/htmx.min.js
tar xzf "$work/chart.js-$CHARTJS.tgz" -O package/dist/chart.umd.min.js > web/static/vendor/chart.umd.min.js
cat > web/static/vendor/VERSIONS <<VERSIONS
htmx.org $HTMX (BSD Zero Clause License) dist/htmx.min.js
chart.js $CHARTJS (MIT License) dist/chart.umd.min.js
VERSIONS
echo "vendored htmx.org $HTMX and chart.js $CHARTJS into web/static/vendor/"
