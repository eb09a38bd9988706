//! The one way iptables-docker runs another program: arguments as a list (no shell),
//! output captured, and a failure reported as "`program args` failed (exit status: N):
//! what it said" — its stderr, or its stdout when stderr is empty.

use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Runs `program args…` with `env` added and `stdin` fed to it; returns its stdout.
///
/// The input is handed over in an unnamed temporary file, not through a pipe: a program
/// that stops reading early (`iptables-restore` refusing a line of a large ruleset) would
/// otherwise leave our write to a closed pipe, and SIGPIPE, which the CLI keeps at its
/// default ([`crate::system::default_sigpipe`]), would end this process in the middle
/// of a transaction, before it could put anything back. Without a writable temporary
/// directory, through a pipe all the same.
pub fn run(
    program: impl AsRef<OsStr>,
    args: &[&str],
    env: &[(&str, &OsStr)],
    stdin: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let program = Path::new(program.as_ref());
    let mut cmd = command(program, args, env).stdout_capture();
    if let Some(bytes) = stdin {
        cmd = match input_file(bytes) {
            Some(file) => cmd.stdin_file(file),
            None => cmd.stdin_bytes(bytes),
        };
    }
    let out = cmd
        .run()
        .map_err(|e| Error::failed(format!("cannot run `{}`: {e}", program.display())))?;
    checked(program, args, out)
}

/// [`run`] for a program that prints megabytes (`iptables-save` on a host with tens of
/// thousands of Docker rules), without input: its stdout goes to an unnamed temporary
/// file, read once it has exited ([`LargeOutput::append_to`]). Through a pipe it would
/// stop every 64 KiB until we read; measured at 80,000 rules, a save into a file takes
/// 15–20 ms less. Without a writable temporary directory (`$TMPDIR`, else `/tmp`), through
/// a pipe all the same.
pub fn run_large_output(
    program: impl AsRef<OsStr>,
    args: &[&str],
    env: &[(&str, &OsStr)],
) -> Result<LargeOutput> {
    let program = Path::new(program.as_ref());
    let cannot =
        |e: std::io::Error| Error::failed(format!("cannot run `{}`: {e}", program.display()));
    // No writable temporary directory: through a pipe, as `run` does.
    let Ok(mut file) = tempfile::tempfile() else {
        return run(program, args, env, None).map(LargeOutput::Read);
    };
    let out = command(program, args, env)
        .stdout_file(file.try_clone().map_err(cannot)?)
        .run()
        .map_err(cannot)?;
    checked(program, args, out)?;
    file.seek(SeekFrom::Start(0)).map_err(cannot)?;
    Ok(LargeOutput::File(file))
}

/// What [`run_large_output`] captured: in its temporary file, or read already.
#[derive(Debug)]
pub enum LargeOutput {
    File(std::fs::File),
    Read(Vec<u8>),
}

impl LargeOutput {
    /// The size in bytes (0 when the file cannot say).
    pub fn size(&self) -> usize {
        match self {
            LargeOutput::File(file) => file
                .metadata()
                .map_or(0, |m| usize::try_from(m.len()).unwrap_or(0)),
            LargeOutput::Read(bytes) => bytes.len(),
        }
    }

    /// Appends the output to `out`: several outputs go into one buffer without a copy in
    /// between (the save of every table, one process per table).
    pub fn append_to(self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            LargeOutput::File(mut file) => {
                file.read_to_end(out)
                    .map_err(|e| Error::failed(format!("cannot read the saved ruleset: {e}")))?;
            }
            LargeOutput::Read(bytes) => out.extend_from_slice(&bytes),
        }
        Ok(())
    }
}

/// `bytes` in an unnamed temporary file, read from its start; `None` when no temporary
/// file can be written.
fn input_file(bytes: &[u8]) -> Option<std::fs::File> {
    let mut file = tempfile::tempfile().ok()?;
    file.write_all(bytes).ok()?;
    file.seek(SeekFrom::Start(0)).ok()?;
    Some(file)
}

fn command(program: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> duct::Expression {
    // As an OsStr, not a Path: duct runs a relative Path from the current directory
    // instead of looking it up in PATH.
    let mut cmd = duct::cmd(program.as_os_str(), args)
        .stderr_capture()
        .unchecked();
    for (key, value) in env {
        cmd = cmd.env(key, value);
    }
    cmd
}

/// The program's stdout, or what it said when it failed.
fn checked(program: &Path, args: &[&str], out: std::process::Output) -> Result<Vec<u8>> {
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
        let out = run_large_output(
            "sh",
            &["-c", "head -c 300000 /dev/zero; echo \"$X\""],
            &[("X", OsStr::new("x"))],
        );
        let out = out.unwrap();
        assert_eq!(out.size(), 300_002);
        let mut bytes = b"first".to_vec();
        out.append_to(&mut bytes).unwrap();
        assert_eq!(
            (bytes.len(), &bytes[..5], bytes[300_005]),
            (300_007, &b"first"[..], b'x')
        );
        let err = run_large_output("sh", &["-c", "echo oops >&2; exit 3"], &[]).unwrap_err();
        assert!(err.to_string().ends_with("(exit status: 3): oops"), "{err}");
        let err = run("/nonexistent/prog", &[], &[], None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot run `/nonexistent/prog`"),
            "{err}"
        );
    }
}
