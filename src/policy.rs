//! The host policy: a template (built-in or the admin's) rendered with the configuration
//! into an `iptables-restore` fragment for one address family, checked for what a policy
//! may and may not declare.

#![forbid(unsafe_code)]

use std::collections::HashMap;

use ipnet::IpNet;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::config::{Config, ContainerAllow, Ports, Proto};
use crate::diagnostic;
use crate::error::{Error, Result};
use crate::family::Family;
use crate::forwarding::{self, BridgeAccess, ForwardingView, RuleView};
use crate::host_rule;
use crate::ownership::{is_docker_chain, DockerFacts, OWN_MARK};
use crate::ruleset::{self, Ruleset, TableName};

/// The template used when the config names none.
pub const BUILTIN_TEMPLATE: &str = include_str!("../templates/policy.rules.j2");
const BUILTIN_NAME: &str = "built-in templates/policy.rules.j2";

/// Bridges the policy trusts even before Docker has created them.
const DEFAULT_BRIDGES: [&str; 3] = ["docker0", "br-+", "docker_gwbridge"];

/// A rendered and checked host policy for one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub fragment: Ruleset,
}

impl Policy {
    /// `stop`: the host open (INPUT and OUTPUT accept), no rules of ours, FORWARD untouched.
    pub fn open() -> Self {
        let fragment =
            ruleset::parse("*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
                .expect("the open policy parses");
        Policy { fragment }
    }

    /// Whether the policy writes rules to `table`'s `chain`.
    pub fn writes_to(&self, table: TableName, chain: &str) -> bool {
        self.fragment
            .table(table)
            .is_some_and(|t| t.rules_of(chain).next().is_some())
    }

    /// Whether the policy takes over the contents of `table`'s `chain`: a user chain it
    /// declares (DOCKER-USER with `[containers]`). A builtin chain it declares only gets
    /// the policy's rules and chain policy; the kept rules in it stay.
    pub fn takes_over(&self, table: TableName, chain: &str) -> bool {
        self.fragment
            .table(table)
            .and_then(|t| t.chain(chain))
            .is_some_and(|c| !c.is_builtin())
    }
}

/// What the template sees.
#[derive(Serialize)]
struct Context<'a> {
    family: &'static str,
    ssh: SshView,
    icmp: bool,
    log_dropped: bool,
    /// `[[rule]]` direction in: INPUT lines, in file order (before `ssh`).
    rules: Vec<RuleView>,
    /// `[[allow]]` as INPUT lines (the built-in template's; `allow` is the same tables
    /// field by field, for templates written before `[[rule]]`).
    allow_rules: Vec<RuleView>,
    allow: Vec<AllowView<'a>>,
    /// `[outbound]`: `{policy, rules}`, the OUTPUT lines of `[[rule]]` direction out.
    outbound: OutboundView,
    swarm: SwarmView,
    bridges: Vec<String>,
    /// `"all"` or `"limited"` (`[bridges] to_host`).
    bridges_to_host: &'static str,
    /// With `"limited"`: the host ports containers may open.
    bridges_allow: Vec<AllowView<'a>>,
    /// Interfaces trusted like Docker's bridges (INPUT; their FORWARD rules are in
    /// `forwarding.forward`).
    trusted_interfaces: &'a [String],
    forwarding: ForwardingView,
    containers: Option<ContainersView<'a>>,
}

#[derive(Serialize)]
struct SshView {
    port: u16,
    from: Vec<String>,
}

#[derive(Serialize)]
struct AllowView<'a> {
    description: &'a str,
    tag: String,
    proto: &'static str,
    port: String,
    host: Option<String>,
    from: Vec<String>,
}

#[derive(Serialize)]
struct OutboundView {
    /// `"accept"`, `"deny"` or `"reject"`.
    policy: &'static str,
    rules: Vec<RuleView>,
}

#[derive(Serialize)]
struct SwarmView {
    enabled: bool,
    encrypted: bool,
    from: Vec<String>,
}

#[derive(Serialize)]
struct ContainersView<'a> {
    restrict: bool,
    external_interfaces: &'a [String],
    allow: Vec<AllowView<'a>>,
}

fn sources(family: Family, nets: &[IpNet]) -> Vec<String> {
    nets.iter()
        .filter(|n| family.contains(n))
        .map(ToString::to_string)
        .collect()
}

fn allow_view<'a>(
    family: Family,
    description: &'a str,
    proto: Proto,
    ports: Ports,
    host: Option<&IpNet>,
    from: &[IpNet],
) -> Option<AllowView<'a>> {
    if host.is_some_and(|h| !family.contains(h)) {
        return None;
    }
    let from = sources(family, from);
    (!from.is_empty()).then(|| AllowView {
        description,
        tag: if description.is_empty() {
            OWN_MARK.to_string()
        } else {
            format!("{OWN_MARK}: {description}")
        },
        proto: proto.as_str(),
        port: ports.to_string(),
        host: host.map(|h| {
            if h.prefix_len() == h.max_prefix_len() {
                h.addr().to_string()
            } else {
                h.to_string()
            }
        }),
        from,
    })
}

/// The views of one `[[containers.allow]]`: one per protocol and port or range, in order.
fn published_views(family: Family, a: &ContainerAllow) -> Vec<AllowView<'_>> {
    let mut views = Vec::new();
    for proto in host_rule::protocols(a.proto, true).into_iter().flatten() {
        for ports in &a.ports {
            let host = a.host.as_ref();
            views.extend(allow_view(
                family,
                &a.description,
                proto,
                *ports,
                host,
                &a.from,
            ));
        }
    }
    views
}

/// `-s CIDR ` as iptables-save prints it; nothing for "anywhere".
fn source_filter(cidr: String) -> String {
    if cidr == "0.0.0.0/0" || cidr == "::/0" {
        String::new()
    } else {
        format!("-s {cidr} ")
    }
}

/// `-m comment --comment TEXT `, quoted the way iptables-save quotes: libxtables'
/// `xtables_save_string` leaves only letters, digits, `_` and `-` bare.
pub fn comment_filter(text: String) -> String {
    if text.is_empty() {
        return String::new();
    }
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    if plain {
        format!("-m comment --comment {text} ")
    } else {
        let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
        format!("-m comment --comment \"{escaped}\" ")
    }
}

/// Where each line the built-in template renders from the host rules comes from, for
/// `plan --explain`: `(chain, rule spec)` → `[[rule]] 2 (limit: ssh)` or `[[allow]] 1`,
/// each numbered within its own array of tables (`iptables-docker rules` numbers the
/// `[[rule]]` tables 1, 2, … and the `[[allow]]` tables after them). A line that two
/// tables render alike names the first of them, which the kernel meets first. A custom
/// template's other lines are simply not found here.
pub fn rule_origins(config: &Config, family: Family) -> HashMap<(String, String), String> {
    let spec = |line: &RuleView| {
        let comment = comment_filter(line.tag.clone());
        format!("{}{comment}-j {}", line.matches, line.target)
    };
    let mut origins = HashMap::new();
    for (i, rule) in config.rules.iter().enumerate() {
        let chain = match rule.direction {
            host_rule::Direction::In => "INPUT",
            host_rule::Direction::Out => "OUTPUT",
        };
        let what = match rule.description.as_str() {
            "" => rule.action.to_string(),
            text => format!("{}: {text}", rule.action),
        };
        for line in host_rule::lines(rule, i + 1, family) {
            let origin = format!("[[rule]] {} ({what})", i + 1);
            origins
                .entry((chain.to_string(), spec(&line)))
                .or_insert(origin);
        }
    }
    for (i, allow) in config.allow.iter().enumerate() {
        for line in host_rule::lines(&host_rule::Rule::from_allow(allow), 0, family) {
            let origin = format!("[[allow]] {}", i + 1);
            origins
                .entry(("INPUT".to_string(), spec(&line)))
                .or_insert(origin);
        }
    }
    origins
}

/// The policy template's name (its path, for messages) and text: read once per run, so
/// that every family, and the fingerprint of an apply's inputs, see the same text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub source: String,
}

impl Template {
    /// The built-in template (templates/policy.rules.j2, compiled in).
    pub fn builtin() -> Self {
        Template {
            name: BUILTIN_NAME.to_string(),
            source: BUILTIN_TEMPLATE.to_string(),
        }
    }

    /// The configuration's `template`, or the built-in one. Fails (a configuration error)
    /// when the file cannot be read or is not UTF-8, saying where.
    pub fn load(config: &Config) -> Result<Self> {
        let Some(path) = &config.template else {
            return Ok(Self::builtin());
        };
        let bytes = fs_err::read(path).map_err(|e| {
            Error::config(e.to_string())
                .hint("fix `template` in the configuration")
                .with_source(e)
        })?;
        Ok(Template {
            name: path.display().to_string(),
            source: crate::config::utf8(path, bytes)?,
        })
    }
}

/// Renders the policy for `family`. It depends only on the configuration, the template
/// and Docker's chains, never on the routing table of the moment: with `[containers]` and
/// no `external_interfaces`, "external" means every interface that is not a Docker bridge,
/// so the policy rendered at boot (before any default route exists) is the one rendered
/// once the network is up.
pub fn render(
    config: &Config,
    template: &Template,
    family: Family,
    facts: &DockerFacts,
) -> Result<Policy> {
    let Template { name, source } = template;
    let context = context(config, family, facts);
    let text = render_text(name, source, &context, &needed(config))?;
    let mut fragment = ruleset::parse(&text).map_err(|e| {
        let line = text.lines().nth(e.line - 1).unwrap_or("");
        Error::config(format!(
            "{name}: the rendered {family} policy is not valid iptables-restore input: \
             rendered line {}: {}\n  | {line}",
            e.line, e.message
        ))
        .hint("fix the template; `iptables-docker plan` shows what it renders")
    })?;
    check_fragment(&fragment).map_err(|m| {
        Error::config(format!("{name}: {m}")).hint("fix the template; nothing was applied")
    })?;
    crate::fragments::merge(&mut fragment, &config.fragments, family)?;
    Ok(Policy { fragment })
}

/// What the template sees for `family`.
fn context<'a>(config: &'a Config, family: Family, facts: &DockerFacts) -> Context<'a> {
    let mut bridges: Vec<String> = DEFAULT_BRIDGES.iter().map(ToString::to_string).collect();
    bridges.extend(
        facts
            .bridges
            .iter()
            .filter(|b| !(b.starts_with("br-") || DEFAULT_BRIDGES.contains(&b.as_str())))
            .cloned(),
    );
    let containers = config.containers.as_ref().map(|c| ContainersView {
        restrict: c.restrict,
        external_interfaces: &c.external_interfaces,
        allow: c
            .allow
            .iter()
            .flat_map(|a| published_views(family, a))
            .collect(),
    });
    let rules = host_rule::view(family, &config.rules, &config.allow, config.outbound);
    Context {
        family: match family {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        },
        ssh: SshView {
            port: config.ssh.port,
            from: sources(family, &config.ssh.allow_from),
        },
        icmp: config.icmp,
        log_dropped: config.log_dropped,
        rules: rules.input,
        allow_rules: rules.allow,
        outbound: OutboundView {
            policy: rules.outbound_policy,
            rules: rules.output,
        },
        allow: config
            .allow
            .iter()
            .filter_map(|a| allow_view(family, &a.description, a.proto, a.ports, None, &a.from))
            .collect(),
        swarm: SwarmView {
            enabled: config.swarm.enabled,
            encrypted: config.swarm.encrypted,
            from: sources(family, &config.swarm.from),
        },
        bridges,
        bridges_to_host: match config.bridges.to_host {
            BridgeAccess::All => "all",
            BridgeAccess::Limited => "limited",
        },
        bridges_allow: config
            .bridges
            .allow
            .iter()
            .filter_map(|a| allow_view(family, &a.description, a.proto, a.ports, None, &a.from))
            .collect(),
        trusted_interfaces: &config.trusted_interfaces,
        forwarding: forwarding::view(
            family,
            &config.trusted_interfaces,
            &config.forward,
            &config.source_nat,
            &config.port_forward,
            config.containers.is_some(),
        ),
        containers,
    }
}

/// The template variables the configuration needs rendered (`nested` names, as minijinja's
/// `undeclared_variables` gives them): a template that never reads them would drop the
/// `[[rule]]` tables or the `[outbound]` policy without a word.
fn needed(config: &Config) -> Vec<(&'static str, &'static str)> {
    let mut needed = Vec::new();
    let has = |direction| config.rules.iter().any(|r| r.direction == direction);
    if has(host_rule::Direction::In) {
        needed.push(("rules", "[[rule]] tables (direction \"in\")"));
    }
    if has(host_rule::Direction::Out) {
        needed.push(("outbound.rules", "[[rule]] tables with direction \"out\""));
    }
    if config.outbound != host_rule::OutboundPolicy::Accept {
        needed.push(("outbound.policy", "an [outbound] policy"));
    }
    needed
}

fn render_text(
    name: &str,
    source: &str,
    context: &Context,
    needed: &[(&str, &str)],
) -> Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_filter("source", source_filter);
    env.add_filter("comment", comment_filter);
    let located = |e: minijinja::Error| {
        let detail = e.detail().map_or(String::new(), |d| format!(": {d}"));
        let message = format!("{}{detail}", e.kind());
        let shown = match (e.range(), e.line()) {
            (Some(range), _) => diagnostic::at_offset(name, source, range.start, message),
            (None, Some(line)) => diagnostic::at_line(name, source, line, message),
            (None, None) => format!("{name}: {message}"),
        };
        Error::config(shown)
            .with_source(e)
            .hint("fix the template; nothing was applied")
    };
    env.add_template(name, source).map_err(located)?;
    let template = env.get_template(name).map_err(located)?;
    let used = template.undeclared_variables(true);
    if let Some((variable, what)) = needed.iter().find(|(v, _)| !used.contains(*v)) {
        return Err(Error::config(format!(
            "{name}: the configuration has {what}, but the template never uses \
             `{variable}`, so they would be ignored"
        ))
        .hint(
            "add the lines the built-in template has for them (README.md \"Policy \
             template\"), or remove `template` from the configuration; nothing was applied",
        ));
    }
    let mut text = template.render(context).map_err(located)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// A policy may set builtin chain policies (`-` keeps the running one), add its own chains
/// and take over DOCKER-USER; it may not declare Docker's other chains, which are kept as
/// Docker wrote them. (Table names, policy words and which chains may have a policy are
/// checked by the parser.)
fn check_fragment(fragment: &Ruleset) -> std::result::Result<(), String> {
    for table in &fragment.tables {
        for chain in &table.chains {
            if chain.policy.is_none()
                && is_docker_chain(&chain.name)
                && !(table.name == TableName::Filter && chain.name == "DOCKER-USER")
            {
                return Err(format!(
                    "chain {} belongs to Docker; a policy may only take over DOCKER-USER",
                    chain.name
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy `config` renders for `family` (its template, no Docker facts).
    fn rendered(config: &Config, family: Family) -> String {
        let template = Template::load(config).unwrap();
        render(config, &template, family, &DockerFacts::default())
            .unwrap()
            .fragment
            .to_string()
    }

    /// The error rendering `config` (its template) for IPv4 gives.
    fn render_error(config: &Config) -> String {
        let template = Template::load(config).unwrap();
        render(config, &template, Family::V4, &DockerFacts::default())
            .unwrap_err()
            .to_string()
    }

    fn render_default(family: Family) -> String {
        let config = Config::builtin();
        rendered(&config, family)
    }

    #[test]
    fn default_policy_v4() {
        let text = render_default(Family::V4);
        assert!(text.starts_with("*filter\n:INPUT DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"));
        assert!(text.contains("-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"));
        assert!(text.contains("-A INPUT -i br-+ -j ACCEPT\n"));
        assert!(text.contains("-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT\n"));
        assert!(!text.contains("icmp6"));
    }

    #[test]
    fn default_policy_v6_has_neighbour_discovery() {
        let text = render_default(Family::V6);
        assert!(text.contains("-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT\n"));
        assert!(text.contains("-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT\n"));
    }

    #[test]
    fn sources_are_split_by_family_and_quoted_like_iptables() {
        let mut config = Config::builtin();
        config.ssh.allow_from = vec!["10.0.0.0/8".parse().unwrap()];
        config.allow.push(crate::config::Allow {
            description: "web server".into(),
            proto: Proto::Tcp,
            ports: Ports {
                first: 80,
                last: 81,
            },
            from: vec!["::/0".parse().unwrap()],
        });
        let v4 = rendered(&config, Family::V4);
        assert!(v4.contains("-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j ACCEPT\n"));
        assert!(!v4.contains("80:81"));
        let v6 = rendered(&config, Family::V6);
        assert!(!v6.contains("--dport 22 "));
        assert!(v6.contains(
            "-A INPUT -p tcp -m tcp --dport 80:81 -m comment --comment \"web server\" -j ACCEPT\n"
        ));
    }

    #[test]
    fn default_policy_v6_keeps_dhcpv6_and_mld() {
        let text = render_default(Family::V6);
        assert!(text.contains(
            "-A INPUT -s fe80::/10 -d fe80::/10 -p udp -m udp --sport 547 --dport 546 -j ACCEPT\n"
        ));
        for t in [130, 131, 132, 143] {
            assert!(text.contains(&format!(
                "-A INPUT -s fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT\n"
            )));
        }
        assert!(!render_default(Family::V4).contains("546"));
    }

    #[test]
    fn host_network_sections_render_marked_rules_per_family() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "trusted_interfaces = [\"wg0\"]\n[bridges]\nto_host = \"limited\"\n\
             [containers]\nexternal_interfaces = [\"eth0\"]\n\
             [[source_nat]]\nfrom = [\"10.8.0.0/24\"]\nout = \"eth0\"\n\
             [[port_forward]]\nproto = \"tcp\"\nport = 2222\nto = \"192.168.1.20\"\nto_port = 22\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        let v4 = render(
            &config,
            &Template::builtin(),
            Family::V4,
            &DockerFacts::default(),
        )
        .unwrap();
        let v4 = v4.fragment.to_string();
        for want in [
            ":FORWARD - [0:0]\n",
            "-A INPUT -i wg0 -j ACCEPT\n",
            "-A INPUT -i docker0 -p udp -m udp --dport 53 -j ACCEPT\n",
            "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment iptables-docker -j ACCEPT\n",
            "-A FORWARD -i wg0 -m comment --comment iptables-docker -j ACCEPT\n",
            "-A FORWARD -o wg0 -m comment --comment iptables-docker -j ACCEPT\n",
            "-A FORWARD -d 192.168.1.20/32 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -m comment --comment iptables-docker -j ACCEPT\n",
            "-A DOCKER-USER -d 192.168.1.20/32 -p tcp -m conntrack --ctstate DNAT --ctorigdstport 2222 -m comment --comment iptables-docker -j RETURN\n",
            "*nat\n:PREROUTING - [0:0]\n:POSTROUTING - [0:0]\n",
            "-A PREROUTING -p tcp -m tcp --dport 2222 -m comment --comment iptables-docker -j DNAT --to-destination 192.168.1.20:22\n",
            "-A POSTROUTING -s 10.8.0.0/24 -o eth0 -m comment --comment iptables-docker -j MASQUERADE\n",
        ] {
            assert!(v4.contains(want), "{want}\n{v4}");
        }
        assert!(!v4.contains("-A INPUT -i docker0 -j ACCEPT"), "{v4}");
        let v6 = render(
            &config,
            &Template::builtin(),
            Family::V6,
            &DockerFacts::default(),
        )
        .unwrap();
        let v6 = v6.fragment.to_string();
        assert!(
            !v6.contains("*nat") && v6.contains("-A FORWARD -i wg0 "),
            "{v6}"
        );
    }

    #[test]
    fn template_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.j2");
        std::fs::write(
            &path,
            "*filter\n:INPUT DROP [0:0]\n{{ nosuchvar }}\nCOMMIT\n",
        )
        .unwrap();
        let mut config = Config::builtin();
        config.template = Some(path.clone());
        let err = render_error(&config);
        assert!(
            err.starts_with(&format!("{}:3:4:", path.display())),
            "{err}"
        );
        assert!(err.contains("\n    {{ nosuchvar }}\n       ^\n"), "{err}");

        std::fs::write(&path, b"*filter\n\xff\n").unwrap();
        let err = Template::load(&config).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}:2:1: not UTF-8 text: byte 0xff\n",
                path.display()
            )),
            "{err}"
        );

        std::fs::write(&path, "*filter\n:DOCKER - [0:0]\nCOMMIT\n").unwrap();
        let err = render_error(&config);
        assert!(err.contains("belongs to Docker"), "{err}");
    }

    #[test]
    fn without_external_interfaces_every_non_bridge_interface_is_external() {
        let mut config = Config::builtin();
        config.containers = Some(crate::config::Containers {
            restrict: true,
            external_interfaces: Vec::new(),
            allow: Vec::new(),
        });
        let text = rendered(&config, Family::V4);
        assert!(text.contains(
            "-A DOCKER-USER -i docker_gwbridge -m comment --comment iptables-docker -j RETURN\n\
             -A DOCKER-USER -m conntrack --ctstate DNAT -m comment --comment iptables-docker -j DROP\n"
        ), "{text}");
        if let Some(c) = config.containers.as_mut() {
            c.external_interfaces = vec!["eth0".into()];
        }
        let text = rendered(&config, Family::V4);
        assert!(
            text.contains("-A DOCKER-USER -i eth0 -m conntrack --ctstate DNAT"),
            "{text}"
        );
    }

    #[test]
    fn a_line_two_rules_render_alike_comes_from_the_first() {
        let config = Config::parse(
            "[[rule]]\naction = \"deny\"\nport = 23\n[[rule]]\naction = \"deny\"\nport = 23\n",
            std::path::Path::new("/etc/x.toml"),
        )
        .unwrap();
        let origins = rule_origins(&config, Family::V4);
        let key = (
            "INPUT".to_string(),
            "-p tcp -m tcp --dport 23 -j DROP".to_string(),
        );
        assert_eq!(origins[&key], "[[rule]] 1 (deny)");
    }

    #[test]
    fn a_template_that_never_renders_the_rules_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.j2");
        std::fs::write(
            &path,
            "*filter\n:INPUT DROP [0:0]\n{% for r in allow %}{% endfor %}\nCOMMIT\n",
        )
        .unwrap();
        let mut config = Config::parse(
            "[[rule]]\naction = \"deny\"\nport = 23\n",
            std::path::Path::new("/etc/x.toml"),
        )
        .unwrap();
        config.template = Some(path.clone());
        let err = render_error(&config);
        assert!(
            err.starts_with(&format!(
                "{}: the configuration has [[rule]] tables (direction \"in\"), but the template \
                 never uses `rules`",
                path.display()
            )),
            "{err}"
        );
        config.template = None;
        let text = rendered(&config, Family::V6);
        assert!(
            text.contains("-A INPUT -p tcp -m tcp --dport 23 -j DROP\n"),
            "{text}"
        );
    }

    #[test]
    fn published_port_lists_and_both_protocols_are_one_docker_user_rule_each() {
        let config = Config::parse(
            "[containers]\n[[containers.allow]]\ndescription = \"app\"\nproto = \"any\"\n\
             port = [8080, \"9000-9001\"]\nfrom = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n",
            std::path::Path::new("/etc/x.toml"),
        )
        .unwrap();
        let text = rendered(&config, Family::V4);
        let returns: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("--ctorigdstport"))
            .collect();
        let line = |proto: &str, port: &str| {
            format!(
                "-A DOCKER-USER -s 192.0.2.0/24 -p {proto} -m conntrack --ctorigdstport {port} \
                 -m comment --comment \"iptables-docker: app\" -j RETURN"
            )
        };
        assert_eq!(
            returns,
            [
                line("tcp", "8080"),
                line("tcp", "9000:9001"),
                line("udp", "8080"),
                line("udp", "9000:9001")
            ]
        );
        let v6 = rendered(&config, Family::V6);
        assert_eq!(v6.matches("-s 2001:db8::/32 -p ").count(), 4, "{v6}");
        let err = Config::parse(
            "[containers]\n[[containers.allow]]\nproto = \"sctp\"\nport = []\nfrom = [\"192.0.2.0/24\"]\n",
            std::path::Path::new("/etc/x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "/etc/x.toml:3:9: unknown protocol 'sctp' (expected \"tcp\", \"udp\" or \"any\")"
            ),
            "{err}"
        );
        assert!(
            err.contains("/etc/x.toml:4:8: an empty port list matches no port"),
            "{err}"
        );
    }
}
