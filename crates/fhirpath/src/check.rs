//! Static checking of a compiled expression against the FHIR model.
//!
//! [`check`] infers, as far as the model allows, the FHIR types flowing
//! through a path and reports navigation to elements that cannot exist
//! (`Patient.name.given1`, `(Observation.value as Period).unit`,
//! `Observation.valueQuantity`), plus the use of order-dependent functions
//! (`first()`, `skip()`, …) directly on the unordered results of
//! `children()`/`descendants()`.
//!
//! The inference is deliberately conservative: as soon as a type is not
//! known (system values, `resolve()`, abstract `Resource` elements, most
//! functions) checking of that branch stops rather than guessing, so `check`
//! never rejects an expression that could produce values. A leading type
//! name that does not match the context (`CarePlan.subject` checked against
//! `Patient`) is not an error: such a branch is simply empty, which the
//! multi-resource R4 SearchParameter expressions rely on.

use crate::ast::{Expr, ExprKind, Func, TypeOpKind, TypeSpec};
use crate::error::{EvalError, EvalErrorKind};
use crate::model::{TypeId, TypeKind, model};

/// The statically known types of a collection.
#[derive(Clone, Debug)]
enum Types {
    /// Not known: stop checking.
    Unknown,
    /// Every item has one of these types (empty: the collection is empty).
    Known(Vec<TypeId>),
}

/// Checks `expr` for paths that cannot exist when evaluated on a resource
/// (or element) of type `context_type`.
pub fn check(expr: &Expr, context_type: &str) -> Result<(), EvalError> {
    let context = model().type_id(context_type).ok_or_else(|| {
        EvalError::new(
            EvalErrorKind::Semantic,
            format!("unknown type '{context_type}'"),
        )
    })?;
    let checker = Checker { context };
    checker.infer(expr, &Types::Known(vec![context]))?;
    Ok(())
}

struct Checker {
    context: TypeId,
}

fn semantic(message: String) -> EvalError {
    EvalError::new(EvalErrorKind::Semantic, message)
}

impl Checker {
    fn infer(&self, expr: &Expr, this: &Types) -> Result<Types, EvalError> {
        match &expr.kind {
            ExprKind::This => Ok(this.clone()),
            ExprKind::Variable(name) if name == "context" || name == "resource" => {
                Ok(Types::Known(vec![self.context]))
            }
            ExprKind::Empty => Ok(Types::Known(Vec::new())),
            ExprKind::Literal(_) | ExprKind::Index | ExprKind::Total | ExprKind::Variable(_) => {
                Ok(Types::Unknown)
            }
            ExprKind::Member { target, name } => {
                let input = self.input(target.as_deref(), this)?;
                member(&input, name)
            }
            ExprKind::Indexer { target, index } => {
                self.infer(index, this)?;
                self.infer(target, this)
            }
            ExprKind::Unary { operand, .. } => {
                self.infer(operand, this)?;
                Ok(Types::Unknown)
            }
            ExprKind::Binary { left, right, .. } => {
                self.infer(left, this)?;
                self.infer(right, this)?;
                Ok(Types::Unknown)
            }
            ExprKind::Union(items) => {
                let mut all = Vec::new();
                let mut known = true;
                for item in items {
                    match self.infer(item, this)? {
                        Types::Known(types) => all.extend(types),
                        Types::Unknown => known = false,
                    }
                }
                Ok(if known {
                    Types::Known(all)
                } else {
                    Types::Unknown
                })
            }
            ExprKind::TypeOp { operand, op, spec } => {
                self.input(operand.as_deref(), this)?;
                Ok(match (op, spec) {
                    (TypeOpKind::Is, _) => Types::Unknown,
                    (_, TypeSpec::Fhir(id) | TypeSpec::AnyQuantity(id)) => Types::Known(vec![*id]),
                    (_, TypeSpec::Nothing) => Types::Known(Vec::new()),
                    (_, TypeSpec::System(_)) => Types::Unknown,
                })
            }
            ExprKind::Call {
                target, func, args, ..
            } => {
                if matches!(
                    func,
                    Func::First | Func::Last | Func::Tail | Func::Skip | Func::Take
                ) && let Some(ExprKind::Call {
                    func: Func::Children | Func::Descendants,
                    ..
                }) = target.as_deref().map(|t| &t.kind)
                {
                    return Err(semantic(format!(
                        "{func:?} depends on order, but children()/descendants() are unordered"
                    )));
                }
                let input = self.input(target.as_deref(), this)?;
                match func {
                    Func::Where
                    | Func::Exists
                    | Func::All
                    | Func::Aggregate
                    | Func::Sort
                    | Func::Iif => {
                        for arg in args {
                            self.infer(arg, &input)?;
                        }
                        Ok(if matches!(func, Func::Where | Func::Sort) {
                            input
                        } else {
                            Types::Unknown
                        })
                    }
                    Func::Select => {
                        let mut result = Types::Unknown;
                        for arg in args {
                            result = self.infer(arg, &input)?;
                        }
                        Ok(result)
                    }
                    Func::Repeat => {
                        for arg in args {
                            self.infer(arg, &input)?;
                        }
                        Ok(Types::Unknown)
                    }
                    Func::First
                    | Func::Last
                    | Func::Tail
                    | Func::Skip
                    | Func::Take
                    | Func::Single
                    | Func::Distinct
                    | Func::Intersect
                    | Func::Exclude => {
                        for arg in args {
                            self.infer(arg, this)?;
                        }
                        Ok(input)
                    }
                    Func::Trace => {
                        // trace(name, projection): the projection sees each item.
                        for (i, arg) in args.iter().enumerate() {
                            self.infer(arg, if i == 0 { this } else { &input })?;
                        }
                        Ok(input)
                    }
                    Func::Extension => {
                        for arg in args {
                            self.infer(arg, this)?;
                        }
                        Ok(model()
                            .type_id("Extension")
                            .map_or(Types::Unknown, |t| Types::Known(vec![t])))
                    }
                    _ => {
                        for arg in args {
                            self.infer(arg, this)?;
                        }
                        Ok(Types::Unknown)
                    }
                }
            }
        }
    }

    fn input(&self, target: Option<&Expr>, this: &Types) -> Result<Types, EvalError> {
        match target {
            Some(t) => self.infer(t, this),
            None => Ok(this.clone()),
        }
    }
}

/// The types of `input.name`, or an error if no input type has `name`.
fn member(input: &Types, name: &str) -> Result<Types, EvalError> {
    let m = model();
    let Types::Known(types) = input else {
        return Ok(Types::Unknown);
    };
    if types.is_empty() {
        return Ok(Types::Known(Vec::new()));
    }
    if name.chars().next().is_some_and(char::is_uppercase)
        && let Some(wanted) = m.type_id(name)
    {
        let matching: Vec<TypeId> = types
            .iter()
            .copied()
            .filter(|t| m.is_subtype(*t, wanted))
            .collect();
        return Ok(Types::Known(matching));
    }
    let abstract_resource = |t: &TypeId| {
        let name = m.name(*t);
        m.kind(*t) == Some(TypeKind::Resource) && (name == "Resource" || name == "DomainResource")
    };
    if types.iter().any(abstract_resource) {
        return Ok(Types::Unknown);
    }
    let mut out: Vec<TypeId> = Vec::new();
    let mut found = false;
    for t in types {
        if let Some(element) = m.def(*t).and_then(|d| d.element(name)) {
            found = true;
            for ty in &element.types {
                if !out.contains(ty) {
                    out.push(*ty);
                }
            }
        }
    }
    if !found {
        let names: Vec<&str> = types.iter().map(|t| m.public_name(*t)).collect();
        return Err(semantic(format!(
            "'{name}' is not an element of {}",
            names.join(" | ")
        )));
    }
    Ok(Types::Known(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile;

    fn ok(expr: &str, ty: &str) -> bool {
        check(&compile(expr).unwrap(), ty).is_ok()
    }

    #[test]
    fn accepts_valid_paths() {
        assert!(ok("Patient.name.given", "Patient"));
        assert!(ok("Observation.value.unit", "Observation"));
        assert!(ok("(Observation.value as Quantity).unit", "Observation"));
        assert!(ok("CarePlan.subject | Patient.link.other", "Patient"));
        assert!(ok("Patient.telecom.where(system = 'email')", "Patient"));
        assert!(ok("Bundle.entry[0].resource.name", "Bundle"));
        assert!(ok("Patient.birthDate.extension('x').value", "Patient"));
        assert!(ok("Questionnaire.item.item.linkId", "Questionnaire"));
    }

    #[test]
    fn rejects_impossible_paths() {
        assert!(!ok("Patient.name.given1", "Patient"));
        assert!(!ok("(Observation.value as Period).unit", "Observation"));
        assert!(!ok("Observation.valueQuantity.unit", "Observation"));
        assert!(!ok("Patient.children().skip(1)", "Patient"));
        assert!(!ok("Patient.telecom.where(sytem = 'email')", "Patient"));
    }
}
