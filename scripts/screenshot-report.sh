#!/usr/bin/env bash
# Renders an HTML report to a PNG of the whole page with headless Chromium (Debian package `chromium`).
#
#   scripts/screenshot-report.sh REPORT.html [OUT.png] [--dark] [--width PIXELS]
#
# The page height is measured first (the report in an iframe of a throwaway page whose script reads
# it), so the PNG holds the whole report, not just the first screen. --dark renders the
# prefers-color-scheme: dark theme.
set -euo pipefail

usage() { echo "usage: $0 REPORT.html [OUT.png] [--dark] [--width PIXELS]" >&2; exit 2; }

report="" out="" scheme="light" width=1280
while [ $# -gt 0 ]; do
  case "$1" in
    --dark) scheme="dark" ;;
    --light) scheme="light" ;;
    --width) shift; width="${1:?--width needs a number}" ;;
    -h|--help) usage ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) if [ -z "$report" ]; then report="$1"; elif [ -z "$out" ]; then out="$1"; else usage; fi ;;
  esac
  shift
done
[ -n "$report" ] || usage
[ -f "$report" ] || { echo "no such file: $report" >&2; exit 2; }
[ -n "$out" ] || out="${report%.*}-${scheme}.png"

browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[ -n "$browser" ] || { echo "chromium not found: apt-get install -y chromium" >&2; exit 2; }

absolute="$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

flags=(--headless=new --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --no-default-browser-check
       --disable-extensions --disable-sync --user-data-dir="$work/profile" --virtual-time-budget=3000)
if [ "$scheme" = dark ]; then flags+=(--force-dark-mode --blink-settings=preferredColorScheme=0); else flags+=(--blink-settings=preferredColorScheme=1); fi

# 1. Measure the page: the report in an iframe as wide as the screenshot; the wrapper's script
#    (the report itself has none) writes the height into its title, which --dump-dom prints.
cat > "$work/measure.html" <<HTML
<!DOCTYPE html><html><head><title>0</title><style>body{margin:0}iframe{border:0;width:${width}px;height:200px}</style></head>
<body><iframe id="report" src="file://${absolute}"></iframe>
<script>document.getElementById("report").onload = function () {
  var d = this.contentDocument; document.title = String(Math.max(d.documentElement.scrollHeight, d.body.scrollHeight)); };</script>
</body></html>
HTML
height="$("$browser" "${flags[@]}" --allow-file-access-from-files --dump-dom "file://$work/measure.html" 2>/dev/null \
  | sed -n 's:.*<title>\([0-9][0-9]*\)</title>.*:\1:p' | head -n 1)"
if [ -z "$height" ] || [ "$height" -lt 100 ]; then height=4000; fi

# 2. Shoot the whole page.
"$browser" "${flags[@]}" --window-size="${width},${height}" --screenshot="$out" "file://${absolute}" >/dev/null 2>&1
echo "$out (${width}x${height}, ${scheme})"
