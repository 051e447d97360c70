//! The FHIR R4 type model used to type JSON nodes.
//!
//! The model is a compact text table (`r4.txt`, generated from the official
//! StructureDefinitions by `tests/it/model_gen.rs`) embedded in the binary and
//! parsed once on first use. It answers three questions:
//!
//! * which JSON keys hold element `name` of a type (including choice elements
//!   such as `value[x]`, stored as `valueQuantity`, `valueString`, …) and of
//!   which FHIR type they are;
//! * the inheritance chain of a type (`Age` → `Quantity` → `Element`,
//!   `code` → `string`, `Patient` → `DomainResource` → `Resource`);
//! * whether a name is a known type or resource type.
//!
//! Backbone elements are types named by their path (`Patient.contact`).
//! Invariants after loading: every [`TypeId`] stored in the model indexes
//! `Model::types`; element lists are flattened (inherited elements are
//! included), so a lookup never walks the hierarchy.

use std::collections::HashMap;
use std::sync::OnceLock;

const R4_MODEL: &str = include_str!("r4.txt");

/// Index of a type in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeId(u16);

/// The category of a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeKind {
    /// FHIR primitive (`string`, `date`, …).
    Primitive,
    /// Complex data type (`Quantity`, `HumanName`, …).
    Complex,
    /// Resource (including the abstract `Resource` and `DomainResource`).
    Resource,
    /// Backbone element defined inline in another type.
    Backbone,
}

/// One element of a type.
#[derive(Debug)]
pub struct ElementDef {
    /// Element name without the `[x]` suffix.
    pub name: &'static str,
    /// Allowed types (more than one only for choice elements).
    pub types: Vec<TypeId>,
    /// Whether this is a choice (`[x]`) element.
    pub choice: bool,
}

/// A type definition.
#[derive(Debug)]
pub struct TypeDef {
    /// Type name (the path for backbone elements).
    pub name: &'static str,
    /// Base type.
    pub base: Option<TypeId>,
    /// Category.
    pub kind: TypeKind,
    /// All elements including inherited ones.
    elements: Vec<ElementDef>,
    /// Element name → index into `elements`.
    by_name: HashMap<&'static str, usize>,
    /// JSON property name → (element index, concrete type); choice elements
    /// contribute one entry per allowed type.
    by_key: HashMap<String, (usize, TypeId)>,
}

impl TypeDef {
    /// The element called `name`.
    pub fn element(&self, name: &str) -> Option<&ElementDef> {
        self.by_name.get(name).and_then(|&i| self.elements.get(i))
    }

    /// The element and concrete type stored under JSON property `key`.
    pub fn element_for_key(&self, key: &str) -> Option<(&ElementDef, TypeId)> {
        let &(index, ty) = self.by_key.get(key)?;
        Some((self.elements.get(index)?, ty))
    }
}

/// The loaded model.
#[derive(Debug)]
pub struct Model {
    types: Vec<TypeDef>,
    by_name: HashMap<&'static str, TypeId>,
    /// Choice-suffix spelling (`DateTime`, `Quantity`) → type, for data types.
    by_suffix: HashMap<String, TypeId>,
}

/// The R4 model (parsed on first use).
pub fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::parse(R4_MODEL))
}

/// Upper-cases the first character (`dateTime` → `DateTime`).
pub fn capitalize(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

struct RawType {
    name: &'static str,
    base: Option<&'static str>,
    kind: TypeKind,
    elements: Vec<(&'static str, Vec<&'static str>)>,
}

impl Model {
    fn parse(text: &'static str) -> Model {
        let mut raw: Vec<RawType> = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some(header) = line.strip_prefix("T ") {
                let mut parts = header.split(' ');
                let (Some(name), Some(base), Some(kind)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let kind = match kind {
                    "p" => TypeKind::Primitive,
                    "r" => TypeKind::Resource,
                    "b" => TypeKind::Backbone,
                    _ => TypeKind::Complex,
                };
                raw.push(RawType {
                    name,
                    base: (base != "-").then_some(base),
                    kind,
                    elements: Vec::new(),
                });
            } else if let (Some(current), Some((name, types))) =
                (raw.last_mut(), line.trim().split_once(' '))
            {
                current.elements.push((name, types.split('|').collect()));
            }
        }

        let by_name: HashMap<&'static str, TypeId> = raw
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name, TypeId(u16::try_from(i).unwrap_or(u16::MAX))))
            .collect();

        // Flatten inheritance: a type's elements are its base's elements
        // followed by its own. Bases are resolved by name; chains are short and
        // acyclic in the generated data, and a depth cap guards against bad
        // input.
        let mut types: Vec<TypeDef> = Vec::with_capacity(raw.len());
        for t in &raw {
            let mut chain = vec![t];
            let mut cursor = t.base;
            while let Some(base_name) = cursor {
                let Some(base) = by_name
                    .get(base_name)
                    .and_then(|id| raw.get(usize::from(id.0)))
                else {
                    break;
                };
                if chain.len() > 16 {
                    break;
                }
                chain.push(base);
                cursor = base.base;
            }
            let mut elements: Vec<ElementDef> = Vec::new();
            for level in chain.iter().rev() {
                for (name, type_names) in &level.elements {
                    let (name, choice) = match name.strip_suffix("[x]") {
                        Some(n) => (n, true),
                        None => (*name, false),
                    };
                    let types: Vec<TypeId> = type_names
                        .iter()
                        .filter_map(|n| by_name.get(n).copied())
                        .collect();
                    elements.retain(|e| e.name != name);
                    elements.push(ElementDef {
                        name,
                        types,
                        choice,
                    });
                }
            }
            let mut by_elem = HashMap::new();
            let mut by_key = HashMap::new();
            for (i, e) in elements.iter().enumerate() {
                by_elem.insert(e.name, i);
                if e.choice {
                    for &ty in &e.types {
                        if let Some(tn) = raw.get(usize::from(ty.0)) {
                            by_key.insert(format!("{}{}", e.name, capitalize(tn.name)), (i, ty));
                        }
                    }
                } else if let Some(&ty) = e.types.first() {
                    by_key.insert(e.name.to_string(), (i, ty));
                }
            }
            types.push(TypeDef {
                name: t.name,
                base: t.base.and_then(|b| by_name.get(b).copied()),
                kind: t.kind,
                elements,
                by_name: by_elem,
                by_key,
            });
        }
        let by_suffix = types
            .iter()
            .enumerate()
            .filter(|(_, t)| matches!(t.kind, TypeKind::Primitive | TypeKind::Complex))
            .map(|(i, t)| {
                (
                    capitalize(t.name),
                    TypeId(u16::try_from(i).unwrap_or(u16::MAX)),
                )
            })
            .collect();
        Model {
            types,
            by_name,
            by_suffix,
        }
    }

    /// The definition of `id`.
    pub fn def(&self, id: TypeId) -> Option<&TypeDef> {
        self.types.get(usize::from(id.0))
    }

    /// The name of `id` (`"?"` if out of range, which cannot happen for ids
    /// handed out by this model).
    pub fn name(&self, id: TypeId) -> &'static str {
        self.def(id).map_or("?", |d| d.name)
    }

    /// Looks a type up by name (`Patient`, `string`, `Patient.contact`).
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    /// The data type whose capitalised name is `suffix` (for choice keys of
    /// untyped JSON).
    pub fn type_for_suffix(&self, suffix: &str) -> Option<TypeId> {
        self.by_suffix.get(suffix).copied()
    }

    /// Looks a resource type up by name.
    pub fn resource_type(&self, name: &str) -> Option<TypeId> {
        self.type_id(name)
            .filter(|id| self.def(*id).is_some_and(|d| d.kind == TypeKind::Resource))
    }

    /// Whether `ty` is `base` or derives from it.
    pub fn is_subtype(&self, ty: TypeId, base: TypeId) -> bool {
        let mut cursor = Some(ty);
        let mut steps = 0;
        while let Some(current) = cursor {
            if current == base {
                return true;
            }
            steps += 1;
            if steps > 16 {
                return false;
            }
            cursor = self.def(current).and_then(|d| d.base);
        }
        false
    }

    /// The public type name FHIRPath reports for `ty` (`BackboneElement` for
    /// inline backbone types).
    pub fn public_name(&self, ty: TypeId) -> &'static str {
        match self.def(ty) {
            Some(d) if d.kind == TypeKind::Backbone => {
                d.base.map_or("BackboneElement", |b| self.name(b))
            }
            Some(d) => d.name,
            None => "?",
        }
    }

    /// The kind of `ty`.
    pub fn kind(&self, ty: TypeId) -> Option<TypeKind> {
        self.def(ty).map(|d| d.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_core_types() {
        let m = model();
        let patient = m.type_id("Patient").unwrap();
        let def = m.def(patient).unwrap();
        assert_eq!(m.name(def.element("gender").unwrap().types[0]), "code");
        assert!(def.element("id").is_some(), "inherited from Resource");
        assert!(
            def.element("text").is_some(),
            "inherited from DomainResource"
        );
        let obs = m.def(m.type_id("Observation").unwrap()).unwrap();
        let (elem, ty) = obs.element_for_key("valueQuantity").unwrap();
        assert_eq!(elem.name, "value");
        assert_eq!(m.name(ty), "Quantity");
        assert!(m.is_subtype(m.type_id("Age").unwrap(), m.type_id("Quantity").unwrap()));
        assert!(m.is_subtype(m.type_id("code").unwrap(), m.type_id("string").unwrap()));
        assert_eq!(
            m.public_name(m.type_id("Patient.contact").unwrap()),
            "BackboneElement"
        );
        assert_eq!(
            m.type_for_suffix("DateTime").map(|t| m.name(t)),
            Some("dateTime")
        );
    }
}
