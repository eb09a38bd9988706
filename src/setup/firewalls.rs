//! ufw and firewalld, the firewall managers iptables-docker replaces: their state, turning
//! them off (`ufw disable`, so that ufw's rules and its config agree; firewalld stopped,
//! disabled and masked, so that nothing starts it again) and putting a recorded state
//! back. Either may be absent. Every function acts only where the state differs, and
//! returns what it did, one sentence each.

use crate::error::Result;
use crate::system::host;

use super::record::{UfwRecord, UnitRecord};

pub const UFW_UNIT: &str = "ufw.service";
pub const FIREWALLD_UNIT: &str = "firewalld.service";

pub fn ufw_state() -> Result<Option<UfwRecord>> {
    if !host::ufw_present() {
        return Ok(None);
    }
    let unit = host::unit_state(UFW_UNIT)?;
    Ok(Some(UfwRecord {
        enabled: host::ufw_conf_enabled(),
        active: host::ufw_active()?,
        unit_enabled: unit.enabled(),
        unit_active: unit.active(),
    }))
}

pub fn unit_record(unit: &str) -> Result<Option<UnitRecord>> {
    let state = host::unit_state(unit)?;
    Ok(state.exists().then(|| UnitRecord {
        enabled: state.enabled(),
        active: state.active(),
        masked: state.masked(),
    }))
}

/// `ufw disable`, then `systemctl disable --now ufw.service`, as far as needed.
pub fn ufw_off(now: &UfwRecord) -> Result<Vec<String>> {
    ufw_restore(
        now,
        &UfwRecord {
            enabled: false,
            active: false,
            unit_enabled: false,
            unit_active: false,
        },
    )
}

/// Puts ufw into `want`, from `now`: its own switch (`ufw enable`/`disable`, which loads
/// or removes its rules and sets ENABLED in ufw.conf), then its systemd unit.
pub fn ufw_restore(now: &UfwRecord, want: &UfwRecord) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let want_on = want.enabled || want.active;
    if want_on && !now.active {
        host::ufw(&["--force", "enable"])?;
        done.push("ufw enabled and active (`ufw --force enable`)".into());
    } else if !want_on && (now.enabled || now.active) {
        host::ufw(&["disable"])?;
        done.push("ufw disabled (`ufw disable`: its rules removed, off at boot)".into());
    }
    if want.unit_enabled != now.unit_enabled {
        let verb = if want.unit_enabled {
            "enable"
        } else {
            "disable"
        };
        host::systemctl(&[verb, "--quiet", UFW_UNIT])?;
        done.push(format!("{UFW_UNIT} {verb}d"));
    }
    if want.unit_active != now.unit_active {
        let verb = if want.unit_active { "start" } else { "stop" };
        host::systemctl(&[verb, UFW_UNIT])?;
        done.push(format!(
            "{UFW_UNIT} {verb}{}",
            if want.unit_active { "ed" } else { "ped" }
        ));
    }
    Ok(done)
}

/// Stops, disables and masks `unit` (firewalld), as far as needed.
pub fn unit_off(unit: &str, now: &UnitRecord) -> Result<Vec<String>> {
    unit_restore(
        unit,
        now,
        &UnitRecord {
            enabled: false,
            active: false,
            masked: true,
        },
    )
}

/// Puts a service back into `want`, from `now`: unmask, enable, start (or the reverse).
pub fn unit_restore(unit: &str, now: &UnitRecord, want: &UnitRecord) -> Result<Vec<String>> {
    let mut done = Vec::new();
    if now.active && !want.active {
        host::systemctl(&["stop", unit])?;
        done.push(format!("{unit} stopped"));
    }
    if now.enabled && !want.enabled {
        host::systemctl(&["disable", "--quiet", unit])?;
        done.push(format!("{unit} disabled"));
    }
    if now.masked != want.masked {
        let verb = if want.masked { "mask" } else { "unmask" };
        host::systemctl(&[verb, "--quiet", unit])?;
        done.push(format!("{unit} {verb}ed"));
    }
    if want.enabled && !now.enabled {
        host::systemctl(&["enable", "--quiet", unit])?;
        done.push(format!("{unit} enabled"));
    }
    if want.active && !now.active {
        host::systemctl(&["start", unit])?;
        done.push(format!("{unit} started"));
    }
    Ok(done)
}
