//! Where in a file a problem is, shown the way sudo-rs (and rustc) show it: the location
//! as `file:line:col`, then the offending line, then a caret under the column.
//!
//! ```text
//! /etc/iptables-docker/config.toml:3:8: bad port 'x' (expected 80, "80" or "8000-8100")
//!     port = "x"
//!            ^
//! ```

#![forbid(unsafe_code)]

use std::fmt::Display;

/// 1-based line and column (in characters) of a byte offset into `text`; an offset past
/// the end, or inside a character, counts from the character before it.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The 1-based line `line` of `text`, without its line end.
fn line_text(text: &str, line: usize) -> &str {
    let line = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    line.trim_end_matches('\r')
}

/// A character as shown: control characters (but tab) escaped, so that a hostile file
/// cannot send escape sequences to the terminal.
fn shown_char(c: char) -> String {
    match c {
        '\t' => "\t".to_string(),
        c if c.is_control() => c.escape_default().to_string(),
        c => c.to_string(),
    }
}

/// `file:line:col: message`, the line, and a caret under `col` (tabs kept, so that the
/// caret lines up however wide the terminal shows them).
pub fn at_column(file: &str, text: &str, line: usize, col: usize, message: impl Display) -> String {
    let chars: Vec<String> = line_text(text, line).chars().map(shown_char).collect();
    let pad: String = chars
        .iter()
        .take(col.saturating_sub(1))
        .map(|c| {
            if c == "\t" {
                c.clone()
            } else {
                " ".repeat(c.chars().count())
            }
        })
        .collect();
    format!(
        "{file}:{line}:{col}: {message}\n    {}\n    {pad}^",
        chars.concat()
    )
}

/// [`at_column`] for a byte offset into `text`.
pub fn at_offset(file: &str, text: &str, offset: usize, message: impl Display) -> String {
    let (line, col) = line_col(text, offset);
    at_column(file, text, line, col, message)
}

/// `file:line: message` and the line, when only the line is known.
pub fn at_line(file: &str, text: &str, line: usize, message: impl Display) -> String {
    let shown: String = line_text(text, line).chars().map(shown_char).collect();
    format!("{file}:{line}: {message}\n    {shown}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_line_with_a_caret_under_the_column() {
        let text = "a = 1\n[ssh]\nport = \"x\"\n";
        let offset = text.find("\"x\"").unwrap();
        assert_eq!(line_col(text, offset), (3, 8));
        assert_eq!(
            at_offset("c.toml", text, offset, "bad port"),
            "c.toml:3:8: bad port\n    port = \"x\"\n           ^"
        );
        assert_eq!(at_line("t.j2", text, 2, "oops"), "t.j2:2: oops\n    [ssh]");
    }

    #[test]
    fn columns_count_characters_and_keep_tabs() {
        let text = "é\tx = ü";
        let offset = text.find('ü').unwrap();
        assert_eq!(line_col(text, offset), (1, 7));
        assert_eq!(
            at_offset("f", text, offset, "m"),
            "f:1:7: m\n    é\tx = ü\n     \t    ^"
        );
        assert_eq!(line_col(text, offset + 1), (1, 7), "inside a character");
        assert_eq!(line_col("ab", 99), (1, 3), "past the end");
        assert_eq!(
            at_column("f", "a\u{1b}[2Jb = x", 1, 8, "m"),
            "f:1:8: m\n    a\\u{1b}[2Jb = x\n                ^"
        );
    }
}
