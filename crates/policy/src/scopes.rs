//! SMART on FHIR scopes (v2 `patient/*.rs`, `user/Observation.cruds`,
//! `system/*.*`; v1 `.read`/`.write`/`.*` are read as their v2 meaning).
//! Scopes only narrow: a scope never grants what the role does not.

/// What an interaction needs from a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Permission {
    fn letter(self) -> char {
        match self {
            Permission::Create => 'c',
            Permission::Read => 'r',
            Permission::Update => 'u',
            Permission::Delete => 'd',
            Permission::Search => 's',
        }
    }
}

/// Which launch context a scope belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Patient,
    User,
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub context: Context,
    /// `None` for `*`.
    pub rtype: Option<String>,
    /// The letters among `cruds`.
    pub perms: String,
}

/// The resource scopes in a space-separated scope string; others (`openid`,
/// `launch/patient`, `fhirUser`…) are not resource scopes and are skipped,
/// as are malformed ones.
pub fn parse(scope: &str) -> Vec<Scope> {
    scope.split_whitespace().filter_map(parse_one).collect()
}

fn parse_one(s: &str) -> Option<Scope> {
    let (ctx, rest) = s.split_once('/')?;
    let context = match ctx {
        "patient" => Context::Patient,
        "user" => Context::User,
        "system" => Context::System,
        _ => return None,
    };
    let (rtype, perms) = rest.split_once('.')?;
    // v2 allows `?param=value` constraints; we do not honour them, so such a
    // scope grants nothing rather than more than it says.
    if perms.contains('?') {
        return None;
    }
    let perms = match perms {
        "read" => "rs".to_owned(),
        "write" => "cud".to_owned(),
        "*" => "cruds".to_owned(),
        p if !p.is_empty() && p.chars().all(|c| "cruds".contains(c)) => p.to_owned(),
        _ => return None,
    };
    if rtype != "*" && !rtype.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some(Scope {
        context,
        rtype: (rtype != "*").then(|| rtype.to_owned()),
        perms,
    })
}

/// Does any scope of `context` grant `perm` on `rtype`?
pub fn grants(scopes: &[Scope], context: Context, rtype: &str, perm: Permission) -> bool {
    scopes.iter().any(|s| {
        s.context == context
            && s.rtype.as_deref().is_none_or(|t| t == rtype)
            && s.perms.contains(perm.letter())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_and_v1() {
        let s = parse(
            "openid patient/*.rs user/Observation.cruds system/*.* launch/patient bad/x.r user/X.zz",
        );
        assert_eq!(s.len(), 3);
        assert!(grants(&s, Context::Patient, "Condition", Permission::Read));
        assert!(!grants(
            &s,
            Context::Patient,
            "Condition",
            Permission::Create
        ));
        assert!(grants(&s, Context::User, "Observation", Permission::Delete));
        assert!(!grants(&s, Context::User, "Condition", Permission::Read));
        assert!(grants(&s, Context::System, "Condition", Permission::Create));
        let s = parse("user/Patient.read");
        assert!(grants(&s, Context::User, "Patient", Permission::Search));
        assert!(parse("user/Observation.rs?category=vital-signs").is_empty());
    }
}
