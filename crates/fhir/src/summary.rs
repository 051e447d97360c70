//! Summary and mandatory top-level elements per resource type, for
//! `_summary=true` and `_summary=text` (derived from the R4
//! StructureDefinitions into `data/r4-summary.json`; see the generator in
//! `tests/it/summary.rs`). Choice elements appear by their prefix
//! (`deceased` for `deceased[x]`).

use std::collections::HashMap;
use std::sync::OnceLock;

struct Entry {
    summary: Vec<String>,
    mandatory: Vec<String>,
}

fn table() -> &'static HashMap<String, Entry> {
    static TABLE: OnceLock<HashMap<String, Entry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let parsed: serde_json::Value =
            serde_json::from_str(include_str!("../data/r4-summary.json")).unwrap_or_default();
        let list = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        parsed
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let entry = Entry {
                    summary: v.get("summary").map(list).unwrap_or_default(),
                    mandatory: v.get("mandatory").map(list).unwrap_or_default(),
                };
                (k.clone(), entry)
            })
            .collect()
    })
}

/// Top-level elements marked `isSummary` (`id` and `meta` included).
pub fn summary_elements(rtype: &str) -> Option<Vec<&'static str>> {
    table()
        .get(rtype)
        .map(|e| e.summary.iter().map(String::as_str).collect())
}

/// Top-level elements with a minimum cardinality of one or more.
pub fn mandatory_elements(rtype: &str) -> Option<Vec<&'static str>> {
    table()
        .get(rtype)
        .map(|e| e.mandatory.iter().map(String::as_str).collect())
}

/// Does a JSON key name the element `element` (exactly, as a choice
/// variant `valueQuantity` of `value`, or as its `_element` companion)?
pub fn key_is_element(key: &str, element: &str) -> bool {
    let key = key.strip_prefix('_').unwrap_or(key);
    key == element
        || key
            .strip_prefix(element)
            .is_some_and(|rest| rest.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
}
