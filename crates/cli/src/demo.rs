//! `sharedcare demo`: a small synthetic integrated care system (the
//! `generate` crate's, ~1,000 people by default), loaded once into the
//! store through the ordinary write path (validation, indexing, policy as
//! a system client, audit), and a cast of people to look at it with.
//!
//! The cast is one person who lives in a care home and has a caregiver
//! with proxy access, and the staff around them: a GP and the data
//! controller of their practice, a care worker of their care home, and a
//! hospital clinician with no relationship to them. It is chosen from the
//! generated population and kept in the store's settings, so a repeat run
//! reuses the data (and the same cast) unless `--reset` is given.

use generate::ics::OrgKind;
use generate::{Date, Ics, Settings, User};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sharedcare_core::{Caller, Service};
use store::{Store, Tx};

/// The store setting that records a loaded demo and its cast.
const LOADED: &str = "demo";
/// People per transaction when loading.
const PEOPLE_PER_BUNDLE: usize = 50;

/// Who the demo's tokens are for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cast {
    pub people: u64,
    pub resources: u64,
    pub patient_id: String,
    pub patient_name: String,
    pub nhs_number: Option<String>,
    pub practice: String,
    pub care_home: String,
    pub related_person: String,
    pub gp: DemoUser,
    pub care_worker: DemoUser,
    pub data_controller: DemoUser,
    pub hospital: DemoUser,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoUser {
    pub sub: String,
    pub name: String,
    pub role: String,
    pub org: String,
    pub registration: Option<String>,
}

impl From<&User> for DemoUser {
    fn from(u: &User) -> DemoUser {
        DemoUser {
            sub: u.sub.clone(),
            name: u.name.clone(),
            role: u.role.clone(),
            org: u.org.clone().unwrap_or_default(),
            registration: u.registration.clone(),
        }
    }
}

/// What one generated person offers the demo.
struct Candidate {
    patient_id: String,
    patient_name: String,
    nhs_number: Option<String>,
    practice: String,
    care_home: String,
    related_person: String,
    conditions: usize,
    orgs_seen: Vec<String>,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// A care-home resident with a caregiver holding an active proxy consent.
fn candidate(ics: &Ics, resources: &[Value]) -> Option<Candidate> {
    fn of<'a>(resources: &'a [Value], t: &'a str) -> impl Iterator<Item = &'a Value> {
        resources
            .iter()
            .filter(move |r| str_at(r, "/resourceType") == Some(t))
    }
    let patient = of(resources, "Patient").next()?;
    let care_home = of(resources, "EpisodeOfCare")
        .filter(|e| str_at(e, "/status") == Some("active"))
        .filter_map(|e| str_at(e, "/managingOrganization/identifier/value"))
        .find(|ods| {
            ics.orgs
                .iter()
                .any(|o| o.ods == *ods && o.kind == OrgKind::CareHome)
        })?;
    let related_person = of(resources, "Consent")
        .filter(|c| str_at(c, "/status") == Some("active"))
        .filter(|c| policy::relationships::legal_basis(c).is_some())
        .filter_map(|c| str_at(c, "/provision/actor/0/reference/reference"))
        .find_map(|r| r.strip_prefix("RelatedPerson/"))?;
    let name = |p: &Value| -> String {
        let given = str_at(p, "/name/0/given/0").unwrap_or("");
        let family = str_at(p, "/name/0/family").unwrap_or("");
        format!("{given} {family}").trim().to_owned()
    };
    let mut orgs_seen: Vec<String> = resources
        .iter()
        .filter_map(|r| {
            str_at(r, "/serviceProvider/identifier/value")
                .or_else(|| str_at(r, "/managingOrganization/identifier/value"))
        })
        .map(str::to_owned)
        .collect();
    orgs_seen.sort();
    orgs_seen.dedup();
    Some(Candidate {
        patient_id: str_at(patient, "/id")?.to_owned(),
        patient_name: name(patient),
        nhs_number: patient
            .get("identifier")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|i| str_at(i, "/system") == Some("https://fhir.nhs.uk/Id/nhs-number"))
            .and_then(|i| str_at(i, "/value"))
            .map(str::to_owned),
        practice: str_at(patient, "/generalPractitioner/0/identifier/value")?.to_owned(),
        care_home: care_home.to_owned(),
        related_person: related_person.to_owned(),
        conditions: of(resources, "Condition").count(),
        orgs_seen,
    })
}

/// The demo user of `role` at `org`.
fn user_at<'a>(ics: &'a Ics, role: &str, org: &str) -> Option<&'a User> {
    ics.users
        .iter()
        .find(|u| u.role == role && u.org.as_deref() == Some(org))
}

/// Loads the demo population once (or reuses it) and returns its cast.
pub async fn load<S: Store>(
    service: &Service<S>,
    people: u64,
    seed: u64,
    today: Date,
) -> Result<Cast, String> {
    let store = service.store();
    if let Some(text) = store
        .setting(LOADED)
        .await
        .map_err(|e| format!("reading the store: {e}"))?
    {
        let cast: Cast = serde_json::from_str(&text)
            .map_err(|_| "the demo data of an older version: start again with --reset")?;
        eprintln!(
            "demo: reusing the {} people loaded before (use --reset to start again)",
            cast.people
        );
        return Ok(cast);
    }
    let settings = Settings::new(seed, people, today);
    let ics = Ics::new(&settings);
    let caller = Caller::system("sharedcare-demo-loader", None);
    let started = std::time::Instant::now();
    let mut resources: u64 = 0;
    let mut submit = |batch: Vec<Value>| {
        resources += batch.len() as u64;
        let body = generate::output::transaction(&batch).to_string();
        let caller = caller.clone();
        async move {
            service
                .bundle(&caller, body.as_bytes())
                .await
                .map(|_| ())
                .map_err(|e| format!("loading the demo population: {e}"))
        }
    };
    submit(ics.directory()).await?;
    let mut best: Option<Candidate> = None;
    let mut batch: Vec<Value> = Vec::new();
    for index in settings.range() {
        let person = generate::person(&ics, &settings, index);
        if let Some(c) = candidate(&ics, &person) {
            // The fullest record, so that the views differ visibly.
            if best.as_ref().is_none_or(|b| c.conditions > b.conditions) {
                best = Some(c);
            }
        }
        batch.extend(person);
        if (index + 1) % PEOPLE_PER_BUNDLE as u64 == 0 {
            submit(std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        submit(batch).await?;
    }
    let c = best.ok_or(
        "the demo population has no care-home resident with a caregiver: try more --people",
    )?;
    let missing = |what: &str| format!("the demo population has no {what}");
    let hospital = ics
        .users
        .iter()
        .find(|u| {
            u.role == "hospital-clinician"
                && u.org.as_ref().is_some_and(|o| !c.orgs_seen.contains(o))
        })
        .ok_or_else(|| missing("hospital clinician"))?;
    let cast = Cast {
        people,
        resources,
        gp: user_at(&ics, "gp", &c.practice)
            .ok_or_else(|| missing("GP"))?
            .into(),
        care_worker: user_at(&ics, "care-worker", &c.care_home)
            .ok_or_else(|| missing("care worker"))?
            .into(),
        data_controller: user_at(&ics, "data-controller", &c.practice)
            .ok_or_else(|| missing("data controller"))?
            .into(),
        hospital: hospital.into(),
        patient_id: c.patient_id,
        patient_name: c.patient_name,
        nhs_number: c.nhs_number,
        practice: c.practice,
        care_home: c.care_home,
        related_person: c.related_person,
    };
    let mut tx = store
        .begin()
        .await
        .map_err(|e| format!("writing the store: {e}"))?;
    let text = serde_json::to_string(&cast).map_err(|e| e.to_string())?;
    tx.set_setting(LOADED, &text)
        .await
        .map_err(|e| format!("writing the store: {e}"))?;
    tx.commit()
        .await
        .map_err(|e| format!("writing the store: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "demo: generated and loaded {people} people ({resources} resources) in {secs:.1} s ({:.0} resources/s)",
        resources as f64 / secs.max(0.001)
    );
    Ok(cast)
}

/// One ready token, with the shell variable it is printed as.
pub struct Token {
    pub var: &'static str,
    pub who: String,
    pub token: String,
}

/// Ready tokens for the cast (valid 8 hours).
pub fn tokens(
    key: &auth::IssuerKey,
    base_url: &str,
    now: i64,
    cast: &Cast,
) -> Result<Vec<Token>, String> {
    let ttl = 8 * 3600;
    let staff = |var: &'static str, what: &str, u: &DemoUser| -> Result<Token, String> {
        Ok(Token {
            var,
            who: format!("{} ({what}, {})", u.name, u.org),
            token: crate::mint(
                key,
                base_url,
                now,
                ttl,
                &u.sub,
                &u.name,
                &u.role,
                Some(&u.org),
                u.registration.as_deref(),
                None,
                None,
                None,
            )?,
        })
    };
    let person = |var: &'static str,
                  who: String,
                  sub: &str,
                  role: &str,
                  related: Option<&str>|
     -> Result<Token, String> {
        Ok(Token {
            var,
            who,
            token: crate::mint(
                key,
                base_url,
                now,
                ttl,
                sub,
                &cast.patient_name,
                role,
                None,
                None,
                Some(&cast.patient_id),
                related,
                None,
            )?,
        })
    };
    Ok(vec![
        staff("GP", "GP at the registered practice", &cast.gp)?,
        staff("CARE", "care worker at the care home", &cast.care_worker)?,
        staff(
            "HOSP",
            "hospital clinician with no relationship",
            &cast.hospital,
        )?,
        person(
            "PATIENT",
            format!("{}, the person", cast.patient_name),
            &format!("demo-patient-{}", cast.patient_id),
            "patient",
            None,
        )?,
        person(
            "PROXY",
            format!("{}'s caregiver (proxy)", cast.patient_name),
            &format!("demo-proxy-{}", cast.related_person),
            "proxy",
            Some(&cast.related_person),
        )?,
        staff(
            "DC",
            "the practice's data controller",
            &cast.data_controller,
        )?,
    ])
}

/// What to try, printed before the "listening" line.
pub fn help(base: &str, tokens: &[Token], cast: &Cast) -> String {
    let p = &cast.patient_id;
    let name = &cast.patient_name;
    let mut out = format!(
        "\nsharedcare demo is running: {} people ({} resources) of a synthetic integrated care system.\nFHIR base: {base}\n\nThe demo person: {name} (Patient/{p}), registered at practice {}, living at care home {}.\n\nEvery /fhir request needs a bearer token. Ready tokens (8 hours):\n",
        cast.people, cast.resources, cast.practice, cast.care_home
    );
    for t in tokens {
        out.push_str(&format!("  # {}\n  export {}={}\n", t.who, t.var, t.token));
    }
    let find = match &cast.nhs_number {
        Some(n) => format!(
            "  curl -s -H \"Authorization: Bearer $GP\" '{base}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{n}'\n"
        ),
        None => String::new(),
    };
    out.push_str(&format!(
        r#"
Try (in another terminal, after the exports above). The same person through different eyes:
  # What this server can do (no token needed)
  curl -s {base}/metadata | head -c 300; echo
  # The GP finds {name} and sees the whole record (sealed items their practice recorded included)
{find}  curl -s -H "Authorization: Bearer $GP" '{base}/Patient/{p}/$everything'
  # The care worker sees "appropriate information" only: no diagnoses, no notes
  curl -s -H "Authorization: Bearer $CARE" '{base}/Patient/{p}/$everything'
  curl -s -H "Authorization: Bearer $CARE" '{base}/Condition?patient={p}'          # 403: not in their view
  # A hospital with no relationship is refused, and offered break-glass
  curl -s -H "Authorization: Bearer $HOSP" '{base}/Patient/{p}'                      # 403
  curl -s -X POST -H "Authorization: Bearer $HOSP" -H 'Content-Type: application/fhir+json' '{base}/Patient/{p}/$break-glass' \
       -d '{{"resourceType":"Parameters","parameter":[{{"name":"reason","valueCode":"ETREAT"}},{{"name":"reasonText","valueString":"unconscious in A&E"}}]}}'
  # The person sees their own record; their caregiver only what the proxy consent allows
  curl -s -H "Authorization: Bearer $PATIENT" '{base}/Patient/{p}/$everything'
  curl -s -H "Authorization: Bearer $PROXY" '{base}/Patient/{p}'
  # Who looked at the record (the person), the audit and alerts (the practice's data controller)
  curl -s -H "Authorization: Bearer $PATIENT" '{base}/Patient/{p}/$access-log'
  curl -s -H "Authorization: Bearer $DC" '{base}/AuditEvent?patient={p}'
  curl -s -H "Authorization: Bearer $DC" '{base}/$alerts'
  curl -s -H "Authorization: Bearer $DC" '{base}/Patient/{p}'                        # 403: no clinical content
  # The practice's sharing settings (local only, allow/deny lists, verify first)
  curl -s -H "Authorization: Bearer $DC" '{base}/$sharing'
  # Every request above is in the hash-chained audit log:
  #   cargo run --release -- audit verify
  # No token: 401 with WWW-Authenticate
  curl -si '{base}/Patient/{p}' | head -n 1
  # More tokens: cargo run --release -- token --sub u1 --name 'A Nurse' --role community-clinician --org {practice} --registration NMC:12A3456B

Stop with Ctrl-C.
"#,
        practice = cast.practice,
    ));
    out
}
