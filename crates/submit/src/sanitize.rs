//! The one sanitiser for untrusted text on its way to a reader: terminal
//! tables, syslog lines, report mails, and the replies of the `-bs` SMTP
//! server.
//!
//! Untrusted text — addresses, subjects, script paths and directories,
//! notes, actors, smarthost answers quoting them — may hold characters that
//! change what a reader sees rather than show what is there:
//! - control characters (C0, DEL, C1): a line break splits one log event in
//!   two, an escape sequence rewrites an admin's terminal;
//! - bidirectional overrides, embeddings, isolates and marks (U+202A–202E,
//!   U+2066–2069, U+200E/200F, U+061C): they reorder what follows, so
//!   `invoice<U+202E>txt.exe` reads as `invoiceexe.txt` (Trojan Source,
//!   CVE-2021-42574);
//! - U+2028/U+2029: line and paragraph separators to many readers;
//! - zero-width and other invisible format characters (U+200B–200D, U+2060
//!   and the invisible operators after it, U+FEFF, U+180E, the interlinear
//!   annotation marks U+FFF9–FFFB, the tag characters U+E0000–E007F): they
//!   hide text, or make two different names look the same.
//!
//! Each such character is replaced by exactly one visible one (`?`, or a
//! space where the protocol wants words), so the reader sees that something
//! was there and where. Nothing else is changed: other non-ASCII text is
//! legitimate (names, subjects in any script). JSON output is not passed
//! through here: serde_json escapes what JSON needs, and the panel shows
//! the exact value (docs/mailq-ctl.md).
//!
//! Values checked on the way in (`--note`, the subject and script stored
//! with a message) use the same rule, so they read the same on the way out.

use std::borrow::Cow;

/// What replaces a character a reader must not get.
const MARK: char = '?';
/// What marks text cut by [`truncate`].
const ELLIPSIS: char = '…';

/// Whether `c` must not reach a reader as it is (see the module doc).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}'                      // Arabic letter mark (bidi)
            | '\u{180E}'                    // Mongolian vowel separator (zero width)
            | '\u{200B}'..='\u{200F}'       // zero width space/non-joiner/joiner, LRM, RLM
            | '\u{2028}'..='\u{202E}'       // line/paragraph separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{206F}'       // word joiner, invisible operators, bidi isolates, deprecated formats
            | '\u{FEFF}'                    // zero width no-break space (BOM)
            | '\u{FFF9}'..='\u{FFFB}'       // interlinear annotation
            | '\u{E0000}'..='\u{E007F}') // tag characters (invisible ASCII)
}

/// `s` with every unsafe character replaced by `with`; borrowed when clean.
pub fn replace(s: &str, with: char) -> Cow<'_, str> {
    if s.chars().any(is_unsafe) {
        s.chars()
            .map(|c| if is_unsafe(c) { with } else { c })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// One line of untrusted text (a log field, a report value): every unsafe
/// character, line breaks and tabs included, becomes `?`.
pub fn line(s: &str) -> Cow<'_, str> {
    replace(s, MARK)
}

/// A table cell or line for a terminal: tabs expanded to four spaces (so
/// folded header lines stay readable), then as [`line`].
pub fn terminal(s: &str) -> String {
    if s.contains('\t') {
        line(&s.replace('\t', "    ")).into_owned()
    } else {
        line(s).into_owned()
    }
}

/// A whole text for a terminal (a message shown by the demo): CRLF and LF
/// stay line breaks and tabs stay, every other unsafe character becomes `?`.
pub fn multiline(s: &str) -> String {
    s.replace("\r\n", "\n")
        .chars()
        .map(|c| {
            if is_unsafe(c) && c != '\n' && c != '\t' {
                MARK
            } else {
                c
            }
        })
        .collect()
}

/// One token of a protocol line (a queue id in an SMTP reply): printable
/// ASCII only, anything else becomes `?`.
pub fn token(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { MARK })
        .collect()
}

/// At most `max` characters of `s`, cut on a character boundary; when
/// something was cut, the last character kept is `…`, so a shortened value
/// never passes for a whole one.
pub fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => s.into(),
        Some(_) if max == 0 => "".into(),
        Some(_) => {
            // `max - 1` characters and the mark: `nth(max)` exists, so
            // `nth(max - 1)` does too.
            let end = s.char_indices().nth(max - 1).map_or(0, |(i, _)| i);
            let mut out = String::with_capacity(end + ELLIPSIS.len_utf8());
            out.push_str(s.get(..end).unwrap_or_default());
            out.push(ELLIPSIS);
            out.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_become_marks() {
        assert_eq!(line("a\r\nb\tc\u{1b}[31m\u{7f}\u{85}"), "a??b?c?[31m??");
        assert_eq!(line("plain ascii"), "plain ascii");
        assert!(matches!(line("café"), Cow::Borrowed(_)));
    }

    #[test]
    fn bidi_line_separators_and_zero_width_become_marks() {
        for c in [
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200E}',
            '\u{200F}',
            '\u{061C}',
            '\u{2028}',
            '\u{2029}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{E0041}',
        ] {
            assert!(is_unsafe(c), "U+{:04X}", c as u32);
            assert_eq!(line(&format!("a{c}b")), "a?b", "U+{:04X}", c as u32);
        }
        // Trojan Source: the override cannot turn the name around.
        assert_eq!(line("invoice\u{202E}txt.exe"), "invoice?txt.exe");
    }

    #[test]
    fn other_text_is_left_alone() {
        for s in [
            "Grüße aus Köln",
            "日本語の件名",
            "שלום",
            "مرحبا",
            "emoji 🎉",
            "a\u{00AD}b",
        ] {
            assert_eq!(line(s), s);
        }
    }

    #[test]
    fn terminal_expands_tabs_and_multiline_keeps_lines() {
        assert_eq!(terminal("Subject:\tx\u{202E}"), "Subject:    x?");
        assert_eq!(multiline("a\r\nb\tc\n\u{1b}d\u{2028}e\r"), "a\nb\tc\n?d?e?");
    }

    #[test]
    fn protocol_replies_and_tokens() {
        assert_eq!(replace("too big\r\nfor us", ' '), "too big  for us");
        assert_eq!(token("id with\r\nspace é"), "id?with??space??");
    }

    #[test]
    fn truncate_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate("abcdef", 10), "abcdef");
        assert_eq!(truncate("abcdef", 6), "abcdef");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcdef", 1), "…");
        assert_eq!(truncate("abcdef", 0), "");
        assert_eq!(truncate("", 0), "");
        // Multi-byte characters are never split.
        assert_eq!(truncate("éééé", 3), "éé…");
        assert_eq!(truncate("日本語の件名", 4), "日本語…");
        assert_eq!(truncate("🎉🎉🎉", 2), "🎉…");
        for n in 0..12 {
            let t = truncate("aé日🎉bç語😀", n);
            assert!(t.chars().count() <= n, "{n}: {t}");
        }
    }
}
