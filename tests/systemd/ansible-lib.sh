# shellcheck shell=bash
# tests/systemd/ansible-lib.sh — what the Ansible scripts (ansible.sh, fleet.sh) share:
# their rootfs, and reading ansible-playbook's output. Source it after lib.sh.

# The fleet's rootfs (Debian 12): openssh-server for its hosts and controller; python3 and
# python3-apt for Ansible's modules (the role's apt deb). ansible.sh, connection local,
# boots the suite's own root (sd_rootfs), which has both Pythons' pieces already.
ansible_rootfs() {
    IPTD_ROOTFS_EXTRA="openssh-server python3 python3-apt" \
        "$(dirname -- "${BASH_SOURCE[0]}")/rootfs.sh"
}

# ansible_env: the environment ansible-core runs with in a container, as `env` arguments
# (ansible-core in /opt/ansible, copied from IPTD_ANSIBLE_SITE).
# shellcheck disable=SC2034 # used by the scripts that source this file
ansible_env=(env HOME=/root LC_ALL=C.UTF-8 PYTHONPATH=/opt/ansible ANSIBLE_NOCOLOR=1
    ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_ROLES_PATH=/root/ansible/roles)

# recap OUTPUT: the PLAY RECAP counters of ansible-playbook's OUTPUT, one line per host
# ("HOST : ok=N changed=N unreachable=N failed=N").
recap() {
    grep -E '^[^ ]+ +: ok=' <<<"$1" |
        sed -E 's/ +: / : /; s/(failed=[0-9]+).*/\1/' | tr -s ' '
}

# results OUTPUT: one line "TASK NAME | STATUS | HOST" per host result of OUTPUT, in order.
results() {
    awk '/^TASK \[/ { t = $0; sub(/^TASK \[/, "", t); sub(/\] \**$/, "", t); sub(/^[a-z_]+ : /, "", t) }
         /^(ok|changed|skipping|fatal|failed): \[/ {
             s = $1; sub(/:$/, "", s); h = $2; gsub(/[\[\]:]/, "", h); print t " | " s " | " h
         }' <<<"$1"
}
