//! `--quiet` and `--verbose` against the real kernel, in a throwaway namespace: quiet
//! prints nothing on success, the default one line per family (what was kept, what was
//! removed) and how long it took, verbose adds a line per table; written to the journal,
//! the lines carry their syslog level.

mod common;

use common::*;

const FIXTURE: &str = "$FIXTURES/moby-v29-doc-usernet-portmap.v4.rules";

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn quiet_prints_nothing_normal_a_line_per_family_verbose_a_line_per_table() {
    require_netns("verbosity", &[]);
    let script = format!(
        r#"iptables-legacy-restore < {FIXTURE}
iptables-legacy -A INPUT -p tcp --dport 9999 -j ACCEPT
echo "=== VERBOSE"; "$BIN" --verbose start
echo "=== QUIET"; "$BIN" stop --quiet
echo "=== NORMAL"; "$BIN" start
echo "=== UNCHANGED"; "$BIN" start
echo "=== RELOAD"; "$BIN" reload
echo "=== QUIET_UNCHANGED"; "$BIN" -q start
echo "=== CONFLICT"; "$BIN" -q -v start 2>&1 || echo "exit $?"
: > /run/work/journal
echo "=== JOURNAL"; JOURNAL_STREAM=$(stat -c '%d:%i' /run/work/journal) "$BIN" --verbose stop >> /run/work/journal
"$BIN" --config /nonexistent.toml start 2>> /run/work/journal || true
cat /run/work/journal
"#
    );
    let s = sections(&ok(netns_sh(&script, 120)));
    let verbose = &s["VERBOSE"];
    assert!(
        verbose.contains("IPv4: kept ") && verbose.contains("removed 1 other rule;"),
        "{verbose}"
    );
    assert!(verbose.contains("IPv4 filter: kept "), "{verbose}");
    assert!(verbose.contains("IPv4 nat: kept "), "{verbose}");
    assert!(verbose.contains("(unchanged)"), "{verbose}");
    assert!(verbose.contains("start: done in "), "{verbose}");
    assert_eq!(s["QUIET"].trim(), "", "--quiet printed");
    let normal = &s["NORMAL"];
    assert!(normal.contains("IPv4: kept "), "{normal}");
    assert!(normal.contains("start: done in "), "{normal}");
    assert!(!normal.contains("IPv4 filter:"), "{normal}");
    assert!(s["UNCHANGED"].contains("unchanged since the last apply"));
    assert!(s["RELOAD"].contains("reload: done in "), "{}", s["RELOAD"]);
    assert_eq!(s["QUIET_UNCHANGED"].trim(), "");
    assert!(s["CONFLICT"].contains("exit 2"), "{}", s["CONFLICT"]);
    // Writing to the journal (JOURNAL_STREAM names the stream), each line carries its
    // syslog level for journald; a run without JOURNAL_STREAM writes plain lines.
    let journal = &s["JOURNAL"];
    assert!(journal.contains("<6>IPv4: kept "), "{journal}");
    assert!(journal.contains("<7>IPv4 filter: kept "), "{journal}");
    assert!(journal.contains("<6>stop: done in "), "{journal}");
    assert!(journal.contains("\niptables-docker: "), "{journal}");
}
