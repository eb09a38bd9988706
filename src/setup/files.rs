//! What install puts on disk — this binary, the unit, the configuration and the policy
//! template, all embedded in the binary so that it installs from any directory — and the
//! rule for admin edits: a file install wrote before is replaced only while it still holds
//! exactly what install wrote (its [`stable_hash`] is kept in `<state dir>/installed-files`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config;
use crate::error::Result;
use crate::hash::stable_hash;
use crate::policy::BUILTIN_TEMPLATE;
use crate::system::file;
use crate::system::iptables::Backend;

pub const BIN: &str = "/usr/local/sbin/iptables-docker";
pub const UNIT_NAME: &str = "iptables-docker.service";
pub const UNIT: &str = "/etc/systemd/system/iptables-docker.service";
pub const TEMPLATE: &str = "/etc/iptables-docker/policy.rules.j2";
/// The man page and the bash completion, generated from this binary's command line.
pub const MAN: &str = "/usr/local/share/man/man8/iptables-docker.8";
pub const BASH_COMPLETION: &str = "/usr/local/share/bash-completion/completions/iptables-docker";
/// The directories uninstall removes above them once empty (install creates them when
/// missing; /usr/local/share/man is Debian's).
pub const DOC_DIRS: [(&str, &str); 2] = [
    (MAN, "/usr/local/share/man/man8"),
    (BASH_COMPLETION, "/usr/local/share/bash-completion"),
];

const UNIT_TEXT: &str = include_str!("../../systemd/iptables-docker.service");
const CONFIG_TEXT: &str = include_str!("../../templates/config.toml");
/// The commented-out line of templates/config.toml that the installed config activates,
/// so that the installed template is the one in use.
const TEMPLATE_LINE: &str = "# template = \"policy.rules.j2\"";

/// One file install owns.
#[derive(Debug, Clone)]
pub struct Asset {
    pub path: PathBuf,
    pub content: Vec<u8>,
    pub mode: u32,
    /// Keep it once edited after install wrote it (else: always replace).
    pub keep_edits: bool,
    /// Keep it when it was there before install (the admin's).
    pub keep_foreign: bool,
}

/// The unit, with `--backend nft` in its commands when installed for nft.
pub fn unit_text(backend: Backend) -> String {
    match backend {
        Backend::Legacy => UNIT_TEXT.to_string(),
        Backend::Nft => UNIT_TEXT.replace(&format!("={BIN} "), &format!("={BIN} --backend nft ")),
    }
}

/// templates/config.toml with `template = "policy.rules.j2"` switched on.
pub fn config_text() -> String {
    CONFIG_TEXT.replacen(TEMPLATE_LINE, &TEMPLATE_LINE[2..], 1)
}

/// Everything install writes, `binary` being this program's own bytes.
pub fn assets(backend: Backend, binary: Vec<u8>) -> Vec<Asset> {
    let asset = |path: &str, content: Vec<u8>, mode, keep_edits, keep_foreign| Asset {
        path: PathBuf::from(path),
        content,
        mode,
        keep_edits,
        keep_foreign,
    };
    vec![
        asset(BIN, binary, 0o755, false, false),
        asset(UNIT, unit_text(backend).into_bytes(), 0o644, true, false),
        asset(
            config::DEFAULT_PATH,
            config_text().into_bytes(),
            0o644,
            true,
            true,
        ),
        asset(
            TEMPLATE,
            BUILTIN_TEMPLATE.as_bytes().to_vec(),
            0o644,
            true,
            true,
        ),
        asset(MAN, crate::commands::docs::man_page(), 0o644, false, false),
        asset(
            BASH_COMPLETION,
            crate::commands::docs::completions(clap_complete::Shell::Bash),
            0o644,
            false,
            false,
        ),
    ]
}

/// The highest directory above `path` that does not exist yet (what writing it creates).
pub fn first_missing_dir(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .take_while(|d| !d.exists())
        .last()
        .map(Path::to_path_buf)
}

/// Removes the empty directories above `path`, up to and including `top`.
pub fn remove_empty_dirs(path: &Path, top: &Path) -> std::io::Result<()> {
    for dir in path.ancestors().skip(1).take_while(|d| d.starts_with(top)) {
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => break,
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Puts a file install wrote back as it was: `before`'s bytes (mode `mode`), or gone;
/// then removes `created_dir` (the highest directory writing it created) once empty.
pub fn put_back(
    path: &Path,
    before: Option<&[u8]>,
    mode: u32,
    created_dir: Option<&Path>,
) -> Result<()> {
    match before {
        Some(bytes) => file::write_atomic(path, bytes, mode)?,
        None => drop(file::remove_file(path)?),
    }
    // Another file of ours in it goes back later in the journal.
    match created_dir {
        Some(dir) => remove_empty_dirs(path, dir).map_err(|e| {
            crate::error::Error::failed(format!("cannot remove {}: {e}", dir.display()))
        }),
        None => Ok(()),
    }
}

/// What to do with one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Replace,
    Unchanged,
    /// Edited by the admin (or theirs from before install): left alone.
    Keep,
}

/// Decides from the file's current bytes and the hash install recorded when it last
/// wrote it.
pub fn decide(asset: &Asset, current: Option<&[u8]>, recorded: Option<u64>) -> Action {
    match (current, recorded) {
        (None, _) => Action::Create,
        (Some(c), _) if c == asset.content.as_slice() => Action::Unchanged,
        (Some(c), Some(h)) if stable_hash(c) == h => Action::Replace,
        (Some(_), Some(_)) if asset.keep_edits => Action::Keep,
        (Some(_), None) if asset.keep_foreign => Action::Keep,
        (Some(_), _) => Action::Replace,
    }
}

/// `<state dir>/installed-files`: "HASH PATH" per line, the files as install last wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest(pub BTreeMap<PathBuf, u64>);

impl Manifest {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("installed-files")
    }

    pub fn parse(text: &str) -> Self {
        Manifest(
            text.lines()
                .filter_map(|l| {
                    let (h, p) = l.split_once(' ')?;
                    Some((PathBuf::from(p), u64::from_str_radix(h, 16).ok()?))
                })
                .collect(),
        )
    }

    pub fn read(state_dir: &Path) -> Self {
        std::fs::read_to_string(Self::path(state_dir))
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    pub fn text(&self) -> String {
        self.0
            .iter()
            .map(|(p, h)| format!("{h:016x} {}\n", p.display()))
            .collect()
    }

    pub fn write(&self, state_dir: &Path) -> Result<()> {
        file::write_private(&Self::path(state_dir), &self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn asset(keep_edits: bool, keep_foreign: bool) -> Asset {
        Asset {
            path: "/x".into(),
            content: b"new".to_vec(),
            mode: 0o644,
            keep_edits,
            keep_foreign,
        }
    }

    #[test]
    fn replaces_only_what_install_wrote_and_nobody_edited() {
        let old = b"old".as_slice();
        let conf = asset(true, true);
        assert_eq!(decide(&conf, None, None), Action::Create);
        assert_eq!(decide(&conf, Some(b"new"), None), Action::Unchanged);
        assert_eq!(
            decide(&conf, Some(old), Some(stable_hash(old))),
            Action::Replace
        );
        assert_eq!(
            decide(&conf, Some(b"edited"), Some(stable_hash(old))),
            Action::Keep
        );
        assert_eq!(decide(&conf, Some(b"admin's"), None), Action::Keep);
        let unit = asset(true, false);
        assert_eq!(
            decide(&unit, Some(b"edited"), Some(stable_hash(old))),
            Action::Keep
        );
        assert_eq!(decide(&unit, Some(b"old tool's"), None), Action::Replace);
        let bin = asset(false, false);
        assert_eq!(
            decide(&bin, Some(b"older build"), Some(stable_hash(old))),
            Action::Replace
        );
    }

    #[test]
    fn the_manifest_round_trips() {
        let mut m = Manifest::default();
        m.0.insert(UNIT.into(), stable_hash(b"unit"));
        m.0.insert(TEMPLATE.into(), 7);
        assert_eq!(Manifest::parse(&m.text()), m);
    }

    #[test]
    fn the_installed_config_uses_the_installed_template_and_the_default_policy() {
        let text = config_text();
        assert_ne!(
            text, CONFIG_TEXT,
            "templates/config.toml lost `{TEMPLATE_LINE}`"
        );
        let path = Path::new(config::DEFAULT_PATH);
        let mut installed = Config::parse(&text, path).unwrap();
        assert_eq!(installed.template.as_deref(), Some(Path::new(TEMPLATE)));
        installed.template = None;
        installed.path = None;
        assert_eq!(installed, Config::builtin());
    }

    #[test]
    fn the_nft_unit_passes_the_backend_to_every_command() {
        let unit = unit_text(Backend::Nft);
        for verb in ["start", "stop", "reload"] {
            assert!(
                unit.contains(&format!("={BIN} --backend nft {verb}\n")),
                "{verb} in:\n{unit}"
            );
        }
        assert!(!unit_text(Backend::Legacy).contains("--backend"));
    }
}
