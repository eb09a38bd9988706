#!/usr/bin/env bash
# tests/packets/neighbours.sh — the host's other rule owners, proven with real packets.
#
#   sudo BIN=target/debug/iptables-docker bash tests/packets/neighbours.sh
#
# Runs itself in private namespaces (tests/packets/lib.sh). The sandbox plays
# the host, the topology's client namespace (198.51.100.0/24, 2001:db8:c::/64 on iptd-h) the
# outside. Three scenes, each from a clean firewall:
#   1. fail2ban (../shared/cases/02): Docker 28 rules for a container 172.18.0.2 on bridge
#      br-3f1e2a9c7d10 publishing 80/443, fail2ban's f2b-sshd (from INPUT) and f2b-odoo (from
#      DOCKER-USER) with bans; config = the case's, external interface iptd-h. Bans hold
#      after start (banned sources refused, others pass), and a ban added later holds too.
#   2. a VPN server (../shared/cases/06, Docker <= 27 swarm rules, FORWARD policy DROP): a
#      client namespace behind "wgnet1" (a veth standing in for the WireGuard interface,
#      192.0.2.0/24) reaches the outside, masqueraded, with [[forward]] and [[source_nat]]
#      in the config; after start, after Docker rewrites its rules (a daemon restart), and
#      after the next start. With the case's own config it is cut off (the documented gap).
#   3. an IPv6 host (built-in config): a DHCPv6 reply (fe80:: port 547 -> port 546) reaches
#      a listener on udp/546, an MLDv2 report (ICMPv6 143) reaches the host, a UDP port not
#      listed and ICMPv6 type 139 do not, nor a "reply" to 546 from a global address.
#   4. Docker bridges towards the host ([bridges] to_host): with "all" a container on docker0
#      reaches every host service; with "limited" only DNS on the bridge address and the
#      listed port 9100, not 5432.
# Closing line: "neighbours: N passed, N failed".
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CASES=$(readlink -f "$HERE/../../../shared/cases")
export CASES
. "$HERE/lib.sh" # enters private namespaces; serve, CONTAINERS
CONTAINERS=(nbctr vpnc nbctr4)

# A clean firewall and state between scenes: every table of both families emptied.
reset_firewall() {
    local t
    for ipt in iptables-legacy ip6tables-legacy; do
        for t in raw mangle nat filter; do
            $ipt -t "$t" -F
            $ipt -t "$t" -X
        done
        $ipt -P INPUT ACCEPT
        $ipt -P FORWARD ACCEPT
    done
    rm -rf /run/iptd/*
}

topo_setup
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
mkdir -p /run/work/www
echo iptd-ok > /run/work/www/index.html
H=$TOPO_HOST_IP

echo "== 1. fail2ban bans on a published port and on ssh (case 02)"
topo_exec ip addr add 198.51.100.7/24 dev "$TOPO_CLIENT_IF"
topo_exec ip addr add 198.51.100.23/24 dev "$TOPO_CLIENT_IF"
topo_exec ip addr add 203.0.113.50/32 dev "$TOPO_CLIENT_IF"
ip route add 203.0.113.50/32 dev "$TOPO_HOST_IF"
ip link add br-3f1e2a9c7d10 type bridge
ip addr add 172.18.0.1/16 dev br-3f1e2a9c7d10
ip link set br-3f1e2a9c7d10 up
ip netns add nbctr
ip link add vnbctr type veth peer name eth0 netns nbctr
ip link set vnbctr master br-3f1e2a9c7d10 up
ip netns exec nbctr sh -c "ip link set lo up; ip link set eth0 up
    ip addr add 172.18.0.2/16 dev eth0; ip route add default via 172.18.0.1"
serve ip netns exec nbctr busybox httpd -f -p 80 -h /run/work/www
serve ip netns exec nbctr busybox httpd -f -p 443 -h /run/work/www
serve busybox httpd -f -p 22 -h /run/work/www   # "sshd"
serve busybox httpd -f -p 8080 -h /run/work/www # a host service nobody published
iptables-legacy-restore < "$CASES/02-fail2ban-docker-user/v4.rules"
sed 's/"eth0"/"iptd-h"/' "$CASES/02-fail2ban-docker-user/config.toml" > /run/work/f2b.toml
sleep 0.3

expect blocked "Docker + fail2ban alone: banned source to :443" 203.0.113.50 443
expect open "Docker + fail2ban alone: other source to :443" 198.51.100.7 443
"$BIN" --config /run/work/f2b.toml start
expect blocked "banned 203.0.113.50 to published 443" 203.0.113.50 443
expect blocked "banned 203.0.113.50 to published 80" 203.0.113.50 80
expect open "198.51.100.7 to published 443" 198.51.100.7 443
expect open "198.51.100.7 to published 80" 198.51.100.7 80
expect blocked "ssh-banned 198.51.100.23 to :22" 198.51.100.23 22
expect open "198.51.100.7 to :22" 198.51.100.7 22
expect blocked "198.51.100.7 to :8080 (a host service, not allowed)" 198.51.100.7 8080
iptables-legacy -I f2b-odoo 1 -s 198.51.100.7/32 -j REJECT --reject-with icmp-port-unreachable
expect blocked "a ban fail2ban adds after start holds" 198.51.100.7 443
expect open "an unbanned source still passes" "$TOPO_CLIENT_IP1" 443
iptables-legacy -D f2b-odoo -s 198.51.100.7/32 -j REJECT --reject-with icmp-port-unreachable
"$BIN" --config /run/work/f2b.toml stop
expect blocked "after stop: the ban still holds (fail2ban's rules untouched)" 203.0.113.50 443
ip netns del nbctr
ip link del br-3f1e2a9c7d10
reset_firewall

echo "== 2. a WireGuard server's clients reach the outside, masqueraded (case 06)"
ip netns add vpnc
ip link add wgnet1 type veth peer name wg0 netns vpnc
ip addr add 192.0.2.1/24 dev wgnet1
ip link set wgnet1 up
ip netns exec vpnc sh -c "ip link set lo up; ip link set wg0 up
    ip addr add 192.0.2.2/24 dev wg0; ip route add default via 192.0.2.1"
# "The internet": says who connected.
serve topo_exec python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000)); s.listen(8)
while True:
    c, peer = s.accept(); c.sendall(("iptd-ok " + peer[0] + "\n").encode()); c.close()'
sleep 0.3
# VPN_SEEN: the source address the outside saw for the VPN client ("" when unreachable).
vpn_seen() {
    ip netns exec vpnc timeout 4 python3 -c '
import socket
s = socket.create_connection(("198.51.100.10", 9000), timeout=2)
print(s.recv(64).decode().split()[1])' 2>/dev/null || true
}
masqueraded() { [[ $(vpn_seen) == "$H" ]]; }
iptables-legacy-restore < "$CASES/06-wireguard-vpn-on-swarm-host/v4.rules"
iptables-legacy -P FORWARD DROP # as Docker >= 28 (and 20.10 with ip_forward off) sets it
cp "$CASES/06-wireguard-vpn-on-swarm-host/config.toml" /run/work/gap.toml
"$BIN" --config /run/work/gap.toml start
check blocked "the case's own config: the VPN client is cut off (documented gap)" masqueraded
cat > /run/work/vpn.toml <<'EOF'
ipv6 = false
[ssh]
port = 22
[[allow]]
description = "wireguard"
proto = "udp"
port = 51820
[[forward]]
description = "wireguard clients out"
in = "wgnet1"
out = "iptd-h"
from = ["192.0.2.0/24"]
[[source_nat]]
description = "wireguard clients"
from = ["192.0.2.0/24"]
out = "iptd-h"
EOF
"$BIN" --config /run/work/vpn.toml start
check open "after start: the VPN client reaches the outside as $H" masqueraded
# Docker restarts: its chains flushed and refilled, its builtin-chain rules deleted and
# added again (after ours), the DOCKER-USER jump put back first, the way dockerd <= 27 does.
docker_rewrites() {
    local rule
    iptables-legacy -t nat -F DOCKER
    iptables-legacy -t nat -A DOCKER -i docker0 -j RETURN
    iptables-legacy -t nat -A DOCKER -i docker_gwbridge -j RETURN
    iptables-legacy -t nat -A DOCKER ! -i docker_gwbridge -p tcp -m tcp --dport 443 -j DNAT --to-destination 172.18.0.3:443
    for rule in "-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE" "-s 172.18.0.0/16 ! -o docker_gwbridge -j MASQUERADE"; do
        # shellcheck disable=SC2086
        iptables-legacy -t nat -D POSTROUTING $rule
        # shellcheck disable=SC2086
        iptables-legacy -t nat -A POSTROUTING $rule
    done
    for rule in "-o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT" "-o docker0 -j DOCKER" \
        "-i docker0 ! -o docker0 -j ACCEPT" "-i docker0 -o docker0 -j ACCEPT"; do
        # shellcheck disable=SC2086
        iptables-legacy -D FORWARD $rule
        # shellcheck disable=SC2086
        iptables-legacy -A FORWARD $rule
    done
    iptables-legacy -D FORWARD -j DOCKER-USER
    iptables-legacy -I FORWARD -j DOCKER-USER
}
docker_rewrites
check open "after Docker rewrote its rules: still out, as $H" masqueraded
"$BIN" --config /run/work/vpn.toml start
check open "after the next start: still out, as $H" masqueraded
docker_kept() { iptables-legacy-save | grep -qx -- "-A POSTROUTING -s 172.18.0.0/16 ! -o docker_gwbridge -j MASQUERADE"; }
check open "Docker's masquerade kept" docker_kept
"$BIN" --config /run/work/vpn.toml stop
no_vpn_rules() { ! iptables-legacy-save | grep -q iptables-docker; }
check open "after stop: no rule of ours left" no_vpn_rules
ip netns del vpnc
reset_firewall

echo "== 3. an IPv6 host: DHCPv6 replies and MLD reach it (built-in config)"
ip addr add fe80::1/64 dev "$TOPO_HOST_IF" nodad
topo_exec ip addr add fe80::2/64 dev "$TOPO_CLIENT_IF" nodad
: > /run/work/got
# Host listeners: udp/546 (the DHCPv6 client port), udp/5555 (not listed), every ICMPv6
# message delivered (a raw socket sees what INPUT accepted). Each line: what, payload.
serve python3 -u -c '
import socket, threading
out = open("/run/work/got", "a", buffering=1)
def udp(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::", port))
    while True:
        data, peer = s.recvfrom(512); out.write("udp%d %s\n" % (port, data.decode()))
for port in (546, 5555):
    threading.Thread(target=udp, args=(port,), daemon=True).start()
r = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
while True:
    data, peer = r.recvfrom(512)
    out.write("icmp6 %d %s\n" % (data[0], data[8:].decode(errors="replace")))'
sleep 0.5
N=0
# udp_from SRC SPORT DST DPORT: send a tagged datagram from the client; 0 when it arrived.
udp_from() {
    N=$((N + 1))
    local tag="t$N"
    topo_exec python3 -c '
import socket, sys
src, sport, dst, dport, tag = sys.argv[1:]
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((src, int(sport), 0, socket.if_nametoindex("iptd-c")))
s.sendto(tag.encode(), (dst, int(dport), 0, socket.if_nametoindex("iptd-c")))' "$1" "$2" "$3" "$4" "$tag"
    sleep 0.3
    grep -q " $tag\$" /run/work/got
}
# icmp6_from TYPE: an ICMPv6 message of TYPE from fe80::2 to fe80::1, hop limit 1 (as MLD
# is sent); 0 when the host received it.
icmp6_from() {
    N=$((N + 1))
    local tag="t$N"
    topo_exec python3 -c '
import socket, struct, sys
kind, tag = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 1)
s.bind(("fe80::2", 0, 0, socket.if_nametoindex("iptd-c")))
# type, code, checksum (the kernel fills it in), reserved, number of records (0), tag
msg = struct.pack("!BBHHH", kind, 0, 0, 0, 0) + tag.encode()
s.sendto(msg, ("fe80::1", 0, 0, socket.if_nametoindex("iptd-c")))' "$1" "$tag"
    sleep 0.3
    grep -q "^icmp6 $1 $tag\$" /run/work/got
}
dhcp_reply() { udp_from fe80::2 547 fe80::1 546; }
unlisted_udp() { udp_from fe80::2 547 fe80::1 5555; }
global_reply() { udp_from "$TOPO_CLIENT_IP6_1" 547 "$TOPO_HOST_IP6" 546; }
mld2_report() { icmp6_from 143; }
mld_query() { icmp6_from 130; }
node_info() { icmp6_from 139; }
echo '' > /run/work/empty.toml
check open "no firewall: a DHCPv6 reply reaches udp/546" dhcp_reply
check open "no firewall: udp/5555 is reachable" unlisted_udp
check open "no firewall: ICMPv6 139 reaches the host" node_info
"$BIN" --config /run/work/empty.toml start
check open "a DHCPv6 reply (fe80:: 547 -> 546) reaches the listener on udp/546" dhcp_reply
check open "an MLDv2 report (ICMPv6 143) reaches the host" mld2_report
check open "an MLD query (ICMPv6 130) reaches the host" mld_query
check blocked "an unlisted UDP port (5555) does not" unlisted_udp
check blocked "a 'reply' to 546 from a global address does not" global_reply
check blocked "an unlisted ICMPv6 type (139) does not" node_info
"$BIN" --config /run/work/empty.toml stop
check open "after stop: udp/5555 is reachable again" unlisted_udp

reset_firewall

echo "== 4. Docker bridges towards the host: all (the default) or limited"
ip link add docker0 type bridge
ip addr add 198.18.0.1/24 dev docker0
ip link set docker0 up
ip netns add nbctr4
ip link add vnbctr4 type veth peer name eth0 netns nbctr4
ip link set vnbctr4 master docker0 up
ip netns exec nbctr4 sh -c "ip link set lo up; ip link set eth0 up
    ip addr add 198.18.0.2/24 dev eth0; ip route add default via 198.18.0.1"
serve busybox httpd -f -p 5432 -h /run/work/www # a database on the host
serve busybox httpd -f -p 9100 -h /run/work/www # an exporter containers may scrape
serve python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.18.0.1", 53))
while True:
    data, peer = s.recvfrom(512); s.sendto(b"iptd-ok " + data, peer)'
sleep 0.3
from_ctr() { ip netns exec nbctr4 timeout 4 curl -s --connect-timeout 2 -m 3 "http://198.18.0.1:$1/" 2>/dev/null | grep -q iptd-ok; }
dns_from_ctr() {
    ip netns exec nbctr4 timeout 4 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(b"q", ("198.18.0.1", 53))
sys.exit(0 if s.recvfrom(64)[0].startswith(b"iptd-ok") else 1)' 2>/dev/null
}
printf 'ipv6 = false\n[ssh]\nallow_from = ["198.51.100.10"]\n' > /run/work/all.toml
cp /run/work/all.toml /run/work/limited.toml
printf '[bridges]\nto_host = "limited"\n[[bridges.allow]]\nport = 9100\n' >> /run/work/limited.toml
"$BIN" --config /run/work/all.toml start
check open "to_host = all: a container reaches host:5432" from_ctr 5432
check open "to_host = all: a container reaches host:9100" from_ctr 9100
"$BIN" --config /run/work/limited.toml start
check blocked "to_host = limited: a container does not reach host:5432" from_ctr 5432
check open "to_host = limited: a container reaches the listed host:9100" from_ctr 9100
check open "to_host = limited: a container reaches DNS on the bridge address" dns_from_ctr
expect blocked "to_host = limited: the outside does not reach host:9100" "$TOPO_CLIENT_IP1" 9100
"$BIN" --config /run/work/limited.toml stop
check open "after stop: a container reaches host:5432 again" from_ctr 5432

checks_done
