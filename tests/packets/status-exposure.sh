#!/usr/bin/env bash
# tests/packets/status-exposure.sh — every entry of `status --json` checked with real packets.
#
#   sudo BIN=target/debug/iptables-docker bash tests/packets/status-exposure.sh
#
# Runs itself in private namespaces (tests/docker/lib.sh: dk_enter_sandbox), which play a
# Docker host: docker0 with one container (ctr1, HTTP on 80) and Docker-29-style rules that
# publish it three times, IPv4 and IPv6: host port 8080 -> 80 (allowed from one client
# source only), 8081 -> 80 (the same container port, allowed from everyone) and 8082 -> 80 on
# 127.0.0.1 only (with a host listener standing in for docker-proxy). Host services: ssh (22,
# one source), 5432 (everyone), and 6000, which no rule opens. The client has two source
# addresses per family (tests/docker/topology.sh).
#
# For each state — after start; after an admin adds a DOCKER-USER drop by hand; after stop —
# `status --json` is read, and for every client source and every port that has a listener or
# a DNAT (so every entry of the report and the ports nothing lists), a real TCP connection must
# succeed exactly where the report says the source may connect; ping likewise. Entries the
# probe set does not cover fail the run. Closing line: "status: N passed, N failed".
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh" # enters private namespaces; serve, CONTAINERS, docker29_rules
CONTAINERS=(ctr1)

C1=$TOPO_CLIENT_IP1 C2=$TOPO_CLIENT_IP2 C1_6=$TOPO_CLIENT_IP6_1 C2_6=$TOPO_CLIENT_IP6_2
H=$TOPO_HOST_IP H6=$TOPO_HOST_IP6

topo_setup
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip link add docker0 type bridge
ip addr add 198.18.0.1/24 dev docker0
ip addr add 2001:db8:d0c::1/64 dev docker0 nodad
ip link set docker0 up
ip netns add ctr1
ip link add veth1 type veth peer name eth0 netns ctr1
ip link set veth1 master docker0 up
ip netns exec ctr1 sh -c "ip link set lo up; ip link set eth0 up
    ip addr add 198.18.0.2/24 dev eth0; ip addr add 2001:db8:d0c::2/64 dev eth0 nodad
    ip route add default via 198.18.0.1; ip -6 route add default via 2001:db8:d0c::1"
mkdir -p /run/work/www
echo iptd-ok > /run/work/www/index.html
serve ip netns exec ctr1 busybox httpd -f -p 80 -h /run/work/www
for port in 22 5432 6000; do serve busybox httpd -f -p "$port" -h /run/work/www; done
serve busybox httpd -f -p 127.0.0.1:8082 -h /run/work/www # docker-proxy's loopback listener

docker_rules() { docker29_rules "$1" "tcp 8080 80" "tcp 8081 80" "tcp 8082 80 loopback"; }
docker_rules 4 | iptables-legacy-restore
docker_rules 6 | ip6tables-legacy-restore

cat > /run/work/config.toml <<EOF
[ssh]
allow_from = ["$C1", "$C1_6"]
[[allow]]
description = "postgres"
port = 5432
from = ["0.0.0.0/0", "::/0"]
[containers]
restrict = true
[[containers.allow]]
description = "app, one source"
port = 8080
from = ["$C1/32", "$C1_6/128"]
[[containers.allow]]
description = "app, everyone"
port = 8081
from = ["0.0.0.0/0", "::/0"]
EOF

# expectations JSON FAMILY SRC...: one line per probe, "open|blocked PORT SRC WHY", from the
# report; "missing WHAT" for an entry no probe covers.
expectations() {
    python3 - "$@" <<'PY'
import ipaddress, json, sys
doc, family, srcs = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3:]
f = next(x for x in doc["families"] if x["family"] == family)
probed = [22, 5432, 6000, 8080, 8081, 8082]
def may(reach, src):
    ip = ipaddress.ip_address(src)
    inside = lambda nets: any(ip in ipaddress.ip_network(n, strict=False) for n in nets)
    k = reach["kind"]
    if k == "everyone":
        return not inside(reach["except"])
    if k == "sources":
        return inside(reach["sources"]) and not inside(reach["except"])
    return False
entries = {}
for s in f["services"]:
    if s["proto"] == "tcp" and s["port"] and ":" not in s["port"]:
        entries[int(s["port"])] = (s["reach"], "service " + s["description"])
    else:
        print("missing service", s["proto"], s["port"])
for p in f["published"]:
    if p["proto"] != "tcp":
        print("missing published", p["proto"], p["host_port"])
        continue
    entries[p["host_port"]] = (p["reach"], "published -> %s:%d" % (p["container_address"], p["container_port"]))
for port in entries:
    if port not in probed:
        print("missing port", port)
for port in probed:
    reach, why = entries.get(port, (f["other_ports"], "not listed (every other port)"))
    for src in srcs:
        print("open" if may(reach, src) else "blocked", port, src, "%s: %s" % (why, reach["kind"]))
for src in srcs:
    print("ping" if may(f["ping"], src) else "noping", 0, src, "ping: " + f["ping"]["kind"])
PY
}

ping_from() { topo_exec busybox ping -c1 -W1 -I "$1" "$2" >/dev/null 2>&1; }

# verify LABEL: read status --json and probe every expectation, IPv4 and IPv6.
verify() {
    local label=$1 json=/run/work/status.json rc=0 verdict port src why dst
    "$BIN" --config /run/work/config.toml status --json >"$json" || rc=$?
    echo "== $label (status exit $rc, state $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$json"))"
    for family in ipv4 ipv6; do
        if [[ $family == ipv4 ]]; then dst=$H; set -- "$C1" "$C2"; else dst=$H6; set -- "$C1_6" "$C2_6"; fi
        while read -r verdict port src why; do
            case $verdict in
                missing) check open "$label: entry covered by a probe ($port $src $why)" false ;;
                ping) check open "$label: $why, from $src" ping_from "$src" "$dst" ;;
                noping) check blocked "$label: $why, from $src" ping_from "$src" "$dst" ;;
                *) check "$verdict" "$label: $family $port from $src ($why)" topo_tcp "$src" "$port" "$dst" ;;
            esac
        done < <(expectations "$json" "$family" "$@")
    done
    STATUS_RC=$rc
}

for port in 22 5432 6000; do
    for i in $(seq 50); do ss -Hlnt "sport = :$port" | grep -q . && break; sleep 0.1; done
done

"$BIN" --config /run/work/config.toml start
verify "after start"
check open "after start: status exits 0 (on)" test "$STATUS_RC" -eq 0
text=$("$BIN" --config /run/work/config.toml status || true)
check open "after start: the text report says ON" grep -q "^iptables-docker: ON: " <<<"$text"
check open "  and lists 127.0.0.1:8082 as this host only" grep -q "tcp 127.0.0.1:8082 -> 198.18.0.2:80 on docker0: this host only" <<<"$text"
check open "the loopback-published port answers on the host itself" \
    sh -c 'busybox wget -q -O - http://127.0.0.1:8082/ | grep -q iptd-ok'

iptables-legacy -I DOCKER-USER -s "$C1/32" -p tcp -m conntrack --ctorigdstport 8081 -j DROP
ip6tables-legacy -I DOCKER-USER -s "$C1_6/128" -p tcp -m conntrack --ctorigdstport 8081 -j DROP
verify "after an admin's DOCKER-USER drop"
check open "  status exits 154 (drift)" test "$STATUS_RC" -eq 154
check open "  the report shows the drop as an exception for 8081" python3 -c '
import json, sys
f = json.load(open("/run/work/status.json"))["families"][0]
p = next(p for p in f["published"] if p["host_port"] == 8081)
sys.exit(0 if p["reach"]["except"] == [sys.argv[1] + "/32"] else 1)' "$C1"

"$BIN" --config /run/work/config.toml stop
verify "after stop"
check open "  status exits 3 (off)" test "$STATUS_RC" -eq 3
text=$("$BIN" --config /run/work/config.toml status || true)
check open "  the text report says the host is open" grep -q "^iptables-docker: OFF: the host is open" <<<"$text"

checks_done
