//! The core engine against the real kernel, in throwaway namespaces: concurrency with a
//! Docker-like writer, idempotence counted in kernel table replacements, and failures
//! (bad config, bad template, a restore the kernel rejects, the lockout guard) that must
//! leave the running ruleset byte-identical.

mod common;

use common::*;

const FIXTURE: &str = "$FIXTURES/moby-v29-doc-usernet-portmap.v4.rules";

/// Both families' rulesets, counters included, without the timestamp comments.
const DUMP: &str = "{ iptables-legacy-save -c; ip6tables-legacy-save -c; } | grep -v '^#'";

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_concurrent_docker_writer_never_loses_a_rule() {
    require_netns("engine", &[]);
    let script = format!(
        r#"iptables-legacy-restore < {FIXTURE}
"$BIN" start > /dev/null
(
  for i in $(seq 1 400); do
    iptables-legacy -w -A DOCKER -s 10.77.$((i / 200)).$((i % 200 + 1))/32 -j RETURN
  done
  touch /run/work/writer.done
) &
writer=$!
rounds=0
while [ ! -e /run/work/writer.done ]; do
  "$BIN" start > /dev/null
  "$BIN" stop > /dev/null
  rounds=$((rounds + 1))
done
wait "$writer"
"$BIN" start > /dev/null
echo "=== ROUNDS"; echo "$rounds"
echo "=== SAVE"; iptables-legacy-save -t filter
"#
    );
    let s = sections(&ok(netns_sh(&script, 300)));
    let rounds: u32 = s["ROUNDS"].trim().parse().unwrap();
    assert!(
        rounds >= 3,
        "start/stop ran only {rounds} rounds during the writer"
    );
    let saved = parse(&s["SAVE"]);
    let written: Vec<String> = rules(&saved, "filter", "DOCKER")
        .into_iter()
        .filter(|r| r.contains("10.77."))
        .collect();
    let expected: Vec<String> = (1..=400)
        .map(|i| {
            format!(
                "-A DOCKER -s 10.77.{}.{}/32 -j RETURN",
                i / 200,
                i % 200 + 1
            )
        })
        .collect();
    assert_eq!(
        written, expected,
        "rules lost or reordered over {rounds} rounds"
    );
    println!("writer: 400/400 rules kept over {rounds} start/stop rounds");
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_second_start_replaces_no_kernel_table() {
    require_netns("engine", &[]);
    let script = format!(
        r#"iptables-legacy-restore < {FIXTURE}
count() {{ strace -f -qq -e trace=setsockopt -o /run/work/st "$@" > /dev/null; grep -c 'SO_SET_REPLACE' /run/work/st || true; }}
echo "=== FIRST"; count "$BIN" start
echo "=== SECOND"; count "$BIN" start
echo "=== STOP"; count "$BIN" stop
echo "=== STOP2"; count "$BIN" stop
echo "=== BARE"; iptables-legacy-save > /run/work/s; count iptables-legacy-restore /run/work/s
"#
    );
    let s = sections(&ok(netns_sh(&script, 120)));
    let n = |k: &str| -> u32 { s[k].trim().parse().unwrap() };
    // The strace count is real: a bare restore of the three tables replaces three.
    assert_eq!(n("BARE"), 3);
    // First start: filter (v4) and filter (v6); nat and raw are Docker's only, unchanged.
    assert_eq!(n("FIRST"), 2);
    assert_eq!(n("SECOND"), 0, "a second start wrote to the kernel");
    assert_eq!(n("STOP"), 2);
    assert_eq!(n("STOP2"), 0, "a second stop wrote to the kernel");
}

/// Runs `cmd` after loading the fixture and starting once; prints the dumps around it.
fn failing(setup: &str, cmd: &str) -> (String, String, String, i32) {
    let script = format!(
        r#"iptables-legacy-restore < {FIXTURE}
"$BIN" start > /dev/null
iptables-legacy -N f2b-sshd
{setup}
echo "=== BEFORE"; {DUMP}
set +e
{cmd} > /run/work/out 2> /run/work/err
rc=$?
echo "=== CODE"; echo $rc
set -e
echo "=== AFTER"; {DUMP}
echo "=== ERR"; cat /run/work/err
"#
    );
    let s = sections(&ok(netns_sh(&script, 120)));
    (
        s["BEFORE"].clone(),
        s["AFTER"].clone(),
        s["ERR"].clone(),
        s["CODE"].trim().parse().unwrap(),
    )
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_bad_config_applies_nothing_and_says_where() {
    require_netns("engine", &[]);
    let setup = r#"cat > /run/work/config.toml <<'EOF'
ipv6 = true
[ssh]
port = 22
allow_from = ["10.0.0.0/33"]
[[allow]]
port = 70000
proto = "sctp"
EOF"#;
    let (before, after, err, code) =
        failing(setup, r#""$BIN" --config /run/work/config.toml start"#);
    assert_eq!(code, 6, "{err}");
    assert_eq!(before, after, "the ruleset changed");
    for needle in [
        "/run/work/config.toml:4:15: '10.0.0.0/33' is not an IP address or CIDR",
        "/run/work/config.toml:6:8: port 70000 is out of range",
        "/run/work/config.toml:7:9: unknown protocol 'sctp'",
        "nothing was applied",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }

    let setup = "printf 'ipv6 = true\\nsssh = 1\\n' > /run/work/config.toml";
    let (before, after, err, code) =
        failing(setup, r#""$BIN" --config /run/work/config.toml start"#);
    assert_eq!(code, 6, "{err}");
    assert_eq!(before, after);
    assert!(
        err.contains("/run/work/config.toml:2:1: unknown field `sssh`"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_bad_template_applies_nothing_and_says_where() {
    require_netns("engine", &[]);
    let setup = r#"printf 'template = "policy.j2"\n' > /run/work/config.toml
printf '*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport {{ ssh.prot }} -j ACCEPT\nCOMMIT\n' > /run/work/policy.j2"#;
    let (before, after, err, code) =
        failing(setup, r#""$BIN" --config /run/work/config.toml start"#);
    assert_eq!(code, 6, "{err}");
    assert_eq!(before, after);
    assert!(err.contains("/run/work/policy.j2:3:"), "{err}");

    // Renders, but iptables refuses a match that does not exist: caught by --test.
    let setup = r#"printf 'template = "policy.j2"\n' > /run/work/config.toml
printf '*filter\n:INPUT DROP [0:0]\n-A INPUT -m nosuchmatch -j ACCEPT\nCOMMIT\n' > /run/work/policy.j2"#;
    let (before, after, err, code) =
        failing(setup, r#""$BIN" --config /run/work/config.toml start"#);
    assert_eq!(code, 6, "{err}");
    assert_eq!(before, after);
    assert!(err.contains("policy does not load"), "{err}");
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_restore_the_kernel_rejects_is_rolled_back_in_both_families() {
    require_netns("engine", &[]);
    // MASQUERADE is only valid in nat: `iptables-restore --test` accepts it in filter, the
    // kernel refuses it at commit. IPv4 is written first and must be put back.
    let setup = r#"printf 'template = "policy.j2"\n' > /run/work/config.toml
cat > /run/work/policy.j2 <<'EOF'
*filter
:INPUT DROP [0:0]
-A INPUT -i lo -j ACCEPT
{% if family == "ipv6" %}-A INPUT -j MASQUERADE
{% endif %}COMMIT
EOF"#;
    let (before, after, err, code) =
        failing(setup, r#""$BIN" --config /run/work/config.toml start"#);
    assert_eq!(code, 1, "{err}");
    assert_eq!(before, after, "the ruleset was not put back");
    assert!(err.contains("the previous ruleset was put back"), "{err}");
    assert!(err.contains("ip6tables-legacy-restore"), "{err}");
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn the_lockout_guard_refuses_a_policy_that_cuts_the_ssh_session() {
    require_netns("engine", &[]);
    let setup = r#"printf '[ssh]\nallow_from = ["192.0.2.0/24"]\n' > /run/work/config.toml"#;
    let cmd = r#"SSH_CONNECTION="198.51.100.7 50000 203.0.113.1 22" "$BIN" --config /run/work/config.toml start"#;
    let (before, after, err, code) = failing(setup, cmd);
    assert_eq!(code, 151, "{err}");
    assert_eq!(before, after);
    assert!(err.contains("198.51.100.7"), "{err}");

    let cmd = r#"SSH_CONNECTION="192.0.2.7 50000 203.0.113.1 22" "$BIN" --config /run/work/config.toml start"#;
    let (before, after, err, code) = failing(setup, cmd);
    assert_eq!(code, 0, "{err}");
    assert_ne!(before, after);
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_held_xtables_lock_makes_start_wait_then_give_up_applying_nothing() {
    require_netns("engine", &[]);
    // util-linux's flock(1) holds the lock the way `iptables --wait` does (flock(2));
    // --close keeps it out of sleep, so killing the holder frees it.
    let setup = r#"flock --close /run/xtables.lock sleep 60 > /dev/null 2>&1 &
holder=$!
while flock -n /run/xtables.lock true; do sleep 0.05; done"#;
    let cmd = r#""$BIN" --wait 1 start"#;
    let (before, after, err, code) = failing(setup, cmd);
    assert_eq!(code, 150, "{err}");
    assert_eq!(before, after, "the ruleset changed while the lock was held");
    assert!(
        err.contains("another program has held the xtables lock /run/xtables.lock for 1s"),
        "{err}"
    );

    let cmd = r#"{ sleep 0.5; kill "$holder"; } & "$BIN" --wait 10 start"#;
    let (before, after, err, code) = failing(setup, cmd);
    assert_eq!(
        code, 0,
        "start did not take the lock once it was free: {err}"
    );
    assert_ne!(before, after);
}
