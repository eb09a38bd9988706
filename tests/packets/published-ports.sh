#!/usr/bin/env bash
# tests/packets/published-ports.sh — what the policy lets through, proven with real packets.
#
#   sudo BIN=target/debug/iptables-docker bash tests/packets/published-ports.sh
#
# Runs itself in private namespaces (tests/docker/lib.sh: dk_enter_sandbox), which play a
# Docker host: a bridge named docker0 (198.18.0.1/24, 2001:db8:d0c::1/64) with two
# "container" namespaces behind it, Docker-29-style rules (DNAT 8080->ctr1:80/tcp,
# 8053->ctr1:53/udp, DOCKER-FORWARD, raw guards, MASQUERADE) in iptables and ip6tables, host
# services on 22 and 5432, and an external client namespace with an allowed (.10, ::10)
# and a denied (.20, ::20) source address. The config allows ssh and 8080/8053 from the
# allowed addresses only. Checks before start (Docker alone), after start, after stop.
# Closing line: "packets: N passed, N failed".
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh" # enters private namespaces; serve, CONTAINERS, docker29_rules
CONTAINERS=(ctr1 ctr2)

C1=$TOPO_CLIENT_IP1 C2=$TOPO_CLIENT_IP2 C1_6=$TOPO_CLIENT_IP6_1 C2_6=$TOPO_CLIENT_IP6_2
H=$TOPO_HOST_IP

# ---- the "Docker host" ---------------------------------------------------------------------
topo_setup
ip route add default via 198.51.100.254 dev "$TOPO_HOST_IF" onlink # external iface = default route
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip link add docker0 type bridge
ip addr add 198.18.0.1/24 dev docker0
ip addr add 2001:db8:d0c::1/64 dev docker0 nodad
ip link set docker0 up
for i in 1 2; do
    ip netns add "ctr$i"
    ip link add "veth$i" type veth peer name eth0 netns "ctr$i"
    ip link set "veth$i" master docker0 up
    ip netns exec "ctr$i" sh -c "ip link set lo up; ip link set eth0 up
        ip addr add 198.18.0.$((i + 1))/24 dev eth0; ip addr add 2001:db8:d0c::$((i + 1))/64 dev eth0 nodad
        ip route add default via 198.18.0.1; ip -6 route add default via 2001:db8:d0c::1"
done
mkdir -p /run/work/www
echo iptd-ok > /run/work/www/index.html
serve ip netns exec ctr1 busybox httpd -f -p 80 -h /run/work/www
serve ip netns exec ctr2 busybox httpd -f -p 80 -h /run/work/www
serve busybox httpd -f -p 22 -h /run/work/www   # "ssh"
serve busybox httpd -f -p 5432 -h /run/work/www # another host service
serve topo_exec busybox httpd -f -p 9000 -h /run/work/www # "the internet", for egress
serve ip netns exec ctr1 python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 53))
while True:
    data, peer = s.recvfrom(512); s.sendto(b"iptd-ok " + data, peer)'

docker_rules() { docker29_rules "$1" "tcp 8080 80" "udp 8053 53"; }
docker_rules 4 | iptables-legacy-restore
docker_rules 6 | ip6tables-legacy-restore

cat > /run/work/config.toml <<'EOF'
[ssh]
port = 22
allow_from = ["198.51.100.10", "2001:db8:c::10"]

[containers]
restrict = true
[[containers.allow]]
description = "web"
port = 8080
from = ["198.51.100.10/32", "2001:db8:c::10/128"]
[[containers.allow]]
description = "dns"
proto = "udp"
port = 8053
from = ["198.51.100.10/32"]
EOF

# ---- probes ----------------------------------------------------------------------------------
udp_probe() { # SRC DST PORT: 0 when an answer comes back
    topo_exec timeout 4 python3 - "$@" <<'PY'
import socket, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.bind((src, 0))
s.sendto(b"ping", (dst, port))
try:
    sys.exit(0 if s.recvfrom(512)[0].startswith(b"iptd-ok") else 1)
except OSError:
    sys.exit(1)
PY
}
from_ctr1() { # DST PORT: HTTP from inside container 1
    ip netns exec ctr1 timeout 4 curl -s --connect-timeout 2 -m 3 "http://$1:$2/" 2>/dev/null | grep -q iptd-ok
}
jump_first() { iptables-legacy -S FORWARD | sed -n 2p | grep -qx -- "-A FORWARD -j DOCKER-USER"; }
no_rule_of_ours() { ! iptables-legacy -S DOCKER-USER | grep -q iptables-docker; }

listening() { # NETNS-COMMAND PROTO PORT: wait until a listener is up
    local i
    for i in $(seq 50); do
        "$1" ss -Hln"$2" "sport = :$3" | grep -q . && return 0
        sleep 0.1
    done
    echo "listener $2/$3 did not come up" >&2
    return 1
}
in_ctr1() { ip netns exec ctr1 "$@"; }
in_ctr2() { ip netns exec ctr2 "$@"; }
in_host() { "$@"; }
listening in_ctr1 t 80 && listening in_ctr2 t 80 && listening in_ctr1 u 53
listening in_host t 22 && listening in_host t 5432 && listening topo_exec t 9000

echo "== Docker alone (no iptables-docker): everything published is open to all"
expect open "published 8080 from the denied source" "$C2" 8080
expect open "host service 5432 from the denied source" "$C2" 5432
check open "published 8053/udp from the denied source" udp_probe "$C2" "$H" 8053

echo "== after start"
"$BIN" --config /run/work/config.toml start
expect open "published 8080 from the allowed source" "$C1" 8080
expect blocked "published 8080 from the denied source" "$C2" 8080
expect open "ssh from the allowed source" "$C1" 22
expect blocked "ssh from the denied source" "$C2" 22
expect blocked "host service 5432 from the allowed source" "$C1" 5432
check open "published 8053/udp from the allowed source" udp_probe "$C1" "$H" 8053
check blocked "published 8053/udp from the denied source" udp_probe "$C2" "$H" 8053
check open "container egress to the internet (replies come back)" from_ctr1 "$C1" 9000
check open "container to container on the same bridge" from_ctr1 198.18.0.3 80
check open "container to an allowed host service (ssh on docker0)" from_ctr1 198.18.0.1 22
expect open "IPv6 published 8080 from the allowed source" "$C1_6" 8080
expect blocked "IPv6 published 8080 from the denied source" "$C2_6" 8080
expect open "IPv6 ssh from the allowed source" "$C1_6" 22
expect blocked "IPv6 ssh from the denied source" "$C2_6" 22
check open "FORWARD -j DOCKER-USER is FORWARD's first rule" jump_first

echo "== a second start changes nothing and keeps enforcing"
again=$("$BIN" --config /run/work/config.toml start)
check open "the second start wrote nothing" grep -q "IPv4: .*nothing to change" <<<"$again"
expect blocked "published 8080 from the denied source" "$C2" 8080

echo "== after stop: Docker's defaults are back"
"$BIN" --config /run/work/config.toml stop
expect open "published 8080 from the denied source" "$C2" 8080
expect open "host service 5432 from the denied source" "$C2" 5432
check open "published 8053/udp from the denied source" udp_probe "$C2" "$H" 8053
expect open "IPv6 published 8080 from the denied source" "$C2_6" 8080
check open "DOCKER-USER holds no rule of ours" no_rule_of_ours

# ---- failing closed (issue 17) ---------------------------------------------------------------
boot() { # the kernel's tables as at a boot, Docker's rules loaded again
    docker_rules 4 | iptables-legacy-restore
    docker_rules 6 | ip6tables-legacy-restore
}
sed 's/^port = 22$/port = 22x/' /run/work/config.toml > /run/work/broken.toml # a one-character typo
start_broken() { # runs start with the broken config; its exit code and stderr land in /run/work
    set +e
    "$BIN" --config /run/work/broken.toml start > /run/work/fc.out 2> /run/work/fc.err
    echo $? > /run/work/fc.rc
    set -e
}
failed_saying() { [[ $(cat /run/work/fc.rc) != 0 ]] && grep -q "$1" /run/work/fc.err; }

echo "== a boot with a broken config: start fails closed on the last good policy"
"$BIN" --config /run/work/config.toml start > /dev/null # the last good policy
boot
start_broken
check open "start failed, naming the file and line" failed_saying "broken.toml:2:"
sed 's/^/  | /' /run/work/fc.err
check open "it says the last good policy is active" failed_saying "the last good policy (applied"
expect open "ssh from the allowed source" "$C1" 22
expect blocked "ssh from the denied source" "$C2" 22
expect blocked "host service 5432 from the allowed source" "$C1" 5432
expect open "published 8080 from the allowed source (Docker's rules kept)" "$C1" 8080
expect blocked "published 8080 from the denied source" "$C2" 8080
expect open "IPv6 ssh from the allowed source" "$C1_6" 22
expect blocked "IPv6 ssh from the denied source" "$C2_6" 22
check open "Docker's DNAT rule is kept" grep -q -- "--dport 8080 -j DNAT" <(iptables-legacy -t nat -S DOCKER)
check open "status says DEGRADED and why" grep -q "DEGRADED" <("$BIN" --config /run/work/broken.toml status 2>&1 || true)
start_broken
check open "a second start keeps the running policy and says so" failed_saying "the running policy is kept"
"$BIN" --config /run/work/config.toml reload > /dev/null
check blocked "after the fix and a reload, status is no longer DEGRADED" grep -q "DEGRADED" <("$BIN" --config /run/work/config.toml status 2>&1)

echo "== a boot with a broken config and no last good policy: the minimal one"
rm -f /run/iptd/last-good-*
boot
start_broken
check open "start failed, naming the minimal policy" failed_saying "minimal fail-closed policy"
expect open "ssh (port 22) from any source" "$C2" 22
expect blocked "host service 5432 from the allowed source" "$C1" 5432
expect open "published 8080: Docker's rules are kept as they are" "$C2" 8080
"$BIN" --config /run/work/config.toml stop > /dev/null

echo "== the lockout guard reads the host's established ssh connections"
topo_exec python3 -c '
import socket, sys, time
s = socket.create_connection((sys.argv[2], 22), source_address=(sys.argv[1], 0))
time.sleep(60)' "$C2" "$H" &
PIDS+=($!)
for _ in $(seq 50); do
    ss -Htn state established "( sport = :22 )" | grep -q "$C2" && break
    sleep 0.1
done
guard_refuses() { # reload without --force: refused, nothing applied
    local rc=0
    "$BIN" --config /run/work/config.toml reload > /dev/null 2> /run/work/guard.err || rc=$?
    [[ $rc != 0 ]] && grep -q "would not accept new SSH connections from $C2 (port 22)" /run/work/guard.err
}
check open "plan warns about the session from the denied source" grep -q "warning: this policy would not accept new SSH connections from $C2" <("$BIN" --config /run/work/config.toml plan 2>&1 > /dev/null)
check open "reload is refused (no SSH_CONNECTION: as under systemctl reload)" guard_refuses
expect open "nothing was applied: 5432 still open" "$C2" 5432
"$BIN" --config /run/work/config.toml reload --force > /dev/null
expect blocked "reload --force applied the policy" "$C2" 5432
"$BIN" --config /run/work/config.toml stop > /dev/null

checks_done
