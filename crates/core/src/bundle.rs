//! `POST [base]` with a `batch` or `transaction` Bundle.
//!
//! A transaction is one store transaction: every entry is validated first,
//! ids are assigned, `urn:uuid:` and conditional references are rewritten,
//! then entries run in the order the specification prescribes (DELETE, POST,
//! PUT, GET) and the store commits once. Any failure rolls back everything
//! and the error names the entry. A batch runs each entry on its own and
//! reports each entry's outcome.

use std::collections::HashMap;

use serde_json::{Map, Value};
use store::{Micros, Store, Tx};

use crate::access::Caller;
use crate::bundle_writer::{BundleWriter, EntryResponse};
use crate::error::{CoreError, Result};
use crate::{
    DeleteOutcome, Matches, Resource, Service, WriteKind, check_id, check_type, instant, query,
    resource,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    // Declared in processing order.
    Delete,
    Post,
    Put,
    Get,
}

/// One request entry, parsed.
struct Entry {
    method: Method,
    /// The request URL, relative to the base (`Patient/1`, `Patient?x=y`).
    url: String,
    full_url: Option<String>,
    resource: Option<Map<String, Value>>,
    if_none_exist: Option<String>,
    if_match: Option<u64>,
}

/// The target of a request URL.
enum Target {
    Type(String),
    Instance(String, String),
    Conditional(String, String),
}

fn parse_target(url: &str) -> Result<Target> {
    let url = url.trim_start_matches('/');
    if let Some((rtype, query)) = url.split_once('?') {
        check_type(rtype)?;
        return Ok(Target::Conditional(rtype.to_owned(), query.to_owned()));
    }
    let mut parts = url.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(t), None, None) => {
            check_type(t)?;
            Ok(Target::Type(t.to_owned()))
        }
        (Some(t), Some(id), None) => {
            check_type(t)?;
            check_id(id)?;
            Ok(Target::Instance(t.to_owned(), id.to_owned()))
        }
        _ => Err(CoreError::NotSupported(format!(
            "request url '{url}' is not supported in a bundle"
        ))),
    }
}

fn parse_entry(index: usize, entry: &Value) -> Result<Entry> {
    let at = |e: CoreError| CoreError::InEntry {
        index,
        source: Box::new(e),
    };
    let request = entry.get("request").ok_or_else(|| {
        at(CoreError::BadRequest(
            "every entry needs a request".to_owned(),
        ))
    })?;
    let method = match request.get("method").and_then(Value::as_str) {
        Some("GET") | Some("HEAD") => Method::Get,
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some("DELETE") => Method::Delete,
        Some(other) => {
            return Err(at(CoreError::NotSupported(format!(
                "method {other} is not supported in a bundle"
            ))));
        }
        None => {
            return Err(at(CoreError::BadRequest(
                "request.method is required".to_owned(),
            )));
        }
    };
    let url = request
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| at(CoreError::BadRequest("request.url is required".to_owned())))?
        .to_owned();
    let resource = match entry.get("resource") {
        Some(Value::Object(m)) => Some(m.clone()),
        _ => None,
    };
    if matches!(method, Method::Post | Method::Put) && resource.is_none() {
        return Err(at(CoreError::BadRequest(
            "POST and PUT entries need a resource".to_owned(),
        )));
    }
    let if_match = match request.get("ifMatch").and_then(Value::as_str) {
        Some(v) => Some(crate::parse_version(v).map_err(at)?),
        None => None,
    };
    Ok(Entry {
        method,
        url,
        full_url: entry
            .get("fullUrl")
            .and_then(Value::as_str)
            .map(str::to_owned),
        resource,
        if_none_exist: request
            .get("ifNoneExist")
            .and_then(Value::as_str)
            .map(str::to_owned),
        if_match,
    })
}

/// What happened to one entry, for the response bundle.
enum Done {
    Written(WriteKind, Resource),
    Deleted(DeleteOutcome),
    Read(Resource),
    Searched(String),
}

impl<S: Store> Service<S> {
    /// Processes a `batch` or `transaction` Bundle; returns the response Bundle.
    pub async fn bundle(&self, caller: &Caller, body: &[u8]) -> Result<String> {
        let map = resource::parse_json(body)?;
        if resource::resource_type(&map)? != "Bundle" {
            return Err(CoreError::BadRequest(
                "the base URL accepts only a Bundle".to_owned(),
            ));
        }
        match map.get("type").and_then(Value::as_str) {
            Some("transaction") => self.transaction(caller, map).await,
            Some("batch") => self.batch(caller, map).await,
            _ => Err(CoreError::BadRequest(
                "the Bundle type must be 'transaction' or 'batch'".to_owned(),
            )),
        }
    }

    async fn transaction(&self, caller: &Caller, map: Map<String, Value>) -> Result<String> {
        caller.trail().default_action(audit::Action::Transaction);
        // Validate the whole Bundle (every entry's resource) before any write.
        let (map, _warnings) = resource::validate(map)?;
        let raw_entries = match map.get("entry") {
            Some(Value::Array(a)) => a.as_slice(),
            _ => &[],
        };
        let mut entries = raw_entries
            .iter()
            .enumerate()
            .map(|(i, e)| parse_entry(i, e))
            .collect::<Result<Vec<_>>>()?;
        // Conditional entries and reads match across people: system clients
        // only (their matches could reveal what the policy withholds).
        if !self.is_system(caller) {
            for (i, e) in entries.iter().enumerate() {
                let conditional = e.if_none_exist.is_some()
                    || matches!(parse_target(&e.url), Ok(Target::Conditional(..)))
                    || e.method == Method::Get;
                if conditional {
                    self.require_system(caller, "a conditional or read entry in a transaction")
                        .map_err(|err| in_entry(i, err))?;
                }
            }
        }
        for (i, e) in entries.iter().enumerate() {
            if let (Some(r), Method::Post | Method::Put) = (&e.resource, e.method) {
                let declared = resource::resource_type(r)?;
                let target = match parse_target(&e.url).map_err(|err| in_entry(i, err))? {
                    Target::Type(t) | Target::Instance(t, _) | Target::Conditional(t, _) => t,
                };
                if declared != target {
                    return Err(in_entry(
                        i,
                        CoreError::BadRequest(format!(
                            "the resource is a {declared} but request.url is for {target}"
                        )),
                    ));
                }
            }
        }

        // Read the clock once the write lock is held, so that versions
        // commit in lastUpdated order (clients poll with _since).
        let mut tx = self.store.begin().await?;
        let now = self.clock.now();

        // 1. Decide the id of every entry that writes, and map fullUrls to them.
        let mut ids: Vec<Option<(String, String)>> = vec![None; entries.len()];
        let mut existing: Vec<bool> = vec![false; entries.len()];
        // Entries whose id this server just minted: known not to exist yet.
        let mut fresh: Vec<bool> = vec![false; entries.len()];
        let mut refs: HashMap<String, String> = HashMap::new();
        let mut written: std::collections::HashSet<(String, String)> =
            std::collections::HashSet::new();
        for (i, e) in entries.iter().enumerate() {
            let target = match e.method {
                Method::Post | Method::Put => {
                    parse_target(&e.url).map_err(|err| in_entry(i, err))?
                }
                _ => continue,
            };
            let assigned = match (e.method, target) {
                (Method::Post, Target::Type(t)) => {
                    if let Some(q) = &e.if_none_exist {
                        let criteria = self
                            .conditional_criteria(&t, q)
                            .map_err(|err| in_entry(i, err))?;
                        tx.lock_key(&crate::criteria_key(&t, q)).await?;
                        match self.find_in(&mut tx, &t, &criteria).await? {
                            Matches::None => {
                                mark(&mut fresh, i);
                                (t, self.ids.new_id())
                            }
                            Matches::One(id) => {
                                if let Some(flag) = existing.get_mut(i) {
                                    *flag = true;
                                }
                                (t, id)
                            }
                            Matches::Many => {
                                return Err(in_entry(
                                    i,
                                    CoreError::PreconditionFailed(
                                        "ifNoneExist matched more than one resource".to_owned(),
                                    ),
                                ));
                            }
                        }
                    } else {
                        mark(&mut fresh, i);
                        (t, self.ids.new_id())
                    }
                }
                (Method::Put, Target::Instance(t, id)) => {
                    let body_id = e
                        .resource
                        .as_ref()
                        .and_then(|r| r.get("id"))
                        .and_then(Value::as_str);
                    if body_id != Some(id.as_str()) {
                        return Err(in_entry(
                            i,
                            CoreError::BadRequest(
                                "a PUT entry's resource id must match request.url".to_owned(),
                            ),
                        ));
                    }
                    (t, id)
                }
                (Method::Put, Target::Conditional(t, q)) => {
                    let criteria = self
                        .conditional_criteria(&t, &q)
                        .map_err(|err| in_entry(i, err))?;
                    tx.lock_key(&crate::criteria_key(&t, &q)).await?;
                    match self.find_in(&mut tx, &t, &criteria).await? {
                        Matches::None => {
                            mark(&mut fresh, i);
                            (t, self.ids.new_id())
                        }
                        Matches::One(id) => (t, id),
                        Matches::Many => {
                            return Err(in_entry(
                                i,
                                CoreError::PreconditionFailed(
                                    "conditional update matched more than one resource".to_owned(),
                                ),
                            ));
                        }
                    }
                }
                _ => {
                    return Err(in_entry(
                        i,
                        CoreError::BadRequest(format!("'{}' is not valid for this method", e.url)),
                    ));
                }
            };
            if let Some(full_url) = &e.full_url {
                let reference = format!("{}/{}", assigned.0, assigned.1);
                if refs.insert(full_url.clone(), reference).is_some() {
                    return Err(in_entry(
                        i,
                        CoreError::BadRequest("two entries share one fullUrl".to_owned()),
                    ));
                }
            }
            // One transaction may not write one resource twice (R4 http.html:
            // overlapping identities fail the transaction).
            let is_existing = existing.get(i).copied().unwrap_or(false);
            if !is_existing && !written.insert(assigned.clone()) {
                return Err(in_entry(
                    i,
                    CoreError::BadRequest(format!(
                        "two entries of this transaction write {}/{}",
                        assigned.0, assigned.1
                    )),
                ));
            }
            if let Some(slot) = ids.get_mut(i) {
                *slot = Some(assigned);
            }
        }
        // Nor delete what it writes.
        for (i, e) in entries.iter().enumerate() {
            if e.method == Method::Delete
                && let Ok(Target::Instance(t, id)) = parse_target(&e.url)
                && written.contains(&(t, id))
            {
                return Err(in_entry(
                    i,
                    CoreError::BadRequest(
                        "this transaction both deletes and writes one resource".to_owned(),
                    ),
                ));
            }
        }

        // 2. Rewrite references: placeholders to assigned ids, conditional
        //    references to the one resource they match.
        for i in 0..entries.len() {
            let Some(resource) = entries.get_mut(i).and_then(|e| e.resource.take()) else {
                continue;
            };
            let mut value = Value::Object(resource);
            let mut conditional: Vec<String> = Vec::new();
            resource::rewrite_references(&mut value, &mut |s: &mut String| {
                if let Some(target) = refs.get(s.as_str()) {
                    *s = target.clone();
                } else if s.starts_with("urn:uuid:") || s.starts_with("urn:oid:") {
                    return Err(CoreError::BadRequest(
                        "a reference names a fullUrl that no entry in this transaction has"
                            .to_owned(),
                    ));
                } else if s.contains('?') {
                    conditional.push(s.clone());
                }
                Ok(())
            })
            .map_err(|err| in_entry(i, err))?;
            if !conditional.is_empty() {
                self.require_system(caller, "a conditional reference")
                    .map_err(|err| in_entry(i, err))?;
                let mut resolved: HashMap<String, String> = HashMap::new();
                for c in conditional {
                    let (t, q) = c.split_once('?').unwrap_or((&c, ""));
                    check_type(t).map_err(|err| in_entry(i, err))?;
                    let criteria = self
                        .conditional_criteria(t, q)
                        .map_err(|err| in_entry(i, err))?;
                    match self.find_in(&mut tx, t, &criteria).await? {
                        Matches::One(id) => {
                            resolved.insert(c.clone(), format!("{t}/{id}"));
                        }
                        Matches::None => {
                            return Err(in_entry(
                                i,
                                CoreError::PreconditionFailed(
                                    "a conditional reference matched nothing".to_owned(),
                                ),
                            ));
                        }
                        Matches::Many => {
                            return Err(in_entry(
                                i,
                                CoreError::PreconditionFailed(
                                    "a conditional reference matched more than one resource"
                                        .to_owned(),
                                ),
                            ));
                        }
                    }
                }
                resource::rewrite_references(&mut value, &mut |s: &mut String| {
                    if let Some(t) = resolved.get(s.as_str()) {
                        *s = t.clone();
                    }
                    Ok(())
                })?;
            }
            if let (Value::Object(m), Some(e)) = (value, entries.get_mut(i)) {
                e.resource = Some(m);
            }
        }

        // 3. Run the entries in the prescribed order.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by_key(|&i| entries.get(i).map(|e| e.method));
        let mut done: Vec<Option<Done>> = (0..entries.len()).map(|_| None).collect();
        for i in order {
            let Some(e) = entries.get_mut(i) else {
                continue;
            };
            let result = match e.method {
                Method::Delete => self
                    .delete_entry(caller, &mut tx, &e.url, now)
                    .await
                    .map(Done::Deleted),
                Method::Post | Method::Put => {
                    let (rtype, id) = ids.get(i).cloned().flatten().ok_or(CoreError::Internal)?;
                    if existing.get(i).copied().unwrap_or(false) {
                        // The match may have been deleted by an earlier entry.
                        let cur = match tx.current(&rtype, &id).await? {
                            Some(c) if !c.deleted => c,
                            _ => {
                                return Err(in_entry(
                                    i,
                                    CoreError::Conflict(format!(
                                        "{rtype}/{id}, which ifNoneExist matched, is deleted by this transaction"
                                    )),
                                ));
                            }
                        };
                        Ok(Done::Written(
                            WriteKind::Existing,
                            Resource::from_stored(cur)?,
                        ))
                    } else {
                        let map = e.resource.take().ok_or(CoreError::Internal)?;
                        let is_fresh = fresh.get(i).copied().unwrap_or(false);
                        self.write_version(
                            caller, &mut tx, &rtype, &id, map, e.if_match, is_fresh, now,
                        )
                        .await
                        .map(|(k, r)| Done::Written(k, r))
                    }
                }
                Method::Get => self.get_entry(&mut tx, &e.url).await,
            };
            let slot = done.get_mut(i).ok_or(CoreError::Internal)?;
            *slot = Some(result.map_err(|err| in_entry(i, err))?);
        }
        // One Provenance per activity for what the transaction wrote
        // (deletes carry their own).
        for (activity, wanted) in [
            ("CREATE", WriteKind::Created),
            ("UPDATE", WriteKind::Updated),
        ] {
            let targets: Vec<&Resource> = done
                .iter()
                .flatten()
                .filter_map(|d| match d {
                    Done::Written(k, r) if *k == wanted => Some(r),
                    _ => None,
                })
                .collect();
            self.provenance(caller, &mut tx, &targets, activity, now)
                .await?;
        }
        self.commit_audited(caller, tx).await?;

        let mut w = BundleWriter::new(
            "transaction-response",
            &self.ids.new_id(),
            &instant::to_instant(now),
        );
        for d in done.iter().flatten() {
            self.write_response_entry(&mut w, d);
        }
        Ok(w.finish())
    }

    async fn delete_entry(
        &self,
        caller: &Caller,
        tx: &mut S::Tx,
        url: &str,
        now: Micros,
    ) -> Result<DeleteOutcome> {
        match parse_target(url)? {
            Target::Instance(t, id) => self.delete_in(caller, tx, &t, &id, now).await,
            Target::Conditional(t, q) => {
                let criteria = self.conditional_criteria(&t, &q)?;
                match self.find_in(tx, &t, &criteria).await? {
                    Matches::None => Ok(DeleteOutcome::NothingToDelete),
                    Matches::One(id) => self.delete_in(caller, tx, &t, &id, now).await,
                    Matches::Many => Err(CoreError::PreconditionFailed(
                        "conditional delete matched more than one resource".to_owned(),
                    )),
                }
            }
            Target::Type(_) => Err(CoreError::BadRequest(
                "DELETE needs an id or criteria".to_owned(),
            )),
        }
    }

    /// A read or search inside a transaction, seeing its own writes.
    async fn get_entry(&self, tx: &mut S::Tx, url: &str) -> Result<Done> {
        match parse_target(url)? {
            Target::Instance(t, id) => match tx.current(&t, &id).await? {
                None => Err(CoreError::NotFound { rtype: t, id }),
                Some(r) if r.deleted => Err(CoreError::Gone { rtype: t, id }),
                Some(r) => Ok(Done::Read(Resource::from_stored(r)?)),
            },
            Target::Type(t) => self.search_in(tx, &t, "").await,
            Target::Conditional(t, q) => self.search_in(tx, &t, &q).await,
        }
    }

    async fn search_in(&self, tx: &mut S::Tx, rtype: &str, q: &str) -> Result<Done> {
        let pairs = query::parse_query_string(q)?;
        let search = search::parse(rtype, &pairs, self.clock.now(), false)?;
        let count = search
            .result
            .count
            .unwrap_or(crate::searching::DEFAULT_COUNT)
            .min(crate::searching::MAX_COUNT);
        let ids = tx.find(rtype, &search.filters, count).await?;
        let mut w = BundleWriter::new(
            "searchset",
            &self.ids.new_id(),
            &instant::to_instant(self.clock.now()),
        );
        for id in ids {
            if let Some(r) = tx.current(rtype, &id).await? {
                let full_url = format!("{}/{rtype}/{id}", self.config.base_url);
                w.entry(
                    Some(&full_url),
                    r.body.as_deref(),
                    Some("match"),
                    None,
                    None,
                );
            }
        }
        Ok(Done::Searched(w.finish()))
    }

    fn write_response_entry(&self, w: &mut BundleWriter, d: &Done) {
        match d {
            Done::Written(kind, r) => {
                let status = match kind {
                    WriteKind::Created => "201 Created",
                    WriteKind::Updated | WriteKind::Existing => "200 OK",
                };
                let location = r.versioned_ref();
                let etag = format!("W/\"{}\"", r.version);
                let modified = instant::to_instant(r.last_updated);
                let full_url = format!("{}/{}/{}", self.config.base_url, r.rtype, r.id);
                w.entry(
                    Some(&full_url),
                    None,
                    None,
                    None,
                    Some(&EntryResponse {
                        status,
                        location: Some(&location),
                        etag: Some(&etag),
                        last_modified: Some(&modified),
                        outcome: None,
                    }),
                );
            }
            Done::Deleted(outcome) => {
                let etag = match outcome {
                    DeleteOutcome::Deleted { version } => Some(format!("W/\"{version}\"")),
                    DeleteOutcome::NothingToDelete => None,
                };
                w.entry(
                    None,
                    None,
                    None,
                    None,
                    Some(&EntryResponse {
                        status: "204 No Content",
                        location: None,
                        etag: etag.as_deref(),
                        last_modified: None,
                        outcome: None,
                    }),
                );
            }
            Done::Read(r) => {
                let etag = format!("W/\"{}\"", r.version);
                let modified = instant::to_instant(r.last_updated);
                let full_url = format!("{}/{}/{}", self.config.base_url, r.rtype, r.id);
                w.entry(
                    Some(&full_url),
                    Some(&r.body),
                    None,
                    None,
                    Some(&EntryResponse {
                        status: "200 OK",
                        location: None,
                        etag: Some(&etag),
                        last_modified: Some(&modified),
                        outcome: None,
                    }),
                );
            }
            Done::Searched(bundle) => {
                w.entry(
                    None,
                    Some(bundle),
                    None,
                    None,
                    Some(&EntryResponse {
                        status: "200 OK",
                        location: None,
                        etag: None,
                        last_modified: None,
                        outcome: None,
                    }),
                );
            }
        }
    }

    async fn batch(&self, caller: &Caller, map: Map<String, Value>) -> Result<String> {
        // One record for the whole batch, appended by the API at the end.
        caller.trail().state().action = Some(audit::Action::Batch);
        let raw_entries = match map.get("entry") {
            Some(Value::Array(a)) => a.clone(),
            _ => vec![],
        };
        let now = self.clock.now();
        let mut w = BundleWriter::new(
            "batch-response",
            &self.ids.new_id(),
            &instant::to_instant(now),
        );
        for (i, raw) in raw_entries.iter().enumerate() {
            match self.batch_entry(caller, i, raw).await {
                Ok(d) => self.write_response_entry(&mut w, &d),
                Err(err) => {
                    let outcome = outcome_json(&err);
                    let status = status_line(&err);
                    w.entry(
                        None,
                        None,
                        None,
                        None,
                        Some(&EntryResponse {
                            status: &status,
                            location: None,
                            etag: None,
                            last_modified: None,
                            outcome: Some(&outcome),
                        }),
                    );
                }
            }
        }
        Ok(w.finish())
    }

    /// One batch entry, as if it were a request of its own.
    async fn batch_entry(&self, caller: &Caller, index: usize, raw: &Value) -> Result<Done> {
        let e = parse_entry(index, raw)?;
        let body = match &e.resource {
            Some(m) => serde_json::to_vec(m).map_err(|_| CoreError::Internal)?,
            None => vec![],
        };
        match (e.method, parse_target(&e.url)?) {
            (Method::Post, Target::Type(t)) => {
                let out = self
                    .create(caller, &t, &body, e.if_none_exist.as_deref())
                    .await?;
                Ok(Done::Written(out.kind, out.resource))
            }
            (Method::Put, Target::Instance(t, id)) => {
                let out = self.update(caller, &t, &id, &body, e.if_match).await?;
                Ok(Done::Written(out.kind, out.resource))
            }
            (Method::Put, Target::Conditional(t, q)) => {
                let out = self
                    .conditional_update(caller, &t, &q, &body, e.if_match)
                    .await?;
                Ok(Done::Written(out.kind, out.resource))
            }
            (Method::Delete, Target::Instance(t, id)) => {
                Ok(Done::Deleted(self.delete(caller, &t, &id).await?))
            }
            (Method::Delete, Target::Conditional(t, q)) => Ok(Done::Deleted(
                self.conditional_delete(caller, &t, &q).await?,
            )),
            (Method::Get, Target::Instance(t, id)) => {
                Ok(Done::Read(self.read(caller, &t, &id).await?))
            }
            (Method::Get, Target::Type(t)) => {
                Ok(Done::Searched(self.search(caller, &t, &[], false).await?.0))
            }
            (Method::Get, Target::Conditional(t, q)) => {
                let pairs = query::parse_query_string(&q)?;
                Ok(Done::Searched(
                    self.search(caller, &t, &pairs, false).await?.0,
                ))
            }
            _ => Err(CoreError::BadRequest(format!(
                "'{}' is not valid for this method",
                e.url
            ))),
        }
    }
}

fn mark(flags: &mut [bool], i: usize) {
    if let Some(f) = flags.get_mut(i) {
        *f = true;
    }
}

fn in_entry(index: usize, e: CoreError) -> CoreError {
    match e {
        already @ CoreError::InEntry { .. } => already,
        other => CoreError::InEntry {
            index,
            source: Box::new(other),
        },
    }
}

/// The HTTP status line of an error, for batch entry responses. Kept beside
/// `api::error`'s table: both come from [`CoreError::http_status`].
fn status_line(e: &CoreError) -> String {
    let code = e.http_status();
    format!("{code} {}", reason(code))
}

fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        422 => "Unprocessable Entity",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// An OperationOutcome for an error, as raw JSON.
pub fn outcome_json(e: &CoreError) -> String {
    e.operation_outcome().to_string()
}
