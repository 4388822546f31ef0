#!/usr/bin/env bash
# What writing the journal costs a run of N records: the same experiment with the journal in a file
# and in memory only. Arguments are the record counts (default 1000 2500 5000 10000).
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product JournalBenchmark
exec .build/release/JournalBenchmark "$@"
