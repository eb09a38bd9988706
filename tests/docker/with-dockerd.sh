#!/usr/bin/env bash
# tests/docker/with-dockerd.sh — run ONE command next to a real dockerd, in a throwaway sandbox.
#
#   bash tests/docker/with-dockerd.sh [--image] [--topology] [--] CMD [ARGS...]
#
# Inside a private net+mount namespace: dk_sandbox_init, dk_start, then optionally the
# iptd-busybox image (--image) and the client namespace (--topology, see topology.sh), then CMD.
# CMD sees:
#   DOCKER_HOST          the sandbox's daemon
#   PATH                 the iptables shim first: `iptables` = the daemon's backend (legacy)
#   DK_DIR, DK_IMAGE, DK_RUN, DK_CGROUP_PARENT, TOPO_NS, TOPO_HOST_IP, TOPO_CLIENT_IP1/2, ...
#   DK_LIB               path of lib.sh (CMD may `. "$DK_LIB"` to use dk_* helpers, e.g.
#                        dk_restart needs DK_DOCKERD_PID/DK_CONTAINERD_PID, which are exported)
# Exit status: CMD's (99 if the host's own state changed — see dk_enter_sandbox).
# Note: dk_restart called from a CMD child cannot `wait` for the daemon (not its child); it still
# works (it polls the PID).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=topology.sh
. "$HERE/topology.sh"

dk_enter_sandbox "$@"

want_image=0 want_topo=0
while (($#)); do
    case $1 in
    --image) want_image=1 ;;
    --topology) want_topo=1 ;;
    --) shift; break ;;
    -*) dk_die "unknown option $1" ;;
    *) break ;;
    esac
    shift
done
(($#)) || dk_die "usage: with-dockerd.sh [--image] [--topology] [--] CMD [ARGS...]"

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    set +e
    ((want_topo)) && topo_teardown
    dk_cleanup "$rc"
    return "$rc"
}
trap cleanup EXIT

dk_sandbox_init
dk_start
((want_image)) && dk_build_image "$DK_IMAGE"
((want_topo)) && topo_setup

export DK_LIB="$HERE/lib.sh" DK_TOPOLOGY="$HERE/topology.sh"
export DK_IMAGE DK_RUN DK_CGROUP_PARENT DK_DOCKERD_PID DK_CONTAINERD_PID DK_USERLAND_PROXY DK_IPV6
export TOPO_NS TOPO_HOST_IF TOPO_CLIENT_IF TOPO_HOST_IP TOPO_CLIENT_IP1 TOPO_CLIENT_IP2 \
    TOPO_HOST_IP6 TOPO_CLIENT_IP6_1 TOPO_CLIENT_IP6_2 TOPO_TIMEOUT TOPO_IPV6
rc=0
PATH="$DK_SHIM:$PATH" "$@" || rc=$?
exit "$rc"
