#!/usr/bin/env bash
# Builds the Debian package: the release binary, the files generated from it (man page,
# completions) and the packaged unit and config, then `cargo deb --no-build`.
# Prints the path of the .deb. Needs cargo-deb (`cargo install cargo-deb`). Honours
# CARGO_TARGET_DIR (the test suite builds in its own, not to wait for its own lock).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked >&2
target=${CARGO_TARGET_DIR:-target}
# cargo-deb maps target/release/ to CARGO_TARGET_DIR, but not other target/ paths.
out=target/deb-assets
rm -rf "$out" && mkdir -p "$out"
bin=$target/release/iptables-docker
"$bin" man | gzip -9n >"$out/iptables-docker.8.gz"
"$bin" completions bash >"$out/iptables-docker.bash"
"$bin" completions zsh >"$out/_iptables-docker"
"$bin" completions fish >"$out/iptables-docker.fish"
# The unit runs the packaged binary; the config uses the packaged template, as install's.
sed 's|/usr/local/sbin/iptables-docker|/usr/sbin/iptables-docker|g
     s|^# Installed by `iptables-docker install`; removed by `iptables-docker uninstall`|# Installed by the iptables-docker Debian package; removed with it|' \
    systemd/iptables-docker.service >"$out/iptables-docker.service"
grep -q '^ExecStart=/usr/sbin/iptables-docker start$' "$out/iptables-docker.service"
sed 's|^# template = "policy.rules.j2"|template = "policy.rules.j2"|' templates/config.toml >"$out/config.toml"
grep -q '^template = "policy.rules.j2"$' "$out/config.toml"
cargo deb --no-build --locked 2>&1 | tail -n 1 >&2
# The newest package cargo-deb wrote (names are iptables-docker_VERSION_ARCH.deb).
find "$target/debian" -maxdepth 1 -name 'iptables-docker_*.deb' -printf '%T@ %p\n' |
    sort -rn | head -n 1 | cut -d' ' -f2-
