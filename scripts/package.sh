#!/usr/bin/env bash
# Build the Debian package: the release binary, the man pages and shell
# completions it generates from its own commands, then cargo-deb with the
# metadata in Cargo.toml. The Dockerfile runs this same script.
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version > /dev/null 2>&1; then
    echo "cargo-deb is missing: cargo install cargo-deb --locked" >&2
    exit 1
fi
cargo build --release --locked --bin ct-relay
rm -rf target/assets
target/release/ct-relay generate man-pages --out target/assets/man > /dev/null
target/release/ct-relay generate completions --out target/assets/completions > /dev/null
gzip -9n target/assets/man/*.1
cargo deb --no-build --locked --output target/debian/ct-relay.deb > /dev/null
echo target/debian/ct-relay.deb
