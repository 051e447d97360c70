//! Access: who is calling, the facts the policy needs about a person, and
//! the policy's answers turned into store filters and shaped bodies.
//!
//! Invariants:
//! - Every interaction takes a [`Caller`]; nothing is read or written
//!   without a decision of the `policy` crate for that caller.
//! - Facts are read fresh for every request, inside the store the request
//!   uses (which may answer from its relationship cache only after checking
//!   the person's relationship version in the same snapshot: see
//!   `store::relationship_cache`), so a change of relationship or consent
//!   applies at once.
//! - Criteria are applied in the query (so paging, counts, sorting and
//!   criteria see only what may be seen) *and* every item is checked again
//!   on its way out.

use policy::{Criterion, Denial, Facts, Item, PatientAccess, Permission, Principal, RoleKind};
use serde_json::Value;
use store::search::{Filter, IndexKind, Prefix, RangeValue, ReferenceValue, SortKey, TokenValue};
use store::{SearchQuery, Store, StoredResource};

use crate::Service;
use crate::error::{CoreError, Result};
use crate::trail::PROXY_REVIEW_DUE;
use crate::trail::Trail;

/// An authenticated caller: built by the API from a verified token, or by
/// the server's own trusted tasks (demo loading, import) as a system client.
#[derive(Debug, Clone)]
pub struct Caller {
    principal: Principal,
    trail: Trail,
}

impl Caller {
    /// A caller with a trail of its own (tests, tools).
    pub fn new(principal: Principal) -> Caller {
        Caller::with_trail(principal, Trail::default())
    }

    /// A caller recording into the request's `trail` (the API's).
    pub fn with_trail(principal: Principal, trail: Trail) -> Caller {
        trail.state().user = Some(audit::AuditUser {
            subject: principal.subject.clone(),
            name: principal.name.clone(),
            role: principal.role.clone(),
            registration: principal.registration.clone(),
            org: principal.org.clone(),
        });
        Caller { principal, trail }
    }

    /// What this request has done so far, for its audit record.
    pub fn trail(&self) -> &Trail {
        &self.trail
    }

    /// A system client with every `system/` scope: for the server's own
    /// tasks (loading demo data, imports), never for a request.
    pub fn system(subject: &str, org: Option<&str>) -> Caller {
        Caller::new(Principal {
            subject: subject.to_owned(),
            name: subject.to_owned(),
            role: "integration".to_owned(),
            org: org.map(str::to_owned),
            registration: None,
            patient: None,
            related_person: None,
            scopes: policy::scopes::parse("system/*.cruds"),
        })
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

pub(crate) fn forbid(d: Denial) -> CoreError {
    CoreError::Forbidden {
        reason: d.code,
        message: d.message,
        break_glass: d.break_glass_available,
    }
}

/// Does this type hold person-level data (the Patient compartment)?
pub(crate) fn is_person_type(rtype: &str) -> bool {
    rtype == "Patient" || !search::registry().compartment_params(rtype).is_empty()
}

/// The patient (compartment) a resource belongs to.
pub(crate) fn patient_of(rtype: &str, id: &str, value: &Value) -> Option<String> {
    if rtype == "Patient" {
        return Some(id.to_owned());
    }
    if !is_person_type(rtype) {
        return None;
    }
    search::patient_of(rtype, id, value)
}

/// The filter restricting a search to items that belong to `patient` (their
/// stored compartment): what access scoping uses, so that an item of
/// another person that merely mentions this one is never counted.
pub(crate) fn owned_by(patient: &str, rtype: &str) -> Filter {
    if rtype == "Patient" {
        Filter::Id(vec![patient.to_owned()])
    } else {
        Filter::Compartment(patient.to_owned())
    }
}

/// The filter restricting `rtype` to one patient's compartment as FHIR
/// defines it (any compartment parameter referring to the patient): for
/// system clients' compartment searches.
pub(crate) fn compartment_filter(patient: &str, rtype: &str) -> Filter {
    if rtype == "Patient" {
        return Filter::Id(vec![patient.to_owned()]);
    }
    Filter::AnyOf(
        search::registry()
            .compartment_params(rtype)
            .iter()
            .map(|param| {
                vec![Filter::Reference {
                    param: param.clone(),
                    any_of: vec![ReferenceValue {
                        target_type: Some("Patient".to_owned()),
                        id: Some(patient.to_owned()),
                        url: None,
                    }],
                }]
            })
            .collect(),
    )
}

/// The policy's criteria as store filters.
pub(crate) fn filters_of(criteria: Vec<Criterion>) -> Vec<Filter> {
    criteria.into_iter().filter_map(filter_of).collect()
}

fn filter_of(c: Criterion) -> Option<Filter> {
    Some(match c {
        Criterion::Token { param, not, any_of } => Filter::Token {
            param,
            not,
            any_of: any_of
                .into_iter()
                .map(|(system, code)| TokenValue {
                    system,
                    code: Some(code),
                })
                .collect(),
        },
        Criterion::DateFrom { param, from } => Filter::Date {
            param,
            any_of: vec![RangeValue {
                prefix: Prefix::Ge,
                low: from,
                high: from,
            }],
        },
        Criterion::Ids(ids) => Filter::Id(ids),
        Criterion::Related {
            org,
            user,
            now,
            recent_since,
        } => Filter::Related {
            org,
            user: Some(user),
            now,
            recent_since,
            // Filled in by the population search, which knows the
            // organisation.
            org_type: None,
            local: false,
        },
        Criterion::AnyOf(groups) => {
            // A group without conditions admits everything.
            if groups.iter().any(Vec::is_empty) {
                return None;
            }
            Filter::AnyOf(groups.into_iter().map(filters_of).collect())
        }
        Criterion::Nothing => Filter::Id(vec![]),
    })
}

/// An item's `id` and `meta` only, as a JSON object: what a full view's
/// item decision reads (`PatientAccess::decides_by_meta`). The rest of
/// the body is checked as JSON but not built.
fn head_of(body: &str) -> Result<Value> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        meta: Option<Value>,
    }
    let head: Head = serde_json::from_str(body).map_err(|_| CoreError::Internal)?;
    let mut map = serde_json::Map::new();
    if let Some(id) = head.id {
        map.insert("id".to_owned(), Value::String(id));
    }
    if let Some(meta) = head.meta {
        map.insert("meta".to_owned(), meta);
    }
    Ok(Value::Object(map))
}

/// Records `r` in the caller's trail when it was `released`.
pub(crate) fn note(caller: &Caller, r: &StoredResource, released: bool) {
    if released {
        caller
            .trail()
            .entity(&r.rtype, &r.id, Some(r.version), r.body.as_deref());
    }
}

/// The body of an item `access` decides on, as it may leave: unchanged, cut
/// to the view's elements (tagged `SUBSETTED`), or `None` when withheld.
fn show(
    access: &PatientAccess,
    rtype: &str,
    patient: Option<&str>,
    body: &str,
    value: Value,
) -> Option<String> {
    match access.item(rtype, patient, &value) {
        Item::Show(None) => Some(body.to_owned()),
        Item::Show(Some(elements)) => {
            let Value::Object(mut map) = value else {
                return None;
            };
            policy::keep_elements(&mut map, elements);
            crate::searching::subsetted(&mut map);
            // Straight to bytes: `Value`'s `Display` goes through the
            // formatter, a measurable cost on every restricted-view read.
            // (A `Value` always serialises; were it not to, nothing leaves.)
            serde_json::to_string(&Value::Object(map)).ok()
        }
        Item::Withhold(_) => None,
    }
}

impl<S: Store> Service<S> {
    /// The policy's decision on `caller`'s access to `patient`'s record,
    /// with the `Latest` conditions of `types` resolved (all with `None`;
    /// unresolved ones admit nothing).
    pub(crate) async fn access_for(
        &self,
        caller: &Caller,
        patient: &str,
        types: Option<&[&str]>,
    ) -> Result<PatientAccess> {
        let p = caller.principal();
        let role = self.policy.role_of(p).map_err(forbid)?;
        let rows = if role.kind == RoleKind::Integration {
            vec![]
        } else {
            self.store
                .relationships(patient, p.org.as_deref(), Some(&p.subject))
                .await?
        };
        self.access_with(caller, patient, rows, types).await
    }

    /// [`Self::access_for`] with the patient's relationship rows already
    /// read (by [`Store::read_with_relationships`], for `caller`'s
    /// organisation and subject).
    pub(crate) async fn access_with(
        &self,
        caller: &Caller,
        patient: &str,
        rows: Vec<store::RelationshipRow>,
        types: Option<&[&str]>,
    ) -> Result<PatientAccess> {
        let p = caller.principal();
        caller.trail().patient(patient);
        let role = self.policy.role_of(p).map_err(forbid)?;
        let relationships: Vec<policy::Relationship> = rows
            .into_iter()
            .map(|r| policy::Relationship {
                org: r.org,
                kind: r.kind,
                user: r.user,
                active: r.active,
                start: r.start,
                end: r.end,
                detail: r.detail,
            })
            .collect();
        let now = self.clock.now();
        // A dissent aimed at organisation types needs the caller's type.
        let org_type = match p.org.as_deref() {
            Some(org)
                if matches!(role.kind, RoleKind::Clinical | RoleKind::SocialCare)
                    && relationships.iter().any(|r| {
                        r.kind == policy::relationships::DISSENT && r.org.starts_with("type:")
                    }) =>
            {
                self.org_type(org).await?
            }
            _ => None,
        };
        let proxy_levels = match (role.kind, &p.related_person) {
            (RoleKind::Proxy, Some(rp)) if p.patient.as_deref() == Some(patient) => {
                let consents = self
                    .store
                    .search(&SearchQuery {
                        rtype: "Consent".to_owned(),
                        filters: vec![
                            owned_by(patient, "Consent"),
                            Filter::Token {
                                param: "status".to_owned(),
                                not: false,
                                any_of: vec![TokenValue {
                                    system: None,
                                    code: Some("active".to_owned()),
                                }],
                            },
                        ],
                        sort: vec![],
                        after: None,
                        backward: false,
                        limit: 100,
                    })
                    .await?;
                let bodies: Vec<Value> = consents
                    .iter()
                    .filter_map(|r| r.resource.body.as_deref())
                    .filter_map(|b| serde_json::from_str(b).ok())
                    .collect();
                let levels = policy::relationships::proxy_scopes(&bodies, rp, now);
                if !levels.is_empty() && self.proxy_review_due(patient, &bodies, rp, now).await? {
                    // The practice reviews a parent's access when the
                    // child turns 11 (an alert, from this record).
                    caller
                        .trail()
                        .state()
                        .notices
                        .push(PROXY_REVIEW_DUE.to_owned());
                }
                levels
            }
            _ => vec![],
        };
        let facts = Facts {
            patient_id: patient,
            relationships: &relationships,
            proxy_levels: &proxy_levels,
            org_type: org_type.as_deref(),
        };
        let mut access = match self.policy.patient_access(p, &facts, now) {
            Ok(access) => access,
            Err(d) => {
                if d.code == policy::APPROVAL_REQUIRED {
                    self.request_approval(p, &relationships).await?;
                }
                return Err(forbid(d));
            }
        };
        if access.basis == policy::Basis::BreakGlass {
            let mut t = caller.trail().state();
            t.break_glass = true;
            t.purpose_of_use = Some("BTG".to_owned());
        }
        let wanted = |t: &str| types.is_none_or(|ts| ts.contains(&t));
        for q in access.pending_latest_of(wanted) {
            let mut filters = vec![owned_by(patient, &q.rtype)];
            filters.extend(filters_of(q.criteria));
            let rows = self
                .store
                .search(&SearchQuery {
                    rtype: q.rtype.clone(),
                    filters,
                    sort: vec![SortKey::Param {
                        param: q.sort.clone(),
                        kind: IndexKind::Date,
                        descending: true,
                    }],
                    after: None,
                    backward: false,
                    limit: q.n,
                })
                .await?;
            access.resolve_latest(q.rule, rows.into_iter().map(|r| r.resource.id).collect());
        }
        Ok(access)
    }

    /// The type of organisation `org` (its `Organization.type` coding in
    /// sharedcare's organisation-type system), if the record knows it.
    pub(crate) async fn org_type(&self, org: &str) -> Result<Option<String>> {
        let rows = self
            .store
            .search(&SearchQuery {
                rtype: "Organization".to_owned(),
                filters: vec![Filter::Token {
                    param: "identifier".to_owned(),
                    not: false,
                    any_of: vec![TokenValue {
                        system: Some(policy::relationships::ODS_SYSTEM.to_owned()),
                        code: Some(org.to_owned()),
                    }],
                }],
                sort: vec![],
                after: None,
                backward: false,
                limit: 1,
            })
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.resource.body.as_deref())
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
            .and_then(|o| {
                policy::json::values(&o, "type.coding")
                    .into_iter()
                    .find(|c| {
                        c.get("system").and_then(Value::as_str)
                            == Some(policy::relationships::ORG_TYPE_SYSTEM)
                    })
                    .and_then(|c| c.get("code").and_then(Value::as_str))
                    .map(str::to_owned)
            }))
    }

    /// Is a parent's proxy access to `patient` due for the practice's
    /// review (the child is 11 or older)? Reads the person's birth date.
    async fn proxy_review_due(
        &self,
        patient: &str,
        consents: &[Value],
        related_person: &str,
        now: store::Micros,
    ) -> Result<bool> {
        let parental = consents
            .iter()
            .any(|c| policy::relationships::legal_basis(c) == Some("parental-responsibility"));
        if !parental {
            return Ok(false);
        }
        let birth_date = self
            .store
            .read("Patient", patient)
            .await?
            .and_then(|r| r.body)
            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            .and_then(|v| {
                v.get("birthDate")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        Ok(birth_date.is_some_and(|b| {
            policy::relationships::proxy_review_due(consents, related_person, &b, now)
        }))
    }

    /// Files the request of `p`'s organisation for access to the patients
    /// of each registered practice that verifies it first, unless one is
    /// already pending or decided. Committed on its own: the refusal stands
    /// whatever happens here.
    async fn request_approval(
        &self,
        p: &Principal,
        relationships: &[policy::Relationship],
    ) -> Result<()> {
        use policy::relationships::sharing;
        let Some(org) = p.org.as_deref() else {
            return Ok(());
        };
        let practices: Vec<&str> = relationships
            .iter()
            .filter(|r| r.kind == sharing::VERIFY && r.org == org)
            .filter_map(|r| r.detail.as_deref())
            .filter(|practice| {
                !relationships.iter().any(|r| {
                    matches!(
                        r.kind.as_str(),
                        sharing::PENDING | sharing::APPROVED | sharing::REJECTED
                    ) && r.org == org
                        && r.detail.as_deref() == Some(*practice)
                })
            })
            .collect();
        for practice in practices {
            self.put_sharing_request(practice, org, sharing::PENDING)
                .await?;
        }
        Ok(())
    }

    /// The body of `r` as `access` lets it leave, or `None` if withheld.
    pub(crate) fn release(
        &self,
        caller: &Caller,
        access: &PatientAccess,
        r: &StoredResource,
    ) -> Option<String> {
        let body = r.body.as_deref()?;
        let value: Value = serde_json::from_str(body).ok()?;
        let patient = patient_of(&r.rtype, &r.id, &value);
        let shown = show(access, &r.rtype, patient.as_deref(), body, value);
        note(caller, r, shown.is_some());
        shown
    }

    /// Decides on one resource read with its facts
    /// ([`Store::read_with_relationships`] for `caller`): the body that may
    /// leave, or why not. The patient is the compartment stored with the
    /// version, the same one [`patient_of`] computes from the body.
    pub(crate) async fn decide_read(
        &self,
        caller: &Caller,
        r: &StoredResource,
        patient: Option<&str>,
        relationships: Vec<store::RelationshipRow>,
        perm: Permission,
    ) -> Result<Option<String>> {
        let out = self
            .decide_read_inner(caller, r, patient, relationships, perm)
            .await?;
        note(caller, r, out.is_some());
        Ok(out)
    }

    async fn decide_read_inner(
        &self,
        caller: &Caller,
        r: &StoredResource,
        patient: Option<&str>,
        relationships: Vec<store::RelationshipRow>,
        perm: Permission,
    ) -> Result<Option<String>> {
        let Some(body) = r.body.as_deref() else {
            return Ok(None);
        };
        let Some(patient) = patient else {
            self.policy
                .unlinked(caller.principal(), &r.rtype, perm)
                .map_err(forbid)?;
            return Ok(Some(body.to_owned()));
        };
        let access = self
            .access_with(caller, patient, relationships, Some(&[r.rtype.as_str()]))
            .await?;
        access.check(&r.rtype, perm).map_err(forbid)?;
        let value: Value = if access.decides_by_meta() {
            // Only `id` and `meta` matter: skip building the rest.
            head_of(body)?
        } else {
            serde_json::from_str(body).map_err(|_| CoreError::Internal)?
        };
        Ok(show(&access, &r.rtype, Some(patient), body, value))
    }

    /// Decides on one stored resource for `caller` (reads of a single item,
    /// includes): the body that may leave, or why not.
    pub(crate) async fn decide_one(
        &self,
        caller: &Caller,
        r: &StoredResource,
        perm: Permission,
    ) -> Result<Option<String>> {
        let out = self.decide_one_inner(caller, r, perm).await?;
        note(caller, r, out.is_some());
        Ok(out)
    }

    async fn decide_one_inner(
        &self,
        caller: &Caller,
        r: &StoredResource,
        perm: Permission,
    ) -> Result<Option<String>> {
        let Some(body) = r.body.as_deref() else {
            return Ok(None);
        };
        // A system client's view is everything its scopes allow: no facts to
        // read and nothing to parse.
        if self.is_system(caller) {
            self.policy
                .unlinked(caller.principal(), &r.rtype, perm)
                .map_err(forbid)?;
            return Ok(Some(body.to_owned()));
        }
        let value: Value = serde_json::from_str(body).map_err(|_| CoreError::Internal)?;
        match patient_of(&r.rtype, &r.id, &value) {
            Some(patient) => {
                let access = self
                    .access_for(caller, &patient, Some(&[r.rtype.as_str()]))
                    .await?;
                access.check(&r.rtype, perm).map_err(forbid)?;
                Ok(show(&access, &r.rtype, Some(&patient), body, value))
            }
            None => {
                self.policy
                    .unlinked(caller.principal(), &r.rtype, perm)
                    .map_err(forbid)?;
                Ok(Some(body.to_owned()))
            }
        }
    }
}
