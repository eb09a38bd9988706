# shellcheck shell=bash
# tests/docker/story.sh — what the real-dockerd stories (firewall.sh, concurrent.sh) share.
# Source it first thing from a script called as `SCRIPT DOCKER BACKEND`:
#
#   DOCKER   bookworm  the machine's own docker.io (Debian 12: 20.10, chains <= 27 layout)
#            sid       docker.io 28.5 from a Debian sid root (tests/systemd/rootfs.sh docker,
#                      built once and cached; DK_ROOTFS=PATH skips the look-up), chrooted:
#                      DOCKER-FORWARD, raw guards
#   BACKEND  legacy | nft: Docker's `iptables` and our `--backend`
#
# It enters private namespaces (dk_enter_sandbox), starts containerd + dockerd, imports the
# image, sets up the client namespace (topology.sh) and a private state directory, and writes
# two configurations: /run/work/plain.toml (ssh from 198.51.100.10 only) and
# /run/work/containers.toml (the same plus [containers]: 8080 and 8083 from .10 only).
# Then: `ours CONFIG ARGS...` runs the binary, `check`/`expect` report checks (tests/common/checks.sh, topology.sh),
# `has PATTERN [grep options]` greps stdin, `phase TEXT` prints a timed heading. BIN is the
# binary; B the backend, IPT its iptables, OTHER the other backend's.
set -euo pipefail
STORY_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$STORY_LIB/lib.sh"
# shellcheck source=topology.sh
. "$STORY_LIB/topology.sh"
BIN=$(readlink -f "${BIN:?set BIN to the iptables-docker binary}")
DOCKER=${1:?usage: $0 bookworm|sid legacy|nft}
B=${2:?usage: $0 bookworm|sid legacy|nft}
case $DOCKER in
bookworm) DK_ROOTFS= ;;
# Built (or found in the cache) out here: debootstrap needs the network the sandbox lacks.
sid) [[ -n "${DK_ROOTFS:-}" ]] || DK_ROOTFS=$(bash "$STORY_LIB/../systemd/rootfs.sh" docker) ;;
*) dk_die "DOCKER must be bookworm or sid, not '$DOCKER'" ;;
esac
case $B in legacy | nft) ;; *) dk_die "BACKEND must be legacy or nft, not '$B'" ;; esac
export BIN DK_ROOTFS DK_IPTABLES_BACKEND=$B

dk_enter_sandbox "$@" # --- everything below runs inside private namespaces ---

story_cleanup() {
    local rc=$?
    set +e
    topo_teardown 2>/dev/null
    dk_cleanup "$rc"
    return "$rc"
}
trap story_cleanup EXIT

T0=$SECONDS
dk_sandbox_init
mkdir -p /run/iptd /run/work
export IPTABLES_DOCKER_STATE_DIR=/run/iptd
if [[ -d /etc/iptables-docker ]]; then mount -t tmpfs iptd-etc /etc/iptables-docker; fi
TOPO_IPV6=0 # the daemons here run without --ipv6; IPv6 is covered by tests/packets
# shellcheck disable=SC2034 # C1, C2, IPT, OTHER, DOCKER_VERSION: for the sourcing story
{
    C1=$TOPO_CLIENT_IP1 C2=$TOPO_CLIENT_IP2
    IPT=iptables-$B
    OTHER=iptables-$([[ $B == legacy ]] && echo nft || echo legacy)
}

# has PATTERN [grep options]: stdin has a line matching PATTERN. Reads all of its input: a
# `grep -q` that quits early makes the writer die of SIGPIPE, which pipefail turns into a failure.
has() { grep -e "$@" >/dev/null; }
ours() { "$BIN" --backend "$B" --config "/run/work/$1.toml" "${@:2}"; }
phase() { printf '== [%3ss] %s\n' "$((SECONDS - T0))" "$*"; }

dk_start
# shellcheck disable=SC2034
DOCKER_VERSION=$(docker version -f '{{.Server.Version}}')
dk_build_image "$DK_IMAGE"
topo_setup

cat >/run/work/plain.toml <<'CONFIG'
ipv6 = false
[ssh]
allow_from = ["198.51.100.10/32"]
CONFIG
cat /run/work/plain.toml - >/run/work/containers.toml <<'CONFIG'
[containers]
restrict = true
[[containers.allow]]
description = "web"
port = 8080
from = ["198.51.100.10/32"]
[[containers.allow]]
description = "named bridge"
port = 8083
from = ["198.51.100.10/32"]
CONFIG
