//! Runs `iptables-save` / `iptables-restore` (legacy or nft) for one family.
//! Our children get a private xtables lock file: we hold the real one ourselves.

use std::ffi::OsStr;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::family::Family;
use crate::ruleset::TableName;
use crate::system::lock::ChildLock;
use crate::system::process::{self, LargeOutput};
use crate::system::table_image;

/// Which iptables implementation to drive.
/// In the install record and on the command line: `legacy`, `nft`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Legacy,
    Nft,
}

impl Backend {
    /// The other backend.
    pub fn other(self) -> Backend {
        match self {
            Backend::Legacy => Backend::Nft,
            Backend::Nft => Backend::Legacy,
        }
    }

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
    pub backend: Backend,
    save: PathBuf,
    restore: PathBuf,
    /// `iptables-<backend>` itself (`-S CHAIN`).
    list: PathBuf,
    child_lock: PathBuf,
}

fn find(name: &str, backend: Backend) -> Result<PathBuf> {
    which::which(name).map_err(|_| {
        Error::not_installed(format!("`{name}` was not found in PATH")).hint(backend.package_hint())
    })
}

impl Iptables {
    /// Finds the binaries; `child_lock` is the private lock file our children use.
    pub fn new(family: Family, backend: Backend, child_lock: &ChildLock) -> Result<Self> {
        let base = format!("{}-{}", family.command(), backend.name());
        Ok(Iptables {
            family,
            backend,
            save: find(&format!("{base}-save"), backend)?,
            restore: find(&format!("{base}-restore"), backend)?,
            list: find(&base, backend)?,
            child_lock: child_lock.path().to_path_buf(),
        })
    }

    fn env(&self) -> [(&str, &OsStr); 1] {
        [("XTABLES_LOCKFILE", self.child_lock.as_os_str())]
    }

    /// `iptables-save -c [-t table]`: the text of `table`, or of every table.
    ///
    /// Every table of the legacy backend is saved by a process of its own, all at once,
    /// and the texts are joined in the kernel's order (`/proc/net/ip_tables_names`, the
    /// list `iptables-legacy-save` itself walks): the same text one `iptables-legacy-save`
    /// prints, since it too reads and prints one table after the other (one
    /// `getsockopt` copy each, then every rule formatted), in the time of the largest
    /// table instead of the sum on a host with more than one CPU. Without that list (the
    /// module not loaded), or on nft (one netlink dump), one process saves everything.
    pub fn save(&self, table: Option<TableName>) -> Result<String> {
        let outputs = match (table, self.legacy_tables()) {
            (None, Some(names)) if names.len() > 1 => std::thread::scope(|scope| {
                let saves = (names.iter())
                    .map(|name| scope.spawn(move || self.save_one(Some(name))))
                    .collect::<Vec<_>>();
                (saves.into_iter())
                    .map(|save| save.join().expect("a save does not panic"))
                    .collect::<Result<Vec<_>>>()
            })?,
            (table, _) => vec![self.save_one(table.map(TableName::as_str))?],
        };
        // One buffer of the final size: the texts are not held twice.
        let mut text = Vec::with_capacity(outputs.iter().map(LargeOutput::size).sum());
        for output in outputs {
            output.append_to(&mut text)?;
        }
        String::from_utf8(text)
            .map_err(|_| Error::failed(format!("{} printed invalid UTF-8", self.save.display())))
    }

    /// The tables the kernel has for this family on the legacy backend (`None`: nft, or
    /// the list cannot be read).
    fn legacy_tables(&self) -> Option<Vec<String>> {
        (self.backend == Backend::Legacy)
            .then(|| table_image::names(self.family))
            .flatten()
    }

    /// One `iptables-save -c [-t table]` process.
    fn save_one(&self, table: Option<&str>) -> Result<LargeOutput> {
        let mut args = vec!["-c"];
        if let Some(t) = table {
            args.extend(["-t", t]);
        }
        process::run_large_output(&self.save, &args, &self.env())
    }

    /// The rules of one chain as the kernel holds them (`iptables -t TABLE -S CHAIN`),
    /// spelled as `iptables-save` spells them, without `-A CHAIN`. Reads one chain where
    /// `save` would print the whole table.
    pub fn chain_rules(&self, table: &str, chain: &str) -> Result<Vec<String>> {
        let out = process::run(
            &self.list,
            &["-w", "-t", table, "-S", chain],
            &self.env(),
            None,
        )?;
        let text = String::from_utf8(out)
            .map_err(|_| Error::failed(format!("{} printed invalid UTF-8", self.list.display())))?;
        let prefix = format!("-A {chain}");
        Ok(text
            .lines()
            .filter_map(|line| match line.strip_prefix(&prefix)? {
                "" => Some(""),
                rest => rest.strip_prefix(' '),
            })
            .map(str::to_string)
            .collect())
    }

    /// `iptables-restore -c [--test]`: each table in `text` is replaced atomically.
    pub fn restore(&self, text: &str, test: bool) -> Result<()> {
        let mut args = vec!["-c", "-w"];
        if test {
            args.push("--test");
        }
        process::run(&self.restore, &args, &self.env(), Some(text.as_bytes())).map(drop)
    }

    /// `iptables-restore --noflush`: `text` edits the running tables (see
    /// [`crate::transaction`]); all of it or, if any line fails, none of it.
    pub fn edit(&self, text: &str) -> Result<()> {
        process::run(
            &self.restore,
            &["--noflush", "-w"],
            &self.env(),
            Some(text.as_bytes()),
        )
        .map(drop)
    }
}
