#!/usr/bin/env bash
# tests/docker/firewall.sh — iptables-docker on a real dockerd (Debian docker.io) in private
# namespaces, proven with real connections from an external client namespace.
#
#   sudo BIN=target/debug/iptables-docker bash tests/docker/firewall.sh
#
# Two containers: "web" on the default bridge (-p 8080:80) and "app" on a user network
# (-p 8081:80). The config allows ssh and 8080 from 198.51.100.10 only, 8081 from nobody.
# Checks: Docker alone (all open) → start (allowed/denied, egress, replies) → dockerd
# restarted (Docker re-creates its chains; still enforced) → a container started after
# start (its new port is filtered too) → stop (Docker's defaults back).
# Closing line: "dockerd: N passed, N failed".
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=topology.sh
. "$HERE/topology.sh"
BIN=$(readlink -f "${BIN:?set BIN to the iptables-docker binary}")
export BIN

dk_enter_sandbox "$@" # --- everything below runs inside private namespaces ---

cleanup() {
    local rc=$?
    set +e
    topo_teardown 2>/dev/null
    dk_cleanup "$rc"
    return "$rc"
}
trap cleanup EXIT

dk_sandbox_init
mkdir -p /run/iptd /run/work
export IPTABLES_DOCKER_STATE_DIR=/run/iptd
if [[ -d /etc/iptables-docker ]]; then mount -t tmpfs iptd-etc /etc/iptables-docker; fi
# shellcheck disable=SC2034 # read by topology.sh when the hosts come up
TOPO_IPV6=0 # Debian's docker.io (20.10) programs no ip6tables DOCKER-USER; IPv6 is covered
# by tests/packets/published-ports.sh
C1=$TOPO_CLIENT_IP1 C2=$TOPO_CLIENT_IP2

check() { topo_check "$@"; }
expect() { topo_expect "$@" || true; }
egress() { # HTTP to "the internet" from the web container's network namespace (host curl:
    # the static busybox's wget crashes resolving in a FROM-scratch image)
    nsenter -t "$(docker inspect -f '{{.State.Pid}}' web)" -n \
        curl -s --connect-timeout 2 -m 3 "http://$C1:9000/" 2>/dev/null | grep -q iptd-ok
}
jump_first() { iptables-legacy -S FORWARD | sed -n 2p | grep -qx -- "-A FORWARD -j DOCKER-USER"; }
policy_in_sync() { "$BIN" --config /run/work/config.toml status > /dev/null; }

dk_start
dk_build_image "$DK_IMAGE"
dk_network_create iptd-net 198.18.1.0/24
dk_run_httpd web 8080
dk_run_httpd app 8081 iptd-net
topo_setup
ip route add default via 198.51.100.254 dev "$TOPO_HOST_IF" onlink # the external interface
mkdir -p /run/work/www && echo iptd-ok > /run/work/www/index.html
topo_exec busybox httpd -p 9000 -h /run/work/www # "the internet", for egress (daemonizes)
busybox httpd -p 22 -h /run/work/www             # the host's "ssh"

cat > /run/work/config.toml <<'CONFIG'
ipv6 = false
[ssh]
allow_from = ["198.51.100.10/32"]
[containers]
restrict = true
[[containers.allow]]
description = "web"
port = 8080
from = ["198.51.100.10/32"]
CONFIG

echo "== Docker alone: every published port is open to everyone"
expect open "8080 (default bridge) from the denied source" "$C2" 8080
expect open "8081 (user network) from the denied source" "$C2" 8081

check open "container egress" egress

echo "== after start"
"$BIN" --config /run/work/config.toml start
expect open "8080 from the allowed source" "$C1" 8080
expect blocked "8080 from the denied source" "$C2" 8080
expect blocked "8081 (not allowed) from the allowed source" "$C1" 8081
expect blocked "8081 (not allowed) from the denied source" "$C2" 8081
expect open "ssh from the allowed source" "$C1" 22
expect blocked "ssh from the denied source" "$C2" 22
check open "container egress (replies come back)" egress
check open "FORWARD -j DOCKER-USER first" jump_first

echo "== dockerd restarted: Docker re-creates its chains"
dk_restart
dk_wait_container_port web 80
dk_wait_container_port app 80
expect open "8080 from the allowed source" "$C1" 8080
expect blocked "8080 from the denied source" "$C2" 8080
expect blocked "8081 from the denied source" "$C2" 8081
check open "FORWARD -j DOCKER-USER first" jump_first
check open "status: the running ruleset still matches the policy" policy_in_sync

echo "== a container published after start is filtered as well"
dk_run_httpd late 8082
expect blocked "8082 (new) from the denied source" "$C2" 8082
"$BIN" --config /run/work/config.toml reload
expect blocked "8082 after reload from the denied source" "$C2" 8082
expect open "8080 after reload from the allowed source" "$C1" 8080

echo "== after stop: Docker's defaults are back"
"$BIN" --config /run/work/config.toml stop
expect open "8080 from the denied source" "$C2" 8080
expect open "8081 from the denied source" "$C2" 8081
expect open "8082 from the denied source" "$C2" 8082
check open "container egress" egress

echo "dockerd: $TOPO_PASS passed, $TOPO_FAIL failed"
[[ $TOPO_FAIL -eq 0 ]]
