#!/usr/bin/env bash
# Runs the http.load benchmark: http.load and wrk against the same local nginx, then memory from
# 10^4 to 10^7 requests. Arguments go to the program: --connections N --duration S --max-requests N.
# With --shards: one load shard alone on one core, then two shards on two cores, merged (the ratio).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    apt-get update -qq && apt-get install -y -qq wrk nginx-light
fi
swift build -c release --product FaultlineLoadBenchmark
# --shards runs the shipped binary as the shards.
if [[ " $* " == *" --shards "* ]]; then swift build -c release --product faultline; fi
exec .build/release/FaultlineLoadBenchmark "$@"
