//! Security labels (`meta.security`), as the server would add them.
//!
//! The server seals on write every resource carrying a SNOMED CT code from
//! its starter list (`policy::labels::SENSITIVE_CODES`): confidentiality `R`
//! plus the code's sensitivity topic. The generator labels its output the
//! same way, so that what it writes is what the server would store; the
//! tests run the server's labeller over the output and check it adds
//! nothing. Items that are sensitive for other reasons (domestic abuse, a
//! restricted letter) are sealed explicitly with [`seal`].

use serde_json::{Map, Value, json};

pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
pub const LOCAL_LABELS: &str = "https://fhir.sharedcare.org.uk/CodeSystem/security-label";

/// Why an item is sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Topic {
    Hiv,
    Psy,
    Sex,
    Std,
    Eth,
    Sdv,
    Safeguarding,
    /// Confidentiality `R` alone, without a topic.
    Restricted,
}

impl Topic {
    pub const ALL: [Topic; 8] = [
        Topic::Hiv,
        Topic::Psy,
        Topic::Sex,
        Topic::Std,
        Topic::Eth,
        Topic::Sdv,
        Topic::Safeguarding,
        Topic::Restricted,
    ];

    /// The (system, code) of the topic's label; `None` for `Restricted`.
    pub fn label(self) -> Option<(&'static str, &'static str)> {
        match self {
            Topic::Hiv => Some((ACT_CODE, "HIV")),
            Topic::Psy => Some((ACT_CODE, "PSY")),
            Topic::Sex => Some((ACT_CODE, "SEX")),
            Topic::Std => Some((ACT_CODE, "STD")),
            Topic::Eth => Some((ACT_CODE, "ETH")),
            Topic::Sdv => Some((ACT_CODE, "SDV")),
            Topic::Safeguarding => Some((LOCAL_LABELS, "safeguarding")),
            Topic::Restricted => None,
        }
    }
}

/// The SNOMED CT codes the generator writes that the server's starter list
/// seals, with their topics (a subset of `policy::labels::SENSITIVE_CODES`).
pub const SENSITIVE_CODES: &[(&str, Topic)] = &[
    ("86406008", Topic::Hiv),
    ("165816005", Topic::Hiv),
    ("240589008", Topic::Std),
    ("76272004", Topic::Std),
    ("15628003", Topic::Std),
    ("65200003", Topic::Sex),
    ("169553002", Topic::Sex),
    ("35489007", Topic::Psy),
    ("58214004", Topic::Psy),
    ("13746004", Topic::Psy),
    ("197480006", Topic::Psy),
    ("66590003", Topic::Eth),
    ("7200002", Topic::Eth),
    ("836881000000105", Topic::Safeguarding),
    ("342191000000101", Topic::Safeguarding),
];

fn sensitive_topic(code: &str) -> Option<Topic> {
    SENSITIVE_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, t)| *t)
}

/// Adds confidentiality `R` and the topic's label to `meta.security`.
pub fn seal(resource: &mut Value, topic: Topic) {
    let Some(object) = resource.as_object_mut() else {
        return;
    };
    let meta = object
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let security = meta
        .entry("security")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = security.as_array_mut() else {
        return;
    };
    add(list, CONFIDENTIALITY, "R");
    if let Some((system, code)) = topic.label() {
        add(list, system, code);
    }
}

fn add(list: &mut Vec<Value>, system: &str, code: &str) {
    let present = list.iter().any(|c| {
        c.get("system").and_then(Value::as_str) == Some(system)
            && c.get("code").and_then(Value::as_str) == Some(code)
    });
    if !present {
        list.push(json!({"system": system, "code": code}));
    }
}

/// Seals a resource for every sensitive SNOMED CT code anywhere in it
/// (outside `meta` and `text`), as the server does on write.
pub fn auto_label(resource: &mut Value) {
    let mut found = Vec::new();
    if let Some(object) = resource.as_object() {
        for (k, v) in object {
            if k != "meta" && k != "text" {
                collect(v, &mut found);
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    for topic in found {
        seal(resource, topic);
    }
}

fn collect(v: &Value, found: &mut Vec<Topic>) {
    match v {
        Value::Object(m) => {
            if m.get("system").and_then(Value::as_str) == Some(crate::clinical::SNOMED)
                && let Some(topic) = m
                    .get("code")
                    .and_then(Value::as_str)
                    .and_then(sensitive_topic)
            {
                found.push(topic);
            }
            m.values().for_each(|x| collect(x, found));
        }
        Value::Array(items) => items.iter().for_each(|x| collect(x, found)),
        _ => {}
    }
}

/// The topics a resource is sealed under (`Restricted` when it has `R`
/// and no topic).
pub fn topics_of(resource: &Value) -> Vec<Topic> {
    let Some(list) = resource.pointer("/meta/security").and_then(Value::as_array) else {
        return vec![];
    };
    let mut out = Vec::new();
    let mut restricted = false;
    for c in list {
        let system = c.get("system").and_then(Value::as_str).unwrap_or("");
        let code = c.get("code").and_then(Value::as_str).unwrap_or("");
        if (system, code) == (CONFIDENTIALITY, "R") {
            restricted = true;
        }
        if let Some(t) = Topic::ALL
            .iter()
            .find(|t| t.label() == Some((system, code)))
        {
            out.push(*t);
        }
    }
    if out.is_empty() && restricted {
        out.push(Topic::Restricted);
    }
    out
}
