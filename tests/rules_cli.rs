//! `iptables-docker allow|deny|reject|limit SPEC`, `rules` and `delete N|SPEC` on
//! temporary configuration files: an edit changes the rule it adds or removes and not one
//! other byte (comments, blank lines, layout), an identical rule is not added twice (the
//! file is not even rewritten), bad SPECs name the word and what is allowed there, and an
//! edit the loader refuses is not written, edits made at the same moment all land (the
//! edit lock), and `--apply` needs root before it touches anything. `--apply` (with and
//! without a confirmation, with its terminal killed) runs in a throwaway network
//! namespace against the real kernel.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::*;

/// A configuration an admin wrote by hand: comments everywhere, blank lines, a `[[rule]]`
/// with a comment inside and a multi-line array, an `[[allow]]`.
const HAND_WRITTEN: &str = r#"# my firewall
# (keep this comment)

icmp = true   # ping

[ssh]
port = 22
allow_from = ["0.0.0.0/0", "::/0"]


# --- host rules ---
[[rule]]
description = "web"
action = "allow"
# both web ports
port = [
  80,
  443,
]   # end of ports

# the office may do anything
[[rule]]
action = "allow"
from = ["198.51.100.0/24"]

[[allow]]
description = "metrics"
port = 9100
from = ["10.0.0.0/8"]

# trailing words
"#;

struct Temp {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn temp_config(text: Option<&str>) -> Temp {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    if let Some(text) = text {
        std::fs::write(&path, text).unwrap();
    }
    Temp { _dir: dir, path }
}

/// Runs the binary with `--config path` and `args`; (exit code, stdout, stderr).
fn run(path: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("--config")
        .arg(path)
        .args(args)
        .env("IPTABLES_DOCKER_STATE_DIR", path.with_file_name("state"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn words(line: &str) -> Vec<&str> {
    line.split(' ').collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// `text` with `inserted` spliced in at byte `at`.
fn spliced(text: &str, at: usize, inserted: &str) -> String {
    format!("{}{inserted}{}", &text[..at], &text[at..])
}

/// Where a new rule goes in [`HAND_WRITTEN`]: after the last `[[rule]]`'s last line.
fn after_last_rule() -> usize {
    let last = "from = [\"198.51.100.0/24\"]\n";
    HAND_WRITTEN.find(last).unwrap() + last.len()
}

#[test]
fn allow_then_delete_keeps_every_other_byte() {
    let t = temp_config(Some(HAND_WRITTEN));
    let (rc, out, err) = run(&t.path, &["allow", "443/tcp", "--comment", "tls"]);
    assert_eq!(rc, 0, "{err}");
    let rule =
        "\n[[rule]]\ndescription = \"tls\"\naction = \"allow\"\nproto = \"tcp\"\nport = 443\n";
    assert_eq!(
        read(&t.path),
        spliced(HAND_WRITTEN, after_last_rule(), rule)
    );
    assert!(
        out.contains("+[[rule]]") && out.contains("+port = 443"),
        "{out}"
    );
    assert!(out.contains("added rule 3: allow 443/tcp"), "{out}");
    // By SPEC (the comment is no part of the rule's identity).
    let (rc, out, err) = run(&t.path, &["delete", "allow", "443/tcp"]);
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("deleted rule 3: allow 443/tcp"), "{out}");
    assert_eq!(read(&t.path), HAND_WRITTEN);
    // By number, with the full form and every key.
    let spec = "limit in on eth0 log from 203.0.113.0/24,2001:db8::/32 to any port 22,8000:8100";
    let (rc, _, err) = run(&t.path, &words(spec));
    assert_eq!(rc, 0, "{err}");
    let rule = "\n[[rule]]\naction = \"limit\"\nproto = \"any\"\nport = [22, \"8000-8100\"]\n\
                from = [\"203.0.113.0/24\", \"2001:db8::/32\"]\ninterface = \"eth0\"\nlog = true\n";
    assert_eq!(
        read(&t.path),
        spliced(HAND_WRITTEN, after_last_rule(), rule)
    );
    let (rc, _, err) = run(&t.path, &["delete", "3"]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(read(&t.path), HAND_WRITTEN);
}

#[test]
fn a_second_identical_allow_changes_nothing() {
    let t = temp_config(Some(HAND_WRITTEN));
    let (rc, _, err) = run(&t.path, &["allow", "53"]);
    assert_eq!(rc, 0, "{err}");
    let bytes = std::fs::read(&t.path).unwrap();
    let meta = std::fs::metadata(&t.path).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // The same rule in other words: ufw's range spelling, a comment.
    for args in [
        &["allow", "53"][..],
        &["allow", "to", "any", "port", "53", "--comment", "dns"],
    ] {
        let (rc, out, err) = run(&t.path, args);
        assert_eq!(rc, 0, "{err}");
        assert!(
            out.contains("already has this rule (rule 3: allow 53); nothing changed"),
            "{out}"
        );
        let now = std::fs::metadata(&t.path).unwrap();
        assert_eq!(std::fs::read(&t.path).unwrap(), bytes);
        assert_eq!(
            (now.modified().unwrap(), now.ino()),
            (meta.modified().unwrap(), meta.ino()),
            "the file was rewritten"
        );
    }
    // [ssh] and [[allow]] count too: they are rules of the same INPUT chain.
    for (spec, which) in [
        (&["22/tcp"][..], "[ssh]"),
        (
            &words("from 10.0.0.0/8 to any port 9100 proto tcp")[..],
            "rule 4",
        ),
    ] {
        let (rc, out, _) = run(&t.path, &[&["allow"], spec].concat());
        assert_eq!(rc, 0);
        assert!(
            out.contains(&format!("already has this rule ({which}")),
            "{out}"
        );
    }
}

#[test]
fn delete_n_and_delete_spec_remove_exactly_that_rule() {
    let t = temp_config(Some(HAND_WRITTEN));
    let (rc, out, _) = run(&t.path, &["rules"]);
    assert_eq!(rc, 0);
    let listed: Vec<&str> = out.lines().skip(1).map(str::trim).collect();
    assert_eq!(
        listed,
        [
            "1  allow 80,443/tcp  # web",
            "2  allow from 198.51.100.0/24",
            "allow 22/tcp  [ssh]",
            "3  allow from 10.0.0.0/8 to any port 9100 proto tcp  [[allow]]  # metrics",
            "outbound policy: accept (new connections that no `out` rule matches)",
            "The first rule that matches a new connection decides. This is the file: `iptables-docker",
            "status` shows what the kernel enforces (it says DIFFERS until `reload` applies an edit),",
            "and the published container ports, which [containers] governs, not these rules.",
        ]
    );
    // Rule 2 and the blank line before it; the comment above it stays.
    let (rc, _, err) = run(&t.path, &["delete", "2"]);
    assert_eq!(rc, 0, "{err}");
    let rule2 = "\n[[rule]]\naction = \"allow\"\nfrom = [\"198.51.100.0/24\"]\n";
    let want = HAND_WRITTEN.replacen(rule2, "\n", 1);
    assert_eq!(read(&t.path), want);
    // The [[allow]] by its SPEC; rule 1 by its SPEC.
    let spec = words("delete allow from 10.0.0.0/8 to any port 9100 proto tcp");
    let (rc, _, err) = run(&t.path, &spec);
    assert_eq!(rc, 0, "{err}");
    let allow = "\n[[allow]]\ndescription = \"metrics\"\nport = 9100\nfrom = [\"10.0.0.0/8\"]\n";
    let want = want.replacen(allow, "", 1);
    assert_eq!(read(&t.path), want);
    let (rc, _, err) = run(&t.path, &["delete", "allow", "80,443/tcp"]);
    assert_eq!(rc, 0, "{err}");
    let rule1 = "[[rule]]\ndescription = \"web\"\naction = \"allow\"\n# both web ports\nport = [\n  80,\n  443,\n]   # end of ports\n";
    assert_eq!(read(&t.path), want.replacen(rule1, "", 1));
    // Nothing left to delete: errors, the file as it was.
    let refused = [
        (&["delete", "1"][..], "there is no rule 1"),
        (&["delete", "deny", "22"], "no rule of"),
        (&["delete", "22"], "there is no rule 22"),
        // More digits than a number holds: still the number as given (was "rule 0").
        (
            &["delete", "99999999999999999999999"],
            "there is no rule 99999999999999999999999 in",
        ),
        (
            &["delete", "allow", "22/tcp"],
            "`allow 22/tcp` is the [ssh] table of",
        ),
    ];
    assert_refused(&t.path, &refused, 1);
}

/// An `[[allow]]` that says what `[ssh]` says is still deleted by its SPEC (`[ssh]`, first
/// in evaluation order, used to hide it: "no rule is `allow 22/tcp`").
#[test]
fn delete_spec_finds_an_allow_that_ssh_repeats() {
    let t = temp_config(Some("[ssh]\nport = 22\n\n[[allow]]\nport = 22\n"));
    let (rc, _, err) = run(&t.path, &["delete", "allow", "22/tcp"]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(read(&t.path), "[ssh]\nport = 22\n");
}

/// Runs each command line of `cases`: it exits `code`, its stderr says what the case
/// says, and the file is not changed.
fn assert_refused(path: &Path, cases: &[(&[&str], &str)], code: i32) {
    let before = std::fs::read(path).unwrap();
    for (args, says) in cases {
        let (rc, _, err) = run(path, args);
        assert_eq!(rc, code, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(path).unwrap(), before);
}

#[test]
fn bad_specs_name_the_word_and_what_is_allowed_there() {
    let t = temp_config(Some(HAND_WRITTEN));
    let refused = [
        (
            &["allow", "443/icmp"][..],
            "\"443/icmp\": proto must be tcp or udp",
        ),
        (
            &["deny", "from", "any", "port", "53"],
            "\"port\": a source port (`from ADDR port P`) is not supported",
        ),
        (
            &["reject", "from", "10.0.0.256"],
            "\"10.0.0.256\": '10.0.0.256' is not an IP address or CIDR; allowed: any, an address",
        ),
        (
            &["limit", "70000"],
            "\"70000\": '70000' is not a port (1-65535); allowed: a port (443)",
        ),
        (
            &["allow", "to", "any", "port", "22", "proto", "sctp"],
            "\"sctp\": proto must be tcp, udp or any",
        ),
        (
            &["allow", "no-such-service"],
            "\"no-such-service\": not a port or a service name of /etc/services",
        ),
        (
            &["delete", "permit", "22"],
            "\"permit\": expected a rule number (see `iptables-docker rules`) or an action",
        ),
        (
            &["allow", "22", "comment", "a", "--comment", "b"],
            "\"comment\": given twice",
        ),
    ];
    assert_refused(&t.path, &refused, 2);
}

#[test]
fn an_edit_the_loader_refuses_is_not_written() {
    let t = temp_config(Some(HAND_WRITTEN));
    // Valid words, invalid configuration: the loader's own located message.
    let refused = [
        (
            &["allow", "in", "on", "eth/0", "22"][..],
            "'eth/0' is not an interface name",
        ),
        (
            &["deny", "from", "192.0.2.1", "to", "2001:db8::1"],
            "'192.0.2.1/32' is IPv4 but `to` lists no IPv4 address",
        ),
        (
            &["limit", "out", "22"],
            "`limit` rate-limits new connections per source, so it applies to direction \"in\"",
        ),
    ];
    assert_refused(&t.path, &refused, 6);
    let (_, _, err) = run(&t.path, refused[0].0);
    let says = format!(
        "iptables-docker: with this change the configuration would not load: {}:",
        t.path.display()
    );
    assert!(err.starts_with(&says), "{err}");
    // The lines named are not in the file: the hint says they are the rule's, as appended.
    let lines = read(&t.path).lines().count();
    let hint = format!(
        "hint: the lines from {} on are the rule as it would be appended, shown as `",
        lines + 1
    );
    assert!(err.contains(&hint), "{err}");
    // A file that does not load is not edited at all.
    let broken = temp_config(Some("[ssh]\nport = 70000\n"));
    let (rc, _, err) = run(&broken.path, &["allow", "80"]);
    assert_eq!(rc, 6, "{err}");
    assert!(err.contains("does not load, so it is not edited"), "{err}");
    assert_eq!(read(&broken.path), "[ssh]\nport = 70000\n");
}

#[test]
fn without_a_config_file_one_is_created_from_the_commented_default() {
    let t = temp_config(None);
    let (rc, out, err) = run(
        &t.path,
        &["deny", "out", "to", "any", "port", "25", "proto", "tcp"],
    );
    assert_eq!(rc, 0, "{err}");
    let default = include_str!("../templates/config.toml");
    let rule = "\n[[rule]]\naction = \"deny\"\ndirection = \"out\"\nproto = \"tcp\"\nport = 25\n";
    assert_eq!(read(&t.path), format!("{default}{rule}"));
    assert!(
        out.contains("--- the commented default configuration"),
        "{out}"
    );
    assert!(
        out.contains("created ") && out.contains("added rule 1: deny out 25/tcp"),
        "{out}"
    );
    // `delete` needs a file; `rules` lists what the file holds.
    let (rc, out, _) = run(&t.path, &["rules"]);
    assert_eq!(rc, 0);
    assert!(out.contains("  1  deny out 25/tcp\n"), "{out}");
    let none = temp_config(None);
    let (rc, _, err) = run(&none.path, &["delete", "1"]);
    assert_eq!(
        (rc, err.contains("there is no configuration file")),
        (1, true),
        "{err}"
    );
}

/// `status` reads the kernel and says the open ports as `rules` does (`8443/tcp`); an
/// edit not applied yet is drift there, not an open port.
fn assert_status_says_what_rules_says(status: &str, unapplied: &str) {
    assert!(status.contains("iptables-docker: ON: "), "{status}");
    assert!(status.contains("\n    8443/tcp: everyone\n"), "{status}");
    assert!(
        status.contains("\n    22/tcp (ssh): everyone\n"),
        "{status}"
    );
    assert!(unapplied.contains("DIFFERS"), "{unapplied}");
    assert!(!unapplied.contains("9443/tcp:"), "{unapplied}");
}

/// In a namespace, with a Docker fixture loaded: `allow --apply` makes the rule live
/// through `reload`; `--apply --confirm` without a confirmation puts back both the
/// ruleset and the file, with one keeps both.
#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn apply_makes_the_rule_live_and_confirm_works_as_for_reload() {
    require_netns("rules_cli", &[]);
    let script = r#"iptables-legacy-restore < "$FIXTURES/moby-v29-doc-usernet-portmap.v4.rules"
C=/run/work/config.toml
printf '# mine\n[ssh]\nport = 22\n' > $C
dump() { iptables-legacy-save | grep -v '^#'; }
id() { "$BIN" --config $C --backend legacy "$@"; }
id start > /dev/null
echo "=== APPLY"; id allow 8443/tcp --apply
echo "=== LIVE"; dump
echo "=== STATUS"; id status || true
id -q allow 9443/tcp
echo "=== UNAPPLIED"; id status 2>&1 || true
id -q delete allow 9443/tcp
cp $C /run/work/before
rc=0; id deny from 192.0.2.7 --apply --confirm 2 < /dev/null > /run/work/out 2> /run/work/err || rc=$?
echo "=== RC"; echo $rc
echo "=== ERR"; cat /run/work/err
echo "=== AFTER"; dump
echo "=== FILE"; cmp $C /run/work/before && echo same
rc=0; { sleep 0.5; echo yes; } | id deny from 192.0.2.7 --apply --confirm 5 > /dev/null 2>&1 || rc=$?
echo "=== RC2"; echo $rc
echo "=== KEPT"; dump
echo "=== RULES"; id rules
cp $C /run/work/before
rc=0; SSH_CONNECTION="192.0.2.99 50000 192.0.2.1 22" id deny from 192.0.2.99 --apply > /dev/null 2> /run/work/err || rc=$?
echo "=== RC3"; echo $rc
echo "=== ERR3"; cat /run/work/err
echo "=== FILE3"; cmp $C /run/work/before && echo same
echo "=== GUARDED"; dump
"#;
    let s = sections(&ok(netns_sh(script, 90)));
    assert!(
        s["APPLY"].contains("added rule 1: allow 8443/tcp"),
        "{}",
        s["APPLY"]
    );
    // The INPUT rules in order: the [[rule]] lines come before [ssh]'s.
    let input = |dump: &str| -> Vec<String> {
        let lines = dump.lines().filter(|l| l.starts_with("-A INPUT "));
        lines.map(String::from).collect()
    };
    let (allow, deny) = (
        "-A INPUT -p tcp -m tcp --dport 8443 -j ACCEPT",
        "-A INPUT -s 192.0.2.7/32 -j DROP",
    );
    let ssh = "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT";
    let at = |rules: &[String], line: &str| rules.iter().position(|l| l == line);
    let live = input(&s["LIVE"]);
    assert!(
        at(&live, allow).is_some() && at(&live, allow) < at(&live, ssh),
        "{live:#?}"
    );
    assert!(s["LIVE"].contains(":INPUT DROP"), "{}", s["LIVE"]);
    assert_status_says_what_rules_says(&s["STATUS"], &s["UNAPPLIED"]);
    // Not confirmed: the ruleset and the file as they were.
    assert_eq!(s["RC"].trim(), "152", "{}", s["ERR"]);
    let says = "not confirmed within 2 s: the previous ruleset was put back, \
                and /run/work/config.toml as it was";
    assert!(s["ERR"].contains(says), "{}", s["ERR"]);
    assert_eq!(s["AFTER"], s["LIVE"]);
    assert_eq!(s["FILE"].trim(), "same");
    // Confirmed: both stay.
    assert_eq!(s["RC2"].trim(), "0");
    let kept = input(&s["KEPT"]);
    assert!(
        at(&kept, deny).is_some() && at(&kept, deny) < at(&kept, ssh),
        "{kept:#?}"
    );
    assert!(
        s["RULES"].contains("  2  deny from 192.0.2.7\n"),
        "{}",
        s["RULES"]
    );
    // A rule that would deny the SSH session this runs over: the lockout guard of reload
    // refuses it (151), and the file is put back.
    assert_eq!(s["RC3"].trim(), "151", "{}", s["ERR3"]);
    assert!(s["ERR3"].contains("is put back as it was"), "{}", s["ERR3"]);
    assert_eq!((s["FILE3"].trim(), &s["GUARDED"]), ("same", &s["KEPT"]));
}

/// `allow --apply --confirm` whose terminal is killed (an SSH session that died): the
/// watchdog puts back the ruleset and the configuration file, so the unconfirmed rule
/// does not come back with the next reload; until then it holds the edit lock, so no
/// other edit slips in between.
#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn an_unconfirmed_edit_is_undone_in_the_file_too_when_the_terminal_is_killed() {
    require_netns("rules_cli", &["script"]);
    let script = r#"iptables-legacy-restore < "$FIXTURES/moby-v29-doc-usernet-portmap.v4.rules"
C=/run/work/config.toml
printf '# mine\n[ssh]\nport = 22\n' > $C
dump() { iptables-legacy-save | grep -v '^#'; }
# The watchdog runs (so the apply is recorded as pending), then has finished.
watching() { for _ in $(seq 400); do pgrep -f '^/proc/self/exe .*confirm-watchdog' > /dev/null && return 0; sleep 0.05; done; return 1; }
settled() { for _ in $(seq 600); do pgrep -f '^/proc/self/exe .*confirm-watchdog' > /dev/null || return 0; sleep 0.05; done; return 1; }
id() { "$BIN" --config $C --backend legacy "$@"; }
id start > /dev/null
cp $C /run/work/before
echo "=== BEFORE"; dump
script -qfec "'$BIN' --config $C --backend legacy allow 8443/tcp --apply --confirm 5" /dev/null > /dev/null 2>&1 &
term=$!
watching
echo "=== DURING"; dump
kill -9 "$term"
sleep 0.3
echo "=== ALIVE"; pgrep -f "^$BIN --config $C --backend legacy allow" || echo none
echo "=== FILE_DURING"; grep -c 'port = 8443' $C || true
rc=0; id --wait 0 allow 9000/tcp > /dev/null 2> /run/work/err || rc=$?
echo "=== LOCKED"; echo $rc; cat /run/work/err
settled
echo "=== AFTER"; dump
echo "=== FILE"; cmp $C /run/work/before && echo same
echo "=== RELOAD"; id reload > /dev/null; dump
"#;
    let s = sections(&ok(netns_sh(script, 90)));
    assert_eq!(s["ALIVE"].trim(), "none", "allow outlived its terminal");
    assert_eq!(s["FILE_DURING"].trim(), "1", "the edit was not written");
    assert!(
        s["DURING"].contains("--dport 8443 -j ACCEPT"),
        "not applied"
    );
    // The watchdog holds the lock until it has decided.
    let locked = &s["LOCKED"];
    assert!(
        locked.starts_with("1\n") && locked.contains("another edit of /run/work/config.toml"),
        "{locked}"
    );
    assert_eq!(s["AFTER"], s["BEFORE"], "the ruleset was not rolled back");
    assert_eq!(
        s["FILE"].trim(),
        "same",
        "the file kept the unconfirmed edit"
    );
    assert_eq!(s["RELOAD"], s["BEFORE"], "the unconfirmed rule came back");
}

#[test]
fn edits_made_at_the_same_moment_all_land() {
    let t = temp_config(Some(HAND_WRITTEN));
    let ports: Vec<String> = (0..12).map(|i| format!("{}/tcp", 7000 + i)).collect();
    let children: Vec<_> = ports
        .iter()
        .map(|port| {
            std::process::Command::new(bin())
                .arg("--config")
                .arg(&t.path)
                .args(["--quiet", "allow", port])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let (rc, out, _) = run(&t.path, &["rules"]);
    assert_eq!(rc, 0);
    for port in &ports {
        assert!(
            out.contains(&format!("  allow {port}\n")),
            "{port} lost:\n{out}"
        );
    }
    assert_eq!(out.matches("  allow 70").count(), ports.len(), "{out}");
}

#[test]
fn an_edit_waits_for_the_lock_and_gives_up_after_wait() {
    let t = temp_config(Some(HAND_WRITTEN));
    let dir = t.path.parent().unwrap();
    // Another edit holds the lock (flock(1) on the directory, as an edit takes it).
    let mut holder = std::process::Command::new("flock")
        .arg(dir)
        .args(["sleep", "3"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (rc, _, err) = run(&t.path, &["--wait", "1", "allow", "8080/tcp"]);
    let held = holder.try_wait().unwrap().is_none();
    let (rc2, _, err2) = run(&t.path, &["--wait", "10", "allow", "8081/tcp"]);
    holder.wait().unwrap();
    assert!(
        held,
        "the holder was gone too early: the test proves nothing"
    );
    assert_eq!(rc, 1, "{err}");
    let says = format!("another edit of {} has held its lock", t.path.display());
    assert!(err.contains(&says), "{err}");
    assert_eq!(rc2, 0, "{err2}");
    let text = read(&t.path);
    assert!(
        !text.contains("port = 8080") && text.contains("port = 8081"),
        "{text}"
    );
}

/// `--apply` as a user who is not root: exit 4 before anything is read, written or
/// locked (run through `setpriv` as nobody when the tests run as root).
#[test]
fn apply_is_refused_without_root_and_the_file_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, HAND_WRITTEN).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    for args in [&["allow", "8443/tcp"][..], &["delete", "1"]] {
        let mut cmd = if root {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
            cmd.arg(bin());
            cmd
        } else {
            Command::new(bin())
        };
        let out = cmd
            .arg("--config")
            .arg(&path)
            .args(args)
            .args(["--apply", "--confirm"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        let says = format!("{} … --apply must run as root", args[0]);
        assert!(err.contains(&says), "{err}");
        let hint = format!("sudo iptables-docker {} … --apply", args[0]);
        assert!(err.contains(&hint), "{err}");
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let now = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (now.ino(), now.modified().unwrap()),
            (meta.ino(), meta.modified().unwrap())
        );
        assert_eq!(read(&path), HAND_WRITTEN);
    }
}
