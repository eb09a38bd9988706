//! The thin layer that touches the host: processes, files, locks. Everything here is
//! small on purpose; the decisions are made by the pure modules.

pub mod host;
pub mod iptables;
pub mod lock;
pub mod pending;
pub mod state;
pub mod trust;

use crate::error::{Error, Result};

/// Fails unless running as root, naming the command that needs it.
pub fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err(Error::environment(format!("{what} must run as root"))
            .hint(format!("run it with sudo: sudo iptables-docker {what}")))
    }
}

/// The interfaces of this host's default routes (IPv4 and IPv6).
pub fn default_route_interfaces() -> Vec<String> {
    let v4 = fs_err::read_to_string("/proc/net/route").unwrap_or_default();
    let v6 = fs_err::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    crate::policy::default_route_interfaces(&v4, &v6)
}
