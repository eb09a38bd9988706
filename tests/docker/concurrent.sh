#!/usr/bin/env bash
# tests/docker/concurrent.sh — containers published by a real dockerd WHILE iptables-docker
# reloads: nothing Docker writes meanwhile may be lost.
#
#   sudo BIN=target/debug/iptables-docker bash tests/docker/concurrent.sh DOCKER BACKEND
#
# (DOCKER, BACKEND: see story.sh.) CONCURRENT_N (default 12) `docker run -d -p 91NN:80` are
# started at once; until the last has returned, `reload` alternates between two
# configurations, so that each one replaces the filter table Docker is writing to. Then every
# container must still have Docker's rules (filter DOCKER: ACCEPT to its address; nat
# DOCKER: DNAT of its port) and answer on its published port, and `status` must match.
# On iptables-legacy the xtables lock orders Docker's writes and ours; iptables-nft takes no
# lock, so there only an apply that edits instead of replacing can keep them (issue 10).
# Closing line: "concurrent: N passed, N failed".
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=story.sh
. "$HERE/story.sh"
N=${CONCURRENT_N:-12}

# docker_rules_of NAME PORT: the container's filter ACCEPT and nat DNAT rules are both there.
docker_rules_of() {
    local ip
    ip=$(dk_container_ip "$1")
    $IPT -S DOCKER | has "-d $ip/32 .*--dport 80 -j ACCEPT" &&
        $IPT -t nat -S DOCKER | has "--dport $2 -j DNAT"
}

phase "Docker $DOCKER_VERSION, iptables-$B: $N containers published during reloads"
ours plain start >/dev/null
runs=()
for ((i = 1; i <= N; i++)); do
    docker run -d --name "r$i" --restart unless-stopped --stop-timeout 1 -p "$((9100 + i)):80" \
        "$DK_IMAGE" httpd -f -p 80 -h /www >/dev/null &
    runs+=($!)
done
reloads=0
while kill -0 "${runs[@]}" 2>/dev/null; do # true while any `docker run` is still going
    ours containers reload >/dev/null && reloads=$((reloads + 1))
    ours plain reload >/dev/null && reloads=$((reloads + 1))
done
wait "${runs[@]}"
echo "reloads while the $N containers started: $reloads"
for ((i = 1; i <= N; i++)); do
    check open "r$i: Docker's ACCEPT and DNAT rules are there" docker_rules_of "r$i" "$((9100 + i))"
    expect open "r$i: its published port answers" "$C1" "$((9100 + i))"
done
check open "status: the running ruleset matches the policy" ours plain status

phase "done: Docker $DOCKER_VERSION, iptables-$B"
checks_done
