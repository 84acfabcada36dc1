//! API tokens (docs/api.md, "Tokens"): what `mailq-ctl api-token
//! add|list|revoke` writes and the API daemon checks.
//!
//! A token is `sm_` and 64 hex digits: 32 bytes from the kernel's random
//! source, shown once when it is made. The tokens file (`[api]
//! tokens_file`, mode 0600, owned by the service user) keeps only its
//! SHA-256, one line per token: `NAME SCOPE SHA256 CREATED`. The secret is
//! 256 random bits, so a plain hash is enough: there is nothing to guess
//! that a slow password hash would protect. A request's token is hashed
//! and looked up by its hash, so no comparison depends on how much of a
//! secret was right.
//!
//! Changes lock the file's directory, then replace the file by a fully
//! written temporary file (root's way, the normal case: `/etc/scriptmail`
//! is root's), or rewrite it in place when the directory is not writable
//! (the service user changing its own file). The daemon re-reads the file
//! whenever it changed, so a revoked token stops working at its next use.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::clock;
use crate::exit::{Exit, Failure};

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every account, and the node.
    Admin,
    /// One account; every other account is "not found" to it.
    Account(String),
}

impl Scope {
    /// `admin` or `account:NAME`.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "admin" => Some(Scope::Admin),
            _ => {
                let name = s.strip_prefix("account:")?;
                is_account_name(name).then(|| Scope::Account(name.to_string()))
            }
        }
    }

    /// Whether a holder of this scope may see `account`.
    pub fn sees(&self, account: &str) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Account(own) => own == account,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::Account(a) => write!(f, "account:{a}"),
        }
    }
}

/// The account names a scope may name: what the control layer accepts.
fn is_account_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@+".contains(&b))
}

/// A token name: short, one word (it goes into the actor of every change).
pub fn is_token_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 48
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// One line of the tokens file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub scope: Scope,
    /// SHA-256 of the secret, lower-case hex.
    pub hash: String,
    /// ms since the epoch.
    pub created: i64,
}

/// Why the tokens file could not be used or changed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {what}")]
    Syntax {
        path: String,
        line: usize,
        what: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("no such token: {0}")]
    NoToken(String),
    #[error("a token named {0} exists: revoke it first")]
    Exists(String),
}

impl Failure for TokenError {
    fn exit_code(&self) -> Exit {
        match self {
            TokenError::Io { .. } => Exit::CantCreat,
            TokenError::Syntax { .. } => Exit::Config,
            TokenError::Usage(_) => Exit::Usage,
            TokenError::NoToken(_) => Exit::NoUser,
            TokenError::Exists(_) => Exit::NoPerm,
        }
    }
}

type Result<T> = std::result::Result<T, TokenError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TokenError + '_ {
    move |source| TokenError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// SHA-256 of a secret, lower-case hex.
pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new secret: `sm_` and 64 hex digits from the kernel's random source.
/// No fallback: without randomness there is no token.
pub fn new_secret() -> std::io::Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(format!(
        "sm_{}",
        b.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

const HEADER: &str = "# scriptmail API tokens (mailq-ctl api-token): NAME SCOPE SHA256 CREATED\n";

/// Parse the tokens file's text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Token>> {
    let mut out: Vec<Token> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| TokenError::Syntax {
            path: path.display().to_string(),
            line: i + 1,
            what: what.to_string(),
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, scope, hash, created] = f.as_slice() else {
            return Err(bad("expected NAME SCOPE SHA256 CREATED"));
        };
        if !is_token_name(name) {
            return Err(bad("bad token name"));
        }
        let scope = Scope::parse(scope).ok_or_else(|| bad("scope is admin or account:NAME"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the hash is 64 hex digits"));
        }
        let created = parse_time(created).ok_or_else(|| bad("bad creation time"))?;
        if out.iter().any(|t| t.name == *name) {
            return Err(bad("a token of this name is listed twice"));
        }
        out.push(Token {
            name: name.to_string(),
            scope,
            hash: hash.to_ascii_lowercase(),
            created,
        });
    }
    Ok(out)
}

/// `2026-11-22T13:53:31Z` → ms.
fn parse_time(s: &str) -> Option<i64> {
    let (day, time) = s.strip_suffix('Z')?.split_once('T')?;
    let day = clock::parse_day(day)?;
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some((day * 86400 + h * 3600 + m * 60 + sec) * 1000)
}

/// The file's text for `tokens`.
pub fn render(tokens: &[Token]) -> String {
    let mut s = HEADER.to_string();
    for t in tokens {
        s.push_str(&format!(
            "{} {} {} {}\n",
            t.name,
            t.scope,
            t.hash,
            clock::format_rfc3339(t.created)
        ));
    }
    s
}

/// Read the tokens file; a missing file has no tokens.
pub fn read(path: &Path) -> Result<Vec<Token>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The tokens file and who must own it.
pub struct TokenFile {
    pub path: PathBuf,
    /// uid and gid the file gets when root writes it (the service user).
    pub owner: Option<(u32, u32)>,
}

impl TokenFile {
    /// Run `change` on the tokens under the directory lock and write the
    /// result; returns what `change` returned.
    fn update<T>(&self, change: impl FnOnce(&mut Vec<Token>) -> Result<T>) -> Result<T> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let lock = std::fs::File::open(&dir).map_err(io_err(&dir))?;
        lock.lock().map_err(io_err(&dir))?;
        let mut tokens = read(&self.path)?;
        let out = change(&mut tokens)?;
        self.write(&dir, &render(&tokens))?;
        Ok(out)
    }

    /// Replace the file by a complete temporary one; where the directory
    /// is not ours to write, rewrite the file (ours) in place.
    fn write(&self, dir: &Path, text: &str) -> Result<()> {
        let tmp = dir.join(format!(".api-tokens.{}.tmp", std::process::id()));
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp);
        let mut f = match created {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&self.path)
                    .map_err(io_err(&self.path))?;
                f.write_all(text.as_bytes()).map_err(io_err(&self.path))?;
                return f.sync_all().map_err(io_err(&self.path));
            }
            Err(e) => return Err(io_err(&tmp)(e)),
        };
        let done = (|| {
            f.write_all(text.as_bytes())?;
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
            }
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done.map_err(io_err(&self.path))
    }

    /// A new token `name` with `scope`: the line written and the secret.
    pub fn add(&self, name: &str, scope: Scope, now: i64) -> Result<(Token, String)> {
        if !is_token_name(name) {
            return Err(TokenError::Usage(format!(
                "{name:?}: a token name is 1 to 48 letters, digits, '.', '_' or '-'"
            )));
        }
        let secret = new_secret().map_err(io_err(Path::new("/dev/urandom")))?;
        let token = Token {
            name: name.to_string(),
            scope,
            hash: hash(&secret),
            created: now - now.rem_euclid(1000),
        };
        self.update(|tokens| {
            if tokens.iter().any(|t| t.name == name) {
                return Err(TokenError::Exists(name.to_string()));
            }
            tokens.push(token.clone());
            Ok(())
        })?;
        Ok((token, secret))
    }

    /// Remove the token `name`; the line removed.
    pub fn revoke(&self, name: &str) -> Result<Token> {
        self.update(|tokens| {
            let i = tokens
                .iter()
                .position(|t| t.name == name)
                .ok_or_else(|| TokenError::NoToken(name.to_string()))?;
            Ok(tokens.remove(i))
        })
    }
}

/// Identity of a file's current version: a change (even a rewrite in
/// place of the same size) changes the inode, size, mtime or ctime.
type Stamp = (u64, u64, u64, i64, i64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

/// The daemon's view of the tokens file, re-read when it changes.
pub struct Tokens {
    path: PathBuf,
    stamp: Option<Stamp>,
    by_hash: HashMap<String, Token>,
    /// Why the last read failed, so it is logged once, not per request.
    pub last_error: Option<String>,
}

impl Tokens {
    pub fn new(path: &Path) -> Tokens {
        Tokens {
            path: path.to_path_buf(),
            stamp: None,
            by_hash: HashMap::new(),
            last_error: None,
        }
    }

    /// Re-read the file if it changed. An unreadable or broken file has
    /// no valid token (fail closed); the error is returned once.
    pub fn refresh(&mut self) -> Option<String> {
        let now = stamp(&self.path);
        if now.is_some() && now == self.stamp {
            return None;
        }
        self.stamp = now;
        match read(&self.path) {
            Ok(list) => {
                self.by_hash = list.into_iter().map(|t| (t.hash.clone(), t)).collect();
                self.last_error = None;
                None
            }
            Err(e) => {
                self.by_hash.clear();
                let msg = e.to_string();
                let fresh = self.last_error.as_deref() != Some(&msg);
                self.last_error = Some(msg.clone());
                fresh.then_some(msg)
            }
        }
    }

    /// The token whose secret this is.
    pub fn find(&self, secret: &str) -> Option<&Token> {
        self.by_hash.get(&hash(secret))
    }

    /// Whether the token with this hash is still in the file.
    pub fn valid(&self, token_hash: &str) -> bool {
        self.by_hash.contains_key(token_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_names() {
        assert_eq!(Scope::parse("admin"), Some(Scope::Admin));
        assert_eq!(
            Scope::parse("account:shop1"),
            Some(Scope::Account("shop1".into()))
        );
        for bad in [
            "",
            "account:",
            "account:a b",
            "root",
            "Admin",
            "account:x/y",
        ] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
        assert!(Scope::Account("a".into()).sees("a"));
        assert!(!Scope::Account("a".into()).sees("b"));
        assert!(Scope::Admin.sees("b"));
        assert!(is_token_name("panel-1.prod_x"));
        assert!(!is_token_name("a b") && !is_token_name("") && !is_token_name(&"x".repeat(49)));
    }

    #[test]
    fn the_file_round_trips_and_bad_lines_name_their_line() {
        let p = Path::new("/etc/x");
        let t = Token {
            name: "panel".into(),
            scope: Scope::Account("shop1".into()),
            hash: hash("sm_secret"),
            created: 1_795_353_858_000,
        };
        let text = render(std::slice::from_ref(&t));
        assert!(text.contains("panel account:shop1 "), "{text}");
        assert!(text.ends_with(" 2026-11-22T13:24:18Z\n"), "{text}");
        assert_eq!(parse(&text, p).unwrap(), vec![t]);
        for (bad, what) in [
            ("a admin abc 2026-11-22T13:24:18Z", "hash"),
            ("a admin", "expected"),
            (
                "a nobody 0000000000000000000000000000000000000000000000000000000000000000 2026-11-22T13:24:18Z",
                "scope",
            ),
            (
                "a admin 0000000000000000000000000000000000000000000000000000000000000000 yesterday",
                "time",
            ),
        ] {
            let e = parse(&format!("# c\n\n{bad}\n"), p)
                .unwrap_err()
                .to_string();
            assert!(e.contains("line 3") && e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn add_and_revoke_keep_only_hashes_and_the_daemon_sees_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = TokenFile {
            path: dir.path().join("api-tokens"),
            owner: None,
        };
        let mut seen = Tokens::new(&f.path);
        assert_eq!(seen.refresh(), None, "a missing file has no tokens");
        let (t, secret) = f.add("panel", Scope::Admin, 1_795_353_858_123).unwrap();
        assert!(secret.starts_with("sm_") && secret.len() == 67, "{secret}");
        assert_eq!(t.created, 1_795_353_858_000);
        let text = std::fs::read_to_string(&f.path).unwrap();
        assert!(!text.contains(&secret) && text.contains(&hash(&secret)));
        let mode = std::fs::metadata(&f.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            f.add("panel", Scope::Admin, 0),
            Err(TokenError::Exists(_))
        ));
        assert!(matches!(
            f.add("a b", Scope::Admin, 0),
            Err(TokenError::Usage(_))
        ));
        seen.refresh();
        assert_eq!(seen.find(&secret).map(|t| t.name.as_str()), Some("panel"));
        assert!(seen.find("sm_wrong").is_none());
        let (_, other) = f.add("shop", Scope::Account("shop1".into()), 0).unwrap();
        assert_eq!(f.revoke("panel").unwrap().name, "panel");
        assert!(matches!(f.revoke("panel"), Err(TokenError::NoToken(_))));
        seen.refresh();
        assert!(seen.find(&secret).is_none(), "revoked");
        assert!(seen.find(&other).is_some());
        // A broken file has no valid token, and says so once.
        std::fs::write(&f.path, "garbage\n").unwrap();
        assert!(seen.refresh().unwrap().contains("line 1"));
        assert!(seen.find(&other).is_none());
        assert_eq!(read(&f.path).unwrap_err().exit_code(), Exit::Config);
    }
}
