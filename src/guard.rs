//! The lockout guard: refuse a policy that would not let the clients of the host's
//! established SSH connections connect again. The connections are read from the kernel
//! (`/proc/net/tcp` and `/proc/net/tcp6`: established sockets on a port sshd listens on),
//! so the guard works whoever runs the command — a terminal, `systemctl reload`, a
//! package's maintainer script, Ansible — plus `SSH_CONNECTION` when it is set.
//! Judged on the configuration, in the policy's order: the `[[rule]]` tables (first match
//! wins: a deny or reject rule before `[ssh]` can cut a peer), then `[ssh]` and
//! `[[allow]]`; a custom template is trusted to honour it.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::{Config, Proto};
use crate::error::{Error, Kind, Result};
use crate::host_rule::{Direction, Rule};

/// An established SSH connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Connection {
    /// The client's address (an IPv4-mapped one as IPv4).
    pub client: IpAddr,
    /// The server port.
    pub port: u16,
    /// The host address the client connected to.
    pub local: IpAddr,
}

/// The client address, server address and port of an `SSH_CONNECTION` value
/// (`client_ip client_port server_ip server_port`).
pub fn parse_ssh_connection(value: &str) -> Option<Connection> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() != 4 {
        return None;
    }
    Some(Connection {
        client: unmapped(f[0].parse().ok()?),
        port: f[3].parse().ok()?,
        local: unmapped(f[2].parse().ok()?),
    })
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An address of `/proc/net/tcp{,6}`: each 32-bit word is printed as the kernel holds it,
/// in the host's byte order.
fn proc_address(hex: &str) -> Option<IpAddr> {
    let mut bytes = Vec::with_capacity(16);
    for i in (0..hex.len()).step_by(8) {
        let word = u32::from_str_radix(hex.get(i..i + 8)?, 16).ok()?;
        bytes.extend(word.to_ne_bytes());
    }
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes).ok()?,
        ))),
        _ => None,
    }
}

/// One socket of `/proc/net/tcp{,6}`: local address and port, remote address, state (`01`
/// established, `0A` listening).
fn socket_line(line: &str) -> Option<(IpAddr, u16, IpAddr, u8)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (local, remote, state) = (f.get(1)?, f.get(2)?, f.get(3)?);
    let (local_addr, port) = local.rsplit_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let remote = proc_address(remote.rsplit_once(':')?.0)?;
    let state = u8::from_str_radix(state, 16).ok()?;
    Some((proc_address(local_addr)?, port, remote, state))
}

/// The established inbound connections to `ssh_ports` found in `tables` (the texts of
/// `/proc/net/tcp` and `/proc/net/tcp6`): sockets in state ESTABLISHED whose local port
/// is one of `ssh_ports` and has a listening socket. Loopback clients are left out (every
/// policy accepts `lo`).
pub fn established(tables: &[&str], ssh_ports: &BTreeSet<u16>) -> Vec<Connection> {
    let sockets: Vec<(IpAddr, u16, IpAddr, u8)> = tables
        .iter()
        .flat_map(|t| t.lines().skip(1))
        .filter_map(socket_line)
        .collect();
    let listening: BTreeSet<u16> = sockets
        .iter()
        .filter(|(_, port, _, state)| *state == 0x0A && ssh_ports.contains(port))
        .map(|(_, port, ..)| *port)
        .collect();
    let found: BTreeSet<Connection> = sockets
        .iter()
        .filter(|(_, port, _, state)| *state == 0x01 && listening.contains(port))
        .map(|(local, port, client, _)| Connection {
            client: unmapped(*client),
            port: *port,
            local: unmapped(*local),
        })
        .filter(|c| !c.client.is_loopback())
        .collect();
    found.into_iter().collect()
}

/// The `Port` values of sshd configuration text (`Port 22`, case-insensitive keyword).
pub fn sshd_ports(sshd_config: &str) -> Vec<u16> {
    sshd_config
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let key = words.next()?;
            key.eq_ignore_ascii_case("port")
                .then(|| words.next()?.parse().ok())?
        })
        .collect()
}

/// The ports sshd may listen on: 22, the configuration's `[ssh] port`, and every `Port`
/// of `/etc/ssh/sshd_config` and `/etc/ssh/sshd_config.d/*.conf`.
fn candidate_ports(config: &Config) -> BTreeSet<u16> {
    let mut texts = vec![std::fs::read_to_string("/etc/ssh/sshd_config").unwrap_or_default()];
    if let Ok(dir) = std::fs::read_dir("/etc/ssh/sshd_config.d") {
        texts.extend(
            dir.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "conf"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok()),
        );
    }
    let mut ports: BTreeSet<u16> = texts.iter().flat_map(|t| sshd_ports(t)).collect();
    ports.extend([22, config.ssh.port]);
    ports
}

/// The host's established SSH connections (see [`established`]) and this process's own
/// (`SSH_CONNECTION`), without duplicates.
pub fn host_connections(config: &Config) -> Vec<Connection> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let tcp6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let mut found: BTreeSet<Connection> = established(&[&tcp, &tcp6], &candidate_ports(config))
        .into_iter()
        .collect();
    let own = std::env::var("SSH_CONNECTION").ok();
    found.extend(own.as_deref().and_then(parse_ssh_connection));
    found.into_iter().collect()
}

/// Whether `rule` matches a new TCP connection like `c`: `Some(bool)`, or `None` when it
/// depends on what the guard cannot know (the interface the session came in on).
fn rule_matches(rule: &Rule, c: &Connection) -> Option<bool> {
    let known = rule.direction == Direction::In
        && rule.proto.is_none_or(|p| p == Proto::Tcp)
        && (rule.ports.is_empty() || rule.ports.iter().any(|p| p.contains(c.port)))
        && (rule.from.is_empty() || rule.from.iter().any(|n| n.contains(&c.client)))
        && (rule.to.is_empty() || rule.to.iter().any(|n| n.contains(&c.local)));
    match (known, &rule.interface) {
        (false, _) => Some(false),
        (true, None) => Some(true),
        (true, Some(_)) => None,
    }
}

/// Why the configured policy would not accept a new connection like `c` again, or `None`
/// when it would. The `[[rule]]` tables come first, in order: the first that matches
/// decides (limit counts as accepting: a peer under its rate gets in); a deny or reject
/// rule that may match (bound to an interface) is taken to match, an allow rule that may
/// is not relied on. Then `[ssh]` and `[[allow]]`.
pub fn refusal(config: &Config, c: &Connection) -> Option<String> {
    if c.client.is_ipv6() && !config.ipv6 {
        return None; // IPv6 is left as it is
    }
    for (number, rule) in config.rules.iter().enumerate().map(|(i, r)| (i + 1, r)) {
        let admits = rule.action.admits();
        match (rule_matches(rule, c), admits) {
            (Some(true), true) => return None,
            (Some(true), false) => {
                return Some(format!("[[rule]] {number} ({}) matches it", rule.action))
            }
            (None, false) => {
                return Some(format!(
                    "[[rule]] {number} ({} on interface {}) may match it: which interface \
                     a session came in on is not known",
                    rule.action,
                    rule.interface.as_deref().unwrap_or("")
                ))
            }
            _ => {}
        }
    }
    let ssh = rule_matches(&Rule::from_ssh(&config.ssh), c) == Some(true);
    let allowed = config
        .allow
        .iter()
        .any(|a| rule_matches(&Rule::from_allow(a), c) == Some(true));
    (!(ssh || allowed)).then(|| "neither [ssh] nor a rule accepts it".to_string())
}

/// The connections of `connections` the configured policy would not let in again, each
/// with why ([`refusal`]).
pub fn locked_out(config: &Config, connections: &[Connection]) -> Vec<(Connection, String)> {
    connections
        .iter()
        .filter_map(|c| Some((*c, refusal(config, c)?)))
        .collect()
}

/// Refuses (kind [`Kind::Lockout`]) when the config would lock out any of `connections`.
pub fn check(config: &Config, connections: &[Connection]) -> Result<()> {
    let cut = locked_out(config, connections);
    if cut.is_empty() {
        return Ok(());
    }
    let clients: BTreeSet<String> = cut.iter().map(|(c, _)| c.client.to_string()).collect();
    let clients = clients.into_iter().collect::<Vec<_>>().join(", ");
    let by_rule = cut.iter().any(|(_, why)| why.starts_with("[[rule]]"));
    let hint = if by_rule {
        format!(
            "remove or narrow that rule (`iptables-docker rules` numbers them), put a rule \
             allowing {clients} before it, or pass --force (`iptables-docker reload --force`)"
        )
    } else {
        format!(
            "add {clients} to ssh.allow_from (or set ssh.port) in the configuration, or pass \
             --force (`iptables-docker reload --force`)"
        )
    };
    Err(Error::new(
        Kind::Lockout,
        format!(
            "refusing to apply: the policy would not accept new SSH connections from {}",
            describe(&cut)
        ),
    )
    .hint(hint))
}

/// `192.0.2.9 (port 22), 2001:db8::1 (port 2222), which are established now (192.0.2.9:
/// [[rule]] 1 (deny) matches it; 2001:db8::1: neither [ssh] nor a rule accepts it)`.
pub fn describe(cut: &[(Connection, String)]) -> String {
    let who: Vec<String> = cut
        .iter()
        .map(|(c, _)| format!("{} (port {})", c.client, c.port))
        .collect();
    let why: Vec<String> = cut
        .iter()
        .map(|(c, why)| format!("{}: {why}", c.client))
        .collect();
    format!(
        "{}, which {} established now ({})",
        who.join(", "),
        if cut.len() == 1 { "is" } else { "are" },
        why.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_configured_ssh_and_allow_rules_only() {
        let mut config = Config::builtin();
        config.ssh.allow_from = vec!["192.0.2.0/24".parse().unwrap()];
        let conn = |c: &str, p: u16| parse_ssh_connection(&format!("{c} 50000 198.51.100.1 {p}"));
        assert!(check(&config, &[conn("192.0.2.9", 22).unwrap()]).is_ok());
        let refused = check(&config, &[conn("203.0.113.9", 22).unwrap()]).unwrap_err();
        assert_eq!(refused.kind(), Kind::Lockout);
        assert!(refused.to_string().contains(
            "203.0.113.9 (port 22), which is established now (203.0.113.9: neither [ssh] nor \
             a rule accepts it)"
        ));
        assert!(check(&config, &[conn("192.0.2.9", 2222).unwrap()]).is_err());
        assert!(check(&config, &[conn("::ffff:192.0.2.9", 22).unwrap()]).is_ok());
        assert!(check(&config, &[]).is_ok());
        config.ipv6 = false;
        assert!(check(&config, &[conn("2001:db8::1", 22).unwrap()]).is_ok());
    }

    // Written by Linux 6.1 on x86-64 (little endian): sshd listening on 22 and 2222, an
    // established session from 192.0.2.9 and one from 127.0.0.1, an outgoing connection to
    // a remote port 22, and over IPv6 a session from 2001:db8::9 and a v4-mapped one.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100A8C0:0016 090200C0:C350 01 00000000:00000000 02:0009C3C5 00000000     0        0 3 4 0 20 4 31 10 40
   3: 0100007F:0016 0100007F:C351 01 00000000:00000000 02:0009C3C5 00000000     0        0 4 4 0 20 4 31 10 40
   4: 0100A8C0:D431 070264C6:0016 01 00000000:00000000 02:0009C3C5 00000000     0        0 5 4 0 20 4 31 10 40
   5: 0100A8C0:1F90 0A0264C6:C352 01 00000000:00000000 02:0009C3C5 00000000     0        0 6 4 0 20 4 31 10 40
";
    const TCP6: &str =
        "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0
   1: B80D0120000000000000000001000000:0016 B80D0120000000000000000009000000:C353 01 0
   2: 0000000000000000FFFF00000100A8C0:08AE 0000000000000000FFFF00000A0200C0:C354 01 0
";

    #[test]
    fn reads_established_sessions_on_sshd_ports_from_proc() {
        let ports: BTreeSet<u16> = [22, 2222].into();
        let found = established(&[TCP, TCP6], &ports);
        let seen: Vec<(String, u16, String)> = found
            .iter()
            .map(|c| (c.client.to_string(), c.port, c.local.to_string()))
            .collect();
        let want = [
            ("192.0.2.9", 22, "192.168.0.1"),
            ("192.0.2.10", 2222, "192.168.0.1"),
            ("2001:db8::9", 22, "2001:db8::1"),
        ];
        let want: Vec<(String, u16, String)> = want
            .iter()
            .map(|(c, p, l)| (c.to_string(), *p, l.to_string()))
            .collect();
        assert_eq!(seen, want);
        // 8080 is not an ssh port: the session to it does not count.
        assert!(!found.iter().any(|c| c.port == 8080));
    }

    #[test]
    fn reads_port_lines_of_sshd_config() {
        assert_eq!(
            sshd_ports("# Port 99\nPort 2222\nport 22\nListenAddress 0.0.0.0\nPort x\n"),
            vec![2222, 22]
        );
    }

    #[test]
    fn rules_before_ssh_are_judged_first_in_order() {
        let config =
            |rules: &str| Config::parse(rules, std::path::Path::new("/etc/x.toml")).unwrap();
        let peer = parse_ssh_connection("203.0.113.9 50000 198.51.100.1 22").unwrap();
        let deny = config("[[rule]]\naction = \"deny\"\nfrom = [\"203.0.113.0/24\"]\n");
        let err = check(&deny, &[peer]).unwrap_err();
        assert_eq!(err.kind(), Kind::Lockout);
        assert!(
            err.to_string()
                .contains("(203.0.113.9: [[rule]] 1 (deny) matches it)"),
            "{err}"
        );
        // An allow before the deny admits the peer; a reject of udp, of another port, of
        // another local address, does not touch it.
        let allowed_first = config(
            "[[rule]]\naction = \"limit\"\nport = 22\n\
             [[rule]]\naction = \"reject\"\nfrom = [\"203.0.113.0/24\"]\n",
        );
        assert!(check(&allowed_first, &[peer]).is_ok());
        let elsewhere = config(
            "[[rule]]\naction = \"reject\"\nproto = \"udp\"\n\
             [[rule]]\naction = \"deny\"\nport = [80, 443]\n\
             [[rule]]\naction = \"deny\"\nto = [\"198.51.100.2\"]\n\
             [[rule]]\naction = \"deny\"\ndirection = \"out\"\n",
        );
        assert!(check(&elsewhere, &[peer]).is_ok());
        // Bound to an interface: the guard cannot tell, so a deny counts and an allow not.
        let on_iface = config("[[rule]]\naction = \"deny\"\nport = 22\ninterface = \"eth1\"\n");
        let err = check(&on_iface, &[peer]).unwrap_err().to_string();
        assert!(
            err.contains("[[rule]] 1 (deny on interface eth1) may match it"),
            "{err}"
        );
        let mut allow_on_iface = config(
            "[ssh]\nallow_from = [\"10.0.0.0/8\"]\n\
             [[rule]]\naction = \"allow\"\nport = 22\ninterface = \"eth1\"\n",
        );
        assert!(check(&allow_on_iface, &[peer]).is_err());
        allow_on_iface.rules[0].interface = None;
        assert!(check(&allow_on_iface, &[peer]).is_ok());
    }
}
