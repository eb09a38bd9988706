//! The one way iptables-docker runs another program: arguments as a list (no shell),
//! output captured, and a failure reported as "`program args` failed (exit status: N):
//! what it said" — its stderr, or its stdout when stderr is empty.

use std::ffi::OsStr;
use std::path::Path;

use crate::error::{Error, Result};

/// Runs `program args…` with `env` added and `stdin` fed to it; returns its stdout.
pub fn run(
    program: impl AsRef<OsStr>,
    args: &[&str],
    env: &[(&str, &OsStr)],
    stdin: Option<&[u8]>,
) -> Result<Vec<u8>> {
    // As an OsStr, not a Path: duct runs a relative Path from the current directory
    // instead of looking it up in PATH.
    let program = Path::new(program.as_ref());
    let mut cmd = duct::cmd(program.as_os_str(), args)
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    for (key, value) in env {
        cmd = cmd.env(key, value);
    }
    if let Some(bytes) = stdin {
        cmd = cmd.stdin_bytes(bytes);
    }
    let out = cmd
        .run()
        .map_err(|e| Error::failed(format!("cannot run `{}`: {e}", program.display())))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let said = if stderr.trim().is_empty() {
        stdout.trim()
    } else {
        stderr.trim()
    };
    Err(Error::failed(format!(
        "`{} {}` failed ({}): {said}",
        program.display(),
        args.join(" "),
        out.status
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_stdout_or_says_what_failed() {
        let out = run(
            "sh",
            &["-c", "cat; echo \"$X\""],
            &[("X", OsStr::new("x"))],
            Some(b"in "),
        );
        assert_eq!(out.unwrap(), b"in x\n");
        let err = run("sh", &["-c", "echo oops >&2; exit 3"], &[], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c echo oops >&2; exit 3` failed (exit status: 3): oops"
        );
        let err = run("/nonexistent/prog", &[], &[], None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot run `/nonexistent/prog`"),
            "{err}"
        );
    }
}
