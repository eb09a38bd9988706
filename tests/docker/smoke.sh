#!/usr/bin/env bash
# tests/docker/smoke.sh — end-to-end check of the real-dockerd harness, and a record of what
# Docker does to DOCKER-USER and to `FORWARD -j DOCKER-USER` when it restarts.
#
#   sudo bash tests/docker/smoke.sh          (root; re-runs itself under unshare --net --mount)
#   DK_KEEP=1 ...                            keep $DK_DIR (daemon logs) afterwards
#
# Steps:
#  1. containerd + dockerd (iptables-legacy) in a private net+mount namespace; image from scratch.
#  2. "web-default" on the default bridge (-p 8080:80), "web-user" on network iptd-net (-p 8081:80).
#  3. client namespace with 198.51.100.10 and .20: both ports answer from both addresses.
#  4. print Docker's IPv4 ruleset (iptables-legacy-save).
#  5. DOCKER-USER: -s 198.51.100.20 -p tcp -m conntrack --ctorigdstport 8080 -j DROP
#     -> .20:8080 blocked, .10:8080 and .20:8081 still open.
#  6. Restart scenarios (each prints the FORWARD chain / DOCKER-USER excerpts before, while the
#     daemon is down, and after; and checks reachability again):
#     A  plain graceful restart with the DROP rule in place;
#     B  DOCKER-USER replaced (flushed, only our DROP, no RETURN) by iptables-legacy-restore of the
#        whole filter table while dockerd runs, then restart;
#     C  the FORWARD -j DOCKER-USER jump moved to the END of FORWARD by a restore, then restart;
#     D  the jump deleted by a restore; then `docker network create` (does Docker notice?),
#        then restart;
#     E  the whole filter table replaced by a restore without any Docker chain (a naive firewall
#        script) while dockerd runs; then restart.
#  7. stop everything; the outer half of dk_enter_sandbox verifies the host is untouched.
# Reports its checks as tests/common/checks.sh says (the plan line last).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=topology.sh
. "$HERE/topology.sh"

dk_enter_sandbox "$@" # --- everything below runs inside the private namespaces ---

T0=$SECONDS
phase() { printf '\n===== [%3ss] %s\n' "$((SECONDS - T0))" "$*"; }

cleanup() {
    local rc=$?
    set +e
    topo_teardown 2>/dev/null
    dk_cleanup "$rc" # keeps the logs when rc != 0
    return "$rc"
}
trap cleanup EXIT

C1=$TOPO_CLIENT_IP1 # 198.51.100.10: never blocked
C2=$TOPO_CLIENT_IP2 # 198.51.100.20: blocked on 8080 by our DOCKER-USER rule
IPT=iptables-legacy
DROP_RULE=(-s "$C2/32" -p tcp -m conntrack --ctorigdstport 8080 -j DROP)

# ---- helpers ---------------------------------------------------------------------------------

# filter_excerpt: the lines of the filter table a DOCKER-USER owner cares about, numbered
# per chain as `iptables -S` would list them (FORWARD rule 1 is the first -A FORWARD line).
filter_excerpt() {
    dk_iptables_save filter | awk '
        /^:(FORWARD|DOCKER-USER) / { print "    " $0 }
        /^-A (FORWARD|DOCKER-USER) / { n[$2]++; printf "    %-11s #%d  %s\n", $2, n[$2], $0 }'
}

# jump_positions: space-separated rule numbers in FORWARD that are exactly "-j DOCKER-USER".
jump_positions() {
    dk_iptables_save filter | awk '/^-A FORWARD /{n++; if ($0 == "-A FORWARD -j DOCKER-USER") printf "%d ", n}' | sed 's/ $//'
}

# docker_user_rules: DOCKER-USER content, one rule per line ("-A DOCKER-USER" stripped).
docker_user_rules() {
    dk_iptables_save filter | sed -n 's/^-A DOCKER-USER //p'
}

# has_drop_rule: our DROP rule is in DOCKER-USER.
has_drop_rule() { docker_user_rules | grep -qxF -- "${DROP_RULE[*]}"; }

# observe TITLE: print the excerpt plus a one-line summary of the jump and DOCKER-USER.
observe() {
    echo "--- $1"
    filter_excerpt
    echo "    => jump(s) FORWARD -j DOCKER-USER at position(s): [$(jump_positions)]; DOCKER-USER has $(docker_user_rules | grep -c . || true) rule(s)"
}

# reach LABEL: the four client checks with the DROP rule expected to be in effect (or not).
reach() {
    local label=$1 c2_8080=${2:-blocked}
    topo_expect open "$label: .10 -> 8080 (default bridge)" "$C1" 8080 || true
    topo_expect "$c2_8080" "$label: .20 -> 8080 (default bridge)" "$C2" 8080 || true
    topo_expect open "$label: .10 -> 8081 (user network)" "$C1" 8081 || true
    topo_expect open "$label: .20 -> 8081 (user network)" "$C2" 8081 || true
}

# wait_published PORT...: after a daemon restart the containers come back (unless-stopped);
# wait until each one answers again from the unblocked client address (max 20 s).
wait_published() {
    local port i
    for port in "$@"; do
        for ((i = 0; i < 40; i++)); do
            topo_http "$C1" "$port" "$TOPO_HOST_IP" 1 && break
            sleep 0.5
        done
    done
}

# restore_filter FILE: replace the whole filter table atomically, as a firewall tool would.
restore_filter() { "$IPT-restore" -w 5 <"$1"; }

# restart_observed TITLE: stop dockerd (print state while down), start it again (print state).
restart_observed() {
    observe "$1: before restart"
    dk_stop_dockerd
    observe "$1: dockerd stopped (containers stopped by it)"
    dk_start_dockerd
    wait_published 8080 8081
    observe "$1: after restart"
}

# ---- 1. daemon and image ---------------------------------------------------------------------
phase "sandbox + dockerd"
dk_sandbox_init
dk_start
echo "docker client $(docker version -f '{{.Client.Version}}'), daemon $(docker version -f '{{.Server.Version}}')," \
    "containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}')"
echo "iptables backend for dockerd: $(readlink "$DK_DIR/bin/iptables")"
phase "image"
dk_build_image "$DK_IMAGE"
docker image ls "$DK_IMAGE" --format '{{.Repository}}:{{.Tag}} {{.Size}}'

# ---- 2. containers ---------------------------------------------------------------------------
phase "containers"
dk_network_create iptd-net 198.18.1.0/24
dk_run_httpd web-default 8080
dk_run_httpd web-user 8081 iptd-net
dk_run_nc raw-nc 8082
docker ps --format '{{.Names}}\t{{.Ports}}\t{{.Networks}}'

# ---- 3. client topology ----------------------------------------------------------------------
phase "client namespace + reachability"
topo_setup
reach "baseline" open
check open "raw TCP (busybox nc listener, topo_tcp) .20 -> 8082 open" topo_tcp "$C2" 8082
check blocked "topo_tcp reports a closed port as failure (.20 -> 8099)" topo_tcp "$C2" 8099
check blocked "topo_http reports a closed port as failure (.20 -> 8099)" topo_http "$C2" 8099

# ---- 4. Docker's rules -----------------------------------------------------------------------
phase "Docker's IPv4 rules (iptables-legacy-save, counters zeroed)"
dk_iptables_save
echo "sysctl: $(sysctl net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables 2>/dev/null | tr '\n' ' ')"
check open "the daemon's rules are in the legacy backend" test "$(jump_positions)" = 1
check open "iptables-nft has no Docker rules (nft backend untouched)" \
    bash -c '! iptables-nft-save 2>/dev/null | grep -q DOCKER'

# ---- 5. DOCKER-USER rule ---------------------------------------------------------------------
phase "DOCKER-USER: drop $C2 -> host port 8080"
$IPT -w -I DOCKER-USER "${DROP_RULE[@]}"
observe "after -I DOCKER-USER"
reach "DOCKER-USER drop" blocked

# ---- 5b. IPv6 client ------------------------------------------------------------------------
# Docker publishes on [::] too. Without ip6tables rules for the port, the IPv6 connection is
# answered by docker-proxy in the HOST namespace: it goes through INPUT, never FORWARD, so no
# DOCKER-USER rule (v4 or v6) ever sees it. With --userland-proxy=false nothing listens on v6.
phase "IPv6 client -> published ports (userland-proxy=$DK_USERLAND_PROXY, ipv6=$DK_IPV6)"
C2_6=$TOPO_CLIENT_IP6_2
if [[ "$DK_IPV6" == 0 && "$DK_USERLAND_PROXY" == true ]]; then
    topo_expect open "v6 .20 -> 8080 via docker-proxy (bypasses DOCKER-USER)" "$C2_6" 8080 || true
    echo "    docker-proxy listeners: $(ss -Hltnp 2>/dev/null | grep -c docker-proxy || true) (ss), e.g.:"
    ss -Hltnp 2>/dev/null | grep docker-proxy | awk '{print "     ", $4, $6}' | head -4 || true
elif [[ "$DK_IPV6" == 0 ]]; then
    topo_expect blocked "v6 .20 -> 8080 (no proxy, no ip6tables: refused)" "$C2_6" 8080 || true
else
    for port in 8080 8081; do
        if topo_http "$C2_6" "$port"; then r=open; else r=blocked; fi
        echo "OBSERVED: v6 $C2_6 -> :$port $r (ipv6 daemon, ip6tables on)"
    done
    echo "--- ip6tables-legacy-save"
    ip6tables-legacy-save | sed -E '/^#/d; s/\[[0-9]+:[0-9]+\]$/[0:0]/'
fi

# ---- 6A. plain restart -----------------------------------------------------------------------
phase "A: graceful dockerd restart with the rule in place"
restart_observed A
check open "A: our DROP rule survives the restart" has_drop_rule
check open "A: exactly one jump, at position 1" test "$(jump_positions)" = 1
reach "A after restart" blocked

# ---- 6B. DOCKER-USER replaced by a restore ---------------------------------------------------
phase "B: filter table restored with DOCKER-USER = [our DROP] only (Docker's RETURN gone)"
dk_iptables_save filter | awk -v drop="-A DOCKER-USER ${DROP_RULE[*]}" '
    /^-A DOCKER-USER / { next }            # flush DOCKER-USER ...
    /^COMMIT/ { print drop }               # ... and put back only our rule
    { print }' >"$DK_DIR/filter-B.rules"
restore_filter "$DK_DIR/filter-B.rules"
observe "B: after restore (dockerd running)"
reach "B after restore" blocked
restart_observed B
check open "B: exactly one jump, at position 1" test "$(jump_positions)" = 1
check open "B: our DROP rule survives the restart" has_drop_rule
reach "B after restart" blocked

# ---- 6C. jump moved to the end ---------------------------------------------------------------
phase "C: filter table restored with the FORWARD -j DOCKER-USER jump moved to the END"
dk_iptables_save filter | awk '
    $0 == "-A FORWARD -j DOCKER-USER" { next }
    /^COMMIT/ { print "-A FORWARD -j DOCKER-USER" }
    { print }' >"$DK_DIR/filter-C.rules"
restore_filter "$DK_DIR/filter-C.rules"
observe "C: after restore (dockerd running)"
# With the jump last, Docker's own ACCEPTs for published ports win: the DROP no longer applies.
reach "C after restore (jump last)" open
restart_observed C
check open "C: exactly one jump, at position 1" test "$(jump_positions)" = 1
check open "C: our DROP rule survives the restart" has_drop_rule
reach "C after restart" blocked

# ---- 6D. jump deleted ------------------------------------------------------------------------
phase "D: filter table restored WITHOUT the FORWARD -j DOCKER-USER jump"
dk_iptables_save filter | grep -vxF -- "-A FORWARD -j DOCKER-USER" >"$DK_DIR/filter-D.rules"
restore_filter "$DK_DIR/filter-D.rules"
observe "D: after restore (dockerd running)"
reach "D after restore (no jump)" open
docker network create iptd-net-d >/dev/null
observe "D: after 'docker network create iptd-net-d' (dockerd running)"
D_AFTER_NETCREATE=$(jump_positions)
docker network rm iptd-net-d >/dev/null
restore_filter "$DK_DIR/filter-D.rules" # back to "no jump" whatever network create did
docker run -d --name probe-d --stop-timeout 1 -p 8090:80 "$DK_IMAGE" httpd -f -p 80 -h /www >/dev/null
observe "D: after 'docker run -p 8090:80' (dockerd running)"
D_AFTER_RUN=$(jump_positions)
docker rm -f probe-d >/dev/null
restore_filter "$DK_DIR/filter-D.rules"
restart_observed D
check open "D: exactly one jump, at position 1" test "$(jump_positions)" = 1
check open "D: our DROP rule survives the restart" has_drop_rule
reach "D after restart" blocked

# ---- 6E. whole filter table replaced ---------------------------------------------------------
phase "E: filter table replaced by a restore with NO Docker chains (policy ACCEPT, empty)"
printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' >"$DK_DIR/filter-E.rules"
restore_filter "$DK_DIR/filter-E.rules"
observe "E: after restore (dockerd running)"
reach "E after restore (no filter rules at all)" open
restart_observed E
check open "E: exactly one jump, at position 1" test "$(jump_positions)" = 1
# Docker <= 28.2.1 puts "-j RETURN" in a new DOCKER-USER, >= 28.2.2 leaves it empty.
docker_user_default() { local r; r=$(docker_user_rules); [[ "$r" == "-j RETURN" || -z "$r" ]]; }
check open "E: DOCKER-USER back with Docker's default content" docker_user_default
echo "--- E: full filter table after restart"
dk_iptables_save filter
reach "E after restart (our rule is gone)" open

# ---- summary ---------------------------------------------------------------------------------
phase "summary of Docker $(docker version -f '{{.Server.Version}}') behaviour"
echo "D: jump positions after 'docker network create' with the jump missing: [${D_AFTER_NETCREATE}]"
echo "D: jump positions after 'docker run -p' with the jump missing:          [${D_AFTER_RUN}]"
phase "stop"
topo_teardown
dk_stop
phase "done in $((SECONDS - T0))s"
checks_done
