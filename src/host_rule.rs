//! Host filter rules: the `[[rule]]` tables (allow, deny, reject or limit new connections
//! to or from the host, in file order) and the `[outbound]` policy. Read from the TOML by
//! [`crate::config`] (the shape is fixed in README.md "Rules"), rendered for one family
//! into INPUT and OUTPUT lines by [`view`] for the policy template. `[[allow]]` is the
//! older spelling of an `allow` rule judged after `[ssh]`: it becomes a [`Rule`] too.

use std::fmt;

use ipnet::IpNet;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::{parse_cidr, Allow, Diagnostics, Ports, Proto, RawPort, Ssh};
use crate::family::Family;
use crate::forwarding::{basic, in_family, port_match, same_family, RuleView};

/// What a rule does with a new connection it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// ACCEPT.
    Allow,
    /// DROP: the peer hears nothing and times out.
    Deny,
    /// REJECT: a TCP reset for tcp, ICMP (v4) / ICMPv6 (v6) port unreachable otherwise.
    Reject,
    /// As ufw's `limit`: a source opening [`LIMIT_HITS`] or more new connections within
    /// [`LIMIT_SECONDS`] seconds is dropped, the others accepted.
    Limit,
}

/// ufw's limit: the 6th new connection of a source within 30 s is dropped (ufw(8),
/// "limit"); the source is let in again once it stays under that rate.
pub const LIMIT_HITS: u32 = 6;
/// See [`LIMIT_HITS`].
pub const LIMIT_SECONDS: u32 = 30;

impl Action {
    /// The word of the configuration and of a SPEC (`allow`, `deny`, `reject`, `limit`).
    pub fn as_str(self) -> &'static str {
        word_of(&ACTIONS, self)
    }

    /// The action `word` names (`allow`, `deny`, `reject`, `limit`), if any.
    pub fn named(word: &str) -> Option<Action> {
        named(&ACTIONS, word)
    }

    /// Whether a matching new connection can get in (allow, and limit under its rate).
    pub fn admits(self) -> bool {
        matches!(self, Action::Allow | Action::Limit)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way the connections a rule judges go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// To the host (INPUT); `interface` is the in-interface.
    #[default]
    In,
    /// From the host (OUTPUT); `interface` is the out-interface.
    Out,
}

/// `[outbound] policy`: what OUTPUT does with a new connection no rule allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutboundPolicy {
    /// Everything leaves (as before `[outbound]` existed); `direction = "out"` deny and
    /// reject rules still apply.
    #[default]
    Accept,
    /// Dropped: the local program times out.
    Deny,
    /// Rejected: the local program gets "connection refused" at once.
    Reject,
}

impl OutboundPolicy {
    /// The word of `[outbound] policy` (`accept`, `deny`, `reject`).
    pub fn as_str(self) -> &'static str {
        word_of(&POLICIES, self)
    }
}

/// The word of `proto` (`tcp`, `udp`; `any` for `None`).
pub fn proto_word(proto: Option<Proto>) -> &'static str {
    word_of(&PROTOS, proto)
}

/// The protocol `word` names: `tcp`, `udp`, or `any` (`Some(None)`); `None` for another
/// word.
pub fn proto_named(word: &str) -> Option<Option<Proto>> {
    named(&PROTOS, word)
}

/// One `[[rule]]` (or an `[[allow]]`, see [`Rule::from_allow`]), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `description`: the rule comment (`iptables-docker: TEXT`); empty: none.
    pub description: String,
    /// What a matching new connection gets.
    pub action: Action,
    /// INPUT (in, the default) or OUTPUT (out).
    pub direction: Direction,
    /// `None` (`proto = "any"`): tcp and udp when there are ports, every protocol when
    /// there are none.
    pub proto: Option<Proto>,
    /// Destination ports and ranges; empty: every port (and, without `proto`, every
    /// protocol).
    pub ports: Vec<Ports>,
    /// Sources; empty: anywhere, both families.
    pub from: Vec<IpNet>,
    /// Destinations; empty: anywhere, both families.
    pub to: Vec<IpNet>,
    /// In-interface (direction in) or out-interface (out), `+` wildcard allowed.
    pub interface: Option<String>,
    /// Log matches (rate-limited, prefix `iptables-docker ACTION: `) before acting.
    pub log: bool,
}

impl Rule {
    /// An `[[allow]]`: allow, in, one protocol, one port or range, its sources. The
    /// default sources `["0.0.0.0/0", "::/0"]` become no `from` (anywhere, both
    /// families), as a `[[rule]]` writes it, so the two forms of one rule compare equal.
    pub fn from_allow(a: &Allow) -> Self {
        let anywhere = matches!(a.from.as_slice(), [x, y]
            if x.prefix_len() == 0 && y.prefix_len() == 0 && x.addr().is_ipv4() != y.addr().is_ipv4());
        Rule {
            description: a.description.clone(),
            action: Action::Allow,
            direction: Direction::In,
            proto: Some(a.proto),
            ports: vec![a.ports],
            from: if anywhere { Vec::new() } else { a.from.clone() },
            to: Vec::new(),
            interface: None,
            log: false,
        }
    }

    /// `[ssh]` as the rule it is: allow tcp to its port from its `allow_from`.
    pub fn from_ssh(ssh: &Ssh) -> Self {
        Rule::from_allow(&Allow {
            description: String::new(),
            proto: Proto::Tcp,
            ports: Ports {
                first: ssh.port,
                last: ssh.port,
            },
            from: ssh.allow_from.clone(),
        })
    }

    /// The protocols of its lines ([`protocols`]).
    pub fn protocols(&self) -> Vec<Option<Proto>> {
        protocols(self.proto, !self.ports.is_empty())
    }
}

/// The protocols the lines of a rule with `proto` match: `proto = "any"` (`None`) is tcp
/// and udp when the rule names ports, every protocol (`[None]`) when it does not.
pub fn protocols(proto: Option<Proto>, with_ports: bool) -> Vec<Option<Proto>> {
    match (proto, with_ports) {
        (Some(p), _) => vec![Some(p)],
        (None, true) => vec![Some(Proto::Tcp), Some(Proto::Udp)],
        (None, false) => vec![None],
    }
}

// ---- what the file may contain -------------------------------------------------------

/// `port`: one port (`443`), one range (`"8000-8100"`), or a list of them.
pub(crate) enum RawPorts {
    One(RawPort),
    Many(Vec<Spanned<RawPort>>),
}

impl<'de> Deserialize<'de> for RawPorts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ports;
        impl<'de> Visitor<'de> for Ports {
            type Value = RawPorts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port (443), a range (\"8000-8100\") or a list of them")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawPorts, E> {
                Ok(RawPorts::One(RawPort::Number(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPorts, E> {
                Ok(RawPorts::One(RawPort::Text(v.to_string())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawPorts, A::Error> {
                let mut all = Vec::new();
                while let Some(port) = seq.next_element()? {
                    all.push(port);
                }
                Ok(RawPorts::Many(all))
            }
        }
        deserializer.deserialize_any(Ports)
    }
}

type RawList = Spanned<Vec<Spanned<String>>>;

/// A `[[rule]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    description: Option<Spanned<String>>,
    action: Spanned<String>,
    direction: Option<Spanned<String>>,
    proto: Option<Spanned<String>>,
    port: Option<Spanned<RawPorts>>,
    from: Option<RawList>,
    to: Option<RawList>,
    interface: Option<Spanned<String>>,
    #[serde(default)]
    log: bool,
}

/// The `[outbound]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutbound {
    policy: Option<Spanned<String>>,
}

// ---- the words of the configuration ---------------------------------------------------

/// The word of `value` in `table`, whose entries name every value of `T` once.
fn word_of<T: PartialEq>(table: &[(&'static str, T)], value: T) -> &'static str {
    table
        .iter()
        .find(|(_, v)| *v == value)
        .map_or("", |(word, _)| word)
}

/// The value `word` names in `table`, if any.
fn named<T: Copy>(table: &[(&str, T)], word: &str) -> Option<T> {
    table.iter().find(|(w, _)| *w == word).map(|(_, v)| *v)
}

// ---- validation ------------------------------------------------------------------------

const ACTIONS: [(&str, Action); 4] = [
    ("allow", Action::Allow),
    ("deny", Action::Deny),
    ("reject", Action::Reject),
    ("limit", Action::Limit),
];
const DIRECTIONS: [(&str, Direction); 2] = [("in", Direction::In), ("out", Direction::Out)];
const PROTOS: [(&str, Option<Proto>); 3] = [
    ("tcp", Some(Proto::Tcp)),
    ("udp", Some(Proto::Udp)),
    ("any", None),
];
const POLICIES: [(&str, OutboundPolicy); 3] = [
    ("accept", OutboundPolicy::Accept),
    ("deny", OutboundPolicy::Deny),
    ("reject", OutboundPolicy::Reject),
];

impl Diagnostics<'_> {
    /// The `[[rule]]` tables, in file order.
    pub(crate) fn rules(&mut self, raw: &[RawRule]) -> Vec<Rule> {
        raw.iter().map(|r| self.rule(r)).collect()
    }

    fn rule(&mut self, r: &RawRule) -> Rule {
        let action = self.choice(&r.action, "action", &ACTIONS);
        let direction = r.direction.as_ref().map_or(Some(Direction::In), |d| {
            self.choice(d, "direction", &DIRECTIONS)
        });
        if let (Some(Action::Limit), Some(Direction::Out), Some(d)) =
            (action, direction, &r.direction)
        {
            self.push(
                d.span(),
                "`limit` rate-limits new connections per source, so it applies to \
                 direction \"in\" only; use allow, deny or reject for \"out\"",
            );
        }
        let ports = r.port.as_ref().map_or_else(Vec::new, |p| self.port_list(p));
        let proto = match &r.proto {
            Some(p) => self.rule_proto(p),
            None if r.port.is_some() => Some(Proto::Tcp),
            None => None,
        };
        let from = r.from.as_ref().map_or_else(Vec::new, |l| self.sources(l));
        let to = r.to.as_ref().map_or_else(Vec::new, |l| self.sources(l));
        self.same_families(r, &from, &to);
        let interface = r
            .interface
            .as_ref()
            .and_then(|i| self.located_interface(i, ""));
        Rule {
            description: self.description(&r.description),
            action: action.unwrap_or(Action::Allow),
            direction: direction.unwrap_or_default(),
            proto,
            ports,
            from,
            to,
            interface,
            log: r.log,
        }
    }

    /// `proto`: `tcp`, `udp` or `any` (`None`).
    pub(crate) fn rule_proto(&mut self, proto: &Spanned<String>) -> Option<Proto> {
        self.choice(proto, "protocol", &PROTOS).flatten()
    }

    /// `port`: one or a list, never an empty list (a rule for no port would vanish).
    pub(crate) fn port_list(&mut self, port: &Spanned<RawPorts>) -> Vec<Ports> {
        match port.get_ref() {
            RawPorts::One(one) => {
                vec![self.ports(&Spanned::new(port.span(), one.clone()))]
            }
            RawPorts::Many(list) if list.is_empty() => {
                self.push(
                    port.span(),
                    "an empty port list matches no port, so the rule would never apply; list \
                     the ports, or remove `port` for every port",
                );
                Vec::new()
            }
            RawPorts::Many(list) => list.iter().map(|p| self.ports(p)).collect(),
        }
    }

    /// A rule is for the families of its addresses: each address of `from` needs one of
    /// its family in `to` (when `to` lists any), and the other way round.
    fn same_families(&mut self, r: &RawRule, from: &[IpNet], to: &[IpNet]) {
        let (Some(raw_from), Some(raw_to)) = (&r.from, &r.to) else {
            return;
        };
        for (raw, others, other_key) in [(raw_from, to, "to"), (raw_to, from, "from")] {
            for entry in raw.get_ref() {
                let Ok(net) = parse_cidr(entry.get_ref()) else {
                    continue; // already reported
                };
                if !others.iter().any(|o| same_family(o, &net)) {
                    let family = if net.addr().is_ipv4() { "IPv4" } else { "IPv6" };
                    self.push(
                        entry.span(),
                        format!(
                            "'{net}' is {family} but `{other_key}` lists no {family} address: \
                             a rule's sources and destinations must share a family"
                        ),
                    );
                }
            }
        }
    }

    /// `[outbound]`: its policy (accept when absent).
    pub(crate) fn outbound(&mut self, raw: Option<&RawOutbound>) -> OutboundPolicy {
        raw.and_then(|o| o.policy.as_ref())
            .and_then(|p| self.choice(p, "outbound policy", &POLICIES))
            .unwrap_or_default()
    }
}

// ---- what the policy template sees ---------------------------------------------------

/// iptables' multiport match takes at most 15 ports, a range counting 2
/// (iptables-extensions(8), "multiport").
const MULTIPORT_SLOTS: usize = 15;

/// Log lines are rate-limited as ufw's are (3 a minute, the default burst of 5).
const LOG_LIMIT: &str = "-m limit --limit 3/min ";

/// `ports` cut, in order, into the groups one multiport match takes.
fn port_groups(ports: &[Ports]) -> Vec<Vec<Ports>> {
    let mut groups: Vec<Vec<Ports>> = Vec::new();
    let mut used = 0;
    for p in ports {
        let slots = if p.first == p.last { 1 } else { 2 };
        if groups.is_empty() || used + slots > MULTIPORT_SLOTS {
            groups.push(Vec::new());
            used = 0;
        }
        used += slots;
        if let Some(group) = groups.last_mut() {
            group.push(*p);
        }
    }
    groups
}

/// `-p tcp -m tcp --dport 22 `, `-p udp -m multiport --dports 53,8000:8100 `, `-p tcp `
/// (no ports), or nothing (every protocol), as iptables-save prints them.
fn proto_ports(proto: Option<Proto>, group: &[Ports]) -> String {
    match (proto, group) {
        (None, _) => String::new(),
        (Some(p), []) => port_match(Some(p), None),
        (Some(p), [one]) => port_match(Some(p), Some(*one)),
        (Some(p), many) => {
            let list: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!(
                "-p {} -m multiport --dports {} ",
                p.as_str(),
                list.join(",")
            )
        }
    }
}

/// The `recent` list of limit rule `number`: `--name iptables-docker-v4-N --mask … --rsource `
/// (the mask as iptables-save prints it). One list per family: the kernel keeps one table
/// per name and masks with the mask of the rule that created it, so a v6 rule sharing a v4
/// rule's name would count every address of a /32 as one source (seen on Linux 6.18).
fn recent_list(number: usize, family: Family) -> String {
    let mask = match family {
        Family::V4 => "255.255.255.255",
        Family::V6 => "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    };
    let tag = family.tag();
    format!("--name iptables-docker-{tag}-{number} --mask {mask} --rsource ")
}

/// The targets of a matching line: REJECT answers tcp with a reset and the rest with
/// ICMP port unreachable (ICMPv6 for v6), so without a protocol it takes two lines.
fn targets(action: Action, proto: Option<Proto>, family: Family) -> Vec<(&'static str, String)> {
    let unreachable = match family {
        Family::V4 => "REJECT --reject-with icmp-port-unreachable",
        Family::V6 => "REJECT --reject-with icmp6-port-unreachable",
    };
    let reset = "REJECT --reject-with tcp-reset";
    match (action, proto) {
        (Action::Deny, _) => vec![("", "DROP".into())],
        (Action::Reject, Some(Proto::Tcp)) => vec![("", reset.into())],
        (Action::Reject, Some(Proto::Udp)) => vec![("", unreachable.into())],
        (Action::Reject, None) => vec![("-p tcp ", reset.into()), ("", unreachable.into())],
        (Action::Allow | Action::Limit, _) => vec![("", "ACCEPT".into())],
    }
}

/// The lines one match of `rule` becomes: an optional LOG line, then the action. A limit
/// drops a source whose list holds [`LIMIT_HITS`]` - 1` new connections of the last
/// [`LIMIT_SECONDS`] (a dropped attempt counts too, so a source that keeps trying stays
/// out), else records it and accepts.
fn acting(
    rule: &Rule,
    number: usize,
    family: Family,
    proto: Option<Proto>,
    matches: &str,
) -> Vec<RuleView> {
    let line = |extra: &str, target: String| RuleView {
        matches: format!("{matches}{extra}"),
        tag: rule.description.clone(),
        target,
    };
    let log = |extra: &str| {
        let prefix = format!("LOG --log-prefix \"iptables-docker {}: \"", rule.action);
        line(&format!("{extra}{LOG_LIMIT}"), prefix)
    };
    let mut out = Vec::new();
    if rule.action == Action::Limit {
        let list = recent_list(number, family);
        let seen = format!(
            "--seconds {LIMIT_SECONDS} --hitcount {} {list}",
            LIMIT_HITS - 1
        );
        if rule.log {
            out.push(log(&format!("-m recent --rcheck {seen}")));
        }
        out.push(line(&format!("-m recent --update {seen}"), "DROP".into()));
        out.push(line(&format!("-m recent --set {list}"), "ACCEPT".into()));
        return out;
    }
    if rule.log {
        out.push(log(""));
    }
    for (extra, target) in targets(rule.action, proto, family) {
        out.push(line(extra, target));
    }
    out
}

/// The INPUT (direction in) or OUTPUT (out) lines of `rule` for `family`, none when its
/// addresses are all of the other family. `number`: its place among the `[[rule]]`
/// tables (1, 2, …), which names a limit rule's `recent` list.
pub fn lines(rule: &Rule, number: usize, family: Family) -> Vec<RuleView> {
    let iface = rule.interface.as_deref();
    let (iface_in, iface_out) = match rule.direction {
        Direction::In => (iface, None),
        Direction::Out => (None, iface),
    };
    let groups = match rule.ports.as_slice() {
        [] => vec![Vec::new()],
        ports => port_groups(ports),
    };
    // `0.0.0.0/0` (an `[[allow]]`'s default) is "anywhere" in its family: no `-s`.
    let specific = |net: Option<IpNet>| net.filter(|n| n.prefix_len() > 0);
    let mut out = Vec::new();
    for src in in_family(family, &rule.from) {
        for dst in in_family(family, &rule.to) {
            let addresses = basic(specific(src), specific(dst), iface_in, iface_out);
            for proto in rule.protocols() {
                for group in &groups {
                    let matches = format!("{addresses}{}", proto_ports(proto, group));
                    out.extend(acting(rule, number, family, proto, &matches));
                }
            }
        }
    }
    out
}

/// The template's view of the rules for one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RulesView {
    /// INPUT lines of the `[[rule]]` tables with direction in, in file order.
    pub input: Vec<RuleView>,
    /// INPUT lines of the `[[allow]]` tables (judged after `[ssh]`).
    pub allow: Vec<RuleView>,
    /// OUTPUT lines of the `[[rule]]` tables with direction out, in file order.
    pub output: Vec<RuleView>,
    /// `"accept"`, `"deny"` or `"reject"`.
    pub outbound_policy: &'static str,
}

/// Renders `rules` (the `[[rule]]` tables), `allow` and `outbound` for `family`.
pub fn view(
    family: Family,
    rules: &[Rule],
    allow: &[Allow],
    outbound: OutboundPolicy,
) -> RulesView {
    let numbered = rules.iter().enumerate().map(|(i, r)| (i + 1, r));
    let (inbound, outbound_rules): (Vec<_>, Vec<_>) =
        numbered.partition(|(_, r)| r.direction == Direction::In);
    let render = |list: Vec<(usize, &Rule)>| -> Vec<RuleView> {
        list.into_iter()
            .flat_map(|(n, r)| lines(r, n, family))
            .collect()
    };
    RulesView {
        input: render(inbound),
        allow: allow
            .iter()
            .flat_map(|a| lines(&Rule::from_allow(a), 0, family))
            .collect(),
        output: render(outbound_rules),
        outbound_policy: outbound.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> crate::error::Result<Config> {
        Config::parse(text, Path::new("/etc/x.toml"))
    }

    #[test]
    fn reads_every_form_of_the_schema() {
        let c = parse(
            "[outbound]\npolicy = \"deny\"\n\
             [[rule]]\ndescription = \"web\"\naction = \"allow\"\nport = [80, 443, \"8000-8100\"]\n\
             [[rule]]\naction = \"limit\"\nport = 22\nfrom = [\"203.0.113.0/24\"]\ninterface = \"eth*\"\nlog = true\n\
             [[rule]]\naction = \"deny\"\nfrom = [\"198.51.100.7\", \"2001:db8::/32\"]\n\
             [[rule]]\naction = \"reject\"\ndirection = \"out\"\nproto = \"any\"\nport = \"53\"\n\
             to = [\"192.0.2.53\"]\n",
        )
        .unwrap();
        assert_eq!(c.outbound, OutboundPolicy::Deny);
        let [web, ssh, deny, dns] = &c.rules[..] else {
            panic!("{:?}", c.rules)
        };
        assert_eq!(
            (web.action, web.proto, web.ports.len()),
            (Action::Allow, Some(Proto::Tcp), 3)
        );
        assert_eq!(web.ports[2].to_string(), "8000:8100");
        assert!(web.from.is_empty() && web.to.is_empty() && !web.log);
        assert_eq!(ssh.action, Action::Limit);
        assert_eq!((ssh.interface.as_deref(), ssh.log), (Some("eth+"), true));
        assert_eq!(
            (deny.proto, deny.ports.len(), deny.from.len()),
            (None, 0, 2)
        );
        assert_eq!((dns.direction, dns.proto), (Direction::Out, None));
        assert_eq!(dns.protocols(), [Some(Proto::Tcp), Some(Proto::Udp)]);
        assert_eq!(deny.protocols(), [None]);
        assert_eq!(c.interface_sites[0].1, "/etc/x.toml:11:13");
    }

    #[test]
    fn rule_errors_are_located_and_say_what_is_allowed() {
        let err = parse(
            "[outbound]\npolicy = \"drop\"\n\
             [[rule]]\naction = \"permit\"\nproto = \"icmp\"\ndirection = \"up\"\n\
             [[rule]]\naction = \"limit\"\ndirection = \"out\"\nport = [22, \"x\", 70000]\n\
             [[rule]]\naction = \"deny\"\nfrom = [\"10.0.0.300\", \"10.0.0.0/8\"]\nto = [\"2001:db8::1\"]\n\
             [[rule]]\naction = \"allow\"\nport = []\nfrom = []\ninterface = \"a/b\"\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "/etc/x.toml:2:10: unknown outbound policy 'drop' (expected \"accept\", \"deny\" or \"reject\")",
            "/etc/x.toml:4:10: unknown action 'permit' (expected \"allow\", \"deny\", \"reject\" or \"limit\")",
            "/etc/x.toml:5:9: unknown protocol 'icmp' (expected \"tcp\", \"udp\" or \"any\")",
            "/etc/x.toml:6:13: unknown direction 'up' (expected \"in\" or \"out\")",
            "/etc/x.toml:9:13: `limit` rate-limits new connections per source",
            "/etc/x.toml:10:13: bad port 'x' (expected 80, \"80\" or \"8000-8100\")",
            "/etc/x.toml:10:18: port 70000 is out of range (1-65535)",
            "/etc/x.toml:13:9: '10.0.0.300' is not an IP address or CIDR",
            "/etc/x.toml:13:23: '10.0.0.0/8' is IPv4 but `to` lists no IPv4 address",
            "/etc/x.toml:14:7: '2001:db8::1/128' is IPv6 but `from` lists no IPv6 address",
            "/etc/x.toml:17:8: an empty port list matches no port",
            "/etc/x.toml:18:8: an empty source list matches no one",
            "/etc/x.toml:19:13: 'a/b' is not an interface name",
        ] {
            assert!(err.contains(want), "{want}\n{err}");
        }
        let err = parse("[[rule]]\naction = \"allow\"\nport = 1.5\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/x.toml:3:8: invalid type: floating point `1.5`, expected a port (443), a range (\"8000-8100\") or a list of them"),
            "{err}"
        );
        let err = parse("[[rule]]\nport = 22\n").unwrap_err().to_string();
        assert!(
            err.starts_with("/etc/x.toml:1:1: missing field `action`"),
            "{err}"
        );
    }

    #[test]
    fn an_allow_table_is_an_allow_rule() {
        let c = parse(
            "[[allow]]\nport = \"8000-8100\"\nproto = \"udp\"\nfrom = [\"192.0.2.0/24\"]\n\
             [[allow]]\nport = 80\n",
        )
        .unwrap();
        let rule = Rule::from_allow(&c.allow[0]);
        assert_eq!((rule.action, rule.proto), (Action::Allow, Some(Proto::Udp)));
        assert_eq!(rule.ports, [c.allow[0].ports]);
        assert_eq!(rule.from, c.allow[0].from);
        // The default sources (0.0.0.0/0 and ::/0) are anywhere, as a [[rule]] has it.
        assert!(Rule::from_allow(&c.allow[1]).from.is_empty());
    }

    #[test]
    fn port_lists_are_cut_at_fifteen_slots_a_range_counting_two() {
        let ports = |list: &[(u16, u16)]| -> Vec<Ports> {
            list.iter()
                .map(|&(first, last)| Ports { first, last })
                .collect()
        };
        let fourteen_and_a_range: Vec<(u16, u16)> =
            (1..=14).map(|p| (p, p)).chain([(100, 200)]).collect();
        let groups = port_groups(&ports(&fourteen_and_a_range));
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [14, 1]);
        let fifteen: Vec<(u16, u16)> = (1..=15).map(|p| (p, p)).collect();
        assert_eq!(port_groups(&ports(&fifteen)).len(), 1);
        let ranges: Vec<(u16, u16)> = (0..8).map(|i| (i * 10 + 1, i * 10 + 2)).collect();
        let groups = port_groups(&ports(&ranges));
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [7, 1]);
    }

    #[test]
    fn each_action_renders_as_iptables_save_prints_it() {
        let c = parse(
            "[[rule]]\naction = \"reject\"\nfrom = [\"192.0.2.0/24\"]\n\
             [[rule]]\naction = \"limit\"\nport = 22\ninterface = \"eth0\"\n\
             [[rule]]\naction = \"deny\"\nproto = \"udp\"\nport = [53, \"60-61\"]\nlog = true\n\
             [[rule]]\naction = \"allow\"\ndirection = \"out\"\nto = [\"2001:db8::1\"]\ninterface = \"wg0\"\n",
        )
        .unwrap();
        let text = |v: &[RuleView]| -> Vec<String> {
            v.iter()
                .map(|r| format!("{}-j {}", r.matches, r.target))
                .collect()
        };
        let v4 = view(Family::V4, &c.rules, &c.allow, c.outbound);
        assert_eq!(
            text(&v4.input),
            [
                "-s 192.0.2.0/24 -p tcp -j REJECT --reject-with tcp-reset",
                "-s 192.0.2.0/24 -j REJECT --reject-with icmp-port-unreachable",
                "-i eth0 -p tcp -m tcp --dport 22 -m recent --update --seconds 30 --hitcount 5 \
                 --name iptables-docker-v4-2 --mask 255.255.255.255 --rsource -j DROP",
                "-i eth0 -p tcp -m tcp --dport 22 -m recent --set --name iptables-docker-v4-2 \
                 --mask 255.255.255.255 --rsource -j ACCEPT",
                "-p udp -m multiport --dports 53,60:61 -m limit --limit 3/min -j LOG \
                 --log-prefix \"iptables-docker deny: \"",
                "-p udp -m multiport --dports 53,60:61 -j DROP",
            ]
        );
        assert!(v4.output.is_empty() && v4.allow.is_empty());
        let v6 = view(Family::V6, &c.rules, &c.allow, c.outbound);
        assert_eq!(
            text(&v6.input)[0],
            "-i eth0 -p tcp -m tcp --dport 22 -m recent --update \
            --seconds 30 --hitcount 5 --name iptables-docker-v6-2 \
            --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -j DROP"
        );
        assert_eq!(text(&v6.output), ["-d 2001:db8::1/128 -o wg0 -j ACCEPT"]);
        assert_eq!(v6.outbound_policy, "accept");
    }
}
