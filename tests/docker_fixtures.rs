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
        .filter(|r| !(table.name == TableName::Filter && &*r.chain == "INPUT"))
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
    forward_before: Option<ChainPolicy>,
) -> Result<(), String> {
    for table in &fixture.tables {
        let found = after
            .table(table.name)
            .ok_or(format!("after {phase}: table {} is gone", table.name))?;
        let want = docker_view(table);
        let got = docker_view(found);
        if want != got {
            return Err(format!(
                "after {phase}: Docker's chains/rules in table {} differ\n want {:#?}\n got {:#?}",
                table.name, want, got
            ));
        }
        let want_input = rules(fixture, table.name, "INPUT");
        let got_input = rules(after, table.name, "INPUT");
        if table.name == TableName::Filter && !got_input.starts_with(&want_input) {
            return Err(format!("after {phase}: Docker's INPUT rules are not first"));
        }
    }
    let text = all_rules(after);
    if let Some(marker) = JUNK_MARKERS.iter().find(|m| text.contains(*m)) {
        return Err(format!("after {phase}: junk '{marker}' is left:\n{text}"));
    }
    if policy_of(after, TableName::Filter, "FORWARD") != forward_before {
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
        ipset_load = ipset_restore_line(&ipset),
        junk = junk(v6),
        forward = if forward_drop {
            format!("{p} -P FORWARD DROP")
        } else {
            String::new()
        },
    );
    let s = netns_sections(&script, "iptables-docker")?;
    let fixture = parse(&s["FIXTURE"]);
    let before = parse(&s["BEFORE"]);
    let started = parse(&s["START"]);
    let stopped = parse(&s["STOP"]);
    let forward_before = policy_of(&before, TableName::Filter, "FORWARD");

    for (phase, after) in [("start", &started), ("stop", &stopped)] {
        check_docker_kept(phase, &fixture, after, forward_before)?;
    }
    let input = rules(&started, TableName::Filter, "INPUT");
    let active = policy_of(&started, TableName::Filter, "INPUT") == Some(ChainPolicy::Drop)
        && input.contains(&"-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT".to_string())
        && input.contains(&"-A INPUT -i lo -j ACCEPT".to_string());
    if !active {
        return Err(format!("after start: host policy not active: {input:#?}"));
    }
    let open = policy_of(&stopped, TableName::Filter, "INPUT") == Some(ChainPolicy::Accept)
        && rules(&stopped, TableName::Filter, "INPUT")
            == rules(&fixture, TableName::Filter, "INPUT")
        && policy_of(&stopped, TableName::Filter, "OUTPUT") == Some(ChainPolicy::Accept);
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

/// fail2ban beside Docker, in the fixture's family: chains with a ban, jumps from INPUT
/// (first, as fail2ban inserts them), from FORWARD and, where Docker made it, from
/// DOCKER-USER, and an ipset match straight in INPUT (its `iptables-ipset` actions).
fn fail2ban(p: &str, v6: bool) -> String {
    let (ban, family) = if v6 {
        ("2001:db8:bad::1/128", "inet6")
    } else {
        ("203.0.113.50/32", "inet")
    };
    format!(
        r#"ipset create f2b-mail hash:ip family {family}
{p}-legacy-restore --noflush <<'F2B'
*filter
:f2b-sshd - [0:0]
:f2b-web - [0:0]
-A f2b-sshd -s {ban} -j DROP
-A f2b-sshd -j RETURN
-A f2b-web -s {ban} -j DROP
-A f2b-web -j RETURN
-I INPUT 1 -p tcp -m multiport --dports 22 -j f2b-sshd
-A INPUT -p tcp -m multiport --dports 25 -m set --match-set f2b-mail src -j DROP
-A FORWARD -p tcp -m multiport --dports 8080 -j f2b-web
COMMIT
F2B
if {p}-legacy -S DOCKER-USER > /dev/null 2>&1; then
  {p}-legacy -I DOCKER-USER 1 -p tcp -m multiport --dports 80,443 -j f2b-web
fi
"#
    )
}

/// A configuration using every section that writes rules where Docker's are kept (FORWARD,
/// nat, DOCKER-USER), both families, and a fragment whose rules look like Docker's.
const EVERYTHING: &str = r#"keep = ["fail2ban"]
trusted_interfaces = ["wg0"]
[bridges]
to_host = "limited"
[[bridges.allow]]
port = 9100
[containers]
external_interfaces = ["eth0"]
[[containers.allow]]
port = 8080
from = ["0.0.0.0/0", "::/0"]
[[forward]]
in = "wg0"
out = "eth0"
from = ["10.8.0.0/24", "fd08::/64"]
[[source_nat]]
from = ["10.8.0.0/24", "fd08::/64"]
out = "eth0"
[[port_forward]]
in = "eth0"
port = 2222
to = "10.99.0.5"
to_port = 22
[[port_forward]]
in = "eth0"
port = 2222
to = "fd99::5"
to_port = 22
"#;

/// Rules with the shape of Docker's (a FORWARD accept for docker0, a masquerade that
/// names docker0), for the network `NET` of the fixture's family.
const LOOKS_LIKE_DOCKER: &str = "*filter\n-A FORWARD -i docker0 -o wg0 -j ACCEPT\nCOMMIT\n\
    *nat\n-A POSTROUTING -s NET ! -o docker0 -j MASQUERADE\nCOMMIT\n";

/// A table that holds nothing (no rules, no user chains, policies ACCEPT) is no table.
fn normalized(rs: &Ruleset) -> String {
    rs.tables
        .iter()
        .filter(|t| holds_something(t))
        .map(ToString::to_string)
        .collect()
}

/// A family where Docker runs but made no DOCKER-USER (Docker 20.10's ip6tables; most
/// of the fixtures, recorded without it) keeps the one the policy created, empty, with
/// its jump first in FORWARD: what every Docker since 17.06 makes, and never a rule of
/// ours. Where Docker made it, nothing changes.
fn with_docker_user_hook(rs: &mut Ruleset) {
    let Some(filter) = rs.tables.iter_mut().find(|t| t.name == TableName::Filter) else {
        return;
    };
    if filter.chain("DOCKER-USER").is_some() {
        return;
    }
    let mut chain = filter
        .chains
        .iter()
        .find(|c| !c.is_builtin())
        .cloned()
        .expect("Docker's chains");
    chain.name = "DOCKER-USER".into();
    let at = filter
        .chains
        .iter()
        .position(|c| !c.is_builtin() && c.name.as_str() > "DOCKER-USER")
        .unwrap_or(filter.chains.len());
    filter.chains.insert(at, chain);
    let first = filter.rules.iter().position(|r| &*r.chain == "FORWARD");
    let mut jump = filter.rules.first().cloned().expect("Docker's rules");
    jump.chain = "FORWARD".into();
    jump.spec = "-j DOCKER-USER".into();
    let after_builtins_before_forward = filter
        .rules
        .iter()
        .position(|r| &*r.chain != "INPUT")
        .unwrap_or(filter.rules.len());
    filter
        .rules
        .insert(first.unwrap_or(after_builtins_before_forward), jump);
}

/// After start: fail2ban's jumps stand where they stood (first in INPUT and, where Docker
/// made it, in DOCKER-USER), its FORWARD jump and ipset rule are kept.
fn jumps_in_place(started: &Ruleset, before: &Ruleset) -> Result<(), String> {
    let input = rules(started, TableName::Filter, "INPUT");
    if input.first().map(String::as_str)
        != Some("-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd")
    {
        return Err(format!(
            "after start: the f2b-sshd jump is not INPUT's first rule: {input:#?}"
        ));
    }
    let kept = [
        "-A INPUT -p tcp -m multiport --dports 25 -m set --match-set f2b-mail src -j DROP",
        "-A FORWARD -p tcp -m multiport --dports 8080 -j f2b-web",
    ];
    let all = started.to_string();
    if let Some(lost) = kept.iter().find(|k| !all.lines().any(|l| l.ends_with(*k))) {
        return Err(format!("after start: {lost} is gone"));
    }
    if before
        .table(TableName::Filter)
        .and_then(|t| t.chain("DOCKER-USER"))
        .is_some()
    {
        let user = rules(started, TableName::Filter, "DOCKER-USER");
        if user.first().map(String::as_str)
            != Some("-A DOCKER-USER -p tcp -m multiport --dports 80,443 -j f2b-web")
        {
            return Err(format!(
                "after start: the f2b-web jump is not DOCKER-USER's first rule: {user:#?}"
            ));
        }
    }
    Ok(())
}

/// Docker's fixture plus fail2ban, `start` with [`EVERYTHING`], `stop`: both families
/// byte-identical to before; after start, the fail2ban jumps stand where they stood.
fn check_no_trace(file: &Path) -> Result<(), String> {
    let v6 = file.to_string_lossy().ends_with(".v6.rules");
    let p = if v6 { "ip6tables" } else { "iptables" };
    let ipset = file.with_extension("ipset");
    let script = format!(
        r#"{ipset_load}
{p}-legacy-restore < '{file}'
{f2b}
mkdir -p /run/work/rules.d
cat > /run/work/config.toml <<'CONF'
{EVERYTHING}CONF
cat > /run/work/rules.d/docker-like.v{fam}.rules <<'FRAG'
{fragment}FRAG
dump() {{ echo "=== $1 4"; iptables-legacy-save | sed '/^#/d'; echo "=== $1 6"; ip6tables-legacy-save | sed '/^#/d'; }}
dump BEFORE
"$BIN" --config /run/work/config.toml start > /run/work/out 2>&1 || {{ echo "=== FAILED"; cat /run/work/out; exit 0; }}
dump START
"$BIN" --config /run/work/config.toml stop > /run/work/out 2>&1 || {{ echo "=== FAILED"; cat /run/work/out; exit 0; }}
dump STOP
"#,
        file = file.display(),
        ipset_load = ipset_restore_line(&ipset),
        f2b = fail2ban(p, v6),
        fam = if v6 { 6 } else { 4 },
        fragment = LOOKS_LIKE_DOCKER.replace("NET", if v6 { "fd08::/64" } else { "10.8.0.0/24" }),
    );
    let s = netns_sections(&script, "iptables-docker")?;
    let family = if v6 { "6" } else { "4" };
    let started = parse(&s[&format!("START {family}")]);
    let before = parse(&s[&format!("BEFORE {family}")]);
    jumps_in_place(&started, &before)?;
    for fam in ["4", "6"] {
        let mut before = parse(&s[&format!("BEFORE {fam}")]);
        if fam == family {
            with_docker_user_hook(&mut before);
        }
        let want = normalized(&before);
        let got = normalized(&parse(&s[&format!("STOP {fam}")]));
        if want != got {
            return Err(format!("after start + stop, IPv{fam} differs from before:\n--- before\n{want}--- after\n{got}"));
        }
    }
    Ok(())
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn start_then_stop_leaves_no_trace_beside_docker_and_fail2ban() {
    require_netns("docker_fixtures", &[]);
    let files = fixture_files();
    check_all("no trace", &files, |_, file| check_no_trace(file));
}
