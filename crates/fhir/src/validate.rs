//! Structural validation of FHIR R4 JSON resources against the official definitions.
//!
//! [`validate_resource`] walks a `serde_json::Value` once, alongside the
//! compiled definitions, and reports every problem it finds as an [`Issue`].
//! It checks element names, cardinality, JSON shapes, primitive formats,
//! required code bindings, reference syntax and NHS number check digits.
//! It does not evaluate FHIRPath invariants (apart from ext-1 and dom-2),
//! profiles, or whether references resolve.
//!
//! Diagnostics never echo element values, which may be personal data; they do
//! echo codes (from required value sets) and JSON property names.

use std::fmt;

use serde_json::{Map, Value};

use crate::definitions::{
    Definitions, ElementDef, ElementKind, Lookup, Max, Node, Special, TypeKind, TypeRef,
    definitions,
};
use crate::primitive::{Primitive, PrimitiveError, is_oid, is_uuid};
use crate::{is_known_resource_type, is_valid_id, nhs_number};

/// How serious an [`Issue`] is (FHIR `OperationOutcome.issue.severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The resource is invalid and must be rejected.
    Error,
    /// The resource is acceptable but something is questionable.
    Warning,
}

impl Severity {
    /// The FHIR `issue-severity` code.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// The kind of problem (a FHIR `issue-type` code, `OperationOutcome.issue.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueCode {
    /// Content invalid against the specification in a way not covered below.
    Invalid,
    /// A structural problem: unknown element, wrong JSON shape, array where a
    /// single value belongs, null or empty value.
    Structure,
    /// A required element is missing.
    Required,
    /// A primitive value has the wrong JSON kind or format.
    Value,
    /// A FHIR invariant (constraint) is violated.
    Invariant,
    /// A code is not in the required value set.
    CodeInvalid,
    /// Content the server does not support, such as an unknown resource type.
    NotSupported,
    /// Information only, such as content that is ignored.
    Informational,
    /// The validator itself failed (its definitions could not be loaded).
    Exception,
}

impl IssueCode {
    /// The FHIR `issue-type` code.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueCode::Invalid => "invalid",
            IssueCode::Structure => "structure",
            IssueCode::Required => "required",
            IssueCode::Value => "value",
            IssueCode::Invariant => "invariant",
            IssueCode::CodeInvalid => "code-invalid",
            IssueCode::NotSupported => "not-supported",
            IssueCode::Informational => "informational",
            IssueCode::Exception => "exception",
        }
    }
}

/// One validation finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueCode,
    /// A human-readable explanation that names the element. It never contains
    /// element values other than codes.
    pub diagnostics: String,
    /// Where the problem is, as a FHIRPath-like path of JSON property names and
    /// array indices, e.g. `Patient.name[0].given[1]`. Choice elements use their
    /// JSON name (`Observation.valueQuantity`). Empty if there is no resource
    /// type to start from.
    pub expression: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] {}: {}",
            self.severity.as_str(),
            self.code.as_str(),
            self.expression,
            self.diagnostics
        )
    }
}

/// Returns true if any issue is an error.
pub fn has_errors(issues: &[Issue]) -> bool {
    issues.iter().any(|i| i.severity == Severity::Error)
}

/// Validates a resource in FHIR JSON form against the R4 definitions.
///
/// Returns every issue found, in document order; an empty vector means the
/// resource is structurally valid. Contained resources and the resources in
/// `Bundle.entry` and `Parameters.parameter` are validated too, as resources
/// of their own `resourceType`.
pub fn validate_resource(resource: &Value) -> Vec<Issue> {
    match definitions() {
        Ok(defs) => {
            let mut validator = Validator {
                defs,
                path: Vec::with_capacity(32),
                issues: Vec::new(),
                contained_depth: 0,
            };
            validator.resource(resource, None);
            validator.issues
        }
        Err(message) => vec![Issue {
            severity: Severity::Error,
            code: IssueCode::Exception,
            diagnostics: format!("The FHIR definitions could not be loaded: {message}"),
            expression: String::new(),
        }],
    }
}

/// Nesting deeper than this (in path segments: a property name or an array
/// index each) is reported instead of followed, which bounds the recursion.
/// Real resources stay far below it; serde_json's parser already limits JSON
/// nesting to 128 levels, but values built in code have no such limit.
const MAX_DEPTH: usize = 200;

/// At most this many characters of a code or property name are quoted in diagnostics.
const MAX_QUOTED: usize = 64;

/// One step of the path to the value being validated.
#[derive(Debug, Clone, Copy)]
enum Segment<'v> {
    Name(&'v str),
    Index(usize),
}

/// The state of one validation run. The path is a stack of borrowed segments,
/// rendered to a string only when an issue is reported.
struct Validator<'d, 'v> {
    defs: &'d Definitions,
    path: Vec<Segment<'v>>,
    issues: Vec<Issue>,
    /// How many `contained` resources enclose the current value.
    contained_depth: usize,
}

/// Quotes untrusted text (a code or property name) for a diagnostic, shortened.
fn quoted(text: &str) -> String {
    let mut short: String = text.chars().take(MAX_QUOTED).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    format!("{short:?}")
}

/// Whether `reference` has one of the forms FHIR allows for `Reference.reference`.
///
/// Accepted: `Type/id`, `Type/id/_history/vid`, `Type?query` (a conditional
/// reference, meaningful in transactions), `#id` or `#` (contained resources),
/// `urn:uuid:<uuid>`, `urn:oid:<oid>` and absolute `http`/`https` URLs.
fn is_valid_reference(reference: &str) -> bool {
    if let Some(local) = reference.strip_prefix('#') {
        return local.is_empty() || is_valid_id(local);
    }
    if reference.chars().any(char::is_whitespace) {
        return false;
    }
    if let Some(uuid) = reference.strip_prefix("urn:uuid:") {
        return is_uuid(uuid, false);
    }
    if reference.starts_with("urn:oid:") {
        return is_oid(reference);
    }
    if let Some(rest) = reference
        .strip_prefix("http://")
        .or_else(|| reference.strip_prefix("https://"))
    {
        return !rest.is_empty();
    }
    if let Some((resource_type, query)) = reference.split_once('?') {
        return is_known_resource_type(resource_type) && !query.is_empty();
    }
    let mut parts = reference.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(resource_type), Some(id), None, _, _) => {
            is_known_resource_type(resource_type) && is_valid_id(id)
        }
        (Some(resource_type), Some(id), Some("_history"), Some(version), None) => {
            is_known_resource_type(resource_type) && is_valid_id(id) && is_valid_id(version)
        }
        _ => false,
    }
}

/// The JSON name of a choice element for one of its types: `value` and
/// `dateTime` give `valueDateTime`.
fn choice_property(prefix: &str, code: &str) -> String {
    let mut chars = code.chars();
    let mut out = String::from(prefix);
    if let Some(first) = chars.next() {
        out.push(first.to_ascii_uppercase());
    }
    out.push_str(chars.as_str());
    out
}

/// The value of the companion property `_key` in `object`, found without allocating.
fn companion_of<'v>(object: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    object
        .iter()
        .find(|(k, _)| k.strip_prefix('_') == Some(key))
        .map(|(_, v)| v)
}

impl<'d, 'v> Validator<'d, 'v> {
    /// Renders the current path, e.g. `Patient.name[0].given`.
    fn expression(&self) -> String {
        let mut out = String::new();
        for segment in &self.path {
            match segment {
                Segment::Name(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Segment::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    /// The innermost property name on the path, for diagnostics.
    fn current_name(&self) -> &'v str {
        self.path
            .iter()
            .rev()
            .find_map(|s| match s {
                Segment::Name(name) => Some(*name),
                Segment::Index(_) => None,
            })
            .unwrap_or("resource")
    }

    fn report(&mut self, code: IssueCode, diagnostics: String) {
        self.report_with(Severity::Error, code, diagnostics);
    }

    fn report_with(&mut self, severity: Severity, code: IssueCode, diagnostics: String) {
        let expression = self.expression();
        self.issues.push(Issue {
            severity,
            code,
            diagnostics,
            expression,
        });
    }

    /// Reports an issue located at the child `name` of the current path.
    fn report_at(&mut self, name: &'v str, code: IssueCode, diagnostics: String) {
        self.path.push(Segment::Name(name));
        self.report(code, diagnostics);
        self.path.pop();
    }

    /// Validates a resource: a JSON object whose `resourceType` names a known type,
    /// optionally required to be `expected`.
    fn resource(&mut self, value: &'v Value, expected: Option<&str>) {
        let Value::Object(object) = value else {
            self.report(
                IssueCode::Structure,
                String::from("A resource must be a JSON object"),
            );
            return;
        };
        let resource_type = match object.get("resourceType") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                self.report(
                    IssueCode::Structure,
                    String::from("'resourceType' must be a JSON string"),
                );
                return;
            }
            None => {
                self.report(
                    IssueCode::Required,
                    String::from("The resource has no 'resourceType'"),
                );
                return;
            }
        };
        let defs = self.defs;
        let Some(root) = defs.resource(resource_type) else {
            self.report(
                IssueCode::NotSupported,
                format!("{} is not a FHIR R4 resource type", quoted(resource_type)),
            );
            return;
        };
        if let Some(expected) = expected
            && expected != resource_type
        {
            self.report(
                IssueCode::Structure,
                format!("Expected a {expected} resource here, not {resource_type}"),
            );
        }
        if self.contained_depth > 0 && object.contains_key("contained") {
            self.report(
                IssueCode::Invariant,
                String::from("A contained resource must not itself contain resources (dom-2)"),
            );
        }
        let top_level = self.path.is_empty();
        if top_level {
            self.path.push(Segment::Name(resource_type));
        }
        self.object(root, object, true);
        if top_level {
            self.path.pop();
        }
    }

    /// Validates the properties of a JSON object against `node`, then the
    /// presence of its required elements and any node-specific rules.
    fn object(&mut self, node: &'d Node, object: &'v Map<String, Value>, resource_root: bool) {
        if self.path.len() > MAX_DEPTH {
            self.report(
                IssueCode::Structure,
                String::from("The content is nested too deeply"),
            );
            return;
        }
        if object.is_empty() {
            self.report(
                IssueCode::Structure,
                format!(
                    "'{}' is an empty object; FHIR JSON does not allow empty objects",
                    self.current_name()
                ),
            );
            return;
        }
        let has_companions = object.keys().any(|k| k.starts_with('_'));
        for (key, value) in object {
            if resource_root && key == "resourceType" {
                continue;
            }
            if key == "fhir_comments" {
                self.legacy_comments(value);
                continue;
            }
            let (name, is_companion) = match key.strip_prefix('_') {
                Some(name) => (name, true),
                None => (key.as_str(), false),
            };
            let (main, companion) = if is_companion {
                if object.contains_key(name) {
                    // Validated together with its primitive value.
                    continue;
                }
                (None, Some(value))
            } else if has_companions {
                (Some(value), companion_of(object, name))
            } else {
                (Some(value), None)
            };
            self.property(node, key, name, main, companion);
        }
        self.required_elements(node, object);
        match node.special {
            Special::None => {}
            Special::Reference => self.check_reference(object),
            Special::Identifier => self.check_identifier(object),
            Special::Extension => self.check_extension(object),
        }
    }

    /// Validates one property of an object of type `node`: `key` as written in
    /// JSON, `name` without any leading `_`, and the primitive value and/or
    /// `_name` companion found for it.
    fn property(
        &mut self,
        node: &'d Node,
        key: &'v str,
        name: &'v str,
        main: Option<&'v Value>,
        mut companion: Option<&'v Value>,
    ) {
        match node.lookup(name) {
            Lookup::Element(element, ty) => {
                self.path.push(Segment::Name(name));
                if element.max == Max::Zero {
                    self.report(
                        IssueCode::Structure,
                        format!("Element '{name}' is not allowed in {}", node.path),
                    );
                } else {
                    let primitive = matches!(ty.map(|t| t.kind), Some(TypeKind::Primitive(_)));
                    if companion.is_some() && !primitive {
                        self.report(
                            IssueCode::Structure,
                            format!(
                                "'_{name}' is only allowed for primitive elements, and '{name}' is not one"
                            ),
                        );
                        companion = None;
                    }
                    if main.is_some() || companion.is_some() {
                        self.element(element, ty, main, companion);
                    }
                }
                self.path.pop();
            }
            Lookup::BareChoice(element) => {
                let example = match &element.kind {
                    ElementKind::Typed(types) => types
                        .first()
                        .map(|t| format!(", such as '{}'", choice_property(name, &t.code)))
                        .unwrap_or_default(),
                    ElementKind::Backbone(_) => String::new(),
                };
                self.report_at(
                    key,
                    IssueCode::Structure,
                    format!(
                        "'{key}' is a choice element ({}.{}) and needs a type suffix{example}",
                        node.path,
                        element.display_name()
                    ),
                );
            }
            Lookup::ChoiceTypeNotAllowed(element) => {
                let suffix = name.get(element.name.len()..).unwrap_or_default();
                self.report_at(
                    key,
                    IssueCode::Structure,
                    format!(
                        "{} is not an allowed type for {}.{}; allowed types: {}",
                        quoted(suffix),
                        node.path,
                        element.display_name(),
                        element.type_codes()
                    ),
                );
            }
            Lookup::Unknown => {
                self.report_at(
                    key,
                    IssueCode::Structure,
                    format!("Unknown element {} in {}", quoted(key), node.path),
                );
            }
        }
    }

    /// Reports the elements with minimum cardinality 1 or more that are absent.
    /// A primitive present only as its `_name` companion counts as present.
    fn required_elements(&mut self, node: &'d Node, object: &'v Map<String, Value>) {
        for element in node.required.iter().filter_map(|&i| node.children.get(i)) {
            let present = object.keys().any(|k| {
                let property = k.strip_prefix('_').unwrap_or(k);
                element.matches_property(property)
            });
            if !present {
                let name = element.display_name();
                let diagnostics = format!(
                    "Missing required element '{name}' (minimum cardinality {}) in {}",
                    element.min, node.path
                );
                let mut expression = self.expression();
                expression.push('.');
                expression.push_str(&name);
                self.issues.push(Issue {
                    severity: Severity::Error,
                    code: IssueCode::Required,
                    diagnostics,
                    expression,
                });
            }
        }
    }

    /// Validates an element's value and its `_name` companion, checking the
    /// JSON array shape against the maximum cardinality.
    fn element(
        &mut self,
        element: &'d ElementDef,
        ty: Option<&'d TypeRef>,
        main: Option<&'v Value>,
        companion: Option<&'v Value>,
    ) {
        let name = self.current_name();
        if element.max == Max::Many {
            let mut items = [None, None];
            for (slot, value) in items.iter_mut().zip([main, companion]) {
                match value {
                    None => {}
                    Some(Value::Array(array)) if array.is_empty() => {
                        self.report(
                            IssueCode::Structure,
                            format!(
                                "'{name}' is an empty array; FHIR JSON does not allow empty arrays"
                            ),
                        );
                        return;
                    }
                    Some(Value::Array(array)) => *slot = Some(array),
                    Some(_) => {
                        self.report(
                            IssueCode::Structure,
                            format!("'{name}' has maximum cardinality * and must be a JSON array"),
                        );
                        return;
                    }
                }
            }
            let [main_items, companion_items] = items;
            let length = match (main_items, companion_items) {
                (Some(m), Some(c)) if m.len() != c.len() => {
                    self.report(
                        IssueCode::Structure,
                        format!("'_{name}' must have as many items as '{name}'"),
                    );
                    m.len().max(c.len())
                }
                (m, c) => m.map_or(0, Vec::len).max(c.map_or(0, Vec::len)),
            };
            for i in 0..length {
                self.path.push(Segment::Index(i));
                let m = main_items.and_then(|a| a.get(i));
                let c = companion_items.and_then(|a| a.get(i));
                self.single(element, ty, m, c, true);
                self.path.pop();
            }
        } else {
            if matches!(main, Some(Value::Array(_))) || matches!(companion, Some(Value::Array(_))) {
                self.report(
                    IssueCode::Structure,
                    format!("'{name}' has maximum cardinality 1 and must not be an array"),
                );
                return;
            }
            self.single(element, ty, main, companion, false);
        }
    }

    /// Validates one occurrence of an element. Nulls are allowed only inside
    /// arrays, to keep a primitive array and its `_name` companion aligned.
    fn single(
        &mut self,
        element: &'d ElementDef,
        ty: Option<&'d TypeRef>,
        main: Option<&'v Value>,
        companion: Option<&'v Value>,
        in_array: bool,
    ) {
        let main_present = main.filter(|v| !v.is_null());
        let companion_present = companion.filter(|v| !v.is_null());
        let null_allowed_for_main = in_array && companion_present.is_some();
        let null_allowed_for_companion = in_array && main_present.is_some();
        if (main.is_some_and(Value::is_null) && !null_allowed_for_main)
            || (companion.is_some_and(Value::is_null) && !null_allowed_for_companion)
        {
            self.report(
                IssueCode::Structure,
                format!(
                    "'{}' is null; FHIR JSON allows null only to align a primitive array with its '_' companion",
                    self.current_name()
                ),
            );
        }
        if main_present.is_none() && companion_present.is_none() {
            return;
        }
        let defs = self.defs;
        match (&element.kind, ty) {
            (ElementKind::Backbone(id), _) => {
                if let Some(value) = main_present {
                    self.complex(defs.node(*id), value);
                }
            }
            (ElementKind::Typed(_), Some(ty)) => match ty.kind {
                TypeKind::Primitive(primitive) => {
                    if let Some(value) = main_present {
                        self.primitive(primitive, element, value);
                    }
                    if let Some(value) = companion_present {
                        self.complex(defs.node(defs.element), value);
                    }
                }
                TypeKind::Complex(id) => {
                    if let Some(value) = main_present {
                        self.complex(defs.node(id), value);
                    }
                }
                TypeKind::Resource { specific } => {
                    if let Some(value) = main_present {
                        let expected = specific.then_some(ty.code.as_ref());
                        let contained = element.name.as_ref() == "contained";
                        if contained {
                            self.contained_depth += 1;
                        }
                        self.resource(value, expected);
                        if contained {
                            self.contained_depth -= 1;
                        }
                    }
                }
            },
            // Typed elements always have a type (the definitions guarantee a
            // non-empty type list), so there is nothing to check here.
            (ElementKind::Typed(_), None) => {}
        }
    }

    /// Validates a value that must be a JSON object of a complex type or backbone element.
    fn complex(&mut self, node: &'d Node, value: &'v Value) {
        match value {
            Value::Object(object) => self.object(node, object, false),
            _ => self.report(
                IssueCode::Structure,
                format!("'{}' must be a JSON object", self.current_name()),
            ),
        }
    }

    /// Validates a primitive value, and its code against a required value set.
    fn primitive(&mut self, primitive: Primitive, element: &'d ElementDef, value: &'v Value) {
        match primitive.check(value) {
            Ok(()) => {}
            Err(PrimitiveError::WrongJsonKind(expected)) => {
                self.report(
                    IssueCode::Value,
                    format!(
                        "'{}' must be {expected} (FHIR type {})",
                        self.current_name(),
                        primitive.code()
                    ),
                );
                return;
            }
            Err(PrimitiveError::Empty) => {
                self.report(
                    IssueCode::Structure,
                    format!(
                        "'{}' is an empty string; FHIR JSON does not allow empty strings",
                        self.current_name()
                    ),
                );
                return;
            }
            Err(PrimitiveError::Format(expected)) => {
                self.report(
                    IssueCode::Value,
                    format!(
                        "'{}' is not a valid {}; expected {expected}",
                        self.current_name(),
                        primitive.code()
                    ),
                );
                return;
            }
        }
        if primitive == Primitive::Code
            && let Some(value_set) = element.value_set.and_then(|i| self.defs.value_sets.get(i))
            && let Value::String(code) = value
            && !value_set.contains(code)
        {
            self.report(
                IssueCode::CodeInvalid,
                format!(
                    "The code {} of '{}' is not in the required value set {}",
                    quoted(code),
                    self.current_name(),
                    value_set.url
                ),
            );
        }
    }

    /// `fhir_comments`: XML comments carried into JSON by DSTU2-era converters.
    /// R4 does not define it; like the reference validator, it is accepted with
    /// a warning, provided it is an array of strings.
    fn legacy_comments(&mut self, value: &'v Value) {
        self.path.push(Segment::Name("fhir_comments"));
        match value {
            Value::Array(comments)
                if !comments.is_empty()
                    && comments
                        .iter()
                        .all(|c| c.as_str().is_some_and(|s| !s.is_empty())) =>
            {
                self.report_with(
                    Severity::Warning,
                    IssueCode::Informational,
                    String::from(
                        "'fhir_comments' is a legacy convention for XML comments, not part of FHIR R4 JSON; it is ignored",
                    ),
                );
            }
            _ => self.report(
                IssueCode::Structure,
                String::from("'fhir_comments' must be a non-empty array of non-empty strings"),
            ),
        }
        self.path.pop();
    }

    /// `Reference.reference` must have a valid form.
    fn check_reference(&mut self, object: &'v Map<String, Value>) {
        if let Some(Value::String(reference)) = object.get("reference")
            && !reference.is_empty()
            && !is_valid_reference(reference)
        {
            self.report_at(
                "reference",
                IssueCode::Value,
                String::from(
                    "'reference' is not a valid reference; expected Type/id, Type/id/_history/vid, \
                     an absolute http(s) URL, urn:uuid:<uuid>, urn:oid:<oid> or #id, \
                     where Type is an R4 resource type and id a FHIR id",
                ),
            );
        }
    }

    /// An NHS number identifier must have a valid check digit.
    fn check_identifier(&mut self, object: &'v Map<String, Value>) {
        if let Some(Value::String(system)) = object.get("system")
            && system == nhs_number::SYSTEM
            && let Some(Value::String(value)) = object.get("value")
            && !nhs_number::is_valid(value)
        {
            self.report_at(
                "value",
                IssueCode::Value,
                String::from(
                    "NHS number fails the Modulus 11 check (an NHS number is 10 digits with a valid check digit)",
                ),
            );
        }
    }

    /// Invariant ext-1: an extension has nested extensions or a value, not both.
    fn check_extension(&mut self, object: &'v Map<String, Value>) {
        let has_extensions = object.contains_key("extension");
        let has_value = object
            .keys()
            .any(|k| k.strip_prefix('_').unwrap_or(k).starts_with("value"));
        if has_extensions == has_value {
            self.report(
                IssueCode::Invariant,
                String::from(
                    "An extension must have either nested extensions or a value[x], not both (ext-1)",
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_forms() {
        for ok in [
            "Patient/123",
            "Patient/a.b-c",
            "Patient/123/_history/2",
            "#p1",
            "#",
            "urn:uuid:a656ed17-26cc-47cb-981e-22207719cc22",
            "urn:oid:1.2.3.4",
            "http://example.org/fhir/Patient/1",
            "https://example.org/fhir/Patient/1",
            "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018",
        ] {
            assert!(is_valid_reference(ok), "{ok}");
        }
        for bad in [
            "Patient",
            "Patient/",
            "Foo/123",
            "patient/123",
            "Patient/1 2",
            "Patient/a_b",
            "Patient/1/_history",
            "Patient/1/history/2",
            "Patient/1/_history/2/x",
            "urn:uuid:123",
            "urn:oid:abc",
            "http://",
            "#a b",
            "Foo?x=1",
            "Patient?",
            "/Patient/1",
        ] {
            assert!(!is_valid_reference(bad), "{bad}");
        }
    }

    #[test]
    fn quoting_shortens_and_escapes() {
        assert_eq!(quoted("abc"), "\"abc\"");
        assert_eq!(quoted("a\"b"), "\"a\\\"b\"");
        assert_eq!(quoted(&"x".repeat(100)).chars().count(), 64 + 3);
    }

    #[test]
    fn issue_codes_map_to_fhir() {
        assert_eq!(IssueCode::CodeInvalid.as_str(), "code-invalid");
        assert_eq!(IssueCode::NotSupported.as_str(), "not-supported");
        assert_eq!(Severity::Warning.as_str(), "warning");
    }
}
