#!/usr/bin/env bash
# bench/ab.sh — two iptables-docker binaries side by side (see bench/README.md).
#
#   sudo bash bench/ab.sh OLD NEW [--shape 28|20.10] [--ports 20000] [--cycles 9]
#
# In one throwaway network + mount + PID namespace with a private /run (the same safety as
# run.sh: this machine's own firewall is never read or written), each cycle reloads the
# generated "before" ruleset and times `start`, `start` again and `stop` of OLD, then the
# same of NEW, or NEW first in every other cycle (legacy, backend auto, as a host runs it). Prints the medians and the median
# of the pairwise ratios NEW/OLD, which moves far less than absolute times between runs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

if [[ "${1:-}" == "--inside" ]]; then
    shift
    [[ "$(readlink /proc/self/ns/net)" != "$IPTD_AB_OUTER_NET" ]] || exit 91
    mount --make-rprivate /
    mount -t tmpfs ab-run /run
    if [[ -d /etc/iptables-docker ]]; then
        mount -t tmpfs ab-etc /etc/iptables-docker
    fi
    export IPTABLES_DOCKER_STATE_DIR=/run/iptd
    unset XTABLES_LOCKFILE SSH_CONNECTION SSH_CLIENT SSH_TTY
    old=$1 new=$2 shape=$3 ports=$4 cycles=$5
    python3 "$here/gen.py" --ports "$ports" --shape "$shape" > /run/v4
    python3 "$here/gen.py" --ports "$ports" --shape "$shape" --family v6 > /run/v6
    ms() {
        local s e
        s=$(date +%s%N)
        "$@" > /dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
        e=$(date +%s%N)
        echo $(((e - s) / 1000000))
    }
    # Which binary goes first alternates (old new, new old, ...): the second of a pair
    # ran ~8 % slower on `start` even when both were the same binary.
    for cycle in $(seq "$cycles"); do
        order="old new"
        [[ $((cycle % 2)) -eq 0 ]] && order="new old"
        for who in $order; do
            bin=$old
            [[ $who == new ]] && bin=$new
            iptables-legacy-restore -w < /run/v4
            ip6tables-legacy-restore -w < /run/v6
            rm -rf /run/iptd
            echo "$who $(ms "$bin" start) $(ms "$bin" start) $(ms "$bin" stop)"
        done
    done > /run/ab
    exec python3 - /run/ab <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for k, name in ((1, "start"), (2, "start again"), (3, "stop")):
    old = [int(r[k]) for r in rows if r[0] == "old"]
    new = [int(r[k]) for r in rows if r[0] == "new"]
    ratio = statistics.median(n / o for o, n in zip(old, new))
    print(f"{name}: old {statistics.median(old)} ms, new {statistics.median(new)} ms, "
          f"new/old pairwise median {ratio:.2f} ({len(old)} cycles)")
EOF
fi

[[ $# -ge 2 ]] || { sed -n '3,9p' "$0" >&2; exit 2; }
old=$(realpath "$1") new=$(realpath "$2")
shift 2
shape=28 ports=20000 cycles=9
while [[ $# -gt 0 ]]; do
    case $1 in
        --shape) shape=$2; shift 2 ;;
        --ports) ports=$2; shift 2 ;;
        --cycles) cycles=$2; shift 2 ;;
        *) echo "bench/ab.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ $EUID -eq 0 ]] || { echo "bench/ab.sh: needs root (namespaces, iptables)" >&2; exit 4; }
IPTD_AB_OUTER_NET=$(readlink /proc/self/ns/net)
export IPTD_AB_OUTER_NET
exec unshare --net --mount --pid --fork --mount-proc --kill-child \
    bash "$0" --inside "$old" "$new" "$shape" "$ports" "$cycles"
