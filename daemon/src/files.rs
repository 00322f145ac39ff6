//! Reading a file someone else wrote — the config, a token, a CA certificate, a WAV file —
//! bounded in size and without ever waiting: a FIFO, a device or a directory is refused at
//! once with a message saying what it is, and a file over its limit is refused rather than
//! read until memory runs out (`/dev/zero`).
//!
//! Troubleshooting: "… is a FIFO, not a file" means the path names a named pipe (for example
//! a process substitution); write the contents to an ordinary file and name that.

use std::fs::{FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The config file: a full one is about 5 KB.
pub const CONFIG_MAX: u64 = 1 << 20;
/// A token file: one token (Home Assistant's are about 180 bytes).
pub const TOKEN_MAX: u64 = 16 << 10;
/// `server.ca_file`: a few PEM certificates (a whole system CA bundle is about 220 KB).
pub const CA_FILE_MAX: u64 = 1 << 20;

/// The contents of `path`, if it is a regular file of at most `max_bytes`. An error is one
/// line meant to follow the path and a colon (`pivox.toml: a FIFO, not a file`): `cannot read:
/// …`, `a FIFO, not a file`, `larger than 1 MiB`; see [`in_words`].
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let (file, metadata) = open_regular(path)?;
    let too_large = || format!("larger than {}", size(max_bytes));
    if metadata.len() > max_bytes {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // One byte more than allowed tells a file that grew past the limit from one at it.
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large());
    }
    Ok(bytes)
}

/// `path` opened for reading if it is a regular file, with its metadata; the errors are
/// [`read_bounded`]'s (`a FIFO, not a file`). For a file that is then streamed, not read whole.
pub fn open_regular(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), String> {
    // O_NONBLOCK: opening a FIFO does not wait for a writer (it is refused below, by its
    // type); O_NOCTTY: a terminal named by mistake does not become ours.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let metadata = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("{}, not a file", kind(metadata.file_type())));
    }
    Ok((file, metadata))
}

/// [`read_bounded`] for a text file.
pub fn read_text_bounded(path: &Path, max_bytes: u64) -> Result<String, String> {
    String::from_utf8(read_bounded(path, max_bytes)?)
        .map_err(|e| format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to()))
}

/// `PATH: PROBLEM`, for a [`read_bounded`] error where nothing else names the path.
pub fn in_words(path: &Path, problem: &str) -> String {
    format!("{}: {problem}", path.display())
}

/// Replaces `path` with `text` as one step (written beside it, synced, renamed over it), so
/// that a power cut leaves the old file or the new one, never half of one; `mode` is the new
/// file's permissions. Its folder is created if need be.
pub fn write_atomic(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let partial = path.with_extension("partial");
    let mut out = OpenOptions::new().create(true).truncate(true).write(true).mode(mode).open(&partial)?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&partial, path)
}

/// Checks that `path` can be written, creating it (and its folder) if need be, without
/// waiting on a FIFO; for output that is written later (`pivox demo --out`). The error names
/// the path.
pub fn check_writable(path: &Path) -> Result<(), String> {
    let shown = path.display();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot write {shown}: cannot create {}: {e}", parent.display()))?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot write {shown}: {e}"))?;
    let metadata = file.metadata().map_err(|e| format!("cannot write {shown}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("{shown} is {}, not a file", kind(metadata.file_type())));
    }
    Ok(())
}

/// Checks, creating nothing, that what is at `path` already, if anything, is a regular file
/// that output can replace later (writing to a FIFO would wait for a reader). The error
/// follows the path and a colon, as [`read_bounded`]'s.
pub fn check_output_path(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(metadata) if !metadata.is_file() => Err(format!("{}, not a file", kind(metadata.file_type()))),
        _ => Ok(()),
    }
}

fn kind(file_type: FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// A byte count as people write limits: `16 KiB`, `1 MiB`.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
#[path = "files_tests.rs"]
pub(crate) mod tests;
