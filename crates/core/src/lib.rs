//! The FHIR interactions of sharedcare, free of HTTP.
//!
//! A [`Service`] takes a parsed request (type, id, body bytes, query pairs),
//! and does the whole of it: parse, validate, open one store transaction,
//! write every version with its index rows, commit, and describe the result.
//! The API crate turns those results into HTTP; nothing here knows HTTP.
//!
//! Architecture invariants:
//! - Nothing is stored before the whole request has validated; a failure
//!   anywhere in a transaction rolls back all of it.
//! - Time and new ids come from the injected [`Clock`] and [`IdGenerator`];
//!   this crate never reads the wall clock or a random source itself.

pub mod access;
pub mod audit_log;
mod audit_views;
mod bundle;
mod bundle_writer;
pub mod capabilities;
pub mod error;
mod group_commit;
pub mod instant;
pub mod query;
pub mod resource;
mod searching;
mod sharing;
pub mod trail;
mod writing;

use std::sync::Arc;

use policy::{Permission, Policy};

use fhir::Issue;
use serde_json::{Map, Value};
use store::{Filter, HistoryQuery, Micros, NewVersion, Store, Tx};

pub use access::Caller;
pub use bundle::outcome_json;
pub use bundle_writer::{BundleWriter, EntryResponse};
pub use error::{CoreError, Result};

/// The store setting that records which indexing rules built the index.
const INDEX_VERSION_KEY: &str = "index_version";

/// The source of "now". Injected so tests and replays are deterministic.
pub trait Clock: Send + Sync {
    fn now(&self) -> Micros;
}

/// The source of new logical ids.
pub trait IdGenerator: Send + Sync {
    fn new_id(&self) -> String;
}

/// Settings the interactions need.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The FHIR base URL clients use, without a trailing slash
    /// (e.g. `http://127.0.0.1:8080/fhir`); used in `fullUrl`s and links.
    pub base_url: String,
}

/// A current or historical version, as returned to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub rtype: String,
    pub id: String,
    pub version: u64,
    pub last_updated: Micros,
    /// Canonical compact JSON.
    pub body: String,
}

impl Resource {
    fn from_stored(s: store::StoredResource) -> Result<Self> {
        let body = s.body.ok_or(CoreError::Internal)?;
        Ok(Resource {
            rtype: s.rtype,
            id: s.id,
            version: s.version,
            last_updated: s.last_updated,
            body,
        })
    }

    /// `Type/id/_history/version`
    pub fn versioned_ref(&self) -> String {
        format!("{}/{}/_history/{}", self.rtype, self.id, self.version)
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// A new resource (or a new life after a delete): HTTP 201.
    Created,
    /// A new version of an existing resource: HTTP 200.
    Updated,
    /// Conditional create matched an existing resource; nothing was written.
    Existing,
}

#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub kind: WriteKind,
    pub resource: Resource,
    /// Validation warnings (never errors: those reject the write).
    pub warnings: Vec<Issue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// A delete version was written.
    Deleted { version: u64 },
    /// There was nothing (current) to delete.
    NothingToDelete,
}

/// The FHIR interactions over one store.
pub struct Service<S> {
    store: S,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    config: ServiceConfig,
    policy: Arc<Policy>,
    audit_group: Arc<group_commit::GroupCommit>,
}

impl<S: Clone> Clone for Service<S> {
    fn clone(&self) -> Self {
        Service {
            store: self.store.clone(),
            clock: self.clock.clone(),
            ids: self.ids.clone(),
            config: self.config.clone(),
            policy: self.policy.clone(),
            audit_group: self.audit_group.clone(),
        }
    }
}

pub(crate) fn check_type(rtype: &str) -> Result<()> {
    if fhir::is_known_resource_type(rtype) {
        Ok(())
    } else {
        Err(CoreError::UnknownType(rtype.to_owned()))
    }
}

pub(crate) fn check_id(id: &str) -> Result<()> {
    if fhir::is_valid_id(id) {
        Ok(())
    } else {
        Err(CoreError::BadRequest(
            "the resource id is not a valid FHIR id ([A-Za-z0-9.-]{1,64})".to_owned(),
        ))
    }
}

/// The lock key of conditional criteria: the type and the decoded, sorted
/// parameters, so that spellings of one query (`a|b`, `a%7Cb`, another
/// order) serialise against each other.
pub(crate) fn criteria_key(rtype: &str, query: &str) -> String {
    let mut pairs = query::parse_query_string(query).unwrap_or_default();
    pairs.sort();
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{rtype}?{}", parts.join("&"))
}

/// Parses `W/"3"`, `"3"` or `3` (an ETag or version id).
pub fn parse_version(s: &str) -> Result<u64> {
    let t = s.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    let t = t.trim_matches('"');
    t.parse()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| CoreError::BadRequest("a version must look like W/\"3\"".to_owned()))
}

impl<S: Store> Service<S> {
    pub fn new(
        store: S,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        config: ServiceConfig,
    ) -> Self {
        Service {
            store,
            clock,
            ids,
            config,
            policy: Arc::new(Policy::default()),
            audit_group: Arc::default(),
        }
    }

    /// Replaces the default access policy (roles, views, time boxes).
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Appends the request's audit record inside `tx` (so it commits with
    /// the work or not at all), then commits. A batch's entries commit
    /// one by one and its single record is appended by the API at the end.
    pub(crate) async fn commit_audited(&self, caller: &Caller, mut tx: S::Tx) -> Result<()> {
        let trail = caller.trail();
        let action = trail.state().action.clone();
        let status = match action {
            Some(audit::Action::Batch) => return Ok(tx.commit().await?),
            Some(audit::Action::Create) => 201,
            _ => 200,
        };
        let record = trail.record(self.clock.now(), status, None, None);
        let seqs = tx.append_audit(&[trail::new_audit(&record)]).await?;
        tx.commit().await?;
        // A caller that lives longer than one request (the demo loader, an
        // import) starts its next record afresh.
        let mut state = trail.state();
        state.appended = seqs.first().copied();
        state.patients.clear();
        state.entities.clear();
        state.more_entities = 0;
        state.search = None;
        Ok(())
    }

    /// Appends the request's audit record in a transaction of its own,
    /// unless one was already appended with the request's writes. The API
    /// calls this for every request before the response leaves; an error
    /// here must become the response.
    pub async fn append_request_audit(
        &self,
        trail: &trail::Trail,
        status: u16,
        error_code: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        if trail.state().appended.is_some() {
            return Ok(());
        }
        let record = trail.record(self.clock.now(), status, error_code, reason);
        let seq = self
            .audit_group
            .append(&self.store, trail::new_audit(&record))
            .await?;
        trail.state().appended = Some(seq);
        Ok(())
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// "Now" from the injected clock.
    pub fn now(&self) -> Micros {
        self.clock.now()
    }

    /// A new id from the injected generator (also used for token ids).
    pub fn new_id(&self) -> String {
        self.ids.new_id()
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ready().await?)
    }

    /// Rebuilds every current resource's index rows and compartment when
    /// the stored index was built by another version of the indexing rules
    /// (or never): after an upgrade that changes them, at start-up, before
    /// serving. Returns how many resources were reindexed.
    pub async fn reindex_if_needed(&self) -> Result<u64> {
        if self.store.setting(INDEX_VERSION_KEY).await?.as_deref() == Some(resource::INDEX_VERSION)
        {
            return Ok(0);
        }
        let mut done = 0u64;
        let mut after: Option<store::Key> = None;
        loop {
            let batch = self.store.scan(after.as_ref(), 500).await?;
            let Some(last) = batch.last() else { break };
            after = Some((last.rtype.clone(), last.id.clone()));
            let mut tx = self.store.begin().await?;
            for r in &batch {
                let Some(body) = &r.body else { continue };
                let value = serde_json::Value::Object(resource::parse_json(body.as_bytes())?);
                let (patient_id, rows) = resource::index(&r.rtype, &r.id, &value);
                let patient_id = patient_id.as_deref();
                tx.reindex(&r.rtype, &r.id, patient_id, &rows).await?;
                // The relationship facts and sealed-item markers, too.
                let relationships = self
                    .relationship_rows(&mut tx, &r.rtype, &r.id, patient_id, &value)
                    .await?;
                tx.put_relationships(&r.rtype, &r.id, patient_id, &relationships)
                    .await?;
                done += 1;
            }
            tx.commit().await?;
        }
        let mut tx = self.store.begin().await?;
        tx.set_setting(INDEX_VERSION_KEY, resource::INDEX_VERSION)
            .await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Parses and validates a body meant for `rtype` (which it must declare).
    fn parse_for(&self, rtype: &str, body: &[u8]) -> Result<(Map<String, Value>, Vec<Issue>)> {
        check_type(rtype)?;
        let map = resource::parse_json(body)?;
        let declared = resource::resource_type(&map)?;
        if declared != rtype {
            return Err(CoreError::BadRequest(format!(
                "the body is a {declared} but the URL is for {rtype}"
            )));
        }
        resource::validate(map)
    }

    // ----- create -----

    /// `POST [type]`, optionally conditional (`If-None-Exist`).
    pub async fn create(
        &self,
        caller: &Caller,
        rtype: &str,
        body: &[u8],
        if_none_exist: Option<&str>,
    ) -> Result<WriteOutcome> {
        caller.trail().default_action(audit::Action::Create);
        let (map, warnings) = self.parse_for(rtype, body)?;
        // Read the clock once the write lock is held, so that versions
        // commit in lastUpdated order (clients poll with _since).
        let mut tx = self.store.begin().await?;
        let now = self.clock.now();
        if let Some(query) = if_none_exist {
            self.require_system(caller, "conditional create")?;
            let criteria = self.conditional_criteria(rtype, query)?;
            tx.lock_key(&criteria_key(rtype, query)).await?;
            match self.find_in(&mut tx, rtype, &criteria).await? {
                Matches::None => {}
                Matches::One(id) => {
                    let cur = tx.current(rtype, &id).await?.ok_or(CoreError::Internal)?;
                    return Ok(WriteOutcome {
                        kind: WriteKind::Existing,
                        resource: Resource::from_stored(cur)?,
                        warnings,
                    });
                }
                Matches::Many => {
                    return Err(CoreError::PreconditionFailed(
                        "If-None-Exist matched more than one resource".to_owned(),
                    ));
                }
            }
        }
        let id = self.ids.new_id();
        let (kind, resource) = self
            .write_version(caller, &mut tx, rtype, &id, map, None, true, now)
            .await?;
        self.provenance(caller, &mut tx, &[&resource], "CREATE", now)
            .await?;
        self.commit_audited(caller, tx).await?;
        Ok(WriteOutcome {
            kind,
            resource,
            warnings,
        })
    }

    // ----- read -----

    pub async fn read(&self, caller: &Caller, rtype: &str, id: &str) -> Result<Resource> {
        check_type(rtype)?;
        check_id(id)?;
        let not_found = || CoreError::NotFound {
            rtype: rtype.to_owned(),
            id: id.to_owned(),
        };
        if self.is_system(caller) {
            return match self.store.read(rtype, id).await? {
                None => Err(not_found()),
                // Only system clients learn that something was deleted.
                Some(r) if r.deleted => Err(CoreError::Gone {
                    rtype: rtype.to_owned(),
                    id: id.to_owned(),
                }),
                Some(r) => match self.decide_one(caller, &r, Permission::Read).await? {
                    Some(body) => Ok(Resource::from_stored(store::StoredResource {
                        body: Some(body),
                        ..r
                    })?),
                    None => Err(not_found()),
                },
            };
        }
        // Everyone else: the resource and the caller's relationship facts in
        // one store call, then the decision.
        let p = caller.principal();
        self.policy.role_of(p).map_err(access::forbid)?;
        let found = self
            .store
            .read_with_relationships(rtype, id, p.org.as_deref(), Some(&p.subject))
            .await?;
        match found {
            None => Err(not_found()),
            Some(f) if f.resource.deleted => Err(not_found()),
            Some(f) => {
                let store::ReadWithFacts {
                    resource,
                    patient_id,
                    relationships,
                } = f;
                let shown = self
                    .decide_read(
                        caller,
                        &resource,
                        patient_id.as_deref(),
                        relationships,
                        Permission::Read,
                    )
                    .await?;
                match shown {
                    Some(body) => Ok(Resource::from_stored(store::StoredResource {
                        body: Some(body),
                        ..resource
                    })?),
                    None => Err(not_found()),
                }
            }
        }
    }

    pub async fn vread(
        &self,
        caller: &Caller,
        rtype: &str,
        id: &str,
        vid: &str,
    ) -> Result<Resource> {
        check_type(rtype)?;
        check_id(id)?;
        let version = vid
            .parse::<u64>()
            .map_err(|_| CoreError::BadRequest("the version id must be a number".to_owned()))?;
        match self.store.vread(rtype, id, version).await? {
            None => Err(CoreError::NotFound {
                rtype: rtype.to_owned(),
                id: format!("{id}/_history/{vid}"),
            }),
            Some(r) if r.deleted && self.is_system(caller) => Err(CoreError::Gone {
                rtype: rtype.to_owned(),
                id: format!("{id}/_history/{vid}"),
            }),
            Some(r) if r.deleted => Err(CoreError::NotFound {
                rtype: rtype.to_owned(),
                id: format!("{id}/_history/{vid}"),
            }),
            Some(r) => match self.decide_one(caller, &r, Permission::Read).await? {
                Some(body) => Ok(Resource::from_stored(store::StoredResource {
                    body: Some(body),
                    ..r
                })?),
                None => Err(CoreError::NotFound {
                    rtype: rtype.to_owned(),
                    id: format!("{id}/_history/{vid}"),
                }),
            },
        }
    }

    // ----- update -----

    /// `PUT [type]/[id]` (update, or create with a client-chosen id).
    pub async fn update(
        &self,
        caller: &Caller,
        rtype: &str,
        id: &str,
        body: &[u8],
        if_match: Option<u64>,
    ) -> Result<WriteOutcome> {
        caller.trail().default_action(audit::Action::Update);
        check_id(id)?;
        let (map, warnings) = self.parse_for(rtype, body)?;
        check_body_id(&map, id)?;
        // Read the clock once the write lock is held, so that versions
        // commit in lastUpdated order (clients poll with _since).
        let mut tx = self.store.begin().await?;
        let now = self.clock.now();
        let (kind, resource) = self
            .write_version(caller, &mut tx, rtype, id, map, if_match, false, now)
            .await?;
        let activity = if kind == WriteKind::Created {
            "CREATE"
        } else {
            "UPDATE"
        };
        self.provenance(caller, &mut tx, &[&resource], activity, now)
            .await?;
        self.commit_audited(caller, tx).await?;
        Ok(WriteOutcome {
            kind,
            resource,
            warnings,
        })
    }

    /// `PUT [type]?criteria`
    pub async fn conditional_update(
        &self,
        caller: &Caller,
        rtype: &str,
        query: &str,
        body: &[u8],
        if_match: Option<u64>,
    ) -> Result<WriteOutcome> {
        caller.trail().default_action(audit::Action::Update);
        self.require_system(caller, "conditional update")?;
        let (map, warnings) = self.parse_for(rtype, body)?;
        let criteria = self.conditional_criteria(rtype, query)?;
        // Read the clock once the write lock is held, so that versions
        // commit in lastUpdated order (clients poll with _since).
        let mut tx = self.store.begin().await?;
        let now = self.clock.now();
        tx.lock_key(&criteria_key(rtype, query)).await?;
        let id = match self.find_in(&mut tx, rtype, &criteria).await? {
            Matches::None => match map.get("id").and_then(Value::as_str) {
                Some(id) => {
                    // Create with the client's id, but never overwrite a
                    // resource the criteria did not match.
                    if tx.current(rtype, id).await?.is_some_and(|c| !c.deleted) {
                        return Err(CoreError::Conflict(format!(
                            "{rtype}/{id} exists but does not match the criteria"
                        )));
                    }
                    id.to_owned()
                }
                None => self.ids.new_id(),
            },
            Matches::One(id) => {
                if let Some(body_id) = map.get("id").and_then(Value::as_str)
                    && body_id != id
                {
                    return Err(CoreError::BadRequest(
                        "the body's id differs from the resource the criteria matched".to_owned(),
                    ));
                }
                id
            }
            Matches::Many => {
                return Err(CoreError::PreconditionFailed(
                    "the criteria matched more than one resource".to_owned(),
                ));
            }
        };
        let (kind, resource) = self
            .write_version(caller, &mut tx, rtype, &id, map, if_match, false, now)
            .await?;
        let activity = if kind == WriteKind::Created {
            "CREATE"
        } else {
            "UPDATE"
        };
        self.provenance(caller, &mut tx, &[&resource], activity, now)
            .await?;
        self.commit_audited(caller, tx).await?;
        Ok(WriteOutcome {
            kind,
            resource,
            warnings,
        })
    }

    // ----- delete -----

    pub async fn delete(&self, caller: &Caller, rtype: &str, id: &str) -> Result<DeleteOutcome> {
        caller.trail().default_action(audit::Action::Delete);
        check_type(rtype)?;
        check_id(id)?;
        // Read the clock once the write lock is held, so that versions
        // commit in lastUpdated order (clients poll with _since).
        let mut tx = self.store.begin().await?;
        let now = self.clock.now();
        let out = self.delete_in(caller, &mut tx, rtype, id, now).await?;
        self.commit_audited(caller, tx).await?;
        Ok(out)
    }

    /// `DELETE [type]?criteria`: deletes the one match (several → 412).
    pub async fn conditional_delete(
        &self,
        caller: &Caller,
        rtype: &str,
        query: &str,
    ) -> Result<DeleteOutcome> {
        caller.trail().default_action(audit::Action::Delete);
        check_type(rtype)?;
        self.require_system(caller, "conditional delete")?;
        let criteria = self.conditional_criteria(rtype, query)?;
        // Read the clock once the write lock is held, so that versions
        // commit in lastUpdated order (clients poll with _since).
        let mut tx = self.store.begin().await?;
        let now = self.clock.now();
        let out = match self.find_in(&mut tx, rtype, &criteria).await? {
            Matches::None => DeleteOutcome::NothingToDelete,
            Matches::One(id) => self.delete_in(caller, &mut tx, rtype, &id, now).await?,
            Matches::Many => {
                return Err(CoreError::PreconditionFailed(
                    "the criteria matched more than one resource".to_owned(),
                ));
            }
        };
        self.commit_audited(caller, tx).await?;
        Ok(out)
    }

    // ----- history -----

    /// `GET [type]/[id]/_history`, `GET [type]/_history`, `GET /_history`
    /// with `_since`, `_count` and the paging cursor.
    pub async fn history(
        &self,
        caller: &Caller,
        rtype: Option<&str>,
        id: Option<&str>,
        params: &[(String, String)],
    ) -> Result<String> {
        if let Some(t) = rtype {
            check_type(t)?;
        }
        if let Some(i) = id {
            check_id(i)?;
        }
        let mut query = HistoryQuery {
            rtype: rtype.map(str::to_owned),
            id: id.map(str::to_owned),
            limit: searching::DEFAULT_COUNT,
            ..HistoryQuery::default()
        };
        let mut kept: Vec<(String, String)> = Vec::new();
        for (name, value) in params {
            match name.as_str() {
                "_since" => {
                    query.since = Some(instant::parse_instant(value).ok_or_else(|| {
                        CoreError::BadRequest(
                            "_since must be an instant, e.g. 2024-01-01T00:00:00Z".to_owned(),
                        )
                    })?);
                    kept.push((name.clone(), value.clone()));
                }
                "_count" => {
                    let n: usize = value.parse().map_err(|_| {
                        CoreError::BadRequest("_count must be a non-negative integer".to_owned())
                    })?;
                    query.limit = n.min(searching::MAX_COUNT);
                    kept.push((name.clone(), value.clone()));
                }
                "_cursor" => {
                    query.before_seq =
                        Some(value.parse().map_err(|_| {
                            CoreError::BadRequest("invalid paging cursor".to_owned())
                        })?);
                }
                "_format" | "_pretty" => {}
                other => return Err(CoreError::UnknownParameter(other.to_owned())),
            }
        }
        // Type and system history cross people: system clients only. An
        // instance's history is decided on its latest version with a body.
        let access = match (rtype, id) {
            (Some(t), Some(i)) => {
                // An instance that never existed is a 404, not an empty history.
                let Some(current) = self.store.read(t, i).await? else {
                    return Err(CoreError::NotFound {
                        rtype: t.to_owned(),
                        id: i.to_owned(),
                    });
                };
                self.instance_access(caller, &current).await?
            }
            _ => {
                self.require_system(caller, "type and system history")?;
                None
            }
        };
        // Fetch one more than asked to learn whether there is a next page.
        let limit = query.limit;
        query.limit = limit + 1;
        let mut rows = if limit == 0 {
            vec![]
        } else {
            self.store.history(&query).await?
        };
        let has_next = rows.len() > limit;
        rows.truncate(limit);

        let path = match (rtype, id) {
            (Some(t), Some(i)) => format!("{}/{t}/{i}/_history", self.config.base_url),
            (Some(t), None) => format!("{}/{t}/_history", self.config.base_url),
            _ => format!("{}/_history", self.config.base_url),
        };
        let now = self.clock.now();
        let mut w = BundleWriter::new("history", &self.ids.new_id(), &instant::to_instant(now));
        let next = rows
            .last()
            .filter(|_| has_next)
            .map(|last| last.seq.to_string());
        let this = query.before_seq.map(|s| s.to_string());
        page_links(&mut w, &path, &kept, this.as_deref(), next, None);
        for r in &rows {
            // Deletes have no body to decide on; they show as deletes.
            let body = match (&access, &r.body) {
                (Some(a), Some(_)) => match self.release(caller, a, r) {
                    Some(b) => Some(b),
                    None => continue,
                },
                _ => {
                    access::note(caller, r, true);
                    r.body.clone()
                }
            };
            let full_url = format!("{}/{}/{}", self.config.base_url, r.rtype, r.id);
            let etag = format!("W/\"{}\"", r.version);
            let modified = instant::to_instant(r.last_updated);
            let (method, url, status) = if r.deleted {
                ("DELETE", format!("{}/{}", r.rtype, r.id), "204 No Content")
            } else if r.version == 1 {
                ("POST", r.rtype.clone(), "201 Created")
            } else {
                ("PUT", format!("{}/{}", r.rtype, r.id), "200 OK")
            };
            w.entry(
                Some(&full_url),
                body.as_deref(),
                None,
                Some((method, &url)),
                Some(&EntryResponse {
                    status,
                    location: None,
                    etag: Some(&etag),
                    last_modified: Some(&modified),
                    outcome: None,
                }),
            );
        }
        Ok(w.finish())
    }

    // ----- $validate -----

    /// `POST [type]/$validate` and `POST [type]/[id]/$validate`: the body is
    /// the resource or a `Parameters` with a `resource` parameter. Returns the
    /// issues found; nothing is stored.
    pub fn validate(
        &self,
        caller: &Caller,
        rtype: &str,
        id: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<Issue>> {
        check_type(rtype)?;
        self.may_submit(caller, rtype)?;
        if let Some(id) = id {
            check_id(id)?;
        }
        let mut map = resource::parse_json(body)?;
        if rtype != "Parameters"
            && map.get("resourceType").and_then(Value::as_str) == Some("Parameters")
        {
            map = parameters_resource(&map)?;
        }
        let declared = resource::resource_type(&map)?;
        if declared != rtype {
            return Err(CoreError::BadRequest(format!(
                "the body is a {declared} but the URL is for {rtype}"
            )));
        }
        if let Some(id) = id {
            check_body_id(&map, id)?;
        }
        Ok(fhir::validate_resource(&Value::Object(map)))
    }

    // ----- shared pieces -----

    /// The filters of a conditional interaction's criteria (any search
    /// parameters; result parameters make no sense there and are refused).
    fn conditional_criteria(&self, rtype: &str, query: &str) -> Result<Vec<Filter>> {
        let pairs = query::parse_query_string(query)?;
        if let Some((name, _)) = pairs
            .iter()
            .find(|(n, _)| n.starts_with('_') && search::is_result_parameter(n))
        {
            return Err(CoreError::BadRequest(format!(
                "{name} has no meaning in conditional criteria"
            )));
        }
        let search = search::parse(rtype, &pairs, self.clock.now(), false)?;
        let criteria = search.filters;
        if criteria.is_empty() {
            return Err(CoreError::BadRequest(
                "conditional interactions need search criteria".to_owned(),
            ));
        }
        Ok(criteria)
    }

    async fn find_in(&self, tx: &mut S::Tx, rtype: &str, criteria: &[Filter]) -> Result<Matches> {
        let mut ids = tx.find(rtype, criteria, 2).await?;
        Ok(match ids.len() {
            0 => Matches::None,
            1 => ids.pop().map_or(Matches::None, Matches::One),
            _ => Matches::Many,
        })
    }

    /// Writes the next version of `rtype/id` inside `tx`.
    #[allow(clippy::too_many_arguments)]
    async fn write_version(
        &self,
        caller: &Caller,
        tx: &mut S::Tx,
        rtype: &str,
        id: &str,
        map: Map<String, Value>,
        if_match: Option<u64>,
        fresh: bool,
        now: Micros,
    ) -> Result<(WriteKind, Resource)> {
        refuse_audit_write(rtype)?;
        if rtype == "Consent" {
            // Sharing choices and proxy grants are audited as such (a batch
            // keeps its one record for the whole batch).
            let mut t = caller.trail().state();
            if !matches!(t.action, Some(audit::Action::Batch)) {
                t.action = Some(audit::Action::ConsentChange);
            }
        }
        // A server-assigned id is new by construction: skip the lookup (the
        // store still refuses a duplicate version 1).
        let current = if fresh {
            None
        } else {
            tx.current(rtype, id).await?
        };
        if let Some(expected) = if_match {
            match &current {
                Some(c) if !c.deleted && c.version == expected => {}
                Some(c) => {
                    return Err(CoreError::VersionConflict(format!(
                        "If-Match asked for version {expected}; the current version is {}",
                        c.version
                    )));
                }
                None => {
                    return Err(CoreError::VersionConflict(format!(
                        "If-Match asked for version {expected} of a resource that does not exist"
                    )));
                }
            }
        }
        let kind = match &current {
            Some(c) if !c.deleted => WriteKind::Updated,
            _ => WriteKind::Created,
        };
        let version = current.as_ref().map_or(1, |c| c.version + 1);
        let existing: Option<Value> = current
            .filter(|c| !c.deleted)
            .and_then(|c| c.body)
            .and_then(|b| serde_json::from_str(&b).ok());
        let map = self.mark(caller, map, existing.as_ref())?;
        let stamped = resource::stamp(map, rtype, id, version, now)?;
        // The stored form, parsed once for the decision and the facts.
        let value: Value = serde_json::from_str(&stamped.body).map_err(|_| CoreError::Internal)?;
        let patient = stamped.patient_id.as_deref();
        self.check_write(caller, rtype, id, patient, &value, existing.as_ref())
            .await?;
        let relationships = self
            .relationship_rows(tx, rtype, id, patient, &value)
            .await?;
        if !fresh || !relationships.is_empty() {
            tx.put_relationships(rtype, id, patient, &relationships)
                .await?;
        }
        if let Some(p) = &stamped.patient_id {
            caller.trail().patient(p);
        }
        caller
            .trail()
            .entity(rtype, id, Some(version), Some(&stamped.body));
        tx.put(&NewVersion {
            rtype: rtype.to_owned(),
            id: id.to_owned(),
            version,
            last_updated: now,
            deleted: false,
            patient_id: stamped.patient_id,
            body: Some(stamped.body.clone()),
            index: stamped.index,
        })
        .await?;
        Ok((
            kind,
            Resource {
                rtype: rtype.to_owned(),
                id: id.to_owned(),
                version,
                last_updated: now,
                body: stamped.body,
            },
        ))
    }

    async fn delete_in(
        &self,
        caller: &Caller,
        tx: &mut S::Tx,
        rtype: &str,
        id: &str,
        now: Micros,
    ) -> Result<DeleteOutcome> {
        refuse_audit_write(rtype)?;
        match tx.current(rtype, id).await? {
            Some(c) if !c.deleted => {
                let old: Option<Value> =
                    c.body.as_deref().and_then(|b| serde_json::from_str(b).ok());
                self.check_delete(caller, rtype, id, old.as_ref()).await?;
                tx.put_relationships(rtype, id, None, &[]).await?;
                let version = c.version + 1;
                if let Some(p) = old.as_ref().and_then(|v| access::patient_of(rtype, id, v)) {
                    caller.trail().patient(&p);
                }
                caller.trail().entity(rtype, id, Some(version), None);
                tx.put(&NewVersion {
                    rtype: rtype.to_owned(),
                    id: id.to_owned(),
                    version,
                    last_updated: now,
                    deleted: true,
                    patient_id: None,
                    body: None,
                    index: vec![],
                })
                .await?;
                let target = Resource {
                    rtype: rtype.to_owned(),
                    id: id.to_owned(),
                    version,
                    last_updated: now,
                    body: String::new(),
                };
                self.provenance(caller, tx, &[&target], "DELETE", now)
                    .await?;
                Ok(DeleteOutcome::Deleted { version })
            }
            _ => Ok(DeleteOutcome::NothingToDelete),
        }
    }
}

/// AuditEvents are the audit log's: written by the server, never through
/// the API.
fn refuse_audit_write(rtype: &str) -> Result<()> {
    if rtype == "AuditEvent" {
        return Err(CoreError::Forbidden {
            reason: "audit-append-only",
            message: "audit records are written by the server only".to_owned(),
            break_glass: false,
        });
    }
    Ok(())
}

enum Matches {
    None,
    One(String),
    Many,
}

fn check_body_id(map: &Map<String, Value>, id: &str) -> Result<()> {
    match map.get("id").and_then(Value::as_str) {
        Some(body_id) if body_id == id => Ok(()),
        Some(_) => Err(CoreError::BadRequest(
            "the id in the body differs from the id in the URL".to_owned(),
        )),
        None => Err(CoreError::BadRequest(
            "an update needs the resource's id in the body".to_owned(),
        )),
    }
}

fn parameters_resource(map: &Map<String, Value>) -> Result<Map<String, Value>> {
    let params = map.get("parameter").and_then(Value::as_array);
    let found = params
        .into_iter()
        .flatten()
        .find(|p| p.get("name").and_then(Value::as_str) == Some("resource"));
    match found.and_then(|p| p.get("resource")) {
        Some(Value::Object(r)) => Ok(r.clone()),
        _ => Err(CoreError::BadRequest(
            "Parameters needs a 'resource' parameter holding the resource".to_owned(),
        )),
    }
}

/// Writes a page's `self`, `next` and `previous` links: `path` with
/// `params` and, where given, each page's cursor.
pub(crate) fn page_links(
    w: &mut BundleWriter,
    path: &str,
    params: &[(String, String)],
    this: Option<&str>,
    next: Option<String>,
    previous: Option<String>,
) {
    let self_link = link(path, params, this);
    let next = next.map(|c| link(path, params, Some(&c)));
    let previous = previous.map(|c| link(path, params, Some(&c)));
    let mut links = vec![("self", self_link.as_str())];
    if let Some(n) = &next {
        links.push(("next", n.as_str()));
    }
    if let Some(p) = &previous {
        links.push(("previous", p.as_str()));
    }
    w.links(&links);
}

/// `path?k=v&…[&_cursor=c]`, percent-encoded.
fn link(path: &str, params: &[(String, String)], cursor: Option<&str>) -> String {
    let mut out = path.to_owned();
    let mut sep = '?';
    for (k, v) in params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(cursor.map(|c| ("_cursor", c)))
    {
        out.push(sep);
        sep = '&';
        out.push_str(&encode(k));
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:|,".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
