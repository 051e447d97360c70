//! A GP practice's sharing settings, set by its data controller, and the
//! secondary-use opt-outs the data-collection machinery reads.
//!
//! The settings are relationship rows under the practice's pseudo patient
//! (`store::relationship::PRACTICE_PREFIX`), so that the one relationship
//! query each request already makes returns the rules that concern the
//! caller, and the population filter applies them in SQL. The policy
//! crate decides with them (`Policy::patient_access`).
//!
//! `GET $sharing` and `POST $sharing` exchange a `Parameters` resource:
//! - `sharing-out` (boolean, default true): false stops all sharing out;
//! - `scope` (code): `relationship` (default: any organisation with a
//!   legitimate relationship), `local` (only this integrated care
//!   system's organisations), `allow-list` (only those named by `allow`);
//! - `allow`, `deny`, `verify-first` (string, repeated): ODS codes;
//! - `denied-burst-threshold` (integer, 2 to 100, default 5): how many
//!   refusals of one organisation within 10 minutes raise an alert;
//! - `approve`, `reject` (string, repeated; POST only): decide pending
//!   requests of verify-first organisations;
//! - `pending`, `approved`, `rejected` (GET only): the requests.
//!
//! A POST carrying any setting replaces all settings (what is absent takes
//! its default); one carrying only `approve`/`reject` changes only those
//! decisions. Every change takes effect on the next request.

use std::collections::BTreeMap;

use policy::RoleKind;
use policy::relationships::{self as rel, sharing};
use serde_json::{Value, json};
use store::{RelationshipRow, Store, Tx};

use crate::access::{Caller, forbid};
use crate::error::{CoreError, Result};
use crate::{Service, resource};

/// A practice's own alert threshold (not a sharing rule: the decision
/// never reads it). `detail`: the practice, a space, the count.
const DENIED_BURST: &str = "alert-denied-burst";

/// Most organisations the lists may name together (the relationship
/// query returns at most `store::relationship::MAX_ROWS` rows).
const MAX_NAMED: usize = 150;

/// The practice of a data controller, or a refusal.
fn practice_of(caller: &Caller, kind: RoleKind) -> Result<String> {
    match (kind, caller.principal().org.as_deref()) {
        (RoleKind::DataController, Some(org)) => Ok(org.to_owned()),
        _ => Err(CoreError::Forbidden {
            reason: "sharing-settings",
            message: "sharing settings are for a practice's data controller".to_owned(),
            break_glass: false,
        }),
    }
}

fn ods_code(value: &str) -> Result<String> {
    if !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(value.to_owned())
    } else {
        Err(CoreError::BadRequest(format!(
            "'{}' is not an organisation (ODS) code",
            value.chars().take(24).collect::<String>()
        )))
    }
}

/// What a POST asks for.
#[derive(Debug, Default)]
struct Change {
    settings: bool,
    sharing_out: Option<bool>,
    scope: Option<String>,
    lists: BTreeMap<&'static str, Vec<String>>,
    burst: Option<u32>,
    approve: Vec<String>,
    reject: Vec<String>,
}

fn parse_change(body: &[u8]) -> Result<Change> {
    let map = resource::parse_json(body)?;
    if map.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(CoreError::BadRequest(
            "$sharing takes a Parameters resource".to_owned(),
        ));
    }
    let mut change = Change::default();
    let params = map
        .get("parameter")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for p in &params {
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        let string = || {
            p.get("valueString")
                .or_else(|| p.get("valueCode"))
                .and_then(Value::as_str)
                .ok_or_else(|| CoreError::BadRequest(format!("parameter '{name}' needs a value")))
        };
        match name {
            "sharing-out" => {
                change.settings = true;
                change.sharing_out = Some(
                    p.get("valueBoolean")
                        .and_then(Value::as_bool)
                        .ok_or_else(|| {
                            CoreError::BadRequest("'sharing-out' is a valueBoolean".to_owned())
                        })?,
                );
            }
            "scope" => {
                change.settings = true;
                let s = string()?;
                if !matches!(s, "relationship" | "local" | "allow-list") {
                    return Err(CoreError::BadRequest(
                        "'scope' is one of relationship, local, allow-list".to_owned(),
                    ));
                }
                change.scope = Some(s.to_owned());
            }
            "allow" | "deny" | "verify-first" => {
                change.settings = true;
                let key: &'static str = match name {
                    "allow" => sharing::ALLOW,
                    "deny" => sharing::DENY,
                    _ => sharing::VERIFY,
                };
                change
                    .lists
                    .entry(key)
                    .or_default()
                    .push(ods_code(string()?)?);
            }
            "denied-burst-threshold" => {
                change.settings = true;
                let n = p
                    .get("valueInteger")
                    .or_else(|| p.get("valuePositiveInt"))
                    .and_then(Value::as_u64)
                    .filter(|n| (2..=100).contains(n))
                    .ok_or_else(|| {
                        CoreError::BadRequest(
                            "'denied-burst-threshold' is a valueInteger from 2 to 100".to_owned(),
                        )
                    })?;
                change.burst = u32::try_from(n).ok();
            }
            "approve" => change.approve.push(ods_code(string()?)?),
            "reject" => change.reject.push(ods_code(string()?)?),
            other => {
                return Err(CoreError::UnknownParameter(
                    other.chars().take(40).collect(),
                ));
            }
        }
    }
    let named: usize = change.lists.values().map(Vec::len).sum();
    if named > MAX_NAMED {
        return Err(CoreError::BadRequest(format!(
            "the lists may name at most {MAX_NAMED} organisations together"
        )));
    }
    if change.approve.iter().any(|a| change.reject.contains(a)) {
        return Err(CoreError::BadRequest(
            "an organisation cannot be both approved and rejected".to_owned(),
        ));
    }
    Ok(change)
}

impl<S: Store> Service<S> {
    /// Files (or decides) organisation `org`'s request for access to the
    /// patients of `practice`: one row of kind `kind` replacing any earlier
    /// one, committed on its own.
    pub(crate) async fn put_sharing_request(
        &self,
        practice: &str,
        org: &str,
        kind: &str,
    ) -> Result<()> {
        let mut tx = self.store.begin().await?;
        self.put_request_in(&mut tx, practice, org, kind).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn put_request_in(
        &self,
        tx: &mut S::Tx,
        practice: &str,
        org: &str,
        kind: &str,
    ) -> Result<()> {
        let src_id = format!("{practice} {org}");
        let row = RelationshipRow {
            org: org.to_owned(),
            kind: kind.to_owned(),
            user: None,
            active: true,
            start: Some(self.clock.now()),
            end: None,
            src_type: sharing::REQUEST_SOURCE.to_owned(),
            src_id: src_id.clone(),
            detail: Some(practice.to_owned()),
        };
        tx.put_relationships(
            sharing::REQUEST_SOURCE,
            &src_id,
            Some(&rel::practice_key(practice)),
            &[row],
        )
        .await?;
        Ok(())
    }

    /// The practice's rows (settings and requests).
    async fn sharing_rows(&self, practice: &str) -> Result<Vec<RelationshipRow>> {
        Ok(self
            .store
            .relationships(&rel::practice_key(practice), None, None)
            .await?
            .into_iter()
            .filter(|r| sharing::KINDS.contains(&r.kind.as_str()) || r.kind == DENIED_BURST)
            .collect())
    }

    /// How many refusals within 10 minutes make a burst for `practice`.
    pub(crate) async fn denied_burst_threshold(&self, practice: &str) -> Result<usize> {
        Ok(self
            .sharing_rows(practice)
            .await?
            .iter()
            .filter(|r| r.kind == DENIED_BURST)
            .filter_map(|r| r.detail.as_deref()?.rsplit_once(' ')?.1.parse().ok())
            .next()
            .unwrap_or(crate::audit_views::BURST_COUNT))
    }

    /// `GET $sharing`: the caller's practice's sharing settings and
    /// requests, as `Parameters`.
    pub async fn sharing_settings(&self, caller: &Caller) -> Result<String> {
        let role = self.policy.role_of(caller.principal()).map_err(forbid)?;
        let practice = practice_of(caller, role.kind)?;
        self.sharing_parameters(&practice).await
    }

    async fn sharing_parameters(&self, practice: &str) -> Result<String> {
        let rows = self.sharing_rows(practice).await?;
        let has = |kind: &str| rows.iter().any(|r| r.kind == kind);
        let scope = if has(sharing::LOCAL) {
            "local"
        } else if has(sharing::ALLOW_LIST) {
            "allow-list"
        } else {
            "relationship"
        };
        let burst = self.denied_burst_threshold(practice).await?;
        let mut params = vec![
            json!({"name": "practice", "valueString": practice}),
            json!({"name": "sharing-out", "valueBoolean": !has(sharing::OFF)}),
            json!({"name": "scope", "valueCode": scope}),
            json!({"name": "denied-burst-threshold", "valueInteger": burst}),
        ];
        for (kind, name) in [
            (sharing::ALLOW, "allow"),
            (sharing::DENY, "deny"),
            (sharing::VERIFY, "verify-first"),
            (sharing::PENDING, "pending"),
            (sharing::APPROVED, "approved"),
            (sharing::REJECTED, "rejected"),
        ] {
            let mut orgs: Vec<&str> = rows
                .iter()
                .filter(|r| r.kind == kind)
                .map(|r| r.org.as_str())
                .collect();
            orgs.sort_unstable();
            orgs.dedup();
            params.extend(
                orgs.into_iter()
                    .map(|o| json!({"name": name, "valueString": o})),
            );
        }
        Ok(json!({"resourceType": "Parameters", "parameter": params}).to_string())
    }

    /// `POST $sharing`: changes the caller's practice's settings and
    /// decides requests (see the module documentation); returns the
    /// settings as they now are. Audited with the change, in its
    /// transaction.
    pub async fn set_sharing(&self, caller: &Caller, body: &[u8]) -> Result<String> {
        let role = self.policy.role_of(caller.principal()).map_err(forbid)?;
        let practice = practice_of(caller, role.kind)?;
        let change = parse_change(body)?;
        let mut tx = self.store.begin().await?;
        if change.settings {
            let row = |kind: &str, org: &str| RelationshipRow {
                org: org.to_owned(),
                kind: kind.to_owned(),
                user: None,
                active: true,
                start: None,
                end: None,
                src_type: sharing::SETTINGS_SOURCE.to_owned(),
                src_id: practice.clone(),
                detail: Some(practice.clone()),
            };
            let mut rows = Vec::new();
            if change.sharing_out == Some(false) {
                rows.push(row(sharing::OFF, rel::EVERY_ORGANISATION));
            }
            match change.scope.as_deref() {
                Some("local") => rows.push(row(sharing::LOCAL, rel::EVERY_ORGANISATION)),
                Some("allow-list") => rows.push(row(sharing::ALLOW_LIST, rel::EVERY_ORGANISATION)),
                _ => {}
            }
            if let Some(n) = change.burst {
                let mut r = row(DENIED_BURST, rel::EVERY_ORGANISATION);
                r.detail = Some(format!("{practice} {n}"));
                rows.push(r);
            }
            for (kind, orgs) in &change.lists {
                for org in orgs {
                    let r = row(kind, org);
                    if !rows.contains(&r) {
                        rows.push(r);
                    }
                }
            }
            tx.put_relationships(
                sharing::SETTINGS_SOURCE,
                &practice,
                Some(&rel::practice_key(&practice)),
                &rows,
            )
            .await?;
        }
        for org in &change.approve {
            self.put_request_in(&mut tx, &practice, org, sharing::APPROVED)
                .await?;
        }
        for org in &change.reject {
            self.put_request_in(&mut tx, &practice, org, sharing::REJECTED)
                .await?;
        }
        self.commit_audited(caller, tx).await?;
        self.sharing_parameters(&practice).await
    }

    /// The secondary-use opt-outs (National Data Opt-out, Type 1 opt-out)
    /// recorded for each of `patients`: for the data-collection machinery,
    /// which leaves these people out of what it sends. Never consulted for
    /// direct care.
    pub async fn secondary_use_opt_outs(
        &self,
        patients: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let now = self.clock.now();
        let mut out = BTreeMap::new();
        for patient in patients {
            let mut codes: Vec<String> = self
                .store
                .relationships(patient, None, None)
                .await?
                .into_iter()
                .filter(|r| {
                    r.kind == rel::OPT_OUT
                        && r.active
                        && r.start.is_none_or(|s| s <= now)
                        && r.end.is_none_or(|e| e >= now)
                })
                .map(|r| r.org)
                .collect();
            codes.sort_unstable();
            codes.dedup();
            if !codes.is_empty() {
                out.insert(patient.clone(), codes);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_and_the_store_name_the_same_kinds() {
        use store::relationship as st;
        assert_eq!(sharing::KINDS, st::sharing::KINDS);
        assert_eq!(rel::ACCESS_KINDS, st::ACCESS_KINDS);
        assert_eq!(
            (
                rel::DISSENT,
                rel::SENSITIVE_CONSENT,
                rel::OPT_OUT,
                rel::EVERY_ORGANISATION
            ),
            (
                st::DISSENT,
                st::SENSITIVE_CONSENT,
                st::OPT_OUT,
                st::EVERY_ORGANISATION
            )
        );
        assert_eq!(
            rel::practice_key("P1"),
            format!("{}P1", st::PRACTICE_PREFIX)
        );
        assert_eq!(rel::org_type_key("care-home"), "type:care-home");
    }

    #[test]
    fn a_change_is_read_strictly() {
        let c = parse_change(
            br#"{"resourceType": "Parameters", "parameter": [
                {"name": "scope", "valueCode": "local"},
                {"name": "deny", "valueString": "RX1"},
                {"name": "verify-first", "valueString": "CH9"},
                {"name": "approve", "valueString": "H2"}]}"#,
        )
        .unwrap();
        assert!(c.settings);
        assert_eq!(c.scope.as_deref(), Some("local"));
        assert_eq!(c.lists.get(sharing::DENY).unwrap(), &["RX1"]);
        assert_eq!(c.approve, ["H2"]);
        for bad in [
            r#"{"resourceType": "Patient"}"#,
            r#"{"resourceType": "Parameters", "parameter": [{"name": "scope", "valueCode": "world"}]}"#,
            r#"{"resourceType": "Parameters", "parameter": [{"name": "deny", "valueString": "not a code"}]}"#,
            r#"{"resourceType": "Parameters", "parameter": [{"name": "colour", "valueString": "red"}]}"#,
            r#"{"resourceType": "Parameters", "parameter": [{"name": "sharing-out", "valueString": "no"}]}"#,
            r#"{"resourceType": "Parameters", "parameter": [{"name": "approve", "valueString": "A"}, {"name": "reject", "valueString": "A"}]}"#,
        ] {
            assert!(parse_change(bad.as_bytes()).is_err(), "{bad}");
        }
        let decisions = parse_change(
            br#"{"resourceType": "Parameters", "parameter": [{"name": "reject", "valueString": "H2"}]}"#,
        )
        .unwrap();
        assert!(!decisions.settings, "decisions alone keep the settings");
    }
}
