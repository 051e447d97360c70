//! Search: the FHIR search parameters (parsed by the `search` crate into
//! store filters), result parameters (`_sort`, `_count`, `_include`,
//! `_revinclude`, `_total`, `_summary`, `_elements`), compartment search and
//! `Patient/[id]/$everything`, answered as `searchset` Bundles.
//!
//! Paging uses an opaque keyset cursor (the sort values and id of the last
//! row), so `next` links stay correct while data changes underneath.

use serde_json::{Map, Value};
use store::search::{Filter, ReferenceValue, SortValue};
use store::{Cursor, Key, SearchQuery, Store, StoredResource};

use policy::{PatientAccess, Permission, RoleKind};

use crate::access::{Caller, compartment_filter, filters_of, forbid, is_person_type, owned_by};
use crate::bundle_writer::BundleWriter;
use crate::error::{CoreError, Result};
use crate::{Service, check_id, check_type, instant};

/// Over what a search runs, as the policy decided for its caller.
enum Scope {
    /// A system client: everything its scopes allow.
    System,
    /// Types that belong to no person (directories).
    Directory,
    /// One person's record.
    Person(Box<PatientAccess>),
    /// `Patient` search across the people the caller may access.
    Population,
}

/// The warning added to a response when the record holds items the caller
/// cannot see. It says that something was withheld, never what or where.
fn withheld_outcome() -> String {
    serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "warning",
            "code": "suppressed",
            "details": {
                "coding": [{"system": "https://fhir.sharedcare.org.uk/CodeSystem/warning", "code": "confidential-items", "display": "Confidential items withheld"}],
                "text": "Some items in this record are not shown to you: they are confidential or outside your role's view."
            }
        }]
    })
    .to_string()
}

/// The top-level elements of `rtype` a search parameter's expression reads
/// (`Encounter.reasonCode | Encounter.x.y` → `reasonCode`, `x`), choice
/// types by their stem (`value[x]` paths read as `valueQuantity`…).
fn elements_of(rtype: &str, expression: &str) -> Vec<String> {
    let prefix = format!("{rtype}.");
    let mut out: Vec<String> = Vec::new();
    for (i, _) in expression.match_indices(&prefix) {
        // Only where the type name starts a path (not inside another name).
        let before = expression.get(..i).and_then(|b| b.chars().last());
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.') {
            continue;
        }
        let rest = expression.get(i + prefix.len()..).unwrap_or("");
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Does a filter reach into other resources (`_has`, chains)?
fn reaches(f: &Filter) -> bool {
    match f {
        Filter::Chain { .. } | Filter::Has { .. } => true,
        Filter::AnyOf(groups) => groups.iter().flatten().any(reaches),
        _ => false,
    }
}

/// Outside one person's record, `_has` and chains could reach into records
/// the policy has not decided on: refused.
fn refuse_reaching(filters: &[Filter]) -> Result<()> {
    if filters.iter().any(reaches) {
        return Err(CoreError::Forbidden {
            reason: "criteria-not-permitted",
            message: "_has and chained parameters are only available within one person's record"
                .to_owned(),
            break_glass: false,
        });
    }
    Ok(())
}

/// The one patient a search's criteria name through a compartment parameter
/// (`patient=`, `subject=Patient/…`), or `_id` for Patient.
fn named_patient(rtype: &str, filters: &[Filter]) -> Option<String> {
    if rtype == "Patient" {
        return filters.iter().find_map(|f| match f {
            Filter::Id(ids) if ids.len() == 1 => ids.first().cloned(),
            _ => None,
        });
    }
    let params = search::registry().compartment_params(rtype);
    filters.iter().find_map(|f| match f {
        Filter::Reference { param, any_of }
            if params.contains(param) || param == "patient" || param == "subject" =>
        {
            match any_of.as_slice() {
                [
                    ReferenceValue {
                        target_type,
                        id: Some(id),
                        url: None,
                    },
                ] if target_type.as_deref().is_none_or(|t| t == "Patient") => Some(id.clone()),
                _ => None,
            }
        }
        _ => None,
    })
}

pub const DEFAULT_COUNT: usize = 50;
pub const MAX_COUNT: usize = 1000;
/// `_include:iterate` stops after this many rounds.
const MAX_ITERATE: usize = 4;
/// Included resources per page are capped (a hostile `*:iterate`).
const MAX_INCLUDED: usize = 5000;
/// A search may name at most this many parameters, with at most this many
/// values in all: each becomes SQL, and the databases limit bind values.
const MAX_PARAMETERS: usize = 100;
const MAX_VALUES: usize = 1000;

fn check_size(params: &[(String, String)]) -> Result<()> {
    let values: usize = params.iter().map(|(_, v)| v.split(',').count()).sum();
    if params.len() > MAX_PARAMETERS || values > MAX_VALUES {
        return Err(CoreError::BadRequest(format!(
            "a search may have at most {MAX_PARAMETERS} parameters and {MAX_VALUES} values"
        )));
    }
    Ok(())
}

impl From<search::SearchError> for CoreError {
    fn from(e: search::SearchError) -> Self {
        match e {
            search::SearchError::UnknownParameter(p) => CoreError::UnknownParameter(p),
            other => CoreError::BadRequest(other.to_string()),
        }
    }
}

/// Encodes a cursor as an opaque, URL-safe string (hex of a JSON array):
/// the direction (`>` next, `<` previous), the sort values, the id.
fn encode_cursor(values: &[SortValue], last_id: &str) -> String {
    encode_directed(values, last_id, false)
}

fn encode_directed(values: &[SortValue], last_id: &str, backward: bool) -> String {
    let mut items: Vec<Value> = vec![Value::String(if backward { "<" } else { ">" }.to_owned())];
    items.extend(values.iter().map(|v| match v {
        SortValue::Text(s) => serde_json::json!({"s": s}),
        SortValue::Int(i) => serde_json::json!({"i": i}),
        SortValue::Real(r) => serde_json::json!({"r": r}),
    }));
    items.push(Value::String(last_id.to_owned()));
    Value::Array(items)
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_cursor(s: &str) -> Result<Cursor> {
    decode_directed(s).map(|(c, _)| c)
}

/// The cursor and whether it reads backward (a `previous` link).
fn decode_directed(s: &str) -> Result<(Cursor, bool)> {
    let bad = || CoreError::BadRequest("invalid paging cursor".to_owned());
    if !s.len().is_multiple_of(2) || s.len() > 8192 {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let mut items = v.as_array().cloned().ok_or_else(bad)?;
    let last_id = items
        .pop()
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(bad)?;
    if items.is_empty() {
        return Err(bad());
    }
    let backward = match items.remove(0).as_str() {
        Some("<") => true,
        Some(">") => false,
        _ => return Err(bad()),
    };
    let values = items
        .iter()
        .map(|item| {
            if let Some(s) = item.get("s").and_then(Value::as_str) {
                Some(SortValue::Text(s.to_owned()))
            } else if let Some(i) = item.get("i").and_then(Value::as_i64) {
                Some(SortValue::Int(i))
            } else {
                item.get("r").and_then(Value::as_f64).map(SortValue::Real)
            }
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)?;
    Ok((Cursor { values, last_id }, backward))
}

/// How resources are shaped on the way out (`_summary`, `_elements`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Full,
    Summary,
    Text,
    Data,
    Elements(Vec<String>),
}

impl Shape {
    fn of(result: &search::ResultParams) -> Shape {
        match (&result.summary, result.elements.is_empty()) {
            (Some(search::Summary::True), _) => Shape::Summary,
            (Some(search::Summary::Text), _) => Shape::Text,
            (Some(search::Summary::Data), _) => Shape::Data,
            (_, false) => Shape::Elements(result.elements.clone()),
            _ => Shape::Full,
        }
    }
}

/// Tags a shaped resource `SUBSETTED` (R4 search.html, `_summary`/views).
pub(crate) fn subsetted(map: &mut Map<String, Value>) {
    let tag = serde_json::json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"});
    let meta = map
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        let tags = meta.entry("tag").or_insert_with(|| Value::Array(vec![]));
        if let Some(tags) = tags.as_array_mut() {
            tags.push(tag);
        }
    }
}

/// Applies `_summary`/`_elements` to a stored body (unchanged for `Full`).
fn shape(body: &str, rtype: &str, shape: &Shape) -> String {
    if *shape == Shape::Full {
        return body.to_owned();
    }
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) else {
        return body.to_owned();
    };
    let always = ["resourceType", "id", "meta"];
    let keep = |key: &str, names: &[&str]| {
        always.contains(&key) || names.iter().any(|n| fhir::summary::key_is_element(key, n))
    };
    let mut out: Map<String, Value> = match shape {
        Shape::Full => map,
        Shape::Data => map.into_iter().filter(|(k, _)| k != "text").collect(),
        Shape::Summary => {
            let names = fhir::summary::summary_elements(rtype).unwrap_or_default();
            map.into_iter().filter(|(k, _)| keep(k, &names)).collect()
        }
        Shape::Text => {
            let mut names = fhir::summary::mandatory_elements(rtype).unwrap_or_default();
            names.push("text");
            map.into_iter().filter(|(k, _)| keep(k, &names)).collect()
        }
        Shape::Elements(list) => {
            let names: Vec<&str> = list.iter().map(String::as_str).collect();
            map.into_iter().filter(|(k, _)| keep(k, &names)).collect()
        }
    };
    subsetted(&mut out);
    Value::Object(out).to_string()
}

/// Parameters echoed in `self`/`next` links: everything the search used,
/// minus the cursor and formatting, minus what lenient handling ignored.
fn kept(params: &[(String, String)], ignored: &[String]) -> Vec<(String, String)> {
    params
        .iter()
        .filter(|(n, _)| {
            !matches!(n.as_str(), "_cursor" | "_format" | "_pretty") && !ignored.contains(n)
        })
        .cloned()
        .collect()
}

impl<S: Store> Service<S> {
    /// `GET [type]?…` / `POST [type]/_search`: a `searchset` Bundle and the
    /// parameters ignored under lenient handling.
    pub async fn search(
        &self,
        caller: &Caller,
        rtype: &str,
        params: &[(String, String)],
        lenient: bool,
    ) -> Result<(String, Vec<String>)> {
        check_type(rtype)?;
        note_search(caller, rtype, params);
        let path = format!("{}/{rtype}", self.config.base_url);
        let out = self
            .search_with(caller, rtype, params, lenient, None, &path, &[])
            .await;
        // Parameter names are the client's text: keep only those the
        // search understood (none when it failed).
        if let Some(q) = caller.trail().state().search.as_mut() {
            match &out {
                Ok((_, ignored)) => q.params.retain(|p| !ignored.contains(p)),
                Err(_) => q.params.clear(),
            }
        }
        out
    }

    /// Decides over what a search of `rtype` runs for `caller`, and the
    /// filters that keep it there (guarding `_has` and chains).
    async fn scope(
        &self,
        caller: &Caller,
        rtype: &str,
        patient: Option<&str>,
        filters: &mut Vec<Filter>,
        broad: bool,
    ) -> Result<Scope> {
        // "Latest n" conditions are resolved for the searched type, or for
        // every type when includes or criteria reach into others.
        let only = [rtype];
        let types: Option<&[&str]> = if broad || filters.iter().any(reaches) {
            None
        } else {
            Some(&only)
        };
        let p = caller.principal();
        let role = self.policy.role_of(p).map_err(forbid)?;
        if role.kind == RoleKind::Integration {
            self.policy
                .unlinked(p, rtype, Permission::Search)
                .map_err(forbid)?;
            if let Some(patient) = patient {
                filters.push(compartment_filter(patient, rtype));
            }
            return Ok(Scope::System);
        }
        if !is_person_type(rtype) {
            self.policy
                .unlinked(p, rtype, Permission::Search)
                .map_err(forbid)?;
            refuse_reaching(filters)?;
            return Ok(Scope::Directory);
        }
        let bound = match role.kind {
            RoleKind::Patient | RoleKind::Proxy => p.patient.clone(),
            _ => None,
        };
        let person = bound
            .or_else(|| patient.map(str::to_owned))
            .or_else(|| named_patient(rtype, filters));
        match person {
            Some(person) => {
                let access = self.access_for(caller, &person, types).await?;
                access.check(rtype, Permission::Search).map_err(forbid)?;
                self.check_criteria(&access, rtype, filters)?;
                filters.push(owned_by(&person, rtype));
                filters.extend(filters_of(access.criteria(rtype).map_err(forbid)?));
                for f in filters.iter_mut() {
                    self.guard(&access, f)?;
                }
                Ok(Scope::Person(Box::new(access)))
            }
            None if rtype == "Patient" => {
                refuse_reaching(filters)?;
                let c = self
                    .policy
                    .population(p, self.clock.now())
                    .map_err(forbid)?;
                let mut population = filters_of(vec![c]);
                // Dissent aimed at organisation types, and "local only"
                // practices, need to know what the organisation is.
                for f in population.iter_mut() {
                    if let Filter::Related {
                        org,
                        org_type,
                        local,
                        ..
                    } = f
                    {
                        *org_type = self.org_type(org).await?;
                        *local = self.policy.is_local(org);
                    }
                }
                filters.extend(population);
                Ok(Scope::Population)
            }
            None => Err(CoreError::Forbidden {
                reason: "one-person-at-a-time",
                message: format!(
                    "a search of {rtype} must name one person (patient=[id]) for the role '{}'",
                    p.role
                ),
                break_glass: false,
            }),
        }
    }

    /// Refuses criteria over elements `access`'s view drops for `rtype`
    /// (searching on them would reveal what the view withholds).
    fn check_criteria(
        &self,
        access: &PatientAccess,
        rtype: &str,
        filters: &[Filter],
    ) -> Result<()> {
        let Some(allowed) = access.searchable_elements(rtype) else {
            return Ok(());
        };
        for f in filters {
            let param = match f {
                Filter::String { param, .. }
                | Filter::Token { param, .. }
                | Filter::TokenText { param, .. }
                | Filter::Reference { param, .. }
                | Filter::Date { param, .. }
                | Filter::Number { param, .. }
                | Filter::Quantity { param, .. }
                | Filter::Uri { param, .. }
                | Filter::Composite { param, .. }
                | Filter::Chain { param, .. }
                | Filter::Missing { param, .. } => Some(param.as_str()),
                Filter::AnyOf(groups) => {
                    for g in groups {
                        self.check_criteria(access, rtype, g)?;
                    }
                    None
                }
                _ => None,
            };
            let Some(param) = param else { continue };
            if param.starts_with('_') {
                // _tag, _security, _profile, _source: meta is always shown.
                continue;
            }
            let elements = search::registry()
                .param(rtype, param)
                .and_then(|d| d.expression.as_deref())
                .map(|e| elements_of(rtype, e))
                .unwrap_or_default();
            if elements.is_empty() || elements.iter().any(|e| !allowed.contains(e)) {
                return Err(CoreError::Forbidden {
                    reason: "criteria-not-permitted",
                    message: format!(
                        "the '{}' view does not let {rtype} be searched by {param}",
                        access.role
                    ),
                    break_glass: false,
                });
            }
        }
        Ok(())
    }

    /// Restricts what `_has` and chains look at to what `access` may see of
    /// the same person (or of directories), so criteria cannot reveal it.
    fn guard(&self, access: &PatientAccess, f: &mut Filter) -> Result<()> {
        let (target, inner) = match f {
            Filter::Chain {
                target_type,
                filters,
                ..
            } => (target_type.clone(), filters),
            Filter::Has {
                source_type,
                filters,
                ..
            } => (source_type.clone(), filters),
            Filter::AnyOf(groups) => {
                for g in groups.iter_mut() {
                    for f in g.iter_mut() {
                        self.guard(access, f)?;
                    }
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        if is_person_type(&target) {
            self.check_criteria(access, &target, inner)?;
            inner.push(owned_by(&access.patient_id, &target));
            inner.extend(filters_of(access.criteria(&target).map_err(forbid)?));
        } else if !policy::roles::DIRECTORY_TYPES.contains(&target.as_str()) {
            return Err(CoreError::Forbidden {
                reason: "criteria-not-permitted",
                message: format!("criteria over {target} are not available to your role"),
                break_glass: false,
            });
        }
        for f in inner.iter_mut() {
            self.guard(access, f)?;
        }
        Ok(())
    }

    /// `GET [base]?_type=A,B&…`: a search over several types with the
    /// parameters they share, in (type, id) order. One type is an ordinary
    /// type search; `_sort` across types is refused (400).
    pub async fn system_search(
        &self,
        caller: &Caller,
        params: &[(String, String)],
        lenient: bool,
    ) -> Result<(String, Vec<String>)> {
        let mut types: Vec<String> = params
            .iter()
            .filter(|(k, _)| k == "_type")
            .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
            .collect();
        types.sort();
        types.dedup();
        for t in &types {
            check_type(t)?;
        }
        let rest: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k != "_type")
            .cloned()
            .collect();
        match types.as_slice() {
            [] => Err(CoreError::BadRequest(
                "a system search needs _type (one or more resource types)".to_owned(),
            )),
            [one] => {
                let path = self.config.base_url.clone();
                let prefix = [("_type".to_owned(), one.clone())];
                self.search_with(caller, one, &rest, lenient, None, &path, &prefix)
                    .await
            }
            _ => {
                self.require_system(caller, "a search across several types")?;
                for t in &types {
                    self.policy
                        .unlinked(caller.principal(), t, Permission::Search)
                        .map_err(forbid)?;
                }
                self.multi_type_search(&types, params, &rest, lenient).await
            }
        }
    }

    async fn multi_type_search(
        &self,
        types: &[String],
        params: &[(String, String)],
        rest: &[(String, String)],
        lenient: bool,
    ) -> Result<(String, Vec<String>)> {
        check_size(rest)?;
        let now = self.clock.now();
        // Parse once per type: a parameter must mean something for every type.
        let mut parsed = Vec::with_capacity(types.len());
        for t in types {
            parsed.push((t.clone(), search::parse(t, rest, now, lenient)?));
        }
        let Some((_, first)) = parsed.first() else {
            return Err(CoreError::Internal);
        };
        let result = first.result.clone();
        let ignored = first.ignored.clone();
        if !result.sort.is_empty() {
            return Err(CoreError::NotSupported(
                "_sort across several resource types is not supported".to_owned(),
            ));
        }
        let count = result.count.unwrap_or(DEFAULT_COUNT).min(MAX_COUNT);
        let (start_type, after_id) =
            match result.cursor.as_deref().map(decode_cursor).transpose()? {
                Some(c) => match c.values.first() {
                    Some(SortValue::Text(t)) => (Some(t.clone()), Some(c.last_id)),
                    _ => return Err(CoreError::BadRequest("invalid paging cursor".to_owned())),
                },
                None => (None, None),
            };
        let path = self.config.base_url.clone();
        let kept = kept(params, &ignored);
        let mut w = BundleWriter::new("searchset", &self.ids.new_id(), &instant::to_instant(now));
        if result.summary == Some(search::Summary::Count)
            || matches!(
                result.total,
                Some(search::Total::Accurate) | Some(search::Total::Estimate)
            )
        {
            let mut total = 0;
            for (t, p) in &parsed {
                total += self.store.count(t, &p.filters).await?;
            }
            w.total(total);
            if result.summary == Some(search::Summary::Count) {
                crate::page_links(&mut w, &path, &kept, None, None, None);
                return Ok((w.finish(), ignored));
            }
        }
        let mut rows: Vec<StoredResource> = Vec::new();
        for (t, p) in &parsed {
            if rows.len() > count {
                break;
            }
            let after = match (&start_type, &after_id) {
                (Some(st), _) if t < st => continue,
                (Some(st), Some(id)) if t == st => Some(Cursor {
                    values: vec![],
                    last_id: id.clone(),
                }),
                _ => None,
            };
            let page = self
                .store
                .search(&SearchQuery {
                    rtype: t.clone(),
                    filters: p.filters.clone(),
                    sort: vec![],
                    after,
                    backward: false,
                    limit: count + 1 - rows.len(),
                })
                .await?;
            rows.extend(page.into_iter().map(|r| r.resource));
        }
        let has_next = rows.len() > count;
        rows.truncate(count);
        let next = rows
            .last()
            .filter(|_| has_next)
            .map(|last| encode_cursor(&[SortValue::Text(last.rtype.clone())], &last.id));
        crate::page_links(&mut w, &path, &kept, result.cursor.as_deref(), next, None);
        let shape = Shape::of(&result);
        let included = self
            .included(&rows, &result.include, &result.revinclude)
            .await?;
        // System clients only (checked by the caller).
        for r in &rows {
            if let Some(body) = &r.body {
                self.entry(&mut w, r, body, "match", &shape);
            }
        }
        for r in &included {
            if let Some(body) = &r.body {
                self.entry(&mut w, r, body, "include", &shape);
            }
        }
        Ok((w.finish(), ignored))
    }

    /// `GET Patient/[id]/[type]?…`: a search restricted to the patient's
    /// compartment (the CompartmentDefinition's parameters for that type).
    pub async fn compartment_search(
        &self,
        caller: &Caller,
        patient: &str,
        rtype: &str,
        params: &[(String, String)],
        lenient: bool,
    ) -> Result<(String, Vec<String>)> {
        check_id(patient)?;
        check_type(rtype)?;
        let links = search::registry().compartment_params(rtype);
        if links.is_empty() && rtype != "Patient" {
            return Err(CoreError::BadRequest(format!(
                "{rtype} is not in the Patient compartment"
            )));
        }
        let path = format!("{}/Patient/{patient}/{rtype}", self.config.base_url);
        self.search_with(caller, rtype, params, lenient, Some(patient), &path, &[])
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn search_with(
        &self,
        caller: &Caller,
        rtype: &str,
        params: &[(String, String)],
        lenient: bool,
        patient: Option<&str>,
        path: &str,
        link_prefix: &[(String, String)],
    ) -> Result<(String, Vec<String>)> {
        check_size(params)?;
        let now = self.clock.now();
        let parsed = search::parse(rtype, params, now, lenient)?;
        let result = &parsed.result;
        let count = result.count.unwrap_or(DEFAULT_COUNT).min(MAX_COUNT);
        let mut filters = parsed.filters.clone();
        let broad = !result.include.is_empty() || !result.revinclude.is_empty();
        let scope = self
            .scope(caller, rtype, patient, &mut filters, broad)
            .await?;
        if let Scope::Person(access) = &scope {
            // Sorting by an element the view drops would reveal its order.
            let sort_filters: Vec<Filter> = result
                .sort
                .iter()
                .filter_map(|k| match k {
                    store::search::SortKey::Param { param, .. } => Some(Filter::Missing {
                        param: param.clone(),
                        kind: store::search::IndexKind::Token,
                        missing: false,
                    }),
                    _ => None,
                })
                .collect();
            self.check_criteria(access, rtype, &sort_filters)?;
        }
        let (after, backward) = match result.cursor.as_deref().map(decode_directed).transpose()? {
            // A cursor belongs to the sort it was made with.
            Some((c, b)) if c.values.len() == result.sort.len() => (Some(c), b),
            Some(_) => return Err(CoreError::BadRequest("invalid paging cursor".to_owned())),
            None => (None, false),
        };
        let shape = Shape::of(result);
        let mut kept_params = link_prefix.to_vec();
        kept_params.extend(kept(params, &parsed.ignored));
        let kept = kept_params;
        let mut w = BundleWriter::new("searchset", &self.ids.new_id(), &instant::to_instant(now));
        let withheld = matches!(&scope, Scope::Person(a) if a.sealed_withheld);

        if result.summary == Some(search::Summary::Count) {
            w.total(self.store.count(rtype, &filters).await?);
            crate::page_links(&mut w, path, &kept, None, None, None);
            if withheld {
                w.entry(None, Some(&withheld_outcome()), Some("outcome"), None, None);
            }
            return Ok((w.finish(), parsed.ignored));
        }
        if matches!(
            result.total,
            Some(search::Total::Accurate) | Some(search::Total::Estimate)
        ) {
            w.total(self.store.count(rtype, &filters).await?);
        }

        let rows = if count == 0 {
            vec![]
        } else {
            self.store
                .search(&SearchQuery {
                    rtype: rtype.to_owned(),
                    filters,
                    sort: result.sort.clone(),
                    after: after.clone(),
                    backward,
                    limit: count + 1,
                })
                .await?
        };
        // More rows beyond this page in the direction read.
        let more = rows.len() > count;
        let mut page: Vec<_> = rows.into_iter().take(count).collect();
        if backward {
            page.reverse();
        }
        // Forward: a next page if more rows follow, a previous one unless this
        // is the first page. Backward: the page we came from follows, and a
        // previous one exists if more rows precede.
        let (has_next, has_previous) = if backward {
            (true, more)
        } else {
            (more, after.is_some())
        };

        let next = page
            .last()
            .filter(|_| has_next)
            .map(|last| encode_directed(&last.sort_values, &last.resource.id, false));
        let previous = page
            .first()
            .filter(|_| has_previous)
            .map(|first| encode_directed(&first.sort_values, &first.resource.id, true));
        crate::page_links(
            &mut w,
            path,
            &kept,
            result.cursor.as_deref(),
            next,
            previous,
        );

        let matches: Vec<StoredResource> = page.into_iter().map(|r| r.resource).collect();
        let included = self
            .included(&matches, &result.include, &result.revinclude)
            .await?;
        let mut people: std::collections::HashMap<String, Option<PatientAccess>> =
            std::collections::HashMap::new();
        for r in &matches {
            if let Some(body) = self.released(caller, &scope, &mut people, r).await? {
                self.entry(&mut w, r, &body, "match", &shape);
            }
        }
        for r in &included {
            if let Some(body) = self.released(caller, &scope, &mut people, r).await? {
                self.entry(&mut w, r, &body, "include", &shape);
            }
        }
        if withheld {
            w.entry(None, Some(&withheld_outcome()), Some("outcome"), None, None);
        }
        Ok((w.finish(), parsed.ignored))
    }

    /// The body of a search result as it may leave under `scope`, or `None`.
    /// Every item is decided here, whatever the query already filtered.
    async fn released(
        &self,
        caller: &Caller,
        scope: &Scope,
        people: &mut std::collections::HashMap<String, Option<PatientAccess>>,
        r: &StoredResource,
    ) -> Result<Option<String>> {
        let out = self.released_inner(caller, scope, people, r).await?;
        // `release` notes what it lets out; the other branches here.
        if matches!(scope, Scope::System) || !is_person_type(&r.rtype) {
            crate::access::note(caller, r, out.is_some());
        }
        Ok(out)
    }

    async fn released_inner(
        &self,
        caller: &Caller,
        scope: &Scope,
        people: &mut std::collections::HashMap<String, Option<PatientAccess>>,
        r: &StoredResource,
    ) -> Result<Option<String>> {
        let Some(body) = r.body.as_deref() else {
            return Ok(None);
        };
        let p = caller.principal();
        match scope {
            Scope::System => Ok(Some(body.to_owned())),
            _ if !is_person_type(&r.rtype) => Ok(self
                .policy
                .unlinked(p, &r.rtype, Permission::Read)
                .is_ok()
                .then(|| body.to_owned())),
            Scope::Person(access) => Ok(self.release(caller, access, r)),
            Scope::Directory | Scope::Population => {
                let value: serde_json::Value =
                    serde_json::from_str(body).map_err(|_| CoreError::Internal)?;
                let Some(person) = crate::access::patient_of(&r.rtype, &r.id, &value) else {
                    return Ok(None);
                };
                if !people.contains_key(&person) {
                    // Cached per person for the whole page: resolve every type.
                    let access = match self.access_for(caller, &person, None).await {
                        Ok(a) => Some(a),
                        Err(CoreError::Forbidden { .. }) => None,
                        Err(e) => return Err(e),
                    };
                    people.insert(person.clone(), access);
                }
                Ok(people
                    .get(&person)
                    .and_then(Option::as_ref)
                    .and_then(|a| self.release(caller, a, r)))
            }
        }
    }

    fn entry(&self, w: &mut BundleWriter, r: &StoredResource, body: &str, mode: &str, how: &Shape) {
        let full_url = format!("{}/{}/{}", self.config.base_url, r.rtype, r.id);
        let shaped = shape(body, &r.rtype, how);
        w.entry(Some(&full_url), Some(&shaped), Some(mode), None, None);
    }

    /// The resources `_include` and `_revinclude` add to a page, without the
    /// page's own matches and without duplicates.
    async fn included(
        &self,
        matches: &[StoredResource],
        include: &[search::Include],
        revinclude: &[search::Include],
    ) -> Result<Vec<StoredResource>> {
        if include.is_empty() && revinclude.is_empty() {
            return Ok(vec![]);
        }
        let mut seen: std::collections::HashSet<Key> = matches
            .iter()
            .map(|r| (r.rtype.clone(), r.id.clone()))
            .collect();
        let mut out: Vec<StoredResource> = Vec::new();
        let mut frontier: Vec<Key> = seen.iter().cloned().collect();
        for round in 0..MAX_ITERATE {
            let mut found: Vec<Key> = Vec::new();
            for inc in include.iter().filter(|i| round == 0 || i.iterate) {
                let sources: Vec<Key> = frontier
                    .iter()
                    .filter(|(t, _)| *t == inc.source_type)
                    .cloned()
                    .collect();
                if sources.is_empty() {
                    continue;
                }
                found.extend(
                    self.store
                        .references_from(&sources, inc.param.as_deref(), inc.target_type.as_deref())
                        .await?,
                );
            }
            for inc in revinclude.iter().filter(|i| round == 0 || i.iterate) {
                let targets: Vec<Key> = frontier.clone();
                if targets.is_empty() {
                    continue;
                }
                found.extend(
                    self.store
                        .referrers(&inc.source_type, inc.param.as_deref(), &targets)
                        .await?,
                );
            }
            let mut fresh: Vec<Key> = found
                .into_iter()
                .filter(|k| seen.insert(k.clone()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            // Never read more than the cap allows.
            fresh.truncate(MAX_INCLUDED.saturating_sub(out.len()));
            let resources = self.store.read_many(&fresh).await?;
            frontier = resources
                .iter()
                .map(|r| (r.rtype.clone(), r.id.clone()))
                .collect();
            out.extend(resources);
            if out.len() >= MAX_INCLUDED {
                out.truncate(MAX_INCLUDED);
                break;
            }
        }
        Ok(out)
    }

    /// `GET Patient/[id]/$everything`: the patient, every resource in their
    /// compartment, and the resources those refer to, paged by (type, id).
    /// Takes `_since`, `_type`, `_count` and the cursor; `start`/`end`
    /// restrict clinical dates (resources with a date outside are left out).
    pub async fn everything(
        &self,
        caller: &Caller,
        patient: &str,
        params: &[(String, String)],
    ) -> Result<String> {
        check_id(patient)?;
        match self.store.read("Patient", patient).await? {
            Some(r) if !r.deleted => {}
            Some(_) => {
                return Err(CoreError::Gone {
                    rtype: "Patient".into(),
                    id: patient.into(),
                });
            }
            None => {
                return Err(CoreError::NotFound {
                    rtype: "Patient".into(),
                    id: patient.into(),
                });
            }
        }
        let access = if self.is_system(caller) {
            self.policy
                .unlinked(caller.principal(), "Patient", Permission::Read)
                .map_err(forbid)?;
            None
        } else {
            let a = self.access_for(caller, patient, None).await?;
            a.check("Patient", Permission::Read).map_err(forbid)?;
            Some(a)
        };
        let mut query = store::CompartmentQuery {
            patient_id: patient.to_owned(),
            limit: DEFAULT_COUNT,
            ..Default::default()
        };
        let mut kept_params = Vec::new();
        for (name, value) in params {
            match name.as_str() {
                "_since" => {
                    query.since = Some(instant::parse_instant(value).ok_or_else(|| {
                        CoreError::BadRequest(
                            "_since must be an instant, e.g. 2024-01-01T00:00:00Z".to_owned(),
                        )
                    })?);
                    kept_params.push((name.clone(), value.clone()));
                }
                "_type" => {
                    let types: Vec<String> = value.split(',').map(str::to_owned).collect();
                    for t in &types {
                        check_type(t)?;
                    }
                    query.types = Some(types);
                    kept_params.push((name.clone(), value.clone()));
                }
                "_count" => {
                    let n: usize = value.parse().map_err(|_| {
                        CoreError::BadRequest("_count must be a non-negative integer".to_owned())
                    })?;
                    query.limit = n.min(MAX_COUNT);
                    kept_params.push((name.clone(), value.clone()));
                }
                "start" | "end" => {
                    let bound = instant::parse_instant(value)
                        .ok_or_else(|| CoreError::BadRequest(format!("{name} must be a date")))?;
                    if name == "start" {
                        query.start = Some(bound);
                    } else {
                        // `end` is inclusive of the whole day/period given.
                        query.end = search::parse_date_range(value)
                            .map(|(_, high)| high)
                            .or(Some(bound));
                    }
                    kept_params.push((name.clone(), value.clone()));
                }
                "_cursor" => {
                    let c = decode_cursor(value)?;
                    let rtype = match c.values.first() {
                        Some(SortValue::Text(t)) => t.clone(),
                        _ => return Err(CoreError::BadRequest("invalid paging cursor".to_owned())),
                    };
                    query.after = Some((rtype, c.last_id));
                }
                "_format" | "_pretty" => {}
                other => return Err(CoreError::UnknownParameter(other.to_owned())),
            }
        }
        let limit = query.limit;
        query.limit = limit + 1;
        let mut rows = if limit == 0 {
            vec![]
        } else {
            self.store.compartment(&query).await?
        };
        let has_next = rows.len() > limit;
        rows.truncate(limit);
        let path = format!("{}/Patient/{patient}/$everything", self.config.base_url);
        let now = self.clock.now();
        let mut w = BundleWriter::new("searchset", &self.ids.new_id(), &instant::to_instant(now));
        let cursor_in = params
            .iter()
            .find(|(n, _)| n == "_cursor")
            .map(|(_, v)| v.clone());
        let next = rows
            .last()
            .filter(|_| has_next)
            .map(|last| encode_cursor(&[SortValue::Text(last.rtype.clone())], &last.id));
        crate::page_links(
            &mut w,
            &path,
            &kept_params,
            cursor_in.as_deref(),
            next,
            None,
        );
        // Resources the page refers to that are outside the compartment
        // (practitioners, organisations, medications…).
        // Shown rows only: what a withheld item refers to must not ride along.
        let shown: Vec<(&StoredResource, Option<String>)> = rows
            .iter()
            .map(|r| {
                let body = match &access {
                    None => {
                        crate::access::note(caller, r, r.body.is_some());
                        r.body.clone()
                    }
                    Some(a) => self.release(caller, a, r),
                };
                (r, body)
            })
            .collect();
        let keys: Vec<Key> = shown
            .iter()
            .filter(|(_, b)| b.is_some())
            .map(|(r, _)| (r.rtype.clone(), r.id.clone()))
            .collect();
        let mut seen: std::collections::HashSet<Key> = keys.iter().cloned().collect();
        let referenced: Vec<Key> = self
            .store
            .references_from(&keys, None, None)
            .await?
            .into_iter()
            .filter(|(t, _)| t != "Patient")
            .filter(|k| seen.insert(k.clone()))
            .collect();
        let referenced = self.store.read_many(&referenced).await?;
        for (r, body) in &shown {
            if let Some(body) = body {
                self.entry(&mut w, r, body, "match", &Shape::Full);
            }
        }
        // Only what belongs to no patient (practitioners, organisations,
        // medications…): another patient's resources never ride along.
        for r in referenced.iter().filter(|r| belongs_to_no_patient(r)) {
            let allowed = access.is_none()
                || self
                    .policy
                    .unlinked(caller.principal(), &r.rtype, Permission::Read)
                    .is_ok();
            if let (true, Some(body)) = (allowed, &r.body) {
                self.entry(&mut w, r, body, "include", &Shape::Full);
            }
        }
        if access.as_ref().is_some_and(|a| a.sealed_withheld) {
            w.entry(None, Some(&withheld_outcome()), Some("outcome"), None, None);
        }
        Ok(w.finish())
    }
}

/// Can this resource belong to no patient? True for types outside the
/// Patient CompartmentDefinition (organisations, practitioners,
/// medications…). Types inside it are either this patient's (and listed as
/// matches on their own page) or another patient's (and never included).
fn belongs_to_no_patient(r: &StoredResource) -> bool {
    r.rtype != "Patient" && search::registry().compartment_params(&r.rtype).is_empty()
}

/// Records the search's type and parameter names (never their values) in
/// the caller's trail.
fn note_search(caller: &Caller, rtype: &str, params: &[(String, String)]) {
    let mut names: Vec<String> = params.iter().map(|(k, _)| k.clone()).collect();
    names.sort();
    names.dedup();
    caller.trail().state().search = Some(audit::AuditSearch {
        rtype: rtype.to_owned(),
        params: names,
        total: 0,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let values = vec![
            SortValue::Text("a\"b".into()),
            SortValue::Int(-5),
            SortValue::Real(1.5),
        ];
        let c = encode_cursor(&values, "id-1");
        assert!(c.bytes().all(|b| b.is_ascii_hexdigit()));
        let back = decode_cursor(&c).unwrap();
        assert_eq!(back.values, values);
        assert_eq!(back.last_id, "id-1");
        let (_, backward) = decode_directed(&encode_directed(&values, "id-1", true)).unwrap();
        assert!(backward);
        assert!(decode_cursor("zz").is_err());
        assert!(decode_cursor("5b5d").is_err(), "[] has no id");
    }

    #[test]
    fn shaping() {
        let body = r#"{"resourceType":"Patient","id":"p","meta":{"versionId":"1"},"text":{"status":"generated","div":"<div/>"},"name":[{"family":"A"}],"photo":[{"url":"x"}],"deceasedBoolean":false}"#;
        let v: Value = serde_json::from_str(&shape(body, "Patient", &Shape::Summary)).unwrap();
        assert!(v.get("name").is_some() && v.get("deceasedBoolean").is_some());
        assert!(v.get("photo").is_none() && v.get("text").is_none());
        assert_eq!(v["meta"]["tag"][0]["code"], "SUBSETTED");
        let v: Value = serde_json::from_str(&shape(body, "Patient", &Shape::Data)).unwrap();
        assert!(v.get("text").is_none() && v.get("photo").is_some());
        let v: Value = serde_json::from_str(&shape(
            body,
            "Patient",
            &Shape::Elements(vec!["photo".into()]),
        ))
        .unwrap();
        assert!(v.get("photo").is_some() && v.get("name").is_none() && v.get("id").is_some());
        assert_eq!(shape(body, "Patient", &Shape::Full), body);
    }
}
