# shellcheck shell=bash
# tests/systemd/checks.sh — the checks of the tests/systemd scripts: those all shell tests
# share (tests/common/checks.sh: pass, fail, expect_in, expect_same, …, checks_done; one
# "ok N - WHAT" / "not ok N - WHAT" line each, the plan last), and the ones about a
# booted Debian. Source it after lib.sh.

# shellcheck source=../common/checks.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../common/checks.sh"

# expect_unit_gone DESCRIPTION STATE: STATE's "iptables-docker.service: ..." line (from
# `systemctl is-enabled`) says the unit does not exist: "Failed to get unit file state"
# (systemd 252, Debian 12) or "not-found" (systemd 257, Debian 13).
expect_unit_gone() {
    local line
    line=$(grep '^iptables-docker.service: ' <<<"$2")
    case $line in
        *"Failed to get unit file state"* | *": not-found "*) pass "$1" ;;
        *) fail "$1: expected the unit not to exist, got '$line'" ;;
    esac
}
# expect_same_host DESCRIPTION BEFORE AFTER: expect_same on two host states (the state
# functions' output), whatever the line of iptables-docker.service says in each.
expect_same_host() {
    local unit='s/^iptables-docker.service: .*/iptables-docker.service: -/'
    expect_same "$1" "$(printf '%s\n' "$2" | sed "$unit")" "$(printf '%s\n' "$3" | sed "$unit")"
}
# now: wall clock in ms; since T: seconds elapsed since T, with 1 decimal.
now() { local t=${EPOCHREALTIME/[.,]/}; echo "${t:0:-3}"; }
since() { local d=$(($(now) - $1)); printf '%d.%d' "$((d / 1000))" "$((d % 1000 / 100))"; }
# run CMD...: in the container, stdout+stderr, then "[exit N]"; never aborts the script.
run() {
    local rc=0
    sd_exec "$@" 2>&1 || rc=$?
    printf '[exit %d]\n' "$rc"
}
