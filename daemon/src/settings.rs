//! How a part of pivox checks the settings it owns: the server backends read their `[server]`
//! keys themselves (`link::BACKENDS`), reporting each problem through a [`Checker`] that the
//! config file provides. This module depends on neither the config nor the links, so the
//! config can reach the backends through their table rows without an import cycle.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

/// Where settings problems go, and how the files settings name are found.
pub trait Checker {
    /// Records a problem with dotted `key` (`server.url`), in words for the user.
    fn report(&self, key: &str, message: String);
    /// Records a key nobody reads (warned about, ignored).
    fn unknown(&self, key: String);
    /// Records a key this configuration does not use, and why (warned about, ignored).
    fn unused(&self, key: String, why: String);
    /// A section that could not be read at all: its defaults are not checked as if written.
    fn unreadable(&self, section: &str);
    /// A path from the file: relative ones are relative to the file's folder.
    fn path(&self, value: &str) -> PathBuf;
    /// Whether the files the settings name should exist on this machine.
    fn files_are_here(&self) -> bool;
}

impl dyn Checker + '_ {
    /// Records `message()` as a problem with `key` unless `ok`; returns `ok`.
    pub fn check(&self, ok: bool, key: &str, message: impl FnOnce() -> String) -> bool {
        if !ok {
            self.report(key, message());
        }
        ok
    }
}

/// One section of the file, read in parts by whoever owns its keys (the shared connection
/// keys, then a backend's own); a key no part reads is unknown.
pub struct Section {
    name: &'static str,
    table: toml::Table,
    /// Keys every part so far has ignored (`None`: no part read yet).
    unread: Option<BTreeSet<String>>,
}

impl Section {
    pub fn new(name: &'static str, table: toml::Table) -> Self {
        Self { name, table, unread: None }
    }

    /// A string value as written, for choosing who reads the rest (`kind`).
    pub fn str(&self, key: &str) -> Option<&str> {
        self.table.get(key).and_then(toml::Value::as_str)
    }

    /// Reads the keys `T` knows; a type error is reported on its key and gives the defaults.
    pub fn part<T: DeserializeOwned + Default>(&mut self, checker: &dyn Checker) -> T {
        let mut ignored = BTreeSet::new();
        let mut note = |path: serde_ignored::Path<'_>| {
            ignored.insert(path.to_string());
        };
        let value = toml::Value::Table(self.table.clone());
        let tracked = serde_ignored::Deserializer::new(value, &mut note);
        let result: Result<T, _> = serde_path_to_error::deserialize(tracked);
        self.unread = Some(match self.unread.take() {
            None => ignored,
            Some(before) => before.intersection(&ignored).cloned().collect(),
        });
        result.unwrap_or_else(|e| {
            let path = e.path().to_string();
            let key = if path == "." { self.name.to_string() } else { format!("{}.{path}", self.name) };
            checker.report(&key, e.inner().message().trim().replace('\n', " "));
            checker.unreadable(self.name);
            T::default()
        })
    }

    /// The keys no part has read so far.
    pub fn unread(&self) -> BTreeSet<String> {
        self.unread.clone().unwrap_or_else(|| self.table.keys().cloned().collect())
    }

    /// The table as written, for trying who else would read it.
    pub fn table(&self) -> &toml::Table {
        &self.table
    }

    /// The keys no part read are warned about: as another's key when `owner` names whose it
    /// is, as unknown otherwise.
    pub fn finish(self, checker: &dyn Checker, owner: impl Fn(&str) -> Option<String>) {
        for key in self.unread() {
            let dotted = format!("{}.{key}", self.name);
            match owner(&key) {
                Some(why) => checker.unused(dotted, why),
                None => checker.unknown(dotted),
            }
        }
    }
}

/// A checker that records nothing and looks at no file: for finding out which keys a part
/// would read.
pub struct Silent;

impl Checker for Silent {
    fn report(&self, _: &str, _: String) {}
    fn unknown(&self, _: String) {}
    fn unused(&self, _: String, _: String) {}
    fn unreadable(&self, _: &str) {}
    fn path(&self, value: &str) -> PathBuf {
        PathBuf::from(value)
    }
    fn files_are_here(&self) -> bool {
        false
    }
}
