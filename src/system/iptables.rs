//! Runs `iptables-save` / `iptables-restore` (legacy by default) for one family.
//! Our children get a private xtables lock file: we hold the real one ourselves.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::family::Family;

/// Which iptables implementation to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Legacy,
    Nft,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Nft => "nft",
        }
    }

    /// The Debian/Ubuntu and RHEL package that provides the binaries.
    fn package_hint(self) -> &'static str {
        "install the `iptables` package (apt-get install iptables / dnf install iptables-legacy)"
    }
}

/// The save/restore pair of one family and backend.
#[derive(Debug, Clone)]
pub struct Iptables {
    pub family: Family,
    save: PathBuf,
    restore: PathBuf,
    child_lock: PathBuf,
}

fn find(name: &str, backend: Backend) -> Result<PathBuf> {
    which::which(name).map_err(|_| {
        Error::not_installed(format!("`{name}` was not found in PATH")).hint(backend.package_hint())
    })
}

impl Iptables {
    /// Finds the binaries; `child_lock` is the private lock file our children use.
    pub fn new(family: Family, backend: Backend, child_lock: &Path) -> Result<Self> {
        let base = format!("{}-{}", family.command(), backend.name());
        Ok(Iptables {
            family,
            save: find(&format!("{base}-save"), backend)?,
            restore: find(&format!("{base}-restore"), backend)?,
            child_lock: child_lock.to_path_buf(),
        })
    }

    /// `iptables-save -c [-t table]`.
    pub fn save(&self, table: Option<&str>) -> Result<String> {
        let mut args = vec!["-c"];
        if let Some(t) = table {
            args.extend(["-t", t]);
        }
        let out = duct::cmd(&self.save, &args)
            .env("XTABLES_LOCKFILE", &self.child_lock)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| Error::failed(format!("cannot run {}: {e}", self.save.display())))?;
        if !out.status.success() {
            return Err(Error::failed(format!(
                "{} failed: {}",
                self.save.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        String::from_utf8(out.stdout)
            .map_err(|_| Error::failed(format!("{} printed invalid UTF-8", self.save.display())))
    }

    /// `iptables-restore -c [--test]`: each table in `text` is replaced atomically.
    pub fn restore(&self, text: &str, test: bool) -> Result<()> {
        let mut args = vec!["-c", "-w"];
        if test {
            args.push("--test");
        }
        let out = duct::cmd(&self.restore, &args)
            .env("XTABLES_LOCKFILE", &self.child_lock)
            .stdin_bytes(text.as_bytes())
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| Error::failed(format!("cannot run {}: {e}", self.restore.display())))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::failed(format!(
                "{}{} failed: {}",
                self.restore.display(),
                if test { " --test" } else { "" },
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}
