# shellcheck shell=bash
# tests/packets/scene.sh — what every packet scenario does first inside its sandbox (after
# dk_enter_sandbox + dk_sandbox_init from tests/docker/lib.sh, with topology.sh sourced).
#
#   scene_init NETNS...   private state dir (/run/iptd) and /etc/iptables-docker, /run/work,
#                         and an EXIT trap that kills what `serve` started, removes the
#                         topology and deletes the namespaces named
#   serve CMD...          run CMD in the background, killed at exit

scene_init() {
    mkdir -p /run/iptd /run/work
    export IPTABLES_DOCKER_STATE_DIR=/run/iptd
    if [[ -d /etc/iptables-docker ]]; then mount -t tmpfs iptd-etc /etc/iptables-docker; fi
    PIDS=()
    SCENE_NETNS=("$@")
    trap scene_cleanup EXIT
}

scene_cleanup() {
    local rc=$? pid ns
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    topo_teardown 2>/dev/null
    for ns in "${SCENE_NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    return "$rc"
}

serve() { "$@" & PIDS+=($!); }
