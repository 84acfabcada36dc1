//! Integration tests: package. The Debian package is tested by installing it:
//! `packaging/test-package.sh` (run as root by .ci/run after `cargo test`) builds the
//! .deb with cargo-deb, runs lintian, installs it next to Postfix, relays a PHP
//! `mail()` through it, reinstalls it with held mail in the queue, removes and purges
//! it. It needs a release build and dpkg, so it is a script rather than a test here;
//! the generated man pages and completions are unit-tested in `src/generate/`.
