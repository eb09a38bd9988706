//! The Debian package on a real systemd: packaging/deb.sh builds it (cargo-deb, in its own
//! target directory so as not to wait for this test run's lock), tests/systemd/deb.sh
//! installs, reloads, reinstalls, removes and purges it in a booted Debian bookworm under
//! systemd-nspawn (tests/systemd/lib.sh) — never in this machine's own namespaces. See the
//! script's header for what it checks.

use std::path::PathBuf;
use std::process::Command;

fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (systemd-nspawn needs it)".into());
    }
    for tool in [
        "systemd-nspawn",
        "debootstrap",
        "nsenter",
        "flock",
        "timeout",
        "cargo-deb",
    ] {
        if which::which(tool).is_err() {
            return Some(format!(
                "`{tool}` is not installed (bash .ci/run installs debootstrap, systemd-container and cargo-deb)"
            ));
        }
    }
    None
}

/// In CI (CI set) a missing prerequisite fails; elsewhere the test is skipped loudly.
fn ready() -> bool {
    match missing_prerequisite() {
        None => true,
        Some(reason) if std::env::var_os("CI").is_some() => {
            panic!("systemd_deb: CI must run the Debian package test, but {reason}")
        }
        Some(reason) => {
            eprintln!("\n!!!!! SKIPPED systemd_deb: {reason}. Nothing was proven. !!!!!\n");
            false
        }
    }
}

#[test]
fn the_deb_installs_reloads_removes_and_purges_on_a_booted_debian() {
    if !ready() {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let build = Command::new("timeout")
        .args(["600", "bash"])
        .arg(root.join("packaging/deb.sh"))
        .env("CARGO_TARGET_DIR", root.join("target/deb-build"))
        .output()
        .expect("run packaging/deb.sh");
    assert!(
        build.status.success(),
        "packaging/deb.sh failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let deb = String::from_utf8_lossy(&build.stdout).trim().to_string();
    assert!(deb.ends_with(".deb"), "packaging/deb.sh printed {deb:?}");

    let out = Command::new("timeout")
        .args(["--kill-after=60", "900", "bash"])
        .arg(root.join("tests/systemd/deb.sh"))
        .env("IPTD_DEB", &deb)
        .env_remove("SSH_CONNECTION")
        .env_remove("XTABLES_LOCKFILE")
        .output()
        .expect("run tests/systemd/deb.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && stdout.contains("# all passed"),
        "tests/systemd/deb.sh failed ({}):\n{report}",
        out.status
    );
    assert!(!stdout.contains("FAIL"), "{report}");
    for check in [
        "ufw active before the package",
        "dpkg -i: postinst runs install --packaged",
        "ufw inactive",
        "iptables -> legacy",
        "iptables-docker.service enabled and active",
        "host policy in the kernel: INPUT DROP",
        "config and template are conffiles",
        "man page installed",
        "bash completion installed and loads",
        "journal: what was kept and removed",
        "journal: how long it took",
        "systemctl reload",
        "  the edited config is in the kernel",
        "  the edited conffile kept",
        "apt-get remove: prerm runs uninstall",
        "alternatives and ufw exactly as before the package",
        "ufw active and enabled again",
        "Docker's rules back in nft exactly as before",
        "config kept",
        "apt-get purge",
        "host exactly as at the start (rules, alternatives, ufw, files)",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("ok   - ") && l[7..].starts_with(check)),
            "no passing check `{check}`:\n{report}"
        );
    }
}
