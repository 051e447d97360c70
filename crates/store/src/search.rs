//! What the search engine hands the store: index rows extracted at write
//! time, and filters to evaluate at read time.
//!
//! The `search` crate produces both from the official R4 SearchParameters
//! (extraction through FHIRPath; query parsing from FHIR search syntax);
//! each backend turns [`Filter`]s into SQL over its index tables. Values are
//! normalised by the `search` crate once, the same way on both sides, so the
//! store only ever compares normalised values.
//!
//! Conventions:
//! - `param` is the search parameter's code (`name`, `subject`, `_tag`).
//!   Derived indexes use a synthetic code containing `:` (which no real code
//!   has): `identifier:of-type` (code `type-system|type-code|value`) and
//!   `<ref-param>:identifier` (the identifier inside a Reference).
//! - Ranges are inclusive: `[low, high]`. Open ends are `i64::MIN`/`i64::MAX`
//!   or `f64::NEG_INFINITY`/`f64::INFINITY`.

use crate::Micros;

/// One index entry derived from a resource version.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexRow {
    /// `normalized`: lower case, accents folded, white space collapsed
    /// (default and `:contains` matching); `exact`: as written.
    String {
        param: String,
        normalized: String,
        exact: String,
    },
    /// A code, with its system when it has one, and normalised display text
    /// (Coding.display, CodeableConcept.text) for `:text`. A row may carry
    /// text only (a CodeableConcept with no coding).
    Token {
        param: String,
        system: Option<String>,
        code: Option<String>,
        text: Option<String>,
    },
    /// A reference: local (`Type/id`: type and id set), or absolute /
    /// canonical (`url` set, and type and id too when the URL ends `Type/id`).
    Reference {
        param: String,
        target_type: Option<String>,
        target_id: Option<String>,
        url: Option<String>,
    },
    Date {
        param: String,
        low: Micros,
        high: Micros,
    },
    /// A decimal and the range its precision implies. Searches compare the
    /// value with the search range (see `Prefix`): a stored 100 matches a
    /// search for 100.0.
    Number {
        param: String,
        value: f64,
        low: f64,
        high: f64,
    },
    Quantity {
        param: String,
        system: Option<String>,
        code: Option<String>,
        /// The human-readable unit (`Quantity.unit`), matched when no system is given.
        unit: Option<String>,
        value: f64,
        low: f64,
        high: f64,
    },
    Uri {
        param: String,
        value: String,
    },
    /// A composite of a token and a second value taken from the same element.
    Composite {
        param: String,
        system: Option<String>,
        code: String,
        second: CompositeValue,
    },
}

/// The second part of a composite index row.
#[derive(Debug, Clone, PartialEq)]
pub enum CompositeValue {
    Token {
        system: Option<String>,
        code: String,
    },
    Quantity {
        system: Option<String>,
        code: Option<String>,
        low: f64,
        high: f64,
    },
    Date {
        low: Micros,
        high: Micros,
    },
    String {
        normalized: String,
    },
}

/// How an ordered value is compared (FHIR search prefixes, R4 3.1.1.4.2).
/// For dates the target is the indexed range `[t.low, t.high]` and the
/// search value the range `[s.low, s.high]` its precision implies, as
/// described on each variant. Numbers and quantities are points: `Eq`, `Ne`
/// and `Overlaps` test the value against `[s.low, s.high]`; the order
/// prefixes compare it with the search value itself (the middle of the range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// The search range contains the target range.
    Eq,
    /// Not `Eq`.
    Ne,
    /// `t.high > s.high`
    Gt,
    /// `t.low < s.low`
    Lt,
    /// `Gt` or `Eq`.
    Ge,
    /// `Lt` or `Eq`.
    Le,
    /// Starts after: `t.low > s.high`
    Sa,
    /// Ends before: `t.high < s.low`
    Eb,
    /// The ranges overlap (used for `ap`, with the search range widened by
    /// the caller).
    Overlaps,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMatch {
    /// Normalised target starts with the normalised value (the default).
    Prefix,
    /// Normalised target contains the normalised value.
    Contains,
    /// Exact, case- and accent-sensitive equality with the written value.
    Exact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriMatch {
    Exact,
    /// The target starts with the value (`:below`).
    Below,
    /// The value starts with the target (`:above`).
    Above,
}

/// A token to match. `system: None` matches any system; `Some("")` matches
/// "no system"; `code: None` matches any code in the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenValue {
    pub system: Option<String>,
    pub code: Option<String>,
}

/// A reference to match. With `url`, the indexed URL must equal it; else the
/// indexed id must equal `id` (and the type `target_type`, when given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceValue {
    pub target_type: Option<String>,
    pub id: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RangeValue<T> {
    pub prefix: Prefix,
    pub low: T,
    pub high: T,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuantityValue {
    pub prefix: Prefix,
    pub low: f64,
    pub high: f64,
    /// `None`: any system. Matched against the indexed system and code, or
    /// (without a system) against the code or the human-readable unit.
    pub system: Option<String>,
    pub code: Option<String>,
}

/// A search filter over the current, non-deleted resources of one type.
/// A list of filters means AND; the values inside one filter mean OR.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `_id`
    Id(Vec<String>),
    /// `_lastUpdated`
    LastUpdated(Vec<RangeValue<Micros>>),
    /// `param:missing=true|false`: whether the resource has no index row for
    /// `param` (in the index of the parameter's kind).
    Missing {
        param: String,
        kind: IndexKind,
        missing: bool,
    },
    String {
        param: String,
        mode: StringMatch,
        any_of: Vec<String>,
    },
    /// `not: true` (`:not`) matches resources with no row matching any value
    /// (including resources with no value at all).
    Token {
        param: String,
        not: bool,
        any_of: Vec<TokenValue>,
    },
    /// `:text`: the normalised display text starts with one of the values.
    TokenText { param: String, any_of: Vec<String> },
    Reference {
        param: String,
        any_of: Vec<ReferenceValue>,
    },
    Date {
        param: String,
        any_of: Vec<RangeValue<Micros>>,
    },
    Number {
        param: String,
        any_of: Vec<RangeValue<f64>>,
    },
    Quantity {
        param: String,
        any_of: Vec<QuantityValue>,
    },
    Uri {
        param: String,
        mode: UriMatch,
        any_of: Vec<String>,
    },
    /// A composite: the token and the second value must come from one row.
    Composite {
        param: String,
        any_of: Vec<CompositeFilter>,
    },
    /// A chained parameter: resources whose `param` reference points at a
    /// resource of `target_type` matching every filter in `filters`.
    Chain {
        param: String,
        target_type: String,
        filters: Vec<Filter>,
    },
    /// Reverse chaining (`_has:Type:param:...`): resources referred to by a
    /// `source_type` resource, through its `param`, that matches `filters`.
    Has {
        source_type: String,
        param: String,
        filters: Vec<Filter>,
    },
    /// Resources whose stored Patient compartment (`patient_id`) is this
    /// patient: "belongs to", not "mentions" (a reference through
    /// `performer` does not make another person's item theirs).
    Compartment(String),
    /// Logical OR of filter groups (each group an AND). Used for a system
    /// search across several types, and by the policy's criteria.
    AnyOf(Vec<Vec<Filter>>),
    /// Patients with a current relationship to `org` (population search:
    /// "which patients may this organisation see"): those with a stored
    /// [`crate::RelationshipRow`] where `org = org`, and (`user` is none or
    /// equals `user`: a per-user grant counts for its user alone), and either
    /// - `active` and `start` is none or `<= now` and `end` is none or `>= now`, or
    /// - `kind` is [`crate::relationship::ENCOUNTER`] and `end >= recent_since`
    ///   (a recently finished encounter).
    ///
    /// Only rows of [`crate::relationship::ACCESS_KINDS`] count. Unless
    /// the row is a GP registration or a break-glass grant, the patient is
    /// left out when
    /// - a [`crate::relationship::DISSENT`] row in force (active, in its
    ///   period) names `org`, `*` or `type:` + `org_type` (any `type:` row
    ///   when `org_type` is `None`: fail closed); or
    /// - a sharing rule of a practice the patient has an active GP
    ///   registration with keeps `org` out: `sharing-off`; `sharing-deny`
    ///   naming `org`; `sharing-local` when `local` is false;
    ///   `sharing-allow-list` without a `sharing-allow` naming `org`;
    ///   `sharing-verify` naming `org` without a `sharing-approved` (or with
    ///   a `sharing-rejected`) naming it.
    ///
    /// Only the Patient type has relationships: on any other searched type
    /// this filter matches nothing (it fails closed).
    Related {
        org: String,
        user: Option<String>,
        now: Micros,
        recent_since: Micros,
        /// The organisation's type (sharedcare organisation-type code).
        org_type: Option<String>,
        /// Is the organisation one of this integrated care system's?
        local: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompositeFilter {
    pub token: TokenValue,
    pub second: CompositeSecond,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CompositeSecond {
    Token(TokenValue),
    Quantity(QuantityValue),
    Date(RangeValue<Micros>),
    String(String),
}

/// Which index table a parameter's rows live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    String,
    Token,
    Reference,
    Date,
    Number,
    Quantity,
    Uri,
    Composite,
}

/// One `_sort` key. `_id` and `_lastUpdated` have their own variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Id {
        descending: bool,
    },
    LastUpdated {
        descending: bool,
    },
    Param {
        param: String,
        kind: IndexKind,
        descending: bool,
    },
}

/// A row's sort value, read back with search results to build the paging
/// cursor (keyset pagination: stable while data changes).
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    Text(String),
    Int(i64),
    Real(f64),
}

/// Index and search text is cut to this many bytes (on a character
/// boundary), on both sides: database index entries have size limits
/// (PostgreSQL's btree refuses entries over about 2.7 KB), and a search
/// for text longer than this compares the first 512 bytes.
pub const MAX_INDEXED_TEXT: usize = 512;

impl IndexRow {
    /// The row with every text value cut by [`clip`].
    pub fn clipped(&self) -> IndexRow {
        let c = |s: &String| clip(s).to_owned();
        let oc = |s: &Option<String>| s.as_deref().map(|s| clip(s).to_owned());
        match self {
            IndexRow::String {
                param,
                normalized,
                exact,
            } => IndexRow::String {
                param: param.clone(),
                normalized: c(normalized),
                exact: c(exact),
            },
            IndexRow::Token {
                param,
                system,
                code,
                text,
            } => IndexRow::Token {
                param: param.clone(),
                system: oc(system),
                code: oc(code),
                text: oc(text),
            },
            IndexRow::Reference {
                param,
                target_type,
                target_id,
                url,
            } => IndexRow::Reference {
                param: param.clone(),
                target_type: target_type.clone(),
                target_id: oc(target_id),
                url: oc(url),
            },
            IndexRow::Quantity {
                param,
                system,
                code,
                unit,
                value,
                low,
                high,
            } => IndexRow::Quantity {
                param: param.clone(),
                system: oc(system),
                code: oc(code),
                unit: oc(unit),
                value: *value,
                low: *low,
                high: *high,
            },
            IndexRow::Uri { param, value } => IndexRow::Uri {
                param: param.clone(),
                value: c(value),
            },
            IndexRow::Composite {
                param,
                system,
                code,
                second,
            } => IndexRow::Composite {
                param: param.clone(),
                system: oc(system),
                code: c(code),
                second: match second {
                    CompositeValue::Token { system, code } => CompositeValue::Token {
                        system: oc(system),
                        code: c(code),
                    },
                    CompositeValue::Quantity {
                        system,
                        code,
                        low,
                        high,
                    } => CompositeValue::Quantity {
                        system: oc(system),
                        code: oc(code),
                        low: *low,
                        high: *high,
                    },
                    CompositeValue::String { normalized } => CompositeValue::String {
                        normalized: c(normalized),
                    },
                    other @ CompositeValue::Date { .. } => other.clone(),
                },
            },
            other @ (IndexRow::Date { .. } | IndexRow::Number { .. }) => other.clone(),
        }
    }
}

/// `s` cut to [`MAX_INDEXED_TEXT`] bytes at a character boundary.
pub fn clip(s: &str) -> &str {
    if s.len() <= MAX_INDEXED_TEXT {
        return s;
    }
    let mut end = MAX_INDEXED_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_respects_characters() {
        assert_eq!(clip("abc"), "abc");
        let long = "é".repeat(400); // 800 bytes
        let c = clip(&long);
        assert!(c.len() <= MAX_INDEXED_TEXT && c.len() >= MAX_INDEXED_TEXT - 1);
        assert!(long.starts_with(c));
    }
}
