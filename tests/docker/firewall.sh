#!/usr/bin/env bash
# tests/docker/firewall.sh — iptables-docker on a real dockerd in private namespaces, proven
# with real TCP connections from an external client namespace over veth.
#
#   sudo BIN=target/debug/iptables-docker bash tests/docker/firewall.sh DOCKER BACKEND
#
# DOCKER: bookworm (the machine's docker.io, 20.10) or sid (28.5, chrooted); BACKEND: legacy
# or nft, Docker's iptables and our --backend (story.sh).
# Containers: "web" on the default bridge (-p 8080:80), "app" on a user network (-p 8081:80),
# "named" on a bridge named iptd-br0 (-p 8083:80), "local" published on 127.0.0.1:8084 only,
# "other" on a second user network (nothing published). Stories, in order:
#   Docker alone → an admin rule in DOCKER-USER, then `start` without [containers] (the rule is
#   kept, by `stop` too) → `reload` with [containers] (the policy owns DOCKER-USER: allowed and
#   denied sources, the named bridge, 127.0.0.1, direct routing to a container address,
#   isolation between user networks, egress) → dockerd restarted → a container started after
#   start → `stop` (Docker's defaults back, nothing of ours left).
# Closing line: "dockerd: N passed, N failed".
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=story.sh
. "$HERE/story.sh"

ADMIN_RULE=(-s "$C2/32" -p tcp -m conntrack --ctorigdstport 8081 -j DROP)

# in_container NAME URL: HTTP from NAME's network namespace (host curl: the static busybox's
# wget crashes resolving in an imported image).
in_container() {
    nsenter -t "$(docker inspect -f '{{.State.Pid}}' "$1")" -n \
        curl -s --connect-timeout 2 -m 3 "$2" 2>/dev/null | has iptd-ok
}
egress() { in_container web "http://$C1:9000/"; }
isolated() { ! in_container app "http://$(dk_container_ip other)/"; }
local_port() { curl -s --connect-timeout 2 -m 3 http://127.0.0.1:8084/ | has iptd-ok; }
direct() { topo_http "$1" 80 "$(dk_container_ip web)"; } # routed to the container, no DNAT
jump_first() { $IPT -S FORWARD | sed -n 2p | has "-A FORWARD -j DOCKER-USER" -x; }
admin_rule_kept() { $IPT -S DOCKER-USER | has "-A DOCKER-USER ${ADMIN_RULE[*]}" -xF; }
in_sync() { ours containers status >/dev/null; }
# docker_user_default: what Docker leaves in DOCKER-USER (<= 28.2.1: -j RETURN; later: empty).
docker_user_default() { [[ "$($IPT -S DOCKER-USER | sed 1d)" =~ ^(-A DOCKER-USER -j RETURN)?$ ]]; }
nothing_of_ours() { ! { "$IPT-save"; ip6tables-"$B"-save; } | has iptables-docker; }
# docker_in_backend_only: Docker's rules are in iptables-$B, and none in the other backend.
docker_in_backend_only() {
    local stray
    stray=$("$OTHER-save" 2>/dev/null | grep DOCKER) || true
    [[ -z "$stray" ]] || printf '  in %s:\n%s\n' "$OTHER" "$stray"
    "$IPT-save" | has '-j DOCKER' && [[ -z "$stray" ]]
}
wait_ports() { local c; for c in web app named local other; do dk_wait_container_port "$c" 80; done; }

dk_network_create iptd-net 198.18.1.0/24
docker network create --subnet 198.18.2.0/24 -o com.docker.network.bridge.name=iptd-br0 iptd-named >/dev/null
dk_network_create iptd-other 198.18.3.0/24
dk_run_httpd web 8080
dk_run_httpd app 8081 iptd-net
dk_run_httpd named 8083 iptd-named
dk_run_httpd local 127.0.0.1:8084
docker run -d --name other --network iptd-other --restart unless-stopped --stop-timeout 1 \
    "$DK_IMAGE" httpd -f -p 80 -h /www >/dev/null
dk_wait_container_port other 80
ip route add default via 198.51.100.254 dev "$TOPO_HOST_IF" onlink # the external interface
mkdir -p /run/work/www && echo iptd-ok >/run/work/www/index.html
topo_exec busybox httpd -p 9000 -h /run/work/www # "the internet", for egress (daemonizes)
busybox httpd -p 22 -h /run/work/www             # the host's "ssh"

phase "Docker $DOCKER_VERSION alone, iptables-$B: every published port is open to everyone"
check open "Docker's rules are in iptables-$B, none in $OTHER" docker_in_backend_only
expect open "8080 (default bridge) from the denied source" "$C2" 8080
expect open "8081 (user network) from the denied source" "$C2" 8081
expect open "8083 (bridge iptd-br0) from the denied source" "$C2" 8083
expect blocked "8084 (published on 127.0.0.1 only) from outside" "$C1" 8084
check open "8084 on 127.0.0.1 from the host" local_port
check open "container egress" egress
check open "isolation between user networks (app -> other)" isolated
if direct "$C2"; then r=open; else r=blocked; fi
echo "OBSERVED: Docker $DOCKER_VERSION alone: direct routing to web's address:80 is $r"

phase "admin rule in DOCKER-USER, then start without [containers]"
$IPT -w -I DOCKER-USER "${ADMIN_RULE[@]}"
ours plain start
check open "the admin rule is kept in DOCKER-USER" admin_rule_kept
expect blocked "8081 from the source the admin rule drops" "$C2" 8081
expect open "8081 from the other source" "$C1" 8081
expect open "8080 from anyone (Docker's default)" "$C2" 8080
expect open "ssh from the allowed source" "$C1" 22
expect blocked "ssh from the denied source" "$C2" 22
check open "8084 on 127.0.0.1 from the host" local_port
check open "container egress (replies come back)" egress
ours plain stop
check open "stop without [containers] leaves the admin rule" admin_rule_kept
ours plain start

phase "reload with [containers]: the policy owns DOCKER-USER"
ours containers reload
check blocked "the admin rule is replaced by the policy's (README)" admin_rule_kept
story_containers() {
    expect open "8080 from the allowed source" "$C1" 8080
    expect blocked "8080 from the denied source" "$C2" 8080
    expect blocked "8081 (not allowed) from the allowed source" "$C1" 8081
    expect blocked "8081 (not allowed) from the denied source" "$C2" 8081
    expect open "8083 (bridge iptd-br0) from the allowed source" "$C1" 8083
    expect blocked "8083 (bridge iptd-br0) from the denied source" "$C2" 8083
    expect blocked "8084 (127.0.0.1) from outside" "$C1" 8084
    check open "8084 on 127.0.0.1 from the host" local_port
    check blocked "direct routing to web's address:80 from the allowed source" direct "$C1"
    check blocked "direct routing to web's address:80 from the denied source" direct "$C2"
    check open "isolation between user networks (app -> other)" isolated
    check open "container egress (replies come back)" egress
    expect open "ssh from the allowed source" "$C1" 22
    expect blocked "ssh from the denied source" "$C2" 22
    check open "FORWARD -j DOCKER-USER first" jump_first
    check open "status: the running ruleset matches the policy" in_sync
}
story_containers

phase "dockerd restarted: Docker re-creates its chains"
dk_restart
wait_ports
story_containers

phase "a container published after start is filtered as well"
dk_run_httpd late 8082
expect blocked "8082 (new) from the allowed source" "$C1" 8082
expect blocked "8082 (new) from the denied source" "$C2" 8082
ours containers reload
expect blocked "8082 after reload from the denied source" "$C2" 8082
expect open "8080 after reload from the allowed source" "$C1" 8080

phase "stop: Docker's defaults are back"
ours containers stop
expect open "8080 from the denied source" "$C2" 8080
expect open "8081 from the denied source" "$C2" 8081
expect open "8082 from the denied source" "$C2" 8082
expect open "8083 (bridge iptd-br0) from the denied source" "$C2" 8083
expect blocked "8084 (127.0.0.1) from outside" "$C1" 8084
check open "8084 on 127.0.0.1 from the host" local_port
check open "container egress" egress
check open "isolation between user networks (app -> other)" isolated
check open "DOCKER-USER holds Docker's default again (the admin rule went with [containers])" docker_user_default
check open "no rule of ours is left" nothing_of_ours
check open "Docker's rules are still in iptables-$B, none in $OTHER" docker_in_backend_only
if direct "$C2"; then r=open; else r=blocked; fi
echo "OBSERVED: Docker $DOCKER_VERSION after stop: direct routing to web's address:80 is $r"

phase "done: Docker $DOCKER_VERSION, iptables-$B"
checks_done
