#!/usr/bin/env bash
# Creates the Python venv the compatibility tests use: chaostoolkit-toxiproxy and toxiproxy-python
# drive `faultline proxy`, and `chaos run` (chaostoolkit-lib with jsonpath2) is the oracle the
# Chaos Toolkit parity tests compare `faultline run` with (FaultlineTesting.ChaosToolkitOracle).
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv=.build/chaostoxi-venv
if [ ! -x "$venv/bin/chaos" ] || ! "$venv/bin/python" -c 'import chaostoxi, toxiproxy, past, chaoslib, jsonpath2' 2>/dev/null; then
    mkdir -p .build
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        chaostoolkit-toxiproxy==0.3.1 toxiproxy-python==0.1.1 chaostoolkit==1.19.0 'chaostoolkit-lib[jsonpath]==1.44.0' jsonpath2==0.4.5
fi
