//! Rendering an audit row as a FHIR R4 `AuditEvent`, after the IHE Basic
//! Audit Log Patterns (BALP, <https://profiles.ihe.net/ITI/BALP/>).
//!
//! Invariants:
//! - The event is built from the parsed record and the row's `seq` only.
//!   The chain hashes are *not* rendered anywhere: they are integrity
//!   machinery, checked by verification, not part of the event.
//! - No extensions, no `meta`. Empty strings are never emitted (FHIR does
//!   not allow them): an empty optional value leaves its element out.
//! - Like the record, the event holds no clinical content and no search
//!   parameter values.
//!
//! Shape (one event per row):
//! - `id` is the row's `seq`; `recorded` the record's time as an instant.
//! - `type`/`subtype`/`action`:
//!   - REST interactions: type `audit-event-type|rest`; subtype the
//!     `restful-interaction` code (`read`, `vread`, `search-type`,
//!     `history-instance` — the record does not say whether a history was
//!     of an instance or a type —, `create`, `update`, `patch`, `delete`,
//!     `transaction`, `batch`, `operation`). Action `R` for reads and
//!     history, `E` for searches (BALP Query) and for transactions,
//!     batches and operations, `C` create, `U` update and patch, `D`
//!     delete. An operation also carries a second subtype coding naming it
//!     (system [`OPERATION_SYSTEM`], code e.g. `everything`).
//!   - Break-glass invocation: type `DCM|110113` "Security Alert", subtype
//!     and `purposeOfEvent` `v3-ActReason|BTG`, action `E`.
//!   - Consent change: type `rest`, subtype `create` (action `C`) when the
//!     HTTP status was 201 Created, otherwise `update` (action `U`).
//!   - Any other request made under break-glass also gets
//!     `purposeOfEvent` `BTG`, after its own purpose of use.
//! - `outcome` `0`/`4`/`8`; `outcomeDesc` the stable error code, if any.
//! - `agent`: the user (`requestor: true`; `who.identifier` in
//!   [`USER_SYSTEM`], `who.display` their name at the time, `role` in
//!   [`ROLE_SYSTEM`], and their professional registration, if any, as
//!   `altId` — kept on the same agent rather than inventing a third);
//!   their organisation (type `v3-RoleClass|PROV`, ODS code); the OAuth
//!   client (type `DCM|110150` "Application", id in [`CLIENT_SYSTEM`]).
//! - `source`: observer display `sharedcare`, type `4` Application Server.
//! - `entity`: each patient (`Patient/{id}`, role `1` Patient); each
//!   resource (`{type}/{id}/_history/{version}`, role `4` Domain Resource,
//!   security labels as codings); for searches a query entity (role `24`)
//!   whose description names the type and parameter names, with the number
//!   returned as a `total` detail; and the request id (BALP entity type
//!   `XrequestId`).

use serde_json::{Map, Value, json};
use store::audit::AuditRow;

use crate::record::{Action, AuditRecord, Outcome};
use crate::time::format_instant;

/// Identifier system of users (the identity provider's subject).
pub const USER_SYSTEM: &str = "https://fhir.sharedcare.org.uk/Id/user";
/// Identifier system of OAuth clients.
pub const CLIENT_SYSTEM: &str = "https://fhir.sharedcare.org.uk/Id/client";
/// Code system of sharedcare's role codes.
pub const ROLE_SYSTEM: &str = "https://fhir.sharedcare.org.uk/CodeSystem/role";
/// Code system naming FHIR operations (code = name without `$`).
pub const OPERATION_SYSTEM: &str = "https://fhir.sharedcare.org.uk/CodeSystem/operation";
/// ODS organisation codes.
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const ROLE_CLASS: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleClass";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const BALP_ENTITY_TYPE: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";
const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const LOCAL_LABELS: &str = "https://fhir.sharedcare.org.uk/CodeSystem/security-label";

/// The `AuditEvent` for a stored row and its parsed record.
pub fn audit_event(row: &AuditRow, record: &AuditRecord) -> Value {
    let (event_type, subtype, action) = classify(record);
    let mut event = Map::new();
    event.insert("resourceType".into(), json!("AuditEvent"));
    event.insert("id".into(), json!(row.seq.to_string()));
    event.insert("type".into(), event_type);
    event.insert("subtype".into(), Value::Array(subtype));
    event.insert("action".into(), json!(action));
    event.insert("recorded".into(), json!(format_instant(record.time)));
    event.insert("outcome".into(), json!(outcome_code(record.outcome)));
    if let Some(code) = non_empty(&record.error_code) {
        event.insert("outcomeDesc".into(), json!(code));
    }
    let purposes = purposes(record);
    if !purposes.is_empty() {
        event.insert("purposeOfEvent".into(), Value::Array(purposes));
    }
    event.insert("agent".into(), Value::Array(agents(record)));
    event.insert(
        "source".into(),
        json!({
            "observer": {"display": "sharedcare"},
            "type": [coding(SOURCE_TYPE, "4", "Application Server")],
        }),
    );
    let entities = entities(record);
    if !entities.is_empty() {
        event.insert("entity".into(), Value::Array(entities));
    }
    Value::Object(event)
}

/// A `Coding`.
fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

/// The value of an optional string, if present and not empty.
fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

/// `type`, `subtype` and `action` for the record's action.
fn classify(record: &AuditRecord) -> (Value, Vec<Value>, &'static str) {
    let rest = coding(AUDIT_EVENT_TYPE, "rest", "RESTful Operation");
    let interaction = |code: &str, display: &str| vec![coding(RESTFUL_INTERACTION, code, display)];
    match &record.action {
        Action::Read => (rest, interaction("read", "read"), "R"),
        Action::Vread => (rest, interaction("vread", "vread"), "R"),
        Action::Search => (rest, interaction("search-type", "search type"), "E"),
        Action::History => (
            rest,
            interaction("history-instance", "history instance"),
            "R",
        ),
        Action::Create => (rest, interaction("create", "create"), "C"),
        Action::Update => (rest, interaction("update", "update"), "U"),
        Action::Patch => (rest, interaction("patch", "patch"), "U"),
        Action::Delete => (rest, interaction("delete", "delete"), "D"),
        Action::Transaction => (rest, interaction("transaction", "transaction"), "E"),
        Action::Batch => (rest, interaction("batch", "batch"), "E"),
        Action::Operation(name) => {
            let mut subtype = interaction("operation", "operation");
            if !name.is_empty() {
                subtype.push(coding(OPERATION_SYSTEM, name, &format!("${name}")));
            }
            (rest, subtype, "E")
        }
        Action::BreakGlass => (
            coding(DCM, "110113", "Security Alert"),
            vec![coding(ACT_REASON, "BTG", "break the glass")],
            "E",
        ),
        Action::ConsentChange if record.status == 201 => {
            (rest, interaction("create", "create"), "C")
        }
        Action::ConsentChange => (rest, interaction("update", "update"), "U"),
    }
}

fn outcome_code(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "0",
        Outcome::MinorFailure => "4",
        Outcome::SeriousFailure => "8",
    }
}

/// `purposeOfEvent`: the purpose of use, then `BTG` for break-glass.
fn purposes(record: &AuditRecord) -> Vec<Value> {
    let mut codes: Vec<&str> = Vec::new();
    if let Some(p) = non_empty(&record.purpose_of_use) {
        codes.push(p);
    }
    let btg = record.break_glass || record.action == Action::BreakGlass;
    if btg && !codes.contains(&"BTG") {
        codes.push("BTG");
    }
    codes
        .into_iter()
        .map(|code| json!({"coding": [{"system": ACT_REASON, "code": code}]}))
        .collect()
}

fn agents(record: &AuditRecord) -> Vec<Value> {
    let user = &record.user;
    let mut who = Map::new();
    if !user.subject.is_empty() {
        who.insert(
            "identifier".into(),
            json!({"system": USER_SYSTEM, "value": user.subject}),
        );
    }
    if !user.name.is_empty() {
        who.insert("display".into(), json!(user.name));
    }
    let mut agent = Map::new();
    if !user.role.is_empty() {
        agent.insert(
            "role".into(),
            json!([{"coding": [{"system": ROLE_SYSTEM, "code": user.role}]}]),
        );
    }
    agent.insert("who".into(), Value::Object(who));
    if let Some(registration) = non_empty(&user.registration) {
        agent.insert("altId".into(), json!(registration));
    }
    agent.insert("requestor".into(), json!(true));

    let mut out = vec![Value::Object(agent)];
    if let Some(org) = non_empty(&user.org) {
        out.push(json!({
            "type": {"coding": [coding(ROLE_CLASS, "PROV", "healthcare provider")]},
            "who": {"identifier": {"system": ODS_SYSTEM, "value": org}},
            "requestor": false,
        }));
    }
    if let Some(client) = non_empty(&record.client) {
        out.push(json!({
            "type": {"coding": [coding(DCM, "110150", "Application")]},
            "who": {"identifier": {"system": CLIENT_SYSTEM, "value": client}},
            "requestor": false,
        }));
    }
    out
}

/// The coding of a security label code. Records keep codes only, so the
/// system is inferred as the policy crate assigns them: the confidentiality
/// codes `U L M N R V`; sharedcare's lowercase local labels; otherwise a
/// `v3-ActCode` code (sensitivity topics, `NOPAT`).
fn label_coding(code: &str) -> Value {
    let system = match code {
        "U" | "L" | "M" | "N" | "R" | "V" => CONFIDENTIALITY,
        c if c.chars().any(|ch| ch.is_ascii_lowercase()) => LOCAL_LABELS,
        _ => ACT_CODE,
    };
    json!({"system": system, "code": code})
}

fn entities(record: &AuditRecord) -> Vec<Value> {
    let mut out = Vec::new();
    for patient in record.patients.iter().filter(|p| !p.is_empty()) {
        out.push(json!({
            "what": {"reference": format!("Patient/{patient}")},
            "type": coding(ENTITY_TYPE, "1", "Person"),
            "role": coding(OBJECT_ROLE, "1", "Patient"),
        }));
    }
    for entity in &record.entities {
        let reference = match entity.version {
            Some(v) => format!("{}/{}/_history/{v}", entity.rtype, entity.id),
            None => format!("{}/{}", entity.rtype, entity.id),
        };
        let mut e = Map::new();
        e.insert("what".into(), json!({"reference": reference}));
        e.insert("type".into(), coding(ENTITY_TYPE, "2", "System Object"));
        e.insert("role".into(), coding(OBJECT_ROLE, "4", "Domain Resource"));
        let labels: Vec<Value> = entity
            .labels
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| label_coding(l))
            .collect();
        if !labels.is_empty() {
            e.insert("securityLabel".into(), Value::Array(labels));
        }
        out.push(Value::Object(e));
    }
    if let Some(search) = &record.search {
        let params: Vec<&str> = search
            .params
            .iter()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
            .collect();
        let description = if params.is_empty() {
            format!("search of {}", search.rtype)
        } else {
            format!("search of {} by {}", search.rtype, params.join(", "))
        };
        out.push(json!({
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "24", "Query"),
            "description": description,
            "detail": [{"type": "total", "valueString": search.total.to_string()}],
        }));
    }
    if !record.request_id.is_empty() {
        out.push(json!({
            "what": {"identifier": {"value": record.request_id}},
            "type": {"system": BALP_ENTITY_TYPE, "code": "XrequestId"},
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::sample;
    use crate::record::{AuditEntity, AuditSearch};
    use store::audit::{GENESIS, chain_hash};

    fn row_of(seq: i64, record: &AuditRecord) -> AuditRow {
        let text = record.to_canonical_json();
        AuditRow {
            seq,
            time: record.time,
            patients: record.patients.clone(),
            hash: chain_hash(GENESIS, seq, &text),
            record: text,
            prev_hash: GENESIS.to_owned(),
        }
    }

    fn event(record: &AuditRecord) -> Value {
        audit_event(&row_of(7, record), record)
    }

    fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
        v.pointer(pointer).unwrap_or(&Value::Null)
    }

    #[test]
    fn a_read_renders_as_a_balp_rest_event() {
        let record = sample();
        let row = row_of(7, &record);
        let e = audit_event(&row, &record);
        let expected = json!({
            "resourceType": "AuditEvent",
            "id": "7",
            "type": {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
            "subtype": [{"system": RESTFUL_INTERACTION, "code": "read", "display": "read"}],
            "action": "R",
            "recorded": "2023-11-14T22:13:20.000000Z",
            "outcome": "0",
            "purposeOfEvent": [{"coding": [{"system": ACT_REASON, "code": "TREAT"}]}],
            "agent": [
                {
                    "role": [{"coding": [{"system": ROLE_SYSTEM, "code": "gp"}]}],
                    "who": {
                        "identifier": {"system": USER_SYSTEM, "value": "u-42"},
                        "display": "Dr Ann Example"
                    },
                    "altId": "GMC 1234567",
                    "requestor": true
                },
                {
                    "type": {"coding": [{"system": ROLE_CLASS, "code": "PROV", "display": "healthcare provider"}]},
                    "who": {"identifier": {"system": ODS_SYSTEM, "value": "A81001"}},
                    "requestor": false
                },
                {
                    "type": {"coding": [{"system": DCM, "code": "110150", "display": "Application"}]},
                    "who": {"identifier": {"system": CLIENT_SYSTEM, "value": "gp-system"}},
                    "requestor": false
                }
            ],
            "source": {
                "observer": {"display": "sharedcare"},
                "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}]
            },
            "entity": [
                {
                    "what": {"reference": "Patient/p1"},
                    "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                    "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}
                },
                {
                    "what": {"reference": "Observation/o1/_history/3"},
                    "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                    "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
                    "securityLabel": [{"system": CONFIDENTIALITY, "code": "N"}]
                },
                {
                    "what": {"identifier": {"value": "req-1"}},
                    "type": {"system": BALP_ENTITY_TYPE, "code": "XrequestId"}
                }
            ]
        });
        assert_eq!(e, expected);
        // The chain hashes appear nowhere.
        let text = e.to_string();
        assert!(!text.contains(&row.hash));
        assert!(!text.contains(GENESIS));
        assert!(!text.contains("extension"));
        assert!(e.get("meta").is_none());
    }

    #[test]
    fn interactions_map_to_subtype_and_action() {
        let cases = [
            (Action::Read, "read", "R"),
            (Action::Vread, "vread", "R"),
            (Action::Search, "search-type", "E"),
            (Action::History, "history-instance", "R"),
            (Action::Create, "create", "C"),
            (Action::Update, "update", "U"),
            (Action::Patch, "patch", "U"),
            (Action::Delete, "delete", "D"),
            (Action::Transaction, "transaction", "E"),
            (Action::Batch, "batch", "E"),
            (Action::Operation("everything".into()), "operation", "E"),
        ];
        for (action, subtype, code) in cases {
            let mut r = sample();
            r.action = action;
            let e = event(&r);
            assert_eq!(at(&e, "/type/code"), "rest");
            assert_eq!(at(&e, "/subtype/0/system"), RESTFUL_INTERACTION);
            assert_eq!(at(&e, "/subtype/0/code"), subtype);
            assert_eq!(at(&e, "/action"), code);
        }
        let mut r = sample();
        r.action = Action::Operation("everything".into());
        let e = event(&r);
        assert_eq!(
            at(&e, "/subtype/1"),
            &json!({"system": OPERATION_SYSTEM, "code": "everything", "display": "$everything"})
        );
    }

    #[test]
    fn break_glass_is_a_security_alert() {
        let mut r = sample();
        r.action = Action::BreakGlass;
        r.break_glass = true;
        r.purpose_of_use = Some("ETREAT".into());
        r.entities.clear();
        let e = event(&r);
        assert_eq!(
            at(&e, "/type"),
            &json!({"system": DCM, "code": "110113", "display": "Security Alert"})
        );
        assert_eq!(at(&e, "/subtype/0/system"), ACT_REASON);
        assert_eq!(at(&e, "/subtype/0/code"), "BTG");
        assert_eq!(at(&e, "/action"), "E");
        assert_eq!(at(&e, "/purposeOfEvent/0/coding/0/code"), "ETREAT");
        assert_eq!(at(&e, "/purposeOfEvent/1/coding/0/code"), "BTG");
        assert!(e.pointer("/purposeOfEvent/2").is_none());

        // A read made under break-glass keeps its REST type and adds BTG.
        let mut r = sample();
        r.break_glass = true;
        r.purpose_of_use = Some("BTG".into());
        let e = event(&r);
        assert_eq!(at(&e, "/type/code"), "rest");
        assert_eq!(at(&e, "/purposeOfEvent/0/coding/0/code"), "BTG");
        assert!(e.pointer("/purposeOfEvent/1").is_none());
    }

    #[test]
    fn consent_changes_are_creates_or_updates() {
        let mut r = sample();
        r.action = Action::ConsentChange;
        r.status = 201;
        let e = event(&r);
        assert_eq!(at(&e, "/subtype/0/code"), "create");
        assert_eq!(at(&e, "/action"), "C");
        r.status = 200;
        let e = event(&r);
        assert_eq!(at(&e, "/subtype/0/code"), "update");
        assert_eq!(at(&e, "/action"), "U");
    }

    #[test]
    fn outcomes_and_error_codes() {
        let mut r = sample();
        r.outcome = Outcome::MinorFailure;
        r.status = 403;
        r.error_code = Some("SC-1401".into());
        let e = event(&r);
        assert_eq!(at(&e, "/outcome"), "4");
        assert_eq!(at(&e, "/outcomeDesc"), "SC-1401");
        r.outcome = Outcome::SeriousFailure;
        assert_eq!(at(&event(&r), "/outcome"), "8");
        r.error_code = Some(String::new());
        assert!(event(&r).get("outcomeDesc").is_none());
    }

    #[test]
    fn a_search_names_parameters_but_never_values() {
        let mut r = sample();
        r.action = Action::Search;
        r.entities = vec![AuditEntity {
            rtype: "Observation".into(),
            id: "o2".into(),
            version: None,
            labels: vec!["R".into(), "PSY".into(), "safeguarding".into()],
        }];
        r.search = Some(AuditSearch {
            rtype: "Observation".into(),
            params: vec!["patient".into(), "code".into()],
            total: 1,
        });
        let e = event(&r);
        assert_eq!(at(&e, "/entity/1/what/reference"), "Observation/o2");
        assert_eq!(
            at(&e, "/entity/1/securityLabel"),
            &json!([
                {"system": CONFIDENTIALITY, "code": "R"},
                {"system": ACT_CODE, "code": "PSY"},
                {"system": LOCAL_LABELS, "code": "safeguarding"}
            ])
        );
        assert_eq!(at(&e, "/entity/2/role/code"), "24");
        assert_eq!(
            at(&e, "/entity/2/description"),
            "search of Observation by patient, code"
        );
        assert_eq!(
            at(&e, "/entity/2/detail"),
            &json!([{"type": "total", "valueString": "1"}])
        );
        assert!(e.pointer("/entity/2/query").is_none());
    }

    #[test]
    fn absent_and_empty_optionals_are_left_out() {
        let mut r = sample();
        r.client = None;
        r.purpose_of_use = None;
        r.user.registration = None;
        r.user.org = Some(String::new());
        r.user.name = String::new();
        r.patients.clear();
        r.entities.clear();
        r.request_id = String::new();
        let e = event(&r);
        assert_eq!(e["agent"].as_array().unwrap().len(), 1);
        assert!(e.pointer("/agent/0/altId").is_none());
        assert!(e.pointer("/agent/0/who/display").is_none());
        assert!(e.get("purposeOfEvent").is_none());
        assert!(e.get("entity").is_none());
        assert!(!e.to_string().contains("\"\""));
    }
}
