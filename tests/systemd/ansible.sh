#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The Ansible role (ansible/) on a real systemd: a booted Debian 12 (bookworm) or, with
# IPTD_SUITE=trixie, 13 (sd_rootfs: the root the install and .deb stories of the suite
# share) with Docker-like rules in iptables-nft and ufw enabled; ansible-core runs inside
# it, connection local.
#
# Usage (as root):
#   IPTD_DEB=path/to.deb IPTD_BIN=path/to/iptables-docker IPTD_ANSIBLE_SITE=DIR tests/systemd/ansible.sh
# IPTD_ANSIBLE_SITE: ansible-core installed for the suite's CPython (3.11 on bookworm,
# 3.13 on trixie) with `pip install --target` (tests/systemd_ansible.rs makes it).
#
# Checks: the example playbook installs the package and templates the config from the
# shell role's variables (rules in the kernel, ufw off); a reboot keeps the policy (the
# unit loads it at boot, ufw stays off; Docker then writes its rules again); a second run
# reports changed=0; a changed variable reloads the service; iptables_docker_uninstall
# (with purge) removes it and leaves ufw, the alternatives and Docker's rules as they
# were; then changed=0 again. The same for the binary method (the role runs
# `iptables-docker install` / `uninstall`).
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

# shellcheck source=checks.sh
. "$here/checks.sh"
# shellcheck source=ansible-lib.sh
. "$here/ansible-lib.sh"

[[ $(id -u) -eq 0 ]] || { echo "ansible.sh: must run as root" >&2; exit 1; }
deb=${IPTD_DEB:?set IPTD_DEB to the .deb}
bin=${IPTD_BIN:?set IPTD_BIN to the iptables-docker binary (the binary method)}
site=${IPTD_ANSIBLE_SITE:?set IPTD_ANSIBLE_SITE to an ansible-core --target directory}
[[ -d $site/ansible ]] || { echo "ansible.sh: no ansible in $site" >&2; exit 1; }

docker_rules='*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT'

state() {
    sd_sh '
        for g in iptables ip6tables; do update-alternatives --query $g | grep -E "^(Name|Status|Value):"; done
        echo "ufw: $(ufw status | head -n 1), $(grep ^ENABLED= /etc/ufw/ufw.conf)"
        echo "ufw.service: $(systemctl is-enabled ufw.service) $(systemctl is-active ufw.service)"
        echo "package: $(dpkg-query -W -f="\${db:Status-Status}" iptables-docker 2>&1)"
        echo "== nft"; iptables-nft-save | grep "^-A"
        for p in /etc/iptables-docker /var/lib/iptables-docker; do
            echo "== $p"; find "$p" -printf "%M %p\n" 2>&1 | sort
        done'
}
# play [EXTRA ARGS]: the example playbook, in the container, connection local.
play() {
    run "${ansible_env[@]}" python3 -m ansible playbook -i localhost, -c local \
        -e target=localhost -e ansible_become=false -e ansible_python_interpreter=/usr/bin/python3 \
        -e iptables_docker_deb=/root/iptables-docker.deb /root/ansible/playbook.yml "$@"
}

rootfs=$(sd_rootfs)
sd_install_trap
sd_mkroot "$rootfs"
sd_cp "$deb" /root/iptables-docker.deb
sd_cp "$bin" /root/iptables-docker 0755
sd_cp "$site" /opt/ansible
sd_cp "$here/../../ansible" /root/ansible
sd_boot

echo "# setup: Docker's rules in iptables-nft, ufw enabled"
sd_sh 'iptables-nft-restore' <<<"$docker_rules"
run sh -c 'ufw --force enable && ufw disable && ufw --force enable' >/dev/null
original=$(state)
expect_in "ufw active before" "ufw: Status: active, ENABLED=yes" "$original"

echo "# first run"
out=$(play)
printf '%s\n' "$out" | grep -E '^(TASK|changed|ok|fatal|failed|PLAY RECAP|localhost)|msg' | sed 's/^/       | /'
expect_in "first run: no failure" "failed=0" "$(recap "$out")"
expect_in "  exit code 0" "[exit 0]" "$out"
expect_in "  changed the host" "changed: [localhost] => Install the package" "${out//TASK \[iptables_docker : /changed: [localhost] => }"
expect_in "package installed" "package: installed" "$(state)"
expect_in "service enabled and active" "enabled active" "$(run sh -c 'echo $(systemctl is-enabled iptables-docker) $(systemctl is-active iptables-docker)')"
config=$(sd_exec cat /etc/iptables-docker/config.toml)
expect_in "config templated from iptables_allow_rules (desc/proto/port/from)" $'[[allow]]\ndescription = "web"\nproto = "tcp"\nport = 443\nfrom = ["0.0.0.0/0"]' "$config"
expect_in "  and ssh_allow_cidr" 'allow_from = ["0.0.0.0/0", "::/0"]' "$config"
rules=$(sd_exec iptables-legacy-save)
expect_in "the rules are in the kernel: 443/tcp" "-A INPUT -p tcp -m tcp --dport 443 -m comment --comment web -j ACCEPT" "$rules"
expect_in "  53/udp from 10.0.0.0/8" "-A INPUT -s 10.0.0.0/8 -p udp -m udp --dport 53 -m comment --comment dns -j ACCEPT" "$rules"
expect_in "  Docker's rules kept" "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE" "$rules"
expect_in "ufw off" "ufw: Status: inactive" "$(state)"

echo "# reboot: the unit loads the policy at boot"
sd_reboot
expect_in "after reboot: service active" "active" "$(run systemctl is-active iptables-docker)"
rules=$(sd_exec iptables-legacy-save)
expect_in "after reboot: the policy is in the kernel" "-A INPUT -p tcp -m tcp --dport 443 -m comment --comment web -j ACCEPT" "$rules"
expect_in "  INPUT DROP" ":INPUT DROP" "$rules"
expect_in "after reboot: ufw still off" "ufw: Status: inactive" "$(state)"
# Docker, starting after us, writes its rules again (one by one: noflush, no policies).
sd_sh 'iptables-legacy-restore -n' <<<"$(grep -v '^:\(PREROUTING\|INPUT\|OUTPUT\|POSTROUTING\) ' <<<"$docker_rules")"

echo "# second run"
out=$(play)
expect_in "second run: changed=0" "changed=0 unreachable=0 failed=0" "$(recap "$out")"

echo "# a variable changed: the config is re-templated and the service reloaded"
out=$(play -e '{"iptables_docker_allow": [{"description": "extra", "port": 8443}]}')
expect_in "changed run: no failure" "failed=0" "$(recap "$out")"
expect_in "  handler ran" "RUNNING HANDLER [iptables_docker : Reload iptables-docker]" "$out"
expect_in "  the new rule is in the kernel" "--dport 8443 -m comment --comment extra -j ACCEPT" "$(sd_exec iptables-legacy-save)"

echo "# uninstall"
out=$(play -e iptables_docker_uninstall=true -e iptables_docker_purge=true)
printf '%s\n' "$out" | grep -E '^(TASK|changed|ok|fatal|failed|localhost)|msg' | sed 's/^/       | /'
expect_in "uninstall run: no failure" "failed=0" "$(recap "$out")"
gone=$(state)
expect_same "purged: ufw, alternatives, Docker's rules in nft, files as before the role" "$original" "$gone"
out=$(play -e iptables_docker_uninstall=true -e iptables_docker_purge=true)
expect_in "uninstall again: changed=0" "changed=0 unreachable=0 failed=0" "$(recap "$out")"

echo "# binary method"
bplay() { play -e iptables_docker_install_method=binary -e iptables_docker_binary=/root/iptables-docker "$@"; }
out=$(bplay)
printf '%s\n' "$out" | grep -E '^(TASK|changed|ok|fatal|failed|localhost)|msg' | sed 's/^/       | /'
expect_in "binary: first run no failure" "failed=0" "$(recap "$out")"
expect_in "binary: service active" "active" "$(run systemctl is-active iptables-docker)"
expect_in "binary: rules in the kernel" "--dport 443 -m comment --comment web -j ACCEPT" "$(sd_exec iptables-legacy-save)"
out=$(bplay)
printf '%s\n' "$out" | grep -E '^(TASK|changed|fatal|failed|localhost)|msg' | sed 's/^/       | /'
expect_in "binary: second run changed=0" "changed=0 unreachable=0 failed=0" "$(recap "$out")"
out=$(bplay -e iptables_docker_uninstall=true -e iptables_docker_purge=true)
expect_in "binary: uninstall no failure" "failed=0" "$(recap "$out")"
expect_same "binary: purged: as before the role" "$original" "$(state)"
out=$(bplay -e iptables_docker_uninstall=true -e iptables_docker_purge=true)
expect_in "binary: uninstall again changed=0" "changed=0 unreachable=0 failed=0" "$(recap "$out")"

echo "# shutdown"
if sd_shutdown; then pass "clean poweroff"; else fail "poweroff (nspawn exit code $SD_LAST_RC)"; fi
sd_cleanup

checks_done
