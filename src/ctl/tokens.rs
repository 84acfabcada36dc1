//! `mailq-ctl api-token add|list|revoke`: the panel API's tokens
//! (docs/api.md, "Tokens"). The tokens file lives outside the queue
//! (`[api] tokens_file`, in root's /etc/scriptmail by default), so these
//! verbs do not switch to the queue owner: run as root they write the file
//! as root and give it to the queue's owner (mode 0600); run as the queue
//! owner they rewrite the file it owns. Anyone else gets 77, as for every
//! other verb. `add` prints the token once, alone on its last line.

use std::os::unix::fs::MetadataExt;

use serde::Serialize;

use super::view::{Align, Cell, Table};
use super::{Out, Result, TokenVerb};
use crate::api::tokens::{self, Scope, Token, TokenFile};
use crate::config::Config;
use crate::control::Time;
use crate::log::{self, Level};
use crate::os;
use crate::privilege::PrivilegeError;
use crate::{clock, sanitize};

/// A token as listed: never its secret.
#[derive(Debug, Serialize)]
struct TokenDoc {
    name: String,
    scope: String,
    created: Time,
}

impl From<&Token> for TokenDoc {
    fn from(t: &Token) -> TokenDoc {
        TokenDoc {
            name: t.name.clone(),
            scope: t.scope.to_string(),
            created: Time(t.created),
        }
    }
}

/// `api-token add`: the token, this once.
#[derive(Debug, Serialize)]
struct AddedDoc {
    #[serde(flatten)]
    token: TokenDoc,
    secret: String,
}

/// `api-token list`.
#[derive(Debug, Serialize)]
struct ListDoc {
    tokens: Vec<TokenDoc>,
}

/// `api-token revoke`.
#[derive(Debug, Serialize)]
struct RevokedDoc {
    #[serde(flatten)]
    token: TokenDoc,
    revoked: bool,
}

/// Root or the queue's owner may; the owner the file must have.
fn file_owner(cfg: &Config) -> std::result::Result<(u32, u32), PrivilegeError> {
    let dir = &cfg.queue_dir;
    let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PrivilegeError::NoDir {
            dir: dir.display().to_string(),
        },
        _ => PrivilegeError::Dir {
            dir: dir.display().to_string(),
            source: e,
        },
    })?;
    let me = os::effective_uid();
    if me != 0 && me != meta.uid() {
        return Err(PrivilegeError::NotAllowed {
            owner: os::user_by_uid(meta.uid())
                .map_or_else(|| format!("uid {}", meta.uid()), |u| u.name),
            dir: dir.display().to_string(),
        });
    }
    Ok((meta.uid(), meta.gid()))
}

pub(super) fn run(verb: &TokenVerb, cfg: &Config, actor: &str, out: Out) -> Result<()> {
    let owner = file_owner(cfg)?;
    let file = TokenFile {
        path: cfg.api.tokens_file.clone(),
        owner: (os::effective_uid() == 0).then_some(owner),
    };
    match verb {
        TokenVerb::Add { name, scope } => {
            let (t, secret) = file.add(name, scope.clone(), clock::now_ms())?;
            log::log(
                Level::Info,
                &format!(
                    "api token added name={} scope={} actor={}",
                    log::quote(&t.name),
                    log::quote(&t.scope.to_string()),
                    log::quote(actor)
                ),
            );
            let doc = AddedDoc {
                token: TokenDoc::from(&t),
                secret: secret.clone(),
            };
            out.print(&doc, || {
                format!(
                    "token {} ({}) added to {}; it is shown only this once:\n{secret}\n",
                    t.name,
                    t.scope,
                    file.path.display()
                )
            })
        }
        TokenVerb::List => {
            let list = tokens::read(&file.path)?;
            let doc = ListDoc {
                tokens: list.iter().map(TokenDoc::from).collect(),
            };
            out.print(&doc, || {
                let mut t = Table::new(&[
                    ("NAME", Align::Left),
                    ("SCOPE", Align::Left),
                    ("CREATED", Align::Left),
                ]);
                for d in &doc.tokens {
                    t.row(vec![
                        Cell::plain(d.name.clone()),
                        Cell::untrusted(&d.scope),
                        d.created.into(),
                    ]);
                }
                t.render_or(out.color, || "no API tokens\n".to_string())
            })
        }
        TokenVerb::Revoke { name } => {
            let t = file.revoke(name)?;
            log::log(
                Level::Info,
                &format!(
                    "api token revoked name={} actor={}",
                    log::quote(&t.name),
                    log::quote(actor)
                ),
            );
            let doc = RevokedDoc {
                token: TokenDoc::from(&t),
                revoked: true,
            };
            out.print(&doc, || {
                format!(
                    "token {} ({}) revoked; it no longer works\n",
                    sanitize::terminal(&t.name),
                    t.scope
                )
            })
        }
    }
}

/// `--scope`: `admin` or `account:ACCOUNT`.
pub fn parse_scope(s: &str) -> std::result::Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| format!("{s:?} is neither admin nor account:ACCOUNT"))
}
