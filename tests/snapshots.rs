//! `snapshots` and `rollback` against the real kernel, in a throwaway namespace: a rollback
//! to the snapshot taken before a policy change brings the old host rules back while the
//! Docker rules of a container started in between stay; `rollback --confirm` without a
//! confirmation puts back what ran before it.

mod common;

use common::*;

const SCRIPT: &str = r#"iptables-legacy-restore < "$FIXTURES/moby-v29-doc-usernet-portmap.v4.rules"
printf 'ipv6 = false\n[[allow]]\ndescription = "old"\nport = 5432\n' > /run/work/a.toml
printf 'ipv6 = false\n[[allow]]\ndescription = "new"\nport = 6000\n' > /run/work/b.toml
"$BIN" --config /run/work/a.toml start > /dev/null
sleep 0.01
"$BIN" --config /run/work/b.toml start > /dev/null
echo "=== LIST"; "$BIN" snapshots
before_b=$("$BIN" snapshots | tail -1 | cut -d' ' -f1)
# a container started after the policy change: Docker's rules for it
iptables-legacy -t nat -A DOCKER ! -i bridge1 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 192.0.2.9:80
iptables-legacy -A DOCKER -d 192.0.2.9/32 ! -i bridge1 -o bridge1 -p tcp -m tcp --dport 80 -j ACCEPT
echo "=== ROLLBACK"; "$BIN" --config /run/work/b.toml rollback "$before_b"
echo "=== AFTER"; iptables-legacy-save | grep -v '^#'
echo "=== STATUS"; rc=0; "$BIN" --config /run/work/b.toml status > /dev/null || rc=$?; echo $rc
"$BIN" --config /run/work/b.toml start > /dev/null
echo "=== UNCONFIRMED"; rc=0; "$BIN" --config /run/work/b.toml rollback --confirm 1 "$before_b" < /dev/null > /dev/null 2>&1 || rc=$?; echo $rc
echo "=== AFTER_UNCONFIRMED"; iptables-legacy-save | grep -v '^#'
echo "=== LIST2"; "$BIN" snapshots
"#;

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn rollback_brings_old_host_rules_back_and_keeps_new_docker_rules() {
    require_netns("snapshots", &[]);
    let s = sections(&ok(netns_sh(SCRIPT, 120)));
    let list: Vec<&str> = s["LIST"].lines().collect();
    assert_eq!(list.len(), 2, "one snapshot per start:\n{}", s["LIST"]);
    for line in &list {
        let name = line.split(' ').next().unwrap();
        // 20261130T190405.123456Z
        assert_eq!(name.len(), 23, "{line}");
        assert!(name.as_bytes()[8] == b'T' && name.ends_with('Z'), "{line}");
        assert!(line.contains(" v4 "), "{line}");
    }
    assert!(
        s["ROLLBACK"].contains("put back with Docker's rules as they are now"),
        "{}",
        s["ROLLBACK"]
    );
    let after = parse(&s["AFTER"]);
    let input = rules(&after, TableName::Filter, "INPUT").join("\n");
    assert!(
        input.contains("--dport 5432"),
        "old host rule not back:\n{input}"
    );
    assert!(
        !input.contains("--dport 6000"),
        "new host rule still there:\n{input}"
    );
    assert!(
        rules(&after, TableName::Nat, "DOCKER")
            .iter()
            .any(|r| r.contains("--dport 9090")),
        "the new container's DNAT is gone"
    );
    assert!(
        rules(&after, TableName::Filter, "DOCKER")
            .iter()
            .any(|r| r.contains("192.0.2.9/32")),
        "the new container's filter rule is gone"
    );
    assert_eq!(s["STATUS"].trim(), "154", "status after a rollback: drift");
    assert_eq!(
        s["UNCONFIRMED"].trim(),
        "152",
        "rollback --confirm unconfirmed"
    );
    let back = parse(&s["AFTER_UNCONFIRMED"]);
    let input = rules(&back, TableName::Filter, "INPUT").join("\n");
    assert!(
        input.contains("--dport 6000") && !input.contains("--dport 5432"),
        "an unconfirmed rollback must put back what ran before it:\n{input}"
    );
    assert!(rules(&back, TableName::Nat, "DOCKER")
        .iter()
        .any(|r| r.contains("--dport 9090")));
    // start A, start B, the rollback, start B again, the unconfirmed rollback.
    assert_eq!(s["LIST2"].lines().count(), 5, "{}", s["LIST2"]);
}
