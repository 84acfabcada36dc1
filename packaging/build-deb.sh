#!/usr/bin/env bash
# Build the scriptmail .deb: release binaries, then the generated assets cargo-deb
# packs (man pages and shell completions from the CLI definition, docs, a Debian
# changelog), then `cargo deb --no-build`. Prints the path of the .deb on its last
# line. Needs cargo-deb (`cargo install cargo-deb --locked`); test-package.sh
# installs it when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target_dir=${CARGO_TARGET_DIR:-target}
assets=target/assets            # cargo-deb reads asset paths relative to the crate
rm -rf "$assets"
mkdir -p "$assets/doc"

# Both packages of the workspace: `scriptmail`, and `sendmail` from crates/submit.
cargo build --release --locked --workspace --bins

"$target_dir/release/scriptmail" generate man "$assets/man" >/dev/null
"$target_dir/release/scriptmail" generate completions "$assets/completions" >/dev/null
# Debian policy: man pages gzipped with -9 and no timestamp (-n: reproducible).
gzip -9n "$assets"/man/*.8

for doc in README.md SECURITY.md; do
    if [ -f "$doc" ]; then
        cp "$doc" "$assets/doc/"
    fi
done

# The Debian changelog: one entry for the version being built, dated by the last
# commit (so the same commit builds the same package).
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
if date_epoch=$(git log -1 --format=%ct 2>/dev/null) && [ -n "$date_epoch" ]; then
    commit=$(git log -1 --format=%h)
else
    date_epoch=${SOURCE_DATE_EPOCH:-$(date +%s)}
    commit=unknown
fi
maintainer=$(sed -n 's/^maintainer = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
cat >"$assets/changelog" <<CHANGELOG
scriptmail ($version-1) unstable; urgency=medium

  * Built from commit $commit. See the git history for the changes.

 -- $maintainer  $(LC_ALL=C date -u -R -d "@$date_epoch")
CHANGELOG
export SOURCE_DATE_EPOCH=$date_epoch

cargo deb --no-build --locked --output "$target_dir/debian/"
ls -t "$target_dir"/debian/scriptmail_"$version"-1_*.deb | head -n1
