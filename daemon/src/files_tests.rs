//! Bounded reads: FIFOs, devices and folders are refused at once, large files by size.

use super::*;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pivox-files-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `read` on its own thread; a read that blocks fails the test instead of hanging it.
pub(crate) fn within_5s<T: Send + 'static>(read: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(read()));
    rx.recv_timeout(Duration::from_secs(5)).expect("the read blocked for 5 s")
}

/// Makes a FIFO at `path` (replacing what is there).
pub(crate) fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let _ = std::fs::remove_file(path);
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let fifo = temp_dir("fifo").join("config.toml");
    mkfifo(&fifo);
    let err = within_5s(move || read_bounded(&fifo, CONFIG_MAX)).unwrap_err();
    assert_eq!(err, "a FIFO, not a file");
}

#[test]
fn dev_zero_and_folders_are_refused_by_type() {
    let err = within_5s(|| read_bounded(Path::new("/dev/zero"), CONFIG_MAX)).unwrap_err();
    assert_eq!(in_words(Path::new("/dev/zero"), &err), "/dev/zero: a character device, not a file");
    let dir = temp_dir("folder");
    assert_eq!(read_bounded(&dir, CONFIG_MAX).unwrap_err(), "a directory, not a file");
    let missing = read_bounded(&dir.join("none"), CONFIG_MAX).unwrap_err();
    assert!(missing.starts_with("cannot read: ") && missing.contains("No such file"), "{missing}");
}

#[test]
fn a_file_over_the_limit_is_refused_and_one_at_it_is_read() {
    let dir = temp_dir("size");
    let path = dir.join("token");
    std::fs::write(&path, vec![b'a'; 16 << 10]).unwrap();
    assert_eq!(read_bounded(&path, TOKEN_MAX).unwrap().len(), 16 << 10);
    std::fs::write(&path, vec![b'a'; (16 << 10) + 1]).unwrap();
    assert_eq!(read_bounded(&path, TOKEN_MAX).unwrap_err(), "larger than 16 KiB");
    std::fs::write(&path, [b'a', 0xff, 0xfe]).unwrap();
    assert_eq!(read_text_bounded(&path, TOKEN_MAX).unwrap_err(), "not UTF-8 text (at byte 1)");
}

#[test]
fn writable_checks_create_the_file_and_refuse_what_cannot_be_written() {
    let dir = temp_dir("write");
    let out = dir.join("sub/reply.wav");
    check_writable(&out).unwrap();
    assert!(out.is_file());
    let blocker = dir.join("plain");
    std::fs::write(&blocker, "x").unwrap();
    let err = check_writable(&blocker.join("reply.wav")).unwrap_err();
    assert!(err.starts_with("cannot write") && err.contains("cannot create"), "{err}");
    let fifo = dir.join("fifo.wav");
    mkfifo(&fifo);
    let err = within_5s(move || check_writable(&fifo)).unwrap_err();
    assert!(err.contains("fifo.wav"), "{err}");
}

#[test]
fn output_paths_are_checked_without_creating_anything() {
    let dir = temp_dir("output");
    check_output_path(&dir.join("reply.wav")).unwrap();
    assert!(!dir.join("reply.wav").exists());
    assert_eq!(check_output_path(&dir).unwrap_err(), "a directory, not a file");
    let fifo = dir.join("fifo.wav");
    mkfifo(&fifo);
    assert_eq!(check_output_path(&fifo).unwrap_err(), "a FIFO, not a file");
}

#[test]
fn sizes_read_like_limits() {
    assert_eq!((size(1 << 20), size(16 << 10), size(1000)), ("1 MiB".into(), "16 KiB".into(), "1000 bytes".into()));
}
