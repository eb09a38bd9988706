#!/usr/bin/env bash
# tests/packets/rules.sh — the [[rule]] language and [outbound] proven with real packets.
#
#   sudo BIN=target/debug/iptables-docker bash tests/packets/rules.sh legacy|nft
#
# Runs itself in private namespaces (tests/packets/lib.sh); the sandbox plays the host, with
# the topology's client (198.51.100.10 and .20, 2001:db8:c::10 and ::20 on iptd-h) and a
# second neighbour on its own interface (iptd-h2: 203.0.113.0/24). The host answers
# "iptd-ok" on TCP and UDP ports 22 and 5001-5012 (both families), so a refusal can only
# come from the firewall. The binary drives the backend given (`--backend`).
#   1. actions: allow passes (from the listed source only), deny times out, reject is
#      refused at once (TCP reset; ICMP / ICMPv6 port unreachable for udp), the tcp-reset
#      line counted the SYN; a port list with proto any passes tcp and udp on each port
#      and range, not beside; limit: a source's 6th new connection within 30 s is cut,
#      another source still gets in; a deny rule before [ssh] blocks ssh from one source.
#      Each in IPv4 and IPv6; and `status --json` lists what these rules open, read back
#      from the kernel: the allowed, listed and limited ports, not the denied or rejected.
#   2. interface: a rule bound to iptd-h2 lets that neighbour in, not the client on iptd-h.
#   3. outbound deny, then reject: the host reaches the listed destination port, not an
#      unlisted port nor an unlisted address (timeout with deny, refused with reject);
#      inbound ssh still answers.
# Closing line: "rules: N passed, N failed".
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BACKEND=${1:?usage: rules.sh legacy|nft}
# shellcheck source=lib.sh
. "$HERE/lib.sh" # enters private namespaces; serve, CONTAINERS
CONTAINERS=(iptd-side)

C1=$TOPO_CLIENT_IP1 C2=$TOPO_CLIENT_IP2 C1_6=$TOPO_CLIENT_IP6_1 C2_6=$TOPO_CLIENT_IP6_2
H=$TOPO_HOST_IP H6=$TOPO_HOST_IP6
SIDE=203.0.113.10

# answer PORT...: answer "iptd-ok" on each TCP and UDP port, IPv4 and IPv6.
answer() {
    python3 -c '
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in map(int, sys.argv[1:]):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET6, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        if kind == socket.SOCK_STREAM:
            s.listen(64)
        sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s.type == socket.SOCK_STREAM:
            c, _ = s.accept(); c.sendall(b"iptd-ok\n"); c.close()
        else:
            data, peer = s.recvfrom(512); s.sendto(b"iptd-ok", peer)' "$@"
}

# probe SRC DST tcp|udp PORT: prints open (answered), refused (TCP reset or ICMP port
# unreachable: ECONNREFUSED), timeout, or the error's name.
probe() {
    timeout 6 python3 - "$@" <<'EOF' || echo "probe-failed"
import errno, socket, sys
src, dst, proto, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(2)
try:
    if src != "-":
        s.bind((src, 0))
    s.connect((dst, port))
    if proto == "udp":
        s.send(b"q")
    print("open" if s.recv(64).startswith(b"iptd-ok") else "other")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
}

# want WORD LABEL SRC DST PROTO PORT: a probe from the client namespace finds WORD.
want() {
    local word=$1 label=$2
    shift 2
    check open "$label: $word" got "$word" topo_exec bash -c "$(declare -f probe); probe $*"
}
# want_from_host WORD LABEL DST PROTO PORT: the same, from the host (outbound).
want_from_host() {
    local word=$1 label=$2
    shift 2
    check open "$label: $word" got "$word" probe - "$@"
}
# want_from_side WORD LABEL PROTO PORT: from the neighbour on iptd-h2.
want_from_side() {
    local word=$1 label=$2
    shift 2
    check open "$label: $word" got "$word" \
        ip netns exec iptd-side bash -c "$(declare -f probe); probe $SIDE 203.0.113.1 $*"
}
# got WORD CMD...: CMD prints WORD (shown when it does not).
got() {
    local word=$1 out
    shift
    out=$("$@" 2>&1 | tail -1)
    [[ $out == "$word" ]] || { echo "  (got: $out)"; return 1; }
}

# reset_counted FAMILY PORT: the rendered tcp-reset line for PORT counted packets.
reset_counted() {
    local save=iptables-$BACKEND-save
    [[ $1 == 6 ]] && save=ip6tables-$BACKEND-save
    $save -c -t filter | grep -- "--dport $2 .*-j REJECT --reject-with tcp-reset" |
        grep -qv '^\[0:0\]'
}

# start CONFIG: start with CONFIG, then `status` must say "on" (exit 0): the kernel holds
# the policy as rendered, so no start after it rewrites a table (iptables-save spells every
# rendered rule the way the template writes it).
start() {
    "$BIN" --backend "$BACKEND" --config "$1" start >/dev/null
    check open "status after start with ${1##*/}: on, no drift" in_sync "$1"
}
in_sync() { "$BIN" --backend "$BACKEND" --config "$1" status >/dev/null 2>&1; }

# services FAMILY WANT: `status --json` lists, for FAMILY (ipv4, ipv6), exactly the host
# services WANT gives ("proto/port who [rate-limited]; ..."; who: everyone, everyone-but-NET
# or only-NET).
services() {
    "$BIN" --backend "$BACKEND" --config /run/work/actions.toml status --json >/run/work/status.json || true
    python3 - "$@" <<'PY'
import json, sys
family, want = sys.argv[1], sys.argv[2]
doc = json.load(open("/run/work/status.json"))
f = next(x for x in doc["families"] if x["family"] == family)
def who(r):
    if r["kind"] == "everyone":
        return "everyone" + "".join("-but-" + e for e in r["except"])
    return r["kind"] + "".join("-" + n for n in r.get("sources", []))
got = "; ".join(
    "%s/%s %s%s" % (s["proto"], s["port"], who(s["reach"]),
                    " rate-limited" if any("rate-limited" in n for n in s["notes"]) else "")
    for s in f["services"])
if got != want:
    print("  got:  " + got + "\n  want: " + want)
    sys.exit(1)
PY
}

topo_setup
ip netns add iptd-side
ip link add iptd-h2 type veth peer name eth0 netns iptd-side
ip addr add 203.0.113.1/24 dev iptd-h2
ip link set iptd-h2 up
ip netns exec iptd-side sh -c "ip link set lo up; ip link set eth0 up
    ip addr add $SIDE/24 dev eth0"
serve answer 22 5001 5002 5003 5004 5005 5006 5010 5011 5012
serve topo_exec bash -c "$(declare -f answer); answer 7000 7001"
sleep 0.5

echo "== 1. actions ($BACKEND)"
cat >/run/work/actions.toml <<EOF
[[rule]]
description = "no ssh from C2"
action = "deny"
port = 22
from = ["$C2", "$C2_6"]
[[rule]]
action = "allow"
port = 5001
from = ["$C1", "$C1_6"]
[[rule]]
action = "deny"
port = 5002
[[rule]]
action = "reject"
port = 5003
[[rule]]
action = "reject"
proto = "udp"
port = 5003
[[rule]]
description = "list"
action = "allow"
proto = "any"
port = [5004, "5010-5011"]
[[rule]]
action = "limit"
port = 5005
EOF
start /run/work/actions.toml
for fam in 4 6; do
    if [[ $fam == 4 ]]; then a=$C1 b=$C2 h=$H; else a=$C1_6 b=$C2_6 h=$H6; fi
    want open "v$fam allow from the listed source" "$a" "$h" tcp 5001
    want timeout "v$fam allow: another source falls through to the drop" "$b" "$h" tcp 5001
    want timeout "v$fam deny" "$a" "$h" tcp 5002
    want refused "v$fam reject tcp" "$a" "$h" tcp 5003
    check open "v$fam reject tcp: the tcp-reset line counted it" reset_counted "$fam" 5003
    want refused "v$fam reject udp (ICMP port unreachable)" "$a" "$h" udp 5003
    for port in 5004 5010 5011; do
        want open "v$fam port list, proto any: tcp $port" "$a" "$h" tcp "$port"
        want open "v$fam port list, proto any: udp $port" "$a" "$h" udp "$port"
    done
    want timeout "v$fam port list: 5012 is not in it" "$a" "$h" tcp 5012
    want timeout "v$fam deny before [ssh]: the denied source" "$b" "$h" tcp 22
    want open "v$fam deny before [ssh]: another source" "$a" "$h" tcp 22
    for n in 1 2 3 4 5; do
        want open "v$fam limit: new connection $n of the source" "$a" "$h" tcp 5005
    done
    want timeout "v$fam limit: the 6th within 30 s is cut" "$a" "$h" tcp 5005
    want open "v$fam limit: another source still gets in" "$b" "$h" tcp 5005
done
m4=32 m6=128
for fam in ipv4 ipv6; do
    if [[ $fam == ipv4 ]]; then a=$C1/$m4 b=$C2/$m4; else a=$C1_6/$m6 b=$C2_6/$m6; fi
    want="tcp/5001 sources-$a; tcp/5004 everyone; tcp/5010:5011 everyone; udp/5004 everyone; "
    want+="udp/5010:5011 everyone; tcp/5005 everyone rate-limited; tcp/22 everyone-but-$b"
    check open "$fam status lists what the rules open, no more" services "$fam" "$want"
done

echo "== 2. interface ($BACKEND)"
printf '[[rule]]\naction = "allow"\nport = 5006\ninterface = "iptd-h2"\n' >/run/work/iface.toml
start /run/work/iface.toml
want_from_side open "allow on iptd-h2: the neighbour there" tcp 5006
want timeout "allow on iptd-h2: the client on iptd-h" "$C1" "$H" tcp 5006
want timeout "allow on iptd-h2: the client on iptd-h, IPv6" "$C1_6" "$H6" tcp 5006

echo "== 3. outbound ($BACKEND)"
for policy in deny reject; do
    cat >"/run/work/out-$policy.toml" <<EOF
[outbound]
policy = "$policy"
[[rule]]
action = "allow"
direction = "out"
port = 7000
to = ["$C1", "$C1_6"]
EOF
    start "/run/work/out-$policy.toml"
    cut=timeout
    [[ $policy == reject ]] && cut=refused
    for fam in 4 6; do
        if [[ $fam == 4 ]]; then a=$C1 b=$C2 h=$H; else a=$C1_6 b=$C2_6 h=$H6; fi
        want_from_host open "v$fam outbound $policy: the listed destination" "$a" tcp 7000
        want_from_host "$cut" "v$fam outbound $policy: an unlisted port" "$a" tcp 7001
        want_from_host "$cut" "v$fam outbound $policy: an unlisted address" "$b" tcp 7000
        want open "v$fam outbound $policy: inbound ssh still answers" "$a" "$h" tcp 22
    done
done
"$BIN" --backend "$BACKEND" stop >/dev/null
want_from_host open "after stop: the unlisted destination again" "$C2" tcp 7000

checks_done
