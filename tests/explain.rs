//! `plan --explain` against a saved ruleset (no root, no kernel): every running rule is
//! kept (with the reason), replaced by the policy, written again by it, or removed (with
//! the reason), and the policy's new rules are listed as added (those of a [[rule]] or
//! [[allow]] table with its number) — consistent with the plan.

use std::process::Command;

const SAVED: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
:f2b-sshd - [0:0]
:ufw-before-input - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd
-A INPUT -j ufw-before-input
-A INPUT -p tcp -m tcp --dport 9000 -m comment --comment iptables-docker -j ACCEPT
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -j DOCKER
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-USER -s 192.0.2.7/32 -j DROP
-A f2b-sshd -s 203.0.113.9/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
-A ufw-before-input -j RETURN
COMMIT
";

const CONFIG: &str = "ipv6 = false
keep_chains = [\"f2b-*\"]
[[rule]]
description = \"ssh\"
action = \"limit\"
port = 22
[[allow]]
port = 9100
[containers]
restrict = true
";

#[test]
fn explain_says_what_happens_to_every_rule_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.rules");
    let config = dir.path().join("config.toml");
    std::fs::write(&saved, SAVED).unwrap();
    std::fs::write(&config, CONFIG).unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin("iptables-docker"))
        .arg("--config")
        .arg(&config)
        .args(["plan", "--explain", "--input"])
        .arg(&saved)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let line = |start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting `{start}`:\n{text}"))
    };
    assert!(
        line("keep    filter -A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd").ends_with(
            "# jumps to kept chain f2b-sshd; stays ahead of the policy's rules in this chain"
        )
    );
    assert!(line("keep    filter chain f2b-sshd").contains("keep_chains pattern 'f2b-*'"));
    assert!(
        line("replace filter -A DOCKER-USER -s 192.0.2.7/32 -j DROP")
            .contains("the policy takes this chain over")
    );
    assert!(line("replace filter chain DOCKER-USER").contains("the policy takes it over"));
    assert!(line("remove  filter -A INPUT -j ufw-before-input").contains("not Docker's"));
    assert!(line("remove  filter chain ufw-before-input").contains("not Docker's"));
    assert!(line("remove  filter -A INPUT -p tcp -m tcp --dport 9000")
        .contains("iptables-docker's own rule from an earlier configuration"));
    assert!(line("policy  filter -A INPUT -i lo -j ACCEPT").contains("writes this same rule"));
    assert!(line("keep    filter -A DOCKER -d 172.17.0.2/32").contains("in a kept chain"));
    assert!(
        line("add     filter -A DOCKER-USER -m conntrack --ctstate DNAT").ends_with("# the policy")
    );
    // Lines of the host rules say which table of the configuration they come from.
    assert!(
        line("add     filter -A INPUT -p tcp -m tcp --dport 22 -m recent --set")
            .ends_with("# the policy: [[rule]] 1 (limit: ssh)")
    );
    assert!(
        line("add     filter -A INPUT -p tcp -m tcp --dport 9100 -j ACCEPT")
            .ends_with("# the policy: [[allow]] 1")
    );
    // `-i lo` is written again, not added a second time.
    assert!(
        !text.contains("add     filter -A INPUT -i lo -j ACCEPT"),
        "{text}"
    );
    // The plan agrees: f2b's jump stays in what start loads.
    let planned = Command::new(assert_cmd::cargo::cargo_bin("iptables-docker"))
        .arg("--config")
        .arg(&config)
        .args(["plan", "--input"])
        .arg(&saved)
        .output()
        .unwrap();
    let planned = String::from_utf8_lossy(&planned.stdout);
    assert!(
        planned.contains("-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd"),
        "{planned}"
    );
    assert!(!planned.contains("192.0.2.7"), "{planned}");
}
