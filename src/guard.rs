//! The lockout guard: refuse a policy that would not let the clients of the host's
//! established SSH connections connect again. The connections are read from the kernel
//! (`/proc/net/tcp` and `/proc/net/tcp6`: established sockets on a port sshd listens on),
//! so the guard works whoever runs the command — a terminal, `systemctl reload`, a
//! package's maintainer script, Ansible — plus `SSH_CONNECTION` when it is set.
//! Judged on the configuration; a custom template is trusted to honour it.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::{Config, Proto};
use crate::error::{Error, Kind, Result};

/// An established SSH connection: the client's address and the server port.
pub type Connection = (IpAddr, u16);

/// The client address and server port of an `SSH_CONNECTION` value
/// (`client_ip client_port server_ip server_port`).
pub fn parse_ssh_connection(value: &str) -> Option<Connection> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() != 4 {
        return None;
    }
    let client: IpAddr = f[0].parse().ok()?;
    Some((unmapped(client), f[3].parse().ok()?))
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One socket of `/proc/net/tcp{,6}`: local port, remote address, state (`01`
/// established, `0A` listening).
fn socket_line(line: &str) -> Option<(u16, IpAddr, u8)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (local, remote, state) = (f.get(1)?, f.get(2)?, f.get(3)?);
    let port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
    let addr = remote.rsplit_once(':')?.0;
    // Each 32-bit word is printed as the kernel holds it: in the host's byte order.
    let mut bytes = Vec::with_capacity(16);
    for i in (0..addr.len()).step_by(8) {
        let word = u32::from_str_radix(addr.get(i..i + 8)?, 16).ok()?;
        bytes.extend(word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some((port, ip, u8::from_str_radix(state, 16).ok()?))
}

/// The established inbound connections to `ssh_ports` found in `tables` (the texts of
/// `/proc/net/tcp` and `/proc/net/tcp6`): sockets in state ESTABLISHED whose local port
/// is one of `ssh_ports` and has a listening socket. Loopback clients are left out (every
/// policy accepts `lo`).
pub fn established(tables: &[&str], ssh_ports: &BTreeSet<u16>) -> Vec<Connection> {
    let sockets: Vec<(u16, IpAddr, u8)> = tables
        .iter()
        .flat_map(|t| t.lines().skip(1))
        .filter_map(socket_line)
        .collect();
    let listening: BTreeSet<u16> = sockets
        .iter()
        .filter(|(port, _, state)| *state == 0x0A && ssh_ports.contains(port))
        .map(|(port, ..)| *port)
        .collect();
    let found: BTreeSet<Connection> = sockets
        .iter()
        .filter(|(port, _, state)| *state == 0x01 && listening.contains(port))
        .map(|(port, ip, _)| (unmapped(*ip), *port))
        .filter(|(ip, _)| !ip.is_loopback())
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

/// Whether the configured policy accepts new TCP connections from `client` to `port`.
pub fn admits(config: &Config, client: IpAddr, port: u16) -> bool {
    if client.is_ipv6() && !config.ipv6 {
        return true; // IPv6 is left as it is
    }
    let ssh = port == config.ssh.port && config.ssh.allow_from.iter().any(|n| n.contains(&client));
    let allowed = config.allow.iter().any(|a| {
        a.proto == Proto::Tcp
            && a.ports.contains(port)
            && a.from.iter().any(|n| n.contains(&client))
    });
    ssh || allowed
}

/// The connections of `connections` the configured policy would not let in again.
pub fn locked_out(config: &Config, connections: &[Connection]) -> Vec<Connection> {
    connections
        .iter()
        .filter(|(client, port)| !admits(config, *client, *port))
        .copied()
        .collect()
}

/// Refuses (kind [`Kind::Lockout`]) when the config would lock out any of `connections`.
pub fn check(config: &Config, connections: &[Connection]) -> Result<()> {
    let cut = locked_out(config, connections);
    if cut.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        Kind::Lockout,
        format!(
            "refusing to apply: the policy would not accept new SSH connections from {}, \
             which {} established now",
            describe(&cut),
            if cut.len() == 1 { "is" } else { "are" }
        ),
    )
    .hint(format!(
        "add {} to ssh.allow_from (or set ssh.port) in the configuration, or pass --force \
         (`iptables-docker reload --force`)",
        cut.iter()
            .map(|(c, _)| c.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// `192.0.2.9 (port 22), 2001:db8::1 (port 2222)`.
pub fn describe(connections: &[Connection]) -> String {
    connections
        .iter()
        .map(|(client, port)| format!("{client} (port {port})"))
        .collect::<Vec<_>>()
        .join(", ")
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
        assert!(refused.to_string().contains("203.0.113.9 (port 22)"));
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
        let want: Vec<Connection> = vec![
            ("192.0.2.9".parse().unwrap(), 22),
            ("192.0.2.10".parse().unwrap(), 2222),
            ("2001:db8::9".parse().unwrap(), 22),
        ];
        assert_eq!(found, want);
        // 8080 is not an ssh port: the session to it does not count.
        assert!(!found.iter().any(|(_, p)| *p == 8080));
    }

    #[test]
    fn reads_port_lines_of_sshd_config() {
        assert_eq!(
            sshd_ports("# Port 99\nPort 2222\nport 22\nListenAddress 0.0.0.0\nPort x\n"),
            vec![2222, 22]
        );
    }
}
