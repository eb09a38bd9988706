#!/usr/bin/env bash
# bench/run.sh — the iptables-docker benchmark (see bench/README.md).
#
#   bash bench/run.sh [--sizes 20000,50000] [--shapes 28,20.10] [--runs 5]
#                     [--nft-sizes 20000] [--nft-shapes 28] [--nft-runs 3]
#                     [--out bench/results.md] [--bin target/release/iptables-docker]
#                     [--quiet-wait 20] [--quiet-budget 120]
#
# Needs root, python3, strace, unshare (util-linux), iptables-legacy and iptables-nft. Builds
# the release binary if --bin is not given and it is missing. Every measurement runs in a throwaway
# network + mount + PID namespace with a private /run (so a private xtables lock and state
# dir): this machine's own firewall is never read or written, and no process started here
# outlives the script (the PID namespace dies with it). Before each timed cycle it waits up
# to --quiet-wait seconds for other processes to leave the CPUs (mostly) idle, and flags
# cycles that ran on a busy machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

# ---- inside the namespace ---------------------------------------------------------------
if [[ "${1:-}" == "--inside" ]]; then
    shift
    # Refuse unless both namespaces differ from the ones we started in.
    [[ -n "${IPTD_BENCH_OUTER_NET:-}" && -n "${IPTD_BENCH_OUTER_MNT:-}" ]] || exit 90
    [[ "$(readlink /proc/self/ns/net)" != "$IPTD_BENCH_OUTER_NET" ]] || exit 91
    [[ "$(readlink /proc/self/ns/mnt)" != "$IPTD_BENCH_OUTER_MNT" ]] || exit 92
    mount --make-rprivate /
    mount -t tmpfs bench-run /run
    if [[ -d /etc/iptables-docker ]]; then
        mount -t tmpfs bench-etc /etc/iptables-docker # built-in policy, whatever the host has
    fi
    export IPTABLES_DOCKER_STATE_DIR=/run/iptd
    unset XTABLES_LOCKFILE SSH_CONNECTION SSH_CLIENT SSH_TTY
    exec python3 "$here/bench.py" "$@" --bin "$IPTD_BENCH_BIN"
fi

# ---- outside ----------------------------------------------------------------------------
sizes=20000,50000
nft_sizes=20000
shapes=28,20.10
nft_shapes=28
runs=5
nft_runs=3
quiet_budget=120
out="$here/results.md"
bin=""
bin_given=""
quiet_wait=20
while [[ $# -gt 0 ]]; do
    case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --nft-sizes) nft_sizes=$2; shift 2 ;;
    --shapes) shapes=$2; shift 2 ;;
    --nft-shapes) nft_shapes=$2; shift 2 ;;
    --nft-runs) nft_runs=$2; shift 2 ;;
    --quiet-budget) quiet_budget=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --bin) bin=$2; bin_given=1; shift 2 ;;
    --quiet-wait) quiet_wait=$2; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

[[ $(id -u) -eq 0 ]] || { echo "run.sh: must run as root (namespaces, iptables)" >&2; exit 4; }
for tool in python3 strace unshare iptables-legacy iptables-legacy-save iptables-legacy-restore \
    ip6tables-legacy-save ip6tables-legacy-restore iptables-nft-save iptables-nft-restore \
    ip6tables-nft-save ip6tables-nft-restore; do
    command -v "$tool" > /dev/null || {
        echo "run.sh: $tool not found (apt-get install iptables strace util-linux python3)" >&2
        exit 4
    }
done

if [[ -z "$bin" ]]; then
    bin="${CARGO_TARGET_DIR:-$root/target}/release/iptables-docker"
    if [[ ! -x "$bin" ]]; then
        echo "run.sh: building $bin" >&2
        (cd "$root" && cargo build --release --locked)
    fi
fi
[[ -x "$bin" ]] || { echo "run.sh: no binary at $bin" >&2; exit 4; }
# Measure a snapshot: a rebuild of target/release during the run must not mix binaries.
snapshot=$(mktemp -d /tmp/iptd-bench.XXXXXX)
cleanup() { rm -rf "$snapshot"; }
trap cleanup EXIT
cp "$bin" "$snapshot/iptables-docker"
bin_id="$(sha256sum "$snapshot/iptables-docker" | cut -c1-12)"
case $out in /*) ;; *) out="$PWD/$out" ;; esac
mkdir -p "$(dirname "$out")"

git="$(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo unknown)"
if [[ -n "$(git -C "$root" status --porcelain -- src Cargo.toml Cargo.lock templates 2> /dev/null)" ]]; then
    git="$git + uncommitted changes"
fi
if [[ -n "$bin_given" ]]; then
    git="binary $bin given with --bin (the tree is at commit $git)"
else
    git="commit $git"
fi
git="$git, binary $("$snapshot/iptables-docker" --version 2> /dev/null || echo '?') sha256 $bin_id"

IPTD_BENCH_OUTER_NET=$(readlink /proc/self/ns/net)
IPTD_BENCH_OUTER_MNT=$(readlink /proc/self/ns/mnt)
IPTD_BENCH_BIN="$snapshot/iptables-docker"
export IPTD_BENCH_OUTER_NET IPTD_BENCH_OUTER_MNT IPTD_BENCH_BIN
# unshare ignores SIGTERM/SIGINT while it waits; killing it kills the namespace's PID 1
# (--kill-child), and with it every process the benchmark started.
unshare --net --mount --pid --fork --mount-proc --kill-child \
    bash "$here/run.sh" --inside --sizes "$sizes" --nft-sizes "$nft_sizes" --shapes "$shapes" \
    --nft-shapes "$nft_shapes" --runs "$runs" --nft-runs "$nft_runs" --out "$out" \
    --git "$git" --quiet-wait "$quiet_wait" --quiet-budget "$quiet_budget" &
child=$!
trap 'kill -KILL "$child" 2> /dev/null; cleanup; exit 130' INT
trap 'kill -KILL "$child" 2> /dev/null; cleanup; exit 143' TERM HUP
wait "$child"
