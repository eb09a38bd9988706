//! The lockout guard: when run over SSH, refuse a policy that would not let the operator's
//! own connection (client address → server port, from `SSH_CONNECTION`) back in.
//! Judged on the configuration; a custom template is trusted to honour it.

#![forbid(unsafe_code)]

use std::net::IpAddr;

use crate::config::{Config, Proto};
use crate::error::{Error, Kind, Result};

/// The client address and server port of an `SSH_CONNECTION` value
/// (`client_ip client_port server_ip server_port`).
pub fn parse_ssh_connection(value: &str) -> Option<(IpAddr, u16)> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() != 4 {
        return None;
    }
    let client: IpAddr = f[0].parse().ok()?;
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    Some((client, f[3].parse().ok()?))
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

/// Refuses (exit code 151) when `ssh_connection` names a client the config would lock out.
pub fn check(config: &Config, ssh_connection: Option<&str>) -> Result<()> {
    let Some((client, port)) = ssh_connection.and_then(parse_ssh_connection) else {
        return Ok(());
    };
    if admits(config, client, port) {
        return Ok(());
    }
    Err(Error::new(
        Kind::Lockout,
        format!(
            "refusing to apply: the policy would not accept your SSH connection from {client} to port {port}"
        ),
    )
    .hint(format!(
        "add {client} to ssh.allow_from (or set ssh.port = {port}) in the configuration, or pass --force"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_configured_ssh_and_allow_rules_only() {
        let mut config = Config::builtin();
        config.ssh.allow_from = vec!["192.0.2.0/24".parse().unwrap()];
        let conn = |c: &str, p: u16| format!("{c} 50000 198.51.100.1 {p}");
        assert!(check(&config, Some(&conn("192.0.2.9", 22))).is_ok());
        let refused = check(&config, Some(&conn("203.0.113.9", 22))).unwrap_err();
        assert_eq!(refused.kind(), Kind::Lockout);
        assert!(check(&config, Some(&conn("192.0.2.9", 2222))).is_err());
        assert!(check(&config, Some(&conn("::ffff:192.0.2.9", 22))).is_ok());
        assert!(check(&config, None).is_ok());
        config.ipv6 = false;
        assert!(check(&config, Some(&conn("2001:db8::1", 22))).is_ok());
    }
}
