# shellcheck shell=bash
# Real-systemd test harness: boot a Debian rootfs (see rootfs.sh) under systemd-nspawn
# with its own network namespace, run commands in it, reboot it, power it off.
#
# Source it from a bash script that runs as root with `set -euo pipefail`:
#
#   . tests/systemd/lib.sh
#   sd_install_trap                        # cleanup on EXIT/INT/TERM
#   sd_mkroot "$(tests/systemd/rootfs.sh)" # throwaway overlay (or copy) of the cache -> $SD_ROOT
#   sd_cp target/release/iptables-docker /usr/local/sbin/iptables-docker
#   sd_boot "$SD_ROOT"                     # waits for running/degraded, sets $SD_PID
#   sd_exec iptables-docker install        # exit code and stdout/stderr of the command
#   sd_reboot                              # reboot via systemd, nspawn exits 133, boot again
#   sd_shutdown                            # poweroff via systemd, wait, kill after timeout
#   # sd_cleanup runs from the trap: shuts down, unmounts, removes the work dir
#
# Several containers per shell: the SD_* variables below describe the current one;
# sd_mkroot makes a new one current (the previous one stays registered), sd_select WORK
# goes back to another (by its $SD_WORK), sd_cleanup_all (the trap) tears them all down.
# To boot several at once: sd_launch each, then sd_select + sd_wait_up each.
# On a private bridge: sd_netns_new NS; sd_netns_exec "$NS" ip link add br0 type bridge
# ...; then sd_attach "$NS" br0 after each sd_mkroot (the container's end is `host0`).
# Several scripts can run concurrently: names, work dirs and cgroups are unique per
# container.
#
# Functions
#   sd_rootfs                print the cached root of $IPTD_SUITE (rootfs.sh builds it)
#   sd_mkroot CACHE_ROOTFS   make $SD_ROOT, a writable throwaway view of CACHE_ROOTFS
#   sd_boot [ROOTFS]         boot ROOTFS (default $SD_ROOT) in the background, wait until up
#   sd_launch [ROOTFS]       start booting, do not wait (then sd_wait_up)
#   sd_wait_up               wait until the launched container is up, set $SD_PID
#   sd_select WORK           make the container whose $SD_WORK is WORK the current one
#   sd_netns_new VAR         a new empty network namespace; VAR gets its path
#   sd_netns_exec NS CMD...  run CMD in network namespace NS (never this machine's own)
#   sd_attach NS BRIDGE      the current container boots with its host0 on BRIDGE in NS
#   sd_exec CMD [ARG...]     run CMD in the container (all its namespaces, clean env)
#   sd_sh 'SCRIPT'           sd_exec sh -c 'SCRIPT'
#   sd_cp HOST_PATH CONTAINER_PATH [MODE]   copy a file or directory into the container
#   sd_reboot                reboot the container, wait until it is up again
#   sd_shutdown              power off, wait for nspawn to exit (kill by PID after timeout)
#   sd_running               true while the nspawn of the current boot is alive
#   sd_log_tail [N]          last N lines of the nspawn console log (stderr)
#   sd_cleanup               idempotent teardown of the current container
#   sd_cleanup_all           sd_cleanup of every container, then the namespaces' holders
#   sd_install_trap          trap sd_cleanup_all on EXIT, INT, TERM
#
# Variables set (exported)
#   SD_WORK        work dir of this container (overlay upper/work, root/, nspawn.log)
#   SD_ROOT        rootfs dir the container boots from (overlay merged dir or copy)
#   SD_NAME        machine name (-M), unique per container
#   SD_PID         host PID of the container's PID 1 (systemd), for nsenter
#   SD_NSPAWN_PID  host PID of the systemd-nspawn process of the current boot
#   SD_LOG         nspawn console log, all boots appended
#   SD_BOOTS       number of boots so far
#   SD_LAST_RC     exit code of nspawn for the last boot that ended (133 = reboot)
#   SD_NETNS, SD_BRIDGE  set by sd_attach: the namespace nspawn runs in, and the bridge
#
# Knobs (environment)
#   IPTD_WORK_DIR         where work dirs are created (default /var/tmp)
#   IPTD_ROOTFS_MODE      overlay | copy (default overlay, falls back to copy)
#   IPTD_BOOT_TIMEOUT     seconds to wait for the container to be up (default 120)
#   IPTD_STOP_TIMEOUT     seconds to wait for poweroff/reboot before killing (default 60)
#   IPTD_KILL_GRACE       seconds between SIGTERM to nspawn and SIGKILL (default 10)
#   IPTD_KEEP_WORK        1 = do not delete the work dir in sd_cleanup (debugging)
#   IPTD_NSPAWN_SCOPE     auto | yes | no: run nspawn in a transient `systemd-run --scope
#                         -p Delegate=yes` (auto = yes when the host runs systemd)
#   IPTD_NSPAWN_ARGS      extra systemd-nspawn arguments (word-split)
#   SYSTEMD_NSPAWN_UNIFIED_HIERARCHY  read by nspawn: 1 = cgroup v2 in the container
#                         (our default when the kernel has cgroup2), 0 = v1 legacy;
#                         set it empty to let nspawn decide (mirrors the host)
#
# Safety: the container always gets --private-network, so every iptables/ufw/nft command
# run through sd_exec acts on the container's own network namespace, never the host's;
# sd_netns_exec refuses to run in this machine's own network namespace.

SD_WORK=${SD_WORK:-}
SD_ROOT=${SD_ROOT:-}
SD_NAME=${SD_NAME:-}
SD_PID=${SD_PID:-}
SD_NSPAWN_PID=${SD_NSPAWN_PID:-}
SD_LOG=${SD_LOG:-}
SD_BOOTS=${SD_BOOTS:-0}
SD_LAST_RC=${SD_LAST_RC:-}
SD_NETNS=
SD_BRIDGE=
SD__MONITOR_PID=
SD__UUID=
SD__DEADLINE=
SD__CGROUPS=()
SD__ALL=()         # the work dirs of every container not cleaned up yet
SD__NETNS_PIDS=()  # the processes holding the namespaces of sd_netns_new
export SD_WORK SD_ROOT SD_NAME SD_PID SD_NSPAWN_PID SD_LOG SD_BOOTS SD_LAST_RC
SD__STATE_VARS=(SD_WORK SD_ROOT SD_NAME SD_PID SD_NSPAWN_PID SD_LOG SD_BOOTS SD_LAST_RC
    SD_NETNS SD_BRIDGE SD__MONITOR_PID SD__UUID SD__DEADLINE SD__CGROUPS)

# PATH/env used for commands inside the container (the host's env is not passed in).
SD_CONTAINER_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

sd__log() { printf 'sd: %s\n' "$*" >&2; }
sd__die() {
    sd__log "error: $*"
    return 1
}

# --- several containers ---------------------------------------------------------------

# Writes the current container's SD_* variables to its work dir.
sd__save() {
    [[ -n $SD_WORK && -d $SD_WORK ]] || return 0
    declare -p "${SD__STATE_VARS[@]}" >"$SD_WORK/sd.state"
}

# sd_select WORK: saves the current container's state, makes WORK's current. In the main
# shell (not in $(...)): it sets the SD_* variables.
sd_select() {
    local work=${1:?usage: sd_select WORK}
    [[ $work != "$SD_WORK" ]] || return 0
    [[ -e $work/sd.state ]] || sd__die "sd_select: $work is no container of this shell" || return
    sd__save
    # declare -p prints `declare -x NAME=...`; -g keeps them global here.
    # shellcheck disable=SC1090
    source <(sed -E 's/^declare -[-a-zA-Z]+ /declare -g /' "$work/sd.state")
}

# --- network namespaces and bridges ---------------------------------------------------

# sd_netns_new VAR: a new network namespace with nothing but a down `lo`, held by a
# sleeping process that sd_cleanup_all kills; VAR gets its path (/proc/PID/ns/net).
sd_netns_new() {
    local var=${1:?usage: sd_netns_new VAR} pid own
    unshare --net sleep infinity </dev/null >/dev/null 2>&1 &
    pid=$!
    SD__NETNS_PIDS+=("$pid")
    own=$(readlink /proc/self/ns/net)
    # Until unshare has switched, /proc/PID/ns/net is still this machine's own namespace.
    while [[ $(readlink "/proc/$pid/ns/net" 2>/dev/null || echo "$own") == "$own" ]]; do
        kill -0 "$pid" 2>/dev/null || sd__die "unshare --net failed" || return
        sleep 0.05
    done
    printf -v "$var" '/proc/%s/ns/net' "$pid"
}

# sd_netns_exec NS CMD [ARG...]: CMD in network namespace NS; refuses this machine's own.
sd_netns_exec() {
    local ns=${1:?usage: sd_netns_exec NS CMD...}
    shift
    [[ $(readlink "$ns") != "$(readlink /proc/self/ns/net)" ]] ||
        sd__die "sd_netns_exec: $ns is this machine's own network namespace" || return
    nsenter --net="$ns" "$@"
}

# sd_attach NS BRIDGE: the current container's nspawn runs in network namespace NS, with
# a veth to BRIDGE there (--network-bridge); inside, the container's end is `host0`.
sd_attach() {
    SD_NETNS=${1:?usage: sd_attach NS BRIDGE}
    SD_BRIDGE=${2:?usage: sd_attach NS BRIDGE}
    [[ $(readlink "$SD_NETNS") != "$(readlink /proc/self/ns/net)" ]] ||
        sd__die "sd_attach: $SD_NETNS is this machine's own network namespace" || return
}

# --- rootfs --------------------------------------------------------------------------

# sd_rootfs: print the path of the cached root of $IPTD_SUITE (default bookworm) that the
# install, .deb and role stories share; built by rootfs.sh when missing. On a suite whose
# own rustc builds the project (not bookworm), Debian's cargo .debs are in its apt cache,
# so `apt-get install cargo` works in the container without network.
sd_rootfs() {
    local rootfs_sh
    rootfs_sh="$(dirname -- "${BASH_SOURCE[0]}")/rootfs.sh"
    if [[ ${IPTD_SUITE:-bookworm} == bookworm ]]; then
        "$rootfs_sh"
    else
        IPTD_ROOTFS_DOWNLOAD=cargo "$rootfs_sh"
    fi
}

# sd_mkroot CACHE_ROOTFS: create $SD_WORK and $SD_ROOT, a writable view of CACHE_ROOTFS,
# as a new current container (the previous one, if any, stays: sd_select).
# overlay: lowerdir=cache (never written), upper/work in $SD_WORK; ~instant.
# copy:    cp -a --reflink=auto; for hosts where overlayfs is unavailable (e.g. the work
#          dir itself is on overlayfs, as inside a Docker container).
sd_mkroot() {
    local cache=${1:?usage: sd_mkroot CACHE_ROOTFS}
    local mode=${IPTD_ROOTFS_MODE:-overlay}
    [[ -d $cache && -e $cache/.iptd-rootfs ]] || sd__die "$cache is not a rootfs built by rootfs.sh" || return
    sd__save
    SD_PID='' SD_NSPAWN_PID='' SD_LAST_RC='' SD_NETNS='' SD_BRIDGE='' SD__MONITOR_PID=''
    SD__DEADLINE='' SD__CGROUPS=()
    mkdir -p "${IPTD_WORK_DIR:-/var/tmp}"
    SD_WORK=$(mktemp -d "${IPTD_WORK_DIR:-/var/tmp}/iptd-sd.XXXXXX")
    SD__ALL+=("$SD_WORK")
    SD_NAME="iptd-${SD_WORK##*.}"
    SD_NAME=${SD_NAME,,} # machine names: lower case is safest
    SD_LOG="$SD_WORK/nspawn.log"
    SD_ROOT="$SD_WORK/root"
    SD_BOOTS=0
    SD__UUID=$(cat /proc/sys/kernel/random/uuid) # stable machine-id across reboots
    : >"$SD_LOG"
    mkdir -p "$SD_ROOT"
    if [[ $mode == overlay ]]; then
        mkdir -p "$SD_WORK/upper" "$SD_WORK/work"
        if mount -t overlay overlay \
            -o "lowerdir=$cache,upperdir=$SD_WORK/upper,workdir=$SD_WORK/work" "$SD_ROOT" 2>>"$SD_LOG"; then
            sd__log "rootfs: overlay of $cache at $SD_ROOT"
        else
            sd__log "overlay mount failed (see $SD_LOG), falling back to a copy"
            mode=copy
        fi
    fi
    if [[ $mode == copy ]]; then
        cp -a --reflink=auto "$cache/." "$SD_ROOT/"
        sd__log "rootfs: copy of $cache at $SD_ROOT"
    elif [[ $mode != overlay ]]; then
        sd__die "IPTD_ROOTFS_MODE must be overlay or copy, not '$mode'"
        return
    fi
    export SD_WORK SD_ROOT SD_NAME SD_LOG SD_BOOTS
    sd__save
}

# --- cgroups -------------------------------------------------------------------------
#
# With --keep-unit, nspawn uses the cgroup it was started in and splits it into
# "supervisor" (itself) and "payload" (the container). Started from the root cgroup (as
# on a host without systemd) that would be /payload for every container: concurrent
# containers would share it and it would be left behind. So, without systemd on the host,
# each boot gets its own cgroup (in name=systemd v1 and in the v2 hierarchy, whichever
# exist) that the launcher moves itself into; removed again when nspawn has exited.
# With systemd on the host, a transient scope with Delegate=yes does the same job.

sd__use_scope() {
    case ${IPTD_NSPAWN_SCOPE:-auto} in
        yes) return 0 ;;
        no) return 1 ;;
        *) [[ -d /run/systemd/system ]] ;;
    esac
}

# Fills SD__CGROUPS with the directories to create for this boot.
sd__cgroup_plan() {
    local line hier path base
    SD__CGROUPS=()
    while IFS= read -r line; do
        hier=${line#*:}
        path=${hier#*:}
        hier=${hier%%:*}
        base=
        if [[ $hier == name=systemd && -d /sys/fs/cgroup/systemd ]]; then
            base=/sys/fs/cgroup/systemd
        elif [[ -z $hier ]]; then # the v2 hierarchy: "0::/path"
            if [[ -e /sys/fs/cgroup/cgroup.controllers ]]; then
                base=/sys/fs/cgroup
            elif [[ -d /sys/fs/cgroup/unified ]]; then
                base=/sys/fs/cgroup/unified
            fi
        fi
        [[ -n $base ]] || continue
        SD__CGROUPS+=("$base${path%/}/$SD_NAME-b$SD_BOOTS")
    done </proc/self/cgroup
}

sd__cgroup_create() {
    local cg ok=()
    sd__cgroup_plan
    for cg in "${SD__CGROUPS[@]}"; do
        if mkdir -p "$cg" 2>/dev/null; then
            ok+=("$cg")
        else
            sd__log "warning: cannot create cgroup $cg; nspawn will use the current one"
        fi
    done
    SD__CGROUPS=("${ok[@]}")
}

# Remove this boot's cgroups, deepest first (nspawn/container sub-cgroups included).
sd__cgroup_remove() {
    local cg d
    for cg in "${SD__CGROUPS[@]}"; do
        [[ -d $cg ]] || continue
        while IFS= read -r d; do
            rmdir "$d" 2>/dev/null || sd__log "warning: could not remove cgroup $d"
        done < <(find "$cg" -depth -type d 2>/dev/null)
    done
    SD__CGROUPS=()
}

# --- boot / exec ---------------------------------------------------------------------

sd_running() {
    [[ -n $SD_NSPAWN_PID ]] && kill -0 "$SD_NSPAWN_PID" 2>/dev/null
}

sd_log_tail() {
    [[ -n $SD_LOG && -e $SD_LOG ]] || return 0
    sd__log "--- last ${1:-40} lines of $SD_LOG ---"
    tail -n "${1:-40}" "$SD_LOG" >&2
}

# Host PID of the container's PID 1: the child of nspawn whose innermost PID is 1.
sd__find_leader() {
    local c nspid
    for c in $(pgrep -P "$SD_NSPAWN_PID" 2>/dev/null); do
        nspid=$(awk '/^NSpid:/ { print $NF }' "/proc/$c/status" 2>/dev/null) || continue
        if [[ $nspid == 1 ]]; then
            printf '%s\n' "$c"
            return 0
        fi
    done
    return 1
}

# sd_boot [ROOTFS]: boot in the background, wait for the container's systemd to be up
# (is-system-running: running or degraded), set SD_PID / SD_NSPAWN_PID.
sd_boot() {
    sd_launch "$@" && sd_wait_up
}

# sd_launch [ROOTFS]: start nspawn booting ROOTFS (default $SD_ROOT) in the background;
# sets SD_NSPAWN_PID. sd_wait_up waits for it (other containers can launch meanwhile).
sd_launch() {
    local root=${1:-$SD_ROOT}
    local -a wrap=() extra=()
    [[ -n $root && -d $root ]] || sd__die "sd_boot: no rootfs dir '$root'" || return
    [[ -n $SD_WORK ]] || sd__die "sd_boot: call sd_mkroot first" || return
    ! sd_running || sd__die "sd_boot: container already running (nspawn PID $SD_NSPAWN_PID)" || return
    command -v systemd-nspawn >/dev/null || sd__die "systemd-nspawn not installed (apt-get install systemd-container)" || return

    SD_BOOTS=$((SD_BOOTS + 1))
    SD_PID=
    SD_LAST_RC=
    rm -f "$SD_WORK/nspawn.pid" "$SD_WORK/nspawn.rc"
    read -r -a extra <<<"${IPTD_NSPAWN_ARGS:-}"
    if [[ -n $SD_NETNS ]]; then
        # nsenter execs (no fork for a network namespace): $! stays nspawn's PID.
        # sd_attach checked that SD_NETNS is not this machine's own namespace.
        wrap=(nsenter --net="$SD_NETNS")
        extra+=("--network-bridge=$SD_BRIDGE")
    fi
    if sd__use_scope; then
        SD__CGROUPS=()
        wrap+=(systemd-run --quiet --scope --collect -p Delegate=yes --unit="$SD_NAME-b$SD_BOOTS")
    else
        sd__cgroup_create
    fi
    printf '\n===== %s boot %d: %s =====\n' "$(date -u +%H:%M:%S)" "$SD_BOOTS" "$root" >>"$SD_LOG"

    # The monitor subshell moves itself into this boot's cgroups, starts nspawn, records
    # its PID and, when it ends, its exit code (133 = the container asked for a reboot).
    (
        set +e
        exec </dev/null >>"$SD_LOG" 2>&1
        # Pure cgroup v2 inside the container, as on a default Debian 12 host, whatever
        # the host's layout (works from a hybrid host too). Override by setting it.
        if [[ -z ${SYSTEMD_NSPAWN_UNIFIED_HIERARCHY+set} ]]; then
            if grep -qw cgroup2 /proc/filesystems; then
                export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
            fi
        elif [[ -z $SYSTEMD_NSPAWN_UNIFIED_HIERARCHY ]]; then
            unset SYSTEMD_NSPAWN_UNIFIED_HIERARCHY # set but empty: nspawn decides
        fi
        for cg in "${SD__CGROUPS[@]}"; do
            echo "$BASHPID" >"$cg/cgroup.procs" || echo "sd: warning: could not join $cg"
        done
        "${wrap[@]}" systemd-nspawn --boot --private-network --register=no --keep-unit \
            --machine="$SD_NAME" --uuid="$SD__UUID" --console=read-only \
            --directory="$root" "${extra[@]}" &
        echo "$!" >"$SD_WORK/nspawn.pid"
        wait "$!"
        echo "$?" >"$SD_WORK/nspawn.rc.tmp"
        mv "$SD_WORK/nspawn.rc.tmp" "$SD_WORK/nspawn.rc"
    ) &
    SD__MONITOR_PID=$!

    SD__DEADLINE=$((SECONDS + ${IPTD_BOOT_TIMEOUT:-120}))
    while [[ ! -s $SD_WORK/nspawn.pid ]]; do
        ((SECONDS < SD__DEADLINE)) || { sd_log_tail 40; sd__die "nspawn did not start"; return; }
        sleep 0.1
    done
    SD_NSPAWN_PID=$(<"$SD_WORK/nspawn.pid")
    export SD_NSPAWN_PID SD_BOOTS
    sd__save
}

# sd_wait_up: wait until the container sd_launch started is up (is-system-running:
# running or degraded, within IPTD_BOOT_TIMEOUT of its launch); sets SD_PID.
sd_wait_up() {
    local deadline=${SD__DEADLINE:?sd_wait_up: sd_launch first} state=
    local timeout=${IPTD_BOOT_TIMEOUT:-120}
    while ! SD_PID=$(sd__find_leader); do
        if ! sd_running; then
            sd__wait_exit 5 || true
            sd_log_tail 40
            sd__die "systemd-nspawn exited during boot (rc=${SD_LAST_RC:-?})"
            return
        fi
        ((SECONDS < deadline)) || { sd_log_tail 40; sd__die "no container PID 1 after ${timeout}s"; return; }
        sleep 0.1
    done
    export SD_PID

    # systemctl fails until the container's systemd has its private socket: retry. Once
    # connected, --wait blocks until the boot has finished (the inner timeout bounds it).
    while :; do
        state=$(sd_exec timeout "$((deadline - SECONDS > 1 ? deadline - SECONDS : 1))" \
            systemctl is-system-running --wait 2>/dev/null) || true
        case $state in
            running | degraded) break ;;
        esac
        if ! sd_running; then
            sd__wait_exit 5 || true
            sd_log_tail 40
            sd__die "systemd-nspawn exited during boot (rc=${SD_LAST_RC:-?})"
            return
        fi
        if ((SECONDS >= deadline)); then
            sd_log_tail 40
            sd_exec systemctl list-jobs --no-pager >&2 || true
            sd__die "container not up after ${timeout}s (state: '${state:-unknown}')"
            return
        fi
        sleep 0.2
    done
    if [[ $state == degraded ]]; then
        sd__log "boot $SD_BOOTS: degraded; failed units:"
        sd_exec systemctl --failed --no-pager --no-legend >&2 || true
    fi
    sd__log "boot $SD_BOOTS: $state (nspawn PID $SD_NSPAWN_PID, container PID 1 = $SD_PID)"
    sd__save
}

# sd_exec CMD [ARG...]: run CMD inside the container, in all of its namespaces (mount,
# pid, net, uts, ipc, cgroup), its root and cwd /, with a clean environment. stdin,
# stdout, stderr and the exit code are CMD's.
sd_exec() {
    [[ -n $SD_PID ]] && kill -0 "$SD_PID" 2>/dev/null || sd__die "sd_exec: container is not running" || return
    nsenter --target "$SD_PID" --all --root --wd \
        env -i PATH="$SD_CONTAINER_PATH" HOME=/root LANG=C.UTF-8 TERM=dumb \
        SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# sd_sh 'SCRIPT' [ARG...]: run a shell snippet inside the container.
sd_sh() {
    sd_exec sh -c "$@"
}

# sd_cp HOST_PATH CONTAINER_PATH [MODE]: copy a file (or a directory tree) into the
# container. CONTAINER_PATH is absolute; a trailing / means "into this directory".
# Parent directories are created. Works whether the container runs or not:
#  - running: streamed through tar inside the container, so the container's own symlinks
#    (e.g. /bin -> usr/bin) are resolved in the container, never on the host;
#  - stopped: written under $SD_ROOT, refusing paths whose resolution leaves $SD_ROOT.
sd_cp() {
    local src=${1:?usage: sd_cp HOST_PATH CONTAINER_PATH [MODE]} dst=${2:?usage: sd_cp HOST_PATH CONTAINER_PATH [MODE]}
    local mode=${3:-}
    [[ -e $src ]] || sd__die "sd_cp: $src does not exist" || return
    [[ $dst == /* ]] || sd__die "sd_cp: container path must be absolute: $dst" || return
    if [[ $dst == */ ]]; then
        dst="$dst$(basename -- "$src")"
    fi
    local dir name
    dir=$(dirname -- "$dst")
    name=$(basename -- "$dst")
    if [[ -n $SD_PID ]] && sd_running; then
        # tar -C srcparent srcname, renamed to $name on extraction via --transform.
        # $1.. in the single-quoted script are expanded by the container's sh.
        # shellcheck disable=SC2016
        tar -C "$(dirname -- "$src")" --owner=0 --group=0 --numeric-owner \
            --transform="s|^$(basename -- "$src" | sed 's/[.[\*^$|]/\\&/g')|$name|S" \
            -cf - "$(basename -- "$src")" |
            sd_exec sh -c 'mkdir -p "$1" && tar -C "$1" --no-same-owner -xf - && { [ -z "$2" ] || chmod "$2" "$1/$3"; }' \
                sd_cp "$dir" "$mode" "$name"
    else
        [[ -n $SD_ROOT && -d $SD_ROOT ]] || sd__die "sd_cp: no rootfs (sd_mkroot first)" || return
        local hostdir rootdir
        # Resolve before creating anything: an absolute symlink inside the rootfs would
        # otherwise point mkdir/cp at the host's own directories.
        rootdir=$(realpath -- "$SD_ROOT")
        hostdir=$(realpath -m -- "$rootdir$dir")
        [[ $hostdir == "$rootdir" || $hostdir == "$rootdir"/* ]] ||
            sd__die "sd_cp: $dir resolves outside the rootfs ($hostdir); boot the container first" || return
        mkdir -p -- "$hostdir"
        [[ ! -L $hostdir/$name ]] || rm -f -- "$hostdir/$name"
        cp -a --no-preserve=ownership -T -- "$src" "$hostdir/$name"
        chown -R 0:0 -- "$hostdir/$name"
        [[ -z $mode ]] || chmod "$mode" -- "$hostdir/$name"
    fi
}

# --- stop / reboot -------------------------------------------------------------------

# sd__wait_exit SECONDS: wait for the current nspawn (and its monitor) to end; set
# SD_LAST_RC; drop this boot's cgroups. Returns 1 on timeout.
sd__wait_exit() {
    local deadline=$((SECONDS + ${1:-60}))
    while sd_running || { [[ -n $SD__MONITOR_PID ]] && kill -0 "$SD__MONITOR_PID" 2>/dev/null; }; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
    # The monitor is our child: reap it (ignore "not a child" when called from a subshell).
    [[ -z $SD__MONITOR_PID ]] || wait "$SD__MONITOR_PID" 2>/dev/null || true
    SD_LAST_RC=$(cat "$SD_WORK/nspawn.rc" 2>/dev/null || echo unknown)
    SD_NSPAWN_PID=
    SD_PID=
    SD__MONITOR_PID=
    export SD_LAST_RC SD_NSPAWN_PID SD_PID
    sd__cgroup_remove
}

# Last resort, each step only if the previous one did not end nspawn: SIGTERM to nspawn
# (it forwards SIGRTMIN+3 = orderly poweroff to the container's PID 1); SIGKILL to the
# container's PID 1 (takes down its whole PID namespace; nspawn then exits by itself and
# reaps it); SIGKILL to nspawn; SIGKILL to the monitor subshell. Only ever PIDs this
# library started.
sd__kill() {
    local leader=$SD_PID grace=${IPTD_KILL_GRACE:-10}
    if sd_running; then
        sd__log "sending SIGTERM to nspawn PID $SD_NSPAWN_PID"
        kill -TERM "$SD_NSPAWN_PID" 2>/dev/null || true
        sd__wait_exit "$grace" && return 0
    fi
    if sd_running && [[ -n $leader ]]; then
        sd__log "sending SIGKILL to container PID 1 (host PID $leader)"
        kill -KILL "$leader" 2>/dev/null || true
        sd__wait_exit 5 && return 0
    fi
    if sd_running; then
        sd__log "sending SIGKILL to nspawn PID $SD_NSPAWN_PID"
        kill -KILL "$SD_NSPAWN_PID" 2>/dev/null || true
        sd__wait_exit 5 && return 0
    fi
    if [[ -n $SD__MONITOR_PID ]] && kill -0 "$SD__MONITOR_PID" 2>/dev/null; then
        kill -KILL "$SD__MONITOR_PID" 2>/dev/null || true
    fi
    sd__wait_exit 5 || sd__log "warning: nspawn PID $SD_NSPAWN_PID still there after SIGKILL"
}

# sd__ctl VERB (poweroff or reboot): asks the container's systemd for VERB with the signal
# systemd(1) documents for it, sent from the host to its PID 1 (SIGRTMIN+4 starts
# poweroff.target, SIGRTMIN+5 reboot.target: what `systemctl --no-block VERB` starts).
# No process of ours runs inside a PID namespace that is shutting down: as `nsenter ...
# timeout 10 systemctl VERB`, the suite had that nsenter stopped (state T, in CI as well as
# from a terminal), its exited child never reaped, so the container's PID 1 waited for it
# (in zap_pid_ns_processes) until the test's own timeout.
sd__ctl() {
    local signal
    case $1 in
        poweroff) signal=SIGRTMIN+4 ;;
        reboot) signal=SIGRTMIN+5 ;;
        *) sd__die "sd__ctl: unknown verb $1"; return ;;
    esac
    [[ -z $SD_PID ]] || kill -s "$signal" "$SD_PID" 2>/dev/null || true
}

# sd_shutdown: power off, wait up to IPTD_STOP_TIMEOUT, then kill. Returns 0 when the
# container powered off cleanly (nspawn exit code 0), 1 otherwise.
sd_shutdown() {
    sd_running || return 0
    sd__ctl poweroff
    if ! sd__wait_exit "${IPTD_STOP_TIMEOUT:-60}"; then
        sd__log "container did not power off within ${IPTD_STOP_TIMEOUT:-60}s"
        sd__kill
        return 1
    fi
    if [[ $SD_LAST_RC != 0 ]]; then
        sd__log "nspawn exited with $SD_LAST_RC on poweroff"
        return 1
    fi
    sd__log "powered off"
}

# sd_reboot: a reboot of the container through its systemd (sd__ctl). systemd-nspawn does
# not restart the container itself: it exits with code 133 ("reboot requested";
# systemd-nspawn@.service restarts on it), so we start a new nspawn on the same rootfs,
# whose state survives.
sd_reboot() {
    sd_running || sd__die "sd_reboot: container is not running" || return
    sd__ctl reboot
    if ! sd__wait_exit "${IPTD_STOP_TIMEOUT:-60}"; then
        sd__log "container did not go down for reboot within ${IPTD_STOP_TIMEOUT:-60}s"
        sd__kill
        sd__die "reboot failed"
        return
    fi
    [[ $SD_LAST_RC == 133 ]] || { sd_log_tail 40; sd__die "nspawn exited with $SD_LAST_RC, expected 133 (reboot)"; return; }
    sd_boot "$SD_ROOT"
}

# --- cleanup -------------------------------------------------------------------------

# sd_cleanup: stop the container if still up, unmount the overlay, delete the work dir.
# Idempotent; never fails (it runs from traps).
sd_cleanup() {
    sd__teardown "$?"
}

# sd__teardown RC: sd_cleanup's work; RC is the exit status being cleaned up after
# (IPTD_KEEP_WORK_ON_FAILURE), and its return value.
sd__teardown() {
    local rc=$1 errexit=0 w kept=()
    [[ $- != *e* ]] || errexit=1
    set +e
    if sd_running; then
        sd__log "cleanup: container still running, shutting down"
        IPTD_STOP_TIMEOUT=${IPTD_CLEANUP_STOP_TIMEOUT:-20} sd_shutdown >/dev/null 2>&1 || sd__kill
    fi
    sd__cgroup_remove
    if [[ -n $SD_WORK && -d $SD_WORK ]]; then
        if mountpoint -q "$SD_ROOT" 2>/dev/null; then
            umount "$SD_ROOT" 2>/dev/null || umount -l "$SD_ROOT" ||
                sd__log "warning: could not unmount $SD_ROOT"
        fi
        if [[ ${IPTD_KEEP_WORK:-0} == 1 || $rc != 0 && ${IPTD_KEEP_WORK_ON_FAILURE:-0} == 1 ]]; then
            sd__log "cleanup: keeping $SD_WORK (log: $SD_LOG)"
        elif mountpoint -q "$SD_ROOT" 2>/dev/null; then
            sd__log "warning: $SD_ROOT still mounted, not deleting $SD_WORK"
        else
            rm -rf --one-file-system -- "$SD_WORK"
        fi
    fi
    for w in "${SD__ALL[@]}"; do
        [[ $w == "$SD_WORK" ]] || kept+=("$w")
    done
    SD__ALL=("${kept[@]}")
    SD_WORK='' SD_ROOT='' SD_NAME='' SD_PID='' SD_NSPAWN_PID='' SD_LOG='' SD__MONITOR_PID=''
    ((errexit == 0)) || set -e
    return "$rc"
}

# sd_shutdown_all: power every running container off at once, then wait for each
# (sd_shutdown). Returns 1 if any did not power off cleanly.
sd_shutdown_all() {
    local w bad=0
    for w in "${SD__ALL[@]}"; do
        sd_select "$w"
        ! sd_running || sd__ctl poweroff
    done
    for w in "${SD__ALL[@]}"; do
        sd_select "$w"
        sd_shutdown || bad=1
    done
    return "$bad"
}

# sd_cleanup_all: sd_cleanup of every container of this shell, then the processes that
# hold sd_netns_new's namespaces (by PID). Never fails; returns the status it was called
# with (it runs from traps).
sd_cleanup_all() {
    local rc=$? pid
    while ((${#SD__ALL[@]} > 0)); do
        if ! sd_select "${SD__ALL[0]}" 2>/dev/null; then
            SD__ALL=("${SD__ALL[@]:1}")
            continue
        fi
        sd__teardown "$rc" || true
    done
    for pid in "${SD__NETNS_PIDS[@]}"; do
        { kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; } || true
    done
    SD__NETNS_PIDS=()
    return "$rc"
}

sd_install_trap() {
    trap 'sd_cleanup_all' EXIT
    trap 'sd_cleanup_all; trap - EXIT; exit 130' INT
    trap 'sd_cleanup_all; trap - EXIT; exit 143' TERM
}
