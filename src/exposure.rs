//! Who can reach what: the exposure of one address family, read from the ruleset the kernel
//! holds (not from the configuration), so that rules an admin added by hand and Docker's
//! own state count. Pure: `status` feeds it `iptables-save` text.
//!
//! A new connection from outside is followed through the chains it would traverse: INPUT
//! for a host service, and for a published container port (DNATed in nat PREROUTING by
//! Docker's `DOCKER` chain) FORWARD with DOCKER-USER, up to Docker's own chains, which
//! accept what Docker publishes. "Outside" means arriving on an interface that is neither
//! `lo` nor a Docker bridge. Rules are evaluated first match wins, with the source address
//! as the one unknown: the answer is everyone, listed sources (less exceptions), nobody, or
//! for ports published on a loopback address, this host only. A match this module does not
//! model (ipset, recent, owner, …) is assumed not to match, and the entry says so in its
//! `notes`.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::config::Ports;
use crate::family::Family;
use crate::ownership::{is_docker_chain, DockerFacts};
use crate::rule::{Opt, RuleArgs};
use crate::ruleset::{ChainPolicy, Rule, Ruleset, Table, TableName};

/// Who may open a new connection from outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reach {
    /// Any source address, but those in `except`.
    Everyone { except: Vec<String> },
    /// Only the listed sources (CIDRs), but those in `except`.
    Sources {
        sources: Vec<String>,
        except: Vec<String>,
    },
    /// No source from outside.
    Nobody,
    /// Published on a loopback address: only from this host.
    HostOnly,
}

impl Reach {
    /// Whether some source from outside may connect.
    pub fn is_open(&self) -> bool {
        matches!(self, Reach::Everyone { .. } | Reach::Sources { .. })
    }
}

impl std::fmt::Display for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let except = |e: &[String]| {
            if e.is_empty() {
                String::new()
            } else {
                format!(" except {}", e.join(", "))
            }
        };
        match self {
            Reach::Everyone { except: e } => write!(f, "everyone{}", except(e)),
            Reach::Sources { sources, except: e } => {
                write!(f, "only {}{}", sources.join(", "), except(e))
            }
            Reach::Nobody => f.write_str("nobody from outside"),
            Reach::HostOnly => f.write_str("this host only (published on a loopback address)"),
        }
    }
}

/// A host service: a port (or range) of a protocol that INPUT accepts from someone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// `tcp`, `udp`, or another protocol name (`esp`).
    pub proto: String,
    /// `22`, `8000:8100`; `None` for a protocol without ports, or every port.
    pub port: Option<String>,
    /// What the port is: the rule's comment, or `ssh`, `swarm`, … for well-known ports.
    pub description: String,
    pub reach: Reach,
    pub notes: Vec<String>,
}

/// A port Docker publishes, and who may reach it from outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    pub proto: String,
    /// The host address it is published on; `None` for every address.
    pub host_address: Option<String>,
    pub host_port: u16,
    pub container_address: String,
    pub container_port: u16,
    /// The Docker bridge the container is on (`docker0` is Docker's default network).
    pub bridge: Option<String>,
    pub reach: Reach,
    pub notes: Vec<String>,
}

/// Everything one family exposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exposure {
    /// INPUT's chain policy (`ACCEPT`, `DROP`).
    pub input_policy: ChainPolicy,
    /// Ports no rule names, tcp: who may reach them (nobody when the firewall is on).
    pub other_ports: Reach,
    /// Interfaces INPUT accepts everything from (Docker bridges, trusted interfaces).
    pub trusted_interfaces: Vec<String>,
    /// ICMP echo (ping).
    pub ping: Reach,
    pub services: Vec<Service>,
    pub published: Vec<Published>,
}

/// The verdict a rule gives a packet it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allow,
    Deny,
}

/// A new connection from outside, all but its source address known.
#[derive(Debug, Clone)]
struct Packet<'a> {
    proto: &'a str,
    /// The destination port as the chain sees it (the container's, after DNAT).
    port: Option<Ports>,
    /// Published ports: the host port, before DNAT (`--ctorigdstport`).
    orig_port: Option<u16>,
    /// Published ports: the container's address, and its bridge (`-o`).
    dst: Option<IpAddr>,
    out_bridge: Option<&'a str>,
    icmp_type: Option<&'a str>,
    facts: &'a DockerFacts,
}

/// First-match evaluation with the source address unknown.
#[derive(Debug, Default)]
struct Walk {
    /// Sources accepted so far, each with the sources denied before it that it covers.
    allowed: Vec<(IpNet, Vec<IpNet>)>,
    denied: Vec<IpNet>,
    notes: Vec<String>,
}

impl Walk {
    fn decided(net: &IpNet, by: &[IpNet]) -> bool {
        by.iter().any(|d| d.contains(net))
    }

    /// Applies a matching rule's verdict for `source` (`None`: any source). Returns the
    /// answer once every source is decided.
    fn step(&mut self, source: Option<IpNet>, verdict: Verdict) -> Option<Reach> {
        let Some(net) = source.filter(|n| n.prefix_len() > 0) else {
            return Some(self.finish(verdict));
        };
        let earlier: Vec<IpNet> = self.allowed.iter().map(|(a, _)| *a).collect();
        if Self::decided(&net, &self.denied) || Self::decided(&net, &earlier) {
            return None;
        }
        match verdict {
            Verdict::Allow => {
                let except = self
                    .denied
                    .iter()
                    .filter(|d| net.contains(*d))
                    .copied()
                    .collect();
                self.allowed.push((net, except));
            }
            Verdict::Deny => self.denied.push(net),
        }
        None
    }

    /// The answer when every remaining source gets `verdict`.
    fn finish(&mut self, verdict: Verdict) -> Reach {
        let show = |nets: &[IpNet]| nets.iter().map(ToString::to_string).collect::<Vec<_>>();
        match verdict {
            Verdict::Allow => {
                let earlier: Vec<IpNet> = self.allowed.iter().map(|(a, _)| *a).collect();
                let except: Vec<IpNet> = self
                    .denied
                    .iter()
                    .filter(|d| !Self::decided(d, &earlier))
                    .copied()
                    .collect();
                Reach::Everyone {
                    except: show(&except),
                }
            }
            Verdict::Deny if self.allowed.is_empty() => Reach::Nobody,
            Verdict::Deny => {
                let sources: Vec<IpNet> = self.allowed.iter().map(|(a, _)| *a).collect();
                let mut except: Vec<IpNet> = self
                    .allowed
                    .iter()
                    .flat_map(|(_, e)| e.iter().copied())
                    .collect();
                except.sort();
                except.dedup();
                Reach::Sources {
                    sources: show(&sources),
                    except: show(&except),
                }
            }
        }
    }
}

/// Parses `a.b.c.d[/n]` (iptables-save always prints the prefix).
fn net_of(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// `80`, `8000:8100` (either end may be missing in iptables' spelling).
fn ports_of(text: &str) -> Option<Ports> {
    match text.split_once(':') {
        Some((a, b)) => Some(Ports {
            first: if a.is_empty() { 0 } else { a.parse().ok()? },
            last: if b.is_empty() { 65535 } else { b.parse().ok()? },
        }),
        None => {
            let p = text.parse().ok()?;
            Some(Ports { first: p, last: p })
        }
    }
}

fn covers(outer: Ports, inner: Ports) -> bool {
    outer.first <= inner.first && inner.last <= outer.last
}

/// Whether interface `name` (iptables' `+` wildcard allowed) can be where a new
/// connection from outside comes in: not `lo`, not a Docker bridge.
fn outside_can_match(name: &str, facts: &DockerFacts) -> bool {
    let bridge = facts.is_bridge(name)
        || name.strip_suffix('+').is_some_and(|p| {
            p.starts_with("br-") || p.starts_with("docker") || p.starts_with("veth")
        });
    name != "lo" && !bridge
}

fn iface_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Whether one option of a rule matches the packet: `Some(bool)`, or `None` for an option
/// this module does not model.
fn option_matches(opt: &Opt, p: &Packet) -> Option<bool> {
    let v = opt.first().unwrap_or("");
    let hit = match opt.name {
        "-p" | "--protocol" => {
            let proto = match v {
                "6" => "tcp",
                "17" => "udp",
                "1" => "icmp",
                "58" | "icmpv6" => "ipv6-icmp",
                other => other,
            };
            proto == "all" || proto == p.proto
        }
        // Outside traffic comes in on a non-bridge interface, the one a rule names if it
        // names one.
        "-i" | "--in-interface" => outside_can_match(v, p.facts),
        "-o" | "--out-interface" => p.out_bridge.is_some_and(|b| iface_matches(v, b)),
        "-s" | "--source" => return Some(true),
        "-d" | "--destination" => match (p.dst, net_of(v)) {
            (Some(dst), Some(net)) => net.contains(&dst),
            // INPUT: a host address; assumed to be the one the client uses.
            (None, _) => true,
            _ => false,
        },
        "--dport" | "--destination-port" => p
            .port
            .zip(ports_of(v))
            .is_some_and(|(have, rule)| covers(rule, have)),
        "--dports" | "--destination-ports" => p.port.is_some_and(|have| {
            v.split(',')
                .filter_map(ports_of)
                .any(|rule| covers(rule, have))
        }),
        "--ctorigdstport" => p.orig_port.zip(ports_of(v)).is_some_and(|(have, rule)| {
            covers(
                rule,
                Ports {
                    first: have,
                    last: have,
                },
            )
        }),
        // The address the client used: assumed to be the published one.
        "--ctorigdst" => true,
        "--ctstate" | "--state" => v
            .split(',')
            .any(|s| s == "NEW" || (s == "DNAT" && p.orig_port.is_some())),
        "--icmp-type" | "--icmpv6-type" => p.icmp_type == Some(v),
        // `-m recent` as a limit rule writes it: `--set` records the source and matches;
        // `--update` and `--rcheck` match only a source over the rate, so for who may
        // connect at all they do not.
        "--update" | "--rcheck" => false,
        "--set" | "--name" | "--mask" | "--rsource" | "--rdest" | "--seconds" | "--hitcount"
        | "--reap" | "--rttl" => return Some(true),
        "-m" | "--match" => return Some(true),
        "--comment" | "--limit" | "--limit-burst" | "-j" | "--jump" | "-g" | "--goto"
        | "--reject-with" | "--log-prefix" | "--log-level" => return Some(true),
        _ => return None,
    };
    Some(hit != opt.negated)
}

/// `Some(source)` when `rule` matches the packet for some sources (`source` `None`: all),
/// `None` when it matches none; notes an unmodelled match.
fn rule_matches(args: &RuleArgs, p: &Packet, notes: &mut Vec<String>) -> Option<Option<IpNet>> {
    let mut source = None;
    for opt in args.opts() {
        if matches!(opt.name, "-s" | "--source") {
            if opt.negated {
                notes.push(format!(
                    "a rule matches `! -s {}`: not modelled, assumed not to match",
                    opt.first().unwrap_or("")
                ));
                return None;
            }
            source = opt.first().and_then(net_of);
            continue;
        }
        match option_matches(&opt, p) {
            Some(true) => {}
            Some(false) => return None,
            None => {
                notes.push(format!(
                    "a rule matching `{}` is not modelled; assumed not to match",
                    opt.name
                ));
                return None;
            }
        }
    }
    Some(source)
}

/// Follows `chain` of `table` for the packet. `Docker's` chains reached from FORWARD end
/// the walk with an accept (Docker accepts what it publishes); so does RETURN from
/// DOCKER-USER. Returns the verdict for every source still undecided when the chain ends
/// by itself (`None`: the chain returned).
fn walk_chain(
    table: &Table,
    chain: &str,
    p: &Packet,
    walk: &mut Walk,
    depth: usize,
) -> Option<Reach> {
    for rule in table.rules_of(chain) {
        let args = RuleArgs::parse(&rule.spec);
        let Some(source) = rule_matches(&args, p, &mut walk.notes) else {
            continue;
        };
        let target = args.target().unwrap_or("");
        let verdict = match target {
            "ACCEPT" => Verdict::Allow,
            "DROP" | "REJECT" => Verdict::Deny,
            "RETURN" if chain == "DOCKER-USER" => Verdict::Allow,
            "RETURN" if source.is_none() => return None,
            "RETURN" => {
                walk.notes.push(format!(
                    "a RETURN for some sources in {chain} is not modelled"
                ));
                continue;
            }
            t if is_docker_chain(t) && t != "DOCKER-USER" && chain == "FORWARD" => Verdict::Allow,
            t if table.chain(t).is_some() && source.is_none() && depth < 8 => {
                match walk_chain(table, t, p, walk, depth + 1) {
                    Some(done) => return Some(done),
                    None => continue,
                }
            }
            t if table.chain(t).is_some() => {
                walk.notes
                    .push(format!("a jump to {t} for some sources is not modelled"));
                continue;
            }
            // LOG, NFLOG, MARK, …: not terminating.
            _ => continue,
        };
        if let Some(done) = walk.step(source, verdict) {
            return Some(done);
        }
    }
    None
}

/// Who may reach the packet through a builtin chain: its rules, then its policy.
fn reach_through(table: &Table, chain: &str, p: &Packet) -> (Reach, Vec<String>) {
    let mut walk = Walk::default();
    let reach = walk_chain(table, chain, p, &mut walk, 0).unwrap_or_else(|| {
        let policy = table.chain(chain).and_then(|c| c.policy);
        walk.finish(if policy == Some(ChainPolicy::Accept) {
            Verdict::Allow
        } else {
            Verdict::Deny
        })
    });
    let mut notes = walk.notes;
    notes.sort();
    notes.dedup();
    (reach, notes)
}

/// The well-known name of a host port, for rules without a comment.
fn well_known(proto: &str, port: Option<Ports>, ssh_port: u16) -> &'static str {
    let single = port.filter(|p| p.first == p.last).map(|p| p.first);
    match (proto, single) {
        ("tcp", Some(p)) if p == ssh_port => "ssh",
        ("tcp", Some(2377)) => "swarm (cluster management)",
        (_, Some(7946)) => "swarm (node communication)",
        ("udp", Some(4789)) => "swarm (overlay network, VXLAN)",
        ("esp", None) => "swarm (encrypted overlay, ESP)",
        _ => "",
    }
}

/// The (proto, port) pairs INPUT names in accepting rules a connection from outside can
/// reach (not those for `lo` or a Docker bridge only), in order, without duplicates.
/// Each comes with the rule's comment and the interface it names, if any.
fn candidate_services(table: &Table, facts: &DockerFacts) -> Vec<Candidate> {
    let mut found: Vec<Candidate> = Vec::new();
    for rule in table.rules_of("INPUT") {
        let args = RuleArgs::parse(&rule.spec);
        let inside_only = args
            .in_iface()
            .is_some_and(|i| !i.negated && !outside_can_match(i.first().unwrap_or(""), facts));
        if args.target() != Some("ACCEPT") || inside_only {
            continue;
        }
        let Some(proto) = args.protocol().filter(|p| !p.contains("icmp")) else {
            continue;
        };
        let comment = args.value(&["--comment"]).unwrap_or("").to_string();
        let iface = args
            .in_iface()
            .filter(|i| !i.negated)
            .and_then(|i| i.first())
            .map(ToString::to_string);
        let limited = args.opts().any(|o| o.name == "--set");
        let ports: Vec<Option<Ports>> = match (
            args.value(&["--dport", "--destination-port"]),
            args.value(&["--dports", "--destination-ports"]),
        ) {
            (Some(p), _) => vec![ports_of(p)],
            (None, Some(list)) => list.split(',').map(ports_of).collect(),
            (None, None) => vec![None],
        };
        for port in ports {
            let key = (proto.to_string(), port);
            if !found
                .iter()
                .any(|c| (&c.proto, &c.port) == (&key.0, &key.1))
            {
                found.push(Candidate {
                    proto: key.0,
                    port: key.1,
                    comment: comment.clone(),
                    iface: iface.clone(),
                    limited,
                });
            }
        }
    }
    found
}

/// A service INPUT may accept: protocol, port, the rule's comment and interface, and
/// whether the rule is a limit (`-m recent --set`).
struct Candidate {
    proto: String,
    port: Option<Ports>,
    comment: String,
    iface: Option<String>,
    limited: bool,
}

/// A tcp port no INPUT rule names: stands for "every other port".
fn unnamed_port(table: &Table) -> u16 {
    let named: Vec<Ports> = table
        .rules_of("INPUT")
        .flat_map(|r| {
            let args = RuleArgs::parse(&r.spec);
            let mut v: Vec<Ports> = args
                .value(&["--dport", "--destination-port"])
                .and_then(ports_of)
                .into_iter()
                .collect();
            if let Some(list) = args.value(&["--dports", "--destination-ports"]) {
                v.extend(list.split(',').filter_map(ports_of));
            }
            v
        })
        .collect();
    (1024..=65535)
        .rev()
        .find(|port| !named.iter().any(|p| p.contains(*port)))
        .unwrap_or(65535)
}

fn input_packet<'a>(proto: &'a str, port: Option<Ports>, facts: &'a DockerFacts) -> Packet<'a> {
    Packet {
        proto,
        port,
        orig_port: None,
        dst: None,
        out_bridge: None,
        icmp_type: None,
        facts,
    }
}

fn services(filter: &Table, facts: &DockerFacts, ssh_port: u16) -> Vec<Service> {
    candidate_services(filter, facts)
        .into_iter()
        .filter_map(
            |Candidate {
                 proto,
                 port,
                 comment,
                 iface,
                 limited,
             }| {
                let (reach, mut notes) =
                    reach_through(filter, "INPUT", &input_packet(&proto, port, facts));
                if let Some(iface) = iface {
                    notes.push(format!("accepted on interface {iface} only"));
                }
                if limited {
                    notes.push(
                        "rate-limited (limit): a source opening new connections too fast \
                         is dropped for a while"
                            .to_string(),
                    );
                }
                if reach == Reach::Nobody {
                    return None;
                }
                let description = comment
                    .strip_prefix(crate::ownership::OWN_MARK)
                    .map(|c| c.trim_start_matches(':').trim().to_string())
                    .unwrap_or(comment);
                let description = if description.is_empty() {
                    well_known(&proto, port, ssh_port).to_string()
                } else {
                    description
                };
                Some(Service {
                    port: port.map(|p| p.to_string()),
                    proto,
                    description,
                    reach,
                    notes,
                })
            },
        )
        .collect()
}

/// Interfaces INPUT accepts everything from.
fn trusted_interfaces(filter: &Table) -> Vec<String> {
    filter
        .rules_of("INPUT")
        .filter_map(|r| {
            let args = RuleArgs::parse(&r.spec);
            let iface = args.in_iface().filter(|i| !i.negated)?.first()?;
            let only_iface = args
                .opts()
                .all(|o| matches!(o.name, "-i" | "-j" | "-m" | "--comment"));
            (only_iface && args.target() == Some("ACCEPT") && iface != "lo")
                .then(|| iface.to_string())
        })
        .collect()
}

/// `a.b.c.d:port` or `[v6]:port` of a DNAT `--to-destination`.
fn dnat_target(value: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let (a, p) = rest.split_once("]:")?;
            (a, p)
        }
        None => value.split_once(':')?,
    };
    Some((addr.parse().ok()?, port.split('-').next()?.parse().ok()?))
}

/// The bridge of each container address the filter table names: the `-o` of a rule
/// whose destination is that single address (read once: a host may publish thousands).
fn container_bridges(filter: Option<&Table>) -> HashMap<IpAddr, String> {
    let mut found = HashMap::new();
    for r in filter.iter().flat_map(|f| &f.rules) {
        let args = RuleArgs::parse(&r.spec);
        let Some(d) = args.destination().and_then(net_of) else {
            continue;
        };
        let out = args
            .out_iface()
            .filter(|o| !o.negated)
            .and_then(|o| o.first());
        if let Some(out) = out.filter(|_| d.prefix_len() == d.max_prefix_len()) {
            found.entry(d.addr()).or_insert_with(|| out.to_string());
        }
    }
    found
}

/// One published port from a Docker DNAT rule.
fn published_port(
    rule: &Rule,
    filter: Option<&Table>,
    bridges: &HashMap<IpAddr, String>,
    facts: &DockerFacts,
) -> Option<Published> {
    let args = RuleArgs::parse(&rule.spec);
    if args.target() != Some("DNAT") {
        return None;
    }
    let proto = args.protocol()?.to_string();
    let host_port: u16 = args
        .value(&["--dport", "--destination-port"])?
        .parse()
        .ok()?;
    let (container, container_port) = dnat_target(args.value(&["--to-destination"])?)?;
    let host = args
        .get(&["-d", "--destination"])
        .filter(|d| !d.negated)
        .and_then(|d| d.first())
        .and_then(net_of);
    let bridge = args
        .in_iface()
        .filter(|i| i.negated)
        .and_then(|i| i.first())
        .map(ToString::to_string)
        .or_else(|| bridges.get(&container).cloned());
    let host_only = host.is_some_and(|h| h.addr().is_loopback());
    let (reach, notes) = match filter {
        _ if host_only => (Reach::HostOnly, Vec::new()),
        None => (
            Reach::Everyone { except: Vec::new() },
            vec!["no filter table".to_string()],
        ),
        Some(filter) => {
            let packet = Packet {
                proto: &proto,
                port: Some(Ports {
                    first: container_port,
                    last: container_port,
                }),
                orig_port: Some(host_port),
                dst: Some(container),
                out_bridge: bridge.as_deref(),
                icmp_type: None,
                facts,
            };
            reach_through(filter, "FORWARD", &packet)
        }
    };
    Some(Published {
        proto,
        host_address: host.map(|h| h.addr().to_string()),
        host_port,
        container_address: container.to_string(),
        container_port,
        bridge,
        reach,
        notes,
    })
}

/// What `ruleset` (one family, as the kernel holds it) exposes. `ssh_port` names the ssh
/// rule when it has no comment.
pub fn analyse(family: Family, ruleset: &Ruleset, facts: &DockerFacts, ssh_port: u16) -> Exposure {
    let bridges = container_bridges(ruleset.table(TableName::Filter));
    let published = ruleset
        .table(TableName::Nat)
        .into_iter()
        .flat_map(|nat| nat.rules.iter().filter(|r| is_docker_chain(&r.chain)))
        .filter_map(|r| published_port(r, ruleset.table(TableName::Filter), &bridges, facts))
        .collect();
    let Some(filter) = ruleset.table(TableName::Filter) else {
        let everyone = Reach::Everyone { except: Vec::new() };
        return Exposure {
            input_policy: ChainPolicy::Accept,
            other_ports: everyone.clone(),
            trusted_interfaces: Vec::new(),
            ping: everyone,
            services: Vec::new(),
            published,
        };
    };
    let unnamed = unnamed_port(filter);
    let other = Ports {
        first: unnamed,
        last: unnamed,
    };
    let (icmp, echo) = match family {
        Family::V4 => ("icmp", "8"),
        Family::V6 => ("ipv6-icmp", "128"),
    };
    let ping_packet = Packet {
        icmp_type: Some(echo),
        ..input_packet(icmp, None, facts)
    };
    Exposure {
        input_policy: filter
            .chain("INPUT")
            .and_then(|c| c.policy)
            .unwrap_or(ChainPolicy::Accept),
        other_ports: reach_through(filter, "INPUT", &input_packet("tcp", Some(other), facts)).0,
        trusted_interfaces: trusted_interfaces(filter),
        ping: reach_through(filter, "INPUT", &ping_packet).0,
        services: services(filter, facts, ssh_port),
        published,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::parse;

    const FILTER: &str = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        :DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n\
        -A INPUT -i lo -j ACCEPT\n\
        -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
        -A INPUT -i docker0 -j ACCEPT\n\
        -A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j ACCEPT\n\
        -A INPUT -p tcp -m tcp --dport 443 -m comment --comment \"iptables-docker: web\" -j ACCEPT\n\
        -A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT\n\
        -A INPUT -i eth1 -p udp -m udp --dport 51820 -j ACCEPT\n\
        -A FORWARD -j DOCKER-USER\n-A FORWARD -o docker0 -j DOCKER\n\
        -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT\n\
        -A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment iptables-docker -j RETURN\n\
        -A DOCKER-USER -s 192.0.2.0/24 -p tcp -m conntrack --ctorigdstport 8080 -m comment --comment iptables-docker -j RETURN\n\
        -A DOCKER-USER -i docker0 -m comment --comment iptables-docker -j RETURN\n\
        -A DOCKER-USER -m conntrack --ctstate DNAT -m comment --comment iptables-docker -j DROP\n\
        -A DOCKER-USER -j RETURN\nCOMMIT\n";
    const NAT: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n\
        -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\n\
        -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.17.0.2:80\n\
        -A DOCKER -d 127.0.0.1/32 ! -i docker0 -p tcp -m tcp --dport 8082 -j DNAT --to-destination 172.17.0.2:80\nCOMMIT\n";

    fn exposure(text: &str) -> Exposure {
        let rs = parse(text).unwrap();
        let facts = DockerFacts::learn(&rs);
        analyse(Family::V4, &rs, &facts, 22)
    }

    fn sources(list: &[&str]) -> Reach {
        Reach::Sources {
            sources: list.iter().map(ToString::to_string).collect(),
            except: Vec::new(),
        }
    }

    #[test]
    fn host_services_ping_and_other_ports() {
        let e = exposure(&format!("{FILTER}{NAT}"));
        assert_eq!(e.other_ports, Reach::Nobody);
        assert_eq!(e.trusted_interfaces, ["docker0"]);
        assert_eq!(e.ping, Reach::Everyone { except: vec![] });
        assert_eq!(e.services.len(), 3, "{:?}", e.services);
        assert_eq!(e.services[2].port.as_deref(), Some("51820"));
        assert_eq!(e.services[2].reach, Reach::Everyone { except: vec![] });
        assert_eq!(e.services[2].notes, ["accepted on interface eth1 only"]);
        assert_eq!(e.services[0].description, "ssh");
        assert_eq!(e.services[0].reach, sources(&["10.0.0.0/8"]));
        assert_eq!(e.services[1].description, "web");
        assert_eq!(e.services[1].port.as_deref(), Some("443"));
    }

    #[test]
    fn published_ports_listed_sources_nobody_and_loopback() {
        let e = exposure(&format!("{FILTER}{NAT}"));
        let by_port = |p: u16| e.published.iter().find(|x| x.host_port == p).unwrap();
        assert_eq!(by_port(8080).reach, sources(&["192.0.2.0/24"]));
        assert_eq!(by_port(8080).container_address, "172.17.0.2");
        assert_eq!(by_port(8080).container_port, 80);
        assert_eq!(by_port(8080).bridge.as_deref(), Some("docker0"));
        assert_eq!(by_port(8081).reach, Reach::Nobody);
        assert_eq!(by_port(8082).reach, Reach::HostOnly);
        assert_eq!(by_port(8082).host_address.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn an_admin_drop_in_docker_user_is_an_exception() {
        let text = FILTER.replace(
            "-A DOCKER-USER -m conntrack --ctstate RELATED",
            "-A DOCKER-USER -s 192.0.2.7/32 -j DROP\n-A DOCKER-USER -m conntrack --ctstate RELATED",
        );
        let e = exposure(&format!("{text}{NAT}"));
        let p = e.published.iter().find(|x| x.host_port == 8080).unwrap();
        assert_eq!(
            p.reach,
            Reach::Sources {
                sources: vec!["192.0.2.0/24".into()],
                except: vec!["192.0.2.7/32".into()]
            }
        );
    }

    #[test]
    fn an_open_host_and_docker_defaults() {
        let open = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
            :DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\n\
            -A FORWARD -o docker0 -j DOCKER\n-A DOCKER-USER -j RETURN\nCOMMIT\n";
        let e = exposure(&format!("{open}{NAT}"));
        assert_eq!(e.other_ports, Reach::Everyone { except: vec![] });
        let p = e.published.iter().find(|x| x.host_port == 8081).unwrap();
        assert_eq!(p.reach, Reach::Everyone { except: vec![] });
    }

    #[test]
    fn an_unmodelled_match_is_noted() {
        let text = FILTER.replace(
            "-A DOCKER-USER -m conntrack --ctstate RELATED",
            "-A DOCKER-USER -m set --match-set blocked src -j DROP\n-A DOCKER-USER -m conntrack --ctstate RELATED",
        );
        let e = exposure(&format!("{text}{NAT}"));
        let p = e.published.iter().find(|x| x.host_port == 8080).unwrap();
        assert!(
            p.notes.iter().any(|n| n.contains("--match-set")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn rules_open_the_services_they_allow_or_limit_only() {
        let config = crate::config::Config::parse(
            "[[rule]]\naction = \"deny\"\nfrom = [\"203.0.113.0/24\"]\n\
             [[rule]]\naction = \"limit\"\nport = 22\n\
             [[rule]]\ndescription = \"web\"\naction = \"allow\"\nproto = \"any\"\n\
             port = [80, \"8000-8100\"]\n\
             [[rule]]\naction = \"reject\"\nport = 25\n\
             [[rule]]\naction = \"allow\"\nport = 9100\ninterface = \"eth1\"\n",
            std::path::Path::new("/etc/x.toml"),
        )
        .unwrap();
        let facts = DockerFacts::default();
        let policy = crate::policy::render(
            &config,
            &crate::policy::Template::builtin(),
            Family::V4,
            &facts,
        )
        .unwrap();
        let e = analyse(Family::V4, &policy.fragment, &facts, 22);
        let found: Vec<(String, String, String)> = e
            .services
            .iter()
            .map(|s| {
                let port = s.port.clone().unwrap_or_default();
                (
                    format!("{}/{port}", s.proto),
                    s.description.clone(),
                    s.reach.to_string(),
                )
            })
            .collect();
        let but = "everyone except 203.0.113.0/24";
        let want = [
            ("tcp/22", "ssh", but),
            ("tcp/80", "web", but),
            ("tcp/8000:8100", "web", but),
            ("udp/80", "web", but),
            ("udp/8000:8100", "web", but),
            ("tcp/9100", "", but),
        ];
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(found, want);
        assert!(
            e.services[0].notes[0].starts_with("rate-limited (limit)"),
            "{:?}",
            e.services[0]
        );
        assert_eq!(e.services[5].notes, ["accepted on interface eth1 only"]);
        assert_eq!(e.other_ports, Reach::Nobody);
        assert_eq!(
            e.ping,
            Reach::Everyone {
                except: vec!["203.0.113.0/24".into()]
            }
        );
    }
}
