# shellcheck shell=bash
# tests/docker/topology.sh — an "external client" network namespace wired to the Docker host.
#
# Source after lib.sh, inside the sandbox (dk_enter_sandbox + dk_sandbox_init). The sandbox's own
# network namespace plays the Docker host; topo_setup adds a second namespace, the client, joined
# to it by a veth pair, with TWO source addresses so tests can allow one and block the other:
#
#     client netns "iptd-client"                     sandbox netns (Docker host)
#     iptd-c: 198.51.100.10/24, 198.51.100.20/24  <-veth->  iptd-h: 198.51.100.1/24
#             2001:db8:c::10/64, 2001:db8:c::20/64             2001:db8:c::1/64 (TOPO_IPV6=1)
#
# Only TEST-NET-2 (198.51.100.0/24, RFC 5737) and, for IPv6, 2001:db8::/32 (RFC 3849) are used.
#
#   topo_setup                          create (idempotent: recreates)
#   topo_teardown                       delete the client namespace (the veth pair goes with it)
#   topo_http  SRC PORT [DST] [T]       HTTP GET from SRC; 0 if the body contains "iptd-ok"
#   topo_tcp   SRC PORT [DST] [T]       bare TCP connect from SRC; 0 if the handshake completes
#   topo_expect open|blocked WHAT SRC PORT [DST]
#                                       topo_http, reported as one check (tests/common/checks.sh)
#   expect open|blocked WHAT SRC PORT [DST]
#                                       the same; a failure does not stop a `set -e` script
#   topo_exec CMD...                    run CMD in the client namespace
#
# Defaults: DST = TOPO_HOST_IP (198.51.100.1; TOPO_HOST_IP6 when SRC is IPv6), T = TOPO_TIMEOUT
# (2 s). A blocked (dropped) port costs T; a refused one returns at once.

: "${TOPO_NS:=iptd-client}"
: "${TOPO_HOST_IF:=iptd-h}"
: "${TOPO_CLIENT_IF:=iptd-c}"
: "${TOPO_HOST_IP:=198.51.100.1}"
: "${TOPO_CLIENT_IP1:=198.51.100.10}"
: "${TOPO_CLIENT_IP2:=198.51.100.20}"
: "${TOPO_PREFIX:=24}"
: "${TOPO_HOST_IP6:=2001:db8:c::1}"
: "${TOPO_CLIENT_IP6_1:=2001:db8:c::10}"
: "${TOPO_CLIENT_IP6_2:=2001:db8:c::20}"
: "${TOPO_TIMEOUT:=2}"
: "${TOPO_IPV6:=1}" # also give both ends IPv6 addresses (2001:db8:c::/64)
# shellcheck source=../common/checks.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../common/checks.sh"

topo_exec() { ip netns exec "$TOPO_NS" "$@"; }

topo_setup() {
    dk_require_sandbox
    topo_teardown
    ip netns add "$TOPO_NS"
    ip link add "$TOPO_HOST_IF" type veth peer name "$TOPO_CLIENT_IF" netns "$TOPO_NS"
    ip addr add "$TOPO_HOST_IP/$TOPO_PREFIX" dev "$TOPO_HOST_IF"
    ip link set "$TOPO_HOST_IF" up
    topo_exec ip link set lo up
    topo_exec ip addr add "$TOPO_CLIENT_IP1/$TOPO_PREFIX" dev "$TOPO_CLIENT_IF"
    topo_exec ip addr add "$TOPO_CLIENT_IP2/$TOPO_PREFIX" dev "$TOPO_CLIENT_IF"
    topo_exec ip link set "$TOPO_CLIENT_IF" up
    # The /24 is on-link on both sides; a default route makes any host address reachable too
    # (e.g. the docker0 address), like a real client behind a router.
    topo_exec ip route add default via "$TOPO_HOST_IP"
    if [[ "$TOPO_IPV6" == 1 ]]; then
        # nodad: addresses usable at once (no 1-2 s duplicate address detection wait)
        ip addr add "$TOPO_HOST_IP6/64" dev "$TOPO_HOST_IF" nodad
        topo_exec ip addr add "$TOPO_CLIENT_IP6_1/64" dev "$TOPO_CLIENT_IF" nodad
        topo_exec ip addr add "$TOPO_CLIENT_IP6_2/64" dev "$TOPO_CLIENT_IF" nodad
        topo_exec ip -6 route add default via "$TOPO_HOST_IP6"
    fi
    # first packet must not wait for ARP resolution failures: prove L2/L3 works now
    topo_exec busybox ping -c1 -W2 -I "$TOPO_CLIENT_IP1" "$TOPO_HOST_IP" >/dev/null ||
        dk_die "topology: client cannot ping $TOPO_HOST_IP"
}

topo_teardown() {
    dk_require_sandbox
    if ip netns list 2>/dev/null | grep -qw "$TOPO_NS"; then
        ip netns del "$TOPO_NS"
    fi
    ip link del "$TOPO_HOST_IF" 2>/dev/null || true
}

# _topo_url_host ADDR: bracket IPv6 literals for URLs.
_topo_url_host() { if [[ "$1" == *:* ]]; then echo "[$1]"; else echo "$1"; fi; }

# topo_http SRC PORT [DST] [TIMEOUT]: from the client namespace, bound to source address SRC,
# GET http://DST:PORT/ ; success iff the answer contains "iptd-ok" (the image's index.html).
topo_http() {
    local src=$1 port=$2 dst=${3:-$TOPO_HOST_IP} t=${4:-$TOPO_TIMEOUT} body
    [[ "$src" == *:* && $# -lt 3 ]] && dst=$TOPO_HOST_IP6
    body=$(topo_exec timeout $((t + 2)) curl -sS --interface "$src" --connect-timeout "$t" -m "$((t + 1))" \
        "http://$(_topo_url_host "$dst"):$port/" 2>&1) || return 1
    [[ "$body" == *iptd-ok* ]]
}

# topo_tcp SRC PORT [DST] [TIMEOUT]: bare TCP handshake from SRC (python3 socket, bind+connect).
# Use for non-HTTP listeners (dk_run_nc). 0 = connected, 1 = refused / timed out / unreachable.
topo_tcp() {
    local src=$1 port=$2 dst=${3:-$TOPO_HOST_IP} t=${4:-$TOPO_TIMEOUT}
    [[ "$src" == *:* && $# -lt 3 ]] && dst=$TOPO_HOST_IP6
    topo_exec timeout $((t + 2)) python3 - "$src" "$dst" "$port" "$t" <<'EOF'
import socket, sys
src, dst, port, t = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(t)
try:
    s.bind((src, 0))
    s.connect((dst, port))
except OSError:
    sys.exit(1)
s.close()
EOF
}

# topo_expect open|blocked LABEL SRC PORT [DST]: topo_http from SRC, reported as one check
# (tests/common/checks.sh). Returns 1 when it fails (callers in `set -e` scripts: use
# `|| true` to go on).
topo_expect() {
    local want=$1 label=$2 src=$3 port=$4 dst=${5:-} got
    if topo_http "$src" "$port" ${dst:+"$dst"}; then got=open; else got=blocked; fi
    if [[ "$got" == "$want" ]]; then
        pass "$label: $src -> :$port $got"
    else
        fail "$label: $src -> :$port $got, expected $want"
        return 1
    fi
}

# expect open|blocked LABEL SRC PORT [DST]: topo_expect that lets a `set -e` script go on.
expect() { topo_expect "$@" || true; }
