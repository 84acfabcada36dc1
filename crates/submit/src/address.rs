//! RFC 5322 address handling: recipient address-lists (To/Cc/Bcc header values and
//! command-line recipients), the `-f`/`-r` sender argument, qualification of bare local
//! parts, and the SMTP envelope-safety check applied before an address reaches the wire.
//!
//! The parser follows Postfix `tok822_parse` semantics where that is harmless (drops
//! comments and display names, takes `;` as a separator, adds a missing comma between
//! two complete addresses) so that scripts written against Postfix's sendmail keep
//! working. Where Postfix would lose an address or make one up from other text, it
//! refuses instead (issue 11): an address where a group or display name goes
//! (`joe@x.org Team: ann@y.org;` dropped joe), words next to each other with no comma
//! that are not all addresses (`John Smith, j@x` made two recipients at the local
//! domain), an RFC 2047 encoded word used as an address (RFC 2047 §5 forbids it). The
//! one exception is an address used as its own display name (`a@x <a@x>`), which PHP
//! scripts write often and which loses nothing.

use std::borrow::Cow;

/// Why an address list could not be parsed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    /// A `"` without its closing `"` (RFC 5322 §3.2.4 quoted-string).
    #[error("unterminated quoted string (missing '\"')")]
    UnterminatedQuote,
    /// A `(` without its closing `)` (RFC 5322 §3.2.2 comment).
    #[error("unterminated comment (missing ')')")]
    UnterminatedComment,
    /// A `[` without its closing `]` (RFC 5322 §3.4.1 domain-literal).
    #[error("unterminated domain literal (missing ']')")]
    UnterminatedDomainLiteral,
    /// A `<` without its closing `>` (RFC 5322 §3.4 angle-addr).
    #[error("unterminated angle bracket (missing '>')")]
    UnterminatedAngle,
    /// A delimiter where none may appear: a stray `>`, `)` or `]`, or `<`/`;` inside `<...>`.
    #[error("unexpected '{0}' in address")]
    Unexpected(char),
    /// Something that is not `local-part [@ domain]` (RFC 5322 §3.4.1 addr-spec).
    #[error("invalid address '{0}'")]
    Invalid(String),
    /// A sender argument that holds no address at all (only comments or an empty group).
    #[error("no address found")]
    Empty,
    /// A sender argument with more than one address: which one was meant is a guess.
    #[error("more than one address")]
    SeveralAddresses,
    /// An address (an `@`) in the display name of a group or of `<...>`: taking it as a
    /// name would drop an address the writer probably meant (a comma is missing).
    #[error("'{0}' before ':' or '<' is not a display name (missing comma?)")]
    NotAPhrase(String),
    /// Words with no comma between them that are not all addresses: taking each as a
    /// recipient would invent addresses from a display name or other text.
    #[error("'{0}' is not an address list (missing comma, or a name without <address>?)")]
    Words(String),
}

/// Parse an RFC 5322 address-list (To/Cc/Bcc header value or a command-line recipient
/// argument) into addr-specs.
///
/// Display names, comments, group names and obsolete source routes are dropped; quoted
/// local parts keep their quotes; bare local parts are returned unqualified (see
/// [`qualify`]); `<>` entries are skipped. Duplicates are kept: the caller dedupes.
pub fn parse_list(input: &str) -> Result<Vec<String>, AddressError> {
    let mut out = parse_entries(input)?;
    // `<>` is the null reverse-path (RFC 5321 §4.1.1.2); it can never be a recipient.
    out.retain(|a| !a.is_empty());
    Ok(out)
}

/// Parse a `-f`/`-r` sender argument: `""` or `"<>"` => `Ok(None)` (null sender);
/// `"a@b"`, `"<a@b>"`, `"Name <a@b>"` => `Ok(Some("a@b"))`. More than one address is an
/// error: Postfix takes the first and warns, but a sender other than the one asked for
/// is worse than none (`-f 'a b@x'` would send as `a@DOMAIN`).
pub fn parse_sender(input: &str) -> Result<Option<String>, AddressError> {
    if input.trim_matches(is_fws_char).is_empty() {
        return Ok(None);
    }
    let mut entries = parse_entries(input)?.into_iter();
    match (entries.next(), entries.next()) {
        (None, _) => Err(AddressError::Empty),
        (Some(_), Some(_)) => Err(AddressError::SeveralAddresses),
        // `<>` parses to an empty entry: the null reverse-path (RFC 5321 §4.1.1.2).
        (Some(a), None) if a.is_empty() => Ok(None),
        (Some(a), None) => Ok(Some(a)),
    }
}

/// Qualify an unqualified address (no `@` outside quotes) with the domain:
/// `"bob"` -> `"bob@dom"`. Qualified or empty addresses, or an empty domain, leave the
/// address unchanged.
pub fn qualify(addr: &str, domain: &str) -> String {
    if addr.is_empty() || domain.is_empty() || has_unquoted_at(addr) {
        return addr.to_string();
    }
    format!("{addr}@{domain}")
}

/// True if the string contains only characters allowed in an SMTP envelope path: no
/// CR/LF/NUL or other control character anywhere, no space outside quotes, no `<` `>`
/// anywhere, balanced quotes, and none of `( ) , ; \` outside quotes. Empty is not safe.
///
/// RFC 5321 §4.1.2 (Dot-string / Quoted-string) allows none of the rejected characters
/// unquoted, and §2.3.8 forbids CR and LF except as the line terminator: one of them in
/// `RCPT TO:<...>` would let a message inject SMTP commands. `<` and `>` are refused even
/// quoted because many servers end the path at the first `>`. Non-ASCII (UTF-8) is
/// allowed: whether it may be sent is the relay's SMTPUTF8 decision (RFC 6531).
pub fn is_safe_envelope(addr: &str) -> bool {
    if addr.is_empty() {
        return false;
    }
    let mut in_quote = false;
    let mut escaped = false;
    for ch in addr.chars() {
        if ch.is_control() || ch == '<' || ch == '>' {
            return false;
        }
        if in_quote {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_quote = false;
            }
        } else {
            match ch {
                '"' => in_quote = true,
                ' ' | '(' | ')' | ',' | ';' | '\\' => return false,
                _ => {}
            }
        }
    }
    !in_quote
}

/// True if `addr` has an `@` outside a quoted local part.
fn has_unquoted_at(addr: &str) -> bool {
    let mut in_quote = false;
    let mut escaped = false;
    for ch in addr.chars() {
        if escaped {
            escaped = false;
        } else if in_quote && ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            in_quote = !in_quote;
        } else if ch == '@' && !in_quote {
            return true;
        }
    }
    false
}

/// Folding white space as seen by the tokenizer. CR and LF count as white space
/// anywhere: unfolding (RFC 5322 §3.2.2) removes CRLF before WSP, and PHP has already
/// replaced every other control character in `To` by a space (research §1.2).
fn is_fws_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Characters that end an atom: RFC 5322 §3.2.3 `specials` (except `\`, which Postfix
/// and we keep as an atom character) plus white space.
fn ends_atom(c: char) -> bool {
    is_fws_char(c)
        || matches!(
            c,
            '(' | ')' | '<' | '>' | '[' | ']' | ':' | ';' | '@' | ',' | '.' | '"'
        )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// atom (RFC 5322 §3.2.3), including RFC 2047 encoded words.
    Atom,
    /// quoted-string, stored with its quotes and escapes, unfolded.
    Quoted,
    /// domain-literal, stored with its brackets, white space removed.
    DomLit,
    /// One of `< > : ; @ , .`.
    Op(char),
}

#[derive(Debug, Clone)]
struct Tok<'a> {
    kind: Kind,
    text: Cow<'a, str>,
}

impl Tok<'_> {
    fn is_word(&self) -> bool {
        matches!(self.kind, Kind::Atom | Kind::Quoted | Kind::DomLit)
    }

    fn is_encoded_word(&self) -> bool {
        self.kind == Kind::Atom && encoded_word_len(&self.text) == Some(self.text.len())
    }
}

/// Split `input` into tokens, dropping white space and comments (RFC 5322 §3.2.2 CFWS).
fn tokenize(input: &str) -> Result<Vec<Tok<'_>>, AddressError> {
    let mut toks = Vec::new();
    let mut it = input.char_indices().peekable();
    while let Some(&(start, c)) = it.peek() {
        match c {
            _ if is_fws_char(c) => {
                it.next();
            }
            '(' => skip_comment(&mut it)?,
            '"' => {
                it.next();
                let mut s = String::from("\"");
                let mut closed = false;
                while let Some((_, ch)) = it.next() {
                    match ch {
                        // Unfolding inside a quoted-string (RFC 5322 §3.2.2, §3.2.4).
                        '\r' | '\n' => {}
                        // quoted-pair (§3.2.1): kept as written, so the local part can be
                        // used verbatim as an RFC 5321 §4.1.2 Quoted-string.
                        '\\' => {
                            s.push('\\');
                            match it.next() {
                                Some((_, e)) => s.push(e),
                                None => return Err(AddressError::UnterminatedQuote),
                            }
                        }
                        '"' => {
                            s.push('"');
                            closed = true;
                            break;
                        }
                        _ => s.push(ch),
                    }
                }
                if !closed {
                    return Err(AddressError::UnterminatedQuote);
                }
                toks.push(Tok {
                    kind: Kind::Quoted,
                    text: Cow::Owned(s),
                });
            }
            '[' => {
                it.next();
                let mut s = String::from("[");
                let mut closed = false;
                while let Some((_, ch)) = it.next() {
                    match ch {
                        // FWS inside a domain-literal (RFC 5322 §3.4.1) carries no meaning
                        // and cannot appear in an RFC 5321 §4.1.3 address literal.
                        _ if is_fws_char(ch) => {}
                        '\\' => {
                            s.push('\\');
                            match it.next() {
                                Some((_, e)) => s.push(e),
                                None => return Err(AddressError::UnterminatedDomainLiteral),
                            }
                        }
                        ']' => {
                            s.push(']');
                            closed = true;
                            break;
                        }
                        _ => s.push(ch),
                    }
                }
                if !closed {
                    return Err(AddressError::UnterminatedDomainLiteral);
                }
                toks.push(Tok {
                    kind: Kind::DomLit,
                    text: Cow::Owned(s),
                });
            }
            ')' | ']' => return Err(AddressError::Unexpected(c)),
            '<' | '>' | ':' | ';' | '@' | ',' | '.' => {
                it.next();
                toks.push(Tok {
                    kind: Kind::Op(c),
                    text: Cow::Borrowed(&input[start..start + 1]),
                });
            }
            _ => {
                // An RFC 2047 encoded word is one atom even if its encoded text holds
                // specials (broken encoders emit `=?UTF-8?Q?Doe,_John?=`); splitting it
                // would turn half a display name into a recipient.
                let word_end = encoded_word_len(&input[start..]).map_or(start, |n| start + n);
                let mut end = start;
                while let Some(&(i, ch)) = it.peek() {
                    if i >= word_end && ends_atom(ch) {
                        break;
                    }
                    end = i + ch.len_utf8();
                    it.next();
                }
                toks.push(Tok {
                    kind: Kind::Atom,
                    text: Cow::Borrowed(&input[start..end]),
                });
            }
        }
    }
    Ok(toks)
}

/// Skip one comment, which may nest and contain quoted-pairs (RFC 5322 §3.2.2).
fn skip_comment(
    it: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<(), AddressError> {
    let mut depth = 0usize;
    while let Some((_, ch)) = it.next() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Ok(());
                }
            }
            // quoted-pair: the next character is literal (at end of input the loop ends
            // and the comment is unterminated).
            '\\' => {
                it.next();
            }
            _ => {}
        }
    }
    Err(AddressError::UnterminatedComment)
}

/// Length in bytes of a well-formed RFC 2047 §2 encoded word at the start of `s`
/// (`=?charset?encoding?encoded-text?=`), if there is one.
///
/// Scans only as far as the word can reach (its characters exclude white space and
/// every character it ends at), so the tokenizer stays linear even when many atoms
/// start with `=?` and none is closed.
fn encoded_word_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if !b.starts_with(b"=?") {
        return None;
    }
    // charset and encoding are RFC 2047 `token`s: no space, controls or especials.
    let token = |c: u8| c.is_ascii_graphic() && !b"()<>@,;:\"/[]?.=".contains(&c);
    let mut i = 2;
    for _ in 0..2 {
        let start = i;
        while b.get(i).is_some_and(|&c| token(c)) {
            i += 1;
        }
        if i == start || b.get(i) != Some(&b'?') {
            return None;
        }
        i += 1;
    }
    // encoded-text: printable ASCII except '?' and space.
    while b.get(i).is_some_and(|&c| c.is_ascii_graphic() && c != b'?') {
        i += 1;
    }
    (b.get(i..i + 2) == Some(b"?=")).then_some(i + 2)
}

/// Parse into addr-specs in order; an empty string stands for `<>`.
fn parse_entries(input: &str) -> Result<Vec<String>, AddressError> {
    let toks = tokenize(input)?;
    let mut out = Vec::new();
    // Tokens since the last separator: an addr-spec list, or the display name of a
    // following angle-addr or group (Postfix treats everything back to the previous
    // `, ; : >` as that phrase).
    let mut pending: Vec<&Tok<'_>> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let tok = &toks[i];
        match tok.kind {
            // `,` separates addresses (§3.4 address-list); `;` ends a group (§3.4 group)
            // and, outside one, is taken as a separator because users write `a@b; c@d`.
            Kind::Op(',') | Kind::Op(';') => flush(&mut pending, &mut out)?,
            // group = display-name ":" [group-list] ";" (§3.4): drop the group name and
            // keep the members; an empty group (`undisclosed-recipients:;`) yields none.
            Kind::Op(':') => {
                if has_at(&pending) {
                    return Err(AddressError::NotAPhrase(join_spaced(&pending)));
                }
                pending.clear();
            }
            // name-addr = [display-name] angle-addr (§3.4): the phrase is dropped.
            Kind::Op('<') => {
                let (addr, close) = parse_angle(&toks, i + 1)?;
                // An address as its own display name is common and loses nothing;
                // any other `@` there is an address that would be dropped.
                if has_at(&pending) && !join(&pending).eq_ignore_ascii_case(&addr) {
                    return Err(AddressError::NotAPhrase(join_spaced(&pending)));
                }
                pending.clear();
                out.push(addr);
                i = close;
            }
            Kind::Op('>') => return Err(AddressError::Unexpected('>')),
            _ => pending.push(tok),
        }
        i += 1;
    }
    flush(&mut pending, &mut out)?;
    Ok(out)
}

/// Parse the inside of `<...>` starting at `toks[from]`; returns the addr-spec (empty for
/// `<>`) and the index of the closing `>`.
fn parse_angle(toks: &[Tok<'_>], from: usize) -> Result<(String, usize), AddressError> {
    let mut inner: Vec<&Tok<'_>> = Vec::new();
    for (j, tok) in toks.iter().enumerate().skip(from) {
        match tok.kind {
            Kind::Op('>') => {
                if inner.is_empty() {
                    return Ok((String::new(), j));
                }
                if inner.iter().any(|t| matches!(t.kind, Kind::Op(','))) {
                    return Err(AddressError::Invalid(join(&inner)));
                }
                let mut addrs = Vec::new();
                split_runs(&inner, &mut addrs)?;
                return match <[String; 1]>::try_from(addrs) {
                    Ok([a]) => Ok((a, j)),
                    Err(_) => Err(AddressError::Invalid(join_spaced(&inner))),
                };
            }
            // obs-angle-addr = [CFWS] "<" obs-route addr-spec ">" (RFC 5322 §4.4):
            // the route `@a,@b:` ends at ':' and is ignored, as RFC 5321 §3.6.1 allows.
            Kind::Op(':') => inner.clear(),
            Kind::Op(c @ ('<' | ';')) => return Err(AddressError::Unexpected(c)),
            _ => inner.push(tok),
        }
    }
    Err(AddressError::UnterminatedAngle)
}

/// Turn the pending tokens into addresses and clear them.
fn flush(pending: &mut Vec<&Tok<'_>>, out: &mut Vec<String>) -> Result<(), AddressError> {
    split_runs(pending, out)?;
    pending.clear();
    Ok(())
}

/// Split tokens into addr-specs wherever a word directly follows a word: no operator
/// joins them, so a comma is missing (Postfix `tok822_parse` "adds missing commas").
/// That is only done when every piece is a complete `local@domain`: otherwise the words
/// are a name or other text, not addresses (module doc). Within a run, white space was
/// already dropped, which accepts the obsolete CFWS around `.` and `@` (RFC 5322 §4.4
/// obs-local-part, obs-domain).
fn split_runs(toks: &[&Tok<'_>], out: &mut Vec<String>) -> Result<(), AddressError> {
    let mut runs = Vec::new();
    let mut start = 0;
    for k in 1..=toks.len() {
        if k == toks.len() || (toks[k].is_word() && toks[k - 1].is_word()) {
            if start < k {
                runs.push(&toks[start..k]);
            }
            start = k;
        }
    }
    if runs.len() > 1 && runs.iter().any(|r| !has_at(r)) {
        return Err(AddressError::Words(join_spaced(toks)));
    }
    for run in runs {
        out.push(build_addr(run)?);
    }
    Ok(())
}

/// Whether the tokens hold an `@` outside quotes and literals.
fn has_at(toks: &[&Tok<'_>]) -> bool {
    toks.iter().any(|t| t.kind == Kind::Op('@'))
}

/// Check a run against addr-spec = local-part "@" domain (RFC 5322 §3.4.1), with a bare
/// local part allowed (the caller qualifies it). Dots are not policed: some real mailbox
/// names have `..`, and the relay will reject what it cannot route.
fn build_addr(run: &[&Tok<'_>]) -> Result<String, AddressError> {
    let at = run.iter().filter(|t| t.kind == Kind::Op('@')).count();
    let split = run
        .iter()
        .position(|t| t.kind == Kind::Op('@'))
        .unwrap_or(run.len());
    let (local, domain) = run.split_at(split);
    // RFC 2047 §5: an encoded word never stands for (part of) an address.
    let local_ok = local
        .iter()
        .any(|t| matches!(t.kind, Kind::Atom | Kind::Quoted))
        && !local.iter().any(|t| t.kind == Kind::DomLit)
        && !run.iter().any(|t| t.is_encoded_word());
    let domain = domain.get(1..).unwrap_or(&[]);
    let domain_ok = at == 0
        || (domain
            .iter()
            .any(|t| matches!(t.kind, Kind::Atom | Kind::DomLit))
            && !domain.iter().any(|t| t.kind == Kind::Quoted));
    if at > 1 || !local_ok || !domain_ok {
        return Err(AddressError::Invalid(join(run)));
    }
    Ok(join(run))
}

fn join(toks: &[&Tok<'_>]) -> String {
    toks.iter().map(|t| t.text.as_ref()).collect()
}

/// Like [`join`] but keeps words apart, for readable error messages.
fn join_spaced(toks: &[&Tok<'_>]) -> String {
    let mut s = String::new();
    for (k, t) in toks.iter().enumerate() {
        if k > 0 && t.is_word() && toks[k - 1].is_word() {
            s.push(' ');
        }
        s.push_str(&t.text);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Vec<String> {
        match parse_list(input) {
            Ok(v) => v,
            Err(e) => panic!("parse_list({input:?}) failed: {e}"),
        }
    }

    fn check(cases: &[(&str, &[&str])]) {
        for (input, want) in cases {
            assert_eq!(ok(input), *want, "input: {input:?}");
        }
    }

    #[test]
    fn plain_and_lists() {
        check(&[
            ("a@b", &["a@b"]),
            ("  a@b  ", &["a@b"]),
            ("a@b.example", &["a@b.example"]),
            ("a@b, c@d", &["a@b", "c@d"]),
            ("a@b,c@d,e@f", &["a@b", "c@d", "e@f"]),
            ("", &[]),
            ("   ", &[]),
        ]);
    }

    #[test]
    fn name_addr() {
        check(&[
            ("Name <a@b>", &["a@b"]),
            ("John Doe <j@x>, Jane <k@y>", &["j@x", "k@y"]),
            ("<a@b>", &["a@b"]),
            ("< a@b >", &["a@b"]),
            ("\"Doe, John\" <j@x>", &["j@x"]),
            ("\"Doe, John\" <j@x>, \"Roe; Ann\" <a@y>", &["j@x", "a@y"]),
            ("\"a \\\" quote, here\" <q@x>", &["q@x"]),
            // RFC 5322 §4.1 obs-phrase allows '.' in a display name.
            ("John Q. Public <jqp@x>", &["jqp@x"]),
            // An address as its own display name (PHP scripts write "$a <$a>").
            ("info@x.com <info@x.com>", &["info@x.com"]),
            ("INFO@x.com <info@X.com>", &["info@X.com"]),
            // `<>` is skipped as a recipient.
            ("<>, a@b", &["a@b"]),
        ]);
    }

    #[test]
    fn comments() {
        check(&[
            ("a@b (Comment, with comma)", &["a@b"]),
            ("(c) a@b", &["a@b"]),
            ("a@b (x), (y) c@d", &["a@b", "c@d"]),
            ("a@b (outer (nested, deep (deeper)) end)", &["a@b"]),
            ("a@b (escaped \\) paren)", &["a@b"]),
            ("Name (c) <a@b> (d)", &["a@b"]),
            ("a(c)@(d)b", &["a@b"]),
        ]);
    }

    #[test]
    fn encoded_words() {
        check(&[
            ("=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <a@b>", &["a@b"]),
            ("=?UTF-8?Q?J=C3=B6rg?= <a@b>, c@d", &["a@b", "c@d"]),
            ("=?iso-8859-1?q?Andr=E9?= Pirard <pirard@x>", &["pirard@x"]),
            // Specials inside encoded text must not split the display name.
            ("=?UTF-8?Q?Doe,_John?= <j@x>", &["j@x"]),
            ("=?UTF-8?Q?a<b>c?= <j@x>", &["j@x"]),
        ]);
    }

    #[test]
    fn groups() {
        check(&[
            ("Friends: a@b, c@d;", &["a@b", "c@d"]),
            ("undisclosed-recipients:;", &[]),
            ("undisclosed-recipients: ;", &[]),
            ("undisclosed-recipients:", &[]),
            (
                "x@y, Friends: a@b, Ann <c@d>;, z@w",
                &["x@y", "a@b", "c@d", "z@w"],
            ),
            ("\"My, Group\": a@b;", &["a@b"]),
            ("A: a@b; B: c@d;", &["a@b", "c@d"]),
            // `;` as a list separator (users type Outlook-style lists).
            ("a@b; c@d", &["a@b", "c@d"]),
        ]);
    }

    #[test]
    fn folding() {
        check(&[
            ("a@b,\r\n c@d", &["a@b", "c@d"]),
            ("a@b,\n\tc@d", &["a@b", "c@d"]),
            ("John\r\n Doe <a@b>", &["a@b"]),
            ("\"Doe,\r\n John\" <j@x>", &["j@x"]),
            ("\"john\r\n doe\"@x", &["\"john doe\"@x"]),
            ("Friends:\r\n a@b,\r\n\tc@d;", &["a@b", "c@d"]),
        ]);
    }

    #[test]
    fn obsolete_forms() {
        check(&[
            ("<@route:a@b>", &["a@b"]),
            ("<@r1,@r2.x:a@b>", &["a@b"]),
            ("Name <@r1, @r2:a@b>", &["a@b"]),
            ("a @ b", &["a@b"]),
            ("john . doe @ x . example", &["john.doe@x.example"]),
            ("Name < a @ b . c >", &["a@b.c"]),
        ]);
    }

    #[test]
    fn quoted_local_parts_and_literals() {
        check(&[
            ("\"john doe\"@x", &["\"john doe\"@x"]),
            ("\"john\"@x", &["\"john\"@x"]),
            ("\"a,b\"@x, c@d", &["\"a,b\"@x", "c@d"]),
            ("\"a\\\"b\"@x", &["\"a\\\"b\"@x"]),
            ("\"a@b\"@x", &["\"a@b\"@x"]),
            ("Name <\"john doe\"@x>", &["\"john doe\"@x"]),
            ("a@[192.0.2.1]", &["a@[192.0.2.1]"]),
            ("a@[ 192.0.2.1 ]", &["a@[192.0.2.1]"]),
            ("a@[IPv6:2001:db8::1]", &["a@[IPv6:2001:db8::1]"]),
            ("Name <a@[192.0.2.1]>", &["a@[192.0.2.1]"]),
        ]);
    }

    #[test]
    fn missing_commas_and_empty_elements() {
        check(&[
            ("a@b c@d", &["a@b", "c@d"]),
            ("A <a@b> B <c@d>", &["a@b", "c@d"]),
            ("<a@b><c@d>", &["a@b", "c@d"]),
            ("<a@b> c@d", &["a@b", "c@d"]),
            ("\"x\"@y z@w", &["\"x\"@y", "z@w"]),
            ("a@b,,c@d", &["a@b", "c@d"]),
            (",a@b,", &["a@b"]),
            (", ,, ", &[]),
        ]);
    }

    #[test]
    fn bare_local_parts_and_utf8() {
        check(&[
            ("bob", &["bob"]),
            ("bob, alice", &["bob", "alice"]),
            ("first.last", &["first.last"]),
            ("José <jose@exämple.com>", &["jose@exämple.com"]),
            ("jösé@例え.jp", &["jösé@例え.jp"]),
            ("Jörg Müller <j@x>", &["j@x"]),
            // Duplicates are the caller's business.
            ("a@b, A@B, a@b", &["a@b", "A@B", "a@b"]),
        ]);
    }

    #[test]
    fn errors() {
        let cases: &[(&str, AddressError)] = &[
            ("\"abc <a@b>", AddressError::UnterminatedQuote),
            ("\"abc\\", AddressError::UnterminatedQuote),
            ("a@b (comment", AddressError::UnterminatedComment),
            ("a@b (outer (inner)", AddressError::UnterminatedComment),
            ("Name <a@b", AddressError::UnterminatedAngle),
            ("<a@b, c@d", AddressError::UnterminatedAngle),
            ("a@[192.0.2.1", AddressError::UnterminatedDomainLiteral),
            ("a@b>", AddressError::Unexpected('>')),
            ("<a@b <c@d>>", AddressError::Unexpected('<')),
            ("<a@b; c@d>", AddressError::Unexpected(';')),
            ("a@b)", AddressError::Unexpected(')')),
            ("a@b]", AddressError::Unexpected(']')),
            ("a@b@c", AddressError::Invalid("a@b@c".into())),
            ("@b", AddressError::Invalid("@b".into())),
            ("a@", AddressError::Invalid("a@".into())),
            ("a@\"b\"", AddressError::Invalid("a@\"b\"".into())),
            ("[1.2.3.4]@b", AddressError::Invalid("[1.2.3.4]@b".into())),
            ("<a@b c@d>", AddressError::Invalid("a@b c@d".into())),
            ("<a@b, c@d>", AddressError::Invalid("a@b,c@d".into())),
            ("Friends: @;", AddressError::Invalid("@".into())),
            // An address where a name goes would be dropped (issue 11).
            (
                "joe@x.org Team: ann@y.org;",
                AddressError::NotAPhrase("joe@x.org Team".into()),
            ),
            ("a@b: c@d;", AddressError::NotAPhrase("a@b".into())),
            (
                "other@x.com <real@y.com>",
                AddressError::NotAPhrase("other@x.com".into()),
            ),
            (
                "joe@x.org Ann <ann@y.org>",
                AddressError::NotAPhrase("joe@x.org Ann".into()),
            ),
            // CR-only line ends, as the header value reaches the parser.
            (
                "b@x.org Subject: cr  body .more",
                AddressError::NotAPhrase("b@x.org Subject".into()),
            ),
            // Words that would each become an address at the local domain.
            ("bob alice", AddressError::Words("bob alice".into())),
            ("John Smith, j@x", AddressError::Words("John Smith".into())),
            ("a@b c", AddressError::Words("a@b c".into())),
            ("\"x\" a@b", AddressError::Words("\"x\" a@b".into())),
            (
                "b@x.org hello world",
                AddressError::Words("b@x.org hello world".into()),
            ),
            // RFC 2047 §5: an encoded word is never an address.
            (
                "=?UTF-8?Q?x?=",
                AddressError::Invalid("=?UTF-8?Q?x?=".into()),
            ),
            (
                "=?UTF-8?Q?x?=@y",
                AddressError::Invalid("=?UTF-8?Q?x?=@y".into()),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_list(input).as_ref(), Err(want), "input: {input:?}");
        }
    }

    /// Parsing is linear: many would-be encoded words (`=?` with no `?=`
    /// after them) must not each scan the rest of the input.
    #[test]
    fn many_unterminated_encoded_words_parse_in_linear_time() {
        let input = format!("{}a@b", "=?x, ".repeat(200_000));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(parse_list(&input).map(|v| v.len()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("parse_list did not finish within 60 s");
        assert_eq!(got, Ok(200_001));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            AddressError::UnterminatedQuote.to_string(),
            "unterminated quoted string (missing '\"')"
        );
        assert_eq!(
            AddressError::UnterminatedAngle.to_string(),
            "unterminated angle bracket (missing '>')"
        );
        assert_eq!(
            AddressError::Unexpected('>').to_string(),
            "unexpected '>' in address"
        );
        assert_eq!(
            AddressError::Invalid("a@".into()).to_string(),
            "invalid address 'a@'"
        );
    }

    #[test]
    fn sender() {
        let cases: &[(&str, Result<Option<&str>, AddressError>)] = &[
            ("", Ok(None)),
            ("  ", Ok(None)),
            ("<>", Ok(None)),
            (" < > ", Ok(None)),
            ("Name <>", Ok(None)),
            ("a@b", Ok(Some("a@b"))),
            ("<a@b>", Ok(Some("a@b"))),
            ("Name <a@b>", Ok(Some("a@b"))),
            ("\"Site, Inc\" <bounce@x.tld>", Ok(Some("bounce@x.tld"))),
            ("a@b, c@d", Err(AddressError::SeveralAddresses)),
            ("a@b c@d", Err(AddressError::SeveralAddresses)),
            ("a b@x.org", Err(AddressError::Words("a b@x.org".into()))),
            (
                "Site a@x.org",
                Err(AddressError::Words("Site a@x.org".into())),
            ),
            (
                "a@x.org <b@x.org>",
                Err(AddressError::NotAPhrase("a@x.org".into())),
            ),
            ("www-data", Ok(Some("www-data"))),
            ("<@r:a@b>", Ok(Some("a@b"))),
            ("(comment only)", Err(AddressError::Empty)),
            ("group:;", Err(AddressError::Empty)),
            ("<a@b", Err(AddressError::UnterminatedAngle)),
            ("\"a", Err(AddressError::UnterminatedQuote)),
        ];
        for (input, want) in cases {
            let want = want.clone().map(|o| o.map(str::to_string));
            assert_eq!(parse_sender(input), want, "input: {input:?}");
        }
    }

    #[test]
    fn qualify_cases() {
        let cases = [
            ("bob", "example.com", "bob@example.com"),
            ("bob@x", "example.com", "bob@x"),
            ("\"a@b\"", "example.com", "\"a@b\"@example.com"),
            ("\"a\\\"@b\"", "example.com", "\"a\\\"@b\"@example.com"),
            ("\"a@b\"@x", "example.com", "\"a@b\"@x"),
            ("a@[192.0.2.1]", "example.com", "a@[192.0.2.1]"),
            ("", "example.com", ""),
            ("bob", "", "bob"),
        ];
        for (addr, dom, want) in cases {
            assert_eq!(qualify(addr, dom), want, "qualify({addr:?}, {dom:?})");
        }
    }

    #[test]
    fn safe_envelope() {
        let cases = [
            ("a@b", true),
            ("first.last+tag@example.com", true),
            ("\"john doe\"@x", true),
            ("\"a\\\"b\"@x", true),
            ("\"a,b;c\"@x", true),
            ("a@[192.0.2.1]", true),
            ("a@[IPv6:2001:db8::1]", true),
            ("jösé@例え.jp", true),
            ("bob", true),
            ("", false),
            ("a b@x", false),
            ("a@b\r\nRCPT TO:<evil@x>", false),
            ("a@b\n", false),
            ("a@b\r", false),
            ("a\0@b", false),
            ("a\t@b", false),
            ("\"a\tb\"@x", false),
            ("a\u{7f}@b", false),
            ("a\u{85}@b", false),
            ("a>@b", false),
            ("<a@b>", false),
            ("\"a>b\"@x", false),
            ("\"unterminated@x", false),
            ("a,b@x", false),
            ("a;b@x", false),
            ("a(b)@x", false),
            ("a\\b@x", false),
        ];
        for (addr, want) in cases {
            assert_eq!(is_safe_envelope(addr), want, "is_safe_envelope({addr:?})");
        }
    }

    #[test]
    fn parsed_addresses_are_envelope_safe() {
        // Whatever the parser accepts from typical hostile input must either fail or be
        // checked: these all come out safe.
        for input in [
            "Name <a@b>, \"x, y\" <c@d> (comment)",
            "a@b,\r\n c@d",
            "=?UTF-8?Q?Doe,_John?= <j@x>",
        ] {
            for a in ok(input) {
                assert!(is_safe_envelope(&a), "{a:?} from {input:?}");
            }
        }
    }
}
