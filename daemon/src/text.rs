//! Text for people: values quoted in messages, cut to a length one log line can hold.
//!
//! A value pivox did not write (a config value, a file's contents, a server's message) can be
//! any length and hold any character. Quoted through [`quote`], it stays on one line and
//! short, so twenty bad values cannot print 200 KB or break a message across lines.

/// How many characters of a value a message quotes: enough to recognise it.
pub const QUOTE_CHARS: usize = 60;

/// `value` in backticks, on one line: control characters escaped (`\n`), and a value longer
/// than `max_chars` cut there, followed by `…` and its full length: `` `abc…` (200000 chars) ``.
pub fn quote(value: &str, max_chars: usize) -> String {
    match cut(value, max_chars) {
        (shown, None) => format!("`{shown}`"),
        (shown, Some(total)) => format!("`{shown}…` ({total} chars)"),
    }
}

/// Like [`quote`] without the backticks: for a whole message that came from elsewhere (a
/// parser's, a library's), or a path.
pub fn shorten(text: &str, max_chars: usize) -> String {
    match cut(text, max_chars) {
        (shown, None) => shown,
        (shown, Some(total)) => format!("{shown}… ({total} chars)"),
    }
}

/// The first `max_chars` characters of `value`, escaped, and the full length if it was cut.
fn cut(value: &str, max_chars: usize) -> (String, Option<usize>) {
    let mut shown = String::new();
    let mut chars = value.chars();
    for c in chars.by_ref().take(max_chars) {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    let rest = chars.count();
    (shown, (rest > 0).then(|| max_chars + rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole() {
        assert_eq!(quote("mqtt", 60), "`mqtt`");
        assert_eq!(quote("", 60), "``");
        assert_eq!(quote("äöü", 3), "`äöü`");
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        let long = "x".repeat(200_000);
        assert_eq!(quote(&long, 5), "`xxxxx…` (200000 chars)");
        assert_eq!(shorten(&long, 3), "xxx… (200000 chars)");
        assert_eq!(quote(&"é".repeat(10), 2), "`éé…` (10 chars)");
    }

    #[test]
    fn control_characters_cannot_break_the_line() {
        assert_eq!(quote("a\nb\tc\u{1b}[31m", 60), "`a\\nb\\tc\\u{1b}[31m`");
        assert!(!shorten("line one\r\nline two", 60).contains(['\n', '\r']));
    }
}
