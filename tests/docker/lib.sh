# shellcheck shell=bash
# tests/docker/lib.sh — run a REAL dockerd inside a private network + mount namespace.
#
# Source this file from a bash script (it does not change shell options itself; callers are
# expected to `set -euo pipefail`). Typical use (see smoke.sh and README.md):
#
#   . tests/docker/lib.sh
#   dk_enter_sandbox "$@"      # runs this script again under `unshare --net --mount`, then
#                              # checks the host is untouched (returns at once when inside)
#   dk_sandbox_init            # private /run, /etc/docker, /sys, cgroups; loopback up
#   trap dk_cleanup EXIT       # stops dockerd/containerd, kills every process we started
#   dk_start                   # containerd + dockerd on iptables-legacy, waits for `docker info`
#   dk_build_image             # image "iptd-busybox" FROM scratch with busybox-static
#   dk_run_httpd web 8080      # container publishing 8080->80 on the default bridge
#   dk_restart                 # graceful dockerd restart (or dk_stop_dockerd ... dk_start_dockerd)
#
# SAFETY: every function that can touch firewall, network or mount state first calls
# dk_require_sandbox, which refuses to run unless both the network and the mount namespace differ
# from the machine's own (PID 1's when readable, else the ones dk_enter_sandbox recorded; no
# reference = refuse), and dk_sandbox_init also refuses a netns holding anything but `lo`.
#
# Configuration (environment; set before dk_start):
#   DK_DIR             work dir for logs, configs, the iptables shim (default: mktemp under /tmp)
#   DK_RUN             runtime dir for sockets/pids (default /run/iptd-docker, on the private /run)
#   DK_BIP             docker0 address (default 198.18.0.1/24, RFC 2544 benchmarking range, so no
#                      RFC 1918 address is ever used, even inside the namespace)
#   DK_POOL            default-address-pools base for user networks (default 198.18.128.0/17, /24s)
#   DK_USERLAND_PROXY  true|false (default true, Docker's default)
#   DK_IPV6            0|1 (default 0). 1 = --ipv6 --fixed-cidr-v6 2001:db8:d0c::/64 --ip6tables
#                      (plus --experimental on daemons < 27 where --ip6tables is experimental)
#   DK_START_TIMEOUT   seconds to wait for dockerd (default 60)
#   DK_DOCKERD_ARGS    extra dockerd arguments (word-split)
#   DK_IPTABLES_BACKEND legacy|nft (default legacy): which iptables the daemon's PATH resolves
#   DK_ROOTFS          empty (default): the machine's own docker.io (Debian 12: 20.10). Else a
#                      Debian root holding docker.io, containerd and runc (tests/systemd/rootfs.sh
#                      docker: sid, 28.5), whose daemons then run chrooted over a throwaway
#                      overlay of it, with the sandbox's /run, /proc, /sys and /dev bound in (one
#                      xtables lock, one /run/netns for both sides) and `iptables` switched to
#                      DK_IPTABLES_BACKEND by update-alternatives inside the overlay.
#
# After dk_start: DOCKER_HOST is exported, DK_DOCKERD_PID / DK_CONTAINERD_PID are set, the daemon
# log is $DK_DIR/dockerd.log (containerd: $DK_DIR/containerd.log).

# ---------------------------------------------------------------------------------------------
# Defaults
# ---------------------------------------------------------------------------------------------
: "${DK_RUN:=/run/iptd-docker}"
: "${DK_BIP:=198.18.0.1/24}"
: "${DK_POOL:=198.18.128.0/17}"
: "${DK_USERLAND_PROXY:=true}"
: "${DK_IPV6:=0}"
: "${DK_START_TIMEOUT:=60}"
: "${DK_DOCKERD_ARGS:=}"
: "${DK_IPTABLES_BACKEND:=legacy}"
: "${DK_IMAGE:=iptd-busybox}"
: "${DK_ROOTFS:=}"
DK_DOCKERD_PID=${DK_DOCKERD_PID:-}
DK_CONTAINERD_PID=${DK_CONTAINERD_PID:-}

dk_log() { printf '[dk %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
dk_die() { dk_log "FATAL: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Sandbox
# ---------------------------------------------------------------------------------------------

# The namespaces this process must NOT be in: the machine's own. PID 1's are the reference, but
# /proc/1/ns/* is often unreadable (a sandboxing PID 1 denies it even to root), so dk_enter_sandbox
# also records the namespaces it started from in IPTD_DK_OUTER_NET / IPTD_DK_OUTER_MNT before
# unsharing. A caller that runs its own `unshare --net --mount` must export those two variables
# first (IPTD_DK_OUTER_NET=$(readlink /proc/self/ns/net), same for mnt). No reference at all =
# refuse (fail closed).
# Inside the sandbox's own PID namespace /proc/1 is the sandboxed script itself, so the
# recorded variables, when set, are the only reference.
dk_outer_ns() { # dk_outer_ns net|mnt -> prints the known reference inode
    local recorded
    case $1 in
    net) recorded=${IPTD_DK_OUTER_NET:-} ;;
    mnt) recorded=${IPTD_DK_OUTER_MNT:-} ;;
    esac
    if [[ -n "$recorded" ]]; then
        echo "$recorded"
    else
        readlink "/proc/1/ns/$1" 2>/dev/null || true
    fi
}

# dk_in_sandbox: true only when this process's network AND mount namespaces are both known to
# differ from the machine's own (see dk_outer_ns).
dk_in_sandbox() {
    local kind cur refs ref
    for kind in net mnt; do
        cur=$(readlink "/proc/self/ns/$kind") || return 1
        refs=$(dk_outer_ns "$kind")
        [[ -n "$refs" ]] || return 1
        while read -r ref; do
            [[ -n "$ref" && "$ref" != "$cur" ]] || return 1
        done <<<"$refs"
    done
    return 0
}

# dk_require_sandbox: abort unless dk_in_sandbox. Called by everything that changes net state.
dk_require_sandbox() {
    dk_in_sandbox || dk_die "refusing: not inside a private net+mount namespace (use dk_enter_sandbox, or export IPTD_DK_OUTER_NET/MNT before your own unshare --net --mount)"
}

# dk_enter_sandbox "$@": call at the top of a script. Outside a sandbox, runs the script again
# as `unshare --net --mount --pid --fork --mount-proc bash SCRIPT ARGS...` (so every process it
# starts dies with it), recording the namespaces
# it leaves, then (back outside) checks that the machine's own network/firewall/mount state is
# exactly as before and that no dockerd/containerd/shim/docker-proxy it started survives, and
# exits with the child's status (99 if the host state changed). Inside a sandbox it returns at
# once. Needs root.
dk_enter_sandbox() {
    if dk_in_sandbox; then return 0; fi
    [[ $EUID -eq 0 ]] || dk_die "must run as root (unshare --net --mount)"
    command -v unshare >/dev/null || dk_die "unshare (util-linux) not found"
    [[ -z "${IPTD_DK_OUTER_NET:-}" ]] || dk_die "IPTD_DK_OUTER_NET is set but this is not a sandbox"
    local script rc=0 fp_before fp_after child inner_net='' i
    script=$(readlink -f "$0")
    IPTD_DK_OUTER_NET=$(readlink /proc/self/ns/net)
    IPTD_DK_OUTER_MNT=$(readlink /proc/self/ns/mnt)
    export IPTD_DK_OUTER_NET IPTD_DK_OUTER_MNT
    # Containers' cgroup parent, fixed out here so the reaper below can find container processes
    # even if the sandboxed script was SIGKILLed before its own cleanup.
    : "${DK_CGROUP_PARENT:=/iptd-docker-$$-$RANDOM}"
    export DK_CGROUP_PARENT
    fp_before=$(dk_host_fingerprint)
    unshare --net --mount --propagation private --pid --fork --mount-proc -- bash "$script" "$@" &
    child=$!
    # The sandbox's netns, as soon as unshare has made it: the reaper's only target.
    for ((i = 0; i < 200; i++)); do
        inner_net=$(readlink "/proc/$child/ns/net" 2>/dev/null) || break
        [[ "$inner_net" == "$IPTD_DK_OUTER_NET" ]] || break
        inner_net=
        sleep 0.01
    done
    wait "$child" || rc=$?
    dk_reap_leftovers "$inner_net"
    fp_after=$(dk_host_fingerprint)
    if [[ "$fp_before" != "$fp_after" ]]; then
        dk_log "HOST STATE CHANGED by the sandboxed run (this must never happen):"
        diff <(echo "$fp_before") <(echo "$fp_after") >&2 || true
        exit 99
    fi
    exit "$rc"
}

# dk_host_fingerprint: read-only summary of the state a sandbox must never change: interfaces,
# addresses, routes, iptables (legacy + nft), forwarding sysctls, mounts. Counters stripped.
dk_host_fingerprint() {
    ip -o link show | awk -F': ' '{print "link", $2}'
    ip -o addr show | awk '{print "addr", $2, $4}'
    ip route show table all 2>/dev/null | sed 's/^/route /'
    local t
    for t in iptables-legacy-save ip6tables-legacy-save; do
        command -v "$t" >/dev/null && "$t" 2>/dev/null | sed -E '/^#/d; s/\[[0-9]+:[0-9]+\]$//'
    done
    command -v nft >/dev/null && nft list ruleset 2>/dev/null
    sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding 2>/dev/null | sed 's/^/sysctl /'
    # only the mount points a sandbox could touch (others may mount things meanwhile)
    findmnt -rn -o TARGET,FSTYPE |
        grep -E '^(/run|/etc/docker|/sys|/var/lib/docker|/var/lib/containerd|/tmp/iptd-dk\.)' |
        sed 's/^/mount /'
    return 0
}

# dk_daemon_pids: PIDs of every dockerd/containerd/containerd-shim*/docker-proxy on the machine.
dk_daemon_pids() {
    local f comm
    for f in /proc/[0-9]*; do
        { read -r comm <"$f/comm"; } 2>/dev/null || continue # builtin read: no fork per process
        case "$comm" in
        dockerd | containerd | containerd-shim* | docker-proxy) echo "${f#/proc/}" ;;
        esac
    done
    return 0
}

# dk_reap_leftovers SANDBOX_NETNS: after the sandboxed child exited, wait up to 10 s for daemon
# processes still in the sandbox's network namespace (e.g. net:[4026532001]) to disappear (a
# shim may still be exiting), then SIGKILL them by PID. Only those: concurrent sandboxes (other
# test runs) have daemons of their own, in their own namespaces. Then container processes,
# found by our cgroup parent (DK_CGROUP_PARENT), are killed too (after the daemons, so no
# restart policy can bring them back), and the empty cgroup directories Docker made for them
# are removed. Normally there is nothing to do: this is for a SIGKILLed script.
dk_reap_leftovers() {
    local netns=$1 deadline=$((SECONDS + 10)) left=()
    while [[ -n "$netns" ]]; do
        mapfile -t left < <(dk_live_daemons_in "$netns")
        if ((${#left[@]} == 0 || SECONDS >= deadline)); then break; fi
        sleep 0.2
    done
    if ((${#left[@]})); then
        dk_log "WARNING: killing leftover daemon processes: ${left[*]}"
        kill -KILL "${left[@]}" 2>/dev/null || true
        dk_wait_gone_or_zombie "${left[@]}" || true
    fi
    dk_kill_cgroup_procs
    dk_rmdir_cgroups
}

# dk_kill_cgroup_procs: SIGKILL every process in our cgroup parent (= container processes).
dk_kill_cgroup_procs() {
    [[ -n "${DK_CGROUP_PARENT:-}" ]] || return 0
    local cg=()
    mapfile -t cg < <(find /sys/fs/cgroup -path "*$DK_CGROUP_PARENT/*" -name cgroup.procs \
        -exec cat {} + 2>/dev/null | sort -u)
    ((${#cg[@]})) || return 0
    dk_log "WARNING: killing leftover container processes: ${cg[*]}"
    kill -KILL "${cg[@]}" 2>/dev/null || true
    dk_wait_gone_or_zombie "${cg[@]}" || true
}

# dk_live_daemons_in NETNS: daemon PIDs in network namespace NETNS, not zombies (an exited
# process waiting for PID 1 to reap it is harmless).
dk_live_daemons_in() {
    local netns=$1 pid state
    for pid in $(dk_daemon_pids); do
        [[ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" == "$netns" ]] || continue
        state=$(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null) || continue
        [[ -z "$state" || "$state" == Z ]] && continue
        echo "$pid"
    done
}

# dk_wait_gone_or_zombie PID...: up to 5 s for the processes to exit (zombie counts as exited).
dk_wait_gone_or_zombie() {
    local deadline=$((SECONDS + 5)) pid state alive
    while :; do
        alive=
        for pid in "$@"; do
            state=$(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null) || continue
            [[ -n "$state" && "$state" != Z ]] && alive+=" $pid"
        done
        [[ -n "$alive" ]] || return 0
        ((SECONDS < deadline)) || { dk_log "WARNING: still alive after SIGKILL:$alive"; return 1; }
        sleep 0.1
    done
}

# dk_rmdir_cgroups: remove the (empty) cgroup directories under our cgroup parent, deepest first.
dk_rmdir_cgroups() {
    [[ -n "${DK_CGROUP_PARENT:-}" ]] || return 0
    local i
    for ((i = 0; i < 50; i++)); do
        find /sys/fs/cgroup -depth -type d -path "*$DK_CGROUP_PARENT*" -exec rmdir {} + 2>/dev/null || true
        find /sys/fs/cgroup -type d -path "*$DK_CGROUP_PARENT" 2>/dev/null | grep -q . || return 0
        sleep 0.1
    done
    dk_log "WARNING: cgroups left: $(find /sys/fs/cgroup -type d -path "*$DK_CGROUP_PARENT" | tr '\n' ' ')"
}

# dk_sandbox_init: make the namespace self-contained. Must run once, in the sandbox, before
# dk_start. Idempotent per namespace (marks itself done in the private /run).
#   - tmpfs on /run          : private xtables lock (/run/xtables.lock), docker/containerd
#                              sockets, /run/netns for `ip netns`.
#   - tmpfs on /etc/docker   : dockerd 20.10 writes /etc/docker/key.json unconditionally.
#   - fresh sysfs on /sys    : a sysfs shows the net devices of the namespace that MOUNTED it;
#                              the inherited one shows the host's interfaces, and libnetwork reads
#                              /sys/class/net/<bridge>/... for its bridges.
#   - cgroup hierarchies re-mounted under the new /sys/fs/cgroup (the new sysfs hides them);
#                              same layout as the host's (v1 hybrid, or pure v2).
#   - loopback up.
dk_sandbox_init() {
    dk_require_sandbox
    [[ -e /run/.iptd-sandbox-init ]] && return 0
    # Belt and braces: a namespace we just created has no interface but lo. Anything else means
    # we are somewhere we must not mount over /run or start a dockerd.
    local links
    links=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
    [[ "$links" == "lo " ]] || dk_die "refusing dk_sandbox_init: netns has interfaces other than lo: $links"

    # Remember the cgroup mounts (target fstype fs-options) before /sys is replaced.
    local cg_mounts cg_root_fstype
    cg_mounts=$(findmnt -rn -t cgroup,cgroup2 -o TARGET,FSTYPE,FS-OPTIONS | awk '$1 ~ "^/sys/fs/cgroup"')
    cg_root_fstype=$(findmnt -rn -o FSTYPE /sys/fs/cgroup || true)

    mount -t tmpfs -o mode=755 iptd-run /run
    mkdir -p /etc/docker # no-op on hosts with docker.io installed (it ships the directory)
    mount -t tmpfs -o mode=755 iptd-etc-docker /etc/docker

    # (like `ip netns exec`: detach the old one first, mounting on top of it fails with EBUSY)
    umount -l /sys
    mount -t sysfs sysfs /sys
    if [[ "$cg_root_fstype" == tmpfs ]]; then
        mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
    fi
    local target fstype opts
    while read -r target fstype opts; do
        [[ -n "$target" ]] || continue
        mkdir -p "$target"
        if [[ "$fstype" == cgroup2 ]]; then
            mount -t cgroup2 cgroup2 "$target"
        else
            # fs-options look like "rw,cpu" or "rw,name=systemd"; drop rw, keep the controllers
            mount -t cgroup -o "${opts#rw,}" cgroup "$target"
        fi
    done <<<"$cg_mounts"

    ip link set lo up
    touch /run/.iptd-sandbox-init
}

# ---------------------------------------------------------------------------------------------
# Daemon lifecycle
# ---------------------------------------------------------------------------------------------

# dk_iptables_shim: directory whose iptables* names point at the chosen backend's binaries.
# Put first in dockerd's PATH: Docker runs whatever `iptables` PATH resolves.
dk_iptables_shim() {
    local shim=$DK_DIR/bin fam op real
    mkdir -p "$shim"
    for fam in iptables ip6tables; do
        for op in "" -save -restore; do
            # iptables-save -> iptables-legacy-save
            real=$(command -v "$fam-$DK_IPTABLES_BACKEND$op" || true)
            [[ -n "$real" ]] || dk_die "$fam-$DK_IPTABLES_BACKEND$op not found (apt-get install iptables)"
            ln -sfn "$real" "$shim/$fam$op"
        done
    done
    echo "$shim"
}

# dk_version_major: major version of the dockerd in use (20 for Debian 12's 20.10.24).
dk_version_major() {
    "${DK_EXEC[@]}" dockerd --version | sed -E 's/^Docker version ([0-9]+)\..*/\1/'
}

# dk_mount_root: $DK_DIR/root, a writable overlay of DK_ROOTFS (the cache is never written),
# with the sandbox's /proc, /sys (+cgroups), /dev and /run bound in, and $DK_DIR/conf and
# $DK_DIR/state at their own paths so that both sides name files alike. Internal; idempotent.
dk_mount_root() {
    local root=$DK_DIR/root d alt
    mountpoint -q "$root" && return 0
    [[ -x "$DK_ROOTFS/usr/sbin/dockerd" ]] || dk_die "$DK_ROOTFS has no dockerd (tests/systemd/rootfs.sh docker builds it)"
    mkdir -p "$root" "$DK_DIR/upper" "$DK_DIR/work"
    mount -t overlay iptd-docker-root \
        -o "lowerdir=$DK_ROOTFS,upperdir=$DK_DIR/upper,workdir=$DK_DIR/work" "$root"
    for d in proc sys dev run; do mount --rbind "/$d" "$root/$d"; done
    for d in "$DK_DIR/conf" "$DK_DIR/state"; do
        mkdir -p "$root$d"
        mount --rbind "$d" "$root$d"
    done
    for alt in iptables ip6tables; do
        chroot "$root" update-alternatives --quiet --set "$alt" "/usr/sbin/$alt-$DK_IPTABLES_BACKEND" ||
            dk_die "update-alternatives --set $alt $alt-$DK_IPTABLES_BACKEND failed in $DK_ROOTFS"
    done
}

# dk_prepare: work dirs, state tmpfs, iptables shim, configs. Internal; idempotent.
dk_prepare() {
    dk_require_sandbox
    [[ -e /run/.iptd-sandbox-init ]] || dk_die "dk_sandbox_init has not run in this namespace"
    local d
    for d in docker ${DK_ROOTFS:+busybox}; do
        command -v "$d" >/dev/null || dk_die "$d not found (apt-get install docker.io)"
    done
    if [[ -z "$DK_ROOTFS" ]]; then
        for d in dockerd containerd runc; do
            command -v "$d" >/dev/null || dk_die "$d not found (apt-get install docker.io)"
        done
    fi
    if [[ -z "${DK_DIR:-}" ]]; then
        DK_DIR=$(mktemp -d /tmp/iptd-dk.XXXXXX)
    fi
    export DK_DIR
    mkdir -p "$DK_DIR/conf" "$DK_RUN"
    # Unique per work dir, so dk_kill_strays can never touch another sandbox's containers.
    : "${DK_CGROUP_PARENT:=/iptd-docker-$(basename "$DK_DIR" | tr -c 'a-zA-Z0-9\n' '-')}"

    # Persistent state (images, containers, containerd content) lives on a tmpfs mounted in THIS
    # mount namespace: it survives dk_restart, and disappears with the namespace even if the
    # cleanup never runs. overlay2 works on tmpfs. Logs stay on disk in $DK_DIR for CI.
    mkdir -p "$DK_DIR/state"
    if ! mountpoint -q "$DK_DIR/state"; then
        mount -t tmpfs -o mode=711,size=1g iptd-docker-state "$DK_DIR/state"
    fi
    DK_SHIM=$(dk_iptables_shim)
    # DK_EXEC: the prefix that runs Docker's programs (containerd, dockerd, ...): chrooted into
    # the overlay of DK_ROOTFS (its own iptables, switched by update-alternatives), or the
    # machine's with the iptables shim first in PATH. Both exec: `$!` is the daemon itself.
    if [[ -n "$DK_ROOTFS" ]]; then
        dk_mount_root
        DK_EXEC=(chroot "$DK_DIR/root")
    else
        DK_EXEC=(env "PATH=$DK_SHIM:$PATH")
    fi

    cat >"$DK_DIR/conf/containerd.toml" <<EOF
version = 2
root = "$DK_DIR/state/containerd"
state = "$DK_RUN/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$DK_RUN/containerd/containerd.sock"
[debug]
  level = "info"
EOF
    # default-address-pools has no CLI flag in 20.10 -> daemon.json
    printf '{ "default-address-pools": [ { "base": "%s", "size": 24 } ] }\n' "$DK_POOL" \
        >"$DK_DIR/conf/daemon.json"

    export DOCKER_HOST="unix://$DK_RUN/docker.sock"
}

# dk_start_containerd: start containerd (own config, root, state and socket; never the host's
# /run/containerd) and wait for its socket.
dk_start_containerd() {
    dk_prepare
    local sock=$DK_RUN/containerd/containerd.sock i
    echo "=== dk_start_containerd $(date -Is)" >>"$DK_DIR/containerd.log"
    "${DK_EXEC[@]}" containerd --config "$DK_DIR/conf/containerd.toml" >>"$DK_DIR/containerd.log" 2>&1 &
    DK_CONTAINERD_PID=$!
    for ((i = 0; i < 150; i++)); do
        [[ -S "$sock" ]] && return 0
        if ! kill -0 "$DK_CONTAINERD_PID" 2>/dev/null; then
            tail -n 30 "$DK_DIR/containerd.log" >&2
            dk_die "containerd exited (log: $DK_DIR/containerd.log)"
        fi
        sleep 0.1
    done
    dk_die "containerd socket $sock did not appear"
}

# dk_start_dockerd: start dockerd against the running containerd and wait for `docker info`.
dk_start_dockerd() {
    dk_prepare
    if [[ -z "$DK_CONTAINERD_PID" ]] || ! kill -0 "$DK_CONTAINERD_PID" 2>/dev/null; then
        dk_die "containerd is not running (dk_start starts both)"
    fi
    local -a args=(
        --host "$DOCKER_HOST"
        --containerd "$DK_RUN/containerd/containerd.sock"
        --data-root "$DK_DIR/state/docker"
        --exec-root "$DK_RUN/docker"
        --pidfile "$DK_RUN/docker.pid"
        --config-file "$DK_DIR/conf/daemon.json"
        --iptables=true
        --ip-forward=true
        --userland-proxy="$DK_USERLAND_PROXY"
        --bip "$DK_BIP"
        --storage-driver overlay2
        --cgroup-parent "$DK_CGROUP_PARENT"
        --shutdown-timeout 3
        --log-level info
    )
    if [[ "$DK_IPV6" == 1 ]]; then
        args+=(--ipv6 --fixed-cidr-v6 2001:db8:d0c::/64 --ip6tables=true)
        if (($(dk_version_major) < 27)); then args+=(--experimental); fi
    fi
    # shellcheck disable=SC2206 # intentional word splitting of extra args
    args+=(${DK_DOCKERD_ARGS})

    {
        echo "=== dk_start_dockerd $(date -Is): dockerd ${args[*]}"
        echo "=== iptables -> $("${DK_EXEC[@]}" sh -c 'readlink -f "$(command -v iptables)"')${DK_ROOTFS:+ (chroot $DK_ROOTFS)}"
    } >>"$DK_DIR/dockerd.log"
    "${DK_EXEC[@]}" dockerd "${args[@]}" >>"$DK_DIR/dockerd.log" 2>&1 &
    DK_DOCKERD_PID=$!

    local deadline=$((SECONDS + DK_START_TIMEOUT))
    until docker info >/dev/null 2>&1; do
        if ! kill -0 "$DK_DOCKERD_PID" 2>/dev/null; then
            tail -n 40 "$DK_DIR/dockerd.log" >&2
            dk_die "dockerd exited during start (log: $DK_DIR/dockerd.log)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 40 "$DK_DIR/dockerd.log" >&2
            dk_die "dockerd not ready after ${DK_START_TIMEOUT}s (log: $DK_DIR/dockerd.log)"
        fi
        sleep 0.2
    done
    dk_log "dockerd $(docker version -f '{{.Server.Version}}') up (pid $DK_DOCKERD_PID, containerd pid $DK_CONTAINERD_PID)"
}

# dk_start: containerd + dockerd, in the current (sandboxed) namespace.
dk_start() {
    dk_start_containerd
    dk_start_dockerd
}

# dk_wait_pid_gone PID SECONDS: wait for a process to exit; returns 1 on timeout.
dk_wait_pid_gone() {
    local pid=$1 t=$2 i
    for ((i = 0; i < t * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    ! kill -0 "$pid" 2>/dev/null
}

# dk_stop_pid NAME PID: SIGTERM, wait up to 20s, then SIGKILL. Reaps it if it is our child.
dk_stop_pid() {
    local name=$1 pid=$2
    [[ -n "$pid" ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    if ! dk_wait_pid_gone "$pid" 20; then
        dk_log "$name (pid $pid) ignored SIGTERM; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        dk_wait_pid_gone "$pid" 5 || dk_log "WARNING: $name (pid $pid) still alive"
    fi
    wait "$pid" 2>/dev/null || true
}

# dk_stop_dockerd: graceful stop of dockerd only (containers are stopped by dockerd itself;
# containerd keeps running). This is what a `systemctl restart docker` does to the daemon.
dk_stop_dockerd() {
    dk_require_sandbox
    local pid=$DK_DOCKERD_PID
    # a dockerd (re)started by a child process (e.g. a with-dockerd.sh command) is found by its
    # pidfile (dockerd removes it on a clean exit)
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
        pid=$(cat "$DK_RUN/docker.pid" 2>/dev/null || true)
    fi
    dk_stop_pid dockerd "$pid"
    DK_DOCKERD_PID=
}

# dk_stop: stop dockerd, then containerd, then sweep leftovers (shims, docker-proxy, container
# processes). Leaves $DK_DIR (logs) in place; dk_cleanup removes it.
dk_stop() {
    dk_stop_dockerd
    dk_stop_pid containerd "$DK_CONTAINERD_PID"
    DK_CONTAINERD_PID=
    dk_kill_strays
}

# dk_restart: stop dockerd gracefully and start it again with the same arguments and state;
# containerd stays up, as with a packaged daemon. Containers with a restart policy come back
# (dk_run_* use unless-stopped). Split into dk_stop_dockerd + dk_start_dockerd to look at the
# firewall while the daemon is down.
dk_restart() {
    dk_stop_dockerd
    dk_start_dockerd
}

# dk_kill_strays: SIGKILL, by PID, every process that belongs to this sandbox's Docker:
#   - dockerd/containerd/containerd-shim*/docker-proxy/runc whose network namespace is ours;
#   - then every process under our --cgroup-parent (DK_CGROUP_PARENT) = container processes.
# Never touches processes of other namespaces (a host dockerd, another sandbox).
dk_kill_strays() {
    dk_require_sandbox
    local mynet pid comm f victims=()
    mynet=$(readlink /proc/self/ns/net)
    for f in /proc/[0-9]*; do
        pid=${f#/proc/}
        [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
        [[ "$(readlink "$f/ns/net" 2>/dev/null)" == "$mynet" ]] || continue # zombies: no ns
        { read -r comm <"$f/comm"; } 2>/dev/null || continue
        case "$comm" in
        dockerd | containerd | containerd-shim* | docker-proxy | runc) victims+=("$pid") ;;
        esac
    done
    if ((${#victims[@]})); then
        dk_log "killing strays: ${victims[*]}"
        kill -KILL "${victims[@]}" 2>/dev/null || true
        dk_wait_gone_or_zombie "${victims[@]}" || true
    fi
    dk_kill_cgroup_procs
    dk_rmdir_cgroups
}

# dk_cleanup [RC]: everything, for `trap dk_cleanup EXIT` (or `dk_cleanup "$rc"` from your own
# trap). Also unmounts the state tmpfs and deletes $DK_DIR, unless DK_KEEP=1 or RC (default: the
# status of the command before) is non-zero: the logs are then left for inspection.
dk_cleanup() {
    local rc=${1:-$?}
    set +e
    dk_in_sandbox || return "$rc"
    dk_stop
    if [[ -n "${DK_DIR:-}" && -d "$DK_DIR" ]]; then
        # overlay mounts of containers first, then the state tmpfs itself
        findmnt -rn -o TARGET | grep -F "$DK_DIR/" | sort -r | while read -r m; do umount -l "$m"; done
        if [[ "${DK_KEEP:-0}" == 1 || $rc -ne 0 ]]; then
            dk_log "keeping $DK_DIR (logs)"
        else
            rm -rf "$DK_DIR"
        fi
    fi
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# Image and containers
# ---------------------------------------------------------------------------------------------

# dk_build_image [NAME]: import NAME (default iptd-busybox), a root of Debian's static busybox
# with applet links for sh, httpd, nc, and friends; /www/index.html says "iptd-ok". `docker
# import` of a tar: no registry, no builder (the same on 20.10 and 28.x).
dk_build_image() {
    local name=${1:-$DK_IMAGE} ctx bb applet
    bb=$(command -v busybox || true)
    [[ -n "$bb" ]] || dk_die "busybox not found (apt-get install busybox-static)"
    ! ldd "$bb" >/dev/null 2>&1 || dk_die "$bb is not static (apt-get install busybox-static)"
    ctx=$(mktemp -d "$DK_DIR/image.XXXXXX")
    mkdir -p "$ctx/bin" "$ctx/www" "$ctx/tmp"
    cp "$bb" "$ctx/bin/busybox"
    for applet in sh ash httpd nc cat echo ls sleep ip ps wget ifconfig netstat id hostname; do
        ln -s busybox "$ctx/bin/$applet"
    done
    echo iptd-ok >"$ctx/www/index.html"
    tar -C "$ctx" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$name" >/dev/null ||
        dk_die "docker import failed"
    rm -rf "$ctx"
    dk_log "image $name imported"
}

# dk_run_httpd NAME HOSTPORT [NETWORK] [extra docker run args...]: container serving /www on
# port 80 (busybox httpd), published as HOSTPORT:80 on all host addresses. NETWORK defaults to
# the default bridge. Restart policy unless-stopped, so it survives dk_restart; stop timeout 1 s
# (busybox as PID 1 ignores SIGTERM, the default 10 s would slow every daemon stop).
# Waits until the port answers from inside the host namespace (via the container address).
dk_run_httpd() {
    local name=$1 hport=$2 net=${3:-bridge}
    shift $(($# < 3 ? $# : 3))
    docker run -d --name "$name" --network "$net" --restart unless-stopped --stop-timeout 1 \
        -p "$hport:80" "$@" "$DK_IMAGE" httpd -f -p 80 -h /www >/dev/null
    dk_wait_container_port "$name" 80
}

# dk_run_nc NAME HOSTPORT [NETWORK] [extra args...]: raw TCP listener (a loop of busybox
# `nc -l -p 80`) that writes "iptd-ok" to each connection; published HOSTPORT:80. For topo_tcp.
dk_run_nc() {
    local name=$1 hport=$2 net=${3:-bridge}
    shift $(($# < 3 ? $# : 3))
    docker run -d --name "$name" --network "$net" --restart unless-stopped --stop-timeout 1 \
        -p "$hport:80" "$@" "$DK_IMAGE" sh -c 'while true; do echo iptd-ok | nc -l -p 80; done' >/dev/null
    dk_wait_container_port "$name" 80
}

# dk_network_create NAME [SUBNET]: user-defined bridge network (subnet from DK_POOL if omitted).
dk_network_create() {
    local name=$1 subnet=${2:-}
    if [[ -n "$subnet" ]]; then
        docker network create --subnet "$subnet" "$name" >/dev/null
    else
        docker network create "$name" >/dev/null
    fi
}

# dk_container_ip NAME: first IPv4 address of a container.
dk_container_ip() {
    docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" | awk '{print $1}'
}

# dk_wait_container_port NAME PORT [TIMEOUT]: wait until CONTAINER_IP:PORT accepts a TCP
# connection from the host namespace (direct to the container, no DNAT involved).
dk_wait_container_port() {
    local name=$1 port=$2 t=${3:-20} ip i
    for ((i = 0; i < t * 10; i++)); do
        ip=$(dk_container_ip "$name" 2>/dev/null || true)
        if [[ -n "$ip" ]] && timeout 1 bash -c "exec 3<>/dev/tcp/$ip/$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    docker logs "$name" >&2 || true
    dk_die "container $name: $ip:$port not answering after ${t}s"
}

# dk_iptables_save [table]: the legacy (or chosen backend's) IPv4 ruleset, counters stripped.
dk_iptables_save() {
    local save=iptables-$DK_IPTABLES_BACKEND-save
    if [[ $# -gt 0 ]]; then "$save" -t "$1"; else "$save"; fi | sed -E '/^#/d; s/\[[0-9]+:[0-9]+\]$/[0:0]/'
}
