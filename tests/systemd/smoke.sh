#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Smoke test of the real-systemd harness (rootfs.sh + lib.sh), and a template for the
# iptables-docker install/uninstall tests.
#
# Usage (as root): tests/systemd/smoke.sh
#
# Builds or reuses the cached rootfs, boots a throwaway overlay of it under
# systemd-nspawn (--private-network), and checks inside the container:
#   - files copied from the host arrive (before and after boot);
#   - the container has its own network namespace with only `lo`;
#   - `ufw --force enable` -> `ufw status` active, `systemctl is-enabled ufw` enabled;
#   - `update-alternatives --query iptables` has a current value;
#   - `iptables-legacy -S` works (in the container's netns);
# then reboots it and checks ufw is active again (rules reloaded at boot), that /var
# survived and /run did not, and powers it off. Exits non-zero on any failed expectation.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

# shellcheck source=checks.sh
. "$here/checks.sh"
# run CMD...: run inside the container, capture stdout+stderr, never abort the script.
run() { sd_exec "$@" 2>&1 || printf '[exit code %d]\n' "$?"; }

[[ $(id -u) -eq 0 ]] || { echo "smoke.sh: must run as root" >&2; exit 1; }

t0=$(now)
rootfs=$("$here/rootfs.sh")
t_rootfs=$(since "$t0")

sd_install_trap
sd_mkroot "$rootfs"

# Copy while stopped (written under $SD_ROOT) ...
hostfile=$(mktemp)
printf 'hello from the host\n' >"$hostfile"
sd_cp "$hostfile" /etc/iptd-smoke/marker 0644
rm -f "$hostfile"

t1=$(now)
sd_boot
t_boot=$(since "$t1")

# ... and while running (streamed into the container), with a mode.
hostscript=$(mktemp)
printf '#!/bin/sh\necho script-ran\n' >"$hostscript"
sd_cp "$hostscript" /usr/local/sbin/iptd-smoke 0755
rm -f "$hostscript"

echo "# copies"
expect_eq "file copied before boot" "hello from the host" "$(run cat /etc/iptd-smoke/marker)"
expect_eq "script copied after boot runs" "script-ran" "$(run iptd-smoke)"

echo "# isolation"
host_netns=$(readlink /proc/self/ns/net)
ctr_netns=$(readlink "/proc/$SD_PID/ns/net")
if [[ $host_netns != "$ctr_netns" ]]; then
    pass "container has its own netns ($ctr_netns, host $host_netns)"
else
    fail "container shares the host netns: refusing to touch the firewall"
    exit 1
fi
expect_eq "sd_exec runs in that netns" "$ctr_netns" "$(run readlink /proc/self/ns/net)"
expect_eq "only lo inside" "lo" "$(run ip -o link show | awk -F': ' '{ print $2 }' | tr '\n' ' ' | sed 's/ $//')"
expect_eq "PID 1 is systemd" "systemd" "$(run cat /proc/1/comm)"

echo "# ufw"
expect_in "ufw --force enable" "Firewall is active and enabled on system startup" "$(run ufw --force enable)"
expect_in "ufw status active" "Status: active" "$(run ufw status)"
expect_eq "systemctl is-enabled ufw" "enabled" "$(run systemctl is-enabled ufw)"

echo "# iptables"
alt=$(run update-alternatives --query iptables)
expect_in "update-alternatives --query iptables has a current value" "Value: /usr/sbin/iptables-" "$alt"
printf '       | %s\n' "$(grep -E '^(Status|Value):' <<<"$alt" | tr '\n' ' ')"
expect_in "iptables-legacy -S works" "-P INPUT ACCEPT" "$(run iptables-legacy -S)"
expect_in "ufw chains present (iptables -S)" "-N ufw-before-input" "$(run iptables -S)"

echo "# reboot"
run sh -c 'echo persistent >/var/tmp/iptd-smoke; echo volatile >/run/iptd-smoke' >/dev/null
t2=$(now)
sd_reboot
t_reboot=$(since "$t2")
expect_eq "came back from reboot (boot #2)" "2" "$SD_BOOTS"
expect_eq "/var survived the reboot" "persistent" "$(run cat /var/tmp/iptd-smoke)"
expect_in "/run was cleared by the reboot" "No such file" "$(run cat /run/iptd-smoke)"
expect_in "journal has 2 boots" " -1 " "$(run journalctl --list-boots --no-pager)"
expect_in "ufw status active after reboot" "Status: active" "$(run ufw status)"
expect_eq "ufw.service active after reboot" "active" "$(run systemctl is-active ufw)"
expect_in "ufw rules loaded at boot" "-N ufw-before-input" "$(run iptables -S)"

echo "# shutdown"
t3=$(now)
if sd_shutdown; then pass "clean poweroff (nspawn exit code $SD_LAST_RC)"; else fail "poweroff (nspawn exit code $SD_LAST_RC)"; fi
t_shutdown=$(since "$t3")

root=$SD_ROOT work=$SD_WORK
sd_cleanup
if grep -qF " $root " /proc/self/mounts; then fail "overlay still mounted"; else pass "overlay unmounted"; fi
if [[ -e $work ]]; then fail "work dir $work left behind"; else pass "work dir removed"; fi

printf '# timings: rootfs %ss, boot %ss, reboot %ss, shutdown %ss, total %ss\n' \
    "$t_rootfs" "$t_boot" "$t_reboot" "$t_shutdown" "$(since "$t0")"
checks_done
