//! The registry of search parameters: the official R4 SearchParameters and
//! the Patient compartment, compiled once.
//!
//! # Source
//!
//! `data/r4-search-parameters.json` is derived from the official
//! `search-parameters.json` and `compartmentdefinition-patient.json` by the
//! `regenerate_registry` test (`tests/it/generate.rs`) and embedded with
//! `include_str!`. Its format:
//!
//! ```text
//! { "fhirVersion": "4.0.1",
//!   "resourceTypes": [type, ...],          // every R4 resource type
//!   "params": [                            // one line per SearchParameter, in source order
//!     [code, type, [base, ...], expression | null, [target, ...], [[component type, expression], ...]],
//!     ... ],
//!   "patientCompartment": [[type, [param code, ...]], ...] }
//! ```
//!
//! A target list of `["*"]` stands for every resource type (a reference to
//! `Any`); it is expanded to `resourceTypes` on load.
//!
//! # Invariants
//!
//! - Every expression (and composite component expression) is compiled
//!   exactly once, when [`registry`] is first called; [`Registry::compile_errors`]
//!   lists any that failed (none, for R4 — a test checks it).
//! - Each resource type has its own [`ParamDef`]s. A parameter defined on
//!   several bases (`clinical-code` on 20 types) gets, per type, an
//!   expression restricted to the branches of the top-level union that can
//!   apply to that type (`Observation.code`, not `Condition.code | …`), so
//!   extraction never walks paths of other types.
//! - Parameters on `Resource` apply to every resource type; those on
//!   `DomainResource` to every type but `Bundle`, `Binary` and `Parameters`.
//! - `_id` and `_lastUpdated` are columns, not index rows ([`Support::Column`]).
//!   Parameters that are known but not indexed ([`Support::Unsupported`]) are
//!   kept so that a query using them gets "unsupported", not "unknown".

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use fhirpath::Expr;
use serde::Deserialize;
use store::search::IndexKind;

/// The committed, derived registry file.
const REGISTRY_JSON: &str = include_str!("../data/r4-search-parameters.json");

/// Resource types that are not DomainResources.
const NOT_DOMAIN_RESOURCES: [&str; 3] = ["Binary", "Bundle", "Parameters"];

/// The type of a search parameter (R4 `SearchParamType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl ParamKind {
    /// The store's index table for values of this type (`None` for
    /// `special`, which has no index).
    pub fn index_kind(self) -> Option<IndexKind> {
        Some(match self {
            ParamKind::String => IndexKind::String,
            ParamKind::Token => IndexKind::Token,
            ParamKind::Reference => IndexKind::Reference,
            ParamKind::Date => IndexKind::Date,
            ParamKind::Number => IndexKind::Number,
            ParamKind::Quantity => IndexKind::Quantity,
            ParamKind::Uri => IndexKind::Uri,
            ParamKind::Composite => IndexKind::Composite,
            ParamKind::Special => return None,
        })
    }

    fn from_code(code: &str) -> Option<ParamKind> {
        Some(match code {
            "number" => ParamKind::Number,
            "date" => ParamKind::Date,
            "string" => ParamKind::String,
            "token" => ParamKind::Token,
            "reference" => ParamKind::Reference,
            "composite" => ParamKind::Composite,
            "quantity" => ParamKind::Quantity,
            "uri" => ParamKind::Uri,
            "special" => ParamKind::Special,
            _ => return None,
        })
    }
}

/// Whether and how a parameter is indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// Extracted into index rows at write time.
    Indexed,
    /// A column of every stored resource (`_id`, `_lastUpdated`).
    Column,
    /// Known but not supported; the reason says why.
    Unsupported(&'static str),
}

/// One component of a composite parameter.
#[derive(Debug, Clone)]
pub struct Component {
    pub kind: ParamKind,
    /// Evaluated with each context node of the composite as `$this`.
    pub expression: String,
    pub(crate) compiled: Option<Arc<Expr>>,
}

/// A search parameter as it applies to one resource type.
#[derive(Debug, Clone)]
pub struct ParamDef {
    pub code: String,
    pub kind: ParamKind,
    /// The resource types a reference parameter may point to (every type for
    /// references to `Any`); empty for other kinds.
    pub targets: Vec<String>,
    /// The FHIRPath expression, restricted to this resource type (`None` for
    /// parameters without one, such as `_text`).
    pub expression: Option<String>,
    /// For composites: the components, in order.
    pub components: Vec<Component>,
    pub support: Support,
    pub(crate) compiled: Option<Arc<Expr>>,
}

impl ParamDef {
    /// True when values of this parameter are extracted into index rows.
    pub fn is_indexed(&self) -> bool {
        self.support == Support::Indexed
    }

    /// True when a reference parameter may point to `rtype`.
    pub fn may_target(&self, rtype: &str) -> bool {
        self.targets.iter().any(|t| t == rtype)
    }
}

/// The parameters of one resource type.
#[derive(Debug, Default)]
struct TypeParams {
    params: Vec<ParamDef>,
    by_code: HashMap<String, usize>,
    /// Indices of the indexed parameters, in `params` order.
    indexed: Vec<usize>,
}

/// All search parameters of FHIR R4, per resource type, and the Patient
/// compartment.
#[derive(Debug)]
pub struct Registry {
    resource_types: Vec<String>,
    types: HashMap<String, TypeParams>,
    /// Resource type → the parameters linking it to a Patient, in the
    /// CompartmentDefinition's order.
    compartment: HashMap<String, Vec<String>>,
    compile_errors: Vec<String>,
    expression_count: usize,
}

/// The registry of R4 search parameters, loaded and compiled on first use.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::load(REGISTRY_JSON))
}

/// The derived file, as deserialised.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistryFile {
    resource_types: Vec<String>,
    params: Vec<ParamLine>,
    patient_compartment: Vec<(String, Vec<String>)>,
}

/// `[code, type, bases, expression, targets, components]`
#[derive(Deserialize)]
struct ParamLine(
    String,
    String,
    Vec<String>,
    Option<String>,
    Vec<String>,
    Vec<(String, String)>,
);

impl Registry {
    /// Builds the registry from the derived file's text. A file that cannot be
    /// read gives an empty registry with the reason in
    /// [`Registry::compile_errors`] (the committed file is checked by tests).
    fn load(json: &str) -> Registry {
        let file: RegistryFile = match serde_json::from_str(json) {
            Ok(file) => file,
            Err(e) => {
                return Registry {
                    resource_types: Vec::new(),
                    types: HashMap::new(),
                    compartment: HashMap::new(),
                    compile_errors: vec![format!("registry file: {e}")],
                    expression_count: 0,
                };
            }
        };
        let mut compiler = Compiler::default();
        let mut types: HashMap<String, TypeParams> = file
            .resource_types
            .iter()
            .map(|t| (t.clone(), TypeParams::default()))
            .collect();

        for ParamLine(code, kind_code, bases, expression, targets, components) in &file.params {
            let Some(kind) = ParamKind::from_code(kind_code) else {
                compiler
                    .errors
                    .push(format!("{code}: unknown parameter type {kind_code}"));
                continue;
            };
            let targets: Vec<String> = if targets.iter().any(|t| t == "*") {
                file.resource_types.clone()
            } else {
                targets.clone()
            };
            let components: Vec<Component> = components
                .iter()
                .map(|(kind_code, expression)| Component {
                    kind: ParamKind::from_code(kind_code).unwrap_or(ParamKind::Special),
                    expression: expression.clone(),
                    compiled: compiler.compile(code, expression),
                })
                .collect();
            let applies_to: Vec<&String> = if bases.iter().any(|b| b == "Resource") {
                file.resource_types.iter().collect()
            } else if bases.iter().any(|b| b == "DomainResource") {
                file.resource_types
                    .iter()
                    .filter(|t| !NOT_DOMAIN_RESOURCES.contains(&t.as_str()))
                    .collect()
            } else {
                bases.iter().collect()
            };
            for rtype in applies_to {
                let Some(entry) = types.get_mut(rtype) else {
                    compiler
                        .errors
                        .push(format!("{code}: unknown base type {rtype}"));
                    continue;
                };
                let expression = expression
                    .as_deref()
                    .map(|e| expression_for_type(e, rtype, &file.resource_types));
                let compiled = expression
                    .as_deref()
                    .filter(|e| !e.is_empty())
                    .and_then(|e| compiler.compile(code, e));
                let support = support(
                    code,
                    kind,
                    expression.as_deref(),
                    &components,
                    compiled.is_some(),
                );
                let def = ParamDef {
                    code: code.clone(),
                    kind,
                    targets: if kind == ParamKind::Reference {
                        targets.clone()
                    } else {
                        Vec::new()
                    },
                    expression,
                    components: components.clone(),
                    support,
                    compiled,
                };
                if entry.by_code.contains_key(code) {
                    compiler
                        .errors
                        .push(format!("{rtype}: parameter {code} defined twice"));
                    continue;
                }
                let index = entry.params.len();
                if def.is_indexed() {
                    entry.indexed.push(index);
                }
                entry.by_code.insert(code.clone(), index);
                entry.params.push(def);
            }
        }
        Registry {
            resource_types: file.resource_types,
            types,
            compartment: file.patient_compartment.into_iter().collect(),
            expression_count: compiler.cache.len(),
            compile_errors: compiler.errors,
        }
    }

    /// The parameter `code` of resource type `rtype`.
    pub fn param(&self, rtype: &str, code: &str) -> Option<&ParamDef> {
        let params = self.types.get(rtype)?;
        params.params.get(*params.by_code.get(code)?)
    }

    /// Every parameter of `rtype` (empty for an unknown type).
    pub fn params(&self, rtype: &str) -> &[ParamDef] {
        self.types.get(rtype).map_or(&[], |t| t.params.as_slice())
    }

    /// The parameters of `rtype` that are extracted into index rows.
    pub fn indexed_params(&self, rtype: &str) -> impl Iterator<Item = &ParamDef> {
        self.types
            .get(rtype)
            .into_iter()
            .flat_map(|t| t.indexed.iter().filter_map(|&i| t.params.get(i)))
    }

    /// Every R4 resource type, sorted.
    pub fn resource_types(&self) -> &[String] {
        &self.resource_types
    }

    /// True for a resource type the registry knows.
    pub fn is_resource_type(&self, rtype: &str) -> bool {
        self.types.contains_key(rtype)
    }

    /// The parameters that put a resource of `rtype` in a Patient's
    /// compartment, in the CompartmentDefinition's order (empty when the type
    /// is not in the compartment).
    pub fn compartment_params(&self, rtype: &str) -> &[String] {
        self.compartment.get(rtype).map_or(&[], Vec::as_slice)
    }

    /// Expressions that failed to compile, and other problems found while
    /// loading (empty for the committed R4 file).
    pub fn compile_errors(&self) -> &[String] {
        &self.compile_errors
    }

    /// The number of distinct expressions compiled.
    pub fn expression_count(&self) -> usize {
        self.expression_count
    }
}

/// Compiles expressions once, sharing identical ones.
#[derive(Default)]
struct Compiler {
    cache: HashMap<String, Arc<Expr>>,
    errors: Vec<String>,
}

impl Compiler {
    fn compile(&mut self, code: &str, expression: &str) -> Option<Arc<Expr>> {
        if let Some(expr) = self.cache.get(expression) {
            return Some(Arc::clone(expr));
        }
        match fhirpath::compile(expression) {
            Ok(expr) => {
                let expr = Arc::new(expr);
                self.cache.insert(expression.to_owned(), Arc::clone(&expr));
                Some(expr)
            }
            Err(e) => {
                self.errors.push(format!("{code}: {expression}: {e}"));
                None
            }
        }
    }
}

/// Decides whether a parameter is indexed.
fn support(
    code: &str,
    kind: ParamKind,
    expression: Option<&str>,
    components: &[Component],
    compiled: bool,
) -> Support {
    match code {
        "_id" | "_lastUpdated" => return Support::Column,
        "_text" | "_content" => return Support::Unsupported("full-text search is not supported"),
        "_query" => return Support::Unsupported("named queries are not supported"),
        _ => {}
    }
    if kind == ParamKind::Special {
        return Support::Unsupported("special parameters (such as near) are not supported");
    }
    match expression {
        None => return Support::Unsupported("the parameter has no expression"),
        Some("") => {
            return Support::Unsupported("the parameter has no expression for this resource type");
        }
        Some(_) if !compiled => return Support::Unsupported("the expression does not compile"),
        Some(_) => {}
    }
    if kind == ParamKind::Composite {
        let supported_pair = matches!(
            components,
            [first, second]
                if first.kind == ParamKind::Token
                    && matches!(
                        second.kind,
                        ParamKind::Token | ParamKind::Quantity | ParamKind::Date | ParamKind::String
                    )
        );
        if !supported_pair {
            return Support::Unsupported(
                "only composites of a token and a token, quantity, date or string are supported",
            );
        }
        if components.iter().any(|c| c.compiled.is_none()) {
            return Support::Unsupported("a component expression does not compile");
        }
    }
    Support::Indexed
}

/// The part of `expression` that can apply to `rtype`: the branches of its
/// top-level union (`a | b | c`) that start with `rtype` (or with `Resource`
/// / `DomainResource`, or with no type name at all), joined again with ` | `.
/// Returns an empty string when no branch applies.
///
/// The expression is kept whole when it is not a plain union at the top
/// level (it contains an operator that binds more loosely than `|`, such as
/// `and` or `=`), since splitting it would change its meaning.
pub(crate) fn expression_for_type(
    expression: &str,
    rtype: &str,
    resource_types: &[String],
) -> String {
    let Some(branches) = split_top_level_union(expression) else {
        return expression.to_owned();
    };
    let kept: Vec<&str> = branches
        .into_iter()
        .filter(|branch| match leading_type(branch) {
            Some(t) if resource_types.iter().any(|r| r == t) => t == rtype,
            _ => true,
        })
        .collect();
    kept.join(" | ")
}

/// The resource type a branch starts from (`(Observation.value as Quantity)`
/// → `Observation`), if it starts with a capitalised name followed by `.`.
fn leading_type(branch: &str) -> Option<&str> {
    let rest = branch.trim_start_matches(|c: char| c == '(' || c.is_whitespace());
    let end = rest.find(|c: char| !c.is_ascii_alphanumeric())?;
    let name = rest.get(..end)?;
    (rest.get(end..end + 1) == Some(".") && name.starts_with(|c: char| c.is_ascii_uppercase()))
        .then_some(name)
}

/// Splits `expression` at the `|` operators outside parentheses, brackets,
/// braces and string literals. `None` when it also contains, at the top level,
/// an operator binding more loosely than `|` (comparison, equality,
/// membership, `and`, `or`, `xor`, `implies`).
fn split_top_level_union(expression: &str) -> Option<Vec<&str>> {
    let bytes = expression.as_bytes();
    let mut depth: i32 = 0;
    let mut quote: Option<u8> = None;
    let mut branches = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if let Some(q) = quote {
            if b == b'\\' {
                i += 1;
            } else if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match b {
            b'\'' | b'`' => quote = Some(b),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'|' if depth == 0 => {
                branches.push(expression.get(start..i)?.trim());
                start = i + 1;
            }
            b'=' | b'<' | b'>' | b'~' if depth == 0 => return None,
            b' ' if depth == 0 => {
                let word_end = bytes
                    .get(i + 1..)?
                    .iter()
                    .position(|c| !c.is_ascii_alphabetic())
                    .map_or(bytes.len(), |p| i + 1 + p);
                let word = expression.get(i + 1..word_end)?;
                if matches!(word, "and" | "or" | "xor" | "implies" | "in" | "contains")
                    && bytes.get(word_end) == Some(&b' ')
                {
                    return None;
                }
            }
            _ => {}
        }
        i += 1;
    }
    branches.push(expression.get(start..)?.trim());
    Some(branches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types() -> Vec<String> {
        ["Observation", "Condition", "Patient", "Practitioner"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn keeps_only_the_branches_of_the_type() {
        let e = "Condition.code | Observation.code | (Observation.value as Quantity)";
        assert_eq!(
            expression_for_type(e, "Observation", &types()),
            "Observation.code | (Observation.value as Quantity)"
        );
        assert_eq!(
            expression_for_type(e, "Condition", &types()),
            "Condition.code"
        );
        assert_eq!(expression_for_type(e, "Patient", &types()), "");
        assert_eq!(
            expression_for_type("Resource.meta.tag", "Patient", &types()),
            "Resource.meta.tag"
        );
        assert_eq!(
            expression_for_type("%resource.x | name", "Patient", &types()),
            "%resource.x | name"
        );
    }

    #[test]
    fn does_not_split_inside_parentheses_or_strings() {
        let e = "Patient.name.where(use = 'a|b') | Practitioner.name";
        assert_eq!(
            expression_for_type(e, "Patient", &types()),
            "Patient.name.where(use = 'a|b')"
        );
    }

    #[test]
    fn keeps_expressions_with_looser_operators_whole() {
        let e = "Patient.deceased.exists() and Patient.deceased != false";
        assert_eq!(expression_for_type(e, "Practitioner", &types()), e);
        assert_eq!(split_top_level_union("a | b = c"), None);
        assert_eq!(split_top_level_union("a | b"), Some(vec!["a", "b"]));
    }
}
