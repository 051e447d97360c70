//! The access side of writes: stamping who recorded an item and its labels,
//! the policy's write decision, the relationship facts a write states, the
//! Provenance of every write, and break-glass.

use policy::{PatientAccess, Permission, RoleKind, labels, relationships as rel};
use serde_json::{Map, Value, json};
use store::{Micros, RelationshipRow, Store, Tx};

use crate::access::{Caller, forbid, patient_of};
use crate::error::{CoreError, Result};
use crate::{Resource, Service, instant};

/// The system of users' subjects in Provenance agents.
const USER_SYSTEM: &str = "https://fhir.sharedcare.org.uk/Id/user";

impl<S: Store> Service<S> {
    pub(crate) fn is_system(&self, caller: &Caller) -> bool {
        self.policy
            .role_of(caller.principal())
            .is_ok_and(|r| r.kind == RoleKind::Integration)
    }

    /// Interactions that match criteria across people (conditional writes,
    /// type and system history) are for system clients: for anyone else their
    /// matches could reveal what the policy withholds.
    pub(crate) fn require_system(&self, caller: &Caller, what: &str) -> Result<()> {
        if self.is_system(caller) {
            Ok(())
        } else {
            Err(CoreError::Forbidden {
                reason: "system-clients-only",
                message: format!("{what} is available to system clients only"),
                break_glass: false,
            })
        }
    }

    /// `$validate` needs the right to create or update the type.
    pub(crate) fn may_submit(&self, caller: &Caller, rtype: &str) -> Result<()> {
        self.policy
            .may_submit(caller.principal(), rtype)
            .map_err(forbid)
    }

    /// The access under which an instance's history is shown, decided on
    /// its latest version with a body (`current`, or before its delete):
    /// `None` when every version may be shown as stored (a system client, or
    /// an item that belongs to no person, decided as a directory read).
    pub(crate) async fn instance_access(
        &self,
        caller: &Caller,
        current: &store::StoredResource,
    ) -> Result<Option<PatientAccess>> {
        let (rtype, id) = (current.rtype.as_str(), current.id.as_str());
        if self.is_system(caller) {
            self.policy
                .unlinked(caller.principal(), rtype, Permission::Read)
                .map_err(forbid)?;
            return Ok(None);
        }
        let earlier = if current.body.is_some() {
            vec![]
        } else {
            self.store
                .history(&store::HistoryQuery {
                    rtype: Some(rtype.to_owned()),
                    id: Some(id.to_owned()),
                    limit: 50,
                    ..Default::default()
                })
                .await?
        };
        let latest = std::iter::once(current)
            .chain(earlier.iter())
            .find_map(|v| v.body.as_deref())
            .and_then(|b| serde_json::from_str::<Value>(b).ok());
        let not_found = || CoreError::NotFound {
            rtype: rtype.to_owned(),
            id: id.to_owned(),
        };
        let Some(latest) = latest else {
            return Err(not_found());
        };
        match patient_of(rtype, id, &latest) {
            Some(patient) => {
                let access = self.access_for(caller, &patient, Some(&[rtype])).await?;
                access.check(rtype, Permission::Read).map_err(forbid)?;
                Ok(Some(access))
            }
            None => {
                self.policy
                    .unlinked(caller.principal(), rtype, Permission::Read)
                    .map_err(forbid)?;
                Ok(None)
            }
        }
    }

    /// Stamps what the server asserts about a new version: who recorded it
    /// (a client cannot claim another organisation; a system client may pass
    /// on the recorder its source system names), patient-reported items,
    /// and sensitivity labels from the sensitive-code list.
    pub(crate) fn mark(
        &self,
        caller: &Caller,
        mut map: Map<String, Value>,
        existing: Option<&Value>,
    ) -> Result<Map<String, Value>> {
        let p = caller.principal();
        let role = self.policy.role_of(p).map_err(forbid)?;
        let stated = map.get("meta").and_then(labels::recorded_by_in_meta);
        // An update keeps the original recorder; a system client may state
        // one; otherwise it is the caller.
        let recorder = existing
            .and_then(labels::recorded_by)
            .or(stated.filter(|_| role.kind == RoleKind::Integration))
            .map(str::to_owned)
            .or_else(|| p.recorder())
            .unwrap_or_else(|| p.subject.clone());
        let bad_meta = || CoreError::BadRequest("meta must be an object".to_owned());
        // Labels survive updates: an update that leaves out `meta.security`
        // never unseals an item.
        let kept = existing.map(|old| policy::json::values(old, "meta.security"));
        if let Some(kept) = kept.filter(|k| !k.is_empty()) {
            let security = labels::meta_list(&mut map, "security").ok_or_else(bad_meta)?;
            for label in kept {
                if !security.contains(label) {
                    security.push(label.clone());
                }
            }
        }
        policy::labels::auto_label(&mut map);
        let tags = labels::meta_list(&mut map, "tag").ok_or_else(bad_meta)?;
        tags.retain(|t| t.get("system").and_then(Value::as_str) != Some(labels::RECORDED_BY));
        labels::add_coding(tags, labels::RECORDED_BY, &recorder);
        if matches!(role.kind, RoleKind::Patient | RoleKind::Proxy) {
            labels::add_coding(tags, labels::RECORD_CATEGORY, "patient-reported");
        }
        Ok(map)
    }

    /// The policy's decision on writing `new` (of `patient`, its stored
    /// compartment), replacing `old`.
    pub(crate) async fn check_write(
        &self,
        caller: &Caller,
        rtype: &str,
        id: &str,
        patient: Option<&str>,
        new: &Value,
        old: Option<&Value>,
    ) -> Result<()> {
        let p = caller.principal();
        let perm = if old.is_some() {
            Permission::Update
        } else {
            Permission::Create
        };
        let new_patient = patient.filter(|_| crate::access::is_person_type(rtype));
        // Registering a new person: there is no relationship yet.
        if rtype == "Patient" && old.is_none() {
            return self.policy.may_register(p).map_err(forbid);
        }
        match new_patient {
            Some(patient) => {
                let access = self.access_for(caller, patient, Some(&[])).await?;
                access
                    .may_write(rtype, perm, Some(new), old)
                    .map_err(forbid)?;
            }
            None => self.policy.unlinked(p, rtype, perm).map_err(forbid)?,
        }
        // Moving an item between people needs the right to take it from the
        // first.
        if let Some(old) = old
            && let Some(old_patient) = patient_of(rtype, id, old)
            && Some(old_patient.as_str()) != new_patient
        {
            self.check_delete(caller, rtype, id, Some(old)).await?;
        }
        Ok(())
    }

    pub(crate) async fn check_delete(
        &self,
        caller: &Caller,
        rtype: &str,
        id: &str,
        old: Option<&Value>,
    ) -> Result<()> {
        match old.and_then(|o| patient_of(rtype, id, o)) {
            Some(patient) => {
                let access = self.access_for(caller, &patient, Some(&[])).await?;
                access
                    .may_write(rtype, Permission::Delete, None, old)
                    .map_err(forbid)
            }
            None => self
                .policy
                .unlinked(caller.principal(), rtype, Permission::Delete)
                .map_err(forbid),
        }
    }

    /// The relationship facts (and sealed-item markers) a version states,
    /// with organisation references resolved to organisation codes.
    pub(crate) async fn relationship_rows(
        &self,
        tx: &mut S::Tx,
        rtype: &str,
        id: &str,
        patient: Option<&str>,
        value: &Value,
    ) -> Result<Vec<RelationshipRow>> {
        if patient.is_none() {
            return Ok(vec![]);
        }
        let mut rows = Vec::new();
        let row = |org: String, kind: &str, active, start, end, detail| RelationshipRow {
            org,
            kind: kind.to_owned(),
            user: None,
            active,
            start,
            end,
            src_type: rtype.to_owned(),
            src_id: id.to_owned(),
            detail,
        };
        if rel::SOURCE_TYPES.contains(&rtype) {
            for d in rel::drafts(rtype, value) {
                // A care team named by a consent stands for the
                // organisations it states now.
                let orgs = match d.org {
                    rel::OrgRef::CareTeam(team_id) => {
                        let team = tx
                            .current("CareTeam", &team_id)
                            .await?
                            .filter(|t| !t.deleted)
                            .and_then(|t| t.body)
                            .and_then(|b| serde_json::from_str::<Value>(&b).ok());
                        team.map(|t| rel::drafts("CareTeam", &t))
                            .unwrap_or_default()
                            .into_iter()
                            .map(|t| t.org)
                            .collect()
                    }
                    other => vec![other],
                };
                for org in orgs {
                    let org = match org {
                        rel::OrgRef::Code(code) => Some(code),
                        rel::OrgRef::Id(org_id) => tx
                            .current("Organization", &org_id)
                            .await?
                            .filter(|o| !o.deleted)
                            .and_then(|o| o.body)
                            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
                            .map(|o| rel::org_code(&o, &org_id))
                            .or(Some(org_id)),
                        rel::OrgRef::CareTeam(_) => None,
                    };
                    if let Some(org) = org {
                        rows.push(row(org, d.kind, d.active, d.start, d.end, d.detail.clone()));
                    }
                }
            }
        }
        let (sensitive, not_for_patient) = labels::labels_of(value);
        let recorder = labels::recorded_by(value).unwrap_or("").to_owned();
        if sensitive {
            // The sealing label codes, so that a decision knows whether an
            // explicit consent opens the item.
            let codes = labels::sealing_codes(value).join(" ");
            rows.push(row(
                recorder.clone(),
                rel::SEALED,
                false,
                None,
                None,
                Some(codes),
            ));
        }
        if not_for_patient {
            rows.push(row(recorder, rel::NOT_FOR_PATIENT, false, None, None, None));
        }
        Ok(rows)
    }

    /// Records one Provenance for the versions a request wrote (agent: the
    /// user, their role and organisation; activity; time), in its transaction.
    pub(crate) async fn provenance(
        &self,
        caller: &Caller,
        tx: &mut S::Tx,
        targets: &[&Resource],
        activity: &str,
        now: Micros,
    ) -> Result<()> {
        if targets.is_empty() {
            return Ok(());
        }
        let p = caller.principal();
        let mut agent = json!({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}]},
            "role": [{"coding": [{"system": "https://fhir.sharedcare.org.uk/CodeSystem/role", "code": p.role}]}],
            "who": {"identifier": {"system": USER_SYSTEM, "value": p.subject}, "display": p.name},
        });
        if let (Some(org), Some(a)) = (&p.org, agent.as_object_mut()) {
            a.insert(
                "onBehalfOf".to_owned(),
                json!({"identifier": {"system": rel::ODS_SYSTEM, "value": org}}),
            );
        }
        let body = json!({
            "resourceType": "Provenance",
            "target": targets.iter().map(|t| json!({"reference": t.versioned_ref()})).collect::<Vec<_>>(),
            "recorded": instant::to_instant(now),
            "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": activity}]},
            "agent": [agent],
        });
        let Value::Object(map) = body else {
            return Err(CoreError::Internal);
        };
        let id = self.ids.new_id();
        let stamped = crate::resource::stamp(map, "Provenance", &id, 1, now)?;
        tx.put(&store::NewVersion {
            rtype: "Provenance".to_owned(),
            id,
            version: 1,
            last_updated: now,
            deleted: false,
            // In no one's record: one Provenance may name several people's
            // items, so it is for system clients (and the audit work) only.
            patient_id: None,
            body: Some(stamped.body),
            index: stamped.index,
        })
        .await?;
        Ok(())
    }

    /// `POST Patient/[id]/$break-glass`: a clinical user with no
    /// relationship opens the person's record (their role's view, sealed
    /// items still sealed) for the policy's time box, giving a reason code
    /// (`v3-ActReason`) and free text. Returns the expiry.
    pub async fn break_glass(
        &self,
        caller: &Caller,
        patient: &str,
        reason: &str,
        text: &str,
    ) -> Result<Micros> {
        caller.trail().default_action(audit::Action::BreakGlass);
        {
            let mut t = caller.trail().state();
            t.break_glass = true;
            // Only a known code: the field must never carry free text.
            if policy::BREAK_GLASS_REASONS.contains(&reason) {
                t.purpose_of_use = Some(reason.to_owned());
            }
            if crate::check_id(patient).is_ok() {
                t.patients.insert(patient.to_owned());
            }
        }
        crate::check_id(patient)?;
        let p = caller.principal();
        self.policy.may_break_glass(p).map_err(forbid)?;
        if !policy::BREAK_GLASS_REASONS.contains(&reason) {
            return Err(CoreError::BadRequest(format!(
                "break-glass needs a reason code, one of {}",
                policy::BREAK_GLASS_REASONS.join(", ")
            )));
        }
        if text.trim().is_empty() {
            return Err(CoreError::BadRequest(
                "break-glass needs a free-text reason".to_owned(),
            ));
        }
        let Some(org) = p.org.clone() else {
            return Err(CoreError::BadRequest(
                "the token names no organisation".to_owned(),
            ));
        };
        match self.store.read("Patient", patient).await? {
            Some(r) if !r.deleted => {}
            _ => {
                return Err(CoreError::NotFound {
                    rtype: "Patient".to_owned(),
                    id: patient.to_owned(),
                });
            }
        }
        let mut tx = self.store.begin().await?;
        let now = self.clock.now();
        let expires = now + self.policy.break_glass_for;
        let src_id = self.ids.new_id();
        tx.put_relationships(
            store::relationship::BREAK_GLASS_SOURCE,
            &src_id,
            Some(patient),
            &[RelationshipRow {
                org,
                kind: rel::BREAK_GLASS.to_owned(),
                user: Some(p.subject.clone()),
                active: true,
                start: Some(now),
                end: Some(expires),
                src_type: store::relationship::BREAK_GLASS_SOURCE.to_owned(),
                src_id: src_id.clone(),
                detail: Some(reason.to_owned()),
            }],
        )
        .await?;
        self.commit_audited(caller, tx).await?;
        // A security event: no personal data (ids are opaque).
        tracing::warn!(
            target: "security",
            event = "break-glass",
            role = %p.role,
            reason = %reason,
            "break-glass granted"
        );
        Ok(expires)
    }
}
