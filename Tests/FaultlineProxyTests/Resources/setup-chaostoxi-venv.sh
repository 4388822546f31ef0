#!/usr/bin/env bash
# Creates the Python venv whose Toxiproxy clients (chaostoolkit-toxiproxy, toxiproxy-python) the
# compatibility tests drive `faultline proxy` with.
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv=.build/chaostoxi-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import chaostoxi, toxiproxy, past' 2>/dev/null; then
    mkdir -p .build
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check chaostoolkit-toxiproxy==0.3.1 toxiproxy-python==0.1.1
fi
