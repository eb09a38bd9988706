//! Refuses files that someone other than root could have written: a config or template
//! that others can change could open the firewall.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};

/// What is wrong with `path`'s ownership or mode, if anything.
fn problem(path: &Path) -> Result<Option<String>> {
    let meta = fs_err::metadata(path).map_err(|e| Error::config(e.to_string()))?;
    let mode = meta.mode() & 0o7777;
    Ok(if meta.uid() != 0 {
        Some(format!("is owned by uid {}, not root", meta.uid()))
    } else if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "group and others",
            (true, false) => "its group",
            _ => "others",
        };
        Some(format!("is writable by {who} (mode {mode:04o})"))
    } else {
        None
    })
}

/// Fails unless `path` and its directory are owned by root and not writable by group or
/// others. `what` names the file in the message ("configuration", "policy template").
pub fn check(path: &Path, what: &str) -> Result<()> {
    let dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new("/").to_path_buf());
    for (target, kind) in [(path, "file"), (dir.as_path(), "directory")] {
        if let Some(why) = problem(target)? {
            let fix = if kind == "file" { "644" } else { "755" };
            return Err(Error::config(format!(
                "refusing the {what} {}: its {kind} {} {why}; whoever can write it can open \
                 the firewall",
                path.display(),
                target.display()
            ))
            .hint(format!(
                "chown root:root {0} && chmod go-w {0} (e.g. chmod {fix} {0}); nothing was applied",
                target.display()
            )));
        }
    }
    Ok(())
}
