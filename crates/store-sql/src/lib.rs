//! SQL generation for search, shared by `store-sqlite` and `store-postgres`.
//!
//! Both backends keep the same index tables (see their migrations); this
//! crate turns [`Filter`]s, [`SortKey`]s and paging cursors into one SQL
//! boolean expression / ORDER BY clause, with bind values kept apart from the
//! text (never interpolated). The dialects differ only in placeholders
//! (`?` / `$n`), booleans and text collation, which [`Dialect`] covers.
//!
//! Architecture invariant: this crate, with the two backends, is all the
//! SQL there is; it has no driver and does no IO.
//!
//! Resource rows are `resource_current` under an alias (`c`, `c1`, …); every
//! index table has `(rtype, id, param, …)` columns keyed to it.
//!
//! Relationship facts ([`store::RelationshipRow`]) live in one table,
//! `relationship`, keyed by `patient_id` (the Patient's logical id) and
//! replaced per source `(src_type, src_id)`; its statements are here too
//! ([`relationships_query`], [`relationship_delete`], [`relationship_insert`]).

use store::search::SortValue;
use store::search::{
    CompositeFilter, CompositeSecond, Filter, IndexKind, Prefix, QuantityValue, RangeValue,
    ReferenceValue, SortKey, StringMatch, TokenValue, UriMatch,
};
use store::{Micros, RelationshipRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A bind value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Real(f64),
    /// A boolean column: an INTEGER 0/1 in SQLite, a BOOLEAN in PostgreSQL.
    Bool(bool),
    /// A NULL text.
    Null,
    /// A NULL integer (PostgreSQL checks a bind's type, even a NULL's).
    NullInt,
}

/// SQL text under construction with its bind values.
#[derive(Debug)]
pub struct Builder {
    pub dialect: Dialect,
    pub args: Vec<SqlValue>,
    aliases: usize,
    /// The row alias whose index conditions are written as correlated
    /// `EXISTS` probes (see [`filters`]).
    correlated: Option<String>,
    /// The row alias whose [`Filter::Related`] is a correlated probe while
    /// a selective condition drives (see [`filters`]).
    related_probe: Option<String>,
}

impl Builder {
    pub fn new(dialect: Dialect) -> Self {
        Builder {
            dialect,
            args: Vec::new(),
            aliases: 0,
            correlated: None,
            related_probe: None,
        }
    }

    /// Adds a bind value; returns its placeholder.
    pub fn arg(&mut self, v: SqlValue) -> String {
        self.args.push(v);
        match self.dialect {
            Dialect::Sqlite => format!("?{}", self.args.len()),
            Dialect::Postgres => format!("${}", self.args.len()),
        }
    }

    /// A text bind, cut like indexed text (see `store::search::clip`).
    fn text(&mut self, s: &str) -> String {
        self.arg(SqlValue::Text(store::search::clip(s).to_owned()))
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    pub fn not_deleted(&self, alias: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("{alias}.deleted = 0"),
            Dialect::Postgres => format!("NOT {alias}.deleted"),
        }
    }

    /// `col` (a boolean column) is true.
    pub fn is_true(&self, col: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("{col} = 1"),
            Dialect::Postgres => col.to_owned(),
        }
    }

    /// Ends the subquery of a correlated probe of one row of a person's
    /// compartment (`EXISTS (SELECT 1 … {fence})`: a value condition or a
    /// chain, see [`filters`]): on PostgreSQL `OFFSET 0`, which keeps the
    /// planner from turning the probe into a semi-join. As a join it may be
    /// driven from the index table's values (every resource in the
    /// population carrying that code or tag) instead of the outer rows (the
    /// few of one person's compartment), and at a million people it did,
    /// most likely (1.9 s for a care worker's `Encounter?patient=`). Fenced,
    /// the probe runs once per outer row, so a search of one person's
    /// record costs the same at any population, and the planner has fewer
    /// join orders to weigh. SQLite pins the same order with `INDEXED BY`.
    pub fn probe_fence(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " OFFSET 0",
        }
    }

    /// Byte-wise text ordering, the same on both backends.
    pub fn collate(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " COLLATE \"C\"",
        }
    }
}

pub fn table(kind: IndexKind) -> &'static str {
    match kind {
        IndexKind::String => "idx_string",
        IndexKind::Token => "idx_token",
        IndexKind::Reference => "idx_reference",
        IndexKind::Date => "idx_date",
        IndexKind::Number => "idx_number",
        IndexKind::Quantity => "idx_quantity",
        IndexKind::Uri => "idx_uri",
        IndexKind::Composite => "idx_composite",
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// `alias.id IN (SELECT t.id FROM <table> t WHERE t.rtype = rtype AND
/// t.param = param AND (cond))`: driven by the index table's value index,
/// so a selective condition touches only its matches (never a scan of every
/// resource of the type).
fn member(
    b: &mut Builder,
    alias: &str,
    rtype: &str,
    kind: IndexKind,
    param: &str,
    cond: impl FnOnce(&mut Builder, &str) -> String,
) -> String {
    let t = b.fresh("t");
    let rt = b.text(rtype);
    let p = b.text(param);
    let c = cond(b, &t);
    if b.correlated.as_deref() == Some(alias) {
        // SQLite without statistics probed through the value index (every
        // row of the population with that code, filtered by id) instead
        // of the row's own few index entries: pinned to the owner index.
        let owner = match b.dialect {
            Dialect::Sqlite => format!(" INDEXED BY {}_owner", table(kind)),
            Dialect::Postgres => String::new(),
        };
        let fence = b.probe_fence();
        format!(
            "EXISTS (SELECT 1 FROM {} {t}{owner} WHERE {t}.rtype = {rt} AND {t}.id = {alias}.id AND {t}.param = {p} AND ({c}){fence})",
            table(kind)
        )
    } else {
        format!(
            "{alias}.id IN (SELECT {t}.id FROM {} {t} WHERE {t}.rtype = {rt} AND {t}.param = {p} AND ({c}))",
            table(kind)
        )
    }
}

/// `col` starts with `prefix` (byte-wise), as a range the value index can use.
fn starts_with(b: &mut Builder, col: &str, prefix: &str) -> String {
    let collate = b.collate();
    let prefix = store::search::clip(prefix);
    let lo = b.text(prefix);
    let hi = b.arg(SqlValue::Text(format!("{prefix}\u{10FFFF}")));
    format!("({col}{collate} >= {lo} AND {col}{collate} < {hi})")
}

fn or(parts: Vec<String>) -> String {
    if parts.is_empty() {
        "1 = 0".to_owned()
    } else {
        parts.join(" OR ")
    }
}

fn and(parts: Vec<String>) -> String {
    if parts.is_empty() {
        "1 = 1".to_owned()
    } else {
        parts.join(" AND ")
    }
}

/// The comparison of an indexed range `[lo, hi]` (column names) with a
/// search range, by prefix (FHIR R4 search, 3.1.1.4.2).
fn range_cond(
    b: &mut Builder,
    lo: &str,
    hi: &str,
    prefix: Prefix,
    low: SqlValue,
    high: SqlValue,
) -> String {
    // Bind only the bounds a prefix uses: SQLite refuses unused parameters.
    let eq = |b: &mut Builder, low: SqlValue, high: SqlValue| {
        let sl = b.arg(low);
        let sh = b.arg(high);
        format!("({lo} >= {sl} AND {hi} <= {sh})")
    };
    match prefix {
        Prefix::Eq => eq(b, low, high),
        Prefix::Ne => format!("NOT {}", eq(b, low, high)),
        Prefix::Gt => format!("{hi} > {}", b.arg(high)),
        Prefix::Lt => format!("{lo} < {}", b.arg(low)),
        Prefix::Ge => {
            let sh = b.arg(high.clone());
            format!("({hi} > {sh} OR {})", eq(b, low, high))
        }
        Prefix::Le => {
            let sl = b.arg(low.clone());
            format!("({lo} < {sl} OR {})", eq(b, low, high))
        }
        Prefix::Sa => format!("{lo} > {}", b.arg(high)),
        Prefix::Eb => format!("{hi} < {}", b.arg(low)),
        Prefix::Overlaps => {
            let sl = b.arg(low);
            let sh = b.arg(high);
            format!("({lo} <= {sh} AND {hi} >= {sl})")
        }
    }
}

/// The comparison of an indexed *value* (a number or quantity: a point)
/// with a search range. `eq`/`ne`/`ap` use the range the search value's
/// precision implies (100 means [99.5, 100.5]); the order prefixes compare
/// with the search value itself (the middle of that range), so `lt100`
/// matches 99.7.
fn point_cond(b: &mut Builder, v: &str, prefix: Prefix, low: f64, high: f64) -> String {
    let mid = low / 2.0 + high / 2.0;
    let within = |b: &mut Builder| {
        let sl = b.arg(SqlValue::Real(low));
        let sh = b.arg(SqlValue::Real(high));
        format!("({v} >= {sl} AND {v} <= {sh})")
    };
    match prefix {
        Prefix::Eq | Prefix::Overlaps => within(b),
        Prefix::Ne => format!("NOT {}", within(b)),
        Prefix::Gt | Prefix::Sa => format!("{v} > {}", b.arg(SqlValue::Real(mid))),
        Prefix::Lt | Prefix::Eb => format!("{v} < {}", b.arg(SqlValue::Real(mid))),
        Prefix::Ge => format!("{v} >= {}", b.arg(SqlValue::Real(mid))),
        Prefix::Le => format!("{v} <= {}", b.arg(SqlValue::Real(mid))),
    }
}

fn date_value(b: &mut Builder, lo: &str, hi: &str, v: &RangeValue<Micros>) -> String {
    range_cond(
        b,
        lo,
        hi,
        v.prefix,
        SqlValue::Int(v.low),
        SqlValue::Int(v.high),
    )
}

fn real_value(b: &mut Builder, value: &str, v: &RangeValue<f64>) -> String {
    point_cond(b, value, v.prefix, v.low, v.high)
}

fn token_cond(b: &mut Builder, t: &str, sys_col: &str, code_col: &str, v: &TokenValue) -> String {
    let mut parts = Vec::new();
    match v.system.as_deref() {
        None => {}
        Some("") => parts.push(format!("{t}.{sys_col} IS NULL")),
        Some(s) => {
            let p = b.text(s);
            parts.push(format!("{t}.{sys_col} = {p}"));
        }
    }
    if let Some(code) = &v.code {
        let p = b.text(code);
        parts.push(format!("{t}.{code_col} = {p}"));
    } else {
        parts.push(format!("{t}.{code_col} IS NOT NULL"));
    }
    format!("({})", and(parts))
}

fn quantity_cond(
    b: &mut Builder,
    t: &str,
    cols: (&str, &str, Option<&str>, &str, &str),
    v: &QuantityValue,
) -> String {
    let (sys, code, unit, lo, hi) = cols;
    // The indexed value: the `value` column, or the middle of a composite's range.
    let value = if lo == "low" {
        format!("{t}.value")
    } else {
        format!("({t}.{lo} + {t}.{hi}) / 2")
    };
    let mut parts = vec![point_cond(b, &value, v.prefix, v.low, v.high)];
    match (&v.system, &v.code) {
        (Some(s), Some(c)) => {
            let ps = b.text(s);
            let pc = b.text(c);
            parts.push(format!("{t}.{sys} = {ps} AND {t}.{code} = {pc}"));
        }
        (Some(s), None) => {
            let ps = b.text(s);
            parts.push(format!("{t}.{sys} = {ps}"));
        }
        (None, Some(c)) => {
            let pc = b.text(c);
            match unit {
                Some(u) => {
                    let pu = b.text(c);
                    parts.push(format!("({t}.{code} = {pc} OR {t}.{u} = {pu})"));
                }
                None => parts.push(format!("{t}.{code} = {pc}")),
            }
        }
        (None, None) => {}
    }
    format!("({})", and(parts))
}

fn reference_cond(b: &mut Builder, t: &str, v: &ReferenceValue) -> String {
    if let Some(url) = &v.url {
        let p = b.text(url);
        return format!("{t}.url = {p}");
    }
    let mut parts = Vec::new();
    if let Some(id) = &v.id {
        let p = b.text(id);
        parts.push(format!("{t}.target_id = {p}"));
    }
    if let Some(ty) = &v.target_type {
        let p = b.text(ty);
        parts.push(format!("{t}.target_type = {p}"));
    }
    format!("({})", and(parts))
}

/// A boolean SQL expression: the resource row `alias`, of type `rtype`,
/// matches every filter.
///
/// When the filters name the rows directly (a patient compartment or ids),
/// those drive the query and every index condition on `alias` is a
/// correlated `EXISTS` probe through the table's `(rtype, id)` index: its
/// cost follows the few candidate rows. Otherwise an index condition is an
/// `IN (subquery)` the planner can drive from. (An uncorrelated `IN` beside
/// a compartment made SQLite build the subquery's whole result — every
/// encounter of the last year, say — on every search of one person's
/// record: its cost grew with the population.)
///
/// The organisation's relationship ([`Filter::Related`]) is a set the
/// size of a practice list: beside a condition that names few resources
/// (an NHS number, a name, a birth date) it is a correlated probe of each
/// candidate instead, so that the few drive. (As an `IN` beside them,
/// SQLite walked the practice's whole list, checking dissent and sharing
/// rules for each patient: one second per NHS number search at 500,000
/// people, 0.3 ms as a probe.)
pub fn filters(b: &mut Builder, alias: &str, rtype: &str, fs: &[Filter]) -> String {
    let driven = fs
        .iter()
        .any(|f| matches!(f, Filter::Compartment(_) | Filter::Id(_)));
    let outer = (b.correlated.clone(), b.related_probe.clone());
    if driven {
        b.correlated = Some(alias.to_owned());
    }
    if fs.iter().any(selective) {
        b.related_probe = Some(alias.to_owned());
    }
    let parts: Vec<String> = fs.iter().map(|f| filter(b, alias, rtype, f)).collect();
    (b.correlated, b.related_probe) = outer;
    format!("({})", and(parts))
}

/// Whether `f`, on a Patient search, names few people whatever the
/// population: an identifier or contact, a name, an address or postcode,
/// an exact birth date. (Not a status, a gender, a city, a range of dates,
/// a GP practice: those name a share of everyone.)
fn selective(f: &Filter) -> bool {
    match f {
        Filter::Id(_) => true,
        Filter::String { param, .. } => matches!(
            param.as_str(),
            "name" | "family" | "given" | "phonetic" | "address" | "address-postalcode"
        ),
        Filter::Token { param, not, .. } => {
            !*not && matches!(param.as_str(), "identifier" | "telecom" | "phone" | "email")
        }
        Filter::Date { any_of, .. } => {
            !any_of.is_empty() && any_of.iter().all(|v| matches!(v.prefix, Prefix::Eq))
        }
        _ => false,
    }
}

fn filter(b: &mut Builder, alias: &str, rtype: &str, f: &Filter) -> String {
    match f {
        Filter::Compartment(patient) => {
            let v = b.text(patient);
            format!("{alias}.patient_id = {v}")
        }
        Filter::Id(ids) => {
            let ps: Vec<String> = ids.iter().map(|id| b.text(id)).collect();
            if ps.is_empty() {
                "1 = 0".to_owned()
            } else {
                format!("{alias}.id IN ({})", ps.join(", "))
            }
        }
        Filter::LastUpdated(values) => {
            let col = format!("{alias}.last_updated");
            or(values
                .iter()
                .map(|v| date_value(b, &col, &col, v))
                .collect())
        }
        Filter::Missing {
            param,
            kind,
            missing,
        } => {
            let e = member(b, alias, rtype, *kind, param, |_, _| "1 = 1".to_owned());
            if *missing { format!("NOT {e}") } else { e }
        }
        Filter::String {
            param,
            mode,
            any_of,
        } => member(b, alias, rtype, IndexKind::String, param, |b, t| {
            or(any_of
                .iter()
                .map(|v| match mode {
                    StringMatch::Exact => {
                        let p = b.text(v);
                        format!("{t}.exact = {p}")
                    }
                    StringMatch::Prefix => starts_with(b, &format!("{t}.normalized"), v),
                    StringMatch::Contains => {
                        let p = b.text(&format!("%{}%", like_escape(v)));
                        format!("{t}.normalized LIKE {p} ESCAPE '\\'")
                    }
                })
                .collect())
        }),
        Filter::Token { param, not, any_of } => {
            let e = member(b, alias, rtype, IndexKind::Token, param, |b, t| {
                or(any_of
                    .iter()
                    .map(|v| token_cond(b, t, "system", "code", v))
                    .collect())
            });
            if *not { format!("NOT {e}") } else { e }
        }
        Filter::TokenText { param, any_of } => {
            member(b, alias, rtype, IndexKind::Token, param, |b, t| {
                or(any_of
                    .iter()
                    .map(|v| starts_with(b, &format!("{t}.text"), v))
                    .collect())
            })
        }
        Filter::Reference { param, any_of } => {
            member(b, alias, rtype, IndexKind::Reference, param, |b, t| {
                or(any_of.iter().map(|v| reference_cond(b, t, v)).collect())
            })
        }
        Filter::Date { param, any_of } => {
            member(b, alias, rtype, IndexKind::Date, param, |b, t| {
                or(any_of
                    .iter()
                    .map(|v| date_value(b, &format!("{t}.low"), &format!("{t}.high"), v))
                    .collect())
            })
        }
        Filter::Number { param, any_of } => {
            member(b, alias, rtype, IndexKind::Number, param, |b, t| {
                or(any_of
                    .iter()
                    .map(|v| real_value(b, &format!("{t}.value"), v))
                    .collect())
            })
        }
        Filter::Quantity { param, any_of } => {
            member(b, alias, rtype, IndexKind::Quantity, param, |b, t| {
                or(any_of
                    .iter()
                    .map(|v| {
                        quantity_cond(b, t, ("system", "code", Some("unit"), "low", "high"), v)
                    })
                    .collect())
            })
        }
        Filter::Uri {
            param,
            mode,
            any_of,
        } => member(b, alias, rtype, IndexKind::Uri, param, |b, t| {
            or(any_of
                .iter()
                .map(|v| {
                    let p = b.text(v);
                    match mode {
                        UriMatch::Exact => format!("{t}.value = {p}"),
                        UriMatch::Below => format!("substr({t}.value, 1, length({p})) = {p}"),
                        UriMatch::Above => format!("substr({p}, 1, length({t}.value)) = {t}.value"),
                    }
                })
                .collect())
        }),
        Filter::Composite { param, any_of } => {
            member(b, alias, rtype, IndexKind::Composite, param, |b, t| {
                or(any_of.iter().map(|v| composite_cond(b, t, v)).collect())
            })
        }
        Filter::Chain {
            param,
            target_type,
            filters: inner,
        } => {
            let r = b.fresh("r");
            let c2 = b.fresh("c");
            let rt = b.text(rtype);
            let p = b.text(param);
            let ty = b.text(target_type);
            let ty2 = b.text(target_type);
            let live = b.not_deleted(&c2);
            if b.correlated.as_deref() == Some(alias) {
                // Driven by a compartment or ids: follow this row's own
                // references and test their targets, rather than listing
                // every target that matches (every patient with that
                // name) on each search.
                let owner = match b.dialect {
                    Dialect::Sqlite => " INDEXED BY idx_reference_owner",
                    Dialect::Postgres => "",
                };
                let outer = b.correlated.replace(c2.clone());
                let cond = filters(b, &c2, target_type, inner);
                b.correlated = outer;
                let fence = b.probe_fence();
                return format!(
                    "EXISTS (SELECT 1 FROM idx_reference {r}{owner} WHERE {r}.rtype = {rt} AND {r}.id = {alias}.id \
                     AND {r}.param = {p} AND {r}.target_type = {ty} AND EXISTS \
                     (SELECT 1 FROM resource_current {c2} WHERE {c2}.rtype = {ty2} AND {c2}.id = {r}.target_id \
                     AND {live} AND {cond}{fence}){fence})"
                );
            }
            let cond = filters(b, &c2, target_type, inner);
            format!(
                "{alias}.id IN (SELECT {r}.id FROM idx_reference {r} WHERE {r}.rtype = {rt} AND {r}.param = {p} \
                 AND {r}.target_type = {ty} AND {r}.target_id IN \
                 (SELECT {c2}.id FROM resource_current {c2} WHERE {c2}.rtype = {ty2} AND {live} AND {cond}))"
            )
        }
        Filter::Has {
            source_type,
            param,
            filters: inner,
        } => {
            let r = b.fresh("r");
            let c2 = b.fresh("c");
            let rt = b.text(rtype);
            let st = b.text(source_type);
            let p = b.text(param);
            let st2 = b.text(source_type);
            let live = b.not_deleted(&c2);
            let cond = filters(b, &c2, source_type, inner);
            format!(
                "{alias}.id IN (SELECT {r}.target_id FROM idx_reference {r} WHERE {r}.target_type = {rt} \
                 AND {r}.rtype = {st} AND {r}.param = {p} AND {r}.id IN \
                 (SELECT {c2}.id FROM resource_current {c2} WHERE {c2}.rtype = {st2} AND {live} AND {cond}))"
            )
        }
        Filter::AnyOf(groups) => {
            let parts: Vec<String> = groups.iter().map(|g| filters(b, alias, rtype, g)).collect();
            format!("({})", or(parts))
        }
        Filter::Related {
            org,
            user,
            now,
            recent_since,
            org_type,
            local,
        } => related(
            b,
            alias,
            rtype,
            &RelatedArgs {
                org,
                user: user.as_deref(),
                now: *now,
                recent_since: *recent_since,
                org_type: org_type.as_deref(),
                local: *local,
            },
        ),
    }
}

struct RelatedArgs<'a> {
    org: &'a str,
    user: Option<&'a str>,
    now: Micros,
    recent_since: Micros,
    org_type: Option<&'a str>,
    local: bool,
}

/// A list of text binds, for `IN (…)`.
fn texts(b: &mut Builder, values: &[&str]) -> String {
    values
        .iter()
        .map(|v| b.text(v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `{pre} || {col}`: the pseudo patient id of a practice's sharing rules.
fn practice_key(b: &mut Builder, col: &str) -> String {
    let pre = b.text(store::relationship::PRACTICE_PREFIX);
    match b.dialect {
        Dialect::Sqlite => format!("({pre} || {col})"),
        Dialect::Postgres => format!("(CAST({pre} AS TEXT) || {col})"),
    }
}

/// [`Filter::Related`]: a semi-join driven by the `(org, patient_id)` index.
/// Only Patients have relationships; any other type matches nothing.
fn related(b: &mut Builder, alias: &str, rtype: &str, a: &RelatedArgs) -> String {
    use store::relationship as rel;
    if rtype != "Patient" {
        return "1 = 0".to_owned();
    }
    let r = b.fresh("r");
    let o = b.text(a.org);
    // Per-user grants (break-glass) count for their user only, and a grant
    // naming no user grants nobody.
    let bg = b.text(rel::BREAK_GLASS);
    let who = match a.user {
        None => format!("({r}.user_sub IS NULL AND {r}.kind <> {bg})"),
        Some(u) => {
            let p = b.text(u);
            format!("(({r}.user_sub IS NULL AND {r}.kind <> {bg}) OR {r}.user_sub = {p})")
        }
    };
    let kinds = texts(b, rel::ACCESS_KINDS);
    let active = b.is_true(&format!("{r}.active"));
    let now = b.arg(SqlValue::Int(a.now));
    let encounter = b.text(rel::ENCOUNTER);
    let recent = b.arg(SqlValue::Int(a.recent_since));
    // Dissent and the practice's sharing rules keep the organisation out,
    // except through a GP registration (the practice itself) or
    // break-glass.
    let exempt = texts(b, &[rel::GP_REGISTRATION, rel::BREAK_GLASS]);
    let d = b.fresh("d");
    let dissent = b.text(rel::DISSENT);
    let mut named = vec![o.clone(), b.text(rel::EVERY_ORGANISATION)];
    if let Some(t) = a.org_type {
        named.push(b.text(&format!("type:{t}")));
    }
    let named = named.join(", ");
    // A dissent aimed at a kind of organisation keeps out an organisation
    // of unknown kind (fail closed).
    let unknown_kind = match a.org_type {
        Some(_) => String::new(),
        None => {
            let prefix = b.text("type:%");
            format!(" OR {d}.org LIKE {prefix}")
        }
    };
    let d_active = b.is_true(&format!("{d}.active"));
    let g = b.fresh("g");
    let s = b.fresh("s");
    let x = b.fresh("x");
    let gp = b.text(rel::GP_REGISTRATION);
    let g_active = b.is_true(&format!("{g}.active"));
    let key = practice_key(b, &format!("{g}.org"));
    let star = b.text(rel::EVERY_ORGANISATION);
    let off = b.text(rel::sharing::OFF);
    let deny = b.text(rel::sharing::DENY);
    let local_kind = b.text(rel::sharing::LOCAL);
    let not_local = if a.local { "1 = 0" } else { "1 = 1" };
    let allow_list = b.text(rel::sharing::ALLOW_LIST);
    let allow = b.text(rel::sharing::ALLOW);
    let verify = b.text(rel::sharing::VERIFY);
    let approved = b.text(rel::sharing::APPROVED);
    let rejected = b.text(rel::sharing::REJECTED);
    let has = |kind: &str| {
        format!(
            "EXISTS (SELECT 1 FROM relationship {x} WHERE {x}.patient_id = {s}.patient_id AND {x}.org = {o} AND {x}.kind = {kind})"
        )
    };
    let blocked_by_practice = format!(
        "EXISTS (SELECT 1 FROM relationship {g} JOIN relationship {s} ON {s}.patient_id = {key} \
         WHERE {g}.patient_id = {r}.patient_id AND {g}.kind = {gp} AND {g_active} AND {s}.org IN ({o}, {star}) \
         AND ({s}.kind = {off} OR ({s}.kind = {deny} AND {s}.org = {o}) OR ({s}.kind = {local_kind} AND {not_local}) \
         OR ({s}.kind = {allow_list} AND NOT {allowed}) \
         OR ({s}.kind = {verify} AND {s}.org = {o} AND (NOT {approved_row} OR {rejected_row}))))",
        allowed = has(&allow),
        approved_row = has(&approved),
        rejected_row = has(&rejected),
    );
    let probe = b.related_probe.as_deref() == Some(alias) || b.correlated.as_deref() == Some(alias);
    let head = if probe {
        format!("EXISTS (SELECT 1 FROM relationship {r} WHERE {r}.patient_id = {alias}.id AND")
    } else {
        format!("{alias}.id IN (SELECT {r}.patient_id FROM relationship {r} WHERE")
    };
    format!(
        "{head} {r}.org = {o} AND {who} \
         AND {r}.kind IN ({kinds}) \
         AND (({active} AND ({r}.start_at IS NULL OR {r}.start_at <= {now}) AND ({r}.end_at IS NULL OR {r}.end_at >= {now})) \
         OR ({r}.kind = {encounter} AND {r}.end_at >= {recent} AND {r}.end_at <= {now})) \
         AND ({r}.kind IN ({exempt}) OR (NOT EXISTS (SELECT 1 FROM relationship {d} WHERE {d}.patient_id = {r}.patient_id \
         AND {d}.kind = {dissent} AND ({d}.org IN ({named}){unknown_kind}) AND {d_active} \
         AND ({d}.start_at IS NULL OR {d}.start_at <= {now}) AND ({d}.end_at IS NULL OR {d}.end_at >= {now})) \
         AND NOT {blocked_by_practice})))"
    )
}

/// The columns [`relationships_query`] selects, in order: read them back
/// into a [`RelationshipRow`] by position.
pub const RELATIONSHIP_COLUMNS: &str =
    "r.org, r.kind, r.user_sub, r.active, r.start_at, r.end_at, r.src_type, r.src_id, r.detail";

/// `store::Store::relationships`, first part: the rows of one patient
/// with `org = org`, or of a kind in
/// [`store::relationship::ANY_ORG_KINDS`], or with `user_sub = user` (a
/// `None` leaves its clause out), in the documented order, at most
/// [`store::relationship::MAX_ROWS`]; for a practice's pseudo patient,
/// every row. The `patient_id` equality leads the `(patient_id, org)`
/// index; the rest is a filter over one patient's rows.
pub fn relationships_query(
    b: &mut Builder,
    patient_id: &str,
    org: Option<&str>,
    user: Option<&str>,
) -> String {
    let practice = patient_id.starts_with(store::relationship::PRACTICE_PREFIX);
    let p = b.arg(SqlValue::Text(patient_id.to_owned()));
    relationships_where(b, &p, org, user, practice)
}

fn relationships_where(
    b: &mut Builder,
    p: &str,
    org: Option<&str>,
    user: Option<&str>,
    practice: bool,
) -> String {
    let mut any = Vec::new();
    if practice {
        // A practice's own rows (its sharing rules), all of them.
        any.push("1 = 1".to_owned());
    }
    if let Some(org) = org {
        let o = b.text(org);
        any.push(format!("r.org = {o}"));
    }
    // GP registrations and markers, whichever organisation asks. Written
    // as equalities, not `IN (…)`: SQLite builds a temporary b-tree for
    // an `IN` list it tests rows against, on every execution.
    for kind in store::relationship::ANY_ORG_KINDS {
        let k = b.text(kind);
        any.push(format!("r.kind = {k}"));
    }
    if let Some(user) = user {
        let u = b.text(user);
        any.push(format!("r.user_sub = {u}"));
    }
    // No ORDER BY or LIMIT: a sort with a limit is another temporary
    // b-tree in SQLite. [`finish_relationships`] orders and cuts.
    format!(
        "SELECT {RELATIONSHIP_COLUMNS} FROM relationship r WHERE r.patient_id = {p} AND ({})",
        or(any)
    )
}

/// Orders and cuts what the two relationship queries returned, as
/// `store::Store::relationships` documents: the patient's rows active
/// first, open-ended first, latest end first, then by source, kind and
/// organisation (the rest breaking ties, so the order is total); the
/// practice rules by kind, organisation and detail; each part at most
/// [`store::relationship::MAX_ROWS`]. Done here rather than in SQL, where
/// each sort cost SQLite a temporary b-tree per read.
pub fn finish_relationships(
    mut rows: Vec<store::RelationshipRow>,
    mut rules: Vec<store::RelationshipRow>,
) -> Vec<store::RelationshipRow> {
    // Compared in place, nothing copied: this runs on every staff read.
    rows.sort_by(|a, b| {
        (b.active, b.end.is_none(), b.end)
            .cmp(&(a.active, a.end.is_none(), a.end))
            .then_with(|| {
                (&a.src_type, &a.src_id, &a.kind, &a.org).cmp(&(
                    &b.src_type,
                    &b.src_id,
                    &b.kind,
                    &b.org,
                ))
            })
            .then_with(|| (&a.user, a.start, &a.detail).cmp(&(&b.user, b.start, &b.detail)))
    });
    rules.sort_by(|a, b| {
        (&a.kind, &a.org, &a.detail, &a.src_type, &a.src_id).cmp(&(
            &b.kind,
            &b.org,
            &b.detail,
            &b.src_type,
            &b.src_id,
        ))
    });
    rows.truncate(store::relationship::MAX_ROWS);
    rules.truncate(store::relationship::MAX_ROWS);
    rows.extend(rules);
    rows
}

/// `store::Store::relationships`, second part: the sharing rules of the
/// practices patient `patient_id` has an active GP registration with
/// (rows under [`store::relationship::PRACTICE_PREFIX`] + practice) that
/// name `org` or `*`, ordered by `(kind, org, detail)`, at most
/// [`store::relationship::MAX_ROWS`].
pub fn practice_rules_query(b: &mut Builder, patient_id: &str, org: &str) -> String {
    let p = b.arg(SqlValue::Text(patient_id.to_owned()));
    practice_rules_where(b, &p, org)
}

fn practice_rules_where(b: &mut Builder, p: &str, org: &str) -> String {
    use store::relationship as rel;
    let key = practice_key(b, "g.org");
    let gp = b.text(rel::GP_REGISTRATION);
    let g_active = b.is_true("g.active");
    let o = b.text(org);
    let star = b.text(rel::EVERY_ORGANISATION);
    // A join and equalities rather than `IN (SELECT …)`, `IN (…)` and
    // ORDER BY … LIMIT: each of those is a temporary b-tree per execution
    // in SQLite. [`finish_relationships`] orders and cuts. SQLite would
    // turn the two `org` equalities back into an `IN` over the `(org,
    // patient_id)` index; the unary `+` keeps it on the practice's rows.
    let org_col = match b.dialect {
        Dialect::Sqlite => "+r.org",
        Dialect::Postgres => "r.org",
    };
    format!(
        "SELECT {RELATIONSHIP_COLUMNS} FROM relationship g JOIN relationship r ON r.patient_id = {key} \
         WHERE g.patient_id = {p} AND g.kind = {gp} AND {g_active} AND ({org_col} = {o} OR {org_col} = {star})"
    )
}

/// Deletes every relationship row of one source (the `(src_type, src_id)`
/// index), returning the `patient_id` of each row deleted: the caller bumps
/// their versions ([`relationship_version_bump`]).
pub fn relationship_delete(b: &mut Builder, src_type: &str, src_id: &str) -> String {
    let t = b.arg(SqlValue::Text(src_type.to_owned()));
    let i = b.arg(SqlValue::Text(src_id.to_owned()));
    format!("DELETE FROM relationship WHERE src_type = {t} AND src_id = {i} RETURNING patient_id")
}

/// Bumps the relationship version `key` (a
/// [`store::relationship_cache::version_key`]) by one, creating it at 1.
pub fn relationship_version_bump(b: &mut Builder, key: &str) -> String {
    let k = b.arg(SqlValue::Text(key.to_owned()));
    format!(
        "INSERT INTO relationship_version (patient_id, version) VALUES ({k}, 1) \
         ON CONFLICT (patient_id) DO UPDATE SET version = relationship_version.version + 1"
    )
}

/// The two columns of [`store::relationship_cache::Versions`] for the
/// patient whose id is the SQL expression `patient` (a placeholder, or a
/// column of an outer query; never a client's text):
/// the patient's version, then the rules version, 0 where never bumped.
/// Two primary-key probes. Their aliases (`rv`, `rr`) are their own: the
/// reads nest this beside `resource_version v`.
pub fn versions_of_patient_expr(b: &mut Builder, patient: &str) -> String {
    let rules = b.arg(SqlValue::Text(
        store::relationship_cache::RULES_VERSION_KEY.to_owned(),
    ));
    format!(
        "COALESCE((SELECT rv.version FROM relationship_version rv WHERE rv.patient_id = {patient}), 0), \
         COALESCE((SELECT rr.version FROM relationship_version rr WHERE rr.patient_id = {rules}), 0)"
    )
}

/// `SELECT` [`versions_of_patient_expr`] for patient `patient_id`.
pub fn versions_query(b: &mut Builder, patient_id: &str) -> String {
    let p = b.arg(SqlValue::Text(patient_id.to_owned()));
    format!("SELECT {}", versions_of_patient_expr(b, &p))
}

/// The version keys to bump after [`relationship_delete`] returned the
/// patients in `deleted` and `inserted` rows went in under `patient`:
/// each affected key once, in order.
pub fn versions_to_bump<'a>(
    deleted: &'a [String],
    patient: Option<&'a str>,
    inserted: usize,
) -> Vec<&'a str> {
    let mut keys: Vec<&str> = deleted
        .iter()
        .map(|p| store::relationship_cache::version_key(p))
        .collect();
    if let Some(p) = patient.filter(|_| inserted > 0) {
        keys.push(store::relationship_cache::version_key(p));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Relationship rows per INSERT: ten binds each, well under either
/// backend's bind limit.
pub const RELATIONSHIP_ROWS_PER_INSERT: usize = 200;

/// One multi-row INSERT of `rows` (at most [`RELATIONSHIP_ROWS_PER_INSERT`])
/// under `patient_id`. `org` is cut like indexed text (it is indexed).
pub fn relationship_insert(b: &mut Builder, patient_id: &str, rows: &[RelationshipRow]) -> String {
    let text = |v: &Option<String>| v.clone().map_or(SqlValue::Null, SqlValue::Text);
    let int = |v: Option<Micros>| v.map_or(SqlValue::NullInt, SqlValue::Int);
    let values: Vec<String> = rows
        .iter()
        .map(|r| {
            let vals = [
                b.arg(SqlValue::Text(patient_id.to_owned())),
                b.text(&r.org),
                b.arg(SqlValue::Text(r.kind.clone())),
                b.arg(text(&r.user)),
                b.arg(SqlValue::Bool(r.active)),
                b.arg(int(r.start)),
                b.arg(int(r.end)),
                b.arg(SqlValue::Text(r.src_type.clone())),
                b.arg(SqlValue::Text(r.src_id.clone())),
                b.arg(text(&r.detail)),
            ];
            format!("({})", vals.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO relationship (patient_id, org, kind, user_sub, active, start_at, end_at, src_type, src_id, detail) VALUES {}",
        values.join(", ")
    )
}

fn composite_cond(b: &mut Builder, t: &str, v: &CompositeFilter) -> String {
    let first = token_cond(b, t, "system", "code", &v.token);
    let second = match &v.second {
        CompositeSecond::Token(tv) => token_cond(b, t, "s_system", "s_code", tv),
        CompositeSecond::Quantity(q) => {
            quantity_cond(b, t, ("s_system", "s_code", None, "s_low_n", "s_high_n"), q)
        }
        CompositeSecond::Date(d) => {
            date_value(b, &format!("{t}.s_low_d"), &format!("{t}.s_high_d"), d)
        }
        CompositeSecond::String(s) => {
            let p = b.text(&format!("{}%", like_escape(s)));
            format!("{t}.s_str LIKE {p} ESCAPE '\\'")
        }
    };
    format!("({first} AND {second})")
}

/// Sort expressions (one per key) over `alias`, each never NULL: a missing
/// value sorts last in either direction (a sentinel past every real value).
pub fn sort_exprs(b: &mut Builder, alias: &str, keys: &[SortKey]) -> Vec<(String, bool)> {
    keys.iter()
        .map(|k| match k {
            SortKey::Id { descending } => (format!("{alias}.id{}", b.collate()), *descending),
            SortKey::LastUpdated { descending } => (format!("{alias}.last_updated"), *descending),
            SortKey::Param { param, kind, descending } => {
                let (col, sentinel_hi, sentinel_lo) = match kind {
                    IndexKind::String => ("normalized", "'\u{10FFFF}'", "''"),
                    IndexKind::Token => ("code", "'\u{10FFFF}'", "''"),
                    IndexKind::Reference => ("target_id", "'\u{10FFFF}'", "''"),
                    IndexKind::Uri => ("value", "'\u{10FFFF}'", "''"),
                    // Ascending by the earliest instant, descending by the latest.
                    IndexKind::Date if *descending => ("high", "9223372036854775807", "-9223372036854775808"),
                    IndexKind::Date => ("low", "9223372036854775807", "-9223372036854775808"),
                    IndexKind::Number | IndexKind::Quantity => ("value", "1e308", "-1e308"),
                    IndexKind::Composite => ("code", "'\u{10FFFF}'", "''"),
                };
                let t = b.fresh("s");
                let p = b.text(param);
                let agg = if *descending { "MAX" } else { "MIN" };
                let sentinel = if *descending { sentinel_lo } else { sentinel_hi };
                let collate = if matches!(kind, IndexKind::Date | IndexKind::Number | IndexKind::Quantity) { "" } else { b.collate() };
                (
                    format!(
                        "COALESCE((SELECT {agg}({t}.{col}) FROM {} {t} WHERE {t}.rtype = {alias}.rtype AND {t}.id = {alias}.id AND {t}.param = {p}), {sentinel}){collate}",
                        table(*kind)
                    ),
                    *descending,
                )
            }
        })
        .collect()
}

/// `ORDER BY` text for the sort expressions, with the id as the final tie-break.
/// With `backward`, every direction is reversed (for a `previous` page,
/// read from its far end).
pub fn order_by(b: &Builder, alias: &str, exprs: &[(String, bool)], backward: bool) -> String {
    let dir = |desc: bool| if desc != backward { "DESC" } else { "ASC" };
    let mut parts: Vec<String> = exprs
        .iter()
        .map(|(e, desc)| format!("{e} {}", dir(*desc)))
        .collect();
    parts.push(format!("{alias}.id{} {}", b.collate(), dir(false)));
    parts.join(", ")
}

/// Keyset condition: rows strictly after the cursor `(values…, id)` in the
/// order given by `exprs` (before it, with `backward`).
pub fn after_cursor(
    b: &mut Builder,
    alias: &str,
    exprs: &[(String, bool)],
    values: &[SortValue],
    last_id: &str,
    backward: bool,
) -> String {
    // (e1 > v1) OR (e1 = v1 AND ((e2 > v2) OR (e2 = v2 AND … id > last)))
    let id_expr = format!("{alias}.id{}", b.collate());
    let id_arg = b.text(last_id);
    let mut cond = format!("{id_expr} {} {id_arg}", if backward { "<" } else { ">" });
    for ((expr, desc), v) in exprs.iter().zip(values).rev() {
        let val = match v {
            SortValue::Text(s) => SqlValue::Text(s.clone()),
            SortValue::Int(i) => SqlValue::Int(*i),
            SortValue::Real(r) => SqlValue::Real(*r),
        };
        let p1 = b.arg(val.clone());
        let p2 = b.arg(val);
        let op = if *desc != backward { "<" } else { ">" };
        cond = format!("({expr} {op} {p1} OR ({expr} = {p2} AND {cond}))");
    }
    cond
}

/// The WHERE conditions (after the patient) of a compartment page over
/// `resource_current c`.
pub fn compartment_conditions(b: &mut Builder, q: &store::CompartmentQuery) -> String {
    let mut parts = Vec::new();
    let p = b.arg(SqlValue::Text(q.patient_id.clone()));
    parts.push(format!("c.patient_id = {p}"));
    parts.push(b.not_deleted("c"));
    if let Some(types) = &q.types {
        let ps: Vec<String> = types
            .iter()
            .map(|t| b.arg(SqlValue::Text(t.clone())))
            .collect();
        parts.push(if ps.is_empty() {
            "1 = 0".to_owned()
        } else {
            format!("c.rtype IN ({})", ps.join(", "))
        });
    }
    if let Some(since) = q.since {
        let p = b.arg(SqlValue::Int(since));
        parts.push(format!("c.last_updated >= {p}"));
    }
    if q.start.is_some() || q.end.is_some() {
        let lo = b.arg(SqlValue::Int(q.start.unwrap_or(i64::MIN)));
        let hi = b.arg(SqlValue::Int(q.end.unwrap_or(i64::MAX)));
        parts.push(format!(
            "(NOT EXISTS (SELECT 1 FROM idx_date d WHERE d.rtype = c.rtype AND d.id = c.id) \
             OR EXISTS (SELECT 1 FROM idx_date d WHERE d.rtype = c.rtype AND d.id = c.id AND d.low <= {hi} AND d.high >= {lo}))"
        ));
    }
    if let Some((t, i)) = &q.after {
        let collate = b.collate();
        let pt = b.arg(SqlValue::Text(t.clone()));
        let pt2 = b.arg(SqlValue::Text(t.clone()));
        let pi = b.arg(SqlValue::Text(i.clone()));
        parts.push(format!(
            "(c.rtype{collate} > {pt} OR (c.rtype = {pt2} AND c.id{collate} > {pi}))"
        ));
    }
    parts.join(" AND ")
}

/// `(type = ? AND id IN (…)) OR …` over the columns named, grouped by
/// type: each group is one range of a (type, id) index, whatever the
/// planner's statistics say.
pub fn keys(b: &mut Builder, keys: &[store::Key], type_col: &str, id_col: &str) -> String {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (t, i) in keys {
        match groups.iter_mut().find(|(gt, _)| *gt == t.as_str()) {
            Some((_, ids)) => ids.push(i),
            None => groups.push((t, vec![i])),
        }
    }
    let parts: Vec<String> = groups
        .into_iter()
        .map(|(t, ids)| {
            let pt = b.arg(SqlValue::Text(t.to_owned()));
            let ps: Vec<String> = ids
                .into_iter()
                .map(|i| b.arg(SqlValue::Text(i.to_owned())))
                .collect();
            format!("({type_col} = {pt} AND {id_col} IN ({}))", ps.join(", "))
        })
        .collect();
    if parts.is_empty() {
        "1 = 0".to_owned()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_shapes() {
        let mut b = Builder::new(Dialect::Postgres);
        let sql = filters(
            &mut b,
            "c",
            "Observation",
            &[
                Filter::Token {
                    param: "code".into(),
                    not: false,
                    any_of: vec![TokenValue {
                        system: Some("http://loinc.org".into()),
                        code: Some("8867-4".into()),
                    }],
                },
                Filter::Date {
                    param: "date".into(),
                    any_of: vec![RangeValue {
                        prefix: Prefix::Ge,
                        low: 10,
                        high: 20,
                    }],
                },
            ],
        );
        assert!(
            sql.contains("idx_token t1") && sql.contains("$1") && sql.contains("idx_date t2"),
            "{sql}"
        );
        assert_eq!(b.args.len(), 9);
        assert_eq!(like_escape("50%_a\\"), "50\\%\\_a\\\\");
    }

    #[test]
    fn string_prefix_args() {
        let mut b = Builder::new(Dialect::Sqlite);
        let sql = filters(
            &mut b,
            "c",
            "Observation",
            &[Filter::String {
                param: "name".into(),
                mode: StringMatch::Prefix,
                any_of: vec!["smi".into()],
            }],
        );
        // rtype, param, and the two ends of the prefix range.
        assert_eq!(b.args.len(), 4, "{sql}");
        assert!(
            sql.contains("normalized >= ?3 AND t1.normalized < ?4"),
            "{sql}"
        );
    }

    #[test]
    fn related_is_a_semi_join_on_patients_only() {
        let related = Filter::Related {
            org: "A".into(),
            user: None,
            now: 10,
            recent_since: 5,
            org_type: None,
            local: true,
        };
        let mut b = Builder::new(Dialect::Postgres);
        let sql = filters(&mut b, "c", "Patient", std::slice::from_ref(&related));
        assert!(
            sql.starts_with("(c.id IN (SELECT r1.patient_id FROM relationship r1 WHERE r1.org = $1 AND (r1.user_sub IS NULL AND r1.kind <> $2)"),
            "{sql}"
        );
        // Only access kinds count; dissent and the practice's rules apply.
        assert!(sql.contains("r1.kind IN ("), "{sql}");
        assert!(
            sql.contains("NOT EXISTS (SELECT 1 FROM relationship d2"),
            "{sql}"
        );
        assert!(
            sql.contains("JOIN relationship s4 ON s4.patient_id = (CAST("),
            "{sql}"
        );
        let mut b = Builder::new(Dialect::Sqlite);
        let sql = filters(&mut b, "c", "Observation", &[related]);
        assert_eq!(sql, "(1 = 0)");
        assert!(b.args.is_empty());
    }

    #[test]
    fn conditions_beside_a_compartment_are_correlated_probes() {
        let date = Filter::Date {
            param: "date".into(),
            any_of: vec![RangeValue {
                prefix: Prefix::Ge,
                low: 5,
                high: 5,
            }],
        };
        let mut b = Builder::new(Dialect::Sqlite);
        let sql = filters(
            &mut b,
            "c",
            "Encounter",
            &[Filter::Compartment("p1".into()), date.clone()],
        );
        assert!(
            sql.contains(
                "EXISTS (SELECT 1 FROM idx_date t1 INDEXED BY idx_date_owner WHERE t1.rtype = ?2 AND t1.id = c.id"
            ),
            "{sql}"
        );
        // Without rows to drive from, the index drives.
        let mut b = Builder::new(Dialect::Sqlite);
        let sql = filters(&mut b, "c", "Encounter", &[date]);
        assert!(
            sql.starts_with("(c.id IN (SELECT t1.id FROM idx_date"),
            "{sql}"
        );
    }

    #[test]
    fn a_selective_condition_drives_and_the_relationship_is_probed() {
        let related = Filter::Related {
            org: "A1".into(),
            user: None,
            now: 1,
            recent_since: 0,
            org_type: None,
            local: false,
        };
        let token = |param: &str| Filter::Token {
            param: param.into(),
            not: false,
            any_of: vec![TokenValue {
                system: None,
                code: Some("x".into()),
            }],
        };
        let mut b = Builder::new(Dialect::Sqlite);
        let sql = filters(
            &mut b,
            "c",
            "Patient",
            &[related.clone(), token("identifier")],
        );
        assert!(
            sql.starts_with(
                "(EXISTS (SELECT 1 FROM relationship r1 WHERE r1.patient_id = c.id AND"
            ),
            "{sql}"
        );
        assert!(sql.contains("c.id IN (SELECT t"), "{sql}");
        // A gender names half of everyone: the practice's list drives.
        let mut b = Builder::new(Dialect::Sqlite);
        let sql = filters(&mut b, "c", "Patient", &[related, token("gender")]);
        assert!(sql.starts_with("(c.id IN (SELECT r1.patient_id"), "{sql}");
    }

    #[test]
    fn a_chain_beside_a_compartment_follows_the_rows_own_references() {
        let chain = Filter::Chain {
            param: "subject".into(),
            target_type: "Patient".into(),
            filters: vec![Filter::String {
                param: "name".into(),
                mode: StringMatch::Prefix,
                any_of: vec!["smith".into()],
            }],
        };
        let mut b = Builder::new(Dialect::Sqlite);
        let sql = filters(
            &mut b,
            "c",
            "Condition",
            &[Filter::Compartment("p1".into()), chain.clone()],
        );
        assert!(
            sql.contains("EXISTS (SELECT 1 FROM idx_reference r1 INDEXED BY idx_reference_owner WHERE r1.rtype = ?2 AND r1.id = c.id"),
            "{sql}"
        );
        // The target's own name rows, probed.
        assert!(
            sql.contains("FROM idx_string t3 INDEXED BY idx_string_owner WHERE t3.rtype = ?"),
            "{sql}"
        );
        assert!(!sql.contains(" IN (SELECT"), "{sql}");
        // Without a compartment the matching targets drive.
        let mut b = Builder::new(Dialect::Sqlite);
        let sql = filters(&mut b, "c", "Condition", &[chain]);
        assert!(
            sql.starts_with("(c.id IN (SELECT r1.id FROM idx_reference r1"),
            "{sql}"
        );
    }

    #[test]
    fn relationship_rows_come_active_open_ended_and_latest_first() {
        let row = |src: &str, active: bool, end: Option<Micros>| RelationshipRow {
            org: "A1".into(),
            kind: "encounter".into(),
            user: None,
            active,
            start: None,
            end,
            src_type: "Encounter".into(),
            src_id: src.into(),
            detail: None,
        };
        let rows = vec![
            row("old", false, Some(1)),
            row("ends-late", true, Some(9)),
            row("open-b", true, None),
            row("ends-early", true, Some(5)),
            row("open-a", true, None),
        ];
        let done = finish_relationships(rows, vec![]);
        let order: Vec<&str> = done.iter().map(|r| r.src_id.as_str()).collect();
        assert_eq!(
            order,
            ["open-a", "open-b", "ends-late", "ends-early", "old"]
        );
    }

    #[test]
    fn empty_or_matches_nothing() {
        let mut b = Builder::new(Dialect::Sqlite);
        let sql = filters(&mut b, "c", "Patient", &[Filter::Id(vec![])]);
        assert_eq!(sql, "(1 = 0)");
    }
}
