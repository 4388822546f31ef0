#!/usr/bin/env bash
# Runs this example's suite across "hosts" made on this machine: network namespaces, each joined
# to this one by a veth pair with addresses from 198.18.0.0/15 (the benchmarking range, used inside
# the pairs only), each running its own sshd; host A also runs a `faultline proxy` agent.
#
#   sudo Examples/MultiHost/run.sh [faultline run options…]     # e.g. --journal-path /tmp/j
#
# Needs root, iproute2 (ip netns), openssh-server and openssh-client, and the built binaries:
# $FAULTLINE and $FAULTLINE_DEMO, or .build/{release,debug}/faultline{,-demo} under the current
# directory. Exits with faultline's status, or 77 (skipped) with a message when it cannot run
# here. Everything it starts is ended by pid, and the namespaces are deleted, on every way out.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

skip() { echo "run.sh: skipped: $*" >&2; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (to make network namespaces)"
command -v ip >/dev/null && ip netns list >/dev/null 2>&1 || skip "needs ip netns (iproute2)"
[ -x /usr/sbin/sshd ] || skip "needs /usr/sbin/sshd (openssh-server)"
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || skip "needs ssh and ssh-keygen (openssh-client)"

built() {   # $1: the variable's value, $2: the product
    if [ -n "$1" ]; then echo "$1"; return; fi
    for configuration in release debug; do
        if [ -x ".build/$configuration/$2" ]; then echo "$PWD/.build/$configuration/$2"; return; fi
    done
    echo "run.sh: no $2: build it (swift build) or set \$$3" >&2
    exit 2
}
faultline=$(built "${FAULTLINE:-}" faultline FAULTLINE)
demo=$(built "${FAULTLINE_DEMO:-}" faultline-demo FAULTLINE_DEMO)
demo=$(cd "$(dirname "$demo")" && pwd)/$(basename "$demo")   # the hosts run it by this path

work=$(mktemp -d /tmp/faultline-multihost.XXXXXX)
suffix=$$
namespaces=()
links=()
pids=()

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        # sshd's sessions first (they outlive a stopped listener), then the process itself.
        pkill -KILL -P "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for link in "${links[@]}"; do ip link del "$link" 2>/dev/null || true; done
    for namespace in "${namespaces[@]}"; do ip netns del "$namespace" 2>/dev/null || true; done
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A random /30 of 198.18.0.0/15 for each host: .1 here, .2 in the namespace.
block=$(( (RANDOM % 8190 + 1) * 8 ))
dotted() { echo "198.$(( 18 + $1 / 65536 )).$(( ($1 / 256) % 256 )).$(( $1 % 256 ))"; }

# host NAME OFFSET: makes the namespace, its veth pair, and prints its address.
host() {
    local namespace="flmh$1$suffix" here_link="flmh$1h$suffix" there_link="flmh$1n$suffix"
    ip netns add "$namespace"; namespaces+=("$namespace")
    ip link add "$here_link" type veth peer name "$there_link"; links+=("$here_link")
    ip link set "$there_link" netns "$namespace"
    ip addr add "$(dotted $(( block + $2 + 1 )))/30" dev "$here_link"
    ip link set "$here_link" up
    ip netns exec "$namespace" ip addr add "$(dotted $(( block + $2 + 2 )))/30" dev "$there_link"
    ip netns exec "$namespace" ip link set "$there_link" up
    ip netns exec "$namespace" ip link set lo up
}
host a 0; host_a=$(dotted $(( block + 2 )))
host b 4; host_b=$(dotted $(( block + 6 )))

# One client key for both hosts, a host key each, and a known_hosts file naming both.
ssh-keygen -q -t ed25519 -N "" -f "$work/client_key"
cp "$work/client_key.pub" "$work/authorized_keys"
mkdir -p /run/sshd && chmod 755 /run/sshd   # sshd's privilege separation directory
: > "$work/known_hosts"

# wait_for FILE TEXT PID WHAT: waits until FILE contains TEXT, failing if PID exits first.
wait_for() {
    for _ in $(seq 300); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { echo "run.sh: $4 did not start:" >&2; cat "$1" >&2; return 1; }
        sleep 0.1
    done
    echo "run.sh: $4 did not start within 30 s:" >&2; cat "$1" >&2; return 1
}

sshd_on() {   # sshd_on NAME ADDRESS
    ssh-keygen -q -t ed25519 -N "" -f "$work/host_key_$1"
    echo "$2 $(cut -d' ' -f1,2 "$work/host_key_$1.pub")" >> "$work/known_hosts"
    cat > "$work/sshd_config_$1" <<CONFIG
Port 22
ListenAddress $2
HostKey $work/host_key_$1
PidFile $work/sshd_$1.pid
AuthorizedKeysFile $work/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxSessions 100
MaxStartups 100
CONFIG
    setsid ip netns exec "flmh$1$suffix" /usr/sbin/sshd -D -e -f "$work/sshd_config_$1" 2> "$work/sshd_$1.log" &
    pids+=($!)
    wait_for "$work/sshd_$1.log" "Server listening on $2 port 22" $! "sshd on host $1"
}
sshd_on a "$host_a"
sshd_on b "$host_b"

# Host A's agent: a `faultline proxy` on every address of host A, with a token. The hosts' programs
# run in sessions of their own (setsid, which keeps the pid: this shell has no job control), so a
# Ctrl-C reaches faultline, which then undoes its faults on them, and not them.
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
TOXIPROXY_AUTH_TOKEN=$token setsid ip netns exec "flmha$suffix" "$faultline" proxy --host 0.0.0.0 --port 8474 > "$work/agent.log" 2>&1 &
pids+=($!)
wait_for "$work/agent.log" "http://" $! "the agent on host A"

echo "host A $host_a: store, agent http://$host_a:8474, sshd; host B $host_b: notifier, sshd; order API here"
status=0
HOST_A=$host_a HOST_B=$host_b AGENT_TOKEN=$token FAULTLINE_DEMO=$demo \
    SSH_IDENTITY=$work/client_key SSH_KNOWN_HOSTS=$work/known_hosts \
    "$faultline" run "$here/suite.yaml" "$@" || status=$?
exit "$status"
