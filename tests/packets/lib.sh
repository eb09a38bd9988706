# shellcheck shell=bash
# tests/packets/lib.sh — what the packet scenarios share. Source it first thing: it enters
# private namespaces (tests/docker/lib.sh: dk_enter_sandbox re-runs the scenario inside
# them, and checks afterwards that the machine's own network state is unchanged), with
# tests/docker/topology.sh's client and a private state directory, /run/iptd.
#
#   serve CMD...                        run CMD in the background, killed at exit
#   CONTAINERS=(ctr1 …)                 network namespaces deleted at exit
#   docker29_rules FAMILY PUBLISH...    the rules Docker 29 writes for docker0 with one
#                                       container (198.18.0.2, 2001:db8:d0c::2) as
#                                       iptables-restore input; FAMILY 4 or 6; each PUBLISH
#                                       is "PROTO HOSTPORT CTRPORT", or with " loopback" for
#                                       a port published on 127.0.0.1 / ::1
PACKETS_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../docker/lib.sh
. "$PACKETS_LIB/../docker/lib.sh"
# shellcheck source=../docker/topology.sh
. "$PACKETS_LIB/../docker/topology.sh"
BIN=$(readlink -f "${BIN:?set BIN to the iptables-docker binary}")
export BIN

dk_enter_sandbox "$@" # --- everything below runs inside private namespaces ---
dk_sandbox_init
mkdir -p /run/iptd /run/work
export IPTABLES_DOCKER_STATE_DIR=/run/iptd
if [[ -d /etc/iptables-docker ]]; then mount -t tmpfs iptd-etc /etc/iptables-docker; fi

PIDS=()
CONTAINERS=()
serve() { "$@" & PIDS+=($!); }
packets_cleanup() {
    local rc=$? pid ns
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    topo_teardown 2>/dev/null
    for ns in "${CONTAINERS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    return "$rc"
}
trap packets_cleanup EXIT

docker29_rules() {
    local family=$1 ctr=198.18.0.2 net=198.18.0.0/24 m=32 lo=127.0.0.1/32 nolo='! -d 127.0.0.0/8 '
    shift
    if [[ $family == 6 ]]; then
        ctr=2001:db8:d0c::2 net=2001:db8:d0c::/64 m=128 lo=::1/128 nolo='! -d ::1/128 '
    fi
    local to proto hport cport where dnat="" accept=""
    for publish in "$@"; do
        read -r proto hport cport where <<<"$publish"
        to="$ctr:$cport"
        [[ $family == 6 ]] && to="[$ctr]:$cport"
        dnat+="-A DOCKER ${where:+-d $lo }! -i docker0 -p $proto -m $proto --dport $hport -j DNAT --to-destination $to"$'\n'
        accept+="-A DOCKER -d $ctr/$m ! -i docker0 -o docker0 -p $proto -m $proto --dport $cport -j ACCEPT"$'\n'
    done
    accept=$(printf "%s" "$accept" | sort -u)
    cat <<RULES
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -d $ctr/$m ! -i docker0 -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ${nolo}-m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s $net ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
${dnat}COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-BRIDGE - [0:0]
:DOCKER-CT - [0:0]
:DOCKER-FORWARD - [0:0]
:DOCKER-INTERNAL - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-FORWARD
$accept
-A DOCKER ! -i docker0 -o docker0 -j DROP
-A DOCKER-BRIDGE -o docker0 -j DOCKER
-A DOCKER-CT -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A DOCKER-FORWARD -j DOCKER-CT
-A DOCKER-FORWARD -j DOCKER-INTERNAL
-A DOCKER-FORWARD -j DOCKER-BRIDGE
-A DOCKER-FORWARD -i docker0 -j ACCEPT
COMMIT
RULES
}
