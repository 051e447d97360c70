//! The evaluation environment: clock, variables, reference resolution and
//! options.
//!
//! The engine never reads the wall clock: `now()`, `today()` and
//! `timeOfDay()` use the instant given with [`Env::with_now`] and fail with
//! [`crate::EvalErrorKind::NoClock`] when none was given. This keeps
//! evaluation deterministic (important when indexing at write time).

use std::collections::HashMap;
use std::fmt;

use serde_json::Value as Json;

use crate::temporal::DateTime;
use crate::value::Value;

/// Resolves references that are not inside the evaluated resource (for
/// example against a store, or against the other entries of a transaction).
pub trait ResourceResolver {
    /// The resource that `reference` (a relative `Type/id`, an absolute URL
    /// or a `urn:uuid:`) points to, if known.
    fn resolve(&self, reference: &str) -> Option<&Json>;
}

/// A callback receiving `trace(name)` output; `'t` bounds what it borrows.
pub type Tracer<'t> = dyn for<'v> Fn(&str, &[Value<'v>]) + Sync + 't;

/// The evaluation environment. Cheap to build; reuse it across evaluations
/// (and threads) when the variables do not change.
///
/// `'a` is the lifetime of the JSON it refers to (variables holding nodes,
/// the root resource, the resolver). `Env` is covariant in `'a`, so an
/// environment built once (e.g. an `Env<'static>` holding only string
/// variables) can evaluate resources of any shorter lifetime.
pub struct Env<'a> {
    pub(crate) now: Option<DateTime>,
    pub(crate) variables: HashMap<String, Vec<Value<'a>>>,
    pub(crate) root_resource: Option<&'a Json>,
    pub(crate) resolver: Option<&'a (dyn ResourceResolver + Sync)>,
    pub(crate) tracer: Option<&'a Tracer<'a>>,
    pub(crate) strict: bool,
    pub(crate) reference_stubs: bool,
}

impl fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("now", &self.now)
            .field("variables", &self.variables.keys().collect::<Vec<_>>())
            .field("root_resource", &self.root_resource.is_some())
            .field("resolver", &self.resolver.is_some())
            .field("strict", &self.strict)
            .field("reference_stubs", &self.reference_stubs)
            .finish()
    }
}

impl Default for Env<'_> {
    fn default() -> Self {
        Env::new()
    }
}

impl<'a> Env<'a> {
    /// An environment without a clock, variables or resolver. Unresolvable
    /// references resolve to typed stubs (see [`Env::with_reference_stubs`]).
    pub fn new() -> Env<'a> {
        Env {
            now: None,
            variables: HashMap::new(),
            root_resource: None,
            resolver: None,
            tracer: None,
            strict: false,
            reference_stubs: true,
        }
    }

    /// Sets the instant used by `now()`, `today()` and `timeOfDay()` (its
    /// zone is the zone of the results).
    pub fn with_now(mut self, now: DateTime) -> Env<'a> {
        self.now = Some(now);
        self
    }

    /// Defines `%name`. User variables take precedence over the built-in
    /// ones (`%ucum`, `%sct`, `%loinc`, `%vs-*`, `%ext-*`) but not over
    /// `%resource`, `%context` and `%rootResource`.
    pub fn with_variable(mut self, name: impl Into<String>, value: Vec<Value<'a>>) -> Env<'a> {
        self.variables.insert(name.into(), value);
        self
    }

    /// Defines `%name` as a single string.
    pub fn with_string_variable(self, name: impl Into<String>, value: &str) -> Env<'a> {
        self.with_variable(name, vec![Value::String(value.into())])
    }

    /// Sets `%rootResource` (the container of a contained resource, or the
    /// Bundle being indexed). Defaults to the evaluated resource. Also used
    /// by `resolve()` for `#id` references and Bundle entries.
    pub fn with_root_resource(mut self, root: &'a Json) -> Env<'a> {
        self.root_resource = Some(root);
        self
    }

    /// Resolves references `resolve()` cannot find inside the resource.
    pub fn with_resolver(mut self, resolver: &'a (dyn ResourceResolver + Sync)) -> Env<'a> {
        self.resolver = Some(resolver);
        self
    }

    /// Receives `trace()` output (ignored by default).
    pub fn with_tracer(mut self, tracer: &'a Tracer<'a>) -> Env<'a> {
        self.tracer = Some(tracer);
        self
    }

    /// Strict mode: navigating to an element that does not exist in the FHIR
    /// model (e.g. `Patient.name.given1`, or `Observation.valueQuantity`
    /// instead of `Observation.value`) is an error instead of empty, and so
    /// is a leading type name that does not match the context
    /// (`Encounter.status` evaluated on a Patient). Off by default because
    /// the R4 SearchParameters union paths over many resource types.
    pub fn with_strict(mut self, strict: bool) -> Env<'a> {
        self.strict = strict;
        self
    }

    /// Whether `resolve()` returns a typed, empty stub for references that
    /// cannot be resolved but name their type (`Patient/123`), so that
    /// `resolve() is Patient` works at indexing time. On by default.
    pub fn with_reference_stubs(mut self, enabled: bool) -> Env<'a> {
        self.reference_stubs = enabled;
        self
    }
}
