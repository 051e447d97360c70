//! Query parsing: FHIR R4 search parameters (`name=value` pairs, already
//! percent-decoded) to store [`Filter`]s and result parameters.
//!
//! # Semantics
//!
//! - Each `name=value` pair becomes one [`Filter`] (AND across pairs, so a
//!   repeated name is AND); the comma-separated values inside one pair are
//!   its `any_of` (OR).
//! - Parameter names are `code[:modifier]`, optionally chained
//!   (`subject:Patient.name`, any depth up to [`MAX_DEPTH`], within
//!   [`MAX_CHAIN_STEPS`]) or reverse
//!   chained (`_has:Observation:patient:code`, nestable).
//! - A chain through a reference parameter with several target types and no
//!   `:Type` modifier becomes a [`Filter::AnyOf`] of one [`Filter::Chain`] per
//!   target type on which the rest of the chain parses; target types on
//!   which it does not (the next parameter does not exist there, or the value
//!   does not fit its type) are left out. If no target type remains, the
//!   error from the first target type is returned (an unknown parameter when
//!   no target type has it). A chain with a single candidate is a plain
//!   `Filter::Chain`.
//! - `_id` → [`Filter::Id`], `_lastUpdated` → [`Filter::LastUpdated`];
//!   `_tag`, `_profile`, `_security`, `_source` are ordinary registry
//!   parameters.
//! - Result parameters (`_sort`, `_count`, `_include`, `_revinclude`,
//!   `_total`, `_summary`, `_elements`, `_cursor`) go to [`ResultParams`];
//!   `_format` and `_pretty` are skipped (the HTTP layer reads them).
//!
//! # Errors and leniency
//!
//! Parsing is strict: an unknown parameter, an unknown modifier or one not
//! valid for the parameter's type, a malformed value, and an unsupported
//! feature are each a [`SearchError`] naming the parameter as written. With
//! `lenient`, unknown parameters ([`SearchError::UnknownParameter`]) and
//! known but unsupported parameters ([`SearchError::UnsupportedParameter`])
//! are skipped and listed in [`ParsedSearch::ignored`]; everything else is
//! still an error. An empty value (`name=`) and an empty OR value (`a,,b`)
//! are malformed.

use std::collections::HashSet;

use store::Micros;
use store::search::{
    CompositeFilter, CompositeSecond, Filter, IndexKind, SortKey, StringMatch, UriMatch,
};

use crate::SearchError;
use crate::normalize::normalize;
use crate::registry::{ParamDef, ParamKind, Registry, Support, registry};
use crate::values::{
    date_value, number_value, of_type_value, quantity_value, reference_value, split_escaped,
    token_value, unescape,
};

/// The deepest nesting of chains and `_has` in one parameter.
pub const MAX_DEPTH: usize = 4;

/// The most steps (one per parameter name tried on one resource type) that
/// parsing one parameter may take: chains through references to any type
/// try every type, and nested chains multiply.
pub const MAX_CHAIN_STEPS: usize = 10_000;

/// A parsed search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedSearch {
    /// All must hold.
    pub filters: Vec<Filter>,
    pub result: ResultParams,
    /// The parameters skipped in lenient mode, as written.
    pub ignored: Vec<String>,
}

/// The parameters that shape the result rather than filter it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultParams {
    /// `_count`
    pub count: Option<usize>,
    /// `_sort`, in order.
    pub sort: Vec<SortKey>,
    /// `_include`
    pub include: Vec<Include>,
    /// `_revinclude`
    pub revinclude: Vec<Include>,
    /// `_total`
    pub total: Option<Total>,
    /// `_summary`
    pub summary: Option<Summary>,
    /// `_elements`, as written.
    pub elements: Vec<String>,
    /// `_cursor`: our opaque paging cursor, passed through.
    pub cursor: Option<String>,
}

/// An `_include` or `_revinclude`: resources of `source_type` (for
/// `_revinclude`, those referring to the matches; for `_include`, the
/// matches themselves) and the reference parameter to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub source_type: String,
    /// `None` for `*` (every reference parameter).
    pub param: Option<String>,
    /// Only targets of this type.
    pub target_type: Option<String>,
    /// `:iterate`
    pub iterate: bool,
}

/// `_total`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    None,
    Estimate,
    Accurate,
}

/// `_summary`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    True,
    Text,
    Data,
    Count,
    False,
}

/// Parses the search parameters of a search on `rtype`. `now` is used by the
/// `ap` prefix on dates; `lenient` skips unknown and unsupported parameters
/// (see the module documentation).
pub fn parse(
    rtype: &str,
    params: &[(String, String)],
    now: Micros,
    lenient: bool,
) -> Result<ParsedSearch, SearchError> {
    let registry = registry();
    if !registry.is_resource_type(rtype) {
        return Err(SearchError::UnknownResourceType(rtype.to_owned()));
    }
    let mut out = ParsedSearch::default();
    let mut seen_result_params = HashSet::new();
    for (name, value) in params {
        let (base, modifier) = match name.split_once(':') {
            Some((base, modifier)) => (base, Some(modifier)),
            None => (name.as_str(), None),
        };
        let parsed = if is_result_param(base) {
            let single_valued = !matches!(base, "_include" | "_revinclude" | "_format" | "_pretty");
            if single_valued && !seen_result_params.insert(base) {
                return Err(invalid(name, "may appear only once"));
            }
            result_param(
                registry,
                rtype,
                name,
                base,
                modifier,
                value,
                &mut out.result,
            )
        } else {
            let mut parser = Parser {
                registry,
                name,
                now,
                steps: 0,
            };
            parser
                .filter(rtype, name, value, 0)
                .map(|filter| out.filters.push(filter))
        };
        match parsed {
            Ok(()) => {}
            Err(SearchError::UnknownParameter(_) | SearchError::UnsupportedParameter { .. })
                if lenient =>
            {
                out.ignored.push(name.clone());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// True for the parameters that shape the result rather than filter it
/// (`_sort`, `_count`, `_include`, `_revinclude`, `_total`, `_summary`,
/// `_elements`, `_cursor`, `_format`, `_pretty`, `_contained`,
/// `_containedType`), with or without a modifier (`_include:iterate`).
pub fn is_result_parameter(name: &str) -> bool {
    is_result_param(name.split_once(':').map_or(name, |(base, _)| base))
}

fn is_result_param(base: &str) -> bool {
    matches!(
        base,
        "_count"
            | "_sort"
            | "_include"
            | "_revinclude"
            | "_total"
            | "_summary"
            | "_elements"
            | "_cursor"
            | "_format"
            | "_pretty"
            | "_contained"
            | "_containedType"
    )
}

fn invalid(name: &str, reason: impl Into<String>) -> SearchError {
    SearchError::InvalidValue {
        param: name.to_owned(),
        reason: reason.into(),
    }
}

fn invalid_modifier(name: &str, modifier: &str) -> SearchError {
    SearchError::InvalidModifier {
        param: name.to_owned(),
        modifier: modifier.to_owned(),
    }
}

fn unsupported(name: &str, reason: impl Into<String>) -> SearchError {
    SearchError::Unsupported {
        param: name.to_owned(),
        reason: reason.into(),
    }
}

/// Parses one filter parameter; errors name the parameter as written
/// (`name`), also from inside chains.
struct Parser<'r> {
    registry: &'r Registry,
    /// The parameter as written, for errors.
    name: &'r str,
    now: Micros,
    /// How many names this parameter has tried so far (see [`MAX_CHAIN_STEPS`]).
    steps: usize,
}

impl Parser<'_> {
    /// The filter of `name` (a suffix of the written name inside chains) on
    /// resources of `rtype`.
    fn filter(
        &mut self,
        rtype: &str,
        name: &str,
        value: &str,
        depth: usize,
    ) -> Result<Filter, SearchError> {
        self.steps += 1;
        if self.steps > MAX_CHAIN_STEPS {
            return Err(unsupported(
                self.name,
                "the chain expands to too many resource types; name them with :Type",
            ));
        }
        if depth > MAX_DEPTH {
            return Err(unsupported(
                self.name,
                format!("chains deeper than {MAX_DEPTH} levels are not supported"),
            ));
        }
        if let Some(rest) = name.strip_prefix("_has:") {
            return self.has(rtype, rest, value, depth);
        }
        if let Some((head, rest)) = name.split_once('.') {
            return self.chain(rtype, head, rest, value, depth);
        }
        let (code, modifier) = match name.split_once(':') {
            Some((code, modifier)) => (code, Some(modifier)),
            None => (name, None),
        };
        if value.is_empty() {
            return Err(invalid(self.name, "the value is empty"));
        }
        match code {
            "_id" => return self.id(modifier, value),
            "_lastUpdated" => return self.last_updated(modifier, value),
            "_has" => {
                return Err(invalid(
                    self.name,
                    "_has needs a type, a parameter and a name",
                ));
            }
            "_list" | "_type" | "_filter" => {
                return Err(SearchError::UnsupportedParameter {
                    param: self.name.to_owned(),
                    reason: format!("{code} is not supported"),
                });
            }
            _ => {}
        }
        let def = self
            .registry
            .param(rtype, code)
            .ok_or_else(|| SearchError::UnknownParameter(self.name.to_owned()))?;
        if let Support::Unsupported(reason) = def.support {
            return Err(SearchError::UnsupportedParameter {
                param: self.name.to_owned(),
                reason: reason.to_owned(),
            });
        }
        if modifier == Some("missing") {
            let missing = match value {
                "true" => true,
                "false" => false,
                _ => return Err(invalid(self.name, ":missing takes true or false")),
            };
            let Some(kind) = def.kind.index_kind() else {
                return Err(invalid_modifier(self.name, "missing"));
            };
            return Ok(Filter::Missing {
                param: def.code.clone(),
                kind,
                missing,
            });
        }
        let values: Vec<&str> = split_escaped(value, ',');
        if values.iter().any(|v| v.is_empty()) {
            return Err(invalid(self.name, "empty value in a comma-separated list"));
        }
        match def.kind {
            ParamKind::String => self.string(def, modifier, &values),
            ParamKind::Token => self.token(def, modifier, &values),
            ParamKind::Reference => self.reference(def, modifier, &values),
            ParamKind::Date => {
                self.no_modifier(modifier)?;
                Ok(Filter::Date {
                    param: def.code.clone(),
                    any_of: self.each(&values, |v| date_value(v, self.now))?,
                })
            }
            ParamKind::Number => {
                self.no_modifier(modifier)?;
                Ok(Filter::Number {
                    param: def.code.clone(),
                    any_of: self.each(&values, number_value)?,
                })
            }
            ParamKind::Quantity => {
                self.no_modifier(modifier)?;
                Ok(Filter::Quantity {
                    param: def.code.clone(),
                    any_of: self.each(&values, quantity_value)?,
                })
            }
            ParamKind::Uri => {
                let mode = match modifier {
                    None => UriMatch::Exact,
                    Some("below") => UriMatch::Below,
                    Some("above") => UriMatch::Above,
                    Some(m) => return Err(invalid_modifier(self.name, m)),
                };
                Ok(Filter::Uri {
                    param: def.code.clone(),
                    mode,
                    any_of: values.iter().map(|v| unescape(v)).collect(),
                })
            }
            ParamKind::Composite => {
                self.no_modifier(modifier)?;
                self.composite(def, &values)
            }
            ParamKind::Special => Err(SearchError::UnsupportedParameter {
                param: self.name.to_owned(),
                reason: "special parameters are not supported".to_owned(),
            }),
        }
    }

    fn no_modifier(&self, modifier: Option<&str>) -> Result<(), SearchError> {
        match modifier {
            None => Ok(()),
            Some(m) => Err(invalid_modifier(self.name, m)),
        }
    }

    /// Parses every OR value with `parse`, naming the parameter on error.
    fn each<T>(
        &self,
        values: &[&str],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, SearchError> {
        values
            .iter()
            .map(|v| parse(v).map_err(|reason| invalid(self.name, reason)))
            .collect()
    }

    fn id(&self, modifier: Option<&str>, value: &str) -> Result<Filter, SearchError> {
        self.no_modifier(modifier)?;
        let ids = split_escaped(value, ',')
            .into_iter()
            .map(|v| {
                let id = unescape(v);
                if fhir::is_valid_id(&id) {
                    Ok(id)
                } else {
                    Err(invalid(self.name, format!("'{id}' is not a valid id")))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Filter::Id(ids))
    }

    fn last_updated(&self, modifier: Option<&str>, value: &str) -> Result<Filter, SearchError> {
        self.no_modifier(modifier)?;
        let values = split_escaped(value, ',');
        Ok(Filter::LastUpdated(
            self.each(&values, |v| date_value(v, self.now))?,
        ))
    }

    fn string(
        &self,
        def: &ParamDef,
        modifier: Option<&str>,
        values: &[&str],
    ) -> Result<Filter, SearchError> {
        let mode = match modifier {
            None => StringMatch::Prefix,
            Some("contains") => StringMatch::Contains,
            Some("exact") => StringMatch::Exact,
            Some(m) => return Err(invalid_modifier(self.name, m)),
        };
        let any_of = self.each(values, |v| {
            let text = unescape(v);
            let text = if mode == StringMatch::Exact {
                text
            } else {
                normalize(&text)
            };
            if text.is_empty() {
                Err("the value is blank".to_owned())
            } else {
                Ok(text)
            }
        })?;
        Ok(Filter::String {
            param: def.code.clone(),
            mode,
            any_of,
        })
    }

    fn token(
        &self,
        def: &ParamDef,
        modifier: Option<&str>,
        values: &[&str],
    ) -> Result<Filter, SearchError> {
        match modifier {
            None | Some("not") => Ok(Filter::Token {
                param: def.code.clone(),
                not: modifier.is_some(),
                any_of: self.each(values, token_value)?,
            }),
            Some("text") => Ok(Filter::TokenText {
                param: def.code.clone(),
                any_of: self.each(values, |v| {
                    let text = normalize(&unescape(v));
                    if text.is_empty() {
                        Err("the value is blank".to_owned())
                    } else {
                        Ok(text)
                    }
                })?,
            }),
            Some("of-type") => Ok(Filter::Token {
                param: format!("{}:of-type", def.code),
                not: false,
                any_of: self.each(values, of_type_value)?,
            }),
            Some(m @ ("above" | "below" | "in" | "not-in")) => Err(unsupported(
                self.name,
                format!(":{m} needs terminology services, which are not supported"),
            )),
            Some(m) => Err(invalid_modifier(self.name, m)),
        }
    }

    fn reference(
        &self,
        def: &ParamDef,
        modifier: Option<&str>,
        values: &[&str],
    ) -> Result<Filter, SearchError> {
        let of_type = match modifier {
            None => None,
            Some("identifier") => {
                return Ok(Filter::Token {
                    param: format!("{}:identifier", def.code),
                    not: false,
                    any_of: self.each(values, token_value)?,
                });
            }
            Some(m @ ("above" | "below")) => {
                return Err(unsupported(
                    self.name,
                    format!(":{m} on references is not supported"),
                ));
            }
            Some(t) if def.may_target(t) => Some(t),
            Some(m) => return Err(invalid_modifier(self.name, m)),
        };
        Ok(Filter::Reference {
            param: def.code.clone(),
            any_of: self.each(values, |v| reference_value(v, of_type))?,
        })
    }

    fn composite(&self, def: &ParamDef, values: &[&str]) -> Result<Filter, SearchError> {
        let second_kind = def.components.get(1).map(|c| c.kind);
        let any_of = self.each(values, |v| {
            let parts = split_escaped(v, '$');
            let [first, second] = parts.as_slice() else {
                return Err(format!("'{v}' is not a composite value (token$value)"));
            };
            let token = token_value(first)?;
            let second = match second_kind {
                Some(ParamKind::Token) => CompositeSecond::Token(token_value(second)?),
                Some(ParamKind::Quantity) => CompositeSecond::Quantity(quantity_value(second)?),
                Some(ParamKind::Date) => {
                    CompositeSecond::Date(date_value(&unescape(second), self.now)?)
                }
                Some(ParamKind::String) => {
                    let text = normalize(&unescape(second));
                    if text.is_empty() {
                        return Err(format!("'{v}': the string part is blank"));
                    }
                    CompositeSecond::String(text)
                }
                _ => return Err("this composite is not supported".to_owned()),
            };
            Ok(CompositeFilter { token, second })
        })?;
        Ok(Filter::Composite {
            param: def.code.clone(),
            any_of,
        })
    }

    /// `head.rest`: `head` is a reference parameter (with an optional
    /// `:Type`), `rest` a parameter of the referenced type(s).
    fn chain(
        &mut self,
        rtype: &str,
        head: &str,
        rest: &str,
        value: &str,
        depth: usize,
    ) -> Result<Filter, SearchError> {
        let (code, modifier) = match head.split_once(':') {
            Some((code, modifier)) => (code, Some(modifier)),
            None => (head, None),
        };
        let def = self
            .registry
            .param(rtype, code)
            .ok_or_else(|| SearchError::UnknownParameter(self.name.to_owned()))?;
        if def.kind != ParamKind::Reference {
            return Err(SearchError::InvalidChain {
                param: self.name.to_owned(),
                reason: format!("{rtype}:{code} is not a reference parameter"),
            });
        }
        let candidates: Vec<String> = match modifier {
            None => def.targets.clone(),
            Some(t) if def.may_target(t) => vec![t.to_owned()],
            Some(m) => return Err(invalid_modifier(self.name, m)),
        };
        let mut chains = Vec::new();
        let mut first_error = None;
        for target in candidates {
            match self.filter(&target, rest, value, depth + 1) {
                Ok(filter) => {
                    chains.push(Filter::Chain {
                        param: def.code.clone(),
                        target_type: target,
                        filters: vec![filter],
                    });
                }
                // Deeper limits apply to the whole parameter.
                Err(e @ SearchError::Unsupported { .. }) => return Err(e),
                Err(e) => {
                    // Prefer an error about the value over "unknown" from a
                    // target type that simply lacks the parameter.
                    let replace = match (&first_error, &e) {
                        (None, _) => true,
                        (
                            Some(SearchError::UnknownParameter(_)),
                            SearchError::UnknownParameter(_),
                        ) => false,
                        (Some(SearchError::UnknownParameter(_)), _) => true,
                        _ => false,
                    };
                    if replace {
                        first_error = Some(e);
                    }
                }
            }
        }
        if chains.len() > 1 {
            return Ok(Filter::AnyOf(chains.into_iter().map(|c| vec![c]).collect()));
        }
        match chains.pop() {
            Some(chain) => Ok(chain),
            None => {
                Err(first_error
                    .unwrap_or_else(|| SearchError::UnknownParameter(self.name.to_owned())))
            }
        }
    }

    /// `_has:Type:param:rest`: resources referred to, through `Type`'s
    /// reference parameter `param`, by a `Type` matching `rest`.
    fn has(
        &mut self,
        rtype: &str,
        spec: &str,
        value: &str,
        depth: usize,
    ) -> Result<Filter, SearchError> {
        let mut parts = spec.splitn(3, ':');
        let (Some(source_type), Some(code), Some(rest)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(SearchError::InvalidChain {
                param: self.name.to_owned(),
                reason: "_has needs the form _has:Type:parameter:name".to_owned(),
            });
        };
        if !self.registry.is_resource_type(source_type) {
            return Err(SearchError::InvalidChain {
                param: self.name.to_owned(),
                reason: format!("unknown resource type {source_type}"),
            });
        }
        let def =
            self.registry
                .param(source_type, code)
                .ok_or_else(|| SearchError::InvalidChain {
                    param: self.name.to_owned(),
                    reason: format!("{source_type} has no search parameter {code}"),
                })?;
        if def.kind != ParamKind::Reference || !def.may_target(rtype) {
            return Err(SearchError::InvalidChain {
                param: self.name.to_owned(),
                reason: format!("{source_type}:{code} is not a reference to {rtype}"),
            });
        }
        let inner = self.filter(source_type, rest, value, depth + 1)?;
        Ok(Filter::Has {
            source_type: source_type.to_owned(),
            param: def.code.clone(),
            filters: vec![inner],
        })
    }
}

/// Parses one result parameter into `result`.
fn result_param(
    registry: &Registry,
    rtype: &str,
    name: &str,
    base: &str,
    modifier: Option<&str>,
    value: &str,
    result: &mut ResultParams,
) -> Result<(), SearchError> {
    let no_modifier = || match modifier {
        None => Ok(()),
        Some(m) => Err(invalid_modifier(name, m)),
    };
    match base {
        "_format" | "_pretty" => {}
        "_contained" | "_containedType" => {
            return Err(SearchError::UnsupportedParameter {
                param: name.to_owned(),
                reason: "searching contained resources is not supported".to_owned(),
            });
        }
        "_count" => {
            no_modifier()?;
            let count = value
                .parse::<usize>()
                .map_err(|_| invalid(name, format!("'{value}' is not a non-negative integer")))?;
            result.count = Some(count);
        }
        "_sort" => {
            no_modifier()?;
            result.sort = sort_keys(registry, rtype, name, value)?;
        }
        "_include" | "_revinclude" => {
            let iterate = match modifier {
                None => false,
                Some("iterate") => true,
                Some(m) => return Err(invalid_modifier(name, m)),
            };
            let include = include(registry, rtype, name, base == "_revinclude", value, iterate)?;
            if base == "_include" {
                result.include.push(include);
            } else {
                result.revinclude.push(include);
            }
        }
        "_total" => {
            no_modifier()?;
            result.total = Some(match value {
                "none" => Total::None,
                "estimate" => Total::Estimate,
                "accurate" => Total::Accurate,
                _ => return Err(invalid(name, "expected none, estimate or accurate")),
            });
        }
        "_summary" => {
            no_modifier()?;
            result.summary = Some(match value {
                "true" => Summary::True,
                "text" => Summary::Text,
                "data" => Summary::Data,
                "count" => Summary::Count,
                "false" => Summary::False,
                _ => return Err(invalid(name, "expected true, text, data, count or false")),
            });
        }
        "_elements" => {
            no_modifier()?;
            let mut elements = Vec::new();
            for element in value.split(',') {
                if !is_element_name(element) {
                    return Err(invalid(name, format!("'{element}' is not an element name")));
                }
                elements.push(element.to_owned());
            }
            result.elements = elements;
        }
        "_cursor" => {
            no_modifier()?;
            if value.is_empty() {
                return Err(invalid(name, "the value is empty"));
            }
            result.cursor = Some(value.to_owned());
        }
        _ => return Err(SearchError::UnknownParameter(name.to_owned())),
    }
    Ok(())
}

/// `name` or `Type.name`, each part a letter then letters, digits or `_`.
fn is_element_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// `_sort=-date,status`: keys in order, `-` for descending.
fn sort_keys(
    registry: &Registry,
    rtype: &str,
    name: &str,
    value: &str,
) -> Result<Vec<SortKey>, SearchError> {
    let mut keys = Vec::new();
    for item in value.split(',') {
        let (descending, code) = match item.strip_prefix('-') {
            Some(code) => (true, code),
            None => (false, item),
        };
        let key = match code {
            "" => return Err(invalid(name, "empty sort key")),
            "_id" => SortKey::Id { descending },
            "_lastUpdated" => SortKey::LastUpdated { descending },
            _ => {
                let def = registry.param(rtype, code).ok_or_else(|| {
                    invalid(name, format!("{rtype} has no search parameter {code}"))
                })?;
                let kind = match def.kind.index_kind() {
                    Some(kind) if kind != IndexKind::Composite && def.is_indexed() => kind,
                    _ => return Err(unsupported(name, format!("cannot sort by {code}"))),
                };
                SortKey::Param {
                    param: def.code.clone(),
                    kind,
                    descending,
                }
            }
        };
        keys.push(key);
    }
    Ok(keys)
}

/// `_include` / `_revinclude` values: `*`, `Type:*`, `Type:param`,
/// `Type:param:Target`. Without `:iterate`, an `_include` must start from
/// the searched type and a `_revinclude` must be able to point at it.
fn include(
    registry: &Registry,
    rtype: &str,
    name: &str,
    reverse: bool,
    value: &str,
    iterate: bool,
) -> Result<Include, SearchError> {
    if value == "*" {
        if reverse {
            return Err(unsupported(name, "_revinclude=* is not supported"));
        }
        return Ok(Include {
            source_type: rtype.to_owned(),
            param: None,
            target_type: None,
            iterate,
        });
    }
    let parts: Vec<&str> = value.split(':').collect();
    let (source_type, code, target_type) = match parts.as_slice() {
        [source, code] => (*source, *code, None),
        [source, code, target] => (*source, *code, Some(*target)),
        _ => {
            return Err(invalid(
                name,
                "expected Type:parameter or Type:parameter:TargetType",
            ));
        }
    };
    if !registry.is_resource_type(source_type) {
        return Err(invalid(
            name,
            format!("unknown resource type {source_type}"),
        ));
    }
    if !reverse && !iterate && source_type != rtype {
        return Err(invalid(
            name,
            format!("_include must start from {rtype} (or use :iterate)"),
        ));
    }
    let param = if code == "*" {
        None
    } else {
        let def = registry
            .param(source_type, code)
            .filter(|d| d.kind == ParamKind::Reference)
            .ok_or_else(|| {
                invalid(
                    name,
                    format!("{source_type} has no reference parameter {code}"),
                )
            })?;
        if let Some(target) = target_type
            && !def.may_target(target)
        {
            return Err(invalid(
                name,
                format!("{source_type}:{code} cannot refer to {target}"),
            ));
        }
        if reverse && !iterate && !def.may_target(rtype) {
            return Err(invalid(
                name,
                format!("{source_type}:{code} cannot refer to {rtype}"),
            ));
        }
        Some(def.code.clone())
    };
    if let Some(target) = target_type {
        if !registry.is_resource_type(target) {
            return Err(invalid(name, format!("unknown resource type {target}")));
        }
        if reverse && !iterate && target != rtype {
            return Err(invalid(
                name,
                format!("the target type must be {rtype} (or use :iterate)"),
            ));
        }
    }
    Ok(Include {
        source_type: source_type.to_owned(),
        param,
        target_type: target_type.map(str::to_owned),
        iterate,
    })
}
