//! The compiled R4 definitions that validation walks.
//!
//! # The derived file
//!
//! `data/r4-definitions.json` is generated from the official R4
//! StructureDefinitions, ValueSets and CodeSystems (see the crate README for
//! the command). It holds only what validation needs:
//!
//! ```text
//! {
//!   "fhirVersion": "4.0.1",
//!   "valueSets": [ ["<value set url>", ["code", ...]], ... ],
//!   "types": [
//!     { "name": "Patient", "kind": "resource", "elements": [
//!         ["gender", 0, "1", "code", 7],
//!         ["contact", 0, "*", "", null],
//!         ["contact.name", 0, "1", "HumanName", null],
//!         ["deceased[x]", 0, "1", "boolean|dateTime", null],
//!         ...
//!     ] },
//!     ...
//!   ]
//! }
//! ```
//!
//! Each element is `[path, min, max, types, valueSet]`:
//! - `path` is relative to the type and names its parent by prefix; parents come
//!   before their children (snapshot order). A trailing `[x]` marks a choice.
//! - `max` is `"0"`, `"1"` or `"*"`.
//! - `types` is `|`-separated FHIR type codes; `""` means a backbone element whose
//!   children follow; `"#path"` is a `contentReference` to an earlier backbone
//!   element of the same type (e.g. `Questionnaire.item.item` → `#item`).
//! - `valueSet` indexes `valueSets` when the element is of type `code` and has a
//!   `required` binding to a value set that could be expanded; otherwise `null`.
//!
//! `kind` is `"resource"` for concrete resources and `"complex"` for complex data
//! types (including `Element`, used for the `_name` companions of primitives).
//! Each value set's codes are sorted and unique.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::primitive::Primitive;

/// The derived definitions, embedded at compile time.
const DEFINITIONS_JSON: &str = include_str!("../data/r4-definitions.json");

/// Index of a [`Node`] in [`Definitions::nodes`].
pub(crate) type NodeId = usize;

/// A complex type, resource or backbone element: the set of child elements an
/// object of that shape may contain.
#[derive(Debug)]
pub(crate) struct Node {
    /// Where the node is defined, e.g. `"Patient.contact"`, for diagnostics.
    pub(crate) path: Cow<'static, str>,
    /// Extra rules beyond the element definitions (see [`Special`]).
    pub(crate) special: Special,
    /// Child elements. Invariant: sorted by [`name_order`], names unique.
    pub(crate) children: Vec<ElementDef>,
    /// Indices into `children` of the choice (`[x]`) elements.
    pub(crate) choices: Vec<usize>,
    /// Indices into `children` of the elements with `min >= 1`, in definition order.
    pub(crate) required: Vec<usize>,
}

/// Node-specific rules that are not expressed as element definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    None,
    /// `Reference`: the syntax of `reference`.
    Reference,
    /// `Identifier`: NHS numbers must pass their check digit.
    Identifier,
    /// `Extension`: invariant ext-1 (a value or nested extensions, not both).
    Extension,
}

/// One element definition, as a child of a [`Node`].
#[derive(Debug)]
pub(crate) struct ElementDef {
    /// The JSON property name; for a choice element the prefix before `[x]`.
    pub(crate) name: Box<str>,
    /// Whether this is a choice element (`value[x]`), named in JSON by
    /// `name` followed by the capitalised type code (`valueQuantity`).
    pub(crate) choice: bool,
    pub(crate) min: u32,
    pub(crate) max: Max,
    pub(crate) kind: ElementKind,
    /// Index into [`Definitions::value_sets`] for `code` elements with a
    /// required binding that could be expanded.
    pub(crate) value_set: Option<usize>,
}

/// The maximum cardinality of an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Max {
    Zero,
    One,
    Many,
}

/// What an element contains.
#[derive(Debug)]
pub(crate) enum ElementKind {
    /// An inline (backbone) structure, or a `contentReference` to one.
    Backbone(NodeId),
    /// One or more types (more than one only for choice elements).
    /// Invariant: non-empty.
    Typed(Vec<TypeRef>),
}

/// One allowed type of an element.
#[derive(Debug)]
pub(crate) struct TypeRef {
    /// The FHIR type code, e.g. `"dateTime"` or `"CodeableConcept"`.
    pub(crate) code: Box<str>,
    pub(crate) kind: TypeKind,
}

/// How values of a [`TypeRef`] are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeKind {
    Primitive(Primitive),
    /// A complex data type, validated against its node.
    Complex(NodeId),
    /// A resource, identified by its `resourceType`. `specific` is true when
    /// only the resource type named by [`TypeRef::code`] is allowed
    /// (`Bundle.entry.response.outcome` must be an `OperationOutcome`).
    Resource {
        specific: bool,
    },
}

/// A required value set that could be expanded.
#[derive(Debug)]
pub(crate) struct ValueSet {
    pub(crate) url: Box<str>,
    /// Invariant: sorted and unique.
    pub(crate) codes: Vec<Box<str>>,
}

impl ValueSet {
    pub(crate) fn contains(&self, code: &str) -> bool {
        self.codes
            .binary_search_by(|c| c.as_ref().cmp(code))
            .is_ok()
    }
}

/// All compiled definitions.
#[derive(Debug)]
pub(crate) struct Definitions {
    /// Invariant: every [`NodeId`] stored anywhere in the definitions indexes this vector.
    nodes: Vec<Node>,
    /// Root node of each concrete resource type.
    resources: HashMap<Box<str>, NodeId>,
    pub(crate) value_sets: Vec<ValueSet>,
    /// The `Element` type, which describes the `_name` companion of a primitive.
    pub(crate) element: NodeId,
}

/// A node with no children, returned for an out-of-range [`NodeId`] (which the
/// construction invariants rule out) so that lookups need not panic.
static EMPTY_NODE: Node = Node {
    path: Cow::Borrowed(""),
    special: Special::None,
    children: Vec::new(),
    choices: Vec::new(),
    required: Vec::new(),
};

/// The result of looking up a JSON property name (without any leading `_`) in a node.
#[derive(Debug)]
pub(crate) enum Lookup<'d> {
    /// A defined element; the type is resolved for choice elements and is `None`
    /// only for backbone elements.
    Element(&'d ElementDef, Option<&'d TypeRef>),
    /// The bare name of a choice element, e.g. `value` without a type suffix.
    BareChoice(&'d ElementDef),
    /// A choice element's prefix followed by a type it does not allow (`valueFoo`).
    ChoiceTypeNotAllowed(&'d ElementDef),
    Unknown,
}

/// The order of [`Node::children`]: by length, then bytewise. Most comparisons
/// in a lookup are then settled by comparing lengths, without reading the names.
fn name_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Whether `suffix` is `code` with its first letter in upper case
/// (`"DateTime"` for `"dateTime"`), without allocating.
fn is_type_suffix(suffix: &str, code: &str) -> bool {
    let mut s = suffix.chars();
    let mut c = code.chars();
    match (s.next(), c.next()) {
        (Some(first_s), Some(first_c)) => {
            first_s == first_c.to_ascii_uppercase() && s.as_str() == c.as_str()
        }
        _ => false,
    }
}

impl Node {
    /// Finds the element named `name` (a JSON property name without `_`).
    pub(crate) fn lookup(&self, name: &str) -> Lookup<'_> {
        if let Ok(i) = self
            .children
            .binary_search_by(|c| name_order(&c.name, name))
            && let Some(element) = self.children.get(i)
        {
            if element.choice {
                return Lookup::BareChoice(element);
            }
            let ty = match &element.kind {
                ElementKind::Typed(types) => types.first(),
                ElementKind::Backbone(_) => None,
            };
            return Lookup::Element(element, ty);
        }
        let mut wrong_type = None;
        for element in self.choices.iter().filter_map(|&i| self.children.get(i)) {
            let Some(suffix) = name.strip_prefix(element.name.as_ref()) else {
                continue;
            };
            if let ElementKind::Typed(types) = &element.kind
                && let Some(ty) = types.iter().find(|t| is_type_suffix(suffix, &t.code))
            {
                return Lookup::Element(element, Some(ty));
            }
            if suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
                wrong_type = Some(element);
            }
        }
        match wrong_type {
            Some(element) => Lookup::ChoiceTypeNotAllowed(element),
            None => Lookup::Unknown,
        }
    }
}

impl ElementDef {
    /// The element's name as written in definitions: `value[x]` for choices.
    pub(crate) fn display_name(&self) -> Cow<'_, str> {
        if self.choice {
            Cow::Owned(format!("{}[x]", self.name))
        } else {
            Cow::Borrowed(&self.name)
        }
    }

    /// Whether a JSON property name (without `_`) names this element.
    pub(crate) fn matches_property(&self, property: &str) -> bool {
        if self.choice {
            property
                .strip_prefix(self.name.as_ref())
                .is_some_and(|suffix| !suffix.is_empty())
        } else {
            property == self.name.as_ref()
        }
    }

    /// The allowed type codes, for diagnostics.
    pub(crate) fn type_codes(&self) -> String {
        match &self.kind {
            ElementKind::Typed(types) => types
                .iter()
                .map(|t| t.code.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            ElementKind::Backbone(_) => String::from("BackboneElement"),
        }
    }
}

impl Definitions {
    /// The node with the given id (the empty node if the id is out of range,
    /// which construction rules out).
    pub(crate) fn node(&self, id: NodeId) -> &Node {
        self.nodes.get(id).unwrap_or(&EMPTY_NODE)
    }

    /// The root node of a concrete resource type.
    pub(crate) fn resource(&self, resource_type: &str) -> Option<&Node> {
        self.resources.get(resource_type).map(|&id| self.node(id))
    }

    /// The names of all resource types in the definitions, sorted.
    #[cfg(test)]
    pub(crate) fn resource_type_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.resources.keys().map(AsRef::as_ref).collect();
        names.sort_unstable();
        names
    }
}

/// The definitions, parsed and compiled on first use.
///
/// Returns an error message if the embedded file cannot be compiled; a unit
/// test guarantees it can.
pub(crate) fn definitions() -> Result<&'static Definitions, &'static str> {
    static DEFINITIONS: OnceLock<Result<Definitions, String>> = OnceLock::new();
    match DEFINITIONS.get_or_init(|| compile(DEFINITIONS_JSON)) {
        Ok(definitions) => Ok(definitions),
        Err(message) => Err(message.as_str()),
    }
}

#[derive(Deserialize)]
struct RawDefinitions {
    #[serde(rename = "valueSets")]
    value_sets: Vec<(String, Vec<String>)>,
    types: Vec<RawType>,
}

#[derive(Deserialize)]
struct RawType {
    name: String,
    kind: String,
    elements: Vec<RawElement>,
}

/// `[path, min, max, types, valueSet]`; see the module documentation.
#[derive(Deserialize)]
struct RawElement(String, u32, String, String, Option<usize>);

/// Compiles the derived definitions file into the node graph.
pub(crate) fn compile(json: &str) -> Result<Definitions, String> {
    let raw: RawDefinitions =
        serde_json::from_str(json).map_err(|e| format!("invalid definitions JSON: {e}"))?;

    let value_sets = raw
        .value_sets
        .into_iter()
        .map(|(url, codes)| {
            let mut codes: Vec<Box<str>> = codes.into_iter().map(Into::into).collect();
            codes.sort_unstable();
            codes.dedup();
            ValueSet {
                url: url.into(),
                codes,
            }
        })
        .collect::<Vec<_>>();

    // First pass: a root node per type, so that types can refer to each other
    // in any order.
    let mut nodes = Vec::new();
    let mut resources = HashMap::new();
    let mut complex_types = HashMap::new();
    for ty in &raw.types {
        let special = match ty.name.as_str() {
            "Reference" => Special::Reference,
            "Identifier" => Special::Identifier,
            "Extension" => Special::Extension,
            _ => Special::None,
        };
        let id = nodes.len();
        nodes.push(new_node(ty.name.clone(), special));
        let map = match ty.kind.as_str() {
            "resource" => &mut resources,
            "complex" => &mut complex_types,
            other => return Err(format!("type {}: unknown kind {other}", ty.name)),
        };
        if map.insert(Box::<str>::from(ty.name.as_str()), id).is_some() {
            return Err(format!("type {} is defined twice", ty.name));
        }
    }

    // Second pass: the elements of each type.
    for (root, ty) in raw.types.iter().enumerate() {
        let mut backbones: HashMap<&str, NodeId> = HashMap::new();
        // (node, child index, target path) of contentReferences, resolved once
        // the whole type is known. Child indices are stable until sorting.
        let mut content_references = Vec::new();
        for RawElement(path, min, max, types, value_set) in &ty.elements {
            let (parent, name) = match path.rsplit_once('.') {
                Some((parent_path, name)) => match backbones.get(parent_path) {
                    Some(&parent) => (parent, name),
                    None => return Err(format!("{}.{path}: parent not defined first", ty.name)),
                },
                None => (root, path.as_str()),
            };
            let (name, choice) = match name.strip_suffix("[x]") {
                Some(prefix) => (prefix, true),
                None => (name, false),
            };
            let max = match max.as_str() {
                "0" => Max::Zero,
                "1" => Max::One,
                "*" => Max::Many,
                other => return Err(format!("{}.{path}: unsupported max {other}", ty.name)),
            };
            if value_set.is_some_and(|i| i >= value_sets.len()) {
                return Err(format!("{}.{path}: value set index out of range", ty.name));
            }
            let kind = if types.is_empty() {
                let id = nodes.len();
                nodes.push(new_node(format!("{}.{path}", ty.name), Special::None));
                backbones.insert(path.as_str(), id);
                ElementKind::Backbone(id)
            } else if let Some(target) = types.strip_prefix('#') {
                let index = nodes.get(parent).map_or(0, |n| n.children.len());
                content_references.push((parent, index, target));
                // Placeholder, replaced below.
                ElementKind::Backbone(parent)
            } else {
                let resolved = types
                    .split('|')
                    .map(|code| resolve_type(code, &resources, &complex_types))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("{}.{path}: unknown type in {types}", ty.name))?;
                if resolved.len() > 1 && !choice {
                    return Err(format!(
                        "{}.{path}: several types but not a choice",
                        ty.name
                    ));
                }
                ElementKind::Typed(resolved)
            };
            let element = ElementDef {
                name: name.into(),
                choice,
                min: *min,
                max,
                kind,
                value_set: *value_set,
            };
            nodes
                .get_mut(parent)
                .ok_or_else(|| format!("{}.{path}: bad parent", ty.name))?
                .children
                .push(element);
        }
        for (parent, index, target) in content_references {
            let target = *backbones
                .get(target)
                .ok_or_else(|| format!("{}: contentReference #{target} not found", ty.name))?;
            if let Some(element) = nodes
                .get_mut(parent)
                .and_then(|node| node.children.get_mut(index))
            {
                element.kind = ElementKind::Backbone(target);
            }
        }
    }

    for node in &mut nodes {
        // Required elements are reported in definition order, so note them
        // before sorting the children by name.
        let required: Vec<Box<str>> = node
            .children
            .iter()
            .filter(|c| c.min >= 1)
            .map(|c| c.name.clone())
            .collect();
        node.children
            .sort_unstable_by(|a, b| name_order(&a.name, &b.name));
        if node.children.windows(2).any(|w| match w {
            [a, b] => a.name == b.name,
            _ => false,
        }) {
            return Err(format!("{}: duplicate element names", node.path));
        }
        node.choices = (0..node.children.len())
            .filter(|&i| node.children.get(i).is_some_and(|c| c.choice))
            .collect();
        node.required = required
            .iter()
            .filter_map(|name| {
                node.children
                    .binary_search_by(|c| name_order(&c.name, name))
                    .ok()
            })
            .collect();
    }

    let element = *complex_types
        .get("Element")
        .ok_or("the Element type is missing")?;
    Ok(Definitions {
        nodes,
        resources,
        value_sets,
        element,
    })
}

fn new_node(path: String, special: Special) -> Node {
    Node {
        path: Cow::Owned(path),
        special,
        children: Vec::new(),
        choices: Vec::new(),
        required: Vec::new(),
    }
}

/// Resolves a type code from the derived file.
fn resolve_type(
    code: &str,
    resources: &HashMap<Box<str>, NodeId>,
    complex_types: &HashMap<Box<str>, NodeId>,
) -> Option<TypeRef> {
    let kind = if let Some(primitive) = Primitive::from_code(code) {
        TypeKind::Primitive(primitive)
    } else if let Some(&id) = complex_types.get(code) {
        TypeKind::Complex(id)
    } else if code == "Resource" {
        TypeKind::Resource { specific: false }
    } else if resources.contains_key(code) {
        TypeKind::Resource { specific: true }
    } else {
        return None;
    };
    Some(TypeRef {
        code: code.into(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_definitions_compile() {
        let defs = definitions().expect("definitions compile");
        let names = defs.resource_type_names();
        let expected: Vec<&str> = crate::resource_types().collect();
        assert_eq!(names, expected);
        assert_eq!(defs.node(defs.element).path, "Element");
        let patient = defs.resource("Patient").unwrap();
        let Lookup::Element(_, Some(name_type)) = patient.lookup("name") else {
            panic!("Patient.name");
        };
        let TypeKind::Complex(human_name) = name_type.kind else {
            panic!("HumanName is complex");
        };
        assert_eq!(defs.node(human_name).path, "HumanName");
    }

    #[test]
    fn lookup_kinds() {
        let defs = definitions().unwrap();
        let observation = defs.resource("Observation").unwrap();
        assert!(matches!(observation.lookup("status"), Lookup::Element(e, Some(_)) if e.min == 1));
        assert!(
            matches!(observation.lookup("valueQuantity"), Lookup::Element(_, Some(t)) if &*t.code == "Quantity")
        );
        assert!(
            matches!(observation.lookup("valueDateTime"), Lookup::Element(_, Some(t)) if &*t.code == "dateTime")
        );
        assert!(matches!(observation.lookup("value"), Lookup::BareChoice(_)));
        assert!(matches!(
            observation.lookup("valueFoo"),
            Lookup::ChoiceTypeNotAllowed(_)
        ));
        assert!(matches!(
            observation.lookup("valueHumanName"),
            Lookup::ChoiceTypeNotAllowed(_)
        ));
        assert!(matches!(
            observation.lookup("component"),
            Lookup::Element(_, None)
        ));
        assert!(matches!(observation.lookup("foo"), Lookup::Unknown));
    }

    #[test]
    fn content_reference_resolves_to_the_same_node() {
        let defs = definitions().unwrap();
        let questionnaire = defs.resource("Questionnaire").unwrap();
        let Lookup::Element(item, None) = questionnaire.lookup("item") else {
            panic!("item is a backbone element");
        };
        let ElementKind::Backbone(item_node) = item.kind else {
            panic!("backbone");
        };
        let Lookup::Element(nested, None) = defs.node(item_node).lookup("item") else {
            panic!("item.item is a backbone element");
        };
        assert!(matches!(nested.kind, ElementKind::Backbone(id) if id == item_node));
    }

    #[test]
    fn gender_binding_is_expanded() {
        let defs = definitions().unwrap();
        let patient = defs.resource("Patient").unwrap();
        let Lookup::Element(gender, _) = patient.lookup("gender") else {
            panic!("gender");
        };
        let vs = &defs.value_sets[gender.value_set.unwrap()];
        let codes: Vec<&str> = vs.codes.iter().map(AsRef::as_ref).collect();
        assert_eq!(codes, ["female", "male", "other", "unknown"]);
    }

    #[test]
    fn compile_rejects_bad_input() {
        assert!(compile("{}").is_err());
        let missing_parent = r#"{"valueSets":[],"types":[
            {"name":"Element","kind":"complex","elements":[]},
            {"name":"X","kind":"resource","elements":[["a.b",0,"1","string",null]]}]}"#;
        assert!(compile(missing_parent).is_err());
        let unknown_type = r#"{"valueSets":[],"types":[
            {"name":"Element","kind":"complex","elements":[]},
            {"name":"X","kind":"resource","elements":[["a",0,"1","Nope",null]]}]}"#;
        assert!(compile(unknown_type).is_err());
    }
}
