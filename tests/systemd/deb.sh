#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The Debian package (packaging/deb.sh) on a real systemd: a booted Debian (rootfs.sh,
# lib.sh; bookworm, or IPTD_SUITE=trixie) with Docker-like rules in iptables-nft and ufw
# enabled.
#
# Usage (as root): IPTD_DEB=target/debian/iptables-docker_*.deb tests/systemd/deb.sh
#
# Checks, in order: `dpkg -i` runs the binary's own `install --packaged` (ufw off,
# iptables -> legacy, Docker's rules moved, the service enabled and active with the
# policy), the man page and bash completion are in place, the journal has one line per
# action; an edited conffile is applied by `systemctl reload`, and kept by a reinstall
# (the upgrade path, which restarts the service); `apt-get remove` restores ufw, the
# alternatives and Docker's rules in nft and keeps the config; `apt-get purge` removes
# config and state: the host ends exactly as it started.
# Prints "ok"/"FAIL" lines; exits non-zero on any failure.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

# shellcheck source=checks.sh
. "$here/checks.sh"

[[ $(id -u) -eq 0 ]] || { echo "deb.sh: must run as root" >&2; exit 1; }
deb=${IPTD_DEB:?set IPTD_DEB to the .deb under test}
[[ -f $deb ]] || { echo "deb.sh: $deb not found" >&2; exit 1; }

docker_rules='*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT'

# What the package may change and removal must put back (empty tables left out: once
# created in the legacy backend they stay until its modules are unloaded).
state() {
    sd_sh '
        for g in iptables ip6tables; do update-alternatives --query $g | grep -E "^(Name|Status|Value):"; done
        echo "iptables -V: $(iptables -V)"
        echo "ufw: $(ufw status | head -n 1), $(grep ^ENABLED= /etc/ufw/ufw.conf)"
        for u in ufw iptables-docker; do
            echo "$u.service: $(systemctl is-enabled $u.service 2>&1) $(systemctl is-active $u.service 2>&1)"
        done
        echo "package: $(dpkg-query -W -f="\${db:Status-Status}" iptables-docker 2>&1)"
        for b in legacy nft; do for c in iptables ip6tables; do
            echo "== $c-$b-save"
            $c-$b-save 2>/dev/null | grep -v "^#" | sed -E "s/ \[[0-9]+:[0-9]+\]\$//"
        done; done
        for p in /usr/sbin/iptables-docker /lib/systemd/system/iptables-docker.service /etc/iptables-docker /var/lib/iptables-docker /usr/share/man/man8/iptables-docker.8.gz; do
            echo "== $p"; find "$p" -printf "%M %p\n" 2>&1 | sort
        done' |
        awk '/^\*/ { buf = $0 "\n"; keep = 0; table = 1; next }
             table && /^COMMIT$/ { if (keep) printf "%s%s\n", buf, $0; table = 0; next }
             table { buf = buf $0 "\n"; if (/^-A / || (/^:/ && $2 != "ACCEPT")) keep = 1; next }
             { print }'
}
section() { awk -v s="== $2" '$0 == s { on = 1; next } /^== / { on = 0 } on' <<<"$1"; }
host_part() { sed -n '1,/^== iptables-legacy-save/p' <<<"$1" | grep -v '^iptables-docker.service: \|^package: '; }

rootfs=$(sd_rootfs)
sd_install_trap
sd_mkroot "$rootfs"
sd_cp "$deb" /root/iptables-docker.deb
sd_boot

echo "# setup: Docker's rules in iptables-nft, ufw enabled"
sd_sh 'iptables-nft-restore' <<<"$docker_rules"
# ufw's first enable in a fresh network namespace misses two IPv6 rules: enable twice.
run sh -c 'ufw --force enable && ufw disable && ufw --force enable' >/dev/null
original=$(state)
expect_in "ufw active before the package" "ufw: Status: active, ENABLED=yes" "$original"
expect_in "iptables uses nft before the package" "(nf_tables)" "$original"

echo "# dpkg -i"
out=$(run dpkg -i /root/iptables-docker.deb)
printf '%s\n' "$out" | sed 's/^/       | /'
expect_in "dpkg -i: postinst runs install --packaged" "install: done" "$out"
expect_in "  exit code 0" "[exit 0]" "$out"
expect_in "  moved Docker's rules from nft to legacy" "from iptables-nft to iptables-legacy" "$out"
after=$(state)
expect_in "package installed" "package: installed" "$after"
expect_in "ufw inactive" "ufw: Status: inactive, ENABLED=no" "$after"
expect_in "ufw.service disabled and stopped" "ufw.service: disabled inactive" "$after"
expect_in "iptables -> legacy" "(legacy)" "$after"
expect_in "iptables-docker.service enabled and active" "iptables-docker.service: enabled active" "$after"
legacy4=$(section "$after" iptables-legacy-save)
expect_in "host policy in the kernel: INPUT DROP" ":INPUT DROP" "$legacy4"
expect_in "  Docker's rules kept" "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE" "$legacy4"
expect_in "unit runs the packaged binary" "ExecStart=/usr/sbin/iptables-docker start" "$(sd_exec cat /lib/systemd/system/iptables-docker.service)"
expect_in "config and template are conffiles" $'/etc/iptables-docker/config.toml\n/etc/iptables-docker/policy.rules.j2' "$(sd_exec cat /var/lib/dpkg/info/iptables-docker.conffiles)"
out=$(run sh -c 'zcat /usr/share/man/man8/iptables-docker.8.gz | head -n 5')
expect_in "man page installed" '.TH iptables-docker 8' "$out"
out=$(run bash --norc -c '. /usr/share/bash-completion/completions/iptables-docker && complete -p iptables-docker')
expect_in "bash completion installed and loads" "-F _iptables__docker iptables-docker" "$out"
out=$(run systemd-analyze verify /lib/systemd/system/iptables-docker.service)
expect_in "systemd-analyze verify: clean" "[exit 0]" "$out"
expect_in "status: ON, the running ruleset matches the policy" "iptables-docker: ON: " "$(run iptables-docker status)"
journal=$(run journalctl -u iptables-docker --no-pager -o cat)
expect_in "journal: what was kept and removed" "IPv4: kept " "$journal"
expect_in "journal: how long it took" "start: done in " "$journal"

echo "# conffile edited, reload"
sd_sh 'printf "\n[[allow]]\ndescription = \"test\"\nproto = \"tcp\"\nport = 8443\n" >>/etc/iptables-docker/config.toml'
expect_in "systemctl reload" "[exit 0]" "$(run systemctl reload iptables-docker.service)"
expect_in "  the edited config is in the kernel" "-p tcp -m tcp --dport 8443" "$(sd_exec iptables-legacy-save)"
journal=$(run journalctl -u iptables-docker --no-pager -o cat)
expect_in "  journal: the reload's line" "Reloaded iptables-docker" "$journal"

echo "# reinstall (the upgrade path)"
out=$(run dpkg -i --force-confold /root/iptables-docker.deb)
printf '%s\n' "$out" | sed 's/^/       | /'
expect_in "dpkg -i again" "[exit 0]" "$out"
expect_not_in "  no new install record" "recorded the host" "$out"
expect_in "  the service restarted" "iptables-docker.service restarted" "$out"
expect_in "  the edited conffile kept" "port = 8443" "$(sd_exec cat /etc/iptables-docker/config.toml)"
expect_in "  and applied" "-p tcp -m tcp --dport 8443" "$(sd_exec iptables-legacy-save)"
expect_in "  service active" "active" "$(run systemctl is-active iptables-docker.service)"

echo "# apt-get remove"
out=$(run apt-get remove -y iptables-docker)
printf '%s\n' "$out" | sed 's/^/       | /'
expect_in "apt-get remove: prerm runs uninstall" "uninstall: done" "$out"
expect_in "  exit code 0" "[exit 0]" "$out"
removed=$(state)
expect_in "package removed, config left" "package: config-files" "$removed"
expect_same "alternatives and ufw exactly as before the package" "$(host_part "$original")" "$(host_part "$removed")"
expect_in "ufw active and enabled again" "ufw.service: enabled active" "$removed"
expect_same "Docker's rules back in nft exactly as before" \
    "$(section "$original" iptables-nft-save)" "$(section "$removed" iptables-nft-save)"
expect_unit_gone "unit gone" "$removed"
expect_in "binary gone" "No such file" "$(section "$removed" /usr/sbin/iptables-docker)"
expect_in "config kept" "/etc/iptables-docker/config.toml" "$(section "$removed" /etc/iptables-docker)"

echo "# apt-get purge"
out=$(run apt-get purge -y iptables-docker)
expect_in "apt-get purge" "[exit 0]" "$out"
final=$(state)
expect_same_host "host exactly as at the start (rules, alternatives, ufw, files)" "$original" "$final"

echo "# shutdown"
if sd_shutdown; then pass "clean poweroff"; else fail "poweroff (nspawn exit code $SD_LAST_RC)"; fi
sd_cleanup

checks_done
