//! Writing a population: FHIR NDJSON (one file per resource type) or
//! transaction Bundles, plus `users.ndjson`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::Settings;
use crate::ics::{Ics, User};
use crate::person::person_and_users;

/// Where generated resources go.
pub trait Sink {
    /// The organisations, practitioners and roles (written once, first).
    fn directory(&mut self, resources: Vec<Value>) -> io::Result<()>;
    /// All resources of one person.
    fn person(&mut self, index: u64, resources: Vec<Value>) -> io::Result<()>;
    /// One demo user.
    fn user(&mut self, user: &User) -> io::Result<()>;
    /// Flushes everything; returns resources written by type.
    fn finish(&mut self) -> io::Result<Counts>;
}

/// Resources written, by type.
pub type Counts = BTreeMap<String, u64>;

fn resource_type(v: &Value) -> &str {
    v.get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Unknown")
}

fn open(path: &Path, append: bool) -> io::Result<BufWriter<File>> {
    let file = if append {
        OpenOptions::new().create(true).append(true).open(path)?
    } else {
        File::create(path)?
    };
    Ok(BufWriter::with_capacity(1 << 16, file))
}

/// Appends resources to `<dir>/<Type>.ndjson`, one JSON object per line,
/// through one buffered file per type.
pub struct NdjsonWriter {
    dir: PathBuf,
    append: bool,
    files: BTreeMap<String, BufWriter<File>>,
    users: BufWriter<File>,
    counts: Counts,
}

impl NdjsonWriter {
    /// Starts the files afresh, or appends to them (`append`, to resume a
    /// run).
    pub fn create(dir: &Path, append: bool) -> io::Result<NdjsonWriter> {
        std::fs::create_dir_all(dir)?;
        let users = open(&dir.join("users.ndjson"), append)?;
        Ok(NdjsonWriter {
            dir: dir.to_owned(),
            append,
            files: BTreeMap::new(),
            users,
            counts: Counts::new(),
        })
    }

    pub fn write(&mut self, resource: &Value) -> io::Result<()> {
        let kind = resource_type(resource);
        if !self.files.contains_key(kind) {
            let path = self.dir.join(format!("{kind}.ndjson"));
            let file = open(&path, self.append)?;
            self.files.insert(kind.to_owned(), file);
        }
        if let Some(file) = self.files.get_mut(kind) {
            serde_json::to_writer(&mut *file, resource)?;
            file.write_all(b"\n")?;
        }
        *self.counts.entry(kind.to_owned()).or_insert(0) += 1;
        Ok(())
    }
}

impl Sink for NdjsonWriter {
    fn directory(&mut self, resources: Vec<Value>) -> io::Result<()> {
        resources.iter().try_for_each(|r| self.write(r))
    }

    fn person(&mut self, _index: u64, resources: Vec<Value>) -> io::Result<()> {
        resources.iter().try_for_each(|r| self.write(r))
    }

    fn user(&mut self, user: &User) -> io::Result<()> {
        serde_json::to_writer(&mut self.users, &user.to_json())?;
        self.users.write_all(b"\n")
    }

    fn finish(&mut self) -> io::Result<Counts> {
        for file in self.files.values_mut() {
            file.flush()?;
        }
        self.users.flush()?;
        Ok(self.counts.clone())
    }
}

/// A transaction Bundle whose entries PUT each resource at `Type/id`, so
/// that loading it twice leaves one version of each.
pub fn transaction(resources: &[Value]) -> Value {
    let entries: Vec<Value> = resources
        .iter()
        .map(|r| {
            let url = format!(
                "{}/{}",
                resource_type(r),
                r.get("id").and_then(Value::as_str).unwrap_or("")
            );
            json!({"resource": r, "request": {"method": "PUT", "url": url}})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// Writes `directory.json` (organisations, practitioners, roles) and then
/// one transaction Bundle per `people_per_bundle` people, named by the
/// index of its first person (`people-000000000.json`, …), so that a
/// resumed or split run writes the same files.
pub struct BundleWriter {
    dir: PathBuf,
    people_per_bundle: usize,
    pending: Vec<Value>,
    pending_people: usize,
    first_index: u64,
    users: BufWriter<File>,
    counts: Counts,
}

impl BundleWriter {
    pub fn create(dir: &Path, people_per_bundle: usize, append: bool) -> io::Result<BundleWriter> {
        std::fs::create_dir_all(dir)?;
        let users = open(&dir.join("users.ndjson"), append)?;
        Ok(BundleWriter {
            dir: dir.to_owned(),
            people_per_bundle: people_per_bundle.max(1),
            pending: Vec::new(),
            pending_people: 0,
            first_index: 0,
            users,
            counts: Counts::new(),
        })
    }

    /// Writes [`transaction`]`(resources)`, streamed entry by entry rather
    /// than built as one value.
    fn write_bundle(&mut self, name: &str, resources: &[Value]) -> io::Result<()> {
        let mut file = open(&self.dir.join(name), false)?;
        file.write_all(br#"{"resourceType":"Bundle","type":"transaction","entry":["#)?;
        for (i, r) in resources.iter().enumerate() {
            if i > 0 {
                file.write_all(b",")?;
            }
            file.write_all(br#"{"resource":"#)?;
            serde_json::to_writer(&mut file, r)?;
            let url = format!(
                "{}/{}",
                resource_type(r),
                r.get("id").and_then(Value::as_str).unwrap_or("")
            );
            file.write_all(br#","request":{"method":"PUT","url":"#)?;
            serde_json::to_writer(&mut file, &url)?;
            file.write_all(b"}}")?;
        }
        file.write_all(b"]}\n")?;
        file.flush()?;
        for r in resources {
            *self.counts.entry(resource_type(r).to_owned()).or_insert(0) += 1;
        }
        Ok(())
    }

    fn flush_people(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let name = format!("people-{:09}.json", self.first_index);
        self.write_bundle(&name, &pending)?;
        self.pending_people = 0;
        Ok(())
    }
}

impl Sink for BundleWriter {
    fn directory(&mut self, resources: Vec<Value>) -> io::Result<()> {
        self.write_bundle("directory.json", &resources)
    }

    fn person(&mut self, index: u64, resources: Vec<Value>) -> io::Result<()> {
        if self.pending_people == 0 {
            self.first_index = index;
        }
        self.pending.extend(resources);
        self.pending_people += 1;
        if self.pending_people >= self.people_per_bundle {
            self.flush_people()?;
        }
        Ok(())
    }

    fn user(&mut self, user: &User) -> io::Result<()> {
        serde_json::to_writer(&mut self.users, &user.to_json())?;
        self.users.write_all(b"\n")
    }

    fn finish(&mut self) -> io::Result<Counts> {
        self.flush_people()?;
        self.users.flush()?;
        Ok(self.counts.clone())
    }
}

/// Generates `settings.range()` into a sink: the directory and the staff
/// users first when the range starts at 0, then person by person.
/// `progress` is called after each person with the number written so far.
pub fn generate(
    ics: &Ics,
    settings: &Settings,
    sink: &mut impl Sink,
    mut progress: impl FnMut(u64),
) -> io::Result<Counts> {
    let range = settings.range();
    if range.start == 0 {
        sink.directory(ics.directory())?;
        for u in &ics.users {
            sink.user(u)?;
        }
    }
    let mut done = 0;
    for index in range {
        let (resources, users) = person_and_users(ics, settings, index);
        sink.person(index, resources)?;
        for u in &users {
            sink.user(u)?;
        }
        done += 1;
        progress(done);
    }
    sink.finish()
}
