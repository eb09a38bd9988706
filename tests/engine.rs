//! The core engine against the real kernel, in throwaway namespaces: concurrency with a
//! Docker-like writer, idempotence counted in kernel table replacements, and failures
//! (bad config, bad template, a restore the kernel rejects, the lockout guard) that must
//! leave the running ruleset byte-identical.

mod common;

use common::*;

const FIXTURE: &str = "$FIXTURES/moby-v29-doc-usernet-portmap.v4.rules";

/// Both families' rulesets, counters included, without the timestamp comments.
const DUMP: &str = "{ iptables-legacy-save -c; ip6tables-legacy-save -c; } | grep -v '^#'";

/// Start/stop rounds while a Docker-like writer appends 400 rules with `iptables -w`
/// (`backend`: legacy or nft, for the writer, the fixture and the binary alike).
fn concurrent_writer_loses_nothing(backend: &str) {
    require_netns("engine", &[]);
    let script = format!(
        r#"iptables-{backend}-restore < {FIXTURE}
"$BIN" --backend {backend} start > /dev/null
(
  for i in $(seq 1 400); do
    iptables-{backend} -w -A DOCKER -s 10.77.$((i / 200)).$((i % 200 + 1))/32 -j RETURN
  done
  touch /run/work/writer.done
) &
writer=$!
rounds=0
while [ ! -e /run/work/writer.done ]; do
  "$BIN" --backend {backend} start > /dev/null
  "$BIN" --backend {backend} stop > /dev/null
  rounds=$((rounds + 1))
done
wait "$writer"
"$BIN" --backend {backend} start > /dev/null
echo "=== ROUNDS"; echo "$rounds"
echo "=== SAVE"; iptables-{backend}-save -t filter
"#
    );
    let s = sections(&ok(netns_sh(&script, 300)));
    let rounds: u32 = s["ROUNDS"].trim().parse().unwrap();
    assert!(
        rounds >= 3,
        "start/stop ran only {rounds} rounds during the writer"
    );
    let saved = parse(&s["SAVE"]);
    let written: Vec<String> = rules(&saved, TableName::Filter, "DOCKER")
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
        "{backend}: rules lost or reordered over {rounds} rounds"
    );
    println!("{backend} writer: 400/400 rules kept over {rounds} start/stop rounds");
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_concurrent_docker_writer_never_loses_a_rule_legacy() {
    concurrent_writer_loses_nothing("legacy");
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_concurrent_docker_writer_never_loses_a_rule_nft() {
    concurrent_writer_loses_nothing("nft");
}

/// The deterministic race: an `iptables-<backend>-restore` stand-in on PATH sleeps 1 s
/// before it runs the real one (only for the write, not the policy's `--test`), and a
/// Docker-like `iptables -w -A DOCKER` runs during that second, after our save.
fn a_rule_written_between_save_and_restore_is_kept(backend: &str) {
    require_netns("engine", &[]);
    let script = format!(
        r#"iptables-{backend}-restore < {FIXTURE}
for p in iptables ip6tables; do
  real=$(command -v $p-{backend}-restore)
  mkdir -p /run/work/slow
  printf '#!/bin/bash\ncase " $* " in *" --test "*) ;; *) touch /run/work/restoring; sleep 1;; esac\nexec %s "$@"\n' "$real" > /run/work/slow/$p-{backend}-restore
  chmod +x /run/work/slow/$p-{backend}-restore
done
PATH=/run/work/slow:$PATH "$BIN" --backend {backend} start > /run/work/out 2>&1 &
started=$!
while [ ! -e /run/work/restoring ]; do sleep 0.02; done
iptables-{backend} -w -A DOCKER -s 10.99.0.1/32 -j RETURN
wait "$started"
echo "=== OUT"; cat /run/work/out
echo "=== SAVE"; iptables-{backend}-save -t filter
"#
    );
    let s = sections(&ok(netns_sh(&script, 120)));
    let saved = parse(&s["SAVE"]);
    let kept = rules(&saved, TableName::Filter, "DOCKER")
        .iter()
        .filter(|r| r.contains("10.99.0.1"))
        .count();
    assert_eq!(
        kept, 1,
        "{backend}: the rule written during the apply was lost:\n{}",
        s["OUT"]
    );
    assert_eq!(
        policy_of(&saved, TableName::Filter, "INPUT"),
        Some(ChainPolicy::Drop),
        "{backend}: the policy was not applied"
    );
    println!("{backend}: 1/1 rule written between save and restore kept");
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_rule_written_during_the_apply_is_kept_legacy() {
    a_rule_written_between_save_and_restore_is_kept("legacy");
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_rule_written_during_the_apply_is_kept_nft() {
    a_rule_written_between_save_and_restore_is_kept("nft");
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

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_start_with_nothing_changed_compares_table_images_and_saves_nothing_legacy() {
    nothing_changed_saves_nothing(
        "legacy",
        "every table's kernel image is as the last apply left it",
    );
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_start_with_nothing_changed_compares_the_nftables_generation_and_saves_nothing_nft() {
    nothing_changed_saves_nothing(
        "nft",
        "the nftables generation is the one the last apply left",
    );
}

/// Starts on `backend`, moves counters in both families, then shows with saves that fail
/// (injected) that a start with nothing changed saves nothing (it says `why`), that a
/// foreign rule in IPv4 nat or IPv6 filter makes it save (and, saves failing, change
/// nothing), and that the record is renewed after.
fn nothing_changed_saves_nothing(backend: &str, why: &str) {
    require_netns("engine", &[]);
    let script = format!(
        r#"iptables-{backend}-restore < {FIXTURE}
"$BIN" --backend {backend} start > /dev/null 2>&1
for address in 127.0.0.1 ::1; do (exec 3<>"/dev/tcp/$address/9") 2>/dev/null || true; done
mkdir -p /run/work/stub
for save in iptables-{backend}-save ip6tables-{backend}-save; do
    printf '#!/bin/sh\necho "$0 ran" >&2\nexit 1\n' > /run/work/stub/$save
    chmod +x /run/work/stub/$save
done
start() {{ "$BIN" --backend {backend} --verbose start 2>&1 && echo "rc=0" || echo "rc=$?"; }}
stubbed() {{ PATH=/run/work/stub:$PATH start; }}
dump() {{ {{ iptables-{backend}-save -c; ip6tables-{backend}-save -c; }} | grep -v '^#'; }}
dump > /run/work/counted
echo "=== COUNTED"; cat /run/work/counted
echo "=== AGAIN"; stubbed
echo "=== SAME"; dump | diff /run/work/counted - && echo same
iptables-{backend} -t nat -A POSTROUTING -s 10.66.0.0/16 -o eth9 -j MASQUERADE
ip6tables-{backend} -A INPUT -s 2001:db8::/32 -j ACCEPT
dump > /run/work/changed
echo "=== CHANGED"; stubbed
echo "=== KEPT"; dump | diff /run/work/changed - && echo same
echo "=== REAL"; start
echo "=== AFTER"; dump
echo "=== THEN"; stubbed
"#
    );
    let s = sections(&ok(netns_sh(&script, 120)));
    let lo = s["COUNTED"]
        .lines()
        .filter(|l| l.contains("-A INPUT -i lo -j ACCEPT") && !l.starts_with("[0:0]"))
        .count();
    assert_eq!(
        lo, 2,
        "no packets counted in both families: {}",
        s["COUNTED"]
    );
    let again = &s["AGAIN"];
    for family in ["IPv4", "IPv6"] {
        assert!(again.contains(&format!("{family}: {why}")), "{again}");
    }
    assert!(again.contains("rc=0") && !again.contains(" ran"), "{again}");
    assert_eq!(s["SAME"].trim(), "same");
    let changed = &s["CHANGED"];
    let ran = format!("-{backend}-save ran");
    assert!(
        changed.contains(&ran) && !changed.contains("rc=0"),
        "{changed}"
    );
    assert!(!changed.contains(why), "{changed}");
    assert_eq!(s["KEPT"].trim(), "same");
    assert!(
        s["REAL"].contains("rc=0") && !s["REAL"].contains(why),
        "{}",
        s["REAL"]
    );
    assert!(!s["AFTER"].contains("2001:db8::/32"), "{}", s["AFTER"]);
    assert!(!s["AFTER"].contains("10.66.0.0/16"), "{}", s["AFTER"]);
    let then = &s["THEN"];
    assert!(
        then.contains(why) && then.contains("rc=0") && !then.contains(" ran"),
        "{then}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_write_of_someone_elses_during_the_apply_is_not_taken_for_ours_nft() {
    require_netns("engine", &[]);
    // A stand-in restore that lets another writer commit to nat just before our write:
    // the generation then moved by more than our own commits, so nothing may be recorded,
    // and the next start must read the ruleset and remove that rule.
    let script = format!(
        r#"iptables-nft-restore < {FIXTURE}
real=$(command -v iptables-nft-restore)
mkdir -p /run/work/racing
cat > /run/work/racing/iptables-nft-restore <<STUB
#!/bin/bash
case " \$* " in *" --test "*) ;; *) iptables-nft -t nat -A POSTROUTING -s 10.66.0.0/16 -o eth9 -j MASQUERADE;; esac
exec $real "\$@"
STUB
chmod +x /run/work/racing/iptables-nft-restore
PATH=/run/work/racing:$PATH "$BIN" --backend nft start 2>&1
echo "=== RECORD"; cat /run/iptd/nft-generation 2>/dev/null || echo none
echo "=== RACED"; iptables-nft -t nat -S POSTROUTING
echo "=== NEXT"; "$BIN" --backend nft --verbose start 2>&1
echo "=== AFTER"; iptables-nft -t nat -S POSTROUTING
echo "=== THEN"; "$BIN" --backend nft --verbose start 2>&1
"#
    );
    let s = sections(&ok(netns_sh(&script, 120)));
    let why = "the nftables generation is the one the last apply left";
    assert_eq!(s["RECORD"].trim(), "none");
    assert!(s["RACED"].contains("10.66.0.0/16"), "{}", s["RACED"]);
    assert!(!s["NEXT"].contains(why), "{}", s["NEXT"]);
    assert!(!s["AFTER"].contains("10.66.0.0/16"), "{}", s["AFTER"]);
    assert!(s["THEN"].contains(why), "{}", s["THEN"]);
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

/// `start` with the configuration `setup` writes: refused (exit 6) with the ruleset
/// unchanged, its message holding every one of `needles`.
fn start_refuses_config(setup: &str, needles: &[&str]) {
    let (before, after, err, code) =
        failing(setup, r#""$BIN" --config /run/work/config.toml start"#);
    assert_eq!(code, 6, "{err}");
    assert_eq!(before, after, "the ruleset changed");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
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
    start_refuses_config(
        setup,
        &[
            "/run/work/config.toml:4:15: '10.0.0.0/33' is not an IP address or CIDR",
            "/run/work/config.toml:6:8: port 70000 is out of range",
            "/run/work/config.toml:7:9: unknown protocol 'sctp'",
            "nothing was applied",
        ],
    );
    let setup = "printf 'ipv6 = true\\nsssh = 1\\n' > /run/work/config.toml";
    start_refuses_config(setup, &["/run/work/config.toml:2:1: unknown field `sssh`"]);
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

/// A restore that stops reading its input early (a PATH stand-in that exits at once, as
/// `iptables-restore` does at a line it refuses) on a ruleset larger than a pipe holds:
/// the apply reports it and puts the previous ruleset back, instead of dying of SIGPIPE
/// half-way through its transaction. The stand-in refuses the first two writes: the edit,
/// then the whole-table replace a refused legacy edit falls back to (the large input).
#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_restore_that_stops_reading_is_rolled_back() {
    require_netns("engine", &[]);
    let setup = r#"for i in $(seq 3000); do
  echo "-A DOCKER -d 172.17.0.9/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport $i -j ACCEPT"
done | sed '1i *filter' | sed '$a COMMIT' | iptables-legacy-restore --noflush
iptables-legacy -I INPUT -s 192.0.2.1 -j ACCEPT
real=$(command -v iptables-legacy-restore)
mkdir -p /run/work/stub
cat > /run/work/stub/iptables-legacy-restore <<STUB
#!/bin/bash
case " \$* " in *" --test "*) ;; *)
  if mkdir /run/work/refused 2> /dev/null || mkdir /run/work/refused-again 2> /dev/null; then
    echo "refused at line 1" >&2; exit 1
  fi;;
esac
exec $real "\$@"
STUB
chmod +x /run/work/stub/iptables-legacy-restore"#;
    let (before, after, err, code) = failing(setup, r#"PATH=/run/work/stub:$PATH "$BIN" reload"#);
    assert_eq!(code, 1, "{err}");
    assert_eq!(before, after, "the ruleset was not put back");
    assert!(err.contains("the previous ruleset was put back"), "{err}");
    assert!(err.contains("refused at line 1"), "{err}");
}

/// A legacy edit the kernel refuses (a PATH stand-in refuses every `--noflush` restore, as
/// iptables does for a `-D` whose rule the kernel spells otherwise): `start` says so and
/// replaces the changed tables whole instead, and the kernel ends exactly as an edit
/// leaves it.
#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_refused_legacy_edit_replaces_the_tables_whole() {
    require_netns("engine", &[]);
    let script = format!(
        r#"iptables-legacy-restore < {FIXTURE}
iptables-legacy -N ufw-before-input
iptables-legacy -A INPUT -j ufw-before-input
iptables-legacy -A ufw-before-input -p udp --dport 68 -j ACCEPT
iptables-legacy-save > /run/work/v4; ip6tables-legacy-save > /run/work/v6
real=$(command -v iptables-legacy-restore)
mkdir -p /run/work/stub
cat > /run/work/stub/iptables-legacy-restore <<STUB
#!/bin/bash
case " \$* " in *" --noflush "*) echo "refused at line 3" >&2; exit 1;; esac
exec $real "\$@"
STUB
chmod +x /run/work/stub/iptables-legacy-restore
PATH=/run/work/stub:$PATH "$BIN" start > /run/work/err 2>&1
echo "=== ERR"; cat /run/work/err
echo "=== REPLACED"; iptables-legacy-save -c | grep -v '^#'
iptables-legacy-restore < /run/work/v4; ip6tables-legacy-restore < /run/work/v6
rm -rf /run/iptd/*
"$BIN" start > /run/work/err 2>&1
echo "=== EDITED"; iptables-legacy-save -c | grep -v '^#'
echo "=== ERR2"; cat /run/work/err
"#
    );
    let s = sections(&ok(netns_sh(&script, 120)));
    let err = &s["ERR"];
    assert!(
        err.contains("IPv4: the edit was refused") && err.contains("refused at line 3"),
        "{err}"
    );
    assert!(
        err.contains("replacing tables filter whole instead"),
        "{err}"
    );
    assert!(!s["ERR2"].contains("refused"), "{}", s["ERR2"]);
    assert_eq!(
        s["REPLACED"], s["EDITED"],
        "the two writes left different rulesets"
    );
    let edited = parse(&s["EDITED"]);
    assert_eq!(
        policy_of(&edited, TableName::Filter, "INPUT"),
        Some(ChainPolicy::Drop)
    );
    assert!(!s["EDITED"].contains("ufw-before-input"), "{}", s["EDITED"]);
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
fn a_deny_rule_before_ssh_that_cuts_the_session_is_a_lockout() {
    require_netns("engine", &[]);
    let setup = r#"printf '[[rule]]\naction = "deny"\nfrom = ["198.51.100.0/24"]\n' > /run/work/config.toml"#;
    let session = r#"SSH_CONNECTION="198.51.100.7 50000 203.0.113.1 22""#;
    let cmd = format!(r#"{session} "$BIN" --config /run/work/config.toml start"#);
    let (before, after, err, code) = failing(setup, &cmd);
    assert_eq!(code, 151, "{err}");
    assert_eq!(before, after, "the ruleset changed");
    assert!(
        err.contains("198.51.100.7 (port 22), which is established now (198.51.100.7: [[rule]] 1 (deny) matches it)"),
        "{err}"
    );
    let plan = format!(r#"{session} "$BIN" --config /run/work/config.toml plan"#);
    let (_, _, err, code) = failing(setup, &plan);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: this policy would not accept new SSH connections from 198.51.100.7"),
        "{err}"
    );
    let (before, after, err, code) = failing(setup, &format!("{cmd} --force"));
    assert_eq!(code, 0, "{err}");
    assert_ne!(before, after);
    assert!(
        after.contains("-A INPUT -s 198.51.100.0/24 -j DROP"),
        "{after}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_bad_rule_applies_nothing_and_says_where_and_what_is_allowed() {
    require_netns("engine", &[]);
    let setup = r#"cat > /run/work/config.toml <<'EOF'
[outbound]
policy = "block"
[[rule]]
action = "drop"
proto = "icmp"
port = [22, "80-70"]
[[rule]]
action = "allow"
from = ["10.0.0.0/8"]
to = ["2001:db8::1"]
interface = "eth0/1"
EOF"#;
    start_refuses_config(
        setup,
        &[
        "/run/work/config.toml:2:10: unknown outbound policy 'block' (expected \"accept\", \"deny\" or \"reject\")",
        "/run/work/config.toml:4:10: unknown action 'drop' (expected \"allow\", \"deny\", \"reject\" or \"limit\")",
        "/run/work/config.toml:5:9: unknown protocol 'icmp' (expected \"tcp\", \"udp\" or \"any\")",
        "/run/work/config.toml:6:13: port range '80-70' runs backwards",
        "/run/work/config.toml:9:9: '10.0.0.0/8' is IPv4 but `to` lists no IPv4 address",
        "/run/work/config.toml:10:7: '2001:db8::1/128' is IPv6 but `from` lists no IPv6 address",
        "/run/work/config.toml:11:13: 'eth0/1' is not an interface name",
        "nothing was applied",
        ],
    );
}

/// Runs check, plan, status, reload and start on the file `setup` writes; prints, per
/// command, its exit code and whether its stderr holds `reason`.
fn every_command(setup: &str, reason: &str) -> (Vec<(String, i32, bool)>, String, String) {
    let script = format!(
        r#"iptables-legacy-restore < {FIXTURE}
"$BIN" start > /dev/null
{setup}
cat > /run/work/reason <<'REASON'
{reason}
REASON
echo "=== BEFORE"; {DUMP}
echo "=== RUNS"
for c in check plan status reload start; do
  set +e
  "$BIN" --config /run/work/config.toml $c > /dev/null 2> /run/work/err
  rc=$?
  set -e
  echo "$c $rc $(grep -cF -f /run/work/reason /run/work/err)"
done
echo "=== AFTER"; {DUMP}
"#
    );
    let s = sections(&ok(netns_sh(&script, 120)));
    let runs = s["RUNS"]
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].parse().unwrap(), f[2] != "0")
        })
        .collect();
    (runs, s["BEFORE"].clone(), s["AFTER"].clone())
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn every_command_refuses_the_same_files_for_the_same_reasons() {
    require_netns("engine", &[]);
    let cases = [
        (
            "printf '[ssh]\\nport = 22\\n' > /run/work/config.toml; chmod 666 /run/work/config.toml",
            "is writable by group and others (mode 0666)",
        ),
        (
            "printf 'template = \"policy.j2\"\\n' > /run/work/config.toml
printf '*filter\\n:INPUT DROP [0:0]\\n-A INPUT -j ACCEPTT\\nCOMMIT\\n' > /run/work/policy.j2",
            "the IPv4 policy does not load",
        ),
        (
            "printf '[[allow]]\\nport = 80\\nfrom = []\\n' > /run/work/config.toml",
            "config.toml:3:8: an empty source list matches no one",
        ),
        (
            "printf '[ssh]\\nallow_from = [\"198.51.100.7/24\"]\\n' > /run/work/config.toml",
            "config.toml:2:15: '198.51.100.7/24' has host bits set",
        ),
        (
            "printf 'ipv6 = false\\n[ssh]\\nallow_from = [\"2001:db8::7\"]\\n' > /run/work/config.toml",
            "config.toml:3:15: '2001:db8::7/128' is an IPv6 source but `ipv6 = false`",
        ),
    ];
    for (setup, reason) in cases {
        let (runs, before, after) = every_command(setup, reason);
        assert_eq!(before, after, "{reason}: the ruleset changed");
        let code = runs[0].1;
        assert_ne!(code, 0, "{reason}: {runs:?}");
        for (command, rc, said) in &runs {
            assert_eq!(
                *rc, code,
                "{reason}: `{command}` exited otherwise: {runs:?}"
            );
            assert!(said, "{reason}: `{command}` did not say why: {runs:?}");
        }
    }
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn a_missing_interface_is_a_warning_with_its_location() {
    require_netns("engine", &[]);
    let script = r#"printf '[containers]\nexternal_interfaces = ["eth9"]\n' > /run/work/config.toml
"$BIN" --config /run/work/config.toml check 2>&1
"#;
    let out = ok(netns_sh(script, 60));
    assert!(
        out.contains("warning: /run/work/config.toml:2:24: there is no interface 'eth9'"),
        "{out}"
    );
    assert!(out.contains("/run/work/config.toml: ok (IPv4 and IPv6 policy accepted by iptables-legacy-restore --test)"), "{out}");
}

/// Loads the fixture into `load` (legacy or nft), runs `setup`, a plain `start` (auto)
/// and `status`; returns their output and both backends' filter tables.
fn auto_start(load: &str, setup: &str) -> std::collections::BTreeMap<String, String> {
    let script = format!(
        r#"iptables-{load}-restore < {FIXTURE}
{setup}
echo "=== DOCKER"; iptables-{load}-save -t filter | grep -- '-A DOCKER' || true
echo "=== START"; "$BIN" start 2>&1
echo "=== STATUS"; "$BIN" status 2>&1 && echo "exit 0" || echo "exit $?"
echo "=== LEGACY"; iptables-legacy-save -t filter 2>/dev/null || true
echo "=== NFT"; iptables-nft-save -t filter
"#
    );
    sections(&ok(netns_sh(&script, 120)))
}

fn docker_rules_of(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("-A DOCKER"))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn auto_manages_nft_on_a_kernel_without_legacy_and_says_why() {
    require_netns("engine", &[]);
    // Stand-ins answer as iptables-legacy does on a kernel built without
    // CONFIG_NETFILTER_XTABLES_LEGACY (Linux >= 6.17 by default).
    let setup = r#"mkdir -p /run/work/nolegacy
for p in iptables ip6tables; do for s in "" -save -restore; do
  printf '#!/bin/sh\necho "%s-legacy v1.8.9 (legacy): can'"'"'t initialize iptables table \`filter'"'"': Table does not exist (do you need to insmod?)" >&2\nexit 3\n' $p > /run/work/nolegacy/$p-legacy$s
  chmod +x /run/work/nolegacy/$p-legacy$s
done; done
export PATH=/run/work/nolegacy:$PATH"#;
    let s = auto_start("nft", setup);
    let start = &s["START"];
    assert!(
        start.contains("backend: iptables-nft (auto: iptables-legacy cannot work here"),
        "{start}"
    );
    assert!(start.contains("Table does not exist"), "{start}");
    let nft = parse(&s["NFT"]);
    assert_eq!(
        policy_of(&nft, TableName::Filter, "INPUT"),
        Some(ChainPolicy::Drop),
        "{start}"
    );
    let docker = docker_rules_of(&s["DOCKER"]);
    assert!(!docker.is_empty());
    assert_eq!(docker_rules_of(&s["NFT"]), docker, "Docker's rules changed");
    assert!(
        s["STATUS"].contains("backend: iptables-nft"),
        "{}",
        s["STATUS"]
    );
    assert!(s["STATUS"].contains("exit 0"), "{}", s["STATUS"]);
    println!(
        "no legacy: policy in iptables-nft, {} Docker rules kept",
        docker.len()
    );
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn auto_manages_legacy_where_it_works_and_follows_docker_into_nft() {
    require_netns("engine", &[]);
    let s = auto_start("legacy", "");
    assert!(
        s["START"].contains(
            "backend: iptables-legacy (auto: iptables-legacy works here, where Docker's rules are)"
        ),
        "{}",
        s["START"]
    );
    let legacy = parse(&s["LEGACY"]);
    assert_eq!(
        policy_of(&legacy, TableName::Filter, "INPUT"),
        Some(ChainPolicy::Drop)
    );
    assert_eq!(docker_rules_of(&s["LEGACY"]), docker_rules_of(&s["DOCKER"]));

    // Docker's rules in iptables-nft (`iptables` pointing there), legacy available: the
    // policy follows them; a stray legacy rule beside them is a split that status reports.
    let s = auto_start("nft", "");
    assert!(
        s["START"].contains("backend: iptables-nft (auto: Docker's rules live in iptables-nft"),
        "{}",
        s["START"]
    );
    let nft = parse(&s["NFT"]);
    assert_eq!(
        policy_of(&nft, TableName::Filter, "INPUT"),
        Some(ChainPolicy::Drop)
    );
    assert_eq!(docker_rules_of(&s["NFT"]), docker_rules_of(&s["DOCKER"]));
    let script = format!(
        r#"iptables-nft-restore < {FIXTURE}
"$BIN" start > /dev/null
iptables-legacy -A INPUT -s 192.0.2.1/32 -j ACCEPT
"$BIN" status > /run/work/out 2>&1 && echo "=== CODE" && echo 0 || {{ rc=$?; echo "=== CODE"; echo $rc; }}
echo "=== OUT"; cat /run/work/out
"#
    );
    let s = sections(&ok(netns_sh(&script, 120)));
    assert_eq!(s["CODE"].trim(), "155", "{}", s["OUT"]);
    assert!(
        s["OUT"].contains("also live in the other iptables backend's tables"),
        "{}",
        s["OUT"]
    );
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

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn dockers_nftables_backend_is_recognised_and_containers_refused_there() {
    require_netns("engine", &[]);
    // Docker 29 with "firewall-backend": "nftables" writes its own docker-bridges tables
    // and no iptables rules at all. (/etc/docker: a private tmpfs in this mount namespace.)
    let script = r#"mount -t tmpfs iptd-docker /etc/docker
echo '{ "firewall-backend": "nftables" }' > /etc/docker/daemon.json
printf '[containers]\nrestrict = true\n' > /run/work/containers.toml
set +e
echo "=== STATUS"; "$BIN" status 2>&1
echo "=== REFUSED"; "$BIN" --config /run/work/containers.toml start 2>&1; echo "exit $?"
echo "=== AFTER_REFUSED"; iptables-legacy-save -t filter 2>/dev/null | grep -c '^:INPUT DROP'
echo "=== START"; "$BIN" start 2>&1; echo "exit $?"
echo "=== AFTER_START"; iptables-legacy-save -t filter | grep -c '^:INPUT DROP'
"#;
    let s = sections(&ok(netns_sh(script, 120)));
    assert!(
        s["STATUS"].contains(
            "Docker's firewall backend: nftables: /etc/docker/daemon.json sets \"firewall-backend\": \"nftables\""
        ),
        "{}",
        s["STATUS"]
    );
    let refused = &s["REFUSED"];
    assert!(refused.contains("no DOCKER-USER chain"), "{refused}");
    assert!(refused.contains("exit 6"), "{refused}");
    // A start that cannot use its configuration fails closed (issue 17): with no last good
    // policy here, the minimal one (INPUT DROP but loopback, established and ssh).
    assert!(refused.contains("failing closed"), "{refused}");
    assert_eq!(s["AFTER_REFUSED"].trim(), "1", "start did not fail closed");
    assert!(s["START"].contains("exit 0"), "{}", s["START"]);
    assert!(
        s["START"].contains("note: Docker runs its nftables firewall backend"),
        "{}",
        s["START"]
    );
    assert_eq!(
        s["AFTER_START"].trim(),
        "1",
        "the host policy did not apply"
    );
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn on_nft_a_failing_edit_is_retried_then_every_family_put_back() {
    require_netns("engine", &[]);
    // As above on iptables-nft: the IPv6 edit fails on every attempt (the kernel refuses
    // MASQUERADE in filter), the IPv4 edit already made is undone, ufw's rules come back.
    let script = format!(
        r#"iptables-nft-restore < {FIXTURE}
iptables-nft -N ufw-before-input
iptables-nft -I INPUT 1 -j ufw-before-input
ip6tables-nft -N ufw6-before-input
ip6tables-nft -I INPUT 1 -j ufw6-before-input
printf 'template = "policy.j2"\n' > /run/work/config.toml
printf '*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\n{{%% if family == "ipv6" %%}}-A INPUT -j MASQUERADE\n{{%% endif %%}}COMMIT\n' > /run/work/policy.j2
dump() {{ iptables-nft-save; ip6tables-nft-save; }}
echo "=== BEFORE"; dump | grep -v '^#'
set +e
"$BIN" --backend nft --config /run/work/config.toml start > /run/work/out 2> /run/work/err
rc=$?
echo "=== CODE"; echo $rc
set -e
echo "=== AFTER"; dump | grep -v '^#'
echo "=== ERR"; cat /run/work/err
"#
    );
    let s = sections(&ok(netns_sh(&script, 120)));
    let err = &s["ERR"];
    assert_eq!(s["CODE"].trim(), "1", "{err}");
    assert_eq!(s["BEFORE"], s["AFTER"], "the ruleset was not put back");
    assert!(
        err.contains("the 5 attempts to edit the running ruleset all failed"),
        "{err}"
    );
    assert!(err.contains("the previous ruleset was put back"), "{err}");
}
