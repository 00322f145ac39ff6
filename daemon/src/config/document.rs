//! A config file being checked: where each key is written, and every problem found so far.
//!
//! The file is parsed once. Where each key is written is indexed once (a key's line is then a
//! lookup, not a new parse of the file: with thousands of unknown keys that made checking
//! quadratic), and problems are collected rather than returned at the first, so
//! `pivox check-config` can explain them all.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::raw::RawFile;
use super::{Config, ConfigError, ConfigErrors, Files, Loaded};
use crate::settings::Checker;
use crate::text::shorten;

/// The most problems or unknown keys reported one by one; the rest are counted.
pub const MAX_REPORTED: usize = 20;
/// A message from elsewhere (a parser's) is cut to this; ours are shorter.
const MESSAGE_CHARS: usize = 300;
/// A key as shown: an unknown key can be any length.
const KEY_CHARS: usize = 80;

pub(super) struct Document<'a> {
    file: &'a str,
    base: &'a Path,
    files: Files,
    lines: Lines,
    keys: HashMap<String, KeyAt>,
    problems: RefCell<Vec<ConfigError>>,
    unknown: RefCell<Vec<String>>,
    /// Keys the file's choices leave unused (another server kind's), and why.
    unused: RefCell<Vec<(String, String)>>,
    /// Sections that could not be read: their defaults are not checked as if written.
    unreadable: RefCell<Vec<String>>,
}

#[derive(Clone, Copy)]
struct KeyAt {
    line: usize,
    table: bool,
}

impl<'a> Document<'a> {
    pub(super) fn new(text: &str, file: &'a str, base: &'a Path, files: Files, root: &DeTable<'_>) -> Self {
        let lines = Lines::new(text);
        let mut keys = HashMap::new();
        index(root, "", &lines, &mut keys);
        let (problems, unknown, unused, unreadable) = Default::default();
        Self { file, base, files, lines, keys, problems, unknown, unused, unreadable }
    }

    /// Whether the files the config names should exist on this machine (see [`Files`]).
    pub(super) fn files_are_here(&self) -> bool {
        self.files == Files::Check
    }

    /// A path from the file: relative ones are relative to the file's folder.
    pub(super) fn path(&self, value: &str) -> PathBuf {
        self.base.join(value)
    }

    /// The line where dotted `key` is written, if it is (for a value inside a value that is
    /// not a table, the line of that value).
    fn line_of(&self, key: &str) -> Option<usize> {
        if let Some(at) = self.keys.get(key) {
            return Some(at.line);
        }
        let mut prefix = String::new();
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            // `codecs[0]`: the element of an array is on the array's line, near enough.
            let part = part.split_once('[').map_or(part, |(name, _)| name);
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(part);
            let at = self.keys.get(&prefix)?;
            if parts.peek().is_none() || !at.table {
                return Some(at.line);
            }
        }
        None
    }

    fn error(&self, key: &str, line: Option<usize>, message: &str) -> ConfigError {
        ConfigError {
            file: self.file.into(),
            line: line.or_else(|| self.line_of(key)),
            key: shorten(key, KEY_CHARS),
            message: shorten(message, MESSAGE_CHARS),
        }
    }

    /// Records a problem with `key`, unless its section could not be read at all.
    pub(super) fn report(&self, key: &str, message: String) {
        let section = key.split('.').next().unwrap_or(key);
        if !self.unreadable.borrow().iter().any(|s| s == section) {
            self.problems.borrow_mut().push(self.error(key, None, &message));
        }
    }

    /// Records `message()` as a problem with `key` unless `ok`; returns `ok`.
    pub(super) fn check(&self, ok: bool, key: &str, message: impl FnOnce() -> String) -> bool {
        if !ok {
            self.report(key, message());
        }
        ok
    }

    /// Reads each section on its own: a type error in one leaves the others to be checked.
    /// `[server]` is kept as a table for the backend `kind` names to read.
    pub(super) fn raw_file(&self, root: DeTable<'_>) -> RawFile {
        let mut raw = RawFile::default();
        for (key, value) in root {
            match key.get_ref().as_ref() {
                "preset" => raw.preset = self.section("preset", value),
                "server" => raw.server = self.section("server", value),
                "audio" => raw.audio = self.section("audio", value),
                "opus" => raw.opus = self.section("opus", value),
                "playback" => raw.playback = self.section("playback", value),
                "session" => raw.session = self.section("session", value),
                "microphone" => raw.microphone = self.section("microphone", value),
                "speaker" => raw.speaker = self.section("speaker", value),
                "button" => raw.button = self.section("button", value),
                "led" => raw.led = self.section("led", value),
                other => self.unknown.borrow_mut().push(other.to_string()),
            }
        }
        raw
    }

    fn section<T: DeserializeOwned + Default>(&self, name: &str, value: Spanned<DeValue<'_>>) -> T {
        let mut unknown = Vec::new();
        let values = toml::de::ValueDeserializer::from(value);
        let mut note = |path: serde_ignored::Path<'_>| unknown.push(format!("{name}.{path}"));
        let tracked = serde_ignored::Deserializer::new(values, &mut note);
        let result = serde_path_to_error::deserialize(tracked);
        self.unknown.borrow_mut().append(&mut unknown);
        result.unwrap_or_else(|e| {
            let path = e.path().to_string();
            let key = if path == "." { name.to_string() } else { format!("{name}.{path}") };
            let line = e.inner().span().map(|span| self.lines.line_at(span.start));
            let message = e.inner().message().trim().replace('\n', " ");
            self.problems.borrow_mut().push(self.error(&key, line, &message));
            self.unreadable.borrow_mut().push(name.to_string());
            T::default()
        })
    }

    /// The config, or every problem found, in the order of the file.
    pub(super) fn finish(self, config: Config) -> Result<Loaded, ConfigErrors> {
        let unknown = self.unknown.take();
        let mut warnings: Vec<String> = unknown
            .iter()
            .take(MAX_REPORTED)
            .map(|key| self.error(key, None, "unknown key, ignored (see docs/configuration.md)").to_string())
            .collect();
        if unknown.len() > MAX_REPORTED {
            warnings.push(format!("{}: {} more unknown keys, ignored", self.file, unknown.len() - MAX_REPORTED));
        }
        // At most a handful: only the keys of the other server kinds.
        warnings.extend(self.unused.take().iter().map(|(key, why)| self.error(key, None, why).to_string()));
        let problems = self.problems.take();
        if problems.is_empty() { Ok(Loaded { config, warnings }) } else { Err(ConfigErrors::new(problems, warnings)) }
    }
}

impl Checker for Document<'_> {
    fn report(&self, key: &str, message: String) {
        Document::report(self, key, message);
    }

    fn unknown(&self, key: String) {
        self.unknown.borrow_mut().push(key);
    }

    fn unused(&self, key: String, why: String) {
        self.unused.borrow_mut().push((key, why));
    }

    fn unreadable(&self, section: &str) {
        self.unreadable.borrow_mut().push(section.to_string());
    }

    fn path(&self, value: &str) -> PathBuf {
        Document::path(self, value)
    }

    fn files_are_here(&self) -> bool {
        Document::files_are_here(self)
    }
}

/// Every syntax error toml found (one per line: later ones on a line follow from the first).
pub(super) fn syntax_errors(text: &str, file: &str, errors: &[toml::de::Error]) -> ConfigErrors {
    let lines = Lines::new(text);
    let mut problems: Vec<ConfigError> = Vec::new();
    let mut seen = HashSet::new();
    for e in errors {
        let line = e.span().map(|span| lines.line_at(span.start));
        if line.is_none_or(|line| seen.insert(line)) {
            let message = shorten(&e.message().trim().replace('\n', " "), MESSAGE_CHARS);
            problems.push(ConfigError { file: file.into(), line, key: String::new(), message });
        }
    }
    ConfigErrors::new(problems, Vec::new())
}

/// Records where each key of `table` (and of the tables in it) is written.
fn index(table: &DeTable<'_>, prefix: &str, lines: &Lines, keys: &mut HashMap<String, KeyAt>) {
    // Recursion is bounded: toml refuses documents nested deeper than its own small limit.
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        let path = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
        let line = lines.line_at(key.span().start);
        let nested = match value.get_ref() {
            DeValue::Table(nested) => Some(nested),
            _ => None,
        };
        if let Some(nested) = nested {
            index(nested, &path, lines, keys);
        }
        keys.insert(path, KeyAt { line, table: nested.is_some() });
    }
}

/// Line numbers from byte offsets, by binary search over where the lines break.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        Self(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i).collect())
    }

    fn line_at(&self, offset: usize) -> usize {
        self.0.partition_point(|&newline| newline < offset) + 1
    }
}
