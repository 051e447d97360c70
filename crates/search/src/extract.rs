//! Extraction: the index rows of a resource, computed at write time from the
//! R4 SearchParameters.
//!
//! For each indexed parameter of the resource's type (see
//! [`crate::registry`]), the parameter's FHIRPath expression is evaluated with
//! the resource as `%resource`, and each resulting value is converted to rows
//! by the parameter's type and the value's FHIR type:
//!
//! | parameter | FHIR types → rows |
//! |---|---|
//! | string | string-like primitives; `HumanName` (family, given, prefix, suffix, text: one row each); `Address` (line, city, district, state, postalCode, country, text) |
//! | token | `code`/`string`/`id`/`uri`… (code, no system); `boolean` (`true`/`false`); `Coding` (system, code, display as text); `CodeableConcept` (each coding, and its text as a text-only row); `Identifier` (system, value, type.text; plus `<param>:of-type` rows); `ContactPoint` (value, no system) |
//! | reference | `Reference.reference` (`Type/id`, `Type/id/_history/v` without the version, absolute URLs, `urn:` URLs); `Reference.identifier` as a token row `<param>:identifier`; `canonical`/`uri` values (url only) |
//! | date | `date`/`dateTime`/`instant` (the range of their precision); `Period` (open ends are `i64::MIN`/`i64::MAX`); `Timing` (each event, and `repeat.boundsPeriod`) |
//! | number | `integer`/`decimal`… with the range of their precision |
//! | quantity | `Quantity` and its profiles (`Age`, `Duration`, `SimpleQuantity`…); `Money` (system `urn:iso:std:iso:4217`, code the currency) |
//! | uri | `uri`/`url`/`canonical`/`oid`/`uuid` |
//! | composite | (token, token / quantity / date / string): the cross product of the first component's tokens and the second component's values, per context node |
//!
//! Other combinations yield no row (for example a `Range` for a quantity
//! parameter, or a `SampledData`). Details and choices:
//! - `resolve() is Patient` filters work without a store: the FHIRPath engine
//!   resolves a relative reference (`Patient/1`) to an empty stub typed from
//!   the reference text, and a `#id` to the contained resource. `urn:uuid:`
//!   references cannot be typed, so they do not pass such filters.
//! - References to contained resources (`#id`) are not indexed.
//! - A string without a time zone is read as UTC ([`crate::time`]).
//! - A Quantity `comparator` opens its range on one side: `<` and `<=` give
//!   `low = -inf`, `>` and `>=` give `high = +inf`.
//! - A `code` has no system in its row: the system of its value set is not
//!   known here, so `gender=male` matches but `gender=<system>|male` does not.
//! - Token text (`Coding.display`, `CodeableConcept.text`,
//!   `Identifier.type.text`) is normalised with [`crate::normalize`].
//!
//! Invariants: rows come out grouped by parameter, in registry order, and the
//! rows of one parameter are distinct. Extraction never fails: a parameter
//! whose expression raises an evaluation error contributes no rows, and
//! [`extract_with_issues`] reports it.

use std::borrow::Cow;
use std::collections::HashSet;

use fhirpath::{Env, Value, evaluate, evaluate_with_context};
use serde_json::Value as Json;
use store::search::{CompositeValue, IndexRow};

use crate::normalize::normalize;
use crate::number::{self, Number};
use crate::registry::{ParamDef, ParamKind, registry};
use crate::time::parse_range;

/// The system of ISO 4217 currency codes (`Money.currency`).
const CURRENCY_SYSTEM: &str = "urn:iso:std:iso:4217";

/// A parameter whose expression could not be evaluated on a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractIssue {
    pub param: String,
    pub message: String,
}

/// The index rows of `resource`, a resource of type `rtype` (empty for an
/// unknown type). See the module documentation for what is extracted.
pub fn extract(rtype: &str, resource: &Json) -> Vec<IndexRow> {
    extract_with_issues(rtype, resource).0
}

/// [`extract`], also returning the parameters that could not be evaluated.
pub fn extract_with_issues(rtype: &str, resource: &Json) -> (Vec<IndexRow>, Vec<ExtractIssue>) {
    let env = Env::new();
    let mut rows = Vec::with_capacity(32);
    let mut issues = Vec::new();
    for def in registry().indexed_params(rtype) {
        let start = rows.len();
        if let Err(message) = extract_param(def, resource, &env, &mut rows) {
            rows.truncate(start);
            issues.push(ExtractIssue {
                param: def.code.clone(),
                message,
            });
            continue;
        }
        dedup_from(&mut rows, start);
    }
    (rows, issues)
}

/// The Patient compartment of a resource, evaluating only the
/// compartment's parameters (cheaper than [`extract`] on read paths). The
/// same answer as [`patient_compartment`] over the full extraction.
pub fn patient_of(rtype: &str, id: &str, resource: &Json) -> Option<String> {
    if rtype == "Patient" {
        return Some(id.to_owned());
    }
    let params = registry().compartment_params(rtype);
    if params.is_empty() {
        return None;
    }
    let env = Env::new();
    let mut rows = Vec::new();
    for def in registry().indexed_params(rtype) {
        if params.contains(&def.code) {
            let start = rows.len();
            if extract_param(def, resource, &env, &mut rows).is_err() {
                rows.truncate(start);
            }
        }
    }
    patient_compartment(rtype, id, &rows)
}

/// Appends the rows of one parameter.
fn extract_param<'a>(
    def: &ParamDef,
    resource: &'a Json,
    env: &Env<'a>,
    out: &mut Vec<IndexRow>,
) -> Result<(), String> {
    let Some(expr) = def.compiled.as_deref() else {
        return Ok(());
    };
    let values = evaluate(expr, resource, env).map_err(|e| e.to_string())?;
    if def.kind == ParamKind::Composite {
        return extract_composite(def, resource, &values, env, out);
    }
    let mut emitter = Emitter {
        param: &def.code,
        out,
    };
    for value in &values {
        match def.kind {
            ParamKind::String => emitter.string(value),
            ParamKind::Token => emitter.token(value),
            ParamKind::Reference => emitter.reference(value),
            ParamKind::Date => emitter.date(value),
            ParamKind::Number => emitter.number(value),
            ParamKind::Quantity => emitter.quantity(value),
            ParamKind::Uri => emitter.uri(value),
            ParamKind::Composite | ParamKind::Special => {}
        }
    }
    Ok(())
}

/// Removes duplicates among `rows[start..]`, keeping first occurrences.
fn dedup_from(rows: &mut Vec<IndexRow>, start: usize) {
    let count = rows.len().saturating_sub(start);
    if count < 2 {
        return;
    }
    let tail = rows.split_off(start);
    if count <= 32 {
        for row in tail {
            if !rows.get(start..).is_some_and(|kept| kept.contains(&row)) {
                rows.push(row);
            }
        }
    } else {
        // Many rows (a large Group or List): hash a faithful rendering
        // instead of comparing every pair.
        let mut seen = HashSet::with_capacity(count);
        for row in tail {
            if seen.insert(format!("{row:?}")) {
                rows.push(row);
            }
        }
    }
}

/// The FHIR type name of a value (`HumanName`, `code`…), for nodes.
fn type_name(value: &Value<'_>) -> Option<&'static str> {
    value.as_node().and_then(|n| n.type_name())
}

fn get_str<'j>(json: &'j Json, key: &str) -> Option<&'j str> {
    json.get(key).and_then(Json::as_str)
}

/// The strings of an array property (or of a single string property).
fn each_str<'j>(json: &'j Json, key: &str) -> impl Iterator<Item = &'j str> {
    let value = json.get(key);
    let single = value.and_then(Json::as_str);
    let many = value
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str);
    single.into_iter().chain(many)
}

fn is_quantity_type(name: &str) -> bool {
    matches!(
        name,
        "Quantity" | "Age" | "Count" | "Distance" | "Duration" | "SimpleQuantity" | "MoneyQuantity"
    )
}

/// The parts of a token: system, code and display text (not yet normalised).
struct TokenParts<'j> {
    system: Option<&'j str>,
    code: Option<Cow<'j, str>>,
    text: Option<&'j str>,
}

/// Calls `f` with each token a value denotes: one per Coding, one text-only
/// token for `CodeableConcept.text`, the system and value of an Identifier,
/// the value of a ContactPoint, the code of a primitive.
fn each_token<'j>(value: &Value<'j>, mut f: impl FnMut(TokenParts<'j>)) {
    let coding = |json: &'j Json| TokenParts {
        system: get_str(json, "system"),
        code: get_str(json, "code").map(Cow::Borrowed),
        text: get_str(json, "display"),
    };
    let Some(node) = value.as_node() else {
        let code = match value {
            Value::Boolean(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Value::String(s) => Some(Cow::Owned(s.to_string())),
            Value::Integer(i) => Some(Cow::Owned(i.to_string())),
            _ => None,
        };
        if code.is_some() {
            f(TokenParts {
                system: None,
                code,
                text: None,
            });
        }
        return;
    };
    let Some(json) = node.json() else {
        return;
    };
    match node.type_name() {
        Some("Coding") => f(coding(json)),
        Some("CodeableConcept") => {
            for c in json
                .get("coding")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                f(coding(c));
            }
            if let Some(text) = get_str(json, "text") {
                f(TokenParts {
                    system: None,
                    code: None,
                    text: Some(text),
                });
            }
        }
        Some("Identifier") => f(TokenParts {
            system: get_str(json, "system"),
            code: get_str(json, "value").map(Cow::Borrowed),
            text: json.get("type").and_then(|t| get_str(t, "text")),
        }),
        Some("ContactPoint") => f(TokenParts {
            system: None,
            code: get_str(json, "value").map(Cow::Borrowed),
            text: None,
        }),
        _ => {
            let code = match json {
                Json::String(s) => Some(Cow::Borrowed(s.as_str())),
                Json::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
                Json::Number(n) => Some(Cow::Owned(n.to_string())),
                _ => None,
            };
            if code.is_some() {
                f(TokenParts {
                    system: None,
                    code,
                    text: None,
                });
            }
        }
    }
}

/// A quantity's value (with its implicit range), system, code and unit.
struct QuantityParts<'j> {
    number: Number,
    system: Option<&'j str>,
    code: Option<&'j str>,
    unit: Option<&'j str>,
}

/// The quantity a `Quantity`-like or `Money` node holds, if it has a value.
fn quantity_parts<'j>(value: &Value<'j>) -> Option<QuantityParts<'j>> {
    let node = value.as_node()?;
    let json = node.json()?;
    let name = node.type_name()?;
    let mut number = match json.get("value")? {
        Json::Number(n) => number::from_json(n)?,
        Json::String(s) => number::parse_number(s)?,
        _ => return None,
    };
    if name == "Money" {
        return Some(QuantityParts {
            number,
            system: Some(CURRENCY_SYSTEM),
            code: get_str(json, "currency"),
            unit: None,
        });
    }
    if !is_quantity_type(name) {
        return None;
    }
    match get_str(json, "comparator") {
        Some("<" | "<=") => number.low = f64::NEG_INFINITY,
        Some(">" | ">=") => number.high = f64::INFINITY,
        _ => {}
    }
    Some(QuantityParts {
        number,
        system: get_str(json, "system"),
        code: get_str(json, "code"),
        unit: get_str(json, "unit"),
    })
}

/// The date range of a value: a date/dateTime/instant, a Period, or a system
/// date. Timings are handled by the caller (they have several ranges).
fn date_range(value: &Value<'_>) -> Option<(i64, i64)> {
    match value {
        Value::Node(node) => {
            let json = node.json()?;
            match node.type_name() {
                Some("Period") => period_range(json),
                _ => parse_range(json.as_str()?),
            }
        }
        Value::Date(d) => parse_range(&d.to_string()),
        Value::DateTime(d) => parse_range(&d.to_string()),
        _ => None,
    }
}

/// `[start.low, end.high]`, open where an end is missing; `None` when the
/// period has neither end or an end is not a valid dateTime.
fn period_range(json: &Json) -> Option<(i64, i64)> {
    let start = json.get("start").and_then(Json::as_str);
    let end = json.get("end").and_then(Json::as_str);
    if start.is_none() && end.is_none() {
        return None;
    }
    let low = match start {
        Some(s) => parse_range(s)?.0,
        None => i64::MIN,
    };
    let high = match end {
        Some(s) => parse_range(s)?.1,
        None => i64::MAX,
    };
    Some((low, high))
}

/// Appends the rows of one parameter's values.
struct Emitter<'o> {
    param: &'o str,
    out: &'o mut Vec<IndexRow>,
}

impl Emitter<'_> {
    fn push_string(&mut self, s: &str) {
        let normalized = normalize(s);
        if !normalized.is_empty() {
            self.out.push(IndexRow::String {
                param: self.param.to_owned(),
                normalized,
                exact: s.to_owned(),
            });
        }
    }

    fn string(&mut self, value: &Value<'_>) {
        let Some(node) = value.as_node() else {
            if let Value::String(s) = value {
                self.push_string(s);
            }
            return;
        };
        let Some(json) = node.json() else {
            return;
        };
        let parts: &[&str] = match node.type_name() {
            Some("HumanName") => &["family", "given", "prefix", "suffix", "text"],
            Some("Address") => &[
                "line",
                "city",
                "district",
                "state",
                "postalCode",
                "country",
                "text",
            ],
            _ => {
                if let Some(s) = json.as_str() {
                    self.push_string(s);
                }
                return;
            }
        };
        for key in parts {
            for s in each_str(json, key) {
                self.push_string(s);
            }
        }
    }

    fn token(&mut self, value: &Value<'_>) {
        each_token(value, |t| {
            let text = t.text.map(normalize).filter(|s| !s.is_empty());
            if t.code.is_none() && text.is_none() {
                return;
            }
            self.out.push(IndexRow::Token {
                param: self.param.to_owned(),
                system: t.system.map(str::to_owned),
                code: t.code.map(Cow::into_owned),
                text,
            });
        });
        if type_name(value) == Some("Identifier") {
            self.identifier_of_type(value);
        }
    }

    /// The `<param>:of-type` rows of an Identifier: code
    /// `type-system|type-code|value` for each coding of `Identifier.type`.
    fn identifier_of_type(&mut self, value: &Value<'_>) {
        let Some(json) = value.as_json() else {
            return;
        };
        let Some(id_value) = get_str(json, "value") else {
            return;
        };
        let codings = json
            .get("type")
            .and_then(|t| t.get("coding"))
            .and_then(Json::as_array);
        for coding in codings.into_iter().flatten() {
            let Some(code) = get_str(coding, "code") else {
                continue;
            };
            let system = get_str(coding, "system").unwrap_or("");
            self.out.push(IndexRow::Token {
                param: format!("{}:of-type", self.param),
                system: None,
                code: Some(format!("{system}|{code}|{id_value}")),
                text: None,
            });
        }
    }

    fn reference(&mut self, value: &Value<'_>) {
        let Some(node) = value.as_node() else {
            if let Value::String(s) = value {
                self.push_url(s);
            }
            return;
        };
        let Some(json) = node.json() else {
            return;
        };
        if node.type_name() != Some("Reference") {
            // canonical, uri, url: a URL only.
            if let Some(s) = json.as_str() {
                self.push_url(s);
            }
            return;
        }
        if let Some(reference) = get_str(json, "reference") {
            self.push_reference(reference);
        }
        if let Some(identifier) = json.get("identifier") {
            let system = get_str(identifier, "system");
            if let Some(code) = get_str(identifier, "value") {
                self.out.push(IndexRow::Token {
                    param: format!("{}:identifier", self.param),
                    system: system.map(str::to_owned),
                    code: Some(code.to_owned()),
                    text: None,
                });
            }
        }
    }

    fn push_url(&mut self, url: &str) {
        if !url.is_empty() {
            self.out.push(IndexRow::Reference {
                param: self.param.to_owned(),
                target_type: None,
                target_id: None,
                url: Some(url.to_owned()),
            });
        }
    }

    fn push_reference(&mut self, reference: &str) {
        match parse_reference(reference) {
            ParsedReference::Contained => {}
            ParsedReference::Local { rtype, id } => self.out.push(IndexRow::Reference {
                param: self.param.to_owned(),
                target_type: Some(rtype.to_owned()),
                target_id: Some(id.to_owned()),
                url: None,
            }),
            ParsedReference::Url { typed } => self.out.push(IndexRow::Reference {
                param: self.param.to_owned(),
                target_type: typed.map(|(t, _)| t.to_owned()),
                target_id: typed.map(|(_, id)| id.to_owned()),
                url: Some(reference.to_owned()),
            }),
        }
    }

    fn date(&mut self, value: &Value<'_>) {
        if type_name(value) == Some("Timing") {
            let Some(json) = value.as_json() else {
                return;
            };
            for event in each_str(json, "event") {
                if let Some((low, high)) = parse_range(event) {
                    self.push_date(low, high);
                }
            }
            let bounds = json.get("repeat").and_then(|r| r.get("boundsPeriod"));
            if let Some((low, high)) = bounds.and_then(period_range) {
                self.push_date(low, high);
            }
            return;
        }
        if let Some((low, high)) = date_range(value) {
            self.push_date(low, high);
        }
    }

    fn push_date(&mut self, low: i64, high: i64) {
        self.out.push(IndexRow::Date {
            param: self.param.to_owned(),
            low,
            high,
        });
    }

    fn number(&mut self, value: &Value<'_>) {
        let number = match value {
            Value::Node(node) => match node.json() {
                Some(Json::Number(n)) => number::from_json(n),
                Some(Json::String(s)) => number::parse_number(s),
                _ => None,
            },
            Value::Integer(i) => number::parse_number(&i.to_string()),
            Value::Decimal(d) => number::parse_number(&d.to_string()),
            _ => None,
        };
        if let Some(n) = number {
            self.out.push(IndexRow::Number {
                param: self.param.to_owned(),
                value: n.value,
                low: n.low,
                high: n.high,
            });
        }
    }

    fn quantity(&mut self, value: &Value<'_>) {
        if let Some(q) = quantity_parts(value) {
            self.out.push(IndexRow::Quantity {
                param: self.param.to_owned(),
                system: q.system.map(str::to_owned),
                code: q.code.map(str::to_owned),
                unit: q.unit.map(str::to_owned),
                value: q.number.value,
                low: q.number.low,
                high: q.number.high,
            });
        }
    }

    fn uri(&mut self, value: &Value<'_>) {
        if let Some(s) = value.as_str().filter(|s| !s.is_empty()) {
            self.out.push(IndexRow::Uri {
                param: self.param.to_owned(),
                value: s.to_owned(),
            });
        }
    }
}

/// What a `Reference.reference` string points to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ParsedReference<'r> {
    /// `#id`: a contained resource.
    Contained,
    /// `Type/id` (a version suffix dropped).
    Local { rtype: &'r str, id: &'r str },
    /// An absolute URL, a `urn:`, or anything else that is not `Type/id`;
    /// `typed` when it ends with `Type/id` (a version suffix dropped).
    Url { typed: Option<(&'r str, &'r str)> },
}

/// Classifies a reference string (R4 2.3.0.3 "Literal references").
pub(crate) fn parse_reference(reference: &str) -> ParsedReference<'_> {
    if reference.starts_with('#') {
        return ParsedReference::Contained;
    }
    let without_version = match reference.find("/_history/") {
        Some(i) => reference.get(..i).unwrap_or(reference),
        None => reference,
    };
    let absolute = reference.contains("://") || reference.starts_with("urn:");
    if absolute {
        let typed = if reference.starts_with("urn:") {
            None
        } else {
            type_and_id(without_version)
        };
        return ParsedReference::Url { typed };
    }
    match without_version.split_once('/') {
        Some((rtype, id)) if is_type_and_id(rtype, id) => ParsedReference::Local { rtype, id },
        _ => ParsedReference::Url { typed: None },
    }
}

/// The `Type/id` at the end of a URL path.
fn type_and_id(url: &str) -> Option<(&str, &str)> {
    let (rest, id) = url.rsplit_once('/')?;
    let rtype = rest.rsplit('/').next()?;
    is_type_and_id(rtype, id).then_some((rtype, id))
}

fn is_type_and_id(rtype: &str, id: &str) -> bool {
    fhir::is_known_resource_type(rtype) && fhir::is_valid_id(id)
}

/// Appends the composite rows of one parameter: for each context node, the
/// cross product of its first component's tokens (with a code) and its
/// second component's values.
fn extract_composite<'a>(
    def: &ParamDef,
    resource: &'a Json,
    contexts: &[Value<'a>],
    env: &Env<'a>,
    out: &mut Vec<IndexRow>,
) -> Result<(), String> {
    let [first, second] = def.components.as_slice() else {
        return Ok(());
    };
    let (Some(first_expr), Some(second_expr)) =
        (first.compiled.as_deref(), second.compiled.as_deref())
    else {
        return Ok(());
    };
    for context in contexts {
        let context = std::slice::from_ref(context);
        let firsts =
            evaluate_with_context(first_expr, resource, context, env).map_err(|e| e.to_string())?;
        let mut tokens: Vec<(Option<&str>, Cow<'_, str>)> = Vec::new();
        for value in &firsts {
            each_token(value, |t| {
                if let Some(code) = t.code {
                    tokens.push((t.system, code));
                }
            });
        }
        if tokens.is_empty() {
            continue;
        }
        let seconds = evaluate_with_context(second_expr, resource, context, env)
            .map_err(|e| e.to_string())?;
        let mut values = Vec::new();
        for value in &seconds {
            composite_values(second.kind, value, &mut values);
        }
        for (system, code) in &tokens {
            for second in &values {
                out.push(IndexRow::Composite {
                    param: def.code.clone(),
                    system: system.map(str::to_owned),
                    code: code.to_string(),
                    second: second.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The second values of a composite, by the second component's type.
/// A quantity without a `code` uses its `unit` as the code; a `Range` gives
/// `[low.value, high.value]` with the low (or high) quantity's unit.
fn composite_values(kind: ParamKind, value: &Value<'_>, out: &mut Vec<CompositeValue>) {
    match kind {
        ParamKind::Token => each_token(value, |t| {
            if let Some(code) = t.code {
                out.push(CompositeValue::Token {
                    system: t.system.map(str::to_owned),
                    code: code.into_owned(),
                });
            }
        }),
        ParamKind::Quantity => {
            if let Some(q) = quantity_parts(value) {
                out.push(CompositeValue::Quantity {
                    system: q.system.map(str::to_owned),
                    code: q.code.or(q.unit).map(str::to_owned),
                    low: q.number.low,
                    high: q.number.high,
                });
            } else if type_name(value) == Some("Range")
                && let Some(range) = range_value(value)
            {
                out.push(range);
            }
        }
        ParamKind::Date => {
            if let Some((low, high)) = date_range(value) {
                out.push(CompositeValue::Date { low, high });
            }
        }
        ParamKind::String => {
            if let Some(s) = value.as_str() {
                let normalized = normalize(s);
                if !normalized.is_empty() {
                    out.push(CompositeValue::String { normalized });
                }
            }
        }
        _ => {}
    }
}

/// A `Range` as a composite quantity `[low.value, high.value]`.
fn range_value(value: &Value<'_>) -> Option<CompositeValue> {
    let json = value.as_json()?;
    let bound = |key: &str| -> Option<(f64, &Json)> {
        let q = json.get(key)?;
        let v = match q.get("value")? {
            Json::Number(n) => n.as_f64()?,
            Json::String(s) => s.parse().ok()?,
            _ => return None,
        };
        Some((v, q))
    };
    let low = bound("low");
    let high = bound("high");
    let unit_source = low.or(high)?.1;
    Some(CompositeValue::Quantity {
        system: get_str(unit_source, "system").map(str::to_owned),
        code: get_str(unit_source, "code")
            .or_else(|| get_str(unit_source, "unit"))
            .map(str::to_owned),
        low: low.map_or(f64::NEG_INFINITY, |l| l.0),
        high: high.map_or(f64::INFINITY, |h| h.0),
    })
}

/// The Patient compartment of a resource: its own id for a Patient;
/// otherwise the id of the first Patient referenced through the
/// compartment's parameters for `rtype`, taken in the CompartmentDefinition's
/// order (`Condition`: `patient`, then `asserter`). `None` when the type is
/// not in the compartment or no such reference was indexed.
pub fn patient_compartment(rtype: &str, id: &str, rows: &[IndexRow]) -> Option<String> {
    if rtype == "Patient" {
        return Some(id.to_owned());
    }
    registry()
        .compartment_params(rtype)
        .iter()
        .find_map(|code| {
            rows.iter().find_map(|row| match row {
                IndexRow::Reference {
                    param,
                    target_type: Some(t),
                    target_id: Some(target),
                    ..
                } if param == code && t == "Patient" => Some(target.clone()),
                _ => None,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::{ParsedReference, parse_reference};

    #[test]
    fn classifies_references() {
        assert_eq!(parse_reference("#p1"), ParsedReference::Contained);
        assert_eq!(
            parse_reference("Patient/123"),
            ParsedReference::Local {
                rtype: "Patient",
                id: "123"
            }
        );
        assert_eq!(
            parse_reference("Patient/123/_history/4"),
            ParsedReference::Local {
                rtype: "Patient",
                id: "123"
            }
        );
        assert_eq!(
            parse_reference("http://example.org/fhir/Patient/123/_history/4"),
            ParsedReference::Url {
                typed: Some(("Patient", "123"))
            }
        );
        assert_eq!(
            parse_reference("https://example.org/fhir/Patient/123"),
            ParsedReference::Url {
                typed: Some(("Patient", "123"))
            }
        );
        assert_eq!(
            parse_reference("urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"),
            ParsedReference::Url { typed: None }
        );
        assert_eq!(
            parse_reference("http://example.org/not-fhir"),
            ParsedReference::Url { typed: None }
        );
        assert_eq!(
            parse_reference("Unknown/1"),
            ParsedReference::Url { typed: None }
        );
        assert_eq!(
            parse_reference("Patient/bad id"),
            ParsedReference::Url { typed: None }
        );
    }
}
