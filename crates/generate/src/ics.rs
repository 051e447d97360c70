//! The integrated care system: its organisations, their staff, and the demo
//! users, all derived from the seed and the population size.
//!
//! # Organisation codes
//!
//! Every organisation has a six-character ODS-style code `Y<k><nnnn>`: `Y`,
//! one digit for the kind, and a four-digit sequence number from 0001. The
//! codes are synthetic (the demo sample's `Y00001`/`Y00002` cannot clash:
//! its kind digit is 0):
//!
//! | kind                 | digit | how many                                   |
//! |----------------------|-------|--------------------------------------------|
//! | `gp-practice`        | 1     | one per 8,000 people (at least 2)          |
//! | `acute-trust`        | 2     | one                                        |
//! | `mental-health-trust`| 3     | one                                        |
//! | `community-services` | 4     | the trust (Y40001) and its district nursing (Y40002), midwifery (Y40003) and health visiting (Y40004) services, `partOf` the trust |
//! | `care-home`          | 5     | enough beds for the expected residents at 87% occupancy, about 50 beds each (at least 2) |
//! | `home-care`          | 6     | one per 10,000 people (at least 2)         |
//! | `pharmacy`           | 7     | one per 5,000 people (at least 2)          |
//! | `local-authority`    | 8     | one adult social care team                 |
//!
//! The Organization's logical id is its code. A care home's registered beds
//! are an extension on its Organization
//! (`https://fhir.sharedcare.org.uk/StructureDefinition/care-home-beds`,
//! `valueUnsignedInt`) rather than a Location: the record's relationships
//! hang on the Organization (by ODS code), and the bed count is a property
//! of the registered home. Residents are placed in homes in proportion to
//! beds, so occupancy is about 87% in expectation, not enforced.
//!
//! # Staff and registrations
//!
//! | role                  | where                                  | registration |
//! |-----------------------|----------------------------------------|--------------|
//! | `gp`                  | practices (one per ~2,000 registered)  | GMC          |
//! | `data-controller`     | one per practice (practice manager)    | none         |
//! | `hospital-clinician`  | acute trust, mental health trust       | GMC          |
//! | `pharmacist`          | acute trust, community pharmacies      | GPhC         |
//! | `community-clinician` | mental health trust (NMC), community services (NMC; HCPC for the trust's physiotherapist) | NMC / HCPC |
//! | `care-nurse`          | care homes                             | NMC          |
//! | `care-worker`         | care homes, home-care agencies         | none         |
//! | `social-worker`       | local authority                        | Social Work England |
//! | `commissioner`        | local authority                        | none         |
//!
//! Registration systems: GMC `https://fhir.hl7.org.uk/Id/gmc-number` (seven
//! digits, synthetic numbers start with 9, above the issued range), NMC
//! `https://fhir.hl7.org.uk/Id/nmc-number` (`99Y` + four digits + `E`), GPhC
//! `https://fhir.hl7.org.uk/Id/gphc-number` (seven digits starting 9), HCPC
//! `https://fhir.hl7.org.uk/Id/hcpc-number` (`PH9` + five digits) and, since
//! UK Core names no system for it, Social Work England
//! `https://fhir.sharedcare.org.uk/Id/social-work-england-number` (`SW9` +
//! five digits). Each staff member is a Practitioner (id `<ODS>-<n>`) with a
//! PractitionerRole (id `<ODS>-<n>-role`) whose code is the sharedcare role
//! (`https://fhir.sharedcare.org.uk/CodeSystem/role`). The first staff member
//! of each role in each organisation is that organisation's demo user.

use serde_json::{Value, json};

use crate::clinical::{Calibration, MAX_AGE, age_share};
use crate::nhs::NhsNumbers;
use crate::rng::Rng;
use crate::tables::{COUNTY, PLACE_WORDS, TOWNS};
use crate::{Settings, domain, person};

pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
pub const ORG_TYPE_SYSTEM: &str = "https://fhir.sharedcare.org.uk/CodeSystem/organisation-type";
pub const ROLE_SYSTEM: &str = "https://fhir.sharedcare.org.uk/CodeSystem/role";
pub const BEDS_EXTENSION: &str =
    "https://fhir.sharedcare.org.uk/StructureDefinition/care-home-beds";
pub const GMC: &str = "https://fhir.hl7.org.uk/Id/gmc-number";
pub const NMC: &str = "https://fhir.hl7.org.uk/Id/nmc-number";
pub const GPHC: &str = "https://fhir.hl7.org.uk/Id/gphc-number";
pub const HCPC: &str = "https://fhir.hl7.org.uk/Id/hcpc-number";
pub const SWE: &str = "https://fhir.sharedcare.org.uk/Id/social-work-england-number";

/// The kind of an organisation (its `organisation-type` code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrgKind {
    GpPractice,
    AcuteTrust,
    MentalHealthTrust,
    CommunityServices,
    CareHome,
    HomeCare,
    Pharmacy,
    LocalAuthority,
}

impl OrgKind {
    pub const ALL: [OrgKind; 8] = [
        OrgKind::GpPractice,
        OrgKind::AcuteTrust,
        OrgKind::MentalHealthTrust,
        OrgKind::CommunityServices,
        OrgKind::CareHome,
        OrgKind::HomeCare,
        OrgKind::Pharmacy,
        OrgKind::LocalAuthority,
    ];

    pub fn code(self) -> &'static str {
        match self {
            OrgKind::GpPractice => "gp-practice",
            OrgKind::AcuteTrust => "acute-trust",
            OrgKind::MentalHealthTrust => "mental-health-trust",
            OrgKind::CommunityServices => "community-services",
            OrgKind::CareHome => "care-home",
            OrgKind::HomeCare => "home-care",
            OrgKind::Pharmacy => "pharmacy",
            OrgKind::LocalAuthority => "local-authority",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            OrgKind::GpPractice => "GP practice",
            OrgKind::AcuteTrust => "Acute trust",
            OrgKind::MentalHealthTrust => "Mental health trust",
            OrgKind::CommunityServices => "Community services",
            OrgKind::CareHome => "Care home",
            OrgKind::HomeCare => "Home-care agency",
            OrgKind::Pharmacy => "Community pharmacy",
            OrgKind::LocalAuthority => "Local authority adult social care",
        }
    }

    fn digit(self) -> u32 {
        match self {
            OrgKind::GpPractice => 1,
            OrgKind::AcuteTrust => 2,
            OrgKind::MentalHealthTrust => 3,
            OrgKind::CommunityServices => 4,
            OrgKind::CareHome => 5,
            OrgKind::HomeCare => 6,
            OrgKind::Pharmacy => 7,
            OrgKind::LocalAuthority => 8,
        }
    }
}

/// A sharedcare role (the `role` claim of a token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Gp,
    HospitalClinician,
    CommunityClinician,
    Pharmacist,
    CareNurse,
    SocialWorker,
    CareWorker,
    DataController,
    Commissioner,
}

impl Role {
    pub fn code(self) -> &'static str {
        match self {
            Role::Gp => "gp",
            Role::HospitalClinician => "hospital-clinician",
            Role::CommunityClinician => "community-clinician",
            Role::Pharmacist => "pharmacist",
            Role::CareNurse => "care-nurse",
            Role::SocialWorker => "social-worker",
            Role::CareWorker => "care-worker",
            Role::DataController => "data-controller",
            Role::Commissioner => "commissioner",
        }
    }
}

/// One member of staff: a Practitioner and a PractitionerRole.
#[derive(Clone, Debug)]
pub struct Staff {
    pub id: String,
    pub role: Role,
    pub prefix: Option<&'static str>,
    pub given: String,
    pub family: String,
    /// The registration system and number.
    pub registration: Option<(&'static str, String)>,
}

impl Staff {
    pub fn display_name(&self) -> String {
        match self.prefix {
            Some(p) => format!("{p} {} {}", self.given, self.family),
            None => format!("{} {}", self.given, self.family),
        }
    }
}

/// One organisation.
#[derive(Clone, Debug)]
pub struct Org {
    pub ods: String,
    pub kind: OrgKind,
    pub name: String,
    pub town: usize,
    pub line: String,
    pub postcode: String,
    pub phone: String,
    pub part_of: Option<String>,
    /// Registered beds (care homes).
    pub beds: Option<u32>,
    pub staff: Vec<Staff>,
}

/// A demo user, for `sharedcare token` (`users.ndjson`; not FHIR).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub sub: String,
    pub name: String,
    pub role: String,
    pub org: Option<String>,
    pub registration: Option<String>,
    pub patient: Option<String>,
    pub related_person: Option<String>,
}

impl User {
    /// The `users.ndjson` line (absent fields are left out).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("sub".into(), json!(self.sub));
        m.insert("name".into(), json!(self.name));
        m.insert("role".into(), json!(self.role));
        let optional = [
            ("org", &self.org),
            ("registration", &self.registration),
            ("patient", &self.patient),
            ("related_person", &self.related_person),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        Value::Object(m)
    }
}

/// Care-home residents per person of each age (ONS Census 2021 put about
/// 3% of people aged 65+ in care homes, 15% of those aged 90+).
pub fn care_home_rate(age: i64) -> f64 {
    match age {
        ..18 => 0.0,
        18..65 => 0.0008,
        65..75 => 0.005,
        75..85 => 0.025,
        85..90 => 0.10,
        _ => 0.20,
    }
}

/// People receiving a home-care package, per person of each age (about
/// 500,000 people in England; mostly aged 75 and over).
pub fn home_care_rate(age: i64) -> f64 {
    match age {
        ..18 => 0.0,
        18..65 => 0.002,
        65..75 => 0.01,
        75..85 => 0.035,
        _ => 0.10,
    }
}

/// Care-home occupancy the bed counts are sized for.
pub const OCCUPANCY: f64 = 0.87;

/// The ICS.
pub struct Ics {
    pub orgs: Vec<Org>,
    pub users: Vec<User>,
    pub(crate) practices: Vec<usize>,
    practice_weights: Vec<f64>,
    pub(crate) acute: usize,
    pub(crate) mental_health: usize,
    pub(crate) community_trust: usize,
    pub(crate) district_nursing: usize,
    pub(crate) midwifery: usize,
    pub(crate) health_visiting: usize,
    pub(crate) local_authority: usize,
    pub(crate) care_homes: Vec<usize>,
    care_home_weights: Vec<f64>,
    pub(crate) home_care: Vec<usize>,
    pub(crate) pharmacies: Vec<usize>,
    pub(crate) nhs: NhsNumbers,
    pub(crate) calibration: Calibration,
}

struct Counters {
    gmc: u32,
    nmc: u32,
    gphc: u32,
    hcpc: u32,
    swe: u32,
}

impl Counters {
    fn registration(&mut self, system: &'static str) -> (&'static str, String) {
        let value = match system {
            GMC => {
                self.gmc += 1;
                format!("9{:06}", self.gmc)
            }
            NMC => {
                self.nmc += 1;
                format!("99Y{:04}E", self.nmc % 10_000)
            }
            GPHC => {
                self.gphc += 1;
                format!("9{:06}", self.gphc)
            }
            HCPC => {
                self.hcpc += 1;
                format!("PH9{:05}", self.hcpc)
            }
            _ => {
                self.swe += 1;
                format!("SW9{:05}", self.swe)
            }
        };
        (system, value)
    }
}

fn ceil_div(n: u64, d: u64) -> u64 {
    n.div_ceil(d.max(1))
}

/// How many of the population are expected at a rate by age.
fn expected(people: u64, rate: impl Fn(i64) -> f64) -> f64 {
    let share: f64 = (0..=MAX_AGE).map(|a| age_share(a) * rate(a)).sum();
    people as f64 * share
}

impl Ics {
    pub fn new(settings: &Settings) -> Ics {
        let people = settings.people;
        let mut rng = Rng::stream(settings.seed, domain::ORGANISATIONS, 0);
        let mut orgs: Vec<Org> = Vec::new();
        let mut counters = Counters {
            gmc: 0,
            nmc: 0,
            gphc: 0,
            hcpc: 0,
            swe: 0,
        };
        let town_weights: Vec<f64> = TOWNS.iter().map(|t| t.weight).collect();
        let mut names_used: Vec<String> = Vec::new();

        let new_org = |rng: &mut Rng,
                       kind: OrgKind,
                       seq: usize,
                       name: String,
                       town: usize,
                       staff: &[(Role, Option<&'static str>, usize)],
                       counters: &mut Counters|
         -> Org {
            let ods = format!("Y{}{:04}", kind.digit(), seq);
            let (line, postcode) = person::street_address(rng, town);
            let phone = person::landline(rng, town);
            let mut members = Vec::new();
            for (role, system, count) in staff {
                for _ in 0..*count {
                    let male = rng.chance(0.45);
                    let (given, family) = person::adult_name(rng, male);
                    let prefix = match role {
                        Role::Gp | Role::HospitalClinician => Some("Dr"),
                        _ => None,
                    };
                    members.push(Staff {
                        id: format!("{ods}-{}", members.len() + 1),
                        role: *role,
                        prefix,
                        given,
                        family,
                        registration: system.map(|s| counters.registration(s)),
                    });
                }
            }
            Org {
                ods,
                kind,
                name,
                town,
                line,
                postcode,
                phone,
                part_of: None,
                beds: None,
                staff: members,
            }
        };

        let mut unique_name = |rng: &mut Rng, suffixes: &[&'static str], n: usize| -> String {
            for _ in 0..20 {
                let name = format!("{} {}", rng.pick_str(PLACE_WORDS), rng.pick_str(suffixes));
                if !names_used.contains(&name) {
                    names_used.push(name.clone());
                    return name;
                }
            }
            let name = format!(
                "{} {} {n}",
                rng.pick_str(PLACE_WORDS),
                rng.pick_str(suffixes)
            );
            names_used.push(name.clone());
            name
        };

        // GP practices, of uneven list sizes.
        let n_practices = ceil_div(people, 8_000).max(2) as usize;
        let practice_weights: Vec<f64> = (0..n_practices).map(|_| 0.5 + rng.unit()).collect();
        let weight_total: f64 = practice_weights.iter().sum();
        let mut practices = Vec::new();
        for (i, w) in practice_weights.iter().enumerate() {
            let list = people as f64 * w / weight_total;
            let gps = ((list / 2_000.0).round() as usize).clamp(2, 15);
            let town = rng.weighted(&town_weights);
            let name = unique_name(
                &mut rng,
                &[
                    "Medical Practice",
                    "Surgery",
                    "Health Centre",
                    "Medical Centre",
                    "Family Practice",
                ],
                i,
            );
            practices.push(orgs.len());
            orgs.push(new_org(
                &mut rng,
                OrgKind::GpPractice,
                i + 1,
                name,
                town,
                &[(Role::Gp, Some(GMC), gps), (Role::DataController, None, 1)],
                &mut counters,
            ));
        }

        let scaled = |per: u64, min: usize, max: usize| -> usize {
            ((people / per) as usize).clamp(min, max)
        };
        let acute = orgs.len();
        orgs.push(new_org(
            &mut rng,
            OrgKind::AcuteTrust,
            1,
            "Calder and Aire Teaching Hospitals NHS Trust".into(),
            0,
            &[
                (Role::HospitalClinician, Some(GMC), scaled(10_000, 4, 400)),
                (Role::Pharmacist, Some(GPHC), scaled(100_000, 2, 40)),
            ],
            &mut counters,
        ));
        let mental_health = orgs.len();
        orgs.push(new_org(
            &mut rng,
            OrgKind::MentalHealthTrust,
            1,
            "Pennine Moors Mental Health NHS Foundation Trust".into(),
            1,
            &[
                (
                    Role::HospitalClinician,
                    Some(GMC),
                    2 + scaled(50_000, 0, 100),
                ),
                (
                    Role::CommunityClinician,
                    Some(NMC),
                    2 + scaled(50_000, 0, 100),
                ),
            ],
            &mut counters,
        ));
        let community_trust = orgs.len();
        orgs.push(new_org(
            &mut rng,
            OrgKind::CommunityServices,
            1,
            "Five Towns Community Healthcare NHS Trust".into(),
            2,
            &[(Role::CommunityClinician, Some(HCPC), 1)],
            &mut counters,
        ));
        let mut service =
            |rng: &mut Rng, seq: usize, name: &str, per: u64, counters: &mut Counters| {
                let mut org = new_org(
                    rng,
                    OrgKind::CommunityServices,
                    seq,
                    name.into(),
                    2,
                    &[(Role::CommunityClinician, Some(NMC), scaled(per, 2, 200))],
                    counters,
                );
                org.part_of = orgs.get(community_trust).map(|t| t.ods.clone());
                let index = orgs.len();
                orgs.push(org);
                index
            };
        let district_nursing = service(
            &mut rng,
            2,
            "Five Towns District Nursing Service",
            20_000,
            &mut counters,
        );
        let midwifery = service(
            &mut rng,
            3,
            "Five Towns Community Midwifery Service",
            25_000,
            &mut counters,
        );
        let health_visiting = service(
            &mut rng,
            4,
            "Five Towns Health Visiting Service",
            25_000,
            &mut counters,
        );

        // Care homes: enough beds for the expected residents.
        let residents = expected(people, care_home_rate);
        let target_beds = residents / OCCUPANCY;
        let n_homes = ((target_beds / 50.0).ceil() as usize).max(2);
        let mut beds: Vec<f64> = (0..n_homes).map(|_| rng.range(20, 80) as f64).collect();
        let drawn: f64 = beds.iter().sum();
        let factor = if drawn > 0.0 {
            target_beds / drawn
        } else {
            1.0
        };
        for b in &mut beds {
            *b = (*b * factor).round().max(8.0);
        }
        let mut care_homes = Vec::new();
        for (i, b) in beds.iter().enumerate() {
            let town = rng.weighted(&town_weights);
            let nursing = rng.chance(0.4);
            let suffix: &[&'static str] = if nursing {
                &["Nursing Home", "Lodge Nursing Home", "House Nursing Home"]
            } else {
                &["Care Home", "House", "Lodge", "Court Care Home", "Manor"]
            };
            let name = unique_name(&mut rng, suffix, i);
            let mut org = new_org(
                &mut rng,
                OrgKind::CareHome,
                i + 1,
                name,
                town,
                &[(Role::CareNurse, Some(NMC), 1), (Role::CareWorker, None, 2)],
                &mut counters,
            );
            org.beds = Some(*b as u32);
            care_homes.push(orgs.len());
            orgs.push(org);
        }
        let care_home_weights = beds;

        let mut home_care = Vec::new();
        for i in 0..ceil_div(people, 10_000).max(2) as usize {
            let town = rng.weighted(&town_weights);
            let name = unique_name(
                &mut rng,
                &["Home Care Ltd", "Homecare Services", "Care at Home"],
                i,
            );
            home_care.push(orgs.len());
            orgs.push(new_org(
                &mut rng,
                OrgKind::HomeCare,
                i + 1,
                name,
                town,
                &[(Role::CareWorker, None, 2)],
                &mut counters,
            ));
        }
        let mut pharmacies = Vec::new();
        for i in 0..ceil_div(people, 5_000).max(2) as usize {
            let town = rng.weighted(&town_weights);
            let name = unique_name(&mut rng, &["Pharmacy", "Chemist", "Community Pharmacy"], i);
            pharmacies.push(orgs.len());
            orgs.push(new_org(
                &mut rng,
                OrgKind::Pharmacy,
                i + 1,
                name,
                town,
                &[(Role::Pharmacist, Some(GPHC), 1)],
                &mut counters,
            ));
        }
        let local_authority = orgs.len();
        orgs.push(new_org(
            &mut rng,
            OrgKind::LocalAuthority,
            1,
            "West Riding Metropolitan Council Adult Social Care".into(),
            0,
            &[
                (Role::SocialWorker, Some(SWE), scaled(10_000, 2, 300)),
                (Role::Commissioner, None, 1),
            ],
            &mut counters,
        ));

        let users = staff_users(&orgs);
        Ics {
            orgs,
            users,
            practices,
            practice_weights,
            acute,
            mental_health,
            community_trust,
            district_nursing,
            midwifery,
            health_visiting,
            local_authority,
            care_homes,
            care_home_weights,
            home_care,
            pharmacies,
            nhs: NhsNumbers::new(settings.seed),
            calibration: Calibration::new(),
        }
    }

    pub fn org(&self, i: usize) -> Option<&Org> {
        self.orgs.get(i)
    }

    /// A GP practice, in proportion to list size.
    pub(crate) fn draw_practice(&self, rng: &mut Rng) -> usize {
        let i = rng.weighted(&self.practice_weights);
        self.practices.get(i).copied().unwrap_or(0)
    }

    /// A care home, in proportion to beds.
    pub(crate) fn draw_care_home(&self, rng: &mut Rng) -> usize {
        let i = rng.weighted(&self.care_home_weights);
        self.care_homes.get(i).copied().unwrap_or(0)
    }

    /// One of a list of organisations, uniformly.
    pub(crate) fn draw(&self, rng: &mut Rng, list: &[usize]) -> usize {
        rng.pick(list).copied().unwrap_or(0)
    }

    /// A member of staff of an organisation with a role.
    pub(crate) fn staff(&self, org: usize, role: Role, rng: &mut Rng) -> Option<&Staff> {
        let members: Vec<&Staff> = self
            .orgs
            .get(org)?
            .staff
            .iter()
            .filter(|s| s.role == role)
            .collect();
        rng.pick(&members).copied()
    }

    /// The ODS code of an organisation.
    pub(crate) fn ods(&self, org: usize) -> &str {
        self.orgs.get(org).map(|o| o.ods.as_str()).unwrap_or("")
    }

    /// The Organization resources.
    pub fn organisations(&self) -> Vec<Value> {
        self.orgs.iter().map(organisation).collect()
    }

    /// The Practitioner resources.
    pub fn practitioners(&self) -> Vec<Value> {
        self.orgs
            .iter()
            .flat_map(|o| o.staff.iter().map(practitioner))
            .collect()
    }

    /// The PractitionerRole resources.
    pub fn practitioner_roles(&self) -> Vec<Value> {
        self.orgs
            .iter()
            .flat_map(|o| o.staff.iter().map(move |s| practitioner_role(o, s)))
            .collect()
    }

    /// Everything that belongs to no person, in dependency order:
    /// organisations, practitioners, their roles.
    pub fn directory(&self) -> Vec<Value> {
        let mut out = self.organisations();
        out.extend(self.practitioners());
        out.extend(self.practitioner_roles());
        out
    }
}

/// The first member of staff of each role in each organisation.
fn staff_users(orgs: &[Org]) -> Vec<User> {
    let mut users = Vec::new();
    for o in orgs {
        let mut seen: Vec<Role> = Vec::new();
        for s in &o.staff {
            if seen.contains(&s.role) {
                continue;
            }
            seen.push(s.role);
            users.push(User {
                sub: format!("{}-{}", s.role.code(), o.ods),
                name: s.display_name(),
                role: s.role.code().to_owned(),
                org: Some(o.ods.clone()),
                registration: s.registration.as_ref().map(|(_, v)| v.clone()),
                patient: None,
                related_person: None,
            });
        }
    }
    users
}

/// `{"identifier": {"system": ODS, "value": code}}`: a logical reference to
/// an organisation by its ODS code.
pub fn ods_ref(code: &str) -> Value {
    json!({"identifier": {"system": ODS_SYSTEM, "value": code}})
}

pub fn address(line: &str, town: usize, postcode: &str, use_: &str) -> Value {
    let city = TOWNS.get(town).map(|t| t.name).unwrap_or("Leeds");
    json!({
        "use": use_,
        "line": [line],
        "city": city,
        "district": COUNTY,
        "postalCode": postcode,
        "country": "GB"
    })
}

fn organisation(o: &Org) -> Value {
    let mut v = json!({
        "resourceType": "Organization",
        "id": o.ods,
        "identifier": [{"system": ODS_SYSTEM, "value": o.ods}],
        "active": true,
        "type": [{"coding": [{
            "system": ORG_TYPE_SYSTEM,
            "code": o.kind.code(),
            "display": o.kind.display()
        }]}],
        "name": o.name,
        "telecom": [{"system": "phone", "value": o.phone, "use": "work"}],
        "address": [address(&o.line, o.town, &o.postcode, "work")]
    });
    if let Some(map) = v.as_object_mut() {
        if let Some(parent) = &o.part_of {
            map.insert(
                "partOf".into(),
                json!({"reference": format!("Organization/{parent}")}),
            );
        }
        if let Some(beds) = o.beds {
            map.insert(
                "extension".into(),
                json!([{"url": BEDS_EXTENSION, "valueUnsignedInt": beds}]),
            );
        }
    }
    v
}

fn practitioner(s: &Staff) -> Value {
    let mut name = json!({"use": "official", "family": s.family, "given": [s.given]});
    if let (Some(p), Some(map)) = (s.prefix, name.as_object_mut()) {
        map.insert("prefix".into(), json!([p]));
    }
    let mut v = json!({
        "resourceType": "Practitioner",
        "id": s.id,
        "active": true,
        "name": [name]
    });
    if let (Some((system, value)), Some(map)) = (&s.registration, v.as_object_mut()) {
        map.insert(
            "identifier".into(),
            json!([{"system": system, "value": value}]),
        );
    }
    v
}

fn practitioner_role(o: &Org, s: &Staff) -> Value {
    json!({
        "resourceType": "PractitionerRole",
        "id": format!("{}-role", s.id),
        "active": true,
        "practitioner": {"reference": format!("Practitioner/{}", s.id)},
        "organization": {"reference": format!("Organization/{}", o.ods)},
        "code": [{"coding": [{"system": ROLE_SYSTEM, "code": s.role.code()}]}]
    })
}
