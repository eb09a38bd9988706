#!/usr/bin/env bash
# Fetch (once, cached) every crate Cargo.lock names from crates.io, with this machine's
# cargo (`cargo vendor`), so that a container without network can build offline — as a
# host would after `cargo fetch`. The crates are never committed to the repository.
#
# Usage: tests/systemd/vendor.sh    # prints the directory holding vendor/ and config.toml
#
# Environment:
#   IPTD_VENDOR_CACHE   cache directory (default /var/cache/iptables-docker-tests/vendor)
#
# Layout: $IPTD_VENDOR_CACHE/<hash of Cargo.lock>/{vendor/,config.toml}, published by
# rename once complete; config.toml replaces crates.io with the directory next to it
# (copy both into a user's ~/.cargo: cargo resolves the path from ~). Builders serialise on
# $IPTD_VENDOR_CACHE/.lock; entries for other lock files are pruned.
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${IPTD_VENDOR_CACHE:-/var/cache/iptables-docker-tests/vendor}
log() { printf 'vendor.sh: %s\n' "$*" >&2; }

key=$(sha256sum "$repo/Cargo.lock" | cut -c1-16)
mkdir -p "$cache"
final="$cache/$key"
exec 9>"$cache/.lock"
flock 9
if [[ ! -d $final ]]; then
    rm -rf -- "$cache"/.build-*
    build=$(mktemp -d "$cache/.build-$key.XXXXXX")
    trap 'rm -rf -- "$build"' EXIT
    start=$SECONDS
    cargo vendor --locked --quiet --manifest-path "$repo/Cargo.toml" "$build/vendor" > /dev/null
    printf '%s\n' \
        '# Crates from tests/systemd/vendor.sh: no network needed (or used) by cargo.' \
        '[source.crates-io]' 'replace-with = "vendored-sources"' \
        '[source.vendored-sources]' 'directory = ".cargo/vendor"' \
        '[net]' 'offline = true' > "$build/config.toml"
    chmod 755 "$build"
    mv -T -- "$build" "$final"
    trap - EXIT
    log "fetched $(find "$final/vendor" -mindepth 1 -maxdepth 1 | wc -l) crates in $((SECONDS - start))s"
    for d in "$cache"/*; do
        [[ $d == "$final" ]] || rm -rf -- "$d"
    done
fi
printf '%s\n' "$final"
