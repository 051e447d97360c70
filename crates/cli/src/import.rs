//! `sharedcare import PATH…`: bulk loading (issue #6).
//!
//! Reads FHIR NDJSON files (one resource per line, streamed) and `.json`
//! files (a transaction or batch Bundle, or one resource), named or found in
//! folders, and writes them through [`Service`] as a system client (the
//! `integration` role with `system/*.cruds`): validation, indexing,
//! relationship facts, policy, Provenance and the audit log are those of any
//! API write.
//!
//! - NDJSON lines are gathered into batches of `--batch` resources. Each
//!   batch is ONE transaction Bundle of `PUT Type/id` entries (one store
//!   transaction, one audit record). When a batch fails, the entries the
//!   error names are written alone (each then fails or loads on its own) and
//!   the rest go again as a transaction; an error that names no entry sends
//!   the batch one resource at a time. Transient errors are retried, then
//!   stop the import (a re-run resumes).
//! - Ids: a resource's own id, else the first 32 hex digits of the SHA-256
//!   of its line. A re-run updates, it never duplicates.
//! - A transaction Bundle is submitted whole, so its `urn:uuid:` references
//!   resolve as they do over the API. Its POST entries without `ifNoneExist`
//!   become PUTs to a deterministic id (the UUID of a `urn:uuid:` fullUrl,
//!   else a hash of the resource), for the same reason. A batch Bundle is
//!   submitted whole too, and each entry reports on its own.
//! - Resumability: `import-state.json` in the data directory records, per
//!   input (canonical path, size, modification time), how far it is
//!   committed, and, before each write, where that write ends and when it
//!   started. The core writes a new version for every PUT, even of an
//!   unchanged resource, so nothing committed is sent again: committed lines
//!   are skipped, and after an interruption between a commit and the state's
//!   update, the resources of that write whose current version is no older
//!   than the write's start are left out. The state belongs to one database
//!   (the hash of its first audit record): another database, or a reset one,
//!   starts afresh.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sharedcare_core::{Caller, Clock, CoreError, Service, WriteKind};
use store::Store;

use crate::config::{self, Backend, Config, ServerArgs};

/// The subject of the system client the import writes as.
const SUBJECT: &str = "sharedcare-import";
const STATE_FILE: &str = "import-state.json";
const LOCK_FILE: &str = "import.lock";
/// Rejections listed in full (per run, and kept per file in the state).
const LISTED: usize = 50;
/// Types that others reference and whose references are resolved at write
/// time (relationship facts name organisations by ODS code): loaded first.
const DIRECTORY_TYPES: [&str; 6] = [
    "Organization",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "RelatedPerson",
];
/// Tries of a write that failed for a transient reason (a concurrent
/// change, a busy database).
const ATTEMPTS: usize = 3;
/// Rounds of writing the entries a failed transaction named, before the
/// rest of the batch goes one resource at a time.
const ROUNDS: usize = 3;

const EXIT_REJECTED: u8 = 1;
const EXIT_ERROR: u8 = 2;
/// `--abort-after-batches`: the process ends as if killed.
const EXIT_ABORTED: i32 = 3;

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Resources per transaction when reading NDJSON.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    /// NDJSON files (one resource per line; in folders, only those named
    /// after a resource type, e.g. `Patient.ndjson`), `.json` files (a
    /// transaction or batch Bundle, or one resource), or folders of them
    /// (read recursively).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Tests only: end the process abruptly (exit status 3) right after the
    /// N-th write commits, before the import state records it.
    #[arg(long, hide = true)]
    abort_after_batches: Option<u64>,
}

/// Runs the import; 0 when everything loaded, 1 when anything was
/// rejected, 2 when the import could not run or had to stop.
pub fn run(args: &ImportArgs, runtime: &tokio::runtime::Runtime) -> ExitCode {
    let config = match config::resolve(&args.server) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(import(&config, args)) {
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
        Ok(summary) => {
            summary.print();
            if let Some(e) = &summary.fatal {
                eprintln!(
                    "error: the import stopped: {e}\n(what was committed stays; run the same command again to resume)"
                );
                ExitCode::from(EXIT_ERROR)
            } else if summary.rejected_total() > 0 {
                ExitCode::from(EXIT_REJECTED)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

async fn import(c: &Config, args: &ImportArgs) -> Result<Summary, String> {
    let state_path = c.data.join(STATE_FILE);
    let inputs = collect_inputs(&args.paths, &state_path)?;
    std::fs::create_dir_all(&c.data)
        .map_err(|e| format!("cannot create {}: {e}", c.data.display()))?;
    let _lock = lock(&c.data.join(LOCK_FILE))?;
    let state = StateFile::load(state_path)?;
    let batch = usize::try_from(args.batch).unwrap_or(500);
    match &c.backend {
        Backend::Sqlite { path } => {
            let mut sc = store_sqlite::SqliteConfig::new(path.clone());
            sc.durable = c.sqlite_durable;
            let store =
                store_sqlite::SqliteStore::open(sc).map_err(|e| format!("embedded store: {e}"))?;
            import_into(store, c, inputs, state, batch, args.abort_after_batches).await
        }
        Backend::Postgres { url } => {
            let store = store_postgres::PostgresStore::connect(
                store_postgres::PostgresConfig::new(url.clone()),
            )
            .await
            .map_err(|e| format!("postgres: {e}"))?;
            import_into(store, c, inputs, state, batch, args.abort_after_batches).await
        }
    }
}

/// One import at a time per data directory (the lock goes with the
/// process, however it ends).
fn lock(path: &Path) -> Result<File, String> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another sharedcare import is running on this data directory ({} is locked)",
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

// ----- inputs -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ndjson,
    Json,
}

#[derive(Debug)]
struct Input {
    /// As the user named it (or as found under a named folder).
    shown: String,
    canonical: PathBuf,
    /// The state's key: the canonical path.
    key: String,
    size: u64,
    mtime_ns: u64,
    kind: Kind,
    rank: usize,
}

#[derive(Debug, Default)]
struct Inputs {
    files: Vec<Input>,
    /// NDJSON files in folders not named after a resource type.
    skipped: Vec<String>,
    /// Other files in folders (neither `.ndjson` nor `.json`).
    ignored: Vec<String>,
}

/// The files to read, directory types first (in [`DIRECTORY_TYPES`]
/// order), otherwise in the order named, folders sorted by name.
fn collect_inputs(paths: &[PathBuf], state_path: &Path) -> Result<Inputs, String> {
    let own = [
        state_path.canonicalize().ok(),
        state_path.with_extension("json.tmp").canonicalize().ok(),
    ];
    let mut out = Inputs::default();
    let mut seen = HashSet::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if meta.is_dir() {
            walk(p, &own, &mut seen, &mut out)?;
        } else {
            add(p, &mut seen, &mut out)?;
        }
    }
    out.files.sort_by_key(|f| f.rank);
    Ok(out)
}

fn walk(
    dir: &Path,
    own: &[Option<PathBuf>],
    seen: &mut HashSet<String>,
    out: &mut Inputs,
) -> Result<(), String> {
    let read = |e: std::io::Error| format!("{}: {e}", dir.display());
    let mut entries = std::fs::read_dir(dir)
        .map_err(read)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    entries.sort();
    for path in entries {
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            walk(&path, own, seen, out)?;
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match path.extension().and_then(|e| e.to_str()) {
            Some("ndjson") if ndjson_type(&name).is_none() => out.skipped.push(format!(
                "{} (not named after a FHIR resource type)",
                path.display()
            )),
            Some("ndjson") => add(&path, seen, out)?,
            Some("json") => {
                let canonical = path.canonicalize().ok();
                if !own.contains(&canonical) {
                    add(&path, seen, out)?;
                }
            }
            _ => out.ignored.push(path.display().to_string()),
        }
    }
    Ok(())
}

fn add(path: &Path, seen: &mut HashSet<String>, out: &mut Inputs) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let canonical = path.canonicalize().map_err(err)?;
    let meta = std::fs::metadata(&canonical).map_err(err)?;
    if !meta.is_file() {
        return Err(format!("{}: not a file or folder", path.display()));
    }
    let key = canonical.to_string_lossy().into_owned();
    if !seen.insert(key.clone()) {
        return Ok(());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kind = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        Kind::Json
    } else {
        Kind::Ndjson
    };
    let rank = match kind {
        Kind::Ndjson => ndjson_type(&name)
            .and_then(|t| DIRECTORY_TYPES.iter().position(|d| *d == t))
            .unwrap_or(DIRECTORY_TYPES.len()),
        Kind::Json => DIRECTORY_TYPES.len(),
    };
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
        .unwrap_or(0);
    out.files.push(Input {
        shown: path.display().to_string(),
        canonical,
        key,
        size: meta.len(),
        mtime_ns,
        kind,
        rank,
    });
    Ok(())
}

/// The resource type an NDJSON file is named after: `Patient.ndjson`,
/// `Patient.000.ndjson`, `Patient-2.ndjson`, `Patient_2.ndjson`.
fn ndjson_type(file_name: &str) -> Option<&str> {
    let stem = file_name.split(['.', '-', '_']).next()?;
    fhir::is_known_resource_type(stem).then_some(stem)
}

// ----- the state file -----

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    /// The database it describes: the hash of its first audit record.
    store: Option<String>,
    /// By canonical path.
    files: BTreeMap<String, FileState>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct FileState {
    size: u64,
    mtime_ns: u64,
    /// Bytes committed (or rejected) from the start.
    offset: u64,
    /// Lines up to `offset` (entries, for a Bundle).
    lines: u64,
    done: bool,
    loaded: u64,
    rejected: u64,
    /// The first [`LISTED`] rejections, in full.
    #[serde(default)]
    reasons: Vec<String>,
    /// A write that was started and not yet recorded.
    #[serde(default)]
    pending: Option<Pending>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Pending {
    /// Where the write's last line ends.
    end: u64,
    /// When it started (UTC microseconds, the clock the versions carry).
    started: i64,
}

struct StateFile {
    path: PathBuf,
    state: State,
}

impl StateFile {
    fn load(path: PathBuf) -> Result<StateFile, String> {
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{} is not an import state ({e}); remove it to import from the start",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                version: 1,
                ..State::default()
            },
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(StateFile { path, state })
    }

    /// Writes a temporary file, flushes it to disk, and renames it over the
    /// state: a crash leaves the old state or the new one.
    fn save(&self) -> Result<(), String> {
        let err = |e: std::io::Error| format!("writing {}: {e}", self.path.display());
        let text = serde_json::to_vec_pretty(&self.state).map_err(|e| e.to_string())?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(&text).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(err)
    }

    fn file(&mut self, input: &Input) -> &mut FileState {
        self.state.files.entry(input.key.clone()).or_default()
    }
}

/// The hash of the store's first audit record (every write appends one):
/// which database an import state belongs to.
async fn fingerprint<S: Store>(store: &S) -> Result<Option<String>, String> {
    let rows = store
        .audit_rows(&store::audit::AuditQuery {
            limit: 1,
            without_patients: true,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("reading the audit log: {e}"))?;
    Ok(rows.first().map(|r| r.hash.clone()))
}

// ----- reading resources -----

/// One resource to write.
#[derive(Debug, Clone)]
struct Record {
    /// `file:line`, or the file for a one-resource `.json`.
    loc: String,
    rtype: String,
    id: String,
    /// The resource's JSON, with its id.
    json: String,
}

/// The two members a line must have; the rest is checked by the core.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "resourceType", borrow, default)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

/// A line (or file) as a resource to write: `Ok(None)` for a blank line,
/// `Err` with a reason that quotes nothing from the content.
fn parse_resource(bytes: &[u8]) -> Result<Option<(String, String, String)>, String> {
    let text = bytes.trim_ascii();
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    match text.first() {
        None => return Ok(None),
        Some(b'{') => {}
        Some(_) => return Err("not a JSON object, so not a FHIR resource".to_owned()),
    }
    let head: Head = serde_json::from_slice(text).map_err(|e| json_error(&e))?;
    let rtype = head
        .resource_type
        .ok_or("no resourceType, so not a FHIR resource")?;
    if !fhir::is_known_resource_type(&rtype) {
        return Err(
            if rtype.len() <= 64 && rtype.bytes().all(|b| b.is_ascii_alphanumeric()) {
                format!("'{rtype}' is not a FHIR R4 resource type")
            } else {
                "the resourceType is not a FHIR R4 resource type".to_owned()
            },
        );
    }
    let rtype = rtype.into_owned();
    match head.id {
        Some(id) => {
            if !fhir::is_valid_id(&id) {
                return Err(format!(
                    "{rtype}: the id is not a valid FHIR id ([A-Za-z0-9.-]{{1,64}})"
                ));
            }
            let json = std::str::from_utf8(text)
                .map_err(|_| "not UTF-8 text".to_owned())?
                .to_owned();
            Ok(Some((rtype, id.into_owned(), json)))
        }
        None => {
            let mut map: Map<String, Value> =
                serde_json::from_slice(text).map_err(|e| json_error(&e))?;
            let id = content_id(text);
            map.insert("id".to_owned(), Value::String(id.clone()));
            let json = serde_json::to_string(&map).map_err(|e| e.to_string())?;
            Ok(Some((rtype, id, json)))
        }
    }
}

/// serde_json's position, never its text (data errors can quote values).
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = if e.line() > 1 {
        format!("line {}, column {}", e.line(), e.column())
    } else {
        format!("column {}", e.column())
    };
    match e.classify() {
        Category::Syntax => format!("not valid JSON (at {at})"),
        Category::Eof => "not valid JSON (it ends too early)".to_owned(),
        Category::Data => {
            "not a FHIR resource (resourceType and id must be strings, given once)".to_owned()
        }
        Category::Io => "unreadable".to_owned(),
    }
}

/// A deterministic id for a resource without one: 32 hex digits of the
/// SHA-256 of its text.
fn content_id(text: &[u8]) -> String {
    Sha256::digest(text)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One transaction Bundle of `PUT Type/id` entries. Types and ids are
/// checked, so they need no escaping.
fn transaction_body(records: &[Record]) -> String {
    let size: usize = records.iter().map(|r| r.json.len() + 80).sum();
    let mut body = String::with_capacity(size + 64);
    body.push_str(r#"{"resourceType":"Bundle","type":"transaction","entry":["#);
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"resource":"#);
        body.push_str(&r.json);
        body.push_str(r#","request":{"method":"PUT","url":""#);
        body.push_str(&r.rtype);
        body.push('/');
        body.push_str(&r.id);
        body.push_str(r#""}}"#);
    }
    body.push_str("]}");
    body
}

// ----- Bundles -----

/// What a Bundle entry writes, after [`prepare_bundle`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct EntryInfo {
    /// The resource's type, for entries that write one.
    rtype: Option<String>,
    /// `Type/id` of a PUT to an instance.
    key: Option<(String, String)>,
}

/// Makes a Bundle's plain POST entries (no `ifNoneExist`) PUTs to a
/// deterministic id, so that a re-run updates rather than duplicates:
/// the UUID of a `urn:uuid:` fullUrl, else a hash of the resource. The
/// fullUrl stays, so references to it still resolve in a transaction.
fn prepare_bundle(bundle: &mut Map<String, Value>) -> Vec<EntryInfo> {
    let Some(Value::Array(entries)) = bundle.get_mut("entry") else {
        return vec![];
    };
    let mut assigned: HashSet<(String, String)> = HashSet::new();
    let mut infos = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter_mut().enumerate() {
        let rtype = entry
            .pointer("/resource/resourceType")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let method = entry
            .pointer("/request/method")
            .and_then(Value::as_str)
            .unwrap_or("");
        let url = entry
            .pointer("/request/url")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_start_matches('/');
        let plain_post = method == "POST"
            && rtype.as_deref() == Some(url)
            && entry.pointer("/request/ifNoneExist").is_none();
        if let (true, Some(t)) = (plain_post, &rtype) {
            let from_full_url = entry
                .get("fullUrl")
                .and_then(Value::as_str)
                .and_then(|u| u.strip_prefix("urn:uuid:"))
                .filter(|u| fhir::is_valid_id(u))
                .map(str::to_owned);
            let resource_text = || {
                entry
                    .get("resource")
                    .map(Value::to_string)
                    .unwrap_or_default()
            };
            let mut id = from_full_url.unwrap_or_else(|| content_id(resource_text().as_bytes()));
            if assigned.contains(&(t.clone(), id.clone())) {
                // Two entries alike: each keeps a resource of its own.
                id = content_id(format!("{}#{index}", resource_text()).as_bytes());
            }
            if let Some(Value::Object(resource)) = entry.get_mut("resource") {
                resource.insert("id".to_owned(), Value::String(id.clone()));
            }
            if let Some(Value::Object(request)) = entry.get_mut("request") {
                request.insert("method".to_owned(), Value::from("PUT"));
                request.insert("url".to_owned(), Value::from(format!("{t}/{id}")));
            }
        }
        let method = entry
            .pointer("/request/method")
            .and_then(Value::as_str)
            .unwrap_or("");
        let url = entry
            .pointer("/request/url")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_start_matches('/');
        let key = match (method, url.split_once('/')) {
            ("PUT", Some((t, id))) if !id.contains(['/', '?']) && !t.contains('?') => {
                Some((t.to_owned(), id.to_owned()))
            }
            _ => None,
        };
        if let Some(k) = &key {
            assigned.insert(k.clone());
        }
        let writes = matches!(method, "PUT" | "POST");
        infos.push(EntryInfo {
            rtype: rtype.filter(|_| writes),
            key,
        });
    }
    infos
}

// ----- outcomes -----

/// The `file:line: reason` of a core error: its stable code and the
/// OperationOutcome's error issues (element paths and diagnostics; the core
/// never puts resource content in them).
fn reason(e: &CoreError) -> String {
    format!("{} {}", e.code(), outcome_text(&e.operation_outcome()))
}

fn error_issues(outcome: &Value) -> impl Iterator<Item = &Value> {
    outcome
        .get("issue")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| {
            matches!(
                i.get("severity").and_then(Value::as_str),
                Some("error" | "fatal")
            )
        })
}

fn outcome_text(outcome: &Value) -> String {
    let issues: Vec<String> = error_issues(outcome)
        .map(|i| {
            let diagnostics = i
                .get("diagnostics")
                .and_then(Value::as_str)
                .unwrap_or("error");
            match i.pointer("/expression/0").and_then(Value::as_str) {
                Some(at) if !diagnostics.contains(at) => format!("{at}: {diagnostics}"),
                _ => diagnostics.to_owned(),
            }
        })
        .collect();
    match issues.as_slice() {
        [] => "rejected".to_owned(),
        [one] => one.clone(),
        [first, second, third, rest @ ..] if !rest.is_empty() => {
            format!("{first}; {second}; {third}; and {} more", rest.len())
        }
        all => all.join("; "),
    }
}

/// The entries of a failed transaction that its error names: the entry of
/// an `InEntry` error, or every entry that a validation issue points into.
/// `None` when the error names no entry (or one that does not exist).
fn suspects(e: &CoreError, entries: usize) -> Option<BTreeSet<usize>> {
    let set: BTreeSet<usize> = match e {
        CoreError::InEntry { index, .. } => [*index].into(),
        CoreError::Invalid(_) => {
            let outcome = e.operation_outcome();
            let mut set = BTreeSet::new();
            for issue in error_issues(&outcome) {
                let expression = issue.pointer("/expression/0").and_then(Value::as_str)?;
                set.insert(entry_index(expression)?);
            }
            set
        }
        _ => return None,
    };
    (!set.is_empty() && set.iter().all(|i| *i < entries)).then_some(set)
}

/// `Bundle.entry[12].resource.code` → 12.
fn entry_index(expression: &str) -> Option<usize> {
    let rest = expression.strip_prefix("Bundle.entry[")?;
    rest.split_once(']')?.0.parse().ok()
}

/// Where a transaction Bundle's error points: `entry 3 (Patient/x): `.
fn entry_prefix(e: &CoreError, infos: &[EntryInfo]) -> String {
    let index = match e {
        CoreError::InEntry { index, .. } => Some(*index),
        CoreError::Invalid(_) => suspects(e, infos.len())
            .filter(|s| s.len() == 1)
            .and_then(|s| s.first().copied()),
        _ => None,
    };
    match index {
        Some(i) => match infos.get(i).and_then(|info| info.key.as_ref()) {
            Some((t, id)) => format!("entry {i} ({t}/{id}): "),
            None => format!("entry {i}: "),
        },
        None => String::new(),
    }
}

/// The policy reason an audit record carries for a refusal (as the API's).
fn forbidden_reason(e: &CoreError) -> Option<&'static str> {
    match e {
        CoreError::Forbidden { reason, .. } => Some(reason),
        CoreError::InEntry { source, .. } => forbidden_reason(source),
        _ => None,
    }
}

/// Errors that are not the resource's fault and may pass.
fn retryable(e: &CoreError) -> bool {
    matches!(e.root(), CoreError::Conflict(_) | CoreError::Unavailable)
}

/// Errors after which nothing more should be written.
fn fatal(e: &CoreError) -> bool {
    matches!(e.root(), CoreError::AuditFailed | CoreError::Internal)
}

/// What one write (a batch, a Bundle, a resource) did.
#[derive(Debug, Default)]
struct Outcome {
    created: u64,
    updated: u64,
    by_type: BTreeMap<String, u64>,
    rejected: u64,
    reasons: Vec<String>,
}

impl Outcome {
    fn loaded(&mut self, rtype: &str, created: bool) {
        if created {
            self.created += 1;
        } else {
            self.updated += 1;
        }
        *self.by_type.entry(rtype.to_owned()).or_default() += 1;
    }

    fn reject(&mut self, reason: String) {
        self.rejected += 1;
        self.reasons.push(reason);
    }

    fn total(&self) -> u64 {
        self.created + self.updated
    }
}

/// The response statuses of a transaction or batch response, in entry order.
fn response_statuses(response: &str) -> Vec<(String, Option<Value>)> {
    let Ok(v) = serde_json::from_str::<Value>(response) else {
        return vec![];
    };
    v.get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let status = e
                .pointer("/response/status")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            (status, e.pointer("/response/outcome").cloned())
        })
        .collect()
}

// ----- the summary -----

#[derive(Debug, Default)]
struct Summary {
    files: u64,
    skipped_files: Vec<String>,
    ignored_files: Vec<String>,
    notes: Vec<String>,
    this_run: Outcome,
    /// Resources an earlier run committed, not sent again.
    already: u64,
    /// Rejections recorded by earlier runs of files unchanged since.
    earlier_rejected: u64,
    earlier_reasons: Vec<String>,
    elapsed: Duration,
    fatal: Option<String>,
}

impl Summary {
    fn rejected_total(&self) -> u64 {
        self.this_run.rejected + self.earlier_rejected
    }

    fn add(&mut self, o: Outcome) {
        let t = &mut self.this_run;
        t.created += o.created;
        t.updated += o.updated;
        for (k, n) in o.by_type {
            *t.by_type.entry(k).or_default() += n;
        }
        t.rejected += o.rejected;
        let room = LISTED.saturating_sub(t.reasons.len());
        t.reasons.extend(o.reasons.into_iter().take(room));
    }

    fn print(&self) {
        let mut out = String::new();
        let secs = self.elapsed.as_secs_f64();
        let loaded = self.this_run.total();
        out.push_str(&format!("import: {} input files", self.files));
        if !self.skipped_files.is_empty() {
            out.push_str(&format!(
                ", {} skipped: {}",
                self.skipped_files.len(),
                self.skipped_files.join(", ")
            ));
        }
        out.push('\n');
        if !self.ignored_files.is_empty() {
            out.push_str(&format!(
                "ignored {} files that are neither .ndjson nor .json (first: {})\n",
                self.ignored_files.len(),
                self.ignored_files.first().map_or("", String::as_str)
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out.push_str(&format!(
            "loaded {loaded} resources ({} new, {} updated) in {secs:.1} s, {:.0} resources/s\n",
            self.this_run.created,
            self.this_run.updated,
            loaded as f64 / secs.max(1e-9)
        ));
        for (t, n) in &self.this_run.by_type {
            out.push_str(&format!("  {t:<28} {n:>10}\n"));
        }
        if self.already > 0 {
            out.push_str(&format!(
                "skipped {} resources already loaded by an earlier run\n",
                self.already
            ));
        }
        list(
            &mut out,
            &format!("rejected {} resources", self.this_run.rejected),
            self.this_run.rejected,
            &self.this_run.reasons,
        );
        list(
            &mut out,
            &format!(
                "{} resources were rejected by an earlier run of these unchanged files",
                self.earlier_rejected
            ),
            self.earlier_rejected,
            &self.earlier_reasons,
        );
        print!("{out}");
    }
}

fn list(out: &mut String, title: &str, count: u64, reasons: &[String]) {
    if count == 0 {
        return;
    }
    out.push_str(title);
    out.push_str(":\n");
    for r in reasons.iter().take(LISTED) {
        out.push_str(&format!("  {r}\n"));
    }
    let shown = reasons.len().min(LISTED) as u64;
    if count > shown {
        out.push_str(&format!("  …and {} more\n", count - shown));
    }
}

// ----- progress -----

/// Progress of `import` (see [`crate::progress`]): records and rate, the
/// ETA from the bytes read; a plain line every ten seconds without a
/// terminal.
struct Progress {
    inner: crate::progress::Progress,
    total: u64,
    bytes: u64,
    records: u64,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress {
            inner: crate::progress::Progress::new(
                total,
                "{elapsed_precise} [{bar:25}] {percent:>3}% {msg}, about {eta} left",
                Duration::from_secs(10),
            ),
            total,
            bytes: 0,
            records: 0,
        }
    }

    fn advance(&mut self, bytes: u64, records: u64) {
        self.bytes += bytes;
        self.records += records;
        let rate = self.inner.rate(self.records);
        if let Some(bar) = self.inner.bar() {
            bar.set_position(self.bytes);
            bar.set_message(format!("{} resources, {rate:.0}/s", self.records));
        } else if self.inner.line_due() {
            eprintln!(
                "import: {} resources, {rate:.0}/s, {} of {} bytes read",
                self.records, self.bytes, self.total
            );
        }
    }

    fn finish(&self) {
        self.inner.finish();
    }
}

// ----- the import -----

struct Importer<S> {
    service: Service<S>,
    state: StateFile,
    summary: Summary,
    progress: Progress,
    batch: usize,
    abort_after: Option<u64>,
    /// Writes committed by this run (for `--abort-after-batches`).
    writes: u64,
}

async fn import_into<S: Store>(
    store: S,
    c: &Config,
    inputs: Inputs,
    mut state: StateFile,
    batch: usize,
    abort_after: Option<u64>,
) -> Result<Summary, String> {
    let started = Instant::now();
    let service =
        crate::service_for(store, &c.base_url_for(c.listen)).with_policy(c.policy.clone());
    service
        .reindex_if_needed()
        .await
        .map_err(|e| format!("rebuilding the search index: {e}"))?;
    let mut summary = Summary {
        files: inputs.files.len() as u64,
        skipped_files: inputs.skipped,
        ignored_files: inputs.ignored,
        ..Summary::default()
    };
    // The state describes this database, or it is dropped.
    let current = fingerprint(service.store()).await?;
    let recorded = state.state.store.clone();
    let progress_recorded = state.state.files.values().any(|f| f.offset > 0 || f.done);
    let other_database = match (&recorded, &current) {
        (Some(r), Some(c)) => r != c,
        (Some(_), None) => true,
        (None, None) => progress_recorded,
        (None, Some(_)) => false,
    };
    if other_database {
        summary.notes.push(format!(
            "{} described another database (or this one before a reset): importing from the start",
            state.path.display()
        ));
        state.state = State {
            version: 1,
            ..State::default()
        };
    }
    // A changed file is read again from its start.
    let mut total = 0u64;
    for input in &inputs.files {
        let fs = state.file(input);
        if (fs.size, fs.mtime_ns) != (input.size, input.mtime_ns) {
            if fs.offset > 0 || fs.done {
                summary.notes.push(format!(
                    "{} changed since it was imported: reading it again from the start",
                    input.shown
                ));
            }
            *fs = FileState {
                size: input.size,
                mtime_ns: input.mtime_ns,
                ..FileState::default()
            };
        }
        if !fs.done {
            total += input.size.saturating_sub(fs.offset);
        }
    }
    let mut imp = Importer {
        service,
        state,
        summary,
        progress: Progress::new(total),
        batch,
        abort_after,
        writes: 0,
    };
    for input in &inputs.files {
        let result = match input.kind {
            Kind::Ndjson => imp.ndjson(input).await,
            Kind::Json => imp.json(input).await,
        };
        if let Err(e) = result {
            imp.summary.fatal = Some(e);
            break;
        }
    }
    imp.progress.finish();
    imp.summary.elapsed = started.elapsed();
    Ok(imp.summary)
}

/// Resources read and not yet written, with the lines rejected on the way.
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    keys: HashSet<(String, String)>,
    rejected: Vec<String>,
}

impl<S: Store> Importer<S> {
    /// A caller for one request: a system client with a trail of its own.
    fn caller(&self) -> Caller {
        let caller = Caller::system(SUBJECT, None);
        caller.trail().state().request_id = self.service.new_id();
        caller
    }

    /// Appends the request's audit record unless its write did (as the
    /// API does before a response leaves).
    async fn audit(&self, caller: &Caller, error: Option<&CoreError>) -> Result<(), String> {
        let (status, code, reason) = match error {
            None => (200, None, None),
            Some(e) => (e.http_status(), Some(e.code()), forbidden_reason(e)),
        };
        self.service
            .append_request_audit(caller.trail(), status, code, reason)
            .await
            .map_err(|e| format!("the audit log cannot be written ({})", e.code()))
    }

    /// Records the state; the first time, names the database it describes.
    async fn save(&mut self) -> Result<(), String> {
        if self.state.state.store.is_none() {
            self.state.state.store = fingerprint(self.service.store()).await?;
        }
        self.state.save()
    }

    /// `--abort-after-batches`: ends the process as a crash would, after
    /// the write and before its state.
    fn wrote(&mut self) {
        self.writes += 1;
        if self.abort_after == Some(self.writes) {
            std::process::exit(EXIT_ABORTED);
        }
    }

    /// Before a write: where it ends and when it starts.
    fn intend(&mut self, input: &Input, end: u64) -> Result<(), String> {
        let started = crate::SystemClock.now();
        self.state.file(input).pending = Some(Pending { end, started });
        self.state.save()
    }

    /// The resources of `keys` whose current version was written at or
    /// after `since`: what an interrupted write committed.
    async fn committed_since(
        &self,
        keys: &[(String, String)],
        since: i64,
    ) -> Result<HashSet<(String, String)>, String> {
        let mut found = HashSet::new();
        for chunk in keys.chunks(500) {
            let current = self
                .service
                .store()
                .read_many(chunk)
                .await
                .map_err(|e| format!("reading what an interrupted import wrote: {e}"))?;
            found.extend(
                current
                    .into_iter()
                    .filter(|r| r.last_updated >= since)
                    .map(|r| (r.rtype, r.id)),
            );
        }
        Ok(found)
    }

    /// What earlier runs did with a file this run resumes or skips.
    fn take_earlier(&mut self, input: &Input) -> bool {
        let fs = self.state.file(input).clone();
        self.summary.already += fs.loaded;
        self.summary.earlier_rejected += fs.rejected;
        let room = LISTED.saturating_sub(self.summary.earlier_reasons.len());
        self.summary
            .earlier_reasons
            .extend(fs.reasons.iter().take(room).cloned());
        fs.done
    }

    /// Records a finished write (or rejected lines) in the state.
    async fn record(
        &mut self,
        input: &Input,
        end: u64,
        lines: u64,
        done: bool,
        outcome: Outcome,
        already: u64,
    ) -> Result<(), String> {
        let fs = self.state.file(input);
        let bytes = end.saturating_sub(fs.offset);
        fs.offset = end;
        fs.lines = lines;
        fs.done = done;
        fs.pending = None;
        fs.loaded += outcome.total() + already;
        fs.rejected += outcome.rejected;
        let room = LISTED.saturating_sub(fs.reasons.len());
        fs.reasons
            .extend(outcome.reasons.iter().take(room).cloned());
        self.summary.already += already;
        self.progress.advance(bytes, outcome.total());
        self.summary.add(outcome);
        self.save().await
    }

    // ----- NDJSON -----

    async fn ndjson(&mut self, input: &Input) -> Result<(), String> {
        if self.take_earlier(input) {
            return Ok(());
        }
        let fs = self.state.file(input).clone();
        let err = |e: std::io::Error| format!("reading {}: {e}", input.shown);
        let mut reader =
            BufReader::with_capacity(1 << 20, File::open(&input.canonical).map_err(err)?);
        reader.seek(SeekFrom::Start(fs.offset)).map_err(err)?;
        let mut offset = fs.offset;
        let mut line = fs.lines;
        // An interrupted write is read again whole, as one batch.
        let mut resumed = fs.pending;
        let mut batch = Batch::default();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(err)?;
            if n == 0 {
                break;
            }
            let line_start = (offset, line);
            offset += n as u64;
            line += 1;
            match parse_resource(&buf) {
                Ok(None) => {}
                Err(reason) => batch
                    .rejected
                    .push(format!("{}:{line}: {reason}", input.shown)),
                Ok(Some((rtype, id, json))) => {
                    let key = (rtype, id);
                    if resumed.is_none() && batch.keys.contains(&key) {
                        // One transaction writes a resource once.
                        self.flush(input, &mut batch, line_start, None, false)
                            .await?;
                    }
                    batch.keys.insert(key.clone());
                    batch.records.push(Record {
                        loc: format!("{}:{line}", input.shown),
                        rtype: key.0,
                        id: key.1,
                        json,
                    });
                }
            }
            let full = match resumed {
                Some(p) => offset >= p.end,
                // Rejected lines count too: they wait in memory for the
                // batch's state.
                None => batch.records.len() + batch.rejected.len() >= self.batch,
            };
            if full {
                self.flush(input, &mut batch, (offset, line), resumed.take(), false)
                    .await?;
            }
        }
        self.flush(input, &mut batch, (offset, line), resumed.take(), true)
            .await
    }

    /// Writes a batch and records it, up to `(end offset, lines)`.
    async fn flush(
        &mut self,
        input: &Input,
        batch: &mut Batch,
        (end, lines): (u64, u64),
        resumed: Option<Pending>,
        done: bool,
    ) -> Result<(), String> {
        let mut records = std::mem::take(&mut batch.records);
        batch.keys.clear();
        let mut outcome = Outcome::default();
        for r in batch.rejected.drain(..) {
            outcome.reject(r);
        }
        let mut already = 0;
        if let Some(p) = resumed {
            let keys: Vec<_> = records
                .iter()
                .map(|r| (r.rtype.clone(), r.id.clone()))
                .collect();
            let committed = self.committed_since(&keys, p.started).await?;
            let before = records.len();
            records.retain(|r| !committed.contains(&(r.rtype.clone(), r.id.clone())));
            already = (before - records.len()) as u64;
        }
        if !records.is_empty() {
            self.intend(input, end)?;
            self.write_records(records, &mut outcome).await?;
            self.wrote();
        }
        self.record(input, end, lines, done, outcome, already).await
    }

    /// One transaction for the batch; on failure, the entries it names
    /// alone and the rest again, or every resource alone.
    async fn write_records(
        &mut self,
        mut records: Vec<Record>,
        out: &mut Outcome,
    ) -> Result<(), String> {
        let mut tries = 0;
        let mut rounds = 0;
        while !records.is_empty() {
            let body = transaction_body(&records);
            let caller = self.caller();
            let result = self.service.bundle(&caller, body.as_bytes()).await;
            self.audit(&caller, result.as_ref().err()).await?;
            let e = match result {
                Ok(response) => {
                    let statuses = response_statuses(&response);
                    for (i, r) in records.iter().enumerate() {
                        let created = statuses.get(i).is_some_and(|(s, _)| s.starts_with("201"));
                        out.loaded(&r.rtype, created);
                    }
                    return Ok(());
                }
                Err(e) => e,
            };
            if fatal(&e) {
                return Err(format!("writing a batch: {e} ({})", e.code()));
            }
            if retryable(&e) {
                tries += 1;
                if tries < ATTEMPTS {
                    continue;
                }
                if matches!(e.root(), CoreError::Unavailable) {
                    return Err(format!("writing a batch: {e} ({})", e.code()));
                }
            }
            rounds += 1;
            match suspects(&e, records.len()).filter(|_| rounds <= ROUNDS && !retryable(&e)) {
                Some(named) => {
                    let mut rest = Vec::with_capacity(records.len());
                    for (i, r) in records.into_iter().enumerate() {
                        if named.contains(&i) {
                            self.write_one(r, out).await?;
                        } else {
                            rest.push(r);
                        }
                    }
                    records = rest;
                }
                None => {
                    for r in records {
                        self.write_one(r, out).await?;
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// One resource, as `PUT Type/id`.
    async fn write_one(&mut self, r: Record, out: &mut Outcome) -> Result<(), String> {
        let mut tries = 0;
        loop {
            let caller = self.caller();
            let result = self
                .service
                .update(&caller, &r.rtype, &r.id, r.json.as_bytes(), None)
                .await;
            self.audit(&caller, result.as_ref().err()).await?;
            match result {
                Ok(w) => {
                    out.loaded(&r.rtype, w.kind == WriteKind::Created);
                    return Ok(());
                }
                Err(e) if fatal(&e) => {
                    return Err(format!("writing {}: {e} ({})", r.loc, e.code()));
                }
                Err(e) if retryable(&e) && tries + 1 < ATTEMPTS => tries += 1,
                Err(e) if matches!(e.root(), CoreError::Unavailable) => {
                    return Err(format!("writing {}: {e} ({})", r.loc, e.code()));
                }
                Err(e) => {
                    out.reject(format!("{}: {}/{}: {}", r.loc, r.rtype, r.id, reason(&e)));
                    return Ok(());
                }
            }
        }
    }

    // ----- .json files -----

    async fn json(&mut self, input: &Input) -> Result<(), String> {
        if self.take_earlier(input) {
            return Ok(());
        }
        let resumed = self.state.file(input).pending;
        // A Bundle is one unit (a transaction commits whole): read whole.
        let bytes =
            std::fs::read(&input.canonical).map_err(|e| format!("reading {}: {e}", input.shown))?;
        let end = bytes.len() as u64;
        let bundle = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m))
                if m.get("resourceType").and_then(Value::as_str) == Some("Bundle")
                    && matches!(
                        m.get("type").and_then(Value::as_str),
                        Some("transaction" | "batch")
                    ) =>
            {
                Some(m)
            }
            _ => None,
        };
        match bundle {
            Some(m) => self.bundle_file(input, m, end, resumed).await,
            None => {
                // One resource: a batch of one.
                let mut batch = Batch::default();
                match parse_resource(&bytes) {
                    Ok(Some((rtype, id, json))) => batch.records.push(Record {
                        loc: input.shown.clone(),
                        rtype,
                        id,
                        json,
                    }),
                    Ok(None) => batch.rejected.push(format!("{}: empty file", input.shown)),
                    Err(reason) => batch.rejected.push(format!("{}: {reason}", input.shown)),
                }
                self.flush(input, &mut batch, (end, 1), resumed, true).await
            }
        }
    }

    async fn bundle_file(
        &mut self,
        input: &Input,
        mut bundle: Map<String, Value>,
        end: u64,
        resumed: Option<Pending>,
    ) -> Result<(), String> {
        let transaction = bundle.get("type").and_then(Value::as_str) == Some("transaction");
        let mut infos = prepare_bundle(&mut bundle);
        let entries = infos.len() as u64;
        let mut outcome = Outcome::default();
        let mut already = 0;
        if let Some(p) = resumed {
            let keys: Vec<_> = infos.iter().filter_map(|i| i.key.clone()).collect();
            let committed = self.committed_since(&keys, p.started).await?;
            let is_committed =
                |i: &EntryInfo| i.key.as_ref().is_some_and(|k| committed.contains(k));
            if transaction && !committed.is_empty() {
                // All or nothing: it committed.
                already = infos.iter().filter(|i| i.rtype.is_some()).count() as u64;
                return self
                    .record(input, end, entries, true, outcome, already)
                    .await;
            }
            if !transaction {
                if let Some(Value::Array(list)) = bundle.get_mut("entry") {
                    let mut kept = infos.iter().map(|i| !is_committed(i));
                    list.retain(|_| kept.next().unwrap_or(true));
                }
                already = infos.iter().filter(|i| is_committed(i)).count() as u64;
                infos.retain(|i| !is_committed(i));
            }
        }
        let body = serde_json::to_vec(&Value::Object(bundle)).map_err(|e| e.to_string())?;
        self.intend(input, end)?;
        let mut tries = 0;
        let result = loop {
            let caller = self.caller();
            let result = self.service.bundle(&caller, &body).await;
            self.audit(&caller, result.as_ref().err()).await?;
            match result {
                Err(e) if retryable(&e) && tries + 1 < ATTEMPTS => tries += 1,
                other => break other,
            }
        };
        match result {
            Ok(response) => {
                let statuses = response_statuses(&response);
                for (i, info) in infos.iter().enumerate() {
                    let (status, entry_outcome) = statuses
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| (String::new(), None));
                    if status.starts_with('2') {
                        if let Some(t) = &info.rtype {
                            outcome.loaded(t, status.starts_with("201"));
                        }
                    } else if status.starts_with('5') {
                        // Not this entry's fault: stop; a re-run sends
                        // what did not commit.
                        return Err(format!("{} entry {i}: {status}", input.shown));
                    } else {
                        let at = match &info.key {
                            Some((t, id)) => format!("entry {i} ({t}/{id})"),
                            None => format!("entry {i}"),
                        };
                        let why = entry_outcome.as_ref().map_or_else(
                            || "rejected".to_owned(),
                            |o| {
                                let code = error_issues(o)
                                    .find_map(|i| i.pointer("/details/coding/0/code"))
                                    .and_then(Value::as_str)
                                    .unwrap_or("");
                                format!("{code} {}", outcome_text(o))
                            },
                        );
                        outcome.reject(format!("{}: {at}: {status}: {why}", input.shown));
                    }
                }
            }
            Err(e) if fatal(&e) || retryable(&e) => {
                return Err(format!("writing {}: {e} ({})", input.shown, e.code()));
            }
            Err(e) => {
                let writes = infos.iter().filter(|i| i.rtype.is_some()).count() as u64;
                let what = if transaction {
                    format!("transaction rolled back, none of its {writes} resources loaded")
                } else {
                    "Bundle refused".to_owned()
                };
                outcome.reject(format!(
                    "{}: {what}: {}{}",
                    input.shown,
                    entry_prefix(&e, &infos),
                    reason(&e)
                ));
                // The Bundle counts once in `reasons`, its resources in the count.
                outcome.rejected += writes.saturating_sub(1);
            }
        }
        self.wrote();
        self.record(input, end, entries, true, outcome, already)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ndjson_files_are_named_after_a_type() {
        assert_eq!(ndjson_type("Patient.ndjson"), Some("Patient"));
        assert_eq!(ndjson_type("Observation.000.ndjson"), Some("Observation"));
        assert_eq!(ndjson_type("Encounter-2.ndjson"), Some("Encounter"));
        assert_eq!(ndjson_type("users.ndjson"), None);
        assert_eq!(ndjson_type("patient.ndjson"), None);
    }

    #[test]
    fn lines_become_resources_or_reasons() {
        let (t, id, json) = parse_resource(br#"{"resourceType":"Patient","id":"p1"}"#)
            .unwrap()
            .unwrap();
        assert_eq!((t.as_str(), id.as_str()), ("Patient", "p1"));
        assert_eq!(json, r#"{"resourceType":"Patient","id":"p1"}"#);
        assert_eq!(parse_resource(b"  \r\n").unwrap(), None);
        // A byte order mark is not content.
        let bom = parse_resource(b"\xEF\xBB\xBF{\"resourceType\":\"Patient\",\"id\":\"p\"}\r\n");
        assert_eq!(
            bom.unwrap().unwrap().2,
            r#"{"resourceType":"Patient","id":"p"}"#
        );

        // Without an id: one derived from the content, the same every time.
        let line = br#"{"resourceType":"Basic","code":{"text":"x"}}"#;
        let (_, id1, json) = parse_resource(line).unwrap().unwrap();
        let (_, id2, _) = parse_resource(line).unwrap().unwrap();
        assert_eq!(id1, id2);
        assert_eq!(id1.len(), 32);
        assert!(json.contains(&format!(r#""id":"{id1}""#)));

        let secret = "Margaret";
        for (bad, expected) in [
            (
                format!(r#"{{"resourceType":"Patient","name":"{secret}""#),
                "not valid JSON",
            ),
            (format!(r#"["{secret}"]"#), "not a JSON object"),
            (format!(r#"{{"name":"{secret}"}}"#), "no resourceType"),
            (
                r#"{"resourceType":"Patientx"}"#.to_owned(),
                "'Patientx' is not a FHIR R4 resource type",
            ),
            (
                format!(r#"{{"resourceType":"Patient","id":"{secret} x"}}"#),
                "not a valid FHIR id",
            ),
            (
                format!(r#"{{"resourceType":"Patient","id":{{"x":"{secret}"}}}}"#),
                "not a FHIR resource",
            ),
        ] {
            let reason = parse_resource(bad.as_bytes()).unwrap_err();
            assert!(reason.contains(expected), "{bad}: {reason}");
            assert!(!reason.contains(secret), "no content in reasons: {reason}");
        }
    }

    #[test]
    fn a_batch_is_one_transaction_of_puts() {
        let records = vec![
            Record {
                loc: "f:1".into(),
                rtype: "Patient".into(),
                id: "p1".into(),
                json: r#"{"resourceType":"Patient","id":"p1"}"#.into(),
            },
            Record {
                loc: "f:2".into(),
                rtype: "Basic".into(),
                id: "b1".into(),
                json: r#"{"resourceType":"Basic","id":"b1"}"#.into(),
            },
        ];
        let v: Value = serde_json::from_str(&transaction_body(&records)).unwrap();
        assert_eq!(v["type"], "transaction");
        assert_eq!(
            v["entry"][0]["request"],
            json!({"method": "PUT", "url": "Patient/p1"})
        );
        assert_eq!(v["entry"][1]["resource"]["id"], "b1");
    }

    #[test]
    fn plain_posts_become_puts_to_stable_ids() {
        let mut bundle = json!({
            "resourceType": "Bundle", "type": "transaction",
            "entry": [
                {"fullUrl": "urn:uuid:6b7e3b5c-1c1e-4f3c-9d59-1f5c8a1d2e01",
                 "resource": {"resourceType": "Patient"},
                 "request": {"method": "POST", "url": "Patient"}},
                {"resource": {"resourceType": "Basic"},
                 "request": {"method": "POST", "url": "Basic"}},
                {"resource": {"resourceType": "Basic"},
                 "request": {"method": "POST", "url": "Basic"}},
                {"resource": {"resourceType": "Organization"},
                 "request": {"method": "POST", "url": "Organization", "ifNoneExist": "identifier=x|y"}},
                {"resource": {"resourceType": "Patient", "id": "p2"},
                 "request": {"method": "PUT", "url": "Patient/p2"}},
                {"request": {"method": "DELETE", "url": "Patient/p3"}}
            ]
        });
        let map = bundle.as_object_mut().unwrap();
        let infos = prepare_bundle(map);
        let e = &bundle["entry"];
        assert_eq!(
            e[0]["request"]["url"],
            "Patient/6b7e3b5c-1c1e-4f3c-9d59-1f5c8a1d2e01"
        );
        assert_eq!(e[0]["request"]["method"], "PUT");
        assert_eq!(
            e[0]["resource"]["id"],
            "6b7e3b5c-1c1e-4f3c-9d59-1f5c8a1d2e01"
        );
        // Alike entries get ids of their own; conditional creates stay.
        assert_ne!(e[1]["resource"]["id"], e[2]["resource"]["id"]);
        assert_eq!(e[3]["request"]["method"], "POST");
        assert_eq!(
            infos[3],
            EntryInfo {
                rtype: Some("Organization".into()),
                key: None
            }
        );
        assert_eq!(
            infos[4],
            EntryInfo {
                rtype: Some("Patient".into()),
                key: Some(("Patient".into(), "p2".into()))
            }
        );
        assert_eq!(infos[5], EntryInfo::default());
        // The same Bundle again gets the same ids.
        let mut again = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Basic"}, "request": {"method": "POST", "url": "Basic"}},
        ]});
        prepare_bundle(again.as_object_mut().unwrap());
        assert_eq!(again["entry"][0]["resource"]["id"], e[1]["resource"]["id"]);
    }

    #[test]
    fn failed_transactions_name_their_entries() {
        let e = CoreError::InEntry {
            index: 2,
            source: Box::new(CoreError::BadRequest("x".into())),
        };
        assert_eq!(suspects(&e, 5), Some([2].into()));
        assert_eq!(suspects(&e, 2), None);
        assert_eq!(suspects(&CoreError::Unavailable, 5), None);
        assert_eq!(entry_index("Bundle.entry[12].resource.code"), Some(12));
        assert_eq!(entry_index("Patient.name"), None);
    }

    #[test]
    fn reasons_list_error_issues() {
        let oo = json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "warning", "diagnostics": "w", "expression": ["Patient.a"]},
            {"severity": "error", "diagnostics": "bad NHS number", "expression": ["Patient.identifier[0]"]},
            {"severity": "error", "diagnostics": "unknown element 'x'"},
        ]});
        assert_eq!(
            outcome_text(&oo),
            "Patient.identifier[0]: bad NHS number; unknown element 'x'"
        );
    }
}
