//! One line to the system log, for what happens when nobody is there to read stderr (the
//! `--confirm` watchdog runs detached from the terminal, its stderr goes nowhere). Sent
//! as an RFC 3164 datagram to journald's syslog socket (`/run/systemd/journal/dev-log`),
//! else to `/dev/log` (rsyslog, syslog-ng, busybox syslogd). Without either, nothing is
//! sent: the outcome is also kept for `status`.

use std::os::unix::net::UnixDatagram;

/// The sockets tried, in order.
const SOCKETS: [&str; 2] = ["/run/systemd/journal/dev-log", "/dev/log"];

/// Facility `daemon` (3) × 8 + severity `warning` (4), RFC 3164 section 4.1.1.
const DAEMON_WARNING: u8 = 3 * 8 + 4;

/// Logs `message` as a warning of the daemon facility, tagged `iptables-docker[pid]`, to
/// the first socket that takes it.
pub fn warning(message: &str) {
    let line = format!(
        "<{DAEMON_WARNING}>iptables-docker[{}]: {}",
        std::process::id(),
        message.replace('\n', " ")
    );
    if let Ok(socket) = UnixDatagram::unbound() {
        let _ = SOCKETS
            .iter()
            .any(|path| socket.send_to(line.as_bytes(), path).is_ok());
    }
}
