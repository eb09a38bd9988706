#!/usr/bin/env bash
# Build (once, cached) a Debian rootfs for the tests, and print its path. Two profiles:
#   systemd  Debian bookworm (or IPTD_SUITE, e.g. trixie) that boots under systemd-nspawn,
#            for the real-systemd tests of `iptables-docker install/uninstall` (the default)
#   docker   Debian sid with docker.io 28.5 (its dockerd is run chrooted by tests/docker/lib.sh)
#
# Usage:
#   tests/systemd/rootfs.sh [PROFILE]            # build if needed, print the cached rootfs path
#   tests/systemd/rootfs.sh --rebuild [PROFILE]  # throw the cache entry away and build again
#
# Environment:
#   IPTD_SUITE            the systemd profile's Debian suite: bookworm (12, the default),
#                         trixie (13), ...
#   IPTD_ROOTFS_CACHE     cache directory (default /var/cache/iptables-docker-tests/$IPTD_SUITE,
#                         /var/cache/iptables-docker-tests/docker-sid for the docker profile)
#   IPTD_DEBIAN_MIRROR    Debian mirror (default http://deb.debian.org/debian)
#   IPTD_ROOTFS_EXTRA     extra packages, space separated (part of the cache key)
#   IPTD_ROOTFS_DOWNLOAD  packages fetched into the root's apt cache (with what they need)
#                         but not installed, so that `apt-get install` of them works in a
#                         container without network, as from the archive (part of the key)
#   IPTD_ROOTFS_KEEP_OLD  1 = keep entries of the same package list built by an older
#                         rootfs.sh (default: prune them; other package lists are kept)
#
# The only thing written to stdout is the path of the finished rootfs; progress and
# debootstrap output go to stderr. The cache entry is NEVER modified by tests: use
# sd_mkroot (lib.sh) to get a throwaway copy/overlay of it.
#
# Cache layout:
#   $IPTD_ROOTFS_CACHE/.lock               flock, serialises concurrent builders (of one
#                                          suite; different suites build side by side)
#   $IPTD_ROOTFS_CACHE/rootfs-<key>/       finished rootfs (only ever created by rename)
#   $IPTD_ROOTFS_CACHE/.build-<key>.XXXX/  build in progress (removed on failure)
# <key> is a hash of this script's own text, the suite, the architecture and the
# package list, so editing the package list (or the build steps) rebuilds.
set -euo pipefail

log() { printf 'rootfs.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

rebuild=0 profile=systemd
while (($#)); do
    case $1 in
    --rebuild) rebuild=1 ;;
    systemd | docker) profile=$1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done

VARIANT=minbase
case $profile in
systemd)
    SUITE=${IPTD_SUITE:-bookworm} CACHE_NAME=${IPTD_SUITE:-bookworm}
    # Packages on top of minbase. systemd + systemd-sysv make /sbin/init systemd; dbus is
    # needed by systemctl/hostnamectl & co; iptables/ufw are what the tests are about;
    # python3-apt is for the Ansible role's apt module (python3 comes with ufw), in every
    # root so that all the stories of one suite share one cache entry.
    PACKAGES=(systemd systemd-sysv dbus iptables ufw procps iproute2 kmod python3-apt)
    ;;
docker)
    # sid's docker.io is 28.5.2: the >= 28.0.1 chain layout (DOCKER-FORWARD, raw guards).
    SUITE=sid CACHE_NAME=docker-sid
    PACKAGES=(docker.io docker-cli containerd runc iptables iproute2 busybox-static python3-minimal)
    ;;
esac

CACHE_DIR=${IPTD_ROOTFS_CACHE:-/var/cache/iptables-docker-tests/$CACHE_NAME}
MIRROR=${IPTD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
read -r -a EXTRA <<<"${IPTD_ROOTFS_EXTRA:-}"
PACKAGES+=("${EXTRA[@]}")
read -r -a DOWNLOAD <<<"${IPTD_ROOTFS_DOWNLOAD:-}"

[[ $SUITE =~ ^[a-z]+$ ]] || die "IPTD_SUITE must be a Debian suite name, not '$SUITE'"
[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap)"
command -v debootstrap >/dev/null || die "debootstrap not installed (apt-get install debootstrap)"
command -v flock >/dev/null || die "flock not installed (util-linux)"

arch=$(dpkg --print-architecture)
# Sorted, de-duplicated package list, so the order of IPTD_ROOTFS_EXTRA does not matter.
mapfile -t PACKAGES < <(printf '%s\n' "${PACKAGES[@]}" | sort -u)
key=$(
    {
        printf 'suite=%s variant=%s arch=%s\n' "$SUITE" "$VARIANT" "$arch"
        printf 'pkg=%s\n' "${PACKAGES[@]}"
        printf 'download=%s\n' "${DOWNLOAD[@]}"
        cat "${BASH_SOURCE[0]}"
    } | sha256sum | cut -c1-16
)

# Remove a directory tree that may still have mounts below it (a debootstrap killed
# mid-way can leave proc/sys mounted in the target). Unmount deepest first, then
# delete without crossing into any filesystem we failed to unmount.
safe_rm() {
    local dir=$1 m
    [[ -e $dir ]] || return 0
    dir=$(realpath -- "$dir")
    [[ $dir == "$CACHE_DIR"/* ]] || die "refusing to remove $dir (outside $CACHE_DIR)"
    # /proc/self/mounts field 2 is the mount point (spaces escaped as \040; ours have none).
    while read -r m; do
        umount -l -- "$m" || true
    done < <(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
    rm -rf --one-file-system -- "$dir"
}

mkdir -p "$CACHE_DIR"
CACHE_DIR=$(realpath -- "$CACHE_DIR")
final="$CACHE_DIR/rootfs-$key"

# Serialise builders: a second concurrent caller waits, then finds the cache ready.
exec 9>"$CACHE_DIR/.lock"
flock 9

if [[ $rebuild -eq 1 && -d $final ]]; then
    log "--rebuild: removing $final"
    safe_rm "$final"
fi

if [[ -d $final ]]; then
    log "cache hit: $final"
    printf '%s\n' "$final"
    exit 0
fi

# Leftovers of builds that died (we hold the lock, so none is running).
for d in "$CACHE_DIR"/.build-*; do
    [[ -e $d ]] || continue
    log "removing stale build dir $d"
    safe_rm "$d"
done

build=$(mktemp -d "$CACHE_DIR/.build-$key.XXXXXX")
bootstrap_pid=
# On failure or interruption: stop debootstrap (its own process group, so dpkg and
# friends go too) before deleting the half-built tree under its feet.
cleanup_build() {
    local rc=$? i
    if [[ -n $bootstrap_pid ]] && kill -0 "$bootstrap_pid" 2>/dev/null; then
        log "stopping debootstrap (process group $bootstrap_pid)"
        kill -TERM -- "-$bootstrap_pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$bootstrap_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$bootstrap_pid" 2>/dev/null || true
        wait "$bootstrap_pid" 2>/dev/null || true
    fi
    if [[ -n ${build:-} && -e $build ]]; then
        log "build failed (rc=$rc), removing $build"
        safe_rm "$build"
    fi
}
trap cleanup_build EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$build"

log "building $SUITE/$VARIANT rootfs ($arch) from $MIRROR"
log "packages: ${PACKAGES[*]}"
start=$SECONDS
include=$(IFS=,; echo "${PACKAGES[*]}")
# In the background, in its own session/process group (setsid does not fork here: a
# background job of a non-interactive shell is not a group leader), so that `wait` can
# be interrupted by INT/TERM and the whole group killed by cleanup_build.
keyring=()
# Explicit keyring: on non-Debian hosts (Ubuntu CI runners) debootstrap's default may not
# be Debian's; there, apt-get install debian-archive-keyring.
[[ ! -r /usr/share/keyrings/debian-archive-keyring.gpg ]] ||
    keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
# bg_wait CMD...: run CMD that way and wait for it.
bg_wait() {
    setsid "$@" </dev/null >&2 &
    bootstrap_pid=$!
    wait "$bootstrap_pid"
    bootstrap_pid=
}
# Two stages: the first downloads and unpacks (network, no package script runs); the second
# configures in a private net+mount+pid namespace with invoke-rc.d refused, so that no
# maintainer script (docker.io's starts dockerd) can start a daemon in the machine's own
# namespaces, or leave one running.
bg_wait debootstrap --foreign --variant="$VARIANT" --arch="$arch" --components=main \
    "${keyring[@]}" --include="$include" "$SUITE" "$build" "$MIRROR"
printf '#!/bin/sh\nexit 101\n' >"$build/usr/sbin/policy-rc.d"
chmod 755 "$build/usr/sbin/policy-rc.d"
bg_wait unshare --net --mount --propagation private --pid --fork --mount-proc \
    chroot "$build" /debootstrap/debootstrap --second-stage
rm -f "$build/usr/sbin/policy-rc.d"

# debootstrap's resolver is not apt's: check every requested package really is installed.
for p in "${PACKAGES[@]}"; do
    # shellcheck disable=SC2016 # ${...} is a dpkg-query format, not shell
    status=$(chroot "$build" dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ $status == installed ]] || die "package $p not installed in rootfs (status: '${status:-missing}')"
done

# --- configuration for booting under nspawn ---------------------------------------

configure_for_nspawn() {
    [[ -L $build/sbin/init || -e $build/sbin/init ]] || die "no /sbin/init in rootfs"
    echo iptd-test >"$build/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tiptd-test\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
        >"$build/etc/hosts"
    # Empty machine-id: systemd generates one on first boot (each test copy gets its own).
    : >"$build/etc/machine-id"
    rm -f "$build/var/lib/dbus/machine-id"
    # apt inside the container (not used by the tests, but keeps the image sane).
    printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$build/etc/apt/sources.list"
    # No login prompts on the (read-only, logged) console: nothing reads them, and agetty
    # on a non-interactive console only adds noise and restarts.
    ln -sf /dev/null "$build/etc/systemd/system/console-getty.service"
    ln -sf /dev/null "$build/etc/systemd/system/getty@.service"
    ln -sf /dev/null "$build/etc/systemd/system/serial-getty@.service"
    # Nothing to fetch in a --private-network container; keep apt's timers from running.
    ln -sf /dev/null "$build/etc/systemd/system/apt-daily.timer"
    ln -sf /dev/null "$build/etc/systemd/system/apt-daily-upgrade.timer"
    # Persistent journal, so a test can read the previous boot's log after sd_reboot
    # (journalctl -b -1). The console (nspawn log file) still shows systemd's status lines.
    mkdir -p "$build/etc/systemd/journald.conf.d"
    printf '[Journal]\nForwardToConsole=no\nStorage=persistent\n' \
        >"$build/etc/systemd/journald.conf.d/iptd-test.conf"
}
# The docker profile's root is only ever chrooted into (tests/docker/lib.sh).
[[ $profile != systemd ]] || configure_for_nspawn

# Small image: drop downloaded .debs.
rm -f "$build"/var/cache/apt/archives/*.deb "$build"/var/cache/apt/*.bin
if ((${#DOWNLOAD[@]})); then
    # Fresh package lists (apt-cache policy shows the candidates), then the .debs alone.
    log "downloading (not installing): ${DOWNLOAD[*]}"
    cp /etc/resolv.conf "$build/etc/resolv.conf"
    chroot "$build" apt-get update -qq >&2
    chroot "$build" apt-get install -qq --download-only --no-install-recommends -y \
        "${DOWNLOAD[@]}" >&2 </dev/null
    rm -f "$build/etc/resolv.conf" "$build"/var/cache/apt/*.bin
fi

# Record what this is.
{
    printf 'key=%s\nsuite=%s\nvariant=%s\narch=%s\nmirror=%s\nbuilt=%s\n' \
        "$key" "$SUITE" "$VARIANT" "$arch" "$MIRROR" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'package=%s\n' "${PACKAGES[@]}"
    printf 'download=%s\n' "${DOWNLOAD[@]}"
} >"$build/.iptd-rootfs"

# Publish atomically: a rootfs-<key> directory only ever exists complete.
mv -T -- "$build" "$final"
build=
trap - EXIT INT TERM
log "built $final in $((SECONDS - start))s"

if [[ ${IPTD_ROOTFS_KEEP_OLD:-0} != 1 ]]; then
    for d in "$CACHE_DIR"/rootfs-*; do
        [[ -d $d && $d != "$final" ]] || continue
        # Only what this build replaces: the same packages by an older rootfs.sh. Another
        # package list is another suite's (which may be booted from it right now).
        [[ $(grep '^package=' "$d/.iptd-rootfs" 2>/dev/null) == "$(printf 'package=%s\n' "${PACKAGES[@]}")" ]] ||
            continue
        # A test of another checkout may be booted on it (the overlay's lower dir).
        if grep -qF "lowerdir=$d," /proc/self/mounts; then
            log "keeping old cache entry $d: a container runs on it"
            continue
        fi
        log "pruning old cache entry $d"
        safe_rm "$d"
    done
fi

printf '%s\n' "$final"
