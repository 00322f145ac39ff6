//! Credentials: a token never reaches a log line, and a token file is read bounded and checked.

use std::fmt;
use std::path::Path;

/// A credential: its `Debug` and `Display` never show it, so it cannot reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

pub fn is_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads a token file: one token, surrounding whitespace ignored; at most
/// [`crate::files::TOKEN_MAX`], and never waiting on a FIFO.
pub fn read_token_file(path: &Path) -> Result<Secret, String> {
    let text =
        crate::files::read_text_bounded(path, crate::files::TOKEN_MAX).map_err(|e| crate::files::in_words(path, &e))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    if !is_token(token) {
        return Err(format!("{} holds characters a token cannot have (spaces, control or non-ASCII)", path.display()));
    }
    Ok(Secret(token.to_string()))
}
