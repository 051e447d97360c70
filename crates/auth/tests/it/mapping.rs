//! Claim mappings: reading them from TOML, and applying them (CIS2 too).

use std::collections::BTreeMap;

use auth::{ClaimMapping, TrustedIssuer, Verifier};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::support::{AUDIENCE, NOW, RS256_JWKS, json, refused, rs256_key, sign, verifier_for};

const IDP: &str =
    "https://am.nhsidentity.spineservices.nhs.uk/openam/oauth2/realms/root/realms/oidc";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mapping: ClaimMapping,
}

fn parse(toml_text: &str) -> Result<ClaimMapping, toml::de::Error> {
    toml::from_str::<Config>(toml_text).map(|c| c.mapping)
}

#[test]
fn mappings_read_from_toml() {
    assert_eq!(
        parse(r#"mapping = { kind = "direct" }"#).unwrap(),
        ClaimMapping::Direct
    );
    assert_eq!(ClaimMapping::default(), ClaimMapping::Direct);
    assert_eq!(
        parse("[mapping]\nkind = \"cis2\"\n[mapping.role_map]\nR8000 = \"gp\"\n").unwrap(),
        ClaimMapping::Cis2 {
            role_map: BTreeMap::from([("R8000".to_owned(), "gp".to_owned())]),
        }
    );
    assert_eq!(
        parse(r#"mapping = { kind = "claims", role = "roles", org = "ods" }"#).unwrap(),
        ClaimMapping::Claims {
            role: "roles".to_owned(),
            name: None,
            org: Some("ods".to_owned()),
            registration: None,
            patient: None,
            related_person: None,
            scope: None,
            client_id: None,
        }
    );
    // Unknown fields and kinds are refused, as is a `claims` mapping without a role.
    assert!(parse(r#"mapping = { kind = "direct", role = "x" }"#).is_err());
    assert!(parse(r#"mapping = { kind = "claims", role = "r", colour = "x" }"#).is_err());
    assert!(parse(r#"mapping = { kind = "cis2", role_map = {}, extra = 1 }"#).is_err());
    assert!(parse(r#"mapping = { kind = "saml" }"#).is_err());
    assert!(parse(r#"mapping = { kind = "claims" }"#).is_err());
}

fn external(mapping: ClaimMapping) -> Verifier {
    verifier_for(vec![TrustedIssuer {
        issuer: IDP.to_owned(),
        keys: json(RS256_JWKS),
        mapping,
    }])
}

fn token(claims: &Value) -> String {
    sign(Algorithm::RS256, Some("rs256-test"), claims, &rs256_key())
}

#[test]
fn named_claims_are_read() {
    let v = external(
        parse(
            r#"mapping = { kind = "claims", role = "https://idp/role", name = "preferred_username",
               org = "ods", scope = "scp", client_id = "azp" }"#,
        )
        .unwrap(),
    );
    let claims = json!({
        "iss": IDP, "aud": AUDIENCE, "sub": "abc", "exp": NOW + 60,
        "https://idp/role": "care-worker",
        "preferred_username": "Sam Carer",
        "ods": "VNE1A",
        "registration": "NMC:99A9999A",
        "scp": ["user/Observation.read", "openid"],
        "azp": "care-app",
        "role": "gp",
        "org": "ignored",
    });
    let identity = v.verify(&token(&claims), NOW).unwrap();
    assert_eq!(identity.role, "care-worker");
    assert_eq!(identity.name, "Sam Carer");
    assert_eq!(identity.org.as_deref(), Some("VNE1A"));
    // Not renamed: read from the claim of the same name.
    assert_eq!(identity.registration.as_deref(), Some("NMC:99A9999A"));
    assert_eq!(identity.scopes, ["user/Observation.read", "openid"]);
    assert_eq!(identity.client_id.as_deref(), Some("care-app"));
    assert_eq!(identity.token_id, None);

    let mut no_role = claims.clone();
    no_role.as_object_mut().unwrap().remove("https://idp/role");
    refused(&v, &token(&no_role), NOW, "missing_claim");
    let mut wrong_type = claims;
    wrong_type["https://idp/role"] = json!(["a", "b"]);
    refused(&v, &token(&wrong_type), NOW, "malformed");
}

/// A CIS2 id token for a user with two roles, the second one selected.
fn cis2_claims() -> Value {
    json!({
        "iss": IDP,
        "aud": AUDIENCE,
        "sub": "910000000001",
        "exp": NOW + 600,
        "iat": NOW,
        "jti": "cis2-1",
        "name": "Sarah Practitioner",
        "uid": "555021935107",
        "scope": "openid profile nationalrbacaccess selectedrole",
        "nhsid_nrbac_roles": [
            {
                "person_orgid": "555254239107",
                "person_roleid": "555254240100",
                "org_code": "RR8",
                "role_name": "\"Clinical\":\"Clinical Provision\":\"Nurse Access Role\"",
                "role_code": "S8000:G8000:R8001",
                "activity_codes": ["B0068"]
            },
            {
                "person_orgid": "555254239108",
                "person_roleid": "555254242102",
                "org_code": "A81001",
                "role_name": "\"Clinical\":\"Clinical Provision\":\"Clinical Practitioner Access Role\"",
                "role_code": "S8000:G8000:R8000",
                "activities": ["Amend Patient Demographics"],
                "activity_codes": ["B0825", "B0264"]
            }
        ],
        "selected_roleid": "555254242102"
    })
}

fn cis2(role_map: &[(&str, &str)]) -> Verifier {
    external(ClaimMapping::Cis2 {
        role_map: role_map
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

#[test]
fn cis2_uses_the_selected_role() {
    let v = cis2(&[("R8000", "gp"), ("R8001", "care-worker")]);
    let identity = v.verify(&token(&cis2_claims()), NOW).unwrap();
    assert_eq!(identity.issuer, IDP);
    assert_eq!(identity.subject, "910000000001");
    assert_eq!(identity.name, "Sarah Practitioner");
    assert_eq!(identity.role, "gp");
    assert_eq!(identity.org.as_deref(), Some("A81001"));
    assert_eq!(identity.registration.as_deref(), Some("555021935107"));
    assert_eq!(identity.activities, ["B0825", "B0264"]);
    assert_eq!(identity.token_id.as_deref(), Some("cis2-1"));
    assert_eq!(identity.scopes.len(), 4);

    let mut first = cis2_claims();
    first["selected_roleid"] = json!("555254240100");
    let identity = v.verify(&token(&first), NOW).unwrap();
    assert_eq!(identity.role, "care-worker");
    assert_eq!(identity.org.as_deref(), Some("RR8"));
    assert_eq!(identity.activities, ["B0068"]);
}

#[test]
fn cis2_falls_back_to_the_whole_role_code() {
    let v = cis2(&[("S8000:G8000:R8000", "gp")]);
    assert_eq!(v.verify(&token(&cis2_claims()), NOW).unwrap().role, "gp");
    // The job-role code wins over the whole code.
    let v = cis2(&[("S8000:G8000:R8000", "gp"), ("R8000", "care-worker")]);
    assert_eq!(
        v.verify(&token(&cis2_claims()), NOW).unwrap().role,
        "care-worker"
    );
}

#[test]
fn cis2_refuses_unmapped_or_unselected_roles() {
    let v = cis2(&[("R8000", "gp")]);

    let mut no_selection = cis2_claims();
    no_selection
        .as_object_mut()
        .unwrap()
        .remove("selected_roleid");
    let err = refused(&v, &token(&no_selection), NOW, "missing_claim");
    assert!(err.to_string().contains("selected_roleid"));

    let mut unknown = cis2_claims();
    unknown["selected_roleid"] = json!("999");
    refused(&v, &token(&unknown), NOW, "missing_claim");

    let mut no_roles = cis2_claims();
    no_roles
        .as_object_mut()
        .unwrap()
        .remove("nhsid_nrbac_roles");
    refused(&v, &token(&no_roles), NOW, "missing_claim");

    let mut nurse = cis2_claims();
    nurse["selected_roleid"] = json!("555254240100");
    refused(&v, &token(&nurse), NOW, "unmapped_role");

    let mut bad_activities = cis2_claims();
    bad_activities["nhsid_nrbac_roles"][1]["activity_codes"] = json!("B0825");
    refused(&v, &token(&bad_activities), NOW, "malformed");
}
