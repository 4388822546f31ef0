#!/usr/bin/env bash
# End-to-end wall time of one-probe experiment: `faultline run` (release) vs Chaos Toolkit's `chaos run`.
# Installs chaostoolkit from PyPI into Benchmarks/.venv on first use. Prints both means and the ratio.
#   usage: Benchmarks/cli/run.sh [runs]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
runs="${1:-20}"
venv="$root/Benchmarks/.venv"

if [ ! -x "$venv/bin/chaos" ]; then
  echo "installing chaostoolkit into $venv ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet chaostoolkit
fi
echo "building faultline (release, static Swift runtime, as the README builds it) ..." >&2
(cd "$root" && swift build -c release --static-swift-stdlib --product faultline >/dev/null)
faultline="$root/.build/release/faultline"
chaos="$venv/bin/chaos"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/one-probe.json" "$work/"
cd "$work"

# One run each to warm caches and to check both succeed.
"$faultline" run one-probe.json --quiet --journal-path f.json >/dev/null
"$chaos" --no-version-check --no-log-file run one-probe.json --journal-path c.json >/dev/null 2>&1

# Interleaved runs (one of each in turn) so both see the same machine load; medians resist outliers.
python3 - "$runs" "$faultline" "$chaos" "$("$venv/bin/pip" show chaostoolkit 2>/dev/null | awk '/^Version/{print $2}')" <<'PY'
import subprocess, sys, time
runs, faultline, chaos, version = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
commands = {
    "faultline": [faultline, "run", "one-probe.json", "--quiet", "--journal-path", "f.json"],
    "chaos": [chaos, "--no-version-check", "--no-log-file", "run", "one-probe.json", "--journal-path", "c.json"],
}
times = {name: [] for name in commands}
for _ in range(runs):
    for name, command in commands.items():
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times[name].append((time.perf_counter() - start) * 1000)
median = {name: sorted(values)[len(values) // 2] for name, values in times.items()}
print(f"one-probe experiment, {runs} interleaved runs   median wall   min")
print(f"  faultline run (release, static)     {median['faultline']:8.1f} ms {min(times['faultline']):6.1f} ms")
print(f"  chaos run (chaostoolkit {version})     {median['chaos']:8.1f} ms {min(times['chaos']):6.1f} ms")
print(f"  faultline is {median['chaos'] / median['faultline']:.1f}x faster end to end (goal: at least 5x)")
PY
