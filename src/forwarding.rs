//! The configuration of the host's other networks, beside Docker's: interfaces trusted like
//! Docker's bridges (a VPN's `wg0`, libvirt's `virbr0`, LXD's `lxdbr0`), forwarding and NAT
//! that are not Docker's (what a VPN server needs), and how far Docker's bridges may reach
//! the host's own services. Read from the TOML by [`crate::config`], rendered by the
//! policy template.
//!
//! Every section is a table (or array of tables) with named keys, so that keys can be
//! added later (an `action = "drop"` for a forward rule, say) without changing what an
//! existing file means.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::{parse_cidr, Allow, Diagnostics, Ports, Proto, RawAllow, RawPort};
use crate::family::Family;

/// How Docker's bridges may reach the host's own services (INPUT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BridgeAccess {
    /// Everything from a Docker bridge is accepted (`--internal` networks included): the
    /// default, as before.
    #[default]
    All,
    /// Only replies, DNS (53/udp and 53/tcp, for a resolver on the bridge address) and the
    /// ports of `[[bridges.allow]]`; the rest of INPUT applies as to any other source.
    Limited,
}

/// `[bridges]`: Docker bridges towards the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bridges {
    pub to_host: BridgeAccess,
    /// With [`BridgeAccess::Limited`]: the host ports containers may open.
    pub allow: Vec<Allow>,
}

/// `[[forward]]`: traffic routed through the host that the policy accepts (FORWARD). Empty
/// lists and absent keys mean "any".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub description: String,
    /// Incoming interface (`+` wildcard allowed: `wg+`).
    pub in_iface: Option<String>,
    pub out_iface: Option<String>,
    pub from: Vec<IpNet>,
    pub to: Vec<IpNet>,
    pub proto: Option<Proto>,
    /// Destination port(s); only with `proto`.
    pub ports: Option<Ports>,
}

/// `[[source_nat]]`: packets from `from` leaving through `out` get the host's address
/// (MASQUERADE) or `to_source` (SNAT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceNat {
    pub description: String,
    pub from: Vec<IpNet>,
    pub out_iface: String,
    pub to_source: Option<IpNet>,
}

/// `[[port_forward]]`: new connections to a host port are DNATed to an address that is not
/// a Docker container, and accepted in FORWARD (and in DOCKER-USER with `[containers]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    pub description: String,
    pub in_iface: Option<String>,
    pub proto: Proto,
    /// The host port(s) connections arrive on.
    pub ports: Ports,
    /// The address they are sent to (one address: `/32` or `/128`).
    pub to: IpNet,
    /// The port they are sent to; `None` keeps the port.
    pub to_port: Option<u16>,
    pub from: Vec<IpNet>,
}

impl PortForward {
    /// The family of the target address.
    pub fn family(&self) -> Family {
        match self.to {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
}

// ---- what the file may contain -------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBridges {
    to_host: Option<Spanned<String>>,
    #[serde(default)]
    allow: Vec<RawAllow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForward {
    description: Option<Spanned<String>>,
    #[serde(rename = "in")]
    in_iface: Option<Spanned<String>>,
    #[serde(rename = "out")]
    out_iface: Option<Spanned<String>>,
    #[serde(default)]
    from: Vec<Spanned<String>>,
    #[serde(default)]
    to: Vec<Spanned<String>>,
    proto: Option<Spanned<String>>,
    port: Option<Spanned<RawPort>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSourceNat {
    description: Option<Spanned<String>>,
    from: Vec<Spanned<String>>,
    out: Spanned<String>,
    to_source: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPortForward {
    description: Option<Spanned<String>>,
    #[serde(rename = "in")]
    in_iface: Option<Spanned<String>>,
    #[serde(default = "crate::config::default_proto")]
    proto: Spanned<String>,
    port: Spanned<RawPort>,
    to: Spanned<String>,
    to_port: Option<Spanned<i64>>,
    #[serde(default)]
    from: Vec<Spanned<String>>,
}

// ---- validation ------------------------------------------------------------------------

impl Diagnostics<'_> {
    /// An interface name as iptables takes it: 1 to 15 printable characters, no `/`; a
    /// trailing `*` is written as iptables' wildcard `+` (`wg*` → `wg+`).
    pub(crate) fn interface(&mut self, name: &Spanned<String>) -> Option<String> {
        let text = name.get_ref();
        let text = match text.strip_suffix('*') {
            Some(stem) => format!("{stem}+"),
            None => text.clone(),
        };
        let valid = !text.is_empty()
            && text.len() < 16
            && text
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'*')
            && !text[..text.len() - 1].contains('+');
        if !valid {
            self.push(
                name.span(),
                format!(
                    "'{}' is not an interface name (1-15 characters, no '/'; a trailing * or + \
                     is a wildcard)",
                    name.get_ref()
                ),
            );
        }
        valid.then_some(text)
    }

    fn interfaces(&mut self, list: &[Spanned<String>]) -> Vec<String> {
        list.iter().filter_map(|i| self.interface(i)).collect()
    }

    fn address(&mut self, text: &Spanned<String>) -> Option<IpNet> {
        let net = parse_cidr(text.get_ref())
            .map_err(|e| self.push(text.span(), e))
            .ok()?;
        if net.prefix_len() != net.max_prefix_len() {
            self.push(
                text.span(),
                format!("'{}' must be one address, not a network", text.get_ref()),
            );
            return None;
        }
        Some(net)
    }

    pub(crate) fn trusted_interfaces(&mut self, list: &[Spanned<String>]) -> Vec<String> {
        self.interfaces(list)
    }

    pub(crate) fn bridges(&mut self, raw: Option<RawBridges>) -> Bridges {
        let Some(raw) = raw else {
            return Bridges::default();
        };
        let choices = [
            ("all", BridgeAccess::All),
            ("limited", BridgeAccess::Limited),
        ];
        let to_host = raw
            .to_host
            .as_ref()
            .and_then(|t| self.choice(t, "bridges.to_host", &choices))
            .unwrap_or_default();
        let allow = raw.allow.iter().map(|a| self.allow(a)).collect();
        Bridges { to_host, allow }
    }

    pub(crate) fn forwards(&mut self, raw: &[RawForward]) -> Vec<Forward> {
        raw.iter()
            .map(|f| {
                let proto = f.proto.as_ref().map(|p| self.proto(p));
                let ports = f.port.as_ref().map(|p| self.ports(p));
                if let (Some(port), None) = (&f.port, proto) {
                    self.push(port.span(), "a port needs `proto` (\"tcp\" or \"udp\")");
                }
                Forward {
                    description: self.description(&f.description),
                    in_iface: f.in_iface.as_ref().and_then(|i| self.interface(i)),
                    out_iface: f.out_iface.as_ref().and_then(|i| self.interface(i)),
                    from: self.cidrs(&f.from),
                    to: self.cidrs(&f.to),
                    proto,
                    ports,
                }
            })
            .collect()
    }

    pub(crate) fn source_nats(&mut self, raw: &[RawSourceNat]) -> Vec<SourceNat> {
        raw.iter()
            .map(|s| {
                let from = self.cidrs(&s.from);
                let to_source = s.to_source.as_ref().and_then(|t| self.address(t));
                if let (Some(to), Some(span)) = (to_source, s.to_source.as_ref()) {
                    if !from.iter().any(|f| same_family(f, &to)) {
                        self.push(
                            span.span(),
                            "to_source must be of the same family as one of `from`",
                        );
                    }
                }
                if s.from.is_empty() {
                    self.push(
                        s.out.span(),
                        "source_nat needs `from` (the networks to NAT)",
                    );
                }
                SourceNat {
                    description: self.description(&s.description),
                    from,
                    out_iface: self.interface(&s.out).unwrap_or_default(),
                    to_source,
                }
            })
            .collect()
    }

    pub(crate) fn port_forwards(&mut self, raw: &[RawPortForward]) -> Vec<PortForward> {
        raw.iter()
            .filter_map(|p| {
                let to = self.address(&p.to);
                let from = self.cidrs(&p.from);
                let to_port = p
                    .to_port
                    .as_ref()
                    .map(|t| self.port_number(t.span(), *t.get_ref()));
                let ports = self.ports(&p.port);
                if to_port.is_some() && ports.first != ports.last {
                    self.push(
                        p.port.span(),
                        "a port range cannot be forwarded to one to_port",
                    );
                }
                let to = to?;
                if from.iter().any(|f| !same_family(f, &to)) {
                    self.push(p.to.span(), "`from` must be of the same family as `to`");
                }
                Some(PortForward {
                    description: self.description(&p.description),
                    in_iface: p.in_iface.as_ref().and_then(|i| self.interface(i)),
                    proto: self.proto(&p.proto),
                    ports,
                    to,
                    to_port,
                    from,
                })
            })
            .collect()
    }
}

pub(crate) fn same_family(a: &IpNet, b: &IpNet) -> bool {
    matches!(
        (a, b),
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
    )
}

// ---- what the policy template sees ---------------------------------------------------

/// One rule's matches, rendered for one family the way iptables-save prints them
/// (`-s … -d … -i … -o … -p tcp -m tcp --dport 443 `), and the comment that marks it ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleView {
    /// The matches, each followed by a space; empty for "everything".
    pub matches: String,
    /// The comment: `iptables-docker` or `iptables-docker: DESCRIPTION`; in INPUT and
    /// OUTPUT (chains wholly the policy's) the description alone, or nothing.
    pub tag: String,
    /// The target with its options: `ACCEPT`, `DROP`, `REJECT --reject-with …`, `LOG …`,
    /// and for NAT rules `MASQUERADE`, `SNAT --to-source …`, `DNAT --to-destination …`.
    pub target: String,
}

/// The template's view of this module's sections for one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ForwardingView {
    /// FORWARD: accepts of trusted interfaces, `[[forward]]` and port forwards.
    pub forward: Vec<RuleView>,
    /// nat POSTROUTING.
    pub source_nat: Vec<RuleView>,
    /// nat PREROUTING.
    pub port_forward: Vec<RuleView>,
    /// DOCKER-USER RETURNs letting port-forwarded connections past `[containers]`.
    pub docker_user: Vec<RuleView>,
}

/// The members of `nets` in `family`, as `Some`; `[None]` ("any") for an empty list; and
/// nothing when the list names only the other family (the rule is not for this family).
pub(crate) fn in_family(family: Family, nets: &[IpNet]) -> Vec<Option<IpNet>> {
    if nets.is_empty() {
        return vec![None];
    }
    nets.iter()
        .filter(|n| family.contains(n))
        .map(|n| Some(*n))
        .collect()
}

/// `-s CIDR -d CIDR -i IN -o OUT `: iptables' order of the basic matches.
pub(crate) fn basic(
    src: Option<IpNet>,
    dst: Option<IpNet>,
    iface_in: Option<&str>,
    out: Option<&str>,
) -> String {
    let mut text = String::new();
    for (flag, value) in [
        ("-s", src.map(|n| n.to_string())),
        ("-d", dst.map(|n| n.to_string())),
        ("-i", iface_in.map(str::to_string)),
        ("-o", out.map(str::to_string)),
    ] {
        if let Some(value) = value {
            text.push_str(&format!("{flag} {value} "));
        }
    }
    text
}

pub(crate) fn port_match(proto: Option<Proto>, ports: Option<Ports>) -> String {
    match (proto, ports) {
        (Some(p), Some(ports)) => format!("-p {0} -m {0} --dport {ports} ", p.as_str()),
        (Some(p), None) => format!("-p {} ", p.as_str()),
        _ => String::new(),
    }
}

fn tag(description: &str) -> String {
    if description.is_empty() {
        crate::ownership::OWN_MARK.to_string()
    } else {
        format!("{}: {description}", crate::ownership::OWN_MARK)
    }
}

fn rule(matches: String, description: &str, target: impl Into<String>) -> RuleView {
    RuleView {
        matches,
        tag: tag(description),
        target: target.into(),
    }
}

/// `address[:port]` as `--to-destination` takes it (`[v6]:port`).
fn destination(to: &IpNet, port: Option<u16>) -> String {
    match (to, port) {
        (IpNet::V4(_), Some(p)) => format!("{}:{p}", to.addr()),
        (IpNet::V6(_), Some(p)) => format!("[{}]:{p}", to.addr()),
        (_, None) => to.addr().to_string(),
    }
}

/// Renders the sections for `family`; `containers`: whether DOCKER-USER is the policy's.
pub fn view(
    family: Family,
    trusted: &[String],
    forward: &[Forward],
    source_nat: &[SourceNat],
    port_forward: &[PortForward],
    containers: bool,
) -> ForwardingView {
    let mut v = ForwardingView::default();
    for iface in trusted {
        v.forward
            .push(rule(basic(None, None, Some(iface), None), "", "ACCEPT"));
        v.forward
            .push(rule(basic(None, None, None, Some(iface)), "", "ACCEPT"));
    }
    for f in forward {
        for src in in_family(family, &f.from) {
            for dst in in_family(family, &f.to) {
                let matches = basic(src, dst, f.in_iface.as_deref(), f.out_iface.as_deref())
                    + &port_match(f.proto, f.ports);
                v.forward.push(rule(matches, &f.description, "ACCEPT"));
            }
        }
    }
    for s in source_nat {
        for src in s.from.iter().filter(|n| family.contains(n)) {
            let target = match s.to_source {
                Some(to) => format!("SNAT --to-source {}", to.addr()),
                None => "MASQUERADE".to_string(),
            };
            let matches = basic(Some(*src), None, None, Some(&s.out_iface));
            v.source_nat.push(rule(matches, &s.description, target));
        }
    }
    for p in port_forward.iter().filter(|p| p.family() == family) {
        let to_port = p.to_port.unwrap_or(p.ports.first);
        let to_ports = Ports {
            first: to_port,
            last: to_port + (p.ports.last - p.ports.first),
        };
        let target = format!("DNAT --to-destination {}", destination(&p.to, p.to_port));
        for src in in_family(family, &p.from) {
            let dnat = basic(src, None, p.in_iface.as_deref(), None)
                + &port_match(Some(p.proto), Some(p.ports));
            v.port_forward
                .push(rule(dnat, &p.description, target.clone()));
            let accept = basic(src, Some(p.to), None, None)
                + &port_match(Some(p.proto), Some(to_ports))
                + "-m conntrack --ctstate DNAT ";
            v.forward.push(rule(accept, &p.description, "ACCEPT"));
            if containers {
                let pass = basic(src, Some(p.to), None, None)
                    + &format!(
                        "-p {} -m conntrack --ctstate DNAT --ctorigdstport {} ",
                        p.proto.as_str(),
                        p.ports
                    );
                v.docker_user.push(rule(pass, &p.description, "RETURN"));
            }
        }
    }
    if !v.forward.is_empty() {
        let replies = "-m conntrack --ctstate RELATED,ESTABLISHED ".to_string();
        v.forward.insert(0, rule(replies, "", "ACCEPT"));
    }
    v
}
