#!/usr/bin/env bash
# Runs the http.load benchmark: http.load and wrk against the same local nginx, then memory from
# 10^4 to 10^7 requests. Arguments go to the program: --connections N --duration S --max-requests N.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    apt-get update -qq && apt-get install -y -qq wrk nginx-light
fi
swift build -c release --product FaultlineLoadBenchmark
exec .build/release/FaultlineLoadBenchmark "$@"
