//! The Debian package on a real systemd: packaging/deb.sh builds it (cargo-deb, in its own
//! target directory so as not to wait for this test run's lock), tests/systemd/deb.sh
//! installs, reloads, reinstalls, removes and purges it in a booted Debian 12 (bookworm)
//! and 13 (trixie) under systemd-nspawn (tests/systemd/lib.sh) — never in this machine's
//! own namespaces. One package for both (built here, against this machine's libc: Debian
//! 12's, which 13 runs). See the script's header for what it checks.

mod common;

use std::ffi::OsStr;

use common::systemd::{build_deb, require_systemd, run_systemd_script};

#[test]
#[ignore = "needs root, systemd-nspawn, debootstrap and cargo-deb (cargo test -- --include-ignored)"]
fn the_deb_installs_reloads_removes_and_purges_on_a_booted_debian_12() {
    deb_story("bookworm");
}

#[test]
#[ignore = "needs root, systemd-nspawn, debootstrap and cargo-deb (cargo test -- --include-ignored)"]
fn the_deb_installs_reloads_removes_and_purges_on_a_booted_debian_13() {
    deb_story("trixie");
}

fn deb_story(suite: &str) {
    require_systemd(&format!("systemd_deb ({suite})"), &["cargo-deb"]);
    let deb = build_deb();
    run_systemd_script(
        "deb.sh",
        &[
            ("IPTD_DEB", deb.as_ref()),
            ("IPTD_SUITE", OsStr::new(suite)),
        ],
        &[
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
        ],
    );
}
