//! Support for the real-systemd suites: their prerequisites, the .deb they install, and
//! running one of the tests/systemd scripts (which boot a Debian bookworm under
//! systemd-nspawn, never touching this machine's own namespaces) with its checks named.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn missing_prerequisite(tools: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (systemd-nspawn needs it)".into());
    }
    let base = [
        "systemd-nspawn",
        "debootstrap",
        "nsenter",
        "flock",
        "timeout",
    ];
    base.iter()
        .chain(tools)
        .find(|tool| which::which(tool).is_err())
        .map(|tool| format!("`{tool}` is not installed (bash .ci/run installs it)"))
}

/// Fails the test unless `suite` can run here (root, systemd-nspawn, debootstrap, …, and
/// `tools`). The real-systemd suites are `#[ignore]`d with the reason; run them with
/// `cargo test -- --include-ignored`, where a missing prerequisite is a failure.
pub fn require_systemd(suite: &str, tools: &[&str]) {
    if let Some(reason) = missing_prerequisite(tools) {
        panic!("{suite} cannot run: {reason}; nothing was proven");
    }
}

/// Builds the .deb with packaging/deb.sh (cargo-deb, in its own target directory so as not
/// to wait for this test run's lock), once per test binary; returns its path.
pub fn build_deb() -> String {
    static DEB: OnceLock<String> = OnceLock::new();
    DEB.get_or_init(build_deb_now).clone()
}

fn build_deb_now() -> String {
    let build = Command::new("timeout")
        .args(["1200", "bash"])
        .arg(repo().join("packaging/deb.sh"))
        .env("CARGO_TARGET_DIR", repo().join("target/deb-build"))
        .output()
        .expect("run packaging/deb.sh");
    assert!(
        build.status.success(),
        "packaging/deb.sh failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let deb = String::from_utf8_lossy(&build.stdout).trim().to_string();
    assert!(deb.ends_with(".deb"), "packaging/deb.sh printed {deb:?}");
    deb
}

/// ansible-core from PyPI (`pip install --target`, for CPython `python` — the
/// containers' own: 3.11 on Debian 12, 3.13 on 13), cached in target/ansible-site-PYTHON;
/// made by one test at a time (they share it); returns that directory. Fails the test
/// when `python3 -m pip` does not work here.
pub fn ansible_site(suite: &str, python: &str) -> PathBuf {
    static MAKING: Mutex<()> = Mutex::new(());
    let pip_works = || {
        Command::new("python3")
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        pip_works(),
        "{suite} cannot run: `python3 -m pip` does not work (bash .ci/run installs \
         python3-pip); nothing was proven"
    );
    let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let site = repo().join(format!("target/ansible-site-{python}"));
    if !site.join("ansible").is_dir() {
        let pip = Command::new("timeout")
            .args([
                "600", "python3", "-m", "pip", "install", "--quiet", "--target",
            ])
            .arg(&site)
            .args(["--python-version", python])
            .args([
                "--implementation",
                "cp",
                "--platform",
                "manylinux2014_x86_64",
                "--only-binary=:all:",
                "ansible-core>=2.16,<2.18",
            ])
            .output()
            .expect("run pip");
        assert!(
            pip.status.success(),
            "pip install ansible-core failed:\n{}",
            String::from_utf8_lossy(&pip.stderr)
        );
    }
    site
}

/// Runs tests/systemd/`script` with `env`; it must pass every check it reports and report
/// each of `checks` as passed ([`super::assert_checks_passed`]: a script that stopped
/// checking one fails here). Returns its standard output.
pub fn run_systemd_script(script: &str, env: &[(&str, &OsStr)], checks: &[&str]) -> String {
    // The script's trap powers the containers off and removes their overlays on any exit;
    // timeout's TERM reaches it first. A bound on a hung script, not a speed goal: the
    // rootfs build, when not cached, takes 1-5 min, and fleet.sh ~10 min on a busy
    // 2-core machine.
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=60", "3600", "bash"])
        .arg(repo().join("tests/systemd").join(script))
        .env_remove("SSH_CONNECTION")
        .env_remove("XTABLES_LOCKFILE");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.output().expect("run bash");
    let counts = super::assert_checks_passed(&format!("tests/systemd/{script}"), &out, checks);
    let stdout = super::stdout(&out);
    if let Some(timings) = stdout.lines().find(|l| l.starts_with("# timings")) {
        eprintln!("{timings}");
    }
    eprintln!("tests/systemd/{script}: {counts}");
    stdout
}
