//! The host's own tools, run as processes for `install` and `uninstall`: `systemctl`,
//! `update-alternatives` (Debian/Ubuntu) or `alternatives` (RHEL-like), `ufw`,
//! `iptables -V`, `/etc/os-release`. One tool call per function;
//! their answers are parsed by small pure functions; the decisions are the commands'.

use std::ffi::OsStr;
use std::path::Path;

use crate::error::{Error, Result};
use crate::system::iptables::Backend;
use crate::system::process;

/// Runs `program args…` (C locale, no pager) and returns its stdout.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let env = [
        ("LC_ALL", OsStr::new("C")),
        ("SYSTEMD_PAGER", OsStr::new("")),
    ];
    let out = process::run(program, args, &env, None)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Whether systemd is PID 1 (the test `sd_booted()` uses).
pub fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

// --- systemctl -----------------------------------------------------------------------

/// `systemctl ARGS…`.
pub fn systemctl(args: &[&str]) -> Result<()> {
    run("systemctl", args).map(drop)
}

/// What systemd knows about a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// `loaded`, `not-found`, `masked`, …
    pub load: String,
    /// `enabled`, `disabled`, `masked`, `static`, … (empty when not found)
    pub file: String,
    /// `active`, `inactive`, `failed`, …
    pub active: String,
}

impl UnitState {
    pub fn exists(&self) -> bool {
        self.load != "not-found"
    }
    pub fn enabled(&self) -> bool {
        self.file == "enabled"
    }
    pub fn masked(&self) -> bool {
        self.load == "masked" || self.file == "masked"
    }
    pub fn active(&self) -> bool {
        self.active == "active" || self.active == "reloading"
    }
}

/// Parses `systemctl show -p LoadState -p UnitFileState -p ActiveState` output.
pub fn parse_unit_state(text: &str) -> UnitState {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    UnitState {
        load: get("LoadState"),
        file: get("UnitFileState"),
        active: get("ActiveState"),
    }
}

pub fn unit_state(unit: &str) -> Result<UnitState> {
    let out = run(
        "systemctl",
        &[
            "show",
            "-p",
            "LoadState",
            "-p",
            "UnitFileState",
            "-p",
            "ActiveState",
            unit,
        ],
    )?;
    Ok(parse_unit_state(&out))
}

/// The last lines the unit logged in this boot, to explain why it failed.
pub fn unit_log(unit: &str) -> String {
    run(
        "journalctl",
        &["-u", unit, "-b", "-n", "15", "--no-pager", "-o", "cat"],
    )
    .unwrap_or_default()
}

// --- alternatives ----------------------------------------------------------------------

/// One alternatives group (`iptables`, `ip6tables`) as `--display` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    /// Automatic mode (highest priority wins) rather than manual.
    pub auto: bool,
    /// Where the link points now.
    pub current: Option<String>,
    /// The registered alternatives.
    pub choices: Vec<String>,
}

impl Alternative {
    /// The registered alternative for `backend`: `/usr/sbin/iptables-legacy` for group
    /// `iptables`.
    pub fn choice_for(&self, group: &str, backend: Backend) -> Option<&str> {
        let wanted = format!("{group}-{}", backend.name());
        self.choices
            .iter()
            .map(String::as_str)
            .find(|c| c.rsplit('/').next() == Some(wanted.as_str()))
    }
}

/// Parses `--display GROUP` of Debian's `update-alternatives` ("iptables - auto mode",
/// "/usr/sbin/iptables-legacy - priority 10") and of RHEL's `alternatives` ("iptables -
/// status is auto.", "/usr/sbin/iptables-legacy - priority 10"); both say "link currently
/// points to PATH".
pub fn parse_alternative(text: &str) -> Option<Alternative> {
    let first = text.lines().next()?;
    let auto = if first.contains("auto") {
        true
    } else if first.contains("manual") {
        false
    } else {
        return None;
    };
    let current = text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("link currently points to ")
            .map(|p| p.trim().to_string())
    });
    let choices = text
        .lines()
        .filter(|l| l.starts_with('/'))
        .filter_map(|l| l.split(" - ").next())
        .map(|p| p.trim().to_string())
        .collect();
    Some(Alternative {
        auto,
        current,
        choices,
    })
}

/// `update-alternatives` on Debian/Ubuntu, `alternatives` on RHEL-like hosts.
pub fn alternatives_tool() -> Option<&'static str> {
    ["update-alternatives", "alternatives"]
        .into_iter()
        .find(|t| which::which(t).is_ok())
}

/// The group, or `None` when there is no alternatives tool or no such group.
pub fn alternative(group: &str) -> Option<Alternative> {
    let tool = alternatives_tool()?;
    run(tool, &["--display", group])
        .ok()
        .and_then(|t| parse_alternative(&t))
}

/// Points `group` at `path` (manual mode).
pub fn set_alternative(group: &str, path: &str) -> Result<()> {
    let tool = alternatives_tool().ok_or_else(no_alternatives_tool)?;
    run(tool, &["--set", group, path]).map(drop)
}

/// Puts `group` back into automatic mode.
pub fn auto_alternative(group: &str) -> Result<()> {
    let tool = alternatives_tool().ok_or_else(no_alternatives_tool)?;
    run(tool, &["--auto", group]).map(drop)
}

fn no_alternatives_tool() -> Error {
    Error::not_installed("neither `update-alternatives` nor `alternatives` was found")
        .hint("install dpkg's update-alternatives (Debian/Ubuntu) or chkconfig's alternatives (RHEL-like)")
}

// --- iptables ----------------------------------------------------------------------------

/// The backend named in `iptables -V` output: "iptables v1.8.9 (nf_tables)" or "(legacy)".
pub fn parse_version_backend(text: &str) -> Option<Backend> {
    if text.contains("(nf_tables)") {
        Some(Backend::Nft)
    } else if text.contains("(legacy)") {
        Some(Backend::Legacy)
    } else {
        None
    }
}

/// The backend the plain `iptables` / `ip6tables` command uses now, if it exists.
pub fn command_backend(command: &str) -> Option<Backend> {
    run(command, &["-V"])
        .ok()
        .and_then(|t| parse_version_backend(&t))
}

// --- ufw -----------------------------------------------------------------------------------

pub const UFW_CONF: &str = "/etc/ufw/ufw.conf";

pub fn ufw_present() -> bool {
    which::which("ufw").is_ok()
}

/// `ENABLED=yes` in ufw.conf: what `ufw enable`/`ufw disable` switch, read at boot.
pub fn parse_ufw_enabled(conf: &str) -> bool {
    conf.lines().any(|l| {
        l.trim()
            .strip_prefix("ENABLED=")
            .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == "yes")
    })
}

pub fn ufw_conf_enabled() -> bool {
    std::fs::read_to_string(UFW_CONF).is_ok_and(|t| parse_ufw_enabled(&t))
}

/// `ufw status` says "Status: active".
pub fn ufw_active() -> Result<bool> {
    Ok(run("ufw", &["status"])?
        .lines()
        .any(|l| l.trim() == "Status: active"))
}

pub fn ufw(args: &[&str]) -> Result<()> {
    run("ufw", args).map(drop)
}

// --- distribution -------------------------------------------------------------------------

/// What to install for `backend`'s binaries, from `/etc/os-release` text.
pub fn package_hint(os_release: &str, backend: Backend) -> String {
    let field = |key: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
            .trim_matches(['"', '\''])
            .to_string()
    };
    let id = field("ID");
    let like = format!("{id} {}", field("ID_LIKE"));
    let words: Vec<&str> = like.split_whitespace().collect();
    let is = |name: &str| words.contains(&name);
    match backend {
        _ if is("debian") || is("ubuntu") => {
            "install the `iptables` package: apt-get install iptables".to_string()
        }
        Backend::Legacy if id == "fedora" => {
            "install the `iptables-legacy` package: dnf install iptables-legacy".to_string()
        }
        Backend::Legacy if is("rhel") || is("centos") || is("fedora") => {
            "this RHEL-family host has no iptables-legacy (RHEL 9 and its rebuilds ship only \
             iptables-nft): run `iptables-docker --backend nft install` instead (README.md \
             explains the trade-off), or install an iptables-legacy package if your \
             repositories have one"
                .to_string()
        }
        Backend::Nft if is("rhel") || is("centos") || is("fedora") => {
            "install the `iptables-nft` package: dnf install iptables-nft".to_string()
        }
        _ => format!(
            "install your distribution's package with the iptables-{0}, iptables-{0}-save and \
             iptables-{0}-restore commands (and their ip6tables twins)",
            backend.name()
        ),
    }
}

pub fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "iptables - auto mode
  link best version is /usr/sbin/iptables-nft
  link currently points to /usr/sbin/iptables-nft
  link iptables is /usr/sbin/iptables
  slave iptables-restore is /usr/sbin/iptables-restore
/usr/sbin/iptables-legacy - priority 10
  slave iptables-restore: /usr/sbin/iptables-legacy-restore
/usr/sbin/iptables-nft - priority 20
  slave iptables-restore: /usr/sbin/iptables-nft-restore
";

    const RHEL: &str = "iptables - status is manual.
 link currently points to /usr/sbin/iptables-legacy
/usr/sbin/iptables-legacy - priority 10
 slave ip6tables: /usr/sbin/ip6tables-legacy
/usr/sbin/iptables-nft - priority 10
 slave ip6tables: /usr/sbin/ip6tables-nft
Current `best' version is /usr/sbin/iptables-nft.
";

    #[test]
    fn parses_both_alternatives_tools() {
        let deb = parse_alternative(DEBIAN).unwrap();
        assert!(deb.auto);
        assert_eq!(deb.current.as_deref(), Some("/usr/sbin/iptables-nft"));
        assert_eq!(
            deb.choice_for("iptables", Backend::Legacy),
            Some("/usr/sbin/iptables-legacy")
        );
        let rhel = parse_alternative(RHEL).unwrap();
        assert!(!rhel.auto);
        assert_eq!(rhel.current.as_deref(), Some("/usr/sbin/iptables-legacy"));
        assert_eq!(
            rhel.choice_for("iptables", Backend::Nft),
            Some("/usr/sbin/iptables-nft")
        );
        assert_eq!(rhel.choice_for("ip6tables", Backend::Nft), None);
        assert_eq!(
            parse_alternative("update-alternatives: error: no alternatives for x"),
            None
        );
    }

    #[test]
    fn parses_unit_state_and_iptables_version() {
        let s = parse_unit_state("LoadState=masked\nActiveState=inactive\nUnitFileState=masked\n");
        assert!(s.exists() && s.masked() && !s.active() && !s.enabled());
        let s = parse_unit_state("LoadState=not-found\nActiveState=inactive\nUnitFileState=\n");
        assert!(!s.exists());
        assert_eq!(
            parse_version_backend("iptables v1.8.9 (nf_tables)\n"),
            Some(Backend::Nft)
        );
        assert_eq!(
            parse_version_backend("iptables v1.8.9 (legacy)\n"),
            Some(Backend::Legacy)
        );
        assert!(parse_ufw_enabled("# c\nENABLED=yes\nLOGLEVEL=low\n"));
        assert!(!parse_ufw_enabled("ENABLED=no\n"));
    }

    #[test]
    fn package_hints_name_the_distribution_package() {
        let debian = "ID=debian\n";
        let ubuntu = "ID=ubuntu\nID_LIKE=debian\n";
        let rocky = "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n";
        assert!(package_hint(debian, Backend::Legacy).contains("apt-get install iptables"));
        assert!(package_hint(ubuntu, Backend::Legacy).contains("apt-get install iptables"));
        assert!(
            package_hint("ID=fedora\n", Backend::Legacy).contains("dnf install iptables-legacy")
        );
        assert!(package_hint(rocky, Backend::Legacy).contains("--backend nft"));
        assert!(package_hint(rocky, Backend::Nft).contains("dnf install iptables-nft"));
        assert!(package_hint("ID=arch\n", Backend::Legacy).contains("iptables-legacy-save"));
    }
}
