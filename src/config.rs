//! The TOML configuration: what the host policy allows. Loading reports every problem it
//! finds, each with `file:line:col`, and nothing is applied while any remains.

#![forbid(unsafe_code)]

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::backend::Choice;
use crate::diagnostic;
use crate::error::{Error, Result};
use crate::forwarding::{
    Bridges, Forward, PortForward, RawBridges, RawForward, RawPortForward, RawSourceNat, SourceNat,
};
use crate::fragments::{self, Fragment};
use crate::host_rule::{OutboundPolicy, RawOutbound, RawPorts, RawRule, Rule};
use crate::presets::Preset;

/// The default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/iptables-docker/config.toml";

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from; `None` for the built-in default.
    pub path: Option<PathBuf>,
    /// `backend = "auto" | "legacy" | "nft"` (default auto).
    pub backend: Choice,
    pub ipv6: bool,
    /// A policy template replacing the built-in one.
    pub template: Option<PathBuf>,
    /// Known rule owners whose chains (and ipset-matching rules) are kept (`keep`).
    pub keep: Vec<Preset>,
    /// Glob patterns of non-Docker chains to keep untouched (e.g. `f2b-*`).
    pub keep_chains: Vec<String>,
    /// Interfaces trusted like Docker's bridges (`+` wildcards): INPUT from them, FORWARD
    /// between them and everything else, both ways.
    pub trusted_interfaces: Vec<String>,
    pub ssh: Ssh,
    pub icmp: bool,
    pub log_dropped: bool,
    /// `[[rule]]`: host filter rules in file order, judged before `[ssh]`
    /// ([`crate::host_rule`]).
    pub rules: Vec<Rule>,
    /// `[outbound] policy`: accept (default), deny or reject.
    pub outbound: OutboundPolicy,
    /// `[[allow]]`: the older form of an allow rule, judged after `[ssh]`.
    pub allow: Vec<Allow>,
    pub swarm: Swarm,
    pub containers: Option<Containers>,
    pub bridges: Bridges,
    pub forward: Vec<Forward>,
    pub source_nat: Vec<SourceNat>,
    pub port_forward: Vec<PortForward>,
    /// The drop-in fragments of `rules.d` beside the file ([`crate::fragments`]).
    pub fragments: Vec<Fragment>,
    /// Each interface the file names, with where (`file:line:col`) and what follows
    /// while it is missing: checked against the host's interfaces by [`Config::warnings`].
    pub interface_sites: Vec<(String, String, &'static str)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssh {
    pub port: u16,
    pub allow_from: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A port or an inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub first: u16,
    pub last: u16,
}

impl Ports {
    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl fmt::Display for Ports {
    /// iptables' own spelling: `80` or `8000:8100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}:{}", self.first, self.last)
        }
    }
}

/// One host service the policy opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub description: String,
    pub proto: Proto,
    pub ports: Ports,
    pub from: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swarm {
    pub enabled: bool,
    pub from: Vec<IpNet>,
    pub encrypted: bool,
}

/// Filtering of published container ports (rendered into DOCKER-USER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containers {
    /// Drop new connections from external interfaces to every published port not allowed.
    pub restrict: bool,
    /// Interfaces the internet comes in on; empty means every interface that is not a
    /// Docker bridge (never the routing table of the moment: see [`crate::policy::render`]).
    pub external_interfaces: Vec<String>,
    pub allow: Vec<ContainerAllow>,
}

/// Published host ports (as written in `docker run -p`) and who may reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerAllow {
    pub description: String,
    /// `None` (`proto = "any"`): tcp and udp.
    pub proto: Option<Proto>,
    /// The ports and ranges, never empty (one DOCKER-USER rule each: conntrack's
    /// `--ctorigdstport` takes one port or range).
    pub ports: Vec<Ports>,
    pub host: Option<IpNet>,
    pub from: Vec<IpNet>,
}

// ---- what the file may contain -------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    backend: Option<Choice>,
    ipv6: Option<bool>,
    template: Option<String>,
    #[serde(default)]
    keep: Vec<Spanned<String>>,
    #[serde(default)]
    keep_chains: Vec<String>,
    #[serde(default)]
    trusted_interfaces: Vec<Spanned<String>>,
    ssh: Option<RawSsh>,
    icmp: Option<bool>,
    log_dropped: Option<bool>,
    #[serde(default)]
    rule: Vec<RawRule>,
    outbound: Option<RawOutbound>,
    #[serde(default)]
    allow: Vec<RawAllow>,
    swarm: Option<RawSwarm>,
    containers: Option<RawContainers>,
    bridges: Option<RawBridges>,
    #[serde(default)]
    forward: Vec<RawForward>,
    #[serde(default)]
    source_nat: Vec<RawSourceNat>,
    #[serde(default)]
    port_forward: Vec<RawPortForward>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    port: Option<Spanned<i64>>,
    allow_from: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(crate) enum RawPort {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAllow {
    description: Option<Spanned<String>>,
    #[serde(default = "default_proto")]
    proto: Spanned<String>,
    port: Spanned<RawPort>,
    from: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSwarm {
    #[serde(default)]
    enabled: bool,
    from: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    encrypted: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContainers {
    #[serde(default = "yes")]
    restrict: bool,
    #[serde(default)]
    external_interfaces: Vec<Spanned<String>>,
    #[serde(default)]
    allow: Vec<RawContainerAllow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContainerAllow {
    description: Option<Spanned<String>>,
    proto: Option<Spanned<String>>,
    port: Spanned<RawPorts>,
    host: Option<Spanned<String>>,
    from: Spanned<Vec<Spanned<String>>>,
}

pub(crate) fn default_proto() -> Spanned<String> {
    Spanned::new(0..0, "tcp".to_string())
}

fn yes() -> bool {
    true
}

fn anywhere() -> Vec<IpNet> {
    vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]
}

// ---- diagnostics ---------------------------------------------------------------------

/// Problems found in one file, each located by byte range.
pub(crate) struct Diagnostics<'a> {
    file: &'a str,
    text: &'a str,
    found: Vec<String>,
    /// `ipv6 = false`: an IPv6 source would be ignored, so it is refused.
    ipv6: bool,
    /// Each interface named, with where and what it means while the interface is
    /// missing: [`Config::interface_sites`].
    interface_sites: Vec<(String, String, &'static str)>,
}

impl Diagnostics<'_> {
    fn at(&self, span: Range<usize>) -> String {
        let (line, col) = crate::diagnostic::line_col(self.text, span.start);
        format!("{}:{line}:{col}", self.file)
    }

    pub(crate) fn push(&mut self, span: Range<usize>, message: impl fmt::Display) {
        let shown = diagnostic::at_offset(self.file, self.text, span.start, message);
        self.found.push(shown);
    }
}

impl Diagnostics<'_> {
    /// A source list: never empty (a rule that matches no one would vanish).
    pub(crate) fn sources(&mut self, list: &Spanned<Vec<Spanned<String>>>) -> Vec<IpNet> {
        if list.get_ref().is_empty() {
            self.push(
                list.span(),
                "an empty source list matches no one, so the rule would never apply; list \
                 the sources, write [\"0.0.0.0/0\", \"::/0\"] for anywhere, or remove the rule",
            );
        }
        self.cidrs(list.get_ref())
    }

    /// Addresses or networks without host bits ([`parse_cidr`]), of a family the
    /// configuration manages.
    pub(crate) fn cidrs(&mut self, list: &[Spanned<String>]) -> Vec<IpNet> {
        list.iter()
            .filter_map(|s| {
                let net = parse_cidr(s.get_ref())
                    .map_err(|e| self.push(s.span(), e))
                    .ok()?;
                if net.addr().is_ipv6() && !self.ipv6 {
                    self.push(
                        s.span(),
                        format!(
                            "'{net}' is an IPv6 source but `ipv6 = false`: it would be ignored; \
                             remove it or set ipv6 = true"
                        ),
                    );
                }
                Some(net)
            })
            .collect()
    }

    fn cidrs_or_anywhere(&mut self, list: &Option<Spanned<Vec<Spanned<String>>>>) -> Vec<IpNet> {
        list.as_ref().map_or_else(anywhere, |l| self.sources(l))
    }

    /// A description becomes a rule comment: a control character (a newline…) would
    /// break the rendered policy, so it is refused here, where it can be located.
    pub(crate) fn description(&mut self, text: &Option<Spanned<String>>) -> String {
        let Some(text) = text else {
            return String::new();
        };
        if text.get_ref().chars().any(char::is_control) {
            self.push(
                text.span(),
                "a description may not contain control characters (newline, tab, …)",
            );
        }
        text.get_ref().clone()
    }

    pub(crate) fn proto(&mut self, proto: &Spanned<String>) -> Proto {
        let protos = [("tcp", Proto::Tcp), ("udp", Proto::Udp)];
        self.choice(proto, "protocol", &protos)
            .unwrap_or(Proto::Tcp)
    }

    /// One of the words of `allowed`, or a located error naming `what` and every word
    /// allowed: `unknown protocol 'icmp' (expected "tcp" or "udp")`.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        value: &Spanned<String>,
        what: &str,
        allowed: &[(&str, T)],
    ) -> Option<T> {
        let found = allowed.iter().find(|(word, _)| word == value.get_ref());
        if found.is_none() {
            let words: Vec<String> = allowed.iter().map(|(w, _)| format!("\"{w}\"")).collect();
            let expected = match words.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            };
            self.push(
                value.span(),
                format!("unknown {what} '{}' (expected {expected})", value.get_ref()),
            );
        }
        found.map(|(_, t)| *t)
    }

    /// An interface name ([`Self::interface`]), remembered with where it was written and
    /// what follows while it is missing (`unmatched`, the end of a sentence: `, so …`, or
    /// empty) for
    /// [`Config::warnings`].
    pub(crate) fn located_interface(
        &mut self,
        name: &Spanned<String>,
        unmatched: &'static str,
    ) -> Option<String> {
        let valid = self.interface(name)?;
        let at = self.at(name.span());
        self.interface_sites.push((valid.clone(), at, unmatched));
        Some(valid)
    }

    pub(crate) fn port_number(&mut self, span: Range<usize>, value: i64) -> u16 {
        match u16::try_from(value) {
            Ok(p) if p > 0 => p,
            _ => {
                self.push(span, format!("port {value} is out of range (1-65535)"));
                1
            }
        }
    }

    /// One host service of an `[[allow]]`-shaped table.
    pub(crate) fn allow(&mut self, a: &RawAllow) -> Allow {
        Allow {
            description: self.description(&a.description),
            proto: self.proto(&a.proto),
            ports: self.ports(&a.port),
            from: self.cidrs_or_anywhere(&a.from),
        }
    }

    pub(crate) fn ports(&mut self, port: &Spanned<RawPort>) -> Ports {
        let span = port.span();
        match port.get_ref() {
            RawPort::Number(n) => {
                let p = self.port_number(span, *n);
                Ports { first: p, last: p }
            }
            RawPort::Text(text) => {
                let parts: Vec<&str> = text.split(['-', ':']).collect();
                let numbers: Option<Vec<i64>> =
                    parts.iter().map(|p| p.trim().parse().ok()).collect();
                match numbers.as_deref() {
                    Some([p]) => {
                        let p = self.port_number(span, *p);
                        Ports { first: p, last: p }
                    }
                    Some([a, b]) => {
                        let first = self.port_number(span.clone(), *a);
                        let last = self.port_number(span.clone(), *b);
                        if first > last {
                            self.push(span, format!("port range '{text}' runs backwards"));
                        }
                        Ports { first, last }
                    }
                    _ => {
                        self.push(
                            span,
                            format!("bad port '{text}' (expected 80, \"80\" or \"8000-8100\")"),
                        );
                        Ports { first: 1, last: 1 }
                    }
                }
            }
        }
    }
}

/// What a missing `[containers] external_interfaces` entry means.
const EXTERNAL_UNMATCHED: &str =
    ", so published ports arriving on the real external interface are not restricted";

impl Diagnostics<'_> {
    fn containers(&mut self, c: &RawContainers) -> Containers {
        Containers {
            restrict: c.restrict,
            external_interfaces: c
                .external_interfaces
                .iter()
                .filter_map(|i| self.located_interface(i, EXTERNAL_UNMATCHED))
                .collect(),
            allow: c
                .allow
                .iter()
                .map(|a| {
                    let host = a.host.as_ref().and_then(|h| {
                        parse_cidr(h.get_ref())
                            .map_err(|e| self.push(h.span(), e))
                            .ok()
                    });
                    ContainerAllow {
                        description: self.description(&a.description),
                        proto: a
                            .proto
                            .as_ref()
                            .map_or(Some(Proto::Tcp), |p| self.rule_proto(p)),
                        ports: self.port_list(&a.port),
                        host,
                        from: self.sources(&a.from),
                    }
                })
                .collect(),
        }
    }
}

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a host). A network written
/// with host bits (`198.51.100.7/24`) is refused: iptables would widen it to the whole
/// network silently, and the admin may have meant the host.
pub fn parse_cidr(text: &str) -> std::result::Result<IpNet, String> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => text
            .parse::<std::net::IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("'{text}' is not an IP address or CIDR"))?,
    };
    if net.trunc() != net {
        return Err(format!(
            "'{text}' has host bits set: write '{}' for the network or '{}' for the host",
            net.trunc(),
            net.addr()
        ));
    }
    Ok(net)
}

/// The text of a file that must be UTF-8 (the configuration, the template); else an
/// error that says where the first byte that is not is.
pub fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let shown = String::from_utf8_lossy(bytes);
        let (line, col) = diagnostic::line_col(&shown, at);
        let message = format!("not UTF-8 text: byte 0x{:02x}", bytes[at]);
        let file = path.display().to_string();
        Error::config(diagnostic::at_column(&file, &shown, line, col, message))
            .hint("save the file as UTF-8; nothing was applied")
    })
}

impl Config {
    /// The built-in default: ssh from anywhere, ICMP, drop logging, IPv6, no extra ports.
    pub fn builtin() -> Self {
        Config {
            path: None,
            backend: Choice::Auto,
            ipv6: true,
            template: None,
            keep: Vec::new(),
            keep_chains: Vec::new(),
            trusted_interfaces: Vec::new(),
            ssh: Ssh {
                port: 22,
                allow_from: anywhere(),
            },
            icmp: true,
            log_dropped: true,
            rules: Vec::new(),
            outbound: OutboundPolicy::Accept,
            allow: Vec::new(),
            swarm: Swarm {
                enabled: false,
                from: Vec::new(),
                encrypted: false,
            },
            containers: None,
            bridges: Bridges::default(),
            forward: Vec::new(),
            source_nat: Vec::new(),
            port_forward: Vec::new(),
            fragments: Vec::new(),
            interface_sites: Vec::new(),
        }
    }

    /// The chain patterns kept: `keep_chains` and those of the `keep` presets.
    pub fn kept_chains(&self) -> Vec<String> {
        let presets = self.keep.iter().flat_map(|p| p.chains.iter());
        let mut all = self.keep_chains.clone();
        all.extend(presets.map(ToString::to_string));
        all
    }

    /// The ipset patterns whose `--match-set` rules in builtin chains are kept (presets).
    pub fn kept_sets(&self) -> Vec<String> {
        let sets = self.keep.iter().flat_map(|p| p.sets.iter());
        sets.map(ToString::to_string).collect()
    }

    /// Loads `path` and the fragments of `rules.d` beside it; a missing file at the default
    /// path means the built-in default (with `/etc/iptables-docker/rules.d`).
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (path, explicit) = match path {
            Some(p) => (p, true),
            None => (Path::new(DEFAULT_PATH), false),
        };
        let mut config = match fs_err::read(path) {
            Ok(bytes) => Self::parse(&utf8(path, bytes)?, path)?,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => Self::builtin(),
            Err(e) => return Err(Error::config(e.to_string()).with_source(e)),
        };
        config.fragments = fragments::load_dir(&fragments::dir_for(Some(path)))?;
        Ok(config)
    }

    /// Parses and validates configuration text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let file = path.display().to_string();
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            Error::config(diagnostic::at_offset(&file, text, offset, e.message()))
                .hint("fix the configuration; nothing was applied")
        })?;
        let mut diag = Diagnostics {
            file: &file,
            text,
            found: Vec::new(),
            ipv6: raw.ipv6.unwrap_or(true),
            interface_sites: Vec::new(),
        };
        let config = Self::from_raw(raw, path, &mut diag);
        if diag.found.is_empty() {
            Ok(config)
        } else {
            Err(Error::config(diag.found.join("\n"))
                .hint("fix the configuration; nothing was applied"))
        }
    }

    fn from_raw(raw: RawConfig, path: &Path, diag: &mut Diagnostics) -> Self {
        let defaults = Self::builtin();
        let ssh = match raw.ssh {
            None => defaults.ssh,
            Some(s) => Ssh {
                port: s
                    .port
                    .map_or(22, |p| diag.port_number(p.span(), *p.get_ref())),
                allow_from: diag.cidrs_or_anywhere(&s.allow_from),
            },
        };
        let allow = raw.allow.iter().map(|a| diag.allow(a)).collect();
        let swarm = match raw.swarm {
            None => defaults.swarm,
            Some(s) => Swarm {
                enabled: s.enabled,
                from: diag.cidrs_or_anywhere(&s.from),
                encrypted: s.encrypted,
            },
        };
        let containers = raw.containers.map(|c| diag.containers(&c));
        let template = raw.template.map(|t| {
            let t = PathBuf::from(t);
            if t.is_relative() {
                path.parent().unwrap_or(Path::new("/")).join(t)
            } else {
                t
            }
        });
        Config {
            path: Some(path.to_path_buf()),
            backend: raw.backend.unwrap_or_default(),
            ipv6: raw.ipv6.unwrap_or(true),
            template,
            keep: diag.presets(&raw.keep),
            keep_chains: raw.keep_chains,
            trusted_interfaces: diag.trusted_interfaces(&raw.trusted_interfaces),
            ssh,
            icmp: raw.icmp.unwrap_or(true),
            log_dropped: raw.log_dropped.unwrap_or(true),
            rules: diag.rules(&raw.rule),
            outbound: diag.outbound(raw.outbound.as_ref()),
            allow,
            swarm,
            containers,
            bridges: diag.bridges(raw.bridges),
            forward: diag.forwards(&raw.forward),
            source_nat: diag.source_nats(&raw.source_nat),
            port_forward: diag.port_forwards(&raw.port_forward),
            fragments: Vec::new(),
            interface_sites: std::mem::take(&mut diag.interface_sites),
        }
    }

    /// What is valid but may not do what the admin means, each with `file:line:col`: an
    /// interface that does not exist on this host (`present`: the names of those that do;
    /// `wg+` matches any `wg…`). A warning, not an error: at boot the unit runs before
    /// interfaces are configured, and VPN interfaces come and go; the rule matches as soon
    /// as the interface appears.
    pub fn warnings(&self, present: &[String]) -> Vec<String> {
        self.interface_sites
            .iter()
            .filter(|(name, _, _)| {
                !present.iter().any(|p| match name.strip_suffix('+') {
                    Some(prefix) => p.starts_with(prefix),
                    None => p == name,
                })
            })
            .map(|(name, at, unmatched)| {
                format!(
                    "{at}: there is no interface '{name}' on this host (yet): its rules match \
                     nothing until it exists{unmatched}"
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/x.toml"))
    }

    #[test]
    fn the_commented_default_config_is_the_builtin_one() {
        let text = include_str!("../templates/config.toml");
        let mut config = parse(text).unwrap();
        config.path = None;
        assert_eq!(config, Config::builtin());
    }

    #[test]
    fn reads_allow_rules_and_ranges() {
        let c = parse(
            "[ssh]\nport = 2222\nallow_from = [\"10.0.0.0/8\"]\n\
             [[allow]]\ndescription = \"web\"\nport = \"8000-8100\"\nproto = \"udp\"\nfrom = [\"192.0.2.7\"]\n",
        )
        .unwrap();
        assert_eq!(c.ssh.port, 2222);
        assert_eq!(c.ssh.allow_from[0].to_string(), "10.0.0.0/8");
        assert_eq!(c.allow[0].ports.to_string(), "8000:8100");
        assert_eq!(c.allow[0].proto, Proto::Udp);
        assert_eq!(c.allow[0].from[0].to_string(), "192.0.2.7/32");
    }

    #[test]
    fn reports_every_problem_with_line_and_column() {
        let err = parse(
            "[ssh]\nport = 70000\nallow_from = [\"10.0.0.300/8\"]\n\
             [[allow]]\nport = 0\nproto = \"icmp\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/etc/x.toml:2:8: port 70000 is out of range"),
            "{err}"
        );
        assert!(
            err.contains("/etc/x.toml:3:15: '10.0.0.300/8' is not"),
            "{err}"
        );
        assert!(
            err.contains("/etc/x.toml:5:8: port 0 is out of range"),
            "{err}"
        );
        assert!(
            err.contains("/etc/x.toml:6:9: unknown protocol 'icmp'"),
            "{err}"
        );
    }

    #[test]
    fn descriptions_with_control_characters_are_located_errors() {
        // Found by fuzz/ (config_load): it loaded, then failed to render the policy.
        let err = parse("[[allow]]\nport = 80\ndescription = \"a\\nb\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/x.toml:3:15: a description may not contain control"),
            "{err}"
        );
    }

    const NEIGHBOURS: &str = "keep = [\"fail2ban\", \"tailscale\"]\n\
        trusted_interfaces = [\"wg0\", \"virbr*\"]\n\
        [bridges]\nto_host = \"limited\"\n[[bridges.allow]]\nport = 9100\n\
        [[forward]]\ndescription = \"vpn out\"\nin = \"wg0\"\nout = \"eth0\"\nfrom = [\"10.8.0.0/24\"]\n\
        [[source_nat]]\nfrom = [\"10.8.0.0/24\", \"fd08::/64\"]\nout = \"eth0\"\n\
        [[port_forward]]\nin = \"eth0\"\nproto = \"tcp\"\nport = 2222\nto = \"192.168.1.20\"\nto_port = 22\n";

    #[test]
    fn reads_the_host_network_sections() {
        let c = parse(NEIGHBOURS).unwrap();
        let keep: Vec<&str> = c.keep.iter().map(|p| p.name).collect();
        assert_eq!(keep, ["fail2ban", "tailscale"]);
        assert!(c.kept_chains().contains(&"ts-input".to_string()));
        assert_eq!(c.trusted_interfaces, ["wg0", "virbr+"]);
        assert_eq!(c.bridges.to_host, crate::forwarding::BridgeAccess::Limited);
        assert_eq!(c.bridges.allow[0].ports.first, 9100);
        assert_eq!(c.forward[0].in_iface.as_deref(), Some("wg0"));
        assert_eq!(c.source_nat[0].from.len(), 2);
        assert_eq!(c.port_forward[0].to_port, Some(22));
    }

    #[test]
    fn host_network_sections_report_located_errors() {
        let err = parse(
            "keep = [\"fail2bam\"]\ntrusted_interfaces = [\"w/g\"]\n[bridges]\nto_host = \"some\"\n\
             [[forward]]\nport = 80\n[[source_nat]]\nfrom = [\"10.8.0.0/24\"]\nout = \"eth0\"\nto_source = \"10.0.0.0/8\"\n\
             [[port_forward]]\nport = 22\nto = \"fd00::1\"\nfrom = [\"10.0.0.0/8\"]\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "/etc/x.toml:1:9: unknown owner 'fail2bam'",
            "/etc/x.toml:2:23: 'w/g' is not an interface name",
            "/etc/x.toml:4:11: unknown bridges.to_host 'some'",
            "/etc/x.toml:6:8: a port needs `proto`",
            "/etc/x.toml:10:13: '10.0.0.0/8' must be one address",
            "/etc/x.toml:13:6: `from` must be of the same family as `to`",
        ] {
            assert!(err.contains(want), "{want}\n{err}");
        }
    }

    #[test]
    fn values_that_would_change_silently_are_located_errors() {
        let err = parse(
            "ipv6 = false\n[ssh]\nallow_from = [\"198.51.100.7/24\", \"2001:db8::1\"]\n\
             [[allow]]\nport = 80\nfrom = []\n[swarm]\nenabled = true\nfrom = []\n\
             [containers]\n[[containers.allow]]\nport = 8080\nfrom = []\n",
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "/etc/x.toml:3:15: '198.51.100.7/24' has host bits set: write '198.51.100.0/24' \
             for the network or '198.51.100.7' for the host",
            "/etc/x.toml:3:34: '2001:db8::1/128' is an IPv6 source but `ipv6 = false`",
            "/etc/x.toml:6:8: an empty source list matches no one",
            "/etc/x.toml:9:8: an empty source list",
            "/etc/x.toml:13:8: an empty source list",
        ] {
            assert!(err.contains(needle), "{needle}\n{err}");
        }
    }

    #[test]
    fn a_missing_interface_is_a_located_warning() {
        let c =
            parse("[containers]\nexternal_interfaces = [\"eth0\", \"wg+\", \"eth9\"]\n").unwrap();
        let present = ["lo".to_string(), "eth0".into(), "wg0".into()];
        assert_eq!(c.warnings(&present).len(), 1);
        assert!(
            c.warnings(&present)[0].starts_with("/etc/x.toml:2:39: there is no interface 'eth9'")
        );
        assert_eq!(c.warnings(&present[..2]).len(), 2);
        assert!(c.warnings(&present)[0].ends_with("are not restricted"));
        // A host rule's interface: what follows is about that rule, not published ports.
        let c = parse("[[rule]]\naction = \"allow\"\ninterface = \"wg1\"\n").unwrap();
        let warnings = c.warnings(&present);
        assert_eq!(
            warnings,
            [
                "/etc/x.toml:3:13: there is no interface 'wg1' on this host (yet): its rules \
              match nothing until it exists"
            ]
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = parse("\n[ssh]\nprot = 22\n").unwrap_err().to_string();
        assert!(
            err.starts_with("/etc/x.toml:3:1: unknown field `prot`"),
            "{err}"
        );
    }
}
