//! Files, written so that a crash leaves the old content or the new one, never a mix: a
//! temporary file in the same directory gets its mode before any content, is synced,
//! renamed over the target (tempfile's `persist`), and then the directory is synced so
//! that the rename itself survives a power cut.

use std::fmt::Display;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

fn cannot(what: &str, path: &Path, e: impl Display) -> Error {
    Error::failed(format!("cannot {what} {}: {e}", path.display()))
}

/// Creates `dir` and its missing parents with mode 0700 (root's alone).
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| cannot("create", dir, e))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` with permissions `mode`, atomically; `clobber: false` fails
/// when `path` exists. The parent directory must exist.
fn persist(path: &Path, bytes: &[u8], mode: u32, clobber: bool) -> Result<()> {
    let dir = parent(path);
    let write = |e: std::io::Error| cannot("write", path, e);
    let mut tmp = tempfile::Builder::new()
        .prefix(".iptables-docker-")
        .tempfile_in(dir)
        .map_err(write)?;
    let file = tmp.as_file();
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(write)?;
    tmp.write_all(bytes).map_err(write)?;
    tmp.as_file().sync_all().map_err(write)?;
    let persisted = if clobber {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    persisted.map_err(|e| write(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| cannot("sync", dir, e))
}

/// Replaces `path` with `bytes` (mode `mode`) atomically; creates missing parent
/// directories with mode 0755.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = parent(path);
    std::fs::create_dir_all(dir).map_err(|e| cannot("create", dir, e))?;
    persist(path, bytes, mode, true)
}

/// Replaces `path` with `text` atomically, mode 0600, in a 0700 directory (made if
/// missing): snapshots and records that only root may read.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    ensure_private_dir(parent(path))?;
    persist(path, text.as_bytes(), 0o600, true)
}

/// As [`write_private`], but fails when `path` exists: for what is written once.
pub fn write_private_new(path: &Path, text: &str) -> Result<()> {
    ensure_private_dir(parent(path))?;
    persist(path, text.as_bytes(), 0o600, false)
}

/// The file's bytes, or `None` when it does not exist.
pub fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(cannot("read", path, e)),
    }
}

/// Removes `path`; true when it existed.
pub fn remove_file(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(cannot("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_replace_atomically_with_the_mode_and_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/file");
        write_atomic(&path, b"one", 0o644).unwrap();
        write_atomic(&path, b"two", 0o755).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o755);
        let private = dir.path().join("state/x");
        write_private(&private, "p").unwrap();
        assert_eq!(
            (mode(&private), mode(private.parent().unwrap())),
            (0o600, 0o700)
        );
        assert!(write_private_new(&private, "again").is_err());
        assert_eq!(std::fs::read_to_string(&private).unwrap(), "p");
        let names = |d: &Path| std::fs::read_dir(d).unwrap().count();
        assert_eq!(
            (
                names(path.parent().unwrap()),
                names(private.parent().unwrap())
            ),
            (1, 1)
        );
        assert_eq!(read_if_exists(&dir.path().join("none")).unwrap(), None);
        assert!(remove_file(&private).unwrap() && !remove_file(&private).unwrap());
    }
}
