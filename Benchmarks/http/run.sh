#!/usr/bin/env bash
# The HTTP-aware proxy against nginx, all on loopback, in one run (issue 16):
#   direct            wrk → nginx
#   nginx proxy       wrk → nginx proxy_pass (HTTP/1.1, upstream keep-alive) → nginx, with 1 worker
#                     and with one worker per core (nginx's `auto`); the faster is the reference
#   faultline         wrk → faultline proxy with an http_abort toxic that matches nothing → nginx
#   faultline 10%     wrk → faultline proxy with http_abort toxicity 0.1 (503 for ~10 % of requests) → nginx
#   floor             wrk → floor-relay.c (one thread: recv, send, nothing else) → nginx: what the
#                     second TCP hop alone costs on this machine
# Requests/s with keep-alive connections and the p50/p99 each adds to direct, with ratios. The
# paths take turns for --rounds rounds (the order rotating each round), so drift on a shared
# machine falls on all of them alike; each round's ratios are printed, then their medians. The
# CPU time the proxy in the middle spends per request (its processes' user + system time over the
# requests wrk counted) is steadier than requests/s on a shared machine: printed beside them.
# Goal: faultline ≥ nginx proxy_pass, and ≥ 0.7× direct. The floor's CPU per request is what the
# kernel charges a proxy for the second hop; faultline's above it is what its HTTP framing and
# bookkeeping add. (Requests/s on two shared cores also depend on how the threads are scheduled:
# the one-threaded floor is not always the fastest path.)
#
#   Benchmarks/http/run.sh [--rounds N] [--duration S] [--connections N] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=5
rounds=7
connections=64
threads=2
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if ! command -v wrk >/dev/null || [ ! -x "$nginx" ]; then
    apt-get update -qq && apt-get install -y -qq wrk nginx-light
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
fi
swift build -c release --product faultline >/dev/null
cc=$(command -v cc || command -v clang || command -v gcc) || { echo "no C compiler for the floor relay" >&2; exit 1; }

scratch=$(mktemp -d /tmp/faultline-http-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT
"$cc" -O2 -o "$scratch/floor-relay" Benchmarks/http/floor-relay.c

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# nginx: `$1` is a name, `$2` the workers, `$3` the server block's body.
start_nginx() {
    local dir="$scratch/$1"
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
worker_processes $2;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp;
    proxy_temp_path $dir/tmp;
    keepalive_requests 1000000;
    upstream origin { server 127.0.0.1:$origin_port; keepalive 128; }
    server {
        listen 127.0.0.1:$4;
        $3
    }
}
EOF
    "$nginx" -p "$dir" -c "$dir/nginx.conf" &
    pids+=($!)
    server_pid[$1]=$!
}
declare -A server_pid

wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    exit 1
}

origin_port=$(free_port)
pass_port=$(free_port)
pass_auto_port=$(free_port)
reverse='location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }'
start_nginx origin 1 'location / { default_type text/plain; return 200 "hello from nginx\n"; }' "$origin_port"
start_nginx reverse 1 "$reverse" "$pass_port"
start_nginx reverse-auto auto "$reverse" "$pass_auto_port"
wait_port "$origin_port"
wait_port "$pass_port"
wait_port "$pass_auto_port"

floor_port=$(free_port)
"$scratch/floor-relay" "$floor_port" "$origin_port" &
pids+=($!)
floor_pid=$!
wait_port "$floor_port"

.build/release/faultline proxy --port 0 --seed 1 >"$scratch/proxy.out" 2>"$scratch/proxy.err" &
pids+=($!)
faultline_pid=$!
for _ in $(seq 1 200); do grep -q "API on" "$scratch/proxy.out" 2>/dev/null && break; sleep 0.05; done
api=$(sed -n 's/.*API on \(http:\/\/[^ ]*\).*/\1/p' "$scratch/proxy.out")
[ -n "$api" ] || { echo "faultline proxy did not start: $(cat "$scratch/proxy.err")" >&2; exit 1; }
create() { curl -sf -X POST "$api/proxies" -d "{\"name\":\"$1\",\"listen\":\"127.0.0.1:0\",\"upstream\":\"127.0.0.1:$origin_port\"}" | sed -n 's/.*"listen":"127.0.0.1:\([0-9]*\)".*/\1/p'; }
nomatch_port=$(create nomatch)
abort_port=$(create abort)
curl -sf -X POST "$api/proxies/nomatch/toxics" -d '{"type":"http_abort","stream":"upstream","attributes":{"status":503,"path":"/never"}}' >/dev/null
curl -sf -X POST "$api/proxies/abort/toxics" -d '{"type":"http_abort","stream":"upstream","toxicity":0.1,"attributes":{"status":503}}' >/dev/null

# wrk's figure in microseconds, from `50%  1.23ms` style lines.
micros() {
    awk -v key="$1" '$1 == key { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); print v } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 } else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000000 } }'
}

names=(direct floor nginx nginx_auto faultline abort10)
declare -A port=([direct]=$origin_port [floor]=$floor_port [nginx]=$pass_port [nginx_auto]=$pass_auto_port [faultline]=$nomatch_port [abort10]=$abort_port)
declare -A label=([direct]="nginx direct" [floor]="floor relay (recv/send only)" [nginx]="nginx proxy_pass, 1 worker" [nginx_auto]="nginx proxy_pass, $(nproc) workers"
    [faultline]="faultline http_abort, no match" [abort10]="faultline http_abort 10 %")
# The processes whose CPU time is counted for each path: the proxy in the middle (none for direct).
declare -A middle=([direct]="" [floor]=$floor_pid [nginx]=${server_pid[reverse]} [nginx_auto]=${server_pid[reverse-auto]} [faultline]=$faultline_pid [abort10]=$faultline_pid)
tick=$(getconf CLK_TCK)
# User + system clock ticks of the given processes and their children (nginx's workers).
ticks() {
    local total=0 pid fields
    for pid in "$@" $(for parent in "$@"; do pgrep -P "$parent"; done); do
        read -r -a fields < <(sed 's/.*) //' "/proc/$pid/stat")
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}
declare -A rps p50 p99 non2xx cpu
measure() {
    local name=$1 round=$2 out before after
    wrk -t"$threads" -c"$connections" -d1s "http://127.0.0.1:${port[$name]}/" >/dev/null   # warm up
    before=$(ticks ${middle[$name]})
    out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "http://127.0.0.1:${port[$name]}/")
    after=$(ticks ${middle[$name]})
    cpu[$name,$round]=$(echo "$out" | awk -v t=$((after - before)) -v hz="$tick" '/requests in/ { print t / hz * 1e6 / $1 }')
    rps[$name,$round]=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
    p50[$name,$round]=$(echo "$out" | micros "50%")
    p99[$name,$round]=$(echo "$out" | micros "99%")
    non2xx[$name,$round]=$(echo "$out" | awk '/Non-2xx/ { print $5 }')
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "HTTP benchmark: $rounds rounds of wrk -t$threads -c$connections -d${duration}s (keep-alive) per path, $(nproc) cores"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$rounds"); do
    # Each round starts one path later, so no path always runs first or last.
    for offset in $(seq 0 $((${#names[@]} - 1))); do
        measure "${names[$(((offset + round - 1) % ${#names[@]}))]}" "$round"
    done
    best_nginx=$(printf '%s\n' "${rps[nginx,$round]}" "${rps[nginx_auto,$round]}" | sort -g | tail -1)
    awk -v r="$round" -v f="${rps[faultline,$round]}" -v n="$best_nginx" -v d="${rps[direct,$round]}" -v fl="${rps[floor,$round]}" \
        'BEGIN { printf "round %d: faultline %.0f/s, best nginx proxy %.0f/s, floor %.0f/s, direct %.0f/s: ÷ nginx %.2f, ÷ direct %.2f, ÷ floor %.2f (floor ÷ direct %.2f)\n", r, f, n, fl, d, f / n, f / d, f / fl, fl / d }'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

column() { local metric=$1 name=$2; for round in $(seq 1 "$rounds"); do eval "echo \${$metric[$name,$round]}"; done | median; }
printf '%-34s %12s %10s %10s %12s %12s %10s %14s\n' "path (median of rounds)" "requests/s" "p50 µs" "p99 µs" "added p50" "added p99" "× direct" "proxy CPU/req"
declare -A med50 med99 medrps medcpu
for name in "${names[@]}"; do
    medrps[$name]=$(column rps "$name")
    med50[$name]=$(column p50 "$name")
    med99[$name]=$(column p99 "$name")
    medcpu[$name]=$(column cpu "$name")
done
for name in "${names[@]}"; do
    awk -v l="${label[$name]}" -v r="${medrps[$name]}" -v a="${med50[$name]}" -v b="${med99[$name]}" -v da="${med50[direct]}" -v db="${med99[direct]}" -v dr="${medrps[direct]}" \
        -v c="${medcpu[$name]}" -v proxy="${middle[$name]}" \
        'BEGIN { printf "%-34s %12.0f %10.0f %10.0f %12.0f %12.0f %10.2f %14s\n", l, r, a, b, a - da, b - db, r / dr, (proxy == "" ? "–" : sprintf("%.1f µs", c)) }'
done
[ -n "${non2xx[abort10,1]:-}" ] && echo "faultline http_abort 10 %, round 1: ${non2xx[abort10,1]} non-2xx responses"
ratio_nginx=$(for round in $(seq 1 "$rounds"); do
    printf '%s\n' "${rps[nginx,$round]}" "${rps[nginx_auto,$round]}" | sort -g | tail -1 | awk -v f="${rps[faultline,$round]}" '{ print f / $1 }'
done | median)
ratio_direct=$(for round in $(seq 1 "$rounds"); do awk -v f="${rps[faultline,$round]}" -v d="${rps[direct,$round]}" 'BEGIN { print f / d }'; done | median)
ratio_floor=$(for round in $(seq 1 "$rounds"); do awk -v f="${cpu[faultline,$round]}" -v d="${cpu[floor,$round]}" 'BEGIN { print f / d }'; done | median)
floor_direct=$(for round in $(seq 1 "$rounds"); do awk -v f="${rps[floor,$round]}" -v d="${rps[direct,$round]}" 'BEGIN { print f / d }'; done | median)
ratio_cpu=$(for round in $(seq 1 "$rounds"); do
    printf '%s\n' "${cpu[nginx,$round]}" "${cpu[nginx_auto,$round]}" | sort -g | head -1 | awk -v f="${cpu[faultline,$round]}" '{ print f / $1 }'
done | median)
awk -v c="$ratio_cpu" 'BEGIN { printf "faultline CPU per request / the cheaper nginx proxy_pass (median of rounds): %.2f (lower is cheaper)\n", c }'
awk -v a="$ratio_nginx" -v b="$ratio_direct" 'BEGIN {
    printf "faultline / best nginx proxy_pass (median of rounds): %.2f (goal ≥ 1.00) %s\n", a, (a >= 1 ? "met" : "NOT met")
    printf "faultline / direct (median of rounds):                %.2f (goal ≥ 0.70) %s\n", b, (b >= 0.7 ? "met" : "NOT met")
}'
awk -v a="$ratio_floor" -v b="$floor_direct" 'BEGIN {
    printf "faultline CPU per request / the floor relay CPU per request (median of rounds): %.2f (above 1: the framing and bookkeeping)\n", a
    printf "floor relay / direct (median of rounds):              %.2f (a bare second hop, nothing else)\n", b
}'
