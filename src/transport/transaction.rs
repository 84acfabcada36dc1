//! One SMTP transaction, command by command (RFC 5321 §3.3): MAIL with its
//! parameters, RCPT one by one, DATA, and leaving the session clean after a
//! failure.

use std::time::Instant;

use lettre::Address;
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{
    Extension, MailBodyParameter, MailParameter, RcptParameter,
};

use super::reply::{is_closing, is_connection_failure, outcome_of, server_text};
use super::{Offers, Outgoing, Smarthost, Stage, Whole};
use crate::store::RcptOutcome;

impl Smarthost {
    /// One SMTP transaction.
    pub(super) fn transaction(
        &mut self,
        env: &Outgoing<'_>,
        data: &[u8],
    ) -> Result<Vec<(String, RcptOutcome)>, (Whole, Stage)> {
        if self.live.is_none() {
            self.open().map_err(|w| (w, Stage::Connect))?;
        }
        let wants_dsn = env.dsn_notify.is_some() || env.dsn_ret.is_some() || env.envid.is_some();
        let hello = self.hello.clone();
        let Some(live) = self.live.as_mut() else {
            return Err((Whole::Temporary("no connection".into()), Stage::Connect));
        };
        if wants_dsn && live.dsn.is_none() {
            // A second EHLO is allowed at any time outside a transaction and
            // only resets the (empty) transaction state (RFC 5321 §4.1.4).
            live.dsn = Some(match live.conn.command(Ehlo::new(hello)) {
                Ok(r) => ehlo_offers_dsn(r.message()),
                Err(_) => false,
            });
        }
        let info = live.conn.server_info();
        let offers = Offers {
            eight_bit: info.supports_feature(Extension::EightBitMime),
            smtputf8: info.supports_feature(Extension::SmtpUtfEight),
            dsn: live.dsn == Some(true),
        };
        let needs_utf8 = !env.sender.is_ascii() || env.recipients.iter().any(|r| !r.is_ascii());
        if needs_utf8 && !offers.smtputf8 {
            // RFC 6531 §3.4: without SMTPUTF8 such an envelope cannot be
            // sent at all; retrying will not change that.
            return Err((
                Whole::Permanent(
                    "non-ASCII address but the smarthost does not offer SMTPUTF8".into(),
                ),
                Stage::Later,
            ));
        }

        let mail = match mail_command(env, offers, needs_utf8) {
            Ok(m) => m,
            Err(text) => return Err((Whole::Permanent(text), Stage::Later)),
        };
        if let Err(e) = live.conn.command(mail) {
            let stage = if is_connection_failure(&e) || is_closing(&e) {
                Stage::Stale
            } else {
                Stage::Later
            };
            return Err((self.fail(e), stage));
        }

        // RCPT TO, one by one: a 5xx for one recipient does not lose the others.
        let mut results: Vec<(String, RcptOutcome)> = Vec::with_capacity(env.recipients.len());
        let mut accepted = Vec::new();
        for rcpt in env.recipients {
            let Ok(addr) = rcpt.parse::<Address>() else {
                results.push((
                    rcpt.clone(),
                    RcptOutcome::Failed(format!(
                        "recipient <{}> is not a valid address",
                        crate::sanitize::line(rcpt)
                    )),
                ));
                continue;
            };
            let Some(live) = self.live.as_mut() else {
                return Err((Whole::Temporary("connection lost".into()), Stage::Later));
            };
            match live.conn.command(rcpt_command(addr, env, offers)) {
                Ok(_) => accepted.push(rcpt.clone()),
                Err(e) if is_closing(&e) => return Err((self.fail(e), Stage::Later)),
                // RFC 5321 §4.5.3.1.10: 552 to RCPT means "too many
                // recipients" and the client should treat it as temporary.
                Err(e) if e.status().is_some_and(|c| c.to_string() == "552") => {
                    results.push((rcpt.clone(), RcptOutcome::Deferred(server_text(&e))))
                }
                Err(e) if e.is_permanent() => {
                    results.push((rcpt.clone(), RcptOutcome::Failed(server_text(&e))))
                }
                Err(e) if e.is_transient() => {
                    results.push((rcpt.clone(), RcptOutcome::Deferred(server_text(&e))))
                }
                Err(e) => return Err((self.fail(e), Stage::Later)),
            }
        }
        let Some(live) = self.live.as_mut() else {
            return Err((Whole::Temporary("connection lost".into()), Stage::Later));
        };
        if accepted.is_empty() {
            // End the transaction the server still holds (RFC 5321 §4.1.1.5).
            self.reset();
            return Ok(results);
        }

        // DATA (RFC 5321 §4.1.1.4). A refusal of DATA itself leaves the
        // transaction open on the server: reset it before the next MAIL.
        if let Err(e) = live.conn.command(Data) {
            let o = outcome_of(&e);
            if is_connection_failure(&e) || is_closing(&e) {
                self.live = None;
            } else {
                self.reset();
            }
            results.extend(accepted.into_iter().map(|r| (r, o.clone())));
            return Ok(results);
        }
        // lettre dot-stuffs and appends CRLF.CRLF, whose leading CRLF ends
        // our last line.
        let Some(live) = self.live.as_mut() else {
            return Err((Whole::Temporary("connection lost".into()), Stage::Later));
        };
        match live
            .conn
            .message(data.strip_suffix(b"\r\n").unwrap_or(data))
        {
            Ok(_) => {
                live.last_used = Instant::now();
                results.extend(accepted.into_iter().map(|r| (r, RcptOutcome::Sent)));
            }
            Err(e) => {
                // After the final dot the transaction is over either way
                // (§4.1.1.4); only a lost connection needs a new one.
                if is_connection_failure(&e) || is_closing(&e) {
                    self.live = None;
                } else {
                    live.last_used = Instant::now();
                }
                let o = outcome_of(&e);
                results.extend(accepted.into_iter().map(|r| (r, o.clone())));
            }
        }
        Ok(results)
    }

    /// RSET, dropping the connection if that fails.
    fn reset(&mut self) {
        if let Some(l) = self.live.as_mut() {
            match l.conn.command(Rset) {
                Ok(_) => l.last_used = Instant::now(),
                Err(_) => self.live = None,
            }
        }
    }

    /// Classify a whole-message failure and leave the session clean.
    fn fail(&mut self, e: lettre::transport::smtp::Error) -> Whole {
        if is_connection_failure(&e) || is_closing(&e) {
            self.live = None;
        } else {
            self.reset();
        }
        if e.is_permanent() {
            Whole::Permanent(server_text(&e))
        } else {
            Whole::Temporary(server_text(&e))
        }
    }
}

/// The MAIL FROM command (RFC 5321 §4.1.1.2) with BODY= (RFC 6152),
/// SMTPUTF8 (RFC 6531) and DSN RET=/ENVID= (RFC 3461 §4.3, §4.4) when offered.
fn mail_command(env: &Outgoing<'_>, offers: Offers, utf8: bool) -> Result<Mail, String> {
    let sender = if env.sender.is_empty() {
        None
    } else {
        Some(env.sender.parse::<Address>().map_err(|e| {
            format!(
                "sender <{}> not usable: {e}",
                crate::sanitize::line(env.sender)
            )
        })?)
    };
    let mut params = Vec::new();
    if env.body_8bit && offers.eight_bit {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    if utf8 && offers.smtputf8 {
        params.push(MailParameter::SmtpUtfEight);
    }
    if offers.dsn {
        if let Some(ret) = env.dsn_ret {
            params.push(MailParameter::Other {
                keyword: "RET".into(),
                value: Some(ret.into()),
            });
        }
        if let Some(id) = env.envid {
            // lettre xtext-encodes the value (RFC 3461 §4).
            params.push(MailParameter::Other {
                keyword: "ENVID".into(),
                value: Some(id.into()),
            });
        }
    }
    Ok(Mail::new(sender, params))
}

/// RCPT TO with NOTIFY= (RFC 3461 §4.1) when DSN is offered.
fn rcpt_command(addr: Address, env: &Outgoing<'_>, offers: Offers) -> Rcpt {
    let mut params = Vec::new();
    if let (true, Some(n)) = (offers.dsn, env.dsn_notify) {
        params.push(RcptParameter::Other {
            keyword: "NOTIFY".into(),
            value: Some(n.into()),
        });
    }
    Rcpt::new(addr, params)
}

/// Whether an EHLO reply's lines (after the greeting) include the DSN keyword.
fn ehlo_offers_dsn<'a>(lines: impl Iterator<Item = &'a str>) -> bool {
    lines.skip(1).any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("DSN"))
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::env;
    use super::*;

    #[test]
    fn mail_passes_body_and_dsn_only_when_offered() {
        let r = vec!["a@example.org".to_string()];
        let e = env(&r);
        let none = mail_command(&e, Offers::default(), false).unwrap();
        assert_eq!(none.to_string(), "MAIL FROM:<web1@node1.example.net>\r\n");
        let all = Offers {
            eight_bit: true,
            dsn: true,
            smtputf8: true,
        };
        // ENVID is stored decoded; on the wire it is xtext (RFC 3461 §4).
        assert_eq!(
            mail_command(&e, all, false).unwrap().to_string(),
            "MAIL FROM:<web1@node1.example.net> BODY=8BITMIME RET=HDRS ENVID=id+201+2B2+3D3\r\n"
        );
        let rcpt = rcpt_command("a@example.org".parse().unwrap(), &e, all);
        assert_eq!(
            rcpt.to_string(),
            "RCPT TO:<a@example.org> NOTIFY=SUCCESS,FAILURE\r\n"
        );
        let rcpt = rcpt_command("a@example.org".parse().unwrap(), &e, Offers::default());
        assert_eq!(rcpt.to_string(), "RCPT TO:<a@example.org>\r\n");
    }

    #[test]
    fn null_sender_and_7bit() {
        let r = vec!["a@example.org".to_string()];
        let mut e = env(&r);
        e.sender = "";
        e.body_8bit = false;
        let offers = Offers {
            eight_bit: true,
            dsn: false,
            smtputf8: false,
        };
        assert_eq!(
            mail_command(&e, offers, false).unwrap().to_string(),
            "MAIL FROM:<>\r\n"
        );
    }

    #[test]
    fn bad_sender_is_a_permanent_failure_text() {
        let r = vec!["a@example.org".to_string()];
        let mut e = env(&r);
        e.sender = "no at sign";
        let err = mail_command(&e, Offers::default(), false).unwrap_err();
        assert!(err.contains("not usable"), "{err}");
    }

    #[test]
    fn dsn_keyword_found_case_insensitively_after_greeting() {
        let lines = ["mx.example.org Hello", "PIPELINING", "dsn", "8BITMIME"];
        assert!(ehlo_offers_dsn(lines.into_iter()));
        let lines = ["DSN.example.org greets you", "PIPELINING", "DSNX"];
        assert!(!ehlo_offers_dsn(lines.into_iter()));
    }
}
