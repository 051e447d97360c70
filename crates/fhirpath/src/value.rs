//! Values produced by evaluation.
//!
//! A [`Value`] is either a FHIRPath system value (`Boolean`, `Integer`,
//! `Decimal`, `String`, `Date`, `DateTime`, `Time`, `Quantity`) or a
//! [`Node`]: a reference into the evaluated FHIR JSON together with the FHIR
//! type the model assigns to it. Nodes are never copied out of the JSON;
//! FHIR primitives inside nodes are converted to system values lazily, only
//! when an operator or function needs them ([`Value::to_system`]).
//!
//! A FHIR primitive in JSON may carry its `id`/`extension` in a sibling
//! `_name` property; a node keeps both halves (`json` and `shadow`). A node
//! with no `json` is a primitive that has extensions but no value.

use std::fmt;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::decimal::Decimal;
use crate::model::{TypeId, TypeKind, model};
use crate::quantity::Quantity;
use crate::temporal::{Date, DateTime, Time};

/// The UCUM code system URL.
pub(crate) const UCUM_SYSTEM: &str = "http://unitsofmeasure.org";

/// A single item of a FHIRPath collection.
#[derive(Clone, Debug)]
pub enum Value<'a> {
    /// `System.Boolean`
    Boolean(bool),
    /// `System.Integer`
    Integer(i64),
    /// `System.Decimal`
    Decimal(Decimal),
    /// `System.String`
    String(Arc<str>),
    /// `System.Date`
    Date(Date),
    /// `System.DateTime`
    DateTime(DateTime),
    /// `System.Time`
    Time(Time),
    /// `System.Quantity`
    Quantity(Quantity),
    /// An element or resource of the evaluated FHIR JSON.
    Node(Node<'a>),
    /// The result of `type()`.
    TypeInfo(TypeInfo),
}

/// A reference to an element of the evaluated FHIR JSON.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    pub(crate) json: Option<&'a Json>,
    pub(crate) shadow: Option<&'a Json>,
    pub(crate) ty: Option<TypeId>,
}

/// `namespace` and `name` of a type, as returned by `type()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    /// `System` or `FHIR`.
    pub namespace: &'static str,
    /// The type name.
    pub name: Arc<str>,
}

/// Converts a JSON number to a decimal, keeping integers exact.
pub(crate) fn json_number_to_decimal(n: &serde_json::Number) -> Option<Decimal> {
    if let Some(i) = n.as_i64() {
        return Some(Decimal::from_i64(i));
    }
    Decimal::parse(&n.to_string())
}

impl<'a> Node<'a> {
    /// A node for a resource (typed from its `resourceType`) or any other
    /// JSON value (untyped).
    pub fn from_json(json: &'a Json) -> Node<'a> {
        let ty = json
            .get("resourceType")
            .and_then(Json::as_str)
            .and_then(|rt| model().resource_type(rt));
        Node {
            json: Some(json),
            shadow: None,
            ty,
        }
    }

    /// A node with an explicit FHIR type (by name); unknown names leave the
    /// node untyped.
    pub fn with_type(json: &'a Json, type_name: &str) -> Node<'a> {
        Node {
            json: Some(json),
            shadow: None,
            ty: model().type_id(type_name),
        }
    }

    /// The JSON value, if the element has one (primitives may carry only
    /// extensions).
    pub fn json(&self) -> Option<&'a Json> {
        self.json
    }

    /// The `_name` sibling of a primitive (its `id` and `extension`).
    pub fn primitive_extensions(&self) -> Option<&'a Json> {
        self.shadow
    }

    /// The FHIR type name (`HumanName`, `code`, `Patient`, `BackboneElement`),
    /// if known.
    pub fn type_name(&self) -> Option<&'static str> {
        self.ty.map(|t| model().public_name(t))
    }

    pub(crate) fn kind(&self) -> Option<TypeKind> {
        self.ty.and_then(|t| model().kind(t))
    }

    /// True for FHIR primitives (typed or JSON scalars).
    pub fn is_primitive(&self) -> bool {
        match self.kind() {
            Some(kind) => kind == TypeKind::Primitive,
            None => !matches!(self.json, Some(Json::Object(_) | Json::Array(_))),
        }
    }

    fn type_is(&self, name: &str) -> bool {
        let m = model();
        match (self.ty, m.type_id(name)) {
            (Some(t), Some(base)) => m.is_subtype(t, base),
            _ => false,
        }
    }

    /// The system value of a primitive node (or of a FHIR `Quantity`), or
    /// `None` for complex nodes and primitives without a value.
    pub fn to_system(&self) -> Option<Value<'a>> {
        let json = self.json?;
        let type_name = self.ty.map(|t| model().name(t));
        match json {
            Json::Object(_) => {
                if self.type_is("Quantity") {
                    return quantity_from_json(json).map(Value::Quantity);
                }
                None
            }
            Json::Bool(b) => Some(Value::Boolean(*b)),
            Json::Number(n) => match type_name {
                Some("decimal") => json_number_to_decimal(n).map(Value::Decimal),
                _ => match n.as_i64() {
                    Some(i) => Some(Value::Integer(i)),
                    None => json_number_to_decimal(n).map(Value::Decimal),
                },
            },
            Json::String(s) => Some(match type_name {
                Some("date") => {
                    Date::parse(s).map_or_else(|| Value::String(s.as_str().into()), Value::Date)
                }
                Some("dateTime" | "instant") => DateTime::parse(s)
                    .map_or_else(|| Value::String(s.as_str().into()), Value::DateTime),
                Some("time") => {
                    Time::parse(s).map_or_else(|| Value::String(s.as_str().into()), Value::Time)
                }
                Some("decimal") => Decimal::parse(s)
                    .map_or_else(|| Value::String(s.as_str().into()), Value::Decimal),
                Some("integer" | "positiveInt" | "unsignedInt") => s
                    .parse::<i64>()
                    .map_or_else(|_| Value::String(s.as_str().into()), Value::Integer),
                Some("boolean") => match s.as_str() {
                    "true" => Value::Boolean(true),
                    "false" => Value::Boolean(false),
                    _ => Value::String(s.as_str().into()),
                },
                _ => Value::String(s.as_str().into()),
            }),
            Json::Null | Json::Array(_) => None,
        }
    }

    /// Identity of the underlying JSON (used where FHIRPath compares nodes by
    /// identity, e.g. `repeat()`).
    pub(crate) fn same_node(&self, other: &Node<'_>) -> bool {
        let ptr = |j: Option<&Json>| j.map(|v| v as *const Json);
        ptr(self.json) == ptr(other.json) && ptr(self.shadow) == ptr(other.shadow)
    }
}

/// Reads a FHIR `Quantity` JSON object as a system quantity. The UCUM `code`
/// is preferred; otherwise the human-readable `unit`; otherwise `'1'`.
pub(crate) fn quantity_from_json(json: &Json) -> Option<Quantity> {
    let value = match json.get("value")? {
        Json::Number(n) => json_number_to_decimal(n)?,
        Json::String(s) => Decimal::parse(s)?,
        _ => return None,
    };
    let system = json.get("system").and_then(Json::as_str);
    let code = json.get("code").and_then(Json::as_str);
    let unit = match (system, code) {
        (None | Some(UCUM_SYSTEM), Some(code)) => code,
        _ => json
            .get("unit")
            .and_then(Json::as_str)
            .or(code)
            .unwrap_or("1"),
    };
    Some(Quantity::new(value, unit))
}

impl<'a> Value<'a> {
    /// The system value of this item: nodes holding FHIR primitives (or FHIR
    /// Quantities) are converted; everything else is returned unchanged.
    pub fn to_system(&self) -> Value<'a> {
        match self {
            Value::Node(node) => node.to_system().unwrap_or_else(|| self.clone()),
            other => other.clone(),
        }
    }

    /// The JSON this item refers to, for nodes.
    pub fn as_json(&self) -> Option<&'a Json> {
        match self {
            Value::Node(node) => node.json,
            _ => None,
        }
    }

    /// The node, if this item is one.
    pub fn as_node(&self) -> Option<&Node<'a>> {
        match self {
            Value::Node(node) => Some(node),
            _ => None,
        }
    }

    /// The string content of a `String` or of a string-valued FHIR primitive
    /// (`string`, `code`, `uri`, `date` …).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Node(Node {
                json: Some(Json::String(s)),
                ..
            }) => Some(s),
            _ => None,
        }
    }

    /// The boolean, for `Boolean` items and FHIR `boolean` nodes.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            Value::Node(Node {
                json: Some(Json::Bool(b)),
                ..
            }) => Some(*b),
            _ => None,
        }
    }

    /// The FHIRPath type of this item: `(namespace, name)`.
    pub fn type_info(&self) -> TypeInfo {
        let system = |name: &str| TypeInfo {
            namespace: "System",
            name: Arc::from(name),
        };
        match self {
            Value::Boolean(_) => system("Boolean"),
            Value::Integer(_) => system("Integer"),
            Value::Decimal(_) => system("Decimal"),
            Value::String(_) => system("String"),
            Value::Date(_) => system("Date"),
            Value::DateTime(_) => system("DateTime"),
            Value::Time(_) => system("Time"),
            Value::Quantity(_) => system("Quantity"),
            Value::TypeInfo(_) => system("TypeInfo"),
            Value::Node(node) => match node.type_name() {
                Some(name) => TypeInfo {
                    namespace: "FHIR",
                    name: Arc::from(name),
                },
                None => match node.json {
                    Some(Json::Bool(_)) => TypeInfo {
                        namespace: "FHIR",
                        name: Arc::from("boolean"),
                    },
                    Some(Json::Number(n)) if n.is_i64() => TypeInfo {
                        namespace: "FHIR",
                        name: Arc::from("integer"),
                    },
                    Some(Json::Number(_)) => TypeInfo {
                        namespace: "FHIR",
                        name: Arc::from("decimal"),
                    },
                    Some(Json::String(_)) => TypeInfo {
                        namespace: "FHIR",
                        name: Arc::from("string"),
                    },
                    _ => TypeInfo {
                        namespace: "FHIR",
                        name: Arc::from("Element"),
                    },
                },
            },
        }
    }
}

impl fmt::Display for Value<'_> {
    /// Renders the item the way FHIRPath `toString()` would, or as JSON for
    /// complex nodes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::String(s) => f.write_str(s),
            Value::Date(d) => write!(f, "{d}"),
            Value::DateTime(d) => write!(f, "{d}"),
            Value::Time(t) => write!(f, "{t}"),
            Value::Quantity(q) => write!(f, "{q}"),
            Value::TypeInfo(t) => write!(f, "{}.{}", t.namespace, t.name),
            Value::Node(node) => match node.to_system() {
                Some(v) => write!(f, "{v}"),
                None => match node.json {
                    Some(json) => write!(f, "{json}"),
                    None => f.write_str("(no value)"),
                },
            },
        }
    }
}
