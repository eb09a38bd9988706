//! Properties of the pure pipeline, on generated input (proptest, 256 cases each):
//!
//! - `ruleset::parse` then `to_string` gives back generated canonical `iptables-save` text
//!   byte for byte;
//! - classification never drops a `DOCKER*` user chain, a rule in one, or a builtin-chain
//!   rule jumping to one (but the rules carrying our own comment marker, which the policy
//!   renders anew);
//! - composing twice is composing once, with the open (`stop`) policy, the built-in start
//!   policy and a start policy that takes over DOCKER-USER, for both families;
//! - the configuration loader never panics, and reads back what a generated file says.
//!
//! The generated rulesets are shaped as `iptables-save` writes them (builtin chains with an
//! ACCEPT/DROP policy, user chains with `-`), from Docker-heavy token pools so that Docker's
//! footprints in builtin chains occur, mixed with ufw/fail2ban chains, `!` negation, quoted
//! comments with escaped quotes, optional `[p:b]` counters on any line, and jumps to the
//! table's declared chains.

use std::path::Path;

use iptables_docker::compose::{changed_tables, compose};
use iptables_docker::config::{Config, Containers, Ports, Proto};
use iptables_docker::family::Family;
use iptables_docker::forwarding::{Forward, PortForward, SourceNat};
use iptables_docker::ownership::{classify, is_docker_chain, OWN_MARK};
use iptables_docker::pipeline::{plan, Mode};
use iptables_docker::policy::{Policy, Template};
use iptables_docker::presets::Preset;
use iptables_docker::rule::RuleArgs;
use iptables_docker::ruleset::{self, ChainPolicy, Ruleset, TableName};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

// ---- generated iptables-save text ------------------------------------------------------

const TABLES: [TableName; 4] = [
    TableName::Raw,
    TableName::Mangle,
    TableName::Nat,
    TableName::Filter,
];

const USER_CHAINS: &[&str] = &[
    "DOCKER",
    "DOCKER-BRIDGE",
    "DOCKER-CT",
    "DOCKER-FORWARD",
    "DOCKER-INGRESS",
    "DOCKER-INTERNAL",
    "DOCKER-ISOLATION-STAGE-1",
    "DOCKER-ISOLATION-STAGE-2",
    "DOCKER-USER",
    "LOGDROP",
    "f2b-recidive",
    "f2b-sshd",
    "helper",
    "ufw-before-input",
    "ufw-user-input",
];

const IFACES: &[&str] = &[
    "docker0",
    "docker_gwbridge",
    "br-0123456789ab",
    "br-+",
    "br-dummy",
    "mybr",
    "eth0",
    "lo",
    "loopback0",
];

const CIDRS: &[&str] = &[
    "172.17.0.2/32",
    "172.17.0.0/16",
    "10.9.0.2/32",
    "192.168.0.0/24",
    "127.0.0.1/32",
    "0.0.0.0/0",
    "203.0.113.7/32",
];

const TARGETS: &[&str] = &[
    "ACCEPT",
    "DROP",
    "RETURN",
    "MASQUERADE",
    "SNAT --to-source 192.168.123.1",
    "DNAT --to-destination 172.17.0.2:80",
    "DNAT --to-destination 10.9.0.2",
    "REDIRECT --to-ports 8080",
    "LOG --log-prefix \"[UFW BLOCK] \"",
    "MARK --set-xmark 0xd0c4e3/0xffffffff",
    "CHECKSUM --checksum-fill",
    "REJECT --reject-with icmp-port-unreachable",
];

fn neg() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => Just(""), 1 => Just("! ")]
}

/// What iptables-save prints for a comment: bare when it is one plain word, else quoted
/// with `\` and `"` escaped.
fn comment() -> impl Strategy<Value = String> {
    let text = prop_oneof![
        "[ -~]{0,16}",
        "[a-z]{1,8}( \"[a-z]{1,5}\")?",
        "[ -~]{0,8}".prop_map(|t| format!("{OWN_MARK}: {t}")),
        Just(OWN_MARK.to_string()),
    ];
    text.prop_map(|t| {
        let plain = !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/,=+@%".contains(c));
        if plain {
            format!("-m comment --comment {t}")
        } else {
            let escaped = t.replace('\\', "\\\\").replace('"', "\\\"");
            format!("-m comment --comment \"{escaped}\"")
        }
    })
}

/// One match of a rule, as iptables-save spells it.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        (neg(), select(CIDRS)).prop_map(|(n, c)| format!("{n}-s {c}")),
        (neg(), select(CIDRS)).prop_map(|(n, c)| format!("{n}-d {c}")),
        (neg(), select(IFACES)).prop_map(|(n, i)| format!("{n}-i {i}")),
        (neg(), select(IFACES)).prop_map(|(n, i)| format!("{n}-o {i}")),
        (select(&["tcp", "udp"][..]), neg(), 1u16..)
            .prop_map(|(p, n, port)| format!("-p {p} -m {p} {n}--dport {port}")),
        Just("-p sctp".to_string()),
        Just("-p udp -m u32 --u32 \"0x0>>0x16&0x3c@0xc=0x1\"".to_string()),
        Just("-m conntrack --ctstate RELATED,ESTABLISHED".to_string()),
        Just("-m addrtype --dst-type LOCAL".to_string()),
        Just("-m set --match-set docker-ext-bridges-v4 dst".to_string()),
        comment(),
    ]
}

#[derive(Debug, Clone)]
enum Target {
    None,
    Builtin(&'static str),
    /// A jump (`-j`, or `-g` when true) to the table's user chain at this index (modulo).
    Chain(bool, usize),
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        1 => Just(Target::None),
        3 => select(TARGETS).prop_map(Target::Builtin),
        3 => (prop::bool::weighted(0.1), any::<usize>()).prop_map(|(g, i)| Target::Chain(g, i)),
    ]
}

fn counters() -> impl Strategy<Value = Option<String>> {
    prop::option::of((any::<u64>(), 0u64..1_000_000).prop_map(|(p, b)| format!("[{p}:{b}]")))
}

#[derive(Debug, Clone)]
struct GenRule {
    chain: usize,
    matches: Vec<String>,
    target: Target,
    counters: Option<String>,
}

#[derive(Debug, Clone)]
struct GenTable {
    name: TableName,
    policies: Vec<(bool, Option<String>)>,
    users: Vec<(&'static str, Option<String>)>,
    rules: Vec<GenRule>,
}

fn gen_rule() -> impl Strategy<Value = GenRule> {
    (
        any::<usize>(),
        prop::collection::vec(fragment(), 0..4),
        target(),
        counters(),
    )
        .prop_map(|(chain, matches, target, counters)| GenRule {
            chain,
            matches,
            target,
            counters,
        })
}

fn gen_table(name: TableName) -> impl Strategy<Value = GenTable> {
    let builtins = name.builtin_chains().len();
    (
        prop::collection::vec((prop::bool::weighted(0.3), counters()), builtins),
        subsequence(USER_CHAINS, 0..=8)
            .prop_flat_map(|names| {
                let n = names.len();
                (Just(names), prop::collection::vec(counters(), n))
            })
            .prop_map(|(names, counters)| names.into_iter().zip(counters).collect()),
        prop::collection::vec(gen_rule(), 0..14),
    )
        .prop_map(move |(policies, users, rules)| GenTable {
            name,
            policies,
            users,
            rules,
        })
}

/// A whole ruleset: a non-empty subset of the tables, in a random order.
fn gen_ruleset() -> impl Strategy<Value = Vec<GenTable>> {
    subsequence(&TABLES[..], 1..=4)
        .prop_shuffle()
        .prop_flat_map(|names| names.into_iter().map(gen_table).collect::<Vec<_>>())
}

/// Renders generated tables as canonical iptables-save text.
fn render(tables: &[GenTable]) -> String {
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("*{}\n", t.name));
        let builtins = t.name.builtin_chains();
        let mut chains: Vec<&str> = builtins.to_vec();
        for (name, (drop, counters)) in builtins.iter().zip(&t.policies) {
            let policy = if *drop { "DROP" } else { "ACCEPT" };
            out.push_str(&line(
                counters.as_deref(),
                &format!(":{name} {policy}"),
                true,
            ));
        }
        for (name, counters) in &t.users {
            out.push_str(&line(counters.as_deref(), &format!(":{name} -"), true));
            chains.push(name);
        }
        for r in &t.rules {
            let chain = chains[r.chain % chains.len()];
            let mut words = r.matches.clone();
            match r.target {
                Target::None => {}
                Target::Builtin(target) => words.push(format!("-j {target}")),
                Target::Chain(goto, i) if !t.users.is_empty() => {
                    let jump = if goto { "-g" } else { "-j" };
                    words.push(format!("{jump} {}", t.users[i % t.users.len()].0));
                }
                Target::Chain(..) => words.push("-j ACCEPT".to_string()),
            }
            let mut rule = format!("-A {chain}");
            for w in &words {
                rule.push(' ');
                rule.push_str(w);
            }
            out.push_str(&line(r.counters.as_deref(), &rule, false));
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// Chain declarations carry counters after the policy, rules before `-A`.
fn line(counters: Option<&str>, text: &str, after: bool) -> String {
    match counters {
        None => format!("{text}\n"),
        Some(c) if after => format!("{text} {c}\n"),
        Some(c) => format!("{c} {text}\n"),
    }
}

fn parsed(text: &str) -> Ruleset {
    ruleset::parse(text).unwrap_or_else(|e| panic!("generated text does not parse: {e}\n{text}"))
}

fn keep_chains() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![Just(vec![]), Just(vec!["f2b-*".to_string()])]
}

/// Whether a rule carries our own comment marker (any comment of it: a superset of what
/// the classifier looks at, so the property only ever exempts more).
fn marked_ours(spec: &str) -> bool {
    RuleArgs::parse(spec)
        .opts()
        .filter(|o| o.name == "--comment")
        .any(|o| o.values.iter().any(|v| v.starts_with(OWN_MARK)))
}

// ---- configurations ----------------------------------------------------------------

/// The built-in configuration, with or without a policy that takes over DOCKER-USER.
fn start_config(keep: &[String], containers: bool) -> Config {
    let mut config = Config::builtin();
    config.keep_chains = keep.to_vec();
    if containers {
        config.containers = Some(Containers {
            restrict: true,
            external_interfaces: vec!["eth0".to_string()],
            allow: Vec::new(),
        });
    }
    config
}

/// [`start_config`] with every section that writes rules where Docker's are kept: a
/// trusted interface, a forward rule, source NAT and a port forward (FORWARD, nat and,
/// with `containers`, DOCKER-USER), in both families, and the fail2ban preset.
fn neighbours_config(keep: &[String], containers: bool) -> Config {
    let mut config = start_config(keep, containers);
    let both: Vec<ipnet::IpNet> =
        vec!["10.8.0.0/24".parse().unwrap(), "fd08::/64".parse().unwrap()];
    config.keep = vec![Preset::find("fail2ban").unwrap()];
    config.trusted_interfaces = vec!["docker0".into(), "wg+".into()];
    config.forward = vec![Forward {
        description: String::new(),
        in_iface: Some("br-0123456789ab".into()),
        out_iface: Some("eth0".into()),
        from: both.clone(),
        to: Vec::new(),
        proto: None,
        ports: None,
    }];
    config.source_nat = vec![SourceNat {
        description: "vpn".into(),
        from: both,
        out_iface: "docker0".into(),
        to_source: None,
    }];
    config.port_forward = ["172.17.0.2", "fd08::2"]
        .iter()
        .map(|to| PortForward {
            description: String::new(),
            in_iface: Some("eth0".into()),
            proto: Proto::Tcp,
            ports: Ports {
                first: 80,
                last: 80,
            },
            to: iptables_docker::config::parse_cidr(to).unwrap(),
            to_port: None,
            from: Vec::new(),
        })
        .collect();
    config
}

/// `rs` without empty tables (every policy ACCEPT, nothing in them: the same firewall as
/// no table) and, unless `hook`, without an empty DOCKER-USER and its jump from FORWARD:
/// where Docker runs in the family but made none, `stop` leaves the one the policy made
/// (README.md, "Published container ports").
fn comparable(rs: &Ruleset, hook: bool) -> Ruleset {
    let mut rs = rs.clone();
    for t in rs
        .tables
        .iter_mut()
        .filter(|t| t.name == TableName::Filter && !hook)
    {
        if t.rules_of("DOCKER-USER").next().is_none() {
            t.chains.retain(|c| c.name != "DOCKER-USER");
            t.rules.retain(|r| &*r.spec != "-j DOCKER-USER");
        }
    }
    rs.tables.retain(|t| {
        !t.rules.is_empty()
            || t.chains
                .iter()
                .any(|c| c.policy != Some(ChainPolicy::Accept))
    });
    rs
}

fn plan_of(text: &str, family: Family, config: &Config, mode: Mode) -> Ruleset {
    let p = plan(
        family,
        text,
        "generated",
        (config, &Template::builtin()),
        mode,
    )
    .unwrap_or_else(|e| panic!("plan failed: {e}\n{text}"));
    p.desired
}

#[derive(Debug, Clone)]
struct GenAllow {
    description: String,
    udp: bool,
    ports: (u16, u16),
    from: Vec<&'static str>,
}

fn gen_allow() -> impl Strategy<Value = GenAllow> {
    (
        "[ -~&&[^\\\\\"]]{0,20}",
        any::<bool>(),
        (1u16.., 1u16..),
        subsequence(
            &["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::/0"][..],
            1..=4,
        ),
    )
        .prop_map(|(description, udp, (a, b), from)| GenAllow {
            description,
            udp,
            ports: (a.min(b), a.max(b)),
            from,
        })
}

fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

proptest! {
    // 256 cases each, proptest's default; `PROPTEST_CASES=5000` for a deeper run.
    #![proptest_config(ProptestConfig::default())]

    /// parse ∘ serialize is the identity on canonical iptables-save text.
    #[test]
    fn parse_then_serialize_is_the_identity(tables in gen_ruleset()) {
        let text = render(&tables);
        let rs = parsed(&text);
        prop_assert_eq!(rs.to_string(), text);
        prop_assert_eq!(rs.tables.len(), tables.len());
    }

    /// Every DOCKER* user chain is kept, every rule in one (bar ours), and every builtin
    /// rule jumping to one.
    #[test]
    fn classification_never_drops_docker(tables in gen_ruleset(), keep in keep_chains()) {
        let text = render(&tables);
        let rs = parsed(&text);
        let own = classify(&rs, &keep);
        prop_assert_eq!(own.tables.len(), rs.tables.len());
        for (table, to) in rs.tables.iter().zip(&own.tables) {
            prop_assert_eq!(to.chains.len(), table.chains.len());
            prop_assert_eq!(to.rules.len(), table.rules.len());
            let docker_chain = |name: &str| {
                is_docker_chain(name) && table.chain(name).is_some_and(|c| !c.is_builtin())
            };
            for (chain, reason) in table.chains.iter().zip(&to.chains) {
                if docker_chain(&chain.name) {
                    prop_assert!(reason.is_some(), "{} {} dropped", table.name, chain.name);
                }
            }
            for (rule, reason) in table.rules.iter().zip(&to.rules) {
                let jumps_to_docker = RuleArgs::parse(&rule.spec)
                    .target()
                    .is_some_and(docker_chain);
                let builtin = table.chain(&rule.chain).is_some_and(|c| c.is_builtin());
                let must_keep = if docker_chain(&rule.chain) {
                    !marked_ours(&rule.spec)
                } else {
                    // A builtin rule marked ours is the policy's, rendered anew.
                    builtin && jumps_to_docker && !marked_ours(&rule.spec)
                };
                if must_keep {
                    prop_assert!(reason.is_some(), "{}: dropped {}", table.name, rule);
                }
            }
        }
    }

    /// compose + classify with the open policy, then again on the result: the same.
    #[test]
    fn composing_twice_is_composing_once_open(tables in gen_ruleset(), keep in keep_chains()) {
        let rs = parsed(&render(&tables));
        let policy = Policy::open();
        let once = compose(&rs, &classify(&rs, &keep), &policy).expect("composes");
        let twice = compose(&once, &classify(&once, &keep), &policy).expect("composes again");
        prop_assert_eq!(&twice, &once);
        prop_assert!(changed_tables(&once, &twice).is_empty());
        prop_assert_eq!(parsed(&once.to_string()), once);
    }

    /// The whole plan (start with the built-in policy, or one owning DOCKER-USER; stop),
    /// both families: planning the planned ruleset changes nothing.
    #[test]
    fn planning_twice_is_planning_once(
        tables in gen_ruleset(),
        keep in keep_chains(),
        containers in any::<bool>(),
        v6 in any::<bool>(),
        stop in prop::bool::weighted(0.25),
    ) {
        let text = render(&tables);
        let family = if v6 { Family::V6 } else { Family::V4 };
        let mode = if stop { Mode::Stop } else { Mode::Start };
        let config = start_config(&keep, containers);
        let once = plan_of(&text, family, &config, mode);
        let again = plan(family, &once.to_string(), "planned", (&config, &Template::builtin()), mode)
            .expect("plans again");
        prop_assert!(
            again.desired == once,
            "planning again changes\n{once}\ninto\n{}\nfrom\n{text}",
            again.desired
        );
        prop_assert!(again.changed.is_empty(), "second plan changes {:?}", again.changed);
        let removed: Vec<String> = again
            .fates()
            .iter()
            .filter(|(_, _, fate)| fate.removes())
            .map(|(t, r, fate)| format!("{} -A {} {}  # {}", t.name, r.chain, r.spec, fate.why()))
            .collect();
        prop_assert!(removed.is_empty(), "the second plan removes {removed:#?}\nof\n{once}");
    }

    /// `stop` after `start` gives back what `stop` alone gives, with every section that
    /// writes rules where Docker's are kept (rules shaped like Docker's included: an
    /// accept from docker0, a masquerade out of docker0, a DNAT to a Docker address): the
    /// policy leaves no trace. Where the policy takes DOCKER-USER over, the admin's own
    /// rules in it are replaced by design, so those inputs are left out.
    #[test]
    fn stop_after_start_is_stop(
        tables in gen_ruleset(),
        keep in keep_chains(),
        containers in any::<bool>(),
        v6 in any::<bool>(),
    ) {
        let family = if v6 { Family::V6 } else { Family::V4 };
        let config = neighbours_config(&keep, containers);
        let alone = plan_of(&render(&tables), family, &config, Mode::Stop);
        if containers {
            let filter = alone.table(TableName::Filter);
            let user: Vec<_> = filter.iter().flat_map(|t| t.rules_of("DOCKER-USER")).collect();
            prop_assume!(user.iter().all(|r| &*r.spec == "-j RETURN" || r.spec.contains("f2b-")));
            let forward: Vec<_> = filter.iter().flat_map(|t| t.rules_of("FORWARD")).collect();
            let jumps = forward.iter().position(|r| &*r.spec == "-j DOCKER-USER");
            let hook = filter.is_some_and(|t| t.chain("DOCKER-USER").is_some());
            // Docker makes DOCKER-USER with its jump first in FORWARD, and nowhere else.
            prop_assume!(if hook { jumps == Some(0) } else { jumps.is_none() });
        }
        let started = plan_of(&alone.to_string(), family, &config, Mode::Start);
        let stopped = plan_of(&started.to_string(), family, &config, Mode::Stop);
        let had_hook = alone.table(TableName::Filter).is_some_and(|t| t.chain("DOCKER-USER").is_some());
        let (stopped, alone) = (comparable(&stopped, had_hook), comparable(&alone, true));
        prop_assert!(
            stopped == alone,
            "start + stop leaves\n{stopped}\ninstead of\n{alone}\nstarted:\n{started}"
        );
    }

    /// The loader never panics on text made of TOML and configuration fragments.
    #[test]
    fn config_loader_never_panics(
        parts in prop::collection::vec(
            prop_oneof![
                select(&[
                    "[ssh]\n", "[[allow]]\n", "[swarm]\n", "[containers]\n",
                    "[[containers.allow]]\n", "port = ", "from = ", "allow_from = ",
                    "description = ", "proto = ", "host = ", "keep_chains = ",
                    "external_interfaces = ", "ipv6 = ", "enabled = ", "restrict = ",
                    "\"tcp\"", "\"8000-8100\"", "\"80:81\"", "65536", "-1", "0",
                    "[\"10.0.0.0/8\", \"::/0\"]", "\"10.0.0.300\"", "true", "\n", " ",
                    "\"", "'''", "\"\"\"", "\\n", "é", "#", "=", "[", "]", ",",
                ][..]).prop_map(str::to_string),
                "[ -~\n\u{e9}\u{1F600}]{0,6}",
            ],
            0..24,
        )
    ) {
        let text: String = parts.concat();
        if let Err(e) = Config::parse(&text, Path::new("/etc/p.toml")) {
            let e = e.to_string();
            prop_assert!(e.starts_with("/etc/p.toml:"), "{e}");
        }
    }

    /// A generated configuration loads as written, again identically, and renders.
    #[test]
    fn generated_configs_load_as_written(
        ssh_port in 1u16..,
        allows in prop::collection::vec(gen_allow(), 0..4),
        keep in prop::collection::vec("[a-z0-9*?-]{1,8}", 0..3),
        icmp in any::<bool>(),
    ) {
        let mut text = format!(
            "icmp = {icmp}\nkeep_chains = {}\n[ssh]\nport = {ssh_port}\n",
            toml_list(&keep.iter().map(String::as_str).collect::<Vec<_>>()),
        );
        for a in &allows {
            let port = if a.ports.0 == a.ports.1 {
                a.ports.0.to_string()
            } else {
                format!("\"{}-{}\"", a.ports.0, a.ports.1)
            };
            let proto = if a.udp { "udp" } else { "tcp" };
            text.push_str(&format!(
                "[[allow]]\ndescription = \"{}\"\nproto = \"{proto}\"\nport = {port}\nfrom = {}\n",
                a.description,
                toml_list(&a.from),
            ));
        }
        let path = Path::new("/etc/p.toml");
        let config = Config::parse(&text, path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        prop_assert_eq!(&Config::parse(&text, path).expect("loads again"), &config);
        prop_assert_eq!(config.ssh.port, ssh_port);
        prop_assert_eq!(config.icmp, icmp);
        prop_assert_eq!(&config.keep_chains, &keep);
        prop_assert_eq!(config.allow.len(), allows.len());
        for (got, want) in config.allow.iter().zip(&allows) {
            prop_assert_eq!(&got.description, &want.description);
            prop_assert_eq!(got.proto, if want.udp { Proto::Udp } else { Proto::Tcp });
            prop_assert_eq!(got.ports, Ports { first: want.ports.0, last: want.ports.1 });
            let from: Vec<String> = got.from.iter().map(ToString::to_string).collect();
            prop_assert_eq!(from, want.from.clone());
        }
        for family in Family::ALL {
            let policy = iptables_docker::policy::render(
                &config,
                &Template::builtin(),
                family,
                &Default::default(),
            );
            prop_assert!(policy.is_ok(), "{family}: {}", policy.unwrap_err());
        }
    }
}
