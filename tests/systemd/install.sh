#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `iptables-docker install` / `uninstall` on a real systemd: a booted Debian (rootfs.sh,
# lib.sh; bookworm, or IPTD_SUITE=trixie) with Docker-like rules in iptables-nft, ufw
# enabled and a firewalld stand-in (a unit named firewalld.service) enabled and running.
#
# Usage (as root): IPTD_BIN=target/debug/iptables-docker [IPTD_SUITE=trixie] tests/systemd/install.sh
#
# The repository's tracked files are copied in as a user's clone (/home/admin/iptables-docker),
# and `sudo ./install` runs from there for that user. On Debian 12 its rustc (1.63) is too
# old: ./install must say so, and a stand-in cargo "builds" IPTD_BIN. On Debian 13 it is
# Debian's own cargo (1.85, the rust-version), which `./install --with-distro-rust` installs
# from the archive (its .debs are in the root's apt cache: the container has no network)
# and which builds the release binary offline from the crates tests/systemd/vendor.sh
# fetched — the proof that Cargo.toml's rust-version holds.
#
# Checks, in order:
#   - refusals that change nothing: no systemd as PID 1, a missing iptables-legacy binary
#     (with the package hint), the SSH lockout guard (and that it accepts a session the
#     policy admits), --config; an install whose service fails to start (a policy the
#     kernel rejects) puts the host back exactly;
#   - the top-level ./install script: without cargo, what to run (apt-get install cargo
#     or rustup, by the distribution's rustc); with a cargo, builds and installs;
#   - install: ufw inactive and disabled, firewalld stopped/disabled/masked, iptables and
#     ip6tables -> legacy, Docker's rules moved out of nft in one restore, service active
#     with the policy, man page and bash completion installed, `systemd-analyze verify`
#     clean, reload/status work; a Docker restart
#     advised while (a stand-in) docker.service runs;
#   - a second install changes nothing; an upgrade replaces the binary, keeps an edited
#     config and restarts the service;
#   - reboot: the policy is loaded before network-pre.target; Docker rules added later are
#     kept by a reload;
#   - uninstall: ufw, firewalld and the alternatives exactly as before, Docker's rules back
#     in nft, unit, binary, man page and bash completion gone, config kept; a second
#     uninstall is a no-op;
#   - install again + `uninstall --purge`, and `--backend nft` + `uninstall --purge`: the
#     host ends exactly as it started.
# Prints "ok"/"FAIL" lines and "# timings: ..."; exits non-zero on any failure.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

# shellcheck source=checks.sh
. "$here/checks.sh"

[[ $(id -u) -eq 0 ]] || { echo "install.sh: must run as root" >&2; exit 1; }
bin=${IPTD_BIN:?set IPTD_BIN to the iptables-docker binary under test}
[[ -x $bin ]] || { echo "install.sh: $bin is not executable" >&2; exit 1; }

# Docker 27's rules for two bridges and a published port, as Docker writes them.
docker_rules='*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o bridge1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o bridge1 -j DOCKER
-A FORWARD -i bridge1 ! -o bridge1 -j ACCEPT
-A FORWARD -i bridge1 -o bridge1 -j ACCEPT
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d 192.0.2.2/32 ! -i bridge1 -o bridge1 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i bridge1 ! -o bridge1 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o bridge1 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 192.0.2.0/24 ! -o bridge1 -j MASQUERADE
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A POSTROUTING -s 192.0.2.2/32 -d 192.0.2.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
-A DOCKER -i bridge1 -j RETURN
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i bridge1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.2:80
COMMIT'
docker_rule_count=$(grep -c '^-A ' <<<"$docker_rules")

# The host's state that install may change and uninstall must put back, counters,
# comments and empty tables stripped.
state() {
    sd_sh '
        for g in iptables ip6tables; do update-alternatives --query $g | grep -E "^(Name|Status|Value):"; done
        echo "iptables -V: $(iptables -V)"
        echo "ufw: $(ufw status | head -n 1), $(grep ^ENABLED= /etc/ufw/ufw.conf)"
        for u in ufw firewalld iptables-docker; do
            echo "$u.service: $(systemctl is-enabled $u.service 2>&1) $(systemctl is-active $u.service 2>&1)"
        done
        for b in legacy nft; do for c in iptables ip6tables; do
            echo "== $c-$b-save"
            $c-$b-save 2>/dev/null | grep -v "^#" | sed -E "s/ \[[0-9]+:[0-9]+\]\$//"
        done; done
        for p in /usr/local/sbin /usr/local/share /etc/systemd/system/iptables-docker.service /etc/iptables-docker /var/lib/iptables-docker; do
            echo "== $p"; find "$p" -printf "%M %s %p\n" 2>&1 | sort
        done' | drop_empty_tables
}
# Empty tables (ACCEPT policies, no rules) filter nothing, and once created in the legacy
# backend they stay until its kernel modules are unloaded: left out of the comparisons.
drop_empty_tables() {
    awk '/^\*/ { buf = $0 "\n"; keep = 0; table = 1; next }
         table && /^COMMIT$/ { if (keep) printf "%s%s\n", buf, $0; table = 0; next }
         table { buf = buf $0 "\n"; if (/^-A / || (/^:/ && $2 != "ACCEPT")) keep = 1; next }
         { print }'
}
# before_network_pre PROPERTY LABEL: our unit's PROPERTY (a monotonic time: when it became
# active, or when its start exited) is before network-pre.target became active.
before_network_pre() {
    local ours pre
    ours=$(sd_exec systemctl show -p "$1" --value iptables-docker.service)
    pre=$(sd_exec systemctl show -p ActiveEnterTimestampMonotonic --value network-pre.target)
    if ((ours > 0 && pre > 0 && ours <= pre)); then
        pass "$2 before network-pre.target ($ours <= $pre us)"
    else
        fail "$2 not before network-pre.target (ours $ours, network-pre $pre)"
    fi
}
section() { awk -v s="== $2" '$0 == s { on = 1; next } /^== / { on = 0 } on' <<<"$1"; }
rules_of() { sd_sh "$1-save 2>/dev/null | grep -c '^-A $2' || true"; }

suite=${IPTD_SUITE:-bookworm}
# Debian 12's rustc is older than the rust-version: no real build there (see above).
distro_cargo=1
[[ $suite != bookworm ]] || distro_cargo=0
t0=$(now)
rootfs=$(sd_rootfs)
((!distro_cargo)) || crates=$("$here/vendor.sh")
t_rootfs=$(since "$t0")
sd_install_trap
sd_mkroot "$rootfs"
sd_cp "$bin" /root/iptables-docker 0755
built=/root/iptables-docker # in the container: the binary ./install builds
t1=$(now)
sd_boot
t_boot=$(since "$t1")
iptables_v=$(sd_exec iptables-legacy -V | awk '{ print $2 }')

# The admin's clone (what git tracks, as in the working tree) and, on Debian 13, the
# crates it needs in their ~/.cargo, as after a `cargo fetch`.
sd_exec useradd --create-home --shell /bin/bash admin
mkdir "$SD_WORK/clone"
git -C "$here/../.." ls-files -z | tar -C "$here/../.." --null -T - -cf - | tar -C "$SD_WORK/clone" -xf -
sd_cp "$SD_WORK/clone" /home/admin/iptables-docker
if ((distro_cargo)); then
    sd_cp "$crates/vendor" /home/admin/.cargo/vendor
    sd_cp "$crates/config.toml" /home/admin/.cargo/config.toml
else
    sd_cp "$bin" /home/admin/iptables-docker-under-test 0755
fi
sd_exec chown -R admin: /home/admin
# `sudo ./install` by the admin, over SSH to port 22: root, sudo's secure_path (as
# sd_exec's PATH), SUDO_USER (the rootfs has no sudo: its environment, set by hand).
sudo_install() {
    run env SUDO_USER=admin SSH_CONNECTION="198.51.100.7 40000 10.0.0.1 22" \
        /home/admin/iptables-docker/install "$@"
}

echo "# setup: Docker's rules in iptables-nft, ufw enabled, a firewalld running"
sd_sh 'iptables-nft-restore' <<<"$docker_rules"
# ufw's very first enable in a fresh network namespace misses two IPv6 rules (ufw6-user-
# limit; a ufw quirk, any later enable has them): enable, disable, enable.
run sh -c 'ufw --force enable && ufw disable && ufw --force enable' >/dev/null
# A stand-in for firewalld: what install does to it goes through systemctl only. Under
# /lib (like a package's unit), so that `systemctl mask` works as on a real host.
# A docker.service stand-in too, running during the first install only: install must say
# that a Docker restart is advisable after the move.
sd_sh 'for u in firewalld docker; do
           printf "[Unit]\nDescription=$u stand-in\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n" >/lib/systemd/system/$u.service
       done
       systemctl daemon-reload && systemctl enable --quiet --now firewalld.service'
original=$(state)
expect_in "ufw active before install" "ufw: Status: active, ENABLED=yes" "$original"
expect_in "firewalld stand-in running" "firewalld.service: enabled active" "$original"
expect_in "iptables uses nft before install" "iptables -V: iptables $iptables_v (nf_tables)" "$original"
expect_eq "Docker's rules in iptables-nft" "$docker_rule_count" "$(($(rules_of iptables-nft "") - $(sd_sh 'iptables-nft-save | grep -c "^-A .*ufw"')))"

t2=$(now)
echo "# refusals change nothing"
out=$(run unshare --mount sh -c 'mount -t tmpfs none /run/systemd && /root/iptables-docker install')
expect_in "without systemd as PID 1: refused, exit 150" "systemd is not running as PID 1" "$out"
expect_in "  exit code 150" "[exit 150]" "$out"
sd_sh 'mv /usr/sbin/ip6tables-legacy-restore /root/hidden'
# (auto would take nft without it: the legacy refusal is asked for explicitly)
out=$(run /root/iptables-docker --backend legacy install)
sd_sh 'mv /root/hidden /usr/sbin/ip6tables-legacy-restore'
expect_in "without ip6tables-legacy-restore: refused" '`ip6tables-legacy-restore` was not found' "$out"
expect_in "  with the package to install" "apt-get install iptables" "$out"
expect_in "  exit code 5 (LSB: not installed)" "[exit 5]" "$out"
out=$(run env SSH_CONNECTION="203.0.113.9 40000 10.0.0.1 2222" /root/iptables-docker install)
expect_in "SSH session to port 2222 under a port-22 policy: refused" "would not accept new SSH connections from 203.0.113.9 (port 2222)" "$out"
expect_in "  exit code 151" "[exit 151]" "$out"
out=$(run /root/iptables-docker --config /root/x.toml install)
expect_in "install --config: refused (install always uses /etc/iptables-docker/config.toml)" "install always uses /etc/iptables-docker/config.toml" "$out"
expect_in "  exit code 6 (LSB: not configured)" "[exit 6]" "$out"
expect_same "refusals left the host exactly as it was" "$original" "$(state)"

echo "# install validates the policy before it changes anything"
sd_sh 'mkdir -p /etc/iptables-docker && printf "template = \"bad.j2\"\n" >/etc/iptables-docker/config.toml
       printf "*filter\n:INPUT DROP [0:0]\n-A INPUT -m no-such-match -j ACCEPT\nCOMMIT\n" >/etc/iptables-docker/bad.j2'
before=$(state)
out=$(run /root/iptables-docker install)
expect_in "a policy the kernel rejects: refused by iptables-restore --test" "policy does not load" "$out"
expect_not_in "  before any change (no record, nothing to put back)" "install: recorded" "$out"
expect_in "  exit code 6 (bad configuration)" "[exit 6]" "$out"
expect_same "  the host is exactly as before (rules, alternatives, ufw, firewalld, files)" "$before" "$(state)"
sd_sh 'rm -r /etc/iptables-docker'
expect_same "  (and as at the start once the test's config is gone)" "$original" "$(state)"
t_refusals=$(since "$t2")

echo "# ./install from the admin's clone"
out=$(sudo_install)
expect_in "without cargo: a clear message" "cargo (Rust) was not found" "$out"
if ((distro_cargo)); then
    expect_in "  naming Debian's cargo" "This distribution's Rust is new enough (rustc 1.85" "$out"
    expect_in "  the command" "      apt-get install cargo" "$out"
    expect_in "  and --with-distro-rust" "sudo ./install --with-distro-rust" "$out"
else
    expect_in "  Debian's rustc too old" "This distribution's Rust is too old (rustc 1.63" "$out"
    expect_in "  pointing at rustup" "https://rustup.rs" "$out"
    expect_in "  exit code 5 (LSB: not installed)" "[exit 5]" "$out"
    out=$(sudo_install --with-distro-rust)
    expect_in "--with-distro-rust: refused, the distribution's rustc is too old" "this distribution has no rustc >= 1.85" "$out"
fi
expect_in "  exit code 5 (LSB: not installed)" "[exit 5]" "$out"
expect_same "  nothing changed" "$original" "$(state)"
if ((!distro_cargo)); then
    # A cargo where rustup puts one, whose `build --release` produces the binary under test.
    sd_sh 'mkdir -p /home/admin/.cargo/bin && printf "#!/bin/sh\n[ \"\$1 \$2 \$3\" = \"build --release --locked\" ] || exit 2\nmkdir -p target/release && cp /home/admin/iptables-docker-under-test target/release/iptables-docker\n" >/home/admin/.cargo/bin/cargo && chmod 755 /home/admin/.cargo/bin/cargo && chown -R admin: /home/admin/.cargo'
fi
sd_exec systemctl start docker.service
# An admin host in a namespace of the container (10.9.9.2 -> 10.9.9.1), an sshd stand-in
# (a socket unit on 22) and a service on 5432 that ufw and the policy both close. During
# the whole install a probe tries 5432 every 20 ms (each try waits up to 0.5 s for the
# SYN-ACK): a window where INPUT is open would let one through.
sd_sh 'socket_unit() {
           printf "[Socket]\nListenStream=%s\nAccept=yes\n" "$2" >/run/systemd/system/$1.socket
           printf "[Service]\nExecStart=%s\nStandardInput=socket\n" "$3" >/run/systemd/system/$1@.service
       }
       socket_unit sshd-standin 22 "/bin/sleep 600"
       socket_unit probe-target 5432 /bin/true
       systemctl daemon-reload && systemctl start sshd-standin.socket probe-target.socket
       ip netns add admin && ip link add adm0 type veth peer name adm1 netns admin
       ip addr add 10.9.9.1/24 dev adm0 && ip link set adm0 up
       ip -n admin addr add 10.9.9.2/24 dev adm1 && ip -n admin link set adm1 up
       printf "%s\n" "while :; do" "echo try >>/run/probe.log" \
           "(timeout 0.5 bash -c \"exec 3<>/dev/tcp/10.9.9.1/5432\" 2>/dev/null && echo OPEN >>/run/probe.log) &" \
           "sleep 0.02" "done" >/root/probe.sh
       systemd-run --quiet --unit=probe ip netns exec admin bash /root/probe.sh'
t3=$(now)
if ((distro_cargo)); then
    out=$(sudo_install --with-distro-rust)
    built=/home/admin/iptables-docker/target/release/iptables-docker
else
    out=$(sudo_install)
fi
t_install=$(since "$t3")
sleep 0.6
sd_exec systemctl stop probe.service
tries=$(sd_sh 'grep -c try /run/probe.log || true')
opened=$(sd_sh 'grep -c OPEN /run/probe.log || true')
if ((tries > 50)); then pass "a probe ran during the whole install ($tries tries to 5432)"; else fail "the probe ran $tries tries only"; fi
expect_eq "  none reached 5432 (closed by ufw, then by the policy)" "0" "$opened"
ssh_ok() { sd_sh 'ip netns exec admin timeout 2 bash -c "exec 3<>/dev/tcp/10.9.9.1/22"' && echo open || echo blocked; }
expect_eq "  (the probe works: ssh from the admin connects under the policy)" "open" "$(ssh_ok)"
printf '%s\n' "$out" | sed 's/^/       | /'
if ((distro_cargo)); then
    expect_in "--with-distro-rust: apt-get install cargo (from the archive)" "installing this distribution's cargo (rustc 1.85" "$out"
    expect_in "  Debian's cargo builds the project offline (rust-version holds)" "install: building the release binary with /usr/bin/cargo (rustc 1.85" "$out"
    expect_in "  as the admin: target/ is theirs" "admin" "$(sd_exec stat -c %U /home/admin/iptables-docker/target/release/iptables-docker)"
else
    expect_in "the cargo in ~/.cargo/bin found through sudo" "building the release binary with /home/admin/.cargo/bin/cargo" "$out"
fi
expect_in "sudo ./install over SSH to port 22: builds and installs" "install: done:" "$out"
expect_in "  exit code 0" "[exit 0]" "$out"
expect_in "  moved Docker's rules (and ufw's leftovers) from nft to legacy" "from iptables-nft to iptables-legacy in one restore per family" "$out"
expect_in "  ufw off without its teardown" "ufw off (ENABLED=no in /etc/ufw/ufw.conf); its rules stay loaded" "$out"
expect_in "  advises restarting the running Docker" "Docker is running: its rules now live in iptables-legacy" "$out"
sd_exec systemctl stop docker.service

echo "# after install"
after=$(state)
expect_in "ufw inactive" "ufw: Status: inactive, ENABLED=no" "$after"
expect_in "ufw.service disabled and stopped" "ufw.service: disabled inactive" "$after"
expect_in "firewalld masked and stopped" "firewalld.service: masked inactive" "$after"
expect_in "iptables -> legacy" "iptables -V: iptables $iptables_v (legacy)" "$after"
expect_in "iptables alternative set to legacy" $'Name: iptables\nStatus: manual\nValue: /usr/sbin/iptables-legacy' "$after"
expect_in "ip6tables alternative set to legacy" $'Name: ip6tables\nStatus: manual\nValue: /usr/sbin/ip6tables-legacy' "$after"
expect_in "iptables-docker.service enabled and active" "iptables-docker.service: enabled active" "$after"
legacy4=$(section "$after" iptables-legacy-save)
expect_in "host policy in the kernel: INPUT DROP" ":INPUT DROP" "$legacy4"
expect_in "  ssh accepted" "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT" "$legacy4"
expect_in "  FORWARD DROP kept" ":FORWARD DROP" "$legacy4"
expect_eq "  every Docker rule kept" "$docker_rule_count" "$(grep -c -- '-A \(DOCKER\|FORWARD\|PREROUTING\|OUTPUT\|POSTROUTING\)' <<<"$legacy4")"
expect_not_in "  no ufw rule left" "ufw" "$legacy4$(section "$after" ip6tables-legacy-save)"
expect_eq "nft holds no rule any more (IPv4)" "0" "$(grep -c '^-A' <<<"$(section "$after" iptables-nft-save)" || true)"
expect_eq "nft holds no rule any more (IPv6)" "0" "$(grep -c '^-A' <<<"$(section "$after" ip6tables-nft-save)" || true)"
expect_in "binary installed 0755" "-rwxr-xr-x $(sd_exec stat -c %s "$built") /usr/local/sbin/iptables-docker" "$after"
expect_in "unit installed" "-rw-r--r--" "$(section "$after" /etc/systemd/system/iptables-docker.service)"
expect_eq "config and template installed 0644" "2" "$(section "$after" /etc/iptables-docker | grep -c '^-rw-r--r-- .*/\(config.toml\|policy.rules.j2\)$')"
expect_in "install record 0600 in a 0700 directory" $'drwx------' "$(section "$after" /var/lib/iptables-docker)"
expect_in "  the record" "-rw------- " "$(section "$after" /var/lib/iptables-docker | grep install-record.toml)"
expect_in "man page installed 0644" "-rw-r--r-- $(sd_exec "$built" man | wc -c) /usr/local/share/man/man8/iptables-docker.8" "$after"
out=$(run bash --norc -c '. /usr/local/share/bash-completion/completions/iptables-docker && complete -p iptables-docker')
expect_in "bash completion installed and loads" "-F _iptables__docker iptables-docker" "$out"
record=$(sd_exec cat /var/lib/iptables-docker/install-record.toml)
expect_in "record: iptables was nft" 'iptables_was = "nft"' "$record"
expect_in "record: ufw was enabled and active" $'[ufw]\nenabled = true\nactive = true\nunit_enabled = true\nunit_active = true' "$record"
expect_in "record: firewalld was enabled and active" $'[firewalld]\nenabled = true\nactive = true\nmasked = false' "$record"
expect_in "record: nft snapshot" "/var/lib/iptables-docker/install/nft-v4.rules" "$record"
expect_eq "snapshot holds the original nft ruleset" "$(section "$original" iptables-nft-save)" \
    "$(sd_sh 'grep -v "^#" /var/lib/iptables-docker/install/nft-v4.rules' | sed -E 's/^\[[0-9]+:[0-9]+\] //; s/ \[[0-9]+:[0-9]+\]$//')"
out=$(run systemd-analyze verify /etc/systemd/system/iptables-docker.service)
expect_eq "systemd-analyze verify: clean" "[exit 0]" "$out"
expect_eq "systemctl reload works under the hardened unit" "[exit 0]" "$(run systemctl reload iptables-docker.service)"
sd_sh 'cp /etc/iptables-docker/config.toml /root/config.good && printf "[ssh]\nport = 70000\n" >> /etc/iptables-docker/config.toml'
out=$(run systemctl reload iptables-docker.service)
expect_in "a bad config: systemctl reload fails" "[exit 1]" "$out"
out=$(run systemctl status --no-pager --lines=20 iptables-docker.service)
expect_in "  systemctl status names the LSB code" "status=6/NOTCONFIGURED" "$out"
sd_sh 'cp /root/config.good /etc/iptables-docker/config.toml && rm /root/config.good'
expect_eq "  with the config fixed, reload works" "[exit 0]" "$(run systemctl reload iptables-docker.service)"
out=$(run iptables-docker status)
expect_in "status: ON, the running ruleset matches the policy" "iptables-docker: ON: " "$out"
expect_in "  and names the active unit" "unit: iptables-docker.service active, enabled" "$out"
expect_in "  and nothing left in nft" "[exit 0]" "$out"
expect_not_in "  no two-rulesets warning" "SPLIT" "$out"

echo "# a second install is a no-op"
stamp() { sd_exec systemctl show -p ActiveEnterTimestampMonotonic --value iptables-docker.service; }
s1=$(stamp)
sum() { sd_sh 'sha256sum /var/lib/iptables-docker/install-record.toml /var/lib/iptables-docker/installed-files /etc/iptables-docker/* /etc/systemd/system/iptables-docker.service /usr/local/sbin/iptables-docker'; }
sums=$(sum)
t4=$(now)
out=$(run "$built" install)
t_noop=$(since "$t4")
expect_in "second install: nothing to change" "install: nothing to change" "$out"
expect_eq "  its only output line" "1" "$(grep -c '^install:' <<<"$out")"
expect_same "  state unchanged" "$after" "$(state)"
expect_eq "  service not restarted" "$s1" "$(stamp)"
expect_same "  record and files unchanged" "$sums" "$(sum)"

echo "# upgrade: new binary, edited config"
sd_sh 'echo "# edited by the admin" >>/etc/iptables-docker/config.toml
       cp "$1" /root/iptables-docker-new && printf "\n#upgrade\n" >>/root/iptables-docker-new' sh "$built"
config=$(sd_exec sha256sum /etc/iptables-docker/config.toml)
out=$(run /root/iptables-docker-new install)
expect_in "upgrade replaces the binary" "install: updated /usr/local/sbin/iptables-docker" "$out"
expect_in "  keeps the edited config" "install: kept /etc/iptables-docker/config.toml" "$out"
expect_in "  restarts the service" "iptables-docker.service restarted" "$out"
expect_eq "  config untouched" "$config" "$(sd_exec sha256sum /etc/iptables-docker/config.toml)"
hash_of() { sd_exec sha256sum "$1" | cut -d' ' -f1; }
expect_eq "  the new binary is installed" "$(hash_of /root/iptables-docker-new)" "$(hash_of /usr/local/sbin/iptables-docker)"
if [[ $(stamp) != "$s1" ]]; then pass "  service restarted (new ActiveEnter timestamp)"; else fail "  service was not restarted"; fi
out=$(run /root/iptables-docker-new install)
expect_in "  then a no-op again" "install: nothing to change" "$out"

echo "# reboot"
t5=$(now)
sd_reboot
t_reboot=$(since "$t5")
boot=$(state)
expect_in "service active after boot" "iptables-docker.service: enabled active" "$boot"
expect_in "policy active after boot" ":INPUT DROP" "$(section "$boot" iptables-legacy-save)"
expect_in "  IPv6 too" ":INPUT DROP" "$(section "$boot" ip6tables-legacy-save)"
expect_in "ufw still off after boot" "ufw.service: disabled inactive" "$boot"
expect_in "firewalld still masked after boot" "firewalld.service: masked inactive" "$boot"
before_network_pre ActiveEnterTimestampMonotonic "policy loaded"
# Docker starting after us: its rules arrive one by one (noflush, no builtin policies).
sd_sh 'iptables-legacy-restore -n' <<<"$(grep -v '^:\(INPUT\|FORWARD\|OUTPUT\|PREROUTING\|POSTROUTING\) ' <<<"$docker_rules")"
expect_eq "reload after Docker added its rules" "[exit 0]" "$(run systemctl reload iptables-docker.service)"
legacy4=$(sd_exec iptables-legacy-save)
expect_eq "  every Docker rule kept" "$docker_rule_count" "$(grep -c -- '-A \(DOCKER\|FORWARD\|PREROUTING\|OUTPUT\|POSTROUTING\)' <<<"$legacy4")"
expect_in "  policy still there" ":INPUT DROP" "$legacy4"

echo "# the lockout guard under systemctl reload: an established ssh session from 10.9.9.2"
# An sshd stand-in (a socket unit on port 22) and an admin in a namespace of the container
# holding a connection to it; the service sees no SSH_CONNECTION.
sd_sh 'printf "[Socket]\nListenStream=22\nAccept=yes\n" >/run/systemd/system/sshd-standin.socket
       printf "[Service]\nExecStart=/bin/sleep 600\nStandardInput=socket\n" >/run/systemd/system/sshd-standin@.service
       systemctl daemon-reload && systemctl start sshd-standin.socket
       ip netns add admin && ip link add adm0 type veth peer name adm1 netns admin
       ip addr add 10.9.9.1/24 dev adm0 && ip link set adm0 up
       ip -n admin addr add 10.9.9.2/24 dev adm1 && ip -n admin link set adm1 up
       systemd-run --quiet --unit=admin-session ip netns exec admin bash -c "exec 3<>/dev/tcp/10.9.9.1/22; sleep 600"
       for i in $(seq 50); do ss -Htn state established "( sport = :22 )" | grep -q 10.9.9.2 && break; sleep 0.1; done'
expect_in "  the session is established" "10.9.9.2" "$(sd_exec ss -Htn state established '( sport = :22 )')"
sd_sh 'cp /etc/iptables-docker/config.toml /root/config.good
       printf "[ssh]\nallow_from = [\"192.0.2.0/24\"]\n" >/etc/iptables-docker/config.toml'
input_before=$(sd_exec iptables-legacy -S INPUT)
out=$(run systemctl reload iptables-docker.service)
expect_not_in "systemctl reload with a policy that would cut the session: refused" "[exit 0]" "$out"
# systemctl returns when the reload has exited; journald may not have read its stderr yet.
why="would not accept new SSH connections from 10.9.9.2 (port 22)"
for _ in $(seq 50); do
    sd_exec journalctl -u iptables-docker -b -n 20 -o cat | grep -qF "$why" && break
    sleep 0.1
done
expect_in "  the journal says why" "$why" "$(sd_exec journalctl -u iptables-docker -b -n 20 -o cat)"
expect_eq "  the running policy is unchanged" "$input_before" "$(sd_exec iptables-legacy -S INPUT)"
expect_in "plan warns about it" "warning: this policy would not accept new SSH connections from 10.9.9.2" "$(run iptables-docker plan)"
out=$(run iptables-docker reload --force)
expect_in "reload --force applies it" "[exit 0]" "$out"
expect_in "  the new policy runs" "-A INPUT -s 192.0.2.0/24 -p tcp -m tcp --dport 22 -j ACCEPT" "$(sd_exec iptables-legacy -S INPUT)"
sd_sh 'cp /root/config.good /etc/iptables-docker/config.toml
       systemctl stop admin-session sshd-standin.socket; ip netns del admin'
expect_eq "  the good config back: systemctl reload" "[exit 0]" "$(run systemctl reload iptables-docker.service)"

echo "# a broken config at boot: the last good policy before network-pre.target, the unit failed"
sd_sh 'sed -i "1i ipv6 = flase" /etc/iptables-docker/config.toml'
sd_reboot
expect_eq "the unit failed" "failed" "$(sd_exec systemctl is-active iptables-docker.service)"
journal=$(sd_exec journalctl -u iptables-docker -b -o cat)
printf '%s\n' "$journal" | sed 's/^/       | /'
expect_in "  the journal names the error" "/etc/iptables-docker/config.toml:1:" "$journal"
expect_in "  and the policy that is active" "failing closed: IPv4: the last good policy (applied" "$journal"
degraded=$(sd_exec iptables-legacy-save)
expect_in "the last good policy is loaded: INPUT DROP" ":INPUT DROP" "$degraded"
expect_in "  ssh accepted" "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT" "$degraded"
expect_in "  IPv6 too" ":INPUT DROP" "$(sd_exec ip6tables-legacy-save)"
before_network_pre ExecMainExitTimestampMonotonic "  loaded (by the failed unit)"
expect_in "status says so" "DEGRADED: the last start could not use the configuration" "$(run iptables-docker status)"
sd_sh 'iptables-legacy-restore -n' <<<"$(grep -v '^:\(INPUT\|FORWARD\|OUTPUT\|PREROUTING\|POSTROUTING\) ' <<<"$docker_rules")"
sd_sh 'cp /root/config.good /etc/iptables-docker/config.toml'
out=$(run systemctl reload iptables-docker.service)
printf '       | systemctl reload of the failed unit: %s\n' "$out"
expect_eq "fixed: systemctl restart (a failed unit cannot be reloaded)" "[exit 0]" "$(run systemctl restart iptables-docker.service)"
expect_not_in "  status no longer degraded" "DEGRADED" "$(run iptables-docker status)"
expect_eq "  every Docker rule (added after the boot) kept" "$docker_rule_count" "$(grep -c -- '-A \(DOCKER\|FORWARD\|PREROUTING\|OUTPUT\|POSTROUTING\)' <<<"$(sd_exec iptables-legacy-save)")"

echo "# stop, a manual start, then uninstall: nothing of ours is moved back"
expect_eq "systemctl stop" "[exit 0]" "$(run systemctl stop iptables-docker.service)"
expect_in "a manual start" "[exit 0]" "$(run iptables-docker start)"
expect_in "  the policy is loaded, the unit inactive" "inactive" "$(sd_exec systemctl is-active iptables-docker.service)"

echo "# uninstall"
t6=$(now)
out=$(run iptables-docker uninstall)
t_uninstall=$(since "$t6")
printf '%s\n' "$out" | sed 's/^/       | /'
expect_in "uninstall succeeds" "uninstall: done" "$out"
expect_in "  exit code 0" "[exit 0]" "$out"
gone=$(state)
host_part() { sed -n '1,/^== iptables-legacy-save/p' <<<"$1"; }
expected_host=$(host_part "$original" | sed 's/^iptables-docker.service: .*/iptables-docker.service: GONE/')
actual_host=$(host_part "$gone" | sed 's/^iptables-docker.service: .*/iptables-docker.service: GONE/')
expect_same "alternatives, ufw, firewalld exactly as before install" "$expected_host" "$actual_host"
expect_in "ufw active and enabled again" "ufw.service: enabled active" "$gone"
expect_unit_gone "unit gone" "$gone"
expect_eq "binary gone: /usr/local/sbin as before install" "$(section "$original" /usr/local/sbin)" "$(section "$gone" /usr/local/sbin)"
expect_in "config kept" "/etc/iptables-docker/config.toml" "$(section "$gone" /etc/iptables-docker)"
expect_eq "man page and completion gone: /usr/local/share as before install" "$(section "$original" /usr/local/share)" "$(section "$gone" /usr/local/share)"
expect_not_in "record gone" "install-record" "$(section "$gone" /var/lib/iptables-docker)"
expect_same "Docker's rules and ufw's back in nft exactly as before" \
    "$(section "$original" iptables-nft-save)" "$(section "$gone" iptables-nft-save)"
expect_same "  IPv6 too" "$(section "$original" ip6tables-nft-save)" "$(section "$gone" ip6tables-nft-save)"
expect_eq "legacy holds no rule" "0" "$(grep -c '^-A' <<<"$(section "$gone" iptables-legacy-save)" || true)"
out=$(run /root/iptables-docker uninstall)
expect_in "second uninstall: nothing to do" "not installed: nothing to undo" "$out"
expect_in "  exit code 0" "[exit 0]" "$out"
expect_same "  state unchanged" "$gone" "$(state)"

# expect_nft_policy STATE: `iptables` still nft, the policy and every Docker rule there.
expect_nft_policy() {
    expect_in "  iptables still nft" "iptables -V: iptables $iptables_v (nf_tables)" "$1"
    expect_in "  policy in iptables-nft" ":INPUT DROP" "$(section "$1" iptables-nft-save)"
    expect_eq "  every Docker rule kept in nft" "$docker_rule_count" "$(grep -c -- '-A \(DOCKER\|FORWARD\|PREROUTING\|OUTPUT\|POSTROUTING\)' <<<"$(section "$1" iptables-nft-save)")"
}

echo "# install again, uninstall --purge: back to the start"
out=$(run /root/iptables-docker install)
expect_in "install after uninstall: records again" "install: recorded the host" "$out"
expect_in "  keeps the config uninstall left" "install: kept /etc/iptables-docker/config.toml" "$out"
out=$(run iptables-docker uninstall --purge)
expect_in "uninstall --purge" "removed /etc/iptables-docker" "$out"
expect_in "  and the state directory" "removed /var/lib/iptables-docker" "$out"
expect_same_host "host exactly as at the start (rules, alternatives, ufw, firewalld, files)" "$original" "$(state)"

echo "# --backend nft"
before=$(state)
out=$(run /root/iptables-docker --backend nft install)
expect_in "install --backend nft" "install: done" "$out"
expect_not_in "  no alternatives switch" "now points to" "$out"
expect_not_in "  no rules moved" "in one restore per family" "$out"
nft=$(state)
expect_nft_policy "$nft"
expect_eq "  legacy untouched" "$(section "$before" iptables-legacy-save)" "$(section "$nft" iptables-legacy-save)"
expect_in "  the unit passes --backend nft" "ExecStart=/usr/local/sbin/iptables-docker --backend nft start" "$(sd_exec cat /etc/systemd/system/iptables-docker.service)"
out=$(run /root/iptables-docker install)
expect_in "  a legacy install on top is refused" "installed for iptables-nft, not iptables-legacy" "$out"
out=$(run iptables-docker uninstall --purge)
expect_in "  uninstall --purge" "uninstall: done" "$out"
expect_same_host "  host exactly as at the start" "$original" "$(state)"

echo "# auto where iptables-legacy is absent (as on RHEL, or once Debian drops it)"
# The legacy binaries really gone, not stand-ins: auto must see it and take nft.
sd_sh 'mkdir -p /root/legacy-gone && mv /usr/sbin/*tables-legacy* /root/legacy-gone/'
out=$(run /root/iptables-docker install)
expect_in "install (auto) takes nft" "backend: iptables-nft (auto: iptables-legacy cannot work here" "$out"
expect_in "  and says why" "is not installed" "$out"
expect_in "  install: done" "install: done" "$out"
expect_not_in "  no alternatives switch" "now points to" "$out"
nft=$(state)
expect_nft_policy "$nft"
expect_in "  ufw still turned off" "ufw: Status: inactive, ENABLED=no" "$nft"
expect_in "  firewalld still masked" "firewalld.service: masked inactive" "$nft"
record=$(sd_exec cat /var/lib/iptables-docker/install-record.toml)
expect_in "  record: backend nft" 'backend = "nft"' "$record"
expect_in "  record: and why" 'backend_reason = "auto: iptables-legacy cannot work here' "$record"
expect_in "  the unit passes --backend nft" "ExecStart=/usr/local/sbin/iptables-docker --backend nft start" "$(sd_exec cat /etc/systemd/system/iptables-docker.service)"
out=$(run iptables-docker status)
expect_in "  status names the backend and why" "backend: iptables-nft (auto: iptables-legacy cannot work here" "$out"
out=$(run iptables-docker uninstall --purge)
expect_in "  uninstall --purge" "uninstall: done" "$out"
sd_sh 'mv /root/legacy-gone/* /usr/sbin/ && rmdir /root/legacy-gone'
expect_same_host "  host exactly as at the start" "$original" "$(state)"

echo "# shutdown"
if sd_shutdown; then pass "clean poweroff"; else fail "poweroff (nspawn exit code $SD_LAST_RC)"; fi
sd_cleanup

printf '# timings: rootfs %ss, boot %ss, refusals+rollback %ss, ./install %ss, no-op install %ss, reboot %ss, uninstall %ss, total %ss\n' \
    "$t_rootfs" "$t_boot" "$t_refusals" "$t_install" "$t_noop" "$t_reboot" "$t_uninstall" "$(since "$t0")"
checks_done
