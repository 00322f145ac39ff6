//! The public device error: a kind the daemon branches on, and a message for the user.
//!
//! Backends keep their own detailed error types and map them into this one, so the daemon
//! never has to know which backend failed to decide whether to retry.

use std::fmt;

/// What went wrong, coarsely enough to decide what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The named device or file does not exist.
    NotFound,
    /// The device exists but another program holds it.
    Busy,
    /// The device went away while in use (USB unplugged, file ended unexpectedly).
    Disconnected,
    /// The process lacks the rights to open the device.
    PermissionDenied,
    /// The spec asks for something the device cannot do.
    InvalidConfig,
    /// This backend was not compiled into the binary, or does not run on this machine.
    Unsupported,
    /// Any other I/O failure.
    Io,
}

impl ErrorKind {
    /// Whether trying again later can succeed without the user changing anything.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Busy | Self::Disconnected | Self::Io)
    }
}

/// A device error with its [`ErrorKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match e.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::PermissionDenied => ErrorKind::PermissionDenied,
            Io::ResourceBusy => ErrorKind::Busy,
            Io::UnexpectedEof | Io::BrokenPipe => ErrorKind::Disconnected,
            _ => ErrorKind::Io,
        };
        Self::new(kind, e.to_string())
    }
}
