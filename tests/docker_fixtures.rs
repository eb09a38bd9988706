//! Every Docker-written ruleset in `../shared/fixtures/docker` (IPv4 and IPv6), with junk
//! from other tools added, through real `start` and `stop` in a throwaway namespace:
//! every Docker rule survives with identical text and relative order, no junk is left,
//! the policy is active after start, the host open after stop, FORWARD policy unchanged.

mod common;

use std::path::Path;

use common::*;
use iptables_docker::ruleset::{Ruleset, Table};

/// Junk other tools leave behind, loaded with `iptables-restore --noflush` on top of the
/// fixture: ufw chains and jumps (one before DOCKER-USER), fail2ban, a DNAT and a REDIRECT
/// in nat, libvirt's nat chain, a mangle MARK, a raw NOTRACK, an INPUT accept-all.
fn junk(v6: bool) -> String {
    let dnat = if v6 { "[fd99::1]:22" } else { "10.99.0.1:22" };
    format!(
        "*raw\n-I PREROUTING 1 -p udp -m udp --dport 53 -j NOTRACK\nCOMMIT\n\
         *mangle\n-A PREROUTING -p tcp -m tcp --dport 443 -j MARK --set-xmark 0x1/0xffffffff\nCOMMIT\n\
         *nat\n:LIBVIRT_PRT - [0:0]\n-I PREROUTING 1 -p tcp -m tcp --dport 2222 -j DNAT --to-destination {dnat}\n\
         -A PREROUTING -p tcp -m tcp --dport 81 -j REDIRECT --to-ports 8081\n\
         -A POSTROUTING -j LIBVIRT_PRT\n-A LIBVIRT_PRT -j RETURN\nCOMMIT\n\
         *filter\n:ufw-before-input - [0:0]\n:ufw-before-forward - [0:0]\n:f2b-sshd - [0:0]\n\
         -A ufw-before-input -j RETURN\n-A ufw-before-forward -j RETURN\n-A f2b-sshd -j RETURN\n\
         -I INPUT 1 -j ufw-before-input\n-I INPUT 1 -p tcp -m multiport --dports 22 -j f2b-sshd\n\
         -A INPUT -j ACCEPT\n-I FORWARD 1 -j ufw-before-forward\nCOMMIT\n"
    )
}

const JUNK_MARKERS: [&str; 8] = [
    "ufw-",
    "f2b-",
    "LIBVIRT",
    "2222",
    "REDIRECT",
    "MARK",
    "NOTRACK",
    "-A INPUT -j ACCEPT",
];

fn all_rules(rs: &Ruleset) -> String {
    rs.to_string()
}

/// The chains (names, in order) and the rules of every chain but filter INPUT.
fn docker_view(table: &Table) -> (Vec<String>, Vec<String>) {
    let chains = table
        .chains
        .iter()
        .filter(|c| !c.is_builtin())
        .map(|c| c.name.clone())
        .collect();
    let rules = table
        .rules
        .iter()
        .filter(|r| !(table.name == "filter" && r.chain == "INPUT"))
        .map(|r| format!("-A {} {}", r.chain, r.spec))
        .collect();
    (chains, rules)
}

/// After `phase`: Docker's chains and rules of `fixture` exactly as they were (its INPUT
/// rules first), no junk left, the FORWARD policy as before.
fn check_docker_kept(
    phase: &str,
    fixture: &Ruleset,
    after: &Ruleset,
    forward_before: Option<&str>,
) -> Result<(), String> {
    for table in &fixture.tables {
        let found = after
            .table(&table.name)
            .ok_or(format!("after {phase}: table {} is gone", table.name))?;
        let want = docker_view(table);
        let got = docker_view(found);
        if want != got {
            return Err(format!(
                "after {phase}: Docker's chains/rules in table {} differ\n want {:#?}\n got {:#?}",
                table.name, want, got
            ));
        }
        let want_input = rules(fixture, &table.name, "INPUT");
        let got_input = rules(after, &table.name, "INPUT");
        if table.name == "filter" && !got_input.starts_with(&want_input) {
            return Err(format!("after {phase}: Docker's INPUT rules are not first"));
        }
    }
    let text = all_rules(after);
    if let Some(marker) = JUNK_MARKERS.iter().find(|m| text.contains(*m)) {
        return Err(format!("after {phase}: junk '{marker}' is left:\n{text}"));
    }
    if policy_of(after, "filter", "FORWARD").as_deref() != forward_before {
        return Err(format!("after {phase}: FORWARD policy changed"));
    }
    Ok(())
}

/// Checks one fixture on `backend` (legacy or nft); returns a description of what is
/// wrong, if anything. Docker's rules are compared with the fixture as the backend saves
/// it back (iptables-nft spells a few matches differently).
fn check(file: &Path, backend: &str, forward_drop: bool) -> Result<(), String> {
    let v6 = file.to_string_lossy().ends_with(".v6.rules");
    let family = if v6 { "ip6tables" } else { "iptables" };
    let p = format!("{family}-{backend}");
    let ipset = file.with_extension("ipset");
    let script = format!(
        r#"F='{file}'
{ipset_load}
{p}-restore < "$F"
echo "=== FIXTURE"; {p}-save
{p}-restore --noflush <<'JUNK'
{junk}JUNK
{forward}
echo "=== BEFORE"; {p}-save
"$BIN" --backend {backend} start > /run/work/out 2>&1 || {{ echo "=== FAILED"; cat /run/work/out; exit 0; }}
echo "=== START"; {p}-save
"$BIN" --backend {backend} stop > /run/work/out 2>&1 || {{ echo "=== FAILED"; cat /run/work/out; exit 0; }}
echo "=== STOP"; {p}-save
"#,
        file = file.display(),
        ipset_load = if ipset.exists() {
            format!("ipset restore < '{}'", ipset.display())
        } else {
            String::new()
        },
        junk = junk(v6),
        forward = if forward_drop {
            format!("{p} -P FORWARD DROP")
        } else {
            String::new()
        },
    );
    let out = netns_sh(&script, 120);
    if !out.status.success() {
        return Err(format!("setup failed: {}{}", stdout(&out), stderr(&out)));
    }
    let s = sections(&stdout(&out));
    if let Some(failure) = s.get("FAILED") {
        return Err(format!("iptables-docker failed: {failure}"));
    }
    let fixture = parse(&s["FIXTURE"]);
    let before = parse(&s["BEFORE"]);
    let started = parse(&s["START"]);
    let stopped = parse(&s["STOP"]);
    let forward_before = policy_of(&before, "filter", "FORWARD");

    for (phase, after) in [("start", &started), ("stop", &stopped)] {
        check_docker_kept(phase, &fixture, after, forward_before.as_deref())?;
    }
    let input = rules(&started, "filter", "INPUT");
    let active = policy_of(&started, "filter", "INPUT").as_deref() == Some("DROP")
        && input.contains(&"-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT".to_string())
        && input.contains(&"-A INPUT -i lo -j ACCEPT".to_string());
    if !active {
        return Err(format!("after start: host policy not active: {input:#?}"));
    }
    let open = policy_of(&stopped, "filter", "INPUT").as_deref() == Some("ACCEPT")
        && rules(&stopped, "filter", "INPUT") == rules(&fixture, "filter", "INPUT")
        && policy_of(&stopped, "filter", "OUTPUT").as_deref() == Some("ACCEPT");
    if !open {
        return Err("after stop: host not open".to_string());
    }
    Ok(())
}

/// Runs [`check`] on every fixture on `backend`.
fn every_fixture_on(backend: &str) {
    require_netns("docker_fixtures", &[]);
    let files = fixture_files();
    check_all(
        &format!("docker fixtures on {backend}"),
        &files,
        |i, file| check(file, backend, i % 2 == 0),
    );
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn every_docker_fixture_survives_start_and_stop_with_junk_removed_legacy() {
    every_fixture_on("legacy");
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn every_docker_fixture_survives_start_and_stop_with_junk_removed_nft() {
    every_fixture_on("nft");
}
