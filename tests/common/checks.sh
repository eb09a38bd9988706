# shellcheck shell=bash
# tests/common/checks.sh — the one way the shell scripts under tests/ (docker, packets,
# systemd) report what they check; tests/common/mod.rs (`assert_checks_passed`) reads it.
# TAP-like, one line per check, then the plan last:
#
#   ok 1 - WHAT
#   not ok 2 - WHAT: why
#          | detail (indented: never read as a result)
#   1..2
#   # 1 passed, 1 failed
#
# A script that dies before `checks_done` prints no plan, and fails.
#
#   pass WHAT / fail WHAT              report one check
#   check open|blocked WHAT CMD...     run CMD: "open" when it succeeds, "blocked" when not
#   expect_in WHAT NEEDLE HAYSTACK     HAYSTACK contains the fixed string NEEDLE
#   expect_not_in WHAT NEEDLE HAYSTACK
#   expect_eq WHAT EXPECTED ACTUAL
#   expect_same WHAT BEFORE AFTER      multi-line texts equal, else a diff
#   checks_done                        the plan and the counts; returns 1 if any failed

CHECKS_RUN=0
CHECKS_FAILED=0

pass() {
    CHECKS_RUN=$((CHECKS_RUN + 1))
    printf 'ok %d - %s\n' "$CHECKS_RUN" "$*"
}
fail() {
    CHECKS_RUN=$((CHECKS_RUN + 1))
    CHECKS_FAILED=$((CHECKS_FAILED + 1))
    printf 'not ok %d - %s\n' "$CHECKS_RUN" "$*"
}
# details: standard input, indented as detail lines.
details() { sed 's/^/       | /'; }

check() {
    local want=$1 what=$2 got
    shift 2
    if "$@"; then got=open; else got=blocked; fi
    if [[ $got == "$want" ]]; then pass "$what ($got)"; else fail "$what: $got, expected $want"; fi
}
expect_in() {
    if [[ $3 == *"$2"* ]]; then pass "$1"; else
        fail "$1: expected '$2' in:"
        printf '%s\n' "$3" | details
    fi
}
expect_not_in() {
    if [[ $3 != *"$2"* ]]; then pass "$1"; else
        fail "$1: did not expect '$2' in:"
        printf '%s\n' "$3" | details
    fi
}
expect_eq() {
    if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}
expect_same() {
    if [[ $2 == "$3" ]]; then pass "$1"; else
        fail "$1:"
        diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") | details || true
    fi
}
checks_done() {
    printf '1..%d\n# %d passed, %d failed\n' "$CHECKS_RUN" "$((CHECKS_RUN - CHECKS_FAILED))" "$CHECKS_FAILED"
    ((CHECKS_FAILED == 0))
}
