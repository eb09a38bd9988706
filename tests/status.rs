//! `status` in a throwaway namespace: a simulated boot (the unit starts before any default
//! route exists, the network comes up after) with `[containers]` reports no drift and exits
//! 0; with a configuration that does not load, it still reports what the kernel holds.

mod common;

use common::*;

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn after_a_boot_without_a_default_route_status_reports_no_drift() {
    require_netns("status", &[]);
    let script = r#"iptables-legacy-restore < "$FIXTURES/moby-v29-doc-usernet-portmap.v4.rules"
iptables-legacy -N f2b-sshd && iptables-legacy -A INPUT -p tcp --dport 22 -j f2b-sshd
printf 'ipv6 = false\n[containers]\nrestrict = true\n' > /run/work/config.toml
echo "=== ROUTE_AT_START"; ip route show default
"$BIN" --config /run/work/config.toml start > /dev/null
ip link add eth0 type veth peer name eth0-peer && ip addr add 192.0.2.2/24 dev eth0
ip link set eth0-peer up && ip link set eth0 up
ip route add default via 192.0.2.1
echo "=== ROUTE_AFTER"; ip route show default
echo "=== STATUS"; rc=0; "$BIN" --config /run/work/config.toml status || rc=$?
echo "=== RC"; echo $rc
printf 'ipv6 = false\n[ssh]\nport = 70000\n' > /run/work/broken.toml
echo "=== BROKEN"; rc=0; "$BIN" --config /run/work/broken.toml status 2>&1 || rc=$?
echo "=== BROKEN_RC"; echo $rc
"#;
    let s = sections(&ok(netns_sh(script, 120)));
    assert_eq!(
        s["ROUTE_AT_START"].trim(),
        "",
        "the boot had a default route"
    );
    assert!(
        s["ROUTE_AFTER"].contains("dev eth0"),
        "{}",
        s["ROUTE_AFTER"]
    );
    assert_eq!(s["RC"].trim(), "0", "{}", s["STATUS"]);
    assert!(
        s["STATUS"].starts_with("iptables-docker: ON: "),
        "{}",
        s["STATUS"]
    );
    assert!(
        s["STATUS"].contains("the last apply removed non-Docker chains: filter f2b-sshd"),
        "{}",
        s["STATUS"]
    );
    // A configuration that does not load: the report from the kernel still, then its error.
    let broken = &s["BROKEN"];
    assert_eq!(s["BROKEN_RC"].trim(), "6", "{broken}");
    assert!(broken.contains("IPv4 (INPUT policy DROP)"), "{broken}");
    assert!(broken.contains("drift is not checked"), "{broken}");
    assert!(broken.contains("/run/work/broken.toml:3:8:"), "{broken}");
}
