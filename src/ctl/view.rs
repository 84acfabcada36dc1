//! How `mailq-ctl` prints: aligned tables for people, JSON for the panel,
//! and the state colours of the control panel (green sends, red does not).
//!
//! Every untrusted string (addresses, subjects, script names, server
//! answers, notes, actors) goes through [`sanitize::terminal`] before it
//! reaches a terminal — a [`Cell::untrusted`] does that; JSON carries the
//! exact strings, escaped by serde_json.
//!
//! Columns are as wide as their text on a terminal, not as many
//! characters: `unicode-width` counts an East Asian wide character or an
//! emoji as two columns and a combining mark as none (Unicode UAX #11), so
//! a subject in Japanese does not push the columns after it out of line.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;
use unicode_width::UnicodeWidthStr;

use crate::account::State;
use crate::clock;
use crate::control::Time;
use crate::sanitize;

/// Whether to colour the output: stdout is a terminal and `NO_COLOR` is
/// unset or empty (https://no-color.org).
pub fn use_color() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// An age (`3h12m`) from milliseconds.
pub fn age(ms: i64) -> String {
    clock::format_age(ms)
}

/// Print a JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

/// Print text on stdout (a broken pipe, e.g. `| head`, is not an error worth a panic).
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// A colour for a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Green,
    Red,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Green => "\x1b[1;32m",
            Color::Red => "\x1b[1;31m",
        }
    }
}

/// The colour of an account state, as the control panel shows it.
pub fn state_color(s: State) -> Color {
    if s.is_sending() {
        Color::Green
    } else {
        Color::Red
    }
}

/// A table cell with a state name, in its colour.
pub fn state_cell(s: State) -> Cell {
    Cell::colored(s.as_str(), Some(state_color(s)))
}

/// A state name, coloured when `color`.
pub fn paint(s: State, color: bool) -> String {
    if color {
        format!("{}{s}\x1b[0m", state_color(s).code())
    } else {
        s.to_string()
    }
}

/// One table cell: already-safe text and an optional colour.
#[derive(Debug, Clone)]
pub struct Cell {
    text: String,
    color: Option<Color>,
}

impl Cell {
    /// A cell of trusted text (numbers, dates, state names).
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            color: None,
        }
    }

    /// A cell of untrusted text: sanitised for the terminal.
    pub fn untrusted(text: &str) -> Cell {
        Cell::plain(sanitize::terminal(text))
    }

    /// A coloured cell.
    pub fn colored(text: impl Into<String>, color: Option<Color>) -> Cell {
        Cell {
            text: text.into(),
            color,
        }
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::plain(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::plain(s)
    }
}

impl From<Time> for Cell {
    fn from(t: Time) -> Cell {
        Cell::plain(t.to_string())
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Cell {
        Cell::plain(n.to_string())
    }
}

impl From<u64> for Cell {
    fn from(n: u64) -> Cell {
        Cell::plain(n.to_string())
    }
}

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// An aligned table: columns padded to their widest cell, two spaces apart.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    align: Vec<Align>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these column headers (an empty list prints no header line).
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            headers: columns.iter().map(|c| c.0).collect(),
            align: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    /// A two-column `name  value` list without a header.
    pub fn pairs() -> Table {
        Table {
            headers: Vec::new(),
            align: vec![Align::Left, Align::Left],
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, or `empty` when it has no rows.
    pub fn render_or(&self, color: bool, empty: impl FnOnce() -> String) -> String {
        if self.is_empty() {
            empty()
        } else {
            self.render(color)
        }
    }

    /// The table as text, colours only when `color`.
    pub fn render(&self, color: bool) -> String {
        let ncols = self
            .align
            .len()
            .max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut width = vec![0usize; ncols];
        for (i, h) in self.headers.iter().enumerate() {
            width[i] = width[i].max(h.width());
        }
        for row in &self.rows {
            for (i, c) in row.iter().enumerate() {
                width[i] = width[i].max(c.text.width());
            }
        }
        let mut out = String::new();
        if !self.headers.is_empty() {
            let cells: Vec<Cell> = self.headers.iter().map(|h| Cell::plain(*h)).collect();
            self.line(&mut out, &cells, &width, false);
        }
        for row in &self.rows {
            self.line(&mut out, row, &width, color);
        }
        out
    }

    fn line(&self, out: &mut String, cells: &[Cell], width: &[usize], color: bool) {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            let last = i + 1 == cells.len();
            let pad = width[i].saturating_sub(c.text.width());
            let align = self.align.get(i).copied().unwrap_or(Align::Left);
            if i > 0 {
                line.push_str("  ");
            }
            if align == Align::Right {
                line.extend(std::iter::repeat_n(' ', pad));
            }
            match c.color {
                Some(col) if color => {
                    let _ = write!(line, "{}{}\x1b[0m", col.code(), c.text);
                }
                _ => line.push_str(&c.text),
            }
            if align == Align::Left && !last {
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// A horizontal bar of `value` out of `max`, at most `width` characters
/// (the panel's "history of sent mails" graph, drawn in the terminal).
pub fn bar(value: i64, max: i64, width: usize) -> String {
    if value <= 0 || max <= 0 {
        return String::new();
    }
    let n = ((value as f64 / max as f64) * width as f64)
        .round()
        .max(1.0) as usize;
    let glyph = if unicode_terminal() { '█' } else { '#' };
    std::iter::repeat_n(glyph, n.min(width)).collect()
}

/// Whether the locale says the terminal takes UTF-8.
fn unicode_terminal() -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_colours_without_breaking_widths() {
        let mut t = Table::new(&[("NAME", Align::Left), ("N", Align::Right)]);
        t.row(vec![Cell::colored("ok", Some(Color::Green)), 5i64.into()]);
        t.row(vec![Cell::untrusted("evil\x1b[2J"), 12345i64.into()]);
        t.row(vec![Cell::untrusted("a\u{202e}b\tc"), 1i64.into()]);
        let plain = t.render(false);
        assert_eq!(
            plain,
            "NAME          N\nok            5\nevil?[2J  12345\na?b    c      1\n"
        );
        let coloured = t.render(true);
        assert!(
            coloured.contains("\x1b[1;32mok\x1b[0m            5"),
            "{coloured:?}"
        );
        assert!(!coloured.contains("\x1b[2J"));
    }

    /// Wide characters take two columns, combining marks none: the
    /// columns after them stay in line on a terminal.
    #[test]
    fn wide_and_combining_characters_keep_columns_aligned() {
        let mut t = Table::new(&[("SUBJECT", Align::Left), ("N", Align::Right)]);
        t.row(vec![Cell::untrusted("注文確認"), 1i64.into()]);
        t.row(vec![Cell::untrusted("🎉 party"), 22i64.into()]);
        t.row(vec![Cell::untrusted("cafe\u{301}"), 333i64.into()]);
        t.row(vec![Cell::untrusted("plain"), 4i64.into()]);
        let text = t.render(false);
        assert_eq!(
            text,
            "SUBJECT     N\n注文確認    1\n🎉 party   22\ncafe\u{301}      333\nplain       4\n"
        );
        // Every line ends in the same terminal column.
        let widths: Vec<usize> = text.lines().map(UnicodeWidthStr::width).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{widths:?}");
    }

    #[test]
    fn pairs_have_no_header_and_no_trailing_space() {
        let mut t = Table::pairs();
        t.row(vec!["state".into(), "ok".into()]);
        t.row(vec!["report to".into(), "".into()]);
        assert_eq!(t.render(false), "state      ok\nreport to\n");
    }

    #[test]
    fn bars_scale() {
        assert_eq!(bar(0, 10, 40), "");
        assert_eq!(bar(10, 10, 40).chars().count(), 40);
        assert_eq!(bar(1, 1000, 40).chars().count(), 1);
        assert_eq!(bar(5, 10, 40).chars().count(), 20);
    }
}
