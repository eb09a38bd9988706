#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# A fleet: the role's rolling mode (ansible/rolling.yml) over three booted Debian bookworm
# hosts (h1 h2 h3, each running sshd), driven over SSH by an Ansible controller (ctl), a
# fourth booted Debian. All four are systemd-nspawn machines on a bridge in a network
# namespace of this script's own (lib.sh: sd_netns_new, sd_attach), 10.213.0.0/24 —
# never this machine's network. The controller's key is generated here.
#
# Usage (as root):
#   IPTD_DEB=path/to.deb IPTD_ANSIBLE_SITE=DIR tests/systemd/fleet.sh
# IPTD_ANSIBLE_SITE: ansible-core installed for CPython 3.11 with `pip install --target`
# (tests/systemd_ansible.rs makes it). IPTD_FLEET_CONFIRM: the confirm window (default 20 s).
#
# Checks: a good policy rolls over the three hosts one at a time (each confirmed, after a
# new SSH connection and a health check of a published port, before the next host
# starts); a second run reports changed=0; check mode (--check --diff) reports each host's
# plan --diff and leaves every ruleset and config as it was; a policy that would lock the
# controller out is refused by the lockout guard on h1 and the play stops; forced, h1
# applies it, the controller's new connection fails, h1 rolls itself back (ruleset and
# config) within the confirm window, the play stops naming h1 and why, h2 and h3 are
# untouched and all three answer SSH; the good policy again changes nothing.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=checks.sh
. "$here/checks.sh"
# shellcheck source=ansible-lib.sh
. "$here/ansible-lib.sh"

[[ $(id -u) -eq 0 ]] || { echo "fleet.sh: must run as root" >&2; exit 1; }
deb=${IPTD_DEB:?set IPTD_DEB to the .deb}
site=${IPTD_ANSIBLE_SITE:?set IPTD_ANSIBLE_SITE to an ansible-core --target directory}
[[ -d $site/ansible ]] || { echo "fleet.sh: no ansible in $site" >&2; exit 1; }
window=${IPTD_FLEET_CONFIRM:-20}
started=$(now)

hosts=(h1 h2 h3)
declare -A ip=([ctl]=10.213.0.10 [h1]=10.213.0.11 [h2]=10.213.0.12 [h3]=10.213.0.13)
declare -A work=()

# on MACHINE CMD...: CMD in that machine (a subshell: the current container stays).
on() { (sd_select "${work[$1]}" && sd_exec "${@:2}"); }
# snapshot HOST: what a run may change there: both families' rulesets (without the
# timestamp comments and the packet counters), the config, then after "== state" the
# files of /etc/iptables-docker and of the state directory (snapshots, apply records).
snapshot() {
    on "$1" sh -c '
        for s in iptables-legacy-save ip6tables-legacy-save; do
            $s | grep -v "^#" | sed -E "s/\[[0-9]+:[0-9]+\]$//"
        done
        cat /etc/iptables-docker/config.toml 2>&1
        echo "== state"
        find /etc/iptables-docker /var/lib/iptables-docker -printf "%p %s\n" 2>&1 | sort'
}
# rules_and_config SNAPSHOT: the part before "== state".
rules_and_config() { sed '/^== state$/,$d' <<<"$1"; }
# play [ARGS...]: ansible-playbook rolling.yml on the controller with the vars file; its
# output, then "[exit N]".
play() {
    (sd_select "${work[ctl]}" && run "${ansible_env[@]}" ANSIBLE_CONFIG=/root/fleet/ansible.cfg \
        python3 -m ansible playbook -i /root/fleet/hosts.ini /root/ansible/rolling.yml \
        -e @/root/fleet/vars.yml "$@")
}
show() { grep -E '^(fatal|[a-z0-9]+ +: ok=)|^ *"[+-]-A |^ *"# IPv' <<<"$1" | sed 's/^/       | /' || true; }
# answers HOST: a new SSH connection from the controller (no multiplexing) runs a command.
answers() {
    on ctl ssh -o BatchMode=yes -o ControlMaster=no -o ControlPath=none -o ConnectTimeout=5 \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
        "root@${ip[$1]}" hostname
}
# untouched HOST OUTPUT: no task result of the play's OUTPUT is HOST's.
untouched() { ! results "$2" | grep -q " | $1\$"; }

rootfs=$(ansible_rootfs)
sd_install_trap

echo "# four machines on a bridge in a namespace of this test's own, booted in parallel"
lan=
sd_netns_new lan
sd_netns_exec "$lan" ip link add name br0 type bridge
sd_netns_exec "$lan" ip link set br0 up
t=$(now)
for m in ctl "${hosts[@]}"; do
    sd_mkroot "$rootfs"
    sd_attach "$lan" br0
    work[$m]=$SD_WORK
    printf '%s\n' "$m" >"$SD_WORK/hostname"
    sd_cp "$SD_WORK/hostname" /etc/hostname
    if [[ $m == ctl ]]; then
        sd_cp "$site" /opt/ansible
        sd_cp "$here/../../ansible" /root/ansible
        sd_cp "$deb" /root/iptables-docker.deb
    fi
    sd_launch
done
for m in ctl "${hosts[@]}"; do
    sd_select "${work[$m]}"
    sd_wait_up
    sd_exec ip addr add "${ip[$m]}/24" dev host0
    sd_exec ip link set host0 up
done
boot_s=$(since "$t")
pass "four machines booted in ${boot_s} s"

echo "# the controller's key on every host; a web server on 8080 (the health check)"
on ctl ssh-keygen -q -t ed25519 -N '' -C fleet-controller -f /root/.ssh/id_ed25519
key=$(on ctl cat /root/.ssh/id_ed25519.pub)
for h in "${hosts[@]}"; do
    on "$h" sh -c 'install -d -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys' <<<"$key"
    on "$h" systemd-run --quiet --unit=web python3 -m http.server 8080 --directory /srv
done
for h in "${hosts[@]}"; do
    expect_eq "the controller reaches $h over SSH" "$h" "$(answers "$h" 2>&1)"
done
on ctl sh -c 'mkdir -p /root/fleet && cat > /root/fleet/hosts.ini' <<EOF
[docker]
h1 ansible_host=${ip[h1]}
h2 ansible_host=${ip[h2]}
h3 ansible_host=${ip[h3]}

[docker:vars]
ansible_user=root
ansible_become=false
EOF
# Ansible's defaults otherwise, ControlPersist included: rolling.yml must not be fooled
# by the connection it already has.
on ctl sh -c 'cat > /root/fleet/ansible.cfg' <<EOF
[defaults]
host_key_checking = False
interpreter_python = /usr/bin/python3
EOF
on ctl sh -c 'cat > /root/fleet/vars.yml' <<EOF
iptables_docker_deb: /root/iptables-docker.deb
iptables_docker_confirm_seconds: $window
iptables_docker_reach_timeout: 8
iptables_docker_ssh_allow_from: ["10.213.0.0/24"]
iptables_docker_allow:
  - {description: web, proto: tcp, port: 8080, from: ["10.213.0.0/24"]}
iptables_docker_health_checks:
  - url: "http://{{ ansible_host }}:8080/"
EOF

echo "# a good policy, rolled over the three hosts"
t=$(now)
out=$(play)
good_s=$(since "$t")
show "$out"
expect_in "good policy: the play succeeds" "[exit 0]" "$out"
for h in "${hosts[@]}"; do
    expect_in "  $h changed, nothing failed" "$h : ok=" "$(recap "$out" | grep -v 'changed=0' | grep 'unreachable=0 failed=0')"
    rules=$(on "$h" iptables-legacy-save)
    expect_in "  $h: the policy is in the kernel" "-A INPUT -s 10.213.0.0/24 -p tcp -m tcp --dport 8080 -m comment --comment web -j ACCEPT" "$rules"
    expect_in "  $h: INPUT DROP" ":INPUT DROP" "$rules"
    status=$(on "$h" iptables-docker status 2>&1)
    expect_in "  $h: the running ruleset is the policy" "ON: the host policy is loaded and matches the configuration" "$status"
    expect_not_in "  $h: in both families" "DIFFERS" "$status"
    expect_not_in "  $h: nothing waits for a confirmation" "waiting for" "$status"
    expect_eq "  $h: no configuration backup left" "" "$(on "$h" find /etc/iptables-docker -name '*~' 2>&1)"
done
steps=$(results "$out")
printf '%s\n' "$steps" | grep -E 'Apply it|new SSH|Health|Confirm it' | sed 's/^/       | /' || true
# line PATTERN: the number of the first result line matching PATTERN (999999: none).
line() { grep -n -m1 -E "$1" <<<"$steps" | cut -d: -f1 | grep . || echo 999999; }
for i in 0 1; do
    a=${hosts[i]} b=${hosts[i + 1]}
    confirmed=$(line "^Confirm it \| changed \| $a\$")
    if ((confirmed < 999999 && confirmed < $(line "^Apply it.* \| $b\$"))); then
        pass "  one at a time: $a confirmed before $b applies"
    else fail "  one at a time: $b applied before $a was confirmed"; fi
done
expect_in "  after a new SSH connection" "The controller reaches the host over a new SSH connection | ok | h3" "$steps"
expect_in "  and the health check" "Health checks, from the controller | ok | h3" "$steps"

echo "# the same again"
t=$(now)
out=$(play)
again_s=$(since "$t")
for h in "${hosts[@]}"; do
    expect_in "second run: $h changed=0" "$h : ok=" "$(recap "$out" | grep 'changed=0 unreachable=0 failed=0')"
done

echo "# check mode with another port: a plan --diff per host, nothing changes"
declare -A before=()
for h in "${hosts[@]}"; do before[$h]=$(snapshot "$h"); done
t=$(now)
out=$(play --check --diff -e '{"iptables_docker_allow": [{"description": "web", "port": 8080, "from": ["10.213.0.0/24"]}, {"description": "alt", "port": 8443}]}')
check_s=$(since "$t")
show "$out"
expect_in "check mode: no failure" "[exit 0]" "$out"
for h in "${hosts[@]}"; do
    report=$(awk -v h="ok: [$h] => {" '$0 == h { p = 1 } p { print } p && /^}/ { exit }' <<<"$out")
    expect_in "  $h: its plan --diff reported" "\"+-A INPUT -p tcp -m tcp --dport 8443 -m comment --comment alt -j ACCEPT\"" "$report"
    expect_same "  $h: ruleset, config and state exactly as before" "${before[$h]}" "$(snapshot "$h")"
done

# The policy of the failures below: ssh from an address that is not the controller's.
lockout='{"iptables_docker_ssh_allow_from": ["10.213.0.200/32"]}'

echo "# a policy that locks the controller out: the lockout guard refuses it on h1"
out=$(play -e "$lockout")
show "$out"
expect_not_in "refused: the play fails" "[exit 0]" "$out"
expect_in "  h1 fails, named, with the guard's reason" "fatal: [h1]: FAILED!" "$out"
expect_in "  refusing to apply" "refusing to apply: the policy would not accept new SSH connections from 10.213.0.10" "$out"
expect_same "  h1: ruleset, config and state as before" "${before[h1]}" "$(snapshot h1)"
for h in h2 h3; do
    if untouched "$h" "$out"; then pass "  the play stopped before $h"; else fail "  the play went on to $h"; fi
    expect_same "  $h: exactly as before" "${before[$h]}" "$(snapshot "$h")"
done

echo "# the same policy forced: h1 applies it, the controller cannot reconnect, h1 rolls back"
t=$(now)
out=$(play -e "$lockout" -e iptables_docker_force=true)
forced_s=$(since "$t")
show "$out"
expect_not_in "forced: the play fails" "[exit 0]" "$out"
expect_in "  h1 fails, named" "fatal: [h1]: FAILED!" "$out"
expect_in "  why: no new SSH connection" "h1: the new policy is not in place. The controller could not open a new SSH connection to it within 8 s" "$out"
# iptables-docker's watchdog on h1 says so when it has put the previous ruleset back at
# the end of the confirm window.
expect_in "  and what h1 did: rolled back at the end of the window" "not confirmed within $window s: the previous ruleset was put back" "$out"
expect_in "  and put its config back" "the previous /etc/iptables-docker/config.toml was put back" "$out"
# Its state directory now holds the snapshot and the apply record of the rolled-back apply.
expect_same "  h1: ruleset and config as before" "$(rules_and_config "${before[h1]}")" "$(rules_and_config "$(snapshot h1)")"
for h in h2 h3; do
    if untouched "$h" "$out"; then pass "  the play stopped before $h"; else fail "  the play went on to $h"; fi
    expect_same "  $h: exactly as before" "${before[$h]}" "$(snapshot "$h")"
done
for h in "${hosts[@]}"; do
    expect_eq "  $h answers a new SSH connection" "$h" "$(answers "$h" 2>&1)"
done

echo "# the good policy again: nothing to change anywhere"
out=$(play)
for h in "${hosts[@]}"; do
    expect_in "after the rollback: $h changed=0" "$h : ok=" "$(recap "$out" | grep 'changed=0 unreachable=0 failed=0')"
done

echo "# shutdown"
if sd_shutdown_all; then pass "all four powered off cleanly"; else fail "poweroff"; fi
sd_cleanup_all

echo "# timings: boot ${boot_s} s, good run ${good_s} s, second run ${again_s} s, check ${check_s} s, forced ${forced_s} s, whole script $(since "$started") s"
checks_done
