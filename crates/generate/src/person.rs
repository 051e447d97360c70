//! One person's record: demographics, clinical content, social care,
//! referrals, sealed items and consents. See the README for the rates.

use serde_json::{Map, Value, json};

use crate::clinical::{self, LTCS, MALE_SHARE, Med, SNOMED, UCUM, draw_age};
use crate::consent::{self, ALL_LEVELS, Dissent};
use crate::date::Date;
use crate::ics::{Ics, OrgKind, Role, User, address, care_home_rate, home_care_rate, ods_ref};
use crate::labels::{self, Topic};
use crate::rng::Rng;
use crate::tables::{
    FEMALE_CHILD, FEMALE_MID, FEMALE_OLD, FEMALE_YOUNG, MALE_CHILD, MALE_MID, MALE_OLD, MALE_YOUNG,
    POSTCODE_UNIT_LETTERS, STREET_KINDS, STREETS, SURNAMES, TOWNS,
};
use crate::{Settings, domain};

pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const LOCAL_PERSON_SYSTEM: &str = "https://fhir.sharedcare.org.uk/Id/synthetic-person";
pub const RECORD_CATEGORY: &str = "https://fhir.sharedcare.org.uk/CodeSystem/record-category";
pub const EPISODE_TYPE: &str = "https://fhir.sharedcare.org.uk/CodeSystem/episode-type";
/// The organisation that recorded an item (`meta.tag`): the server keeps
/// what a trusted integration client states, so the population loads with
/// each item attributed to the organisation that recorded it.
pub const RECORDED_BY: &str = "https://fhir.sharedcare.org.uk/CodeSystem/recorded-by";
const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const VERIFICATION_EXTENSION: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
const VERIFICATION_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const DISCHARGE_DISPOSITION: &str = "http://terminology.hl7.org/CodeSystem/discharge-disposition";
const DISCHARGE_DESTINATION: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-DischargeDestination";
const ADMIT_SOURCE: &str = "http://terminology.hl7.org/CodeSystem/admit-source";

/// People whose index ends in 000–019 (per thousand) are "showcase" people:
/// each carries one feature that is rare in a real population (one sealed
/// item of each sensitivity category, each kind of consent), so that every
/// shape appears in any run of 20 people or more. Their ages are chosen to
/// suit the feature; the prevalence tests leave them out.
pub const SHOWCASE_SLOTS: u64 = 20;

pub fn is_showcase(index: u64) -> bool {
    index % 1000 < SHOWCASE_SLOTS
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Showcase {
    Sealed(Topic),
    NationalOptOut,
    Type1OptOut,
    DissentWhole,
    DissentOrgs,
    DissentKinds,
    SensitiveShare,
    Attorney,
    CareHome,
    Deputy,
    BestInterest,
    ConsentProxy,
    HomeCare,
}

fn showcase(index: u64) -> Option<Showcase> {
    let slot = index % 1000;
    Some(match slot {
        0..=7 => Showcase::Sealed(*Topic::ALL.get(slot as usize)?),
        8 => Showcase::NationalOptOut,
        9 => Showcase::Type1OptOut,
        10 => Showcase::DissentWhole,
        11 => Showcase::DissentOrgs,
        12 => Showcase::DissentKinds,
        13 => Showcase::SensitiveShare,
        14 => Showcase::Attorney,
        15 => Showcase::CareHome,
        16 => Showcase::Deputy,
        17 => Showcase::BestInterest,
        18 => Showcase::ConsentProxy,
        19 => Showcase::HomeCare,
        _ => return None,
    })
}

/// The age range and sex a showcase feature needs (`None`: either sex).
fn showcase_person(s: Showcase) -> ((i64, i64), Option<bool>) {
    match s {
        Showcase::Sealed(Topic::Hiv) => ((25, 60), None),
        Showcase::Sealed(Topic::Psy) => ((20, 60), None),
        Showcase::Sealed(Topic::Sex) => ((18, 40), Some(false)),
        Showcase::Sealed(Topic::Std) => ((18, 29), None),
        Showcase::Sealed(Topic::Eth) => ((30, 65), None),
        Showcase::Sealed(Topic::Sdv) => ((20, 50), Some(false)),
        Showcase::Sealed(Topic::Safeguarding) => ((2, 15), None),
        Showcase::Sealed(Topic::Restricted) => ((30, 70), None),
        Showcase::NationalOptOut
        | Showcase::Type1OptOut
        | Showcase::DissentWhole
        | Showcase::DissentOrgs
        | Showcase::DissentKinds => ((30, 80), None),
        Showcase::SensitiveShare => ((25, 60), None),
        Showcase::Attorney => ((80, 95), None),
        Showcase::CareHome => ((82, 96), None),
        Showcase::Deputy => ((40, 70), None),
        Showcase::BestInterest => ((85, 98), None),
        Showcase::ConsentProxy => ((60, 85), None),
        Showcase::HomeCare => ((75, 92), None),
    }
}

/// A condition the person has, once written.
#[derive(Clone, Debug)]
struct Held {
    ltc: usize,
    code: &'static str,
    display: &'static str,
    onset: Date,
    id: String,
}

/// A care-home residency or home-care package.
#[derive(Clone, Debug)]
struct Stay {
    org: usize,
    start: Date,
    la_funded: bool,
    episode: String,
}

/// A medicine prescribed to the person.
#[derive(Clone, Debug)]
struct Prescribed {
    med: Med,
    id: String,
}

/// A proxy to be written.
struct ProxyPlan {
    relationship: (&'static str, &'static str),
    attorney: bool,
    male: bool,
    basis: &'static str,
    levels: Vec<&'static str>,
    start: Date,
    by_patient: bool,
}

/// The state of one person's generation.
struct Gen<'a> {
    ics: &'a Ics,
    now: Date,
    index: u64,
    pid: String,
    counter: u32,
    out: Vec<Value>,
    users: Vec<User>,
    male: bool,
    age: i64,
    birth: Date,
    given: String,
    family: String,
    practice: usize,
    pharmacy: usize,
    held: Vec<Held>,
    care_home: Option<Stay>,
    home_care: Option<Stay>,
    sealed: Vec<Topic>,
    related: Vec<String>,
}

/// All resources of person `index`: the Patient, then RelatedPersons, then
/// the rest.
pub fn person(ics: &Ics, settings: &Settings, index: u64) -> Vec<Value> {
    person_and_users(ics, settings, index).0
}

/// [`person`], with the demo users sampled from this person (a `patient`
/// user for about one adult in 200, a `proxy` user for about one person with
/// a proxy in 50, and for the showcase people).
pub fn person_and_users(ics: &Ics, settings: &Settings, index: u64) -> (Vec<Value>, Vec<User>) {
    let seed = settings.seed;
    let now = settings.now;
    let show = showcase(index);
    let mut r = Rng::stream(seed, domain::DEMOGRAPHICS, index);
    let mut male = r.chance(MALE_SHARE);
    let mut age = draw_age(&mut r);
    if let Some(s) = show {
        let ((lo, hi), sex) = showcase_person(s);
        age = r.range(lo, hi);
        if let Some(m) = sex {
            male = m;
        }
    }
    let birth = now.plus_years(-age).plus_days(-r.range(0, 364));
    let practice = ics.draw_practice(&mut r);
    let town_weights: Vec<f64> = TOWNS.iter().map(|t| t.weight).collect();
    let practice_town = ics.org(practice).map(|o| o.town).unwrap_or(0);
    let town = if r.chance(0.85) {
        practice_town
    } else {
        r.weighted(&town_weights)
    };
    let given = first_name(&mut r, male, birth.ymd().0).to_owned();
    let family = r.pick_str(SURNAMES).to_owned();
    let (line, postcode) = street_address(&mut r, town);
    let mobile = (age >= 12 && r.chance(0.9)).then(|| mobile(&mut r));
    let local: Vec<usize> = ics
        .pharmacies
        .iter()
        .copied()
        .filter(|p| ics.org(*p).map(|o| o.town) == Some(town))
        .collect();
    let pharmacy = if local.is_empty() {
        ics.draw(&mut r, &ics.pharmacies)
    } else {
        ics.draw(&mut r, &local)
    };

    let mut g = Gen {
        ics,
        now,
        index,
        pid: format!("p{index}"),
        counter: 0,
        out: Vec::with_capacity(32),
        users: Vec::new(),
        male,
        age,
        birth,
        given,
        family,
        practice,
        pharmacy,
        held: Vec::new(),
        care_home: None,
        home_care: None,
        sealed: Vec::new(),
        related: Vec::new(),
    };

    // Long-term conditions: one draw per condition, always, so that the
    // stream stays aligned whatever the outcome.
    let mut c = Rng::stream(seed, domain::CONDITIONS, index);
    for (i, ltc) in LTCS.iter().enumerate() {
        let p = ics.calibration.probability(i, age, male);
        let has = c.chance(p);
        let shares: Vec<f64> = ltc.codes.iter().map(|x| x.2).collect();
        let k = c.weighted(&shares);
        let years_back = c.range(0, 25);
        let days_back = c.range(14, 364);
        if !has {
            continue;
        }
        let Some((code, display, _)) = ltc.codes.get(k) else {
            continue;
        };
        let earliest = birth.plus_years(ltc.min_age.max(1)).min(now);
        let onset = now
            .plus_years(-years_back)
            .plus_days(-days_back)
            .max(earliest)
            .min(now.plus_days(-1));
        g.held.push(Held {
            ltc: i,
            code,
            display,
            onset,
            id: String::new(),
        });
    }

    // Where they live and what care they get.
    let mut s = Rng::stream(seed, domain::SOCIAL, index);
    let dementia = clinical::ltc_index("dementia");
    let has_dementia = g.held.iter().any(|h| Some(h.ltc) == dementia);
    let p_dementia = dementia
        .map(|d| ics.calibration.probability(d, age, male))
        .unwrap_or(0.0);
    // Dementia triples the chance of a care home; the divisor keeps the
    // rate by age what `care_home_rate` says.
    let boost = if has_dementia { 3.0 } else { 1.0 } / (1.0 + 2.0 * p_dementia);
    let forced_home = matches!(show, Some(Showcase::CareHome | Showcase::BestInterest));
    let in_home = s.chance(care_home_rate(age) * boost) || forced_home;
    let home = ics.draw_care_home(&mut s);
    let home_start = now.plus_days(-s.range(7, 5 * 365));
    let home_funded = s.chance(0.5);
    let forced_package = show == Some(Showcase::HomeCare);
    let in_package = !in_home && (s.chance(home_care_rate(age)) || forced_package);
    let agency = ics.draw(&mut s, &ics.home_care);
    let package_start = now.plus_days(-s.range(14, 4 * 365));
    if in_home {
        g.care_home = Some(Stay {
            org: home,
            start: home_start,
            la_funded: home_funded,
            episode: String::new(),
        });
    } else if in_package {
        g.home_care = Some(Stay {
            org: agency,
            start: package_start,
            la_funded: true,
            episode: String::new(),
        });
    }

    // The Patient.
    let (line, town, postcode) = match g.care_home.as_ref().and_then(|h| ics.org(h.org)) {
        Some(o) => (o.line.clone(), o.town, o.postcode.clone()),
        None => (line, town, postcode),
    };
    let patient = g.patient(&line, town, &postcode, mobile.as_deref());
    g.push(patient);

    // Proxies first (RelatedPersons follow the Patient).
    let mut k = Rng::stream(seed, domain::CONSENT, index);
    let proxies = g.plan_proxies(&mut k, show, has_dementia, &line, town, &postcode);

    let mut care = Rng::stream(seed, domain::CARE, index);
    g.episodes(&mut care);
    g.conditions(&mut care);
    let prescribed = g.medicines(&mut care);
    g.observations(&mut care);
    g.allergies(&mut care);
    g.immunisations(&mut care);
    g.gp_consultations(&mut care);
    g.hospital(&mut care);
    g.community(&mut care);
    g.care_and_support(&mut care, &prescribed);
    g.referrals(&mut care);
    let mut sens = Rng::stream(seed, domain::SENSITIVE, index);
    g.sensitive(&mut sens, show);
    g.consents(&mut k, show, &proxies);
    g.sample_users(show, &proxies);
    (g.out, g.users)
}

fn reference(kind: &str, id: &str) -> Value {
    json!({"reference": format!("{kind}/{id}")})
}

fn snomed(code: &str, display: &str) -> Value {
    json!({"coding": [{"system": SNOMED, "code": code, "display": display}]})
}

/// A UCUM quantity; whole numbers are written without a decimal point.
fn quantity(value: f64, unit: &str) -> Value {
    let number = if value.fract() == 0.0 && value.abs() < 1e15 {
        json!(value as i64)
    } else {
        json!(value)
    };
    json!({"value": number, "unit": unit, "system": UCUM, "code": unit})
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn observation_category(code: &str) -> Value {
    json!([{"coding": [{"system": OBSERVATION_CATEGORY, "code": code}]}])
}

fn insert(v: &mut Value, key: &str, value: Value) {
    if let Some(m) = v.as_object_mut() {
        m.insert(key.to_owned(), value);
    }
}

/// A date `0..days` days before `now` (at least one day back).
fn days_ago(r: &mut Rng, now: Date, days: i64) -> Date {
    now.plus_days(-r.range(1, days.max(1)))
}

/// Minutes past midnight in working hours.
fn working_minutes(r: &mut Rng) -> i64 {
    r.range(8 * 60, 18 * 60 - 15)
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (for attachments).
fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let six = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(BASE64.get(six).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A first name for someone born in `year`.
fn first_name(r: &mut Rng, male: bool, year: i64) -> &'static str {
    let list = match (male, year) {
        (true, ..1950) => MALE_OLD,
        (true, 1950..1980) => MALE_MID,
        (true, 1980..2000) => MALE_YOUNG,
        (true, _) => MALE_CHILD,
        (false, ..1950) => FEMALE_OLD,
        (false, 1950..1980) => FEMALE_MID,
        (false, 1980..2000) => FEMALE_YOUNG,
        (false, _) => FEMALE_CHILD,
    };
    r.pick_str(list)
}

/// A working-age adult's name (for staff and relatives).
pub(crate) fn adult_name(r: &mut Rng, male: bool) -> (String, String) {
    let year = if r.chance(0.5) { 1965 } else { 1985 };
    (
        first_name(r, male, year).to_owned(),
        r.pick_str(SURNAMES).to_owned(),
    )
}

/// A house number and street, and a postcode in the town.
pub(crate) fn street_address(r: &mut Rng, town: usize) -> (String, String) {
    let line = format!(
        "{} {} {}",
        r.range(1, 180),
        r.pick_str(STREETS),
        r.pick_str(STREET_KINDS)
    );
    (line, postcode(r, town))
}

fn postcode(r: &mut Rng, town: usize) -> String {
    let (area, district) = match TOWNS.get(town) {
        Some(t) => (t.area, r.pick(t.districts).copied().unwrap_or(1)),
        None => ("LS", 1),
    };
    let letter = |r: &mut Rng| char::from(r.pick(POSTCODE_UNIT_LETTERS).copied().unwrap_or(b'A'));
    let sector = r.range(1, 9);
    let (a, b) = (letter(r), letter(r));
    format!("{area}{district} {sector}{a}{b}")
}

/// A landline from Ofcom's drama range for the town.
pub(crate) fn landline(r: &mut Rng, town: usize) -> String {
    let prefix = TOWNS
        .get(town)
        .map(|t| t.phone_prefix)
        .unwrap_or("01632 960");
    format!("{prefix}{:03}", r.below(1000))
}

/// A mobile number from Ofcom's drama range (07700 900000–900999).
fn mobile(r: &mut Rng) -> String {
    format!("07700 900{:03}", r.below(1000))
}

impl Gen<'_> {
    fn id(&mut self) -> String {
        self.counter += 1;
        format!("{}-{}", self.pid, self.counter)
    }

    fn subject(&self) -> Value {
        reference("Patient", &self.pid)
    }

    fn practice_ods(&self) -> String {
        self.ics.ods(self.practice).to_owned()
    }

    /// A practitioner of an organisation with a role, as a reference.
    fn staff_ref(&self, r: &mut Rng, org: usize, role: Role) -> Option<Value> {
        self.ics
            .staff(org, role, r)
            .map(|s| reference("Practitioner", &s.id))
    }

    fn gp_ref(&self, r: &mut Rng) -> Value {
        self.staff_ref(r, self.practice, Role::Gp)
            .unwrap_or_else(|| ods_ref(self.ics.ods(self.practice)))
    }

    /// The organisation (ODS code) that recorded `v`: the organisation an
    /// encounter or episode belongs to, else the organisation of whoever
    /// recorded, asserted, requested, authored or performed it (staff ids
    /// are `<ODS>-<n>`), else the person's practice.
    fn recorder(&self, v: &Value) -> String {
        let ods = |r: &Value| -> Option<String> {
            let r = r.get("actor").unwrap_or(r);
            if let Some(i) = r.get("identifier")
                && i.get("system").and_then(Value::as_str) == Some(ODS_SYSTEM)
            {
                return i.get("value").and_then(Value::as_str).map(str::to_owned);
            }
            let reference = r.get("reference").and_then(Value::as_str)?;
            let id = reference.strip_prefix("Practitioner/")?;
            id.rsplit_once('-').map(|(org, _)| org.to_owned())
        };
        let fields: &[&str] = match v.get("resourceType").and_then(Value::as_str) {
            Some("Encounter") => &["serviceProvider"],
            Some("EpisodeOfCare") => &["managingOrganization"],
            Some("Patient" | "RelatedPerson" | "Consent") => &[],
            _ => &[
                "recorder",
                "asserter",
                "requester",
                "author",
                "performer",
                "informationSource",
                "managingOrganization",
            ],
        };
        for f in fields {
            let found = match v.get(*f) {
                Some(Value::Array(items)) => items.iter().find_map(&ods),
                Some(one) => ods(one),
                None => None,
            };
            if let Some(org) = found {
                return org;
            }
        }
        self.practice_ods()
    }

    /// Writes a resource, sealing it as the server would and stating who
    /// recorded it.
    fn push(&mut self, mut v: Value) {
        let recorder = self.recorder(&v);
        if let Some(meta) = v
            .as_object_mut()
            .map(|m| m.entry("meta").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
        {
            let tags = meta.entry("tag").or_insert_with(|| json!([]));
            if let Some(tags) = tags.as_array_mut() {
                tags.push(json!({"system": RECORDED_BY, "code": recorder}));
            }
        }
        labels::auto_label(&mut v);
        for t in labels::topics_of(&v) {
            if !self.sealed.contains(&t) {
                self.sealed.push(t);
            }
        }
        self.out.push(v);
    }

    fn has(&self, key: &str) -> bool {
        clinical::ltc_index(key).is_some_and(|i| self.held.iter().any(|h| h.ltc == i))
    }

    fn patient(&mut self, line: &str, town: usize, postcode: &str, mobile: Option<&str>) -> Value {
        let identifier = match self.ics.nhs.number(self.index) {
            Some(n) => json!([{
                "extension": [{
                    "url": VERIFICATION_EXTENSION,
                    "valueCodeableConcept": {"coding": [{
                        "system": VERIFICATION_SYSTEM,
                        "code": "01",
                        "display": "Number present and verified"
                    }]}
                }],
                "system": NHS_NUMBER_SYSTEM,
                "value": n
            }]),
            None => json!([{"system": LOCAL_PERSON_SYSTEM, "value": self.pid}]),
        };
        let mut name = json!({"use": "official", "family": self.family, "given": [self.given]});
        if self.age >= 18 {
            let prefix = match (self.male, self.index % 3) {
                (true, _) => "Mr",
                (false, 0) => "Mrs",
                (false, 1) => "Ms",
                (false, _) => "Miss",
            };
            insert(&mut name, "prefix", json!([prefix]));
        }
        let mut v = json!({
            "resourceType": "Patient",
            "id": self.pid,
            "identifier": identifier,
            "name": [name],
            "gender": if self.male { "male" } else { "female" },
            "birthDate": self.birth.to_string(),
            "address": [address(line, town, postcode, "home")],
            "generalPractitioner": [ods_ref(self.ics.ods(self.practice))],
            "managingOrganization": ods_ref(self.ics.ods(self.practice))
        });
        if let Some(m) = mobile
            && let Some(map) = v.as_object_mut()
        {
            map.insert(
                "telecom".into(),
                json!([{"system": "phone", "value": m, "use": "mobile"}]),
            );
        }
        v
    }

    /// Decides the proxies and writes their RelatedPersons.
    fn plan_proxies(
        &mut self,
        k: &mut Rng,
        show: Option<Showcase>,
        dementia: bool,
        line: &str,
        town: usize,
        postcode: &str,
    ) -> Vec<(ProxyPlan, String)> {
        let mut plans: Vec<ProxyPlan> = Vec::new();
        let now = self.now;
        let age = self.age;
        // Draws made for everyone, so that the stream stays aligned.
        let second_parent = k.chance(0.4);
        let mother_first = k.chance(0.6);
        let lpa = k.chance(0.5);
        let without_lpa = k.unit();
        let carer = k.chance(0.015);
        let carer_record = k.chance(0.5);
        let since = k.range(30, 3 * 365);
        if age < 11 {
            // Parental responsibility: from the six-week check, or as soon
            // as the baby is registered.
            let start = self.birth.plus_days(42).min(now.plus_days(-1));
            let first = if mother_first {
                ("MTH", "mother")
            } else {
                ("FTH", "father")
            };
            plans.push(ProxyPlan {
                relationship: first,
                attorney: false,
                male: !mother_first,
                basis: "parental-responsibility",
                levels: ALL_LEVELS.to_vec(),
                start,
                by_patient: false,
            });
            if second_parent {
                let other = if mother_first {
                    ("FTH", "father")
                } else {
                    ("MTH", "mother")
                };
                plans.push(ProxyPlan {
                    relationship: other,
                    attorney: false,
                    male: mother_first,
                    basis: "parental-responsibility",
                    levels: ALL_LEVELS.to_vec(),
                    start,
                    by_patient: false,
                });
            }
        } else if (dementia && lpa) || show == Some(Showcase::Attorney) {
            let son = k.chance(0.45);
            plans.push(ProxyPlan {
                relationship: if son {
                    ("SON", "natural son")
                } else {
                    ("DAU", "natural daughter")
                },
                attorney: true,
                male: son,
                basis: "lasting-power-of-attorney",
                levels: ALL_LEVELS.to_vec(),
                start: now.plus_days(-since),
                by_patient: false,
            });
        } else if (dementia && self.care_home.is_some() && without_lpa < 0.25)
            || show == Some(Showcase::BestInterest)
        {
            plans.push(ProxyPlan {
                relationship: ("DAU", "natural daughter"),
                attorney: false,
                male: false,
                basis: "best-interest",
                levels: vec!["PRESCR", "APPT"],
                start: now.plus_days(-since),
                by_patient: false,
            });
        } else if (dementia && without_lpa > 0.93) || show == Some(Showcase::Deputy) {
            plans.push(ProxyPlan {
                relationship: ("BRO", "brother"),
                attorney: false,
                male: true,
                basis: "court-appointed-personal-welfare-deputy",
                levels: vec!["PRESCR", "APPT", "RECRD", "TEST"],
                start: now.plus_days(-since),
                by_patient: false,
            });
        } else if (age >= 16 && carer) || show == Some(Showcase::ConsentProxy) {
            let spouse = age >= 40 && k.chance(0.6);
            let relationship = match (spouse, self.male) {
                (true, true) => ("WIFE", "wife"),
                (true, false) => ("HUSB", "husband"),
                (false, _) => ("DAU", "natural daughter"),
            };
            let mut levels = vec!["PRESCR", "APPT"];
            if carer_record {
                levels.push("RECRD");
            }
            plans.push(ProxyPlan {
                relationship,
                attorney: false,
                male: relationship.0 == "HUSB",
                basis: "consent",
                levels,
                start: now.plus_days(-since),
                by_patient: true,
            });
        }
        let mut written = Vec::new();
        for plan in plans {
            let id = self.id();
            let (given, family) = adult_name(k, plan.male);
            // Parents mostly share the child's surname.
            let family = if plan.relationship.0 == "MTH" || plan.relationship.0 == "FTH" {
                if k.chance(0.8) {
                    self.family.clone()
                } else {
                    family
                }
            } else {
                family
            };
            let mut relationship = vec![json!({"coding": [{
                "system": consent::ROLE_CODE,
                "code": plan.relationship.0,
                "display": plan.relationship.1
            }]})];
            if plan.attorney {
                relationship.push(json!({"coding": [{
                    "system": consent::ROLE_CODE,
                    "code": "HPOWATT",
                    "display": "healthcare power of attorney"
                }]}));
            }
            let lives_with = plan.relationship.0 == "MTH"
                || plan.relationship.0 == "FTH"
                || plan.relationship.0 == "WIFE"
                || plan.relationship.0 == "HUSB";
            let (rp_line, rp_postcode) = if lives_with && self.care_home.is_none() {
                (line.to_owned(), postcode.to_owned())
            } else {
                street_address(k, town)
            };
            let rp = json!({
                "resourceType": "RelatedPerson",
                "id": id,
                "active": true,
                "patient": self.subject(),
                "relationship": relationship,
                "name": [{"use": "official", "family": family, "given": [given]}],
                "telecom": [{"system": "phone", "value": mobile(k), "use": "mobile"}],
                "gender": if plan.male { "male" } else { "female" },
                "address": [address(&rp_line, town, &rp_postcode, "home")]
            });
            self.related.push(id.clone());
            self.push(rp);
            written.push((plan, id));
        }
        written
    }

    /// Episodes of care: care-home residency, home care, the local
    /// authority's case, and mental health.
    fn episodes(&mut self, r: &mut Rng) {
        let now = self.now;
        let la = self.ics.local_authority;
        let episode = |g: &mut Gen, org: usize, code: &str, display: &str, start: Date| {
            let id = g.id();
            let v = json!({
                "resourceType": "EpisodeOfCare",
                "id": id,
                "status": "active",
                "type": [{"coding": [{"system": EPISODE_TYPE, "code": code, "display": display}]}],
                "patient": g.subject(),
                "managingOrganization": ods_ref(g.ics.ods(org)),
                "period": {"start": start.to_string()}
            });
            g.push(v);
            id
        };
        if let Some(stay) = self.care_home.clone() {
            let id = episode(
                self,
                stay.org,
                "care-home-residency",
                "Care home residency",
                stay.start,
            );
            if stay.la_funded {
                let start = stay.start.plus_days(-r.range(7, 60));
                episode(self, la, "adult-social-care", "Adult social care", start);
            }
            if let Some(h) = self.care_home.as_mut() {
                h.episode = id;
            }
        }
        if let Some(stay) = self.home_care.clone() {
            let id = episode(
                self,
                stay.org,
                "home-care-package",
                "Home care package",
                stay.start,
            );
            let start = stay.start.plus_days(-r.range(14, 90));
            episode(self, la, "adult-social-care", "Adult social care", start);
            if let Some(h) = self.home_care.as_mut() {
                h.episode = id;
            }
        }
        if self.has("smi") {
            let start = now.plus_days(-r.range(60, 8 * 365));
            let mh = self.ics.mental_health;
            episode(
                self,
                mh,
                "community-mental-health",
                "Community mental health",
                start,
            );
        }
    }

    fn conditions(&mut self, r: &mut Rng) {
        let mut held = std::mem::take(&mut self.held);
        for h in &mut held {
            h.id = self.id();
            let recorder = self.gp_ref(r);
            let v = json!({
                "resourceType": "Condition",
                "id": h.id,
                "clinicalStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active"
                }]},
                "verificationStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed"
                }]},
                "category": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                    "code": "problem-list-item"
                }]}],
                "code": snomed(h.code, h.display),
                "subject": self.subject(),
                "onsetDateTime": h.onset.to_string(),
                "recordedDate": h.onset.to_string(),
                "recorder": recorder
            });
            self.push(v);
        }
        self.held = held;
    }

    fn medication_request(
        &mut self,
        r: &mut Rng,
        med: Med,
        authored: Date,
        reason: Option<String>,
        continuous: bool,
    ) -> String {
        let id = self.id();
        let requester = self.gp_ref(r);
        let mut v = json!({
            "resourceType": "MedicationRequest",
            "id": id,
            "status": if continuous { "active" } else { "completed" },
            "intent": "order",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                "code": "community"
            }]}],
            "medicationCodeableConcept": {"coding": [{
                "system": clinical::DMD,
                "code": med.code,
                "display": med.display
            }]},
            "subject": self.subject(),
            "authoredOn": authored.to_string(),
            "requester": requester,
            "courseOfTherapyType": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
                "code": if continuous { "continuous" } else { "acute" }
            }]},
            "dosageInstruction": [{"text": med.dose}],
            "dispenseRequest": {"performer": ods_ref(self.ics.ods(self.pharmacy))}
        });
        if let Some(reason) = reason {
            insert(
                &mut v,
                "reasonReference",
                json!([reference("Condition", &reason)]),
            );
        }
        self.push(v);
        id
    }

    /// Repeat prescriptions for the long-term conditions (one per medicine),
    /// an acute antibiotic for some, and over-the-counter paracetamol as a
    /// MedicationStatement.
    fn medicines(&mut self, r: &mut Rng) -> Vec<Prescribed> {
        let now = self.now;
        let mut prescribed: Vec<Prescribed> = Vec::new();
        let held = self.held.clone();
        for h in &held {
            let Some(ltc) = LTCS.get(h.ltc) else { continue };
            for (med, p) in ltc.meds {
                let take = r.chance(*p);
                if !take || prescribed.iter().any(|x| x.med.code == med.code) {
                    continue;
                }
                let authored = h.onset.plus_days(r.range(0, 60)).min(now.plus_days(-1));
                let id = self.medication_request(r, *med, authored, Some(h.id.clone()), true);
                prescribed.push(Prescribed { med: *med, id });
            }
        }
        if self.care_home.is_some() && r.chance(0.4) {
            let authored = days_ago(r, now, 365);
            let id = self.medication_request(r, clinical::PARACETAMOL, authored, None, true);
            prescribed.push(Prescribed {
                med: clinical::PARACETAMOL,
                id,
            });
        }
        if r.chance(0.08) {
            let authored = days_ago(r, now, 365);
            self.medication_request(r, clinical::AMOXICILLIN, authored, None, false);
        }
        if self.age >= 18 && self.care_home.is_none() && r.chance(0.05) {
            let id = self.id();
            let date = days_ago(r, now, 365);
            let v = json!({
                "resourceType": "MedicationStatement",
                "id": id,
                "status": "active",
                "medicationCodeableConcept": {"coding": [{
                    "system": clinical::DMD,
                    "code": clinical::PARACETAMOL.code,
                    "display": clinical::PARACETAMOL.display
                }]},
                "subject": self.subject(),
                "effectiveDateTime": date.to_string(),
                "dateAsserted": date.to_string(),
                "informationSource": self.subject(),
                "dosage": [{"text": "Bought over the counter; two tablets when needed"}]
            });
            self.push(v);
        }
        prescribed
    }

    fn observation(
        &mut self,
        category: &str,
        code: (&str, &str),
        when: String,
        performer: Value,
        value: Option<Value>,
    ) -> Value {
        let id = self.id();
        let mut v = json!({
            "resourceType": "Observation",
            "id": id,
            "status": "final",
            "category": observation_category(category),
            "code": snomed(code.0, code.1),
            "subject": self.subject(),
            "effectiveDateTime": when,
            "performer": [performer]
        });
        if let Some(q) = value {
            insert(&mut v, "valueQuantity", q);
        }
        v
    }

    fn blood_pressure(&mut self, when: String, performer: Value, sys: f64, dia: f64) {
        let mut v = self.observation(
            "vital-signs",
            ("75367002", "Blood pressure"),
            when,
            performer,
            None,
        );
        insert(
            &mut v,
            "component",
            json!([
                {"code": snomed("271649006", "Systolic blood pressure"),
                 "valueQuantity": quantity(sys, "mm[Hg]")},
                {"code": snomed("271650006", "Diastolic blood pressure"),
                 "valueQuantity": quantity(dia, "mm[Hg]")}
            ]),
        );
        self.push(v);
    }

    /// Findings: blood pressure, HbA1c, eGFR, BMI, smoking status, and
    /// children's weights from health visiting.
    fn observations(&mut self, r: &mut Rng) {
        let now = self.now;
        if self.has("hypertension") && r.chance(0.9) {
            let when = days_ago(r, now, 365).at(working_minutes(r));
            let gp = self.gp_ref(r);
            let sys = r.range(118, 165) as f64;
            let dia = r.range(68, 96) as f64;
            self.blood_pressure(when, gp, sys, dia);
        }
        if self.has("diabetes") && r.chance(0.9) {
            let when = days_ago(r, now, 365).at(working_minutes(r));
            let gp = self.gp_ref(r);
            let value = r.range(42, 95) as f64;
            let v = self.observation(
                "laboratory",
                ("43396009", "Hemoglobin A1c measurement"),
                when,
                gp,
                Some(quantity(value, "mmol/mol")),
            );
            self.push(v);
        }
        if self.has("ckd") && r.chance(0.9) {
            let when = days_ago(r, now, 365).at(working_minutes(r));
            let gp = self.gp_ref(r);
            let value = r.range(15, 59) as f64;
            let v = self.observation(
                "laboratory",
                ("80274001", "Glomerular filtration rate"),
                when,
                gp,
                Some(quantity(value, "mL/min/{1.73_m2}")),
            );
            self.push(v);
        }
        if self.age >= 18 && r.chance(0.45) {
            let when = days_ago(r, now, 2 * 365).at(working_minutes(r));
            let gp = self.gp_ref(r);
            let bmi = round1(18.5 + (r.unit() + r.unit() + r.unit()) * 6.5);
            let v = self.observation(
                "exam",
                ("60621009", "Body mass index"),
                when,
                gp,
                Some(quantity(bmi, "kg/m2")),
            );
            self.push(v);
        }
        if self.age >= 16 && r.chance(0.85) {
            let when = days_ago(r, now, 3 * 365).at(working_minutes(r));
            let gp = self.gp_ref(r);
            let x = r.unit();
            let finding = if x < 0.13 {
                ("77176002", "Smoker")
            } else if x < 0.40 {
                ("8517006", "Ex-smoker")
            } else {
                ("266919005", "Never smoked tobacco")
            };
            let v = self.observation("social-history", finding, when, gp, None);
            self.push(v);
        }
        if self.age < 5 {
            let hv = self.ics.health_visiting;
            let when = days_ago(r, now, 300).at(working_minutes(r));
            let nurse = self
                .staff_ref(r, hv, Role::CommunityClinician)
                .unwrap_or_else(|| ods_ref(self.ics.ods(hv)));
            let years = (now.days() - self.birth.days()) as f64 / 365.25;
            let kg = round1(3.4 + years * 3.2 + (r.unit() - 0.5) * 1.5);
            let v = self.observation(
                "vital-signs",
                ("27113001", "Body weight"),
                when,
                nurse,
                Some(quantity(kg.max(2.5), "kg")),
            );
            self.push(v);
        }
    }

    fn allergies(&mut self, r: &mut Rng) {
        let p = if self.age < 18 { 0.05 } else { 0.11 };
        if !r.chance(p) {
            return;
        }
        let substances: [(&str, &str, &str, f64); 6] = [
            ("764146007", "Penicillin", "medication", 0.6),
            ("387458008", "Aspirin", "medication", 0.08),
            ("387494007", "Codeine", "medication", 0.08),
            ("256349002", "Peanut", "food", 0.12),
            ("111088007", "Latex", "environment", 0.05),
            ("227493005", "Cashew nut", "food", 0.07),
        ];
        let weights: Vec<f64> = substances.iter().map(|s| s.3).collect();
        let Some((code, display, category, _)) = substances.get(r.weighted(&weights)) else {
            return;
        };
        let reactions: [(&str, &str, &str); 4] = [
            ("271807003", "Eruption of skin", "mild"),
            ("267038008", "Edema", "moderate"),
            ("422587007", "Nausea", "mild"),
            ("39579001", "Anaphylaxis", "severe"),
        ];
        let Some((rcode, rdisplay, severity)) = r.pick(&reactions) else {
            return;
        };
        let id = self.id();
        let recorded = days_ago(r, self.now, 20 * 365).max(self.birth);
        let recorder = self.gp_ref(r);
        let v = json!({
            "resourceType": "AllergyIntolerance",
            "id": id,
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "code": "active"
            }]},
            "verificationStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                "code": "confirmed"
            }]},
            "type": "allergy",
            "category": [category],
            "criticality": if *severity == "severe" { "high" } else { "low" },
            "code": snomed(code, display),
            "patient": self.subject(),
            "recordedDate": recorded.to_string(),
            "recorder": recorder,
            "reaction": [{
                "manifestation": [snomed(rcode, rdisplay)],
                "severity": severity
            }]
        });
        self.push(v);
    }

    fn immunisation(&mut self, code: (&str, &str), on: Date, performer: usize) {
        if on > self.now || on < self.birth {
            return;
        }
        let id = self.id();
        let v = json!({
            "resourceType": "Immunization",
            "id": id,
            "status": "completed",
            "vaccineCode": snomed(code.0, code.1),
            "patient": self.subject(),
            "occurrenceDateTime": on.to_string(),
            "primarySource": true,
            "performer": [{"actor": ods_ref(self.ics.ods(performer))}]
        });
        self.push(v);
    }

    /// The routine childhood schedule (a subset: 6-in-1 ×3, rotavirus,
    /// MenB, pneumococcal, MMR ×2, HPV), and seasonal and older adults'
    /// vaccines in the last year or two.
    fn immunisations(&mut self, r: &mut Rng) {
        let now = self.now;
        let birth = self.birth;
        let practice = self.practice;
        const DTAP: (&str, &str) = (
            "836381006",
            "Corynebacterium diphtheriae antigen-containing vaccine product",
        );
        const ROTA: (&str, &str) = ("836387005", "Rotavirus antigen-containing vaccine product");
        const MENB: (&str, &str) = (
            "836401009",
            "Neisseria meningitidis antigen-containing vaccine product",
        );
        const PNEUMO: (&str, &str) = (
            "836398006",
            "Streptococcus pneumoniae antigen-containing vaccine product",
        );
        const MMR: (&str, &str) = ("871831003", "Measles and mumps and rubella vaccine");
        const HPV: (&str, &str) = (
            "836379009",
            "Human papillomavirus antigen-containing vaccine product",
        );
        const FLU: (&str, &str) = (
            "1181000221105",
            "Influenza virus antigen only vaccine product",
        );
        const COVID: (&str, &str) = ("1119349007", "SARS-CoV-2 mRNA vaccine");
        const SHINGLES: (&str, &str) = (
            "836495005",
            "Human alphaherpesvirus 3 antigen-containing vaccine product",
        );
        if self.age < 19 {
            let schedule: [((&str, &str), i64); 10] = [
                (DTAP, 56),
                (DTAP, 84),
                (DTAP, 112),
                (ROTA, 56),
                (ROTA, 84),
                (MENB, 56),
                (MENB, 112),
                (PNEUMO, 365),
                (MMR, 366),
                (MMR, 3 * 365 + 120),
            ];
            for (code, days) in schedule {
                let given = r.chance(0.93);
                let late = r.range(0, 21);
                if given {
                    self.immunisation(code, birth.plus_days(days + late), practice);
                }
            }
            let hpv = r.chance(0.75);
            let late = r.range(0, 200);
            if self.age >= 13 && hpv {
                self.immunisation(HPV, birth.plus_years(12).plus_days(late), practice);
            }
        }
        // The last autumn campaign (1 October – 31 January).
        let (y, m, _) = now.ymd();
        let season_year = if m >= 10 { y } else { y - 1 };
        let season = Date::from_ymd(season_year, 10, 1).unwrap_or(now);
        let eligible_flu = self.age >= 65
            || self.has("diabetes")
            || self.has("copd")
            || self.has("asthma")
            || self.has("chd")
            || self.has("ckd")
            || self.has("heart-failure")
            || self.has("stroke")
            || self.care_home.is_some();
        let flu_p = if self.age >= 65 { 0.8 } else { 0.45 };
        let flu = r.chance(flu_p);
        let flu_day = r.range(0, 100);
        let at_pharmacy = r.chance(0.3);
        if eligible_flu && flu {
            let by = if at_pharmacy { self.pharmacy } else { practice };
            self.immunisation(FLU, season.plus_days(flu_day), by);
        }
        let covid = r.chance(0.6);
        let covid_day = r.range(0, 80);
        if self.age >= 75 && covid {
            self.immunisation(COVID, season.plus_days(covid_day), practice);
        }
        let pneumo = r.chance(0.7);
        let pneumo_day = r.range(0, 365 * 2);
        if self.age >= 65 && pneumo {
            self.immunisation(PNEUMO, birth.plus_years(65).plus_days(pneumo_day), practice);
        }
        let shingles = r.chance(0.45);
        let shingles_day = r.range(0, 365 * 3);
        if (70..80).contains(&self.age) && shingles {
            self.immunisation(
                SHINGLES,
                birth.plus_years(70).plus_days(shingles_day),
                practice,
            );
        }
    }

    /// GP consultations in the last year.
    fn gp_consultations(&mut self, r: &mut Rng) {
        let now = self.now;
        let base = match self.age {
            ..5 => 4.0,
            5..15 => 1.5,
            15..45 if !self.male => 3.5,
            15..45 => 2.0,
            45..65 => 3.0,
            65..80 => 5.0,
            _ => 7.0,
        };
        let mean = base + 0.7 * self.held.len() as f64;
        let n = r.poisson(mean).min(25);
        let mut days: Vec<i64> = (0..n).map(|_| r.range(1, 365)).collect();
        days.sort_unstable();
        let practice_ods = self.practice_ods();
        for d in days {
            let day = now.plus_days(-d);
            let start = working_minutes(r);
            let length = r.range(8, 20);
            let x = r.unit();
            let kind = if self.care_home.is_some() || (self.age >= 80 && x < 0.15) {
                ("439708006", "Home visit")
            } else if x < 0.4 {
                ("185317003", "Telephone encounter")
            } else {
                ("11429006", "Consultation")
            };
            let gp = self.gp_ref(r);
            let id = self.id();
            let mut v = json!({
                "resourceType": "Encounter",
                "id": id,
                "status": "finished",
                "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
                "type": [snomed(kind.0, kind.1)],
                "subject": self.subject(),
                "participant": [{"individual": gp}],
                "period": {"start": day.at(start), "end": day.at(start + length)},
                "serviceProvider": ods_ref(&practice_ods)
            });
            if !self.held.is_empty() && r.chance(0.4) {
                let i = r.below(self.held.len() as u64) as usize;
                if let Some(h) = self.held.get(i) {
                    insert(
                        &mut v,
                        "reasonReference",
                        json!([reference("Condition", &h.id)]),
                    );
                }
            }
            self.push(v);
        }
    }

    /// Admissions to the acute trust in the last year, and any current stay.
    fn hospital(&mut self, r: &mut Rng) {
        let now = self.now;
        let p = match self.age {
            ..15 => 0.03,
            15..45 => 0.04,
            45..65 => 0.06,
            65..75 => 0.10,
            75..85 => 0.16,
            _ => 0.25,
        };
        let p = if self.care_home.is_some() { 0.3 } else { p };
        let admitted = r.chance(p);
        let twice = r.chance(0.15);
        let mut stays: Vec<(Date, i64, bool, Option<usize>)> = Vec::new();
        if admitted {
            for _ in 0..(1 + usize::from(twice)) {
                let emergency = r.chance(0.65);
                let start = now.plus_days(-r.range(20, 365));
                let los = if emergency {
                    1 + i64::from(r.poisson(if self.age >= 75 { 6.0 } else { 3.0 }))
                } else {
                    r.range(0, 4)
                };
                stays.push((start, los, emergency, None));
            }
        }
        // Discharged into the care home they live in now.
        if let Some(home) = &self.care_home
            && home.start > now.plus_days(-365)
            && r.chance(0.5)
        {
            let los = 3 + i64::from(r.poisson(7.0));
            stays.push((home.start.plus_days(-los), los, true, Some(home.org)));
        }
        stays.sort_by_key(|s| s.0);
        for (start, los, emergency, to_home) in stays {
            self.admission(r, start, los, emergency, to_home, true);
        }
        // About one person in 400 is in hospital today.
        let inpatient = r.chance(0.0025 * if self.age >= 75 { 4.0 } else { 1.0 });
        if inpatient {
            let start = now.plus_days(-r.range(0, 10));
            self.admission(r, start, 0, true, None, false);
        }
    }

    fn admission(
        &mut self,
        r: &mut Rng,
        start: Date,
        los: i64,
        emergency: bool,
        to_home: Option<usize>,
        finished: bool,
    ) {
        let acute = self.ics.acute;
        let consultant = self
            .staff_ref(r, acute, Role::HospitalClinician)
            .unwrap_or_else(|| ods_ref(self.ics.ods(acute)));
        let end = start.plus_days(los);
        let admit_minutes = r.range(9 * 60, 22 * 60);
        let discharge_minutes = if los == 0 {
            (admit_minutes + r.range(120, 240)).min(23 * 60 + 59)
        } else {
            r.range(11 * 60, 17 * 60)
        };
        let encounter_id = self.id();
        let (reason, procedure) = if emergency {
            let mut reasons: Vec<(&str, &str)> = vec![
                ("233604007", "Pneumonia"),
                ("68566005", "Urinary tract infectious disease"),
                ("29857009", "Chest pain"),
                ("128045006", "Cellulitis"),
                ("91302008", "Sepsis"),
            ];
            if self.age >= 65 {
                reasons.push(("5913000", "Fracture of neck of femur"));
            }
            if self.has("copd") {
                reasons.push((
                    "195951007",
                    "Acute exacerbation of chronic obstructive airways disease",
                ));
            }
            (r.pick(&reasons).copied(), None)
        } else {
            let procedures: [(&str, &str); 4] = [
                ("52734007", "Total replacement of hip"),
                ("609588000", "Total knee replacement"),
                ("38102005", "Cholecystectomy"),
                ("73761001", "Colonoscopy"),
            ];
            (None, r.pick(&procedures).copied())
        };
        let mut encounter = json!({
            "resourceType": "Encounter",
            "id": encounter_id,
            "status": if finished { "finished" } else { "in-progress" },
            "class": {"system": ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
            "type": [if emergency {
                snomed("183452005", "Emergency hospital admission")
            } else {
                snomed("8715000", "Hospital admission, elective")
            }],
            "subject": self.subject(),
            "participant": [{"individual": consultant.clone()}],
            "period": {"start": start.at(admit_minutes)},
            "serviceProvider": ods_ref(self.ics.ods(acute))
        });
        let admit_source = if emergency { "emd" } else { "gp" };
        let mut hospitalization = json!({
            "admitSource": {"coding": [{"system": ADMIT_SOURCE, "code": admit_source}]}
        });
        let mut destination_text = "usual place of residence";
        if finished {
            insert(
                &mut encounter,
                "period",
                json!({"start": start.at(admit_minutes), "end": end.at(discharge_minutes)}),
            );
            let care_home = to_home.or_else(|| self.care_home.as_ref().map(|h| h.org));
            let (hl7, uk, text) = match care_home {
                Some(org) => {
                    let nursing = self
                        .ics
                        .org(org)
                        .is_some_and(|o| o.name.contains("Nursing"));
                    let hl7 = if nursing { "snf" } else { "long" };
                    (
                        hl7,
                        "85",
                        "Non-NHS (other than Local Authority) run care home",
                    )
                }
                None if r.chance(0.03) => (
                    "other-hcf",
                    "51",
                    "NHS other hospital provider - ward for general patients",
                ),
                None => ("home", "19", "Usual place of residence"),
            };
            destination_text = text;
            insert(
                &mut hospitalization,
                "dischargeDisposition",
                json!({"coding": [
                    {"system": DISCHARGE_DISPOSITION, "code": hl7},
                    {"system": DISCHARGE_DESTINATION, "code": uk, "display": text}
                ]}),
            );
        }
        insert(&mut encounter, "hospitalization", hospitalization);
        if let Some((code, display)) = reason {
            insert(&mut encounter, "reasonCode", json!([snomed(code, display)]));
        }
        self.push(encounter);
        if let Some((code, display)) = reason {
            let id = self.id();
            let mut v = json!({
                "resourceType": "Condition",
                "id": id,
                "clinicalStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": if finished { "resolved" } else { "active" }
                }]},
                "verificationStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed"
                }]},
                "category": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                    "code": "encounter-diagnosis"
                }]}],
                "code": snomed(code, display),
                "subject": self.subject(),
                "encounter": reference("Encounter", &encounter_id),
                "onsetDateTime": start.to_string(),
                "recordedDate": start.to_string(),
                "asserter": consultant.clone()
            });
            if finished {
                insert(&mut v, "abatementDateTime", json!(end.to_string()));
            }
            self.push(v);
        }
        if let Some((code, display)) = procedure {
            let id = self.id();
            let v = json!({
                "resourceType": "Procedure",
                "id": id,
                "status": "completed",
                "code": snomed(code, display),
                "subject": self.subject(),
                "encounter": reference("Encounter", &encounter_id),
                "performedDateTime": start.at(admit_minutes + 90),
                "performer": [{"actor": consultant, "onBehalfOf": ods_ref(self.ics.ods(acute))}]
            });
            self.push(v);
        }
        if finished && r.chance(0.7) {
            let id = self.id();
            let what = reason.or(procedure).map(|x| x.1).unwrap_or("assessment");
            let text = format!(
                "Discharge summary. Admitted {} ({}). Discharged {} to: {}.",
                start,
                what.to_lowercase(),
                end,
                destination_text.to_lowercase()
            );
            let acute_ods = self.ics.ods(acute).to_owned();
            let v = json!({
                "resourceType": "DocumentReference",
                "id": id,
                "status": "current",
                "type": snomed("373942005", "Discharge summary"),
                "subject": self.subject(),
                "date": end.at(discharge_minutes),
                "author": [ods_ref(&acute_ods)],
                "custodian": ods_ref(&acute_ods),
                "content": [{"attachment": {
                    "contentType": "text/plain",
                    "language": "en-GB",
                    "title": "Discharge summary",
                    "data": base64(text.as_bytes())
                }}],
                "context": {"encounter": [reference("Encounter", &encounter_id)]}
            });
            self.push(v);
        }
    }

    /// Community services: district nursing, mental health, midwifery,
    /// health visiting, and consultations at a community pharmacy.
    fn community(&mut self, r: &mut Rng) {
        let now = self.now;
        let housebound = self.age >= 75
            && (self.held.len() >= 2 || self.home_care.is_some())
            && self.care_home.is_none();
        if housebound && r.chance(0.15) {
            let dn = self.ics.district_nursing;
            let start = now.plus_days(-r.range(30, 400));
            let authored = start.plus_days(-r.range(2, 14));
            self.referral(
                r,
                Referral {
                    code: ("225358003", "Wound care"),
                    from: self.practice,
                    from_role: Role::Gp,
                    to: dn,
                    authored,
                    status: Some("completed"),
                },
            );
            let episode = self.id();
            let v = json!({
                "resourceType": "EpisodeOfCare",
                "id": episode,
                "status": "active",
                "type": [{"coding": [{"system": EPISODE_TYPE, "code": "district-nursing", "display": "District nursing"}]}],
                "patient": self.subject(),
                "managingOrganization": ods_ref(self.ics.ods(dn)),
                "period": {"start": start.to_string()}
            });
            self.push(v);
            for _ in 0..r.range(1, 3) {
                let day = days_ago(r, now, (now.days() - start.days()).max(1));
                self.visit(
                    r,
                    dn,
                    Role::CommunityClinician,
                    "HH",
                    ("225358003", "Wound care"),
                    day,
                    Some(&episode),
                    None,
                );
            }
        }
        if self.has("smi") {
            let mh = self.ics.mental_health;
            let reason = self
                .held
                .iter()
                .find(|h| LTCS.get(h.ltc).is_some_and(|l| l.key == "smi"))
                .map(|h| (h.code, h.display));
            for _ in 0..r.range(1, 2) {
                let day = days_ago(r, now, 180);
                self.visit(
                    r,
                    mh,
                    Role::CommunityClinician,
                    "AMB",
                    ("11429006", "Consultation"),
                    day,
                    None,
                    reason.map(|x| (x.0.to_owned(), x.1.to_owned())),
                );
            }
        }
        let pregnant = !self.male && (18..45).contains(&self.age) && r.chance(0.045);
        if pregnant {
            let mw = self.ics.midwifery;
            let weeks = r.range(8, 38);
            let onset = now.plus_days(-weeks * 7);
            let id = self.id();
            let recorder = self.gp_ref(r);
            let v = json!({
                "resourceType": "Condition",
                "id": id,
                "clinicalStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active"
                }]},
                "verificationStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed"
                }]},
                "category": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                    "code": "problem-list-item"
                }]}],
                "code": snomed("77386006", "Pregnancy"),
                "subject": self.subject(),
                "onsetDateTime": onset.to_string(),
                "recordedDate": onset.plus_days(28).min(now).to_string(),
                "recorder": recorder
            });
            self.push(v);
            let episode = self.id();
            let booked = onset.plus_days(56).min(now.plus_days(-1));
            let v = json!({
                "resourceType": "EpisodeOfCare",
                "id": episode,
                "status": "active",
                "type": [{"coding": [{"system": EPISODE_TYPE, "code": "maternity", "display": "Maternity care"}]}],
                "patient": self.subject(),
                "managingOrganization": ods_ref(self.ics.ods(mw)),
                "period": {"start": booked.to_string()}
            });
            self.push(v);
            let visits = 1 + (weeks - 8) / 8;
            for i in 0..visits {
                let day = booked.plus_days(i * 56).min(now.plus_days(-1));
                self.visit(
                    r,
                    mw,
                    Role::CommunityClinician,
                    "AMB",
                    ("424441002", "Prenatal initial visit"),
                    day,
                    Some(&episode),
                    None,
                );
            }
        }
        if self.age < 5 {
            let hv = self.ics.health_visiting;
            let day = days_ago(r, now, 300);
            self.visit(
                r,
                hv,
                Role::CommunityClinician,
                "HH",
                ("11429006", "Consultation"),
                day,
                None,
                None,
            );
        }
        if self.age >= 16 && r.chance(0.03) {
            let day = days_ago(r, now, 365);
            let pharmacy = self.pharmacy;
            self.visit(
                r,
                pharmacy,
                Role::Pharmacist,
                "AMB",
                ("11429006", "Consultation"),
                day,
                None,
                None,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn visit(
        &mut self,
        r: &mut Rng,
        org: usize,
        role: Role,
        class: &str,
        kind: (&str, &str),
        day: Date,
        episode: Option<&str>,
        reason: Option<(String, String)>,
    ) {
        let who = self
            .staff_ref(r, org, role)
            .unwrap_or_else(|| ods_ref(self.ics.ods(org)));
        let start = working_minutes(r);
        let id = self.id();
        let class_display = if class == "HH" {
            "home health"
        } else {
            "ambulatory"
        };
        let mut v = json!({
            "resourceType": "Encounter",
            "id": id,
            "status": "finished",
            "class": {"system": ACT_CODE, "code": class, "display": class_display},
            "type": [snomed(kind.0, kind.1)],
            "subject": self.subject(),
            "participant": [{"individual": who}],
            "period": {"start": day.at(start), "end": day.at(start + r.range(15, 45))},
            "serviceProvider": ods_ref(self.ics.ods(org))
        });
        if let Some(e) = episode {
            insert(
                &mut v,
                "episodeOfCare",
                json!([reference("EpisodeOfCare", e)]),
            );
        }
        if let Some((code, display)) = reason {
            insert(&mut v, "reasonCode", json!([snomed(&code, &display)]));
        }
        if self.ics.org(org).map(|o| o.kind) == Some(OrgKind::MentalHealthTrust) {
            labels::seal(&mut v, Topic::Psy);
        }
        self.push(v);
    }

    /// Care and support: plans, About Me, vital signs and medication rounds
    /// in care homes.
    fn care_and_support(&mut self, r: &mut Rng, prescribed: &[Prescribed]) {
        let now = self.now;
        let (stay, in_home) = match (&self.care_home, &self.home_care) {
            (Some(h), _) => (h.clone(), true),
            (None, Some(p)) => (p.clone(), false),
            (None, None) => {
                // Some people with dementia have an About Me without care.
                if self.has("dementia") && r.chance(0.3) {
                    let when = days_ago(r, now, 700);
                    self.about_me(r, when);
                }
                return;
            }
        };
        let author = if in_home {
            stay.org
        } else {
            self.ics.local_authority
        };
        let activities: &[&str] = if in_home {
            &[
                "Support with washing and dressing each morning",
                "Medicines given by staff at each round",
                "Encourage fluids: at least 1.5 litres a day, recorded on the fluid chart",
                "Reposition every four hours at night to protect skin",
                "Join the afternoon activity group when they wish",
            ]
        } else {
            &[
                "Morning call: help with getting up, washing and breakfast",
                "Lunchtime call: prepare a hot meal and prompt medicines",
                "Evening call: help to get ready for bed",
                "Weekly shopping and collection of prescriptions",
            ]
        };
        let detail: Vec<Value> = activities
            .iter()
            .filter(|_| r.chance(0.8))
            .map(|a| json!({"detail": {"status": "in-progress", "description": a}}))
            .collect();
        let id = self.id();
        let mut plan = json!({
            "resourceType": "CarePlan",
            "id": id,
            "status": "active",
            "intent": "plan",
            "category": [snomed("734163000", "Care plan")],
            "title": "Care and support plan",
            "subject": self.subject(),
            "period": {"start": stay.start.to_string()},
            "created": stay.start.to_string(),
            "author": ods_ref(self.ics.ods(author))
        });
        if !detail.is_empty() {
            insert(&mut plan, "activity", json!(detail));
        }
        self.push(plan);
        if r.chance(if in_home { 0.8 } else { 0.5 }) {
            let when = stay.start.plus_days(r.range(0, 30)).min(now.plus_days(-1));
            self.about_me(r, when);
        }
        if !in_home {
            return;
        }
        // Vital signs taken by the home's staff in the last week.
        let home = stay.org;
        for d in [1, 3, 6] {
            let day = now.plus_days(-d);
            let when = day.at(r.range(9 * 60, 11 * 60));
            let worker = self
                .staff_ref(r, home, Role::CareWorker)
                .unwrap_or_else(|| ods_ref(self.ics.ods(home)));
            let temp = round1(36.2 + r.unit() * 1.2);
            let v = self.observation(
                "vital-signs",
                ("386725007", "Body temperature"),
                when.clone(),
                worker.clone(),
                Some(quantity(temp, "Cel")),
            );
            self.push(v);
            let pulse = r.range(58, 98) as f64;
            let v = self.observation(
                "vital-signs",
                ("364075005", "Heart rate"),
                when.clone(),
                worker.clone(),
                Some(quantity(pulse, "/min")),
            );
            self.push(v);
            let spo2 = r.range(92, 99) as f64;
            let v = self.observation(
                "vital-signs",
                ("431314004", "Peripheral oxygen saturation"),
                when,
                worker,
                Some(quantity(spo2, "%")),
            );
            self.push(v);
        }
        // Medication rounds for the last seven days.
        for p in prescribed {
            let times: &[i64] = match p.med.times_a_day {
                0 => &[],
                1 => &[8 * 60],
                2 => &[8 * 60, 20 * 60],
                _ => &[8 * 60, 13 * 60, 18 * 60],
            };
            for d in (1..=7).rev() {
                let day = now.plus_days(-d);
                for t in times {
                    let given_by = if r.chance(0.3) {
                        Role::CareNurse
                    } else {
                        Role::CareWorker
                    };
                    let who = self
                        .staff_ref(r, home, given_by)
                        .unwrap_or_else(|| ods_ref(self.ics.ods(home)));
                    let declined = r.chance(0.02);
                    let id = self.id();
                    let mut v = json!({
                        "resourceType": "MedicationAdministration",
                        "id": id,
                        "status": if declined { "not-done" } else { "completed" },
                        "medicationCodeableConcept": {"coding": [{
                            "system": clinical::DMD,
                            "code": p.med.code,
                            "display": p.med.display
                        }]},
                        "subject": self.subject(),
                        "context": reference("EpisodeOfCare", &stay.episode),
                        "effectiveDateTime": day.at(t + r.range(0, 20)),
                        "performer": [{"actor": who}],
                        "request": reference("MedicationRequest", &p.id),
                        "dosage": {"text": p.med.dose}
                    });
                    if declined {
                        insert(
                            &mut v,
                            "statusReason",
                            json!([{"text": "Declined by the resident"}]),
                        );
                    }
                    self.push(v);
                }
            }
        }
    }

    /// An About Me (a QuestionnaireResponse tagged `about-me`).
    fn about_me(&mut self, r: &mut Rng, when: Date) {
        let important: &[&str] = &[
            "My family, who visit on Sundays",
            "My garden and watching the birds",
            "Listening to brass band music",
            "My faith and going to church",
            "Watching the rugby league",
            "My cat, Smudge",
        ];
        let communicate: &[&str] = &[
            "Speak slowly and face me: I am hard of hearing in my left ear",
            "I wear glasses for reading; please make sure I have them",
            "I understand best with short sentences and pictures",
            "Give me time to answer",
        ];
        let help: &[&str] = &[
            "A cup of tea with two sugars when I wake up",
            "Going to bed after the news at ten",
            "A walk in the afternoon if the weather is fine",
            "Having a bath rather than a shower",
        ];
        let author = match self.related.first() {
            Some(rp) if r.chance(0.5) => reference("RelatedPerson", rp),
            _ => self.subject(),
        };
        let id = self.id();
        let v = json!({
            "resourceType": "QuestionnaireResponse",
            "id": id,
            "meta": {"tag": [{"system": RECORD_CATEGORY, "code": "about-me", "display": "About Me"}]},
            "status": "completed",
            "subject": self.subject(),
            "authored": when.at(working_minutes(r)),
            "author": author,
            "item": [
                {"linkId": "what-matters", "text": "What matters to me",
                 "answer": [{"valueString": r.pick_str(important)}]},
                {"linkId": "communication", "text": "How to communicate with me",
                 "answer": [{"valueString": r.pick_str(communicate)}]},
                {"linkId": "wellbeing", "text": "What helps me to be well",
                 "answer": [{"valueString": r.pick_str(help)}]}
            ]
        });
        self.push(v);
    }

    /// A ServiceRequest to another organisation and the Task that tracks it.
    fn referral(&mut self, r: &mut Rng, f: Referral) {
        let status = f.status.unwrap_or_else(|| {
            let x = r.unit();
            if x < 0.5 {
                "completed"
            } else if x < 0.65 {
                "in-progress"
            } else if x < 0.75 {
                "accepted"
            } else if x < 0.85 {
                "requested"
            } else if x < 0.90 {
                "received"
            } else if x < 0.95 {
                "rejected"
            } else {
                "cancelled"
            }
        });
        let request_status = match status {
            "completed" => "completed",
            "rejected" | "cancelled" => "revoked",
            _ => "active",
        };
        let requester = self
            .staff_ref(r, f.from, f.from_role)
            .unwrap_or_else(|| ods_ref(self.ics.ods(f.from)));
        let from = self.ics.ods(f.from).to_owned();
        let to = self.ics.ods(f.to).to_owned();
        let request_id = self.id();
        let v = json!({
            "resourceType": "ServiceRequest",
            "id": request_id,
            "status": request_status,
            "intent": "order",
            "category": [snomed("3457005", "Patient referral")],
            "code": snomed(f.code.0, f.code.1),
            "subject": self.subject(),
            "authoredOn": f.authored.at(working_minutes(r)),
            "requester": requester,
            "performer": [ods_ref(&to)]
        });
        self.push(v);
        let modified = f
            .authored
            .plus_days(r.range(0, 21))
            .min(self.now.plus_days(-1))
            .max(f.authored);
        let business = match status {
            "requested" => "Awaiting triage",
            "received" => "Received by the team",
            "accepted" => "Accepted; waiting for an allocation",
            "in-progress" => "Allocated to a worker",
            "completed" => "Completed",
            "rejected" => "Does not meet the service's criteria",
            _ => "Withdrawn by the referrer",
        };
        let task_id = self.id();
        let mut task = json!({
            "resourceType": "Task",
            "id": task_id,
            "status": status,
            "businessStatus": {"text": business},
            "intent": "order",
            "focus": reference("ServiceRequest", &request_id),
            "for": self.subject(),
            "authoredOn": f.authored.at(9 * 60),
            "lastModified": modified.at(16 * 60),
            "requester": ods_ref(&from),
            "owner": ods_ref(&to)
        });
        if status == "completed" || status == "in-progress" {
            let mut period = Map::new();
            period.insert(
                "start".into(),
                json!(f.authored.plus_days(1).min(modified).at(10 * 60)),
            );
            if status == "completed" {
                period.insert("end".into(), json!(modified.at(15 * 60)));
            }
            insert(&mut task, "executionPeriod", Value::Object(period));
        }
        if status == "rejected" || status == "cancelled" {
            insert(&mut task, "statusReason", json!({"text": business}));
        }
        self.push(task);
    }

    /// Referrals between the GP practice and the local authority's adult
    /// social care team, both ways.
    fn referrals(&mut self, r: &mut Rng) {
        let now = self.now;
        let la = self.ics.local_authority;
        // The referral that started a home-care package.
        if let Some(p) = self.home_care.clone()
            && p.start > now.plus_days(-730)
        {
            let authored = p.start.plus_days(-r.range(20, 80));
            self.referral(
                r,
                Referral {
                    code: ("306206005", "Referral to social services"),
                    from: self.practice,
                    from_role: Role::Gp,
                    to: la,
                    authored,
                    status: Some("completed"),
                },
            );
        }
        // Open referrals for an assessment of needs.
        let p_assess = if self.age >= 65 && self.care_home.is_none() {
            0.01
        } else {
            0.0
        };
        let assess = r.chance(p_assess) || self.index % 1000 == 19;
        let authored = days_ago(r, now, 120);
        if assess {
            self.referral(
                r,
                Referral {
                    code: ("306206005", "Referral to social services"),
                    from: self.practice,
                    from_role: Role::Gp,
                    to: la,
                    authored,
                    status: None,
                },
            );
        }
        // Social workers asking the practice for a medication review.
        let cared_for = self.care_home.is_some() || self.home_care.is_some();
        let review = cared_for && r.chance(0.2);
        let authored = days_ago(r, now, 200);
        if review {
            self.referral(
                r,
                Referral {
                    code: ("182836005", "Review of medication"),
                    from: la,
                    from_role: Role::SocialWorker,
                    to: self.practice,
                    authored,
                    status: None,
                },
            );
        }
    }

    /// Sealed items at realistic rates, and one of each category for the
    /// showcase people.
    fn sensitive(&mut self, r: &mut Rng, show: Option<Showcase>) {
        let now = self.now;
        let adult = self.age >= 18;
        let forced = |t: Topic| {
            show == Some(Showcase::Sealed(t))
                || (t == Topic::Hiv && show == Some(Showcase::SensitiveShare))
        };
        let hiv = (adult && self.age <= 70 && r.chance(0.0016)) || forced(Topic::Hiv);
        let std = ((16..25).contains(&self.age) && r.chance(0.015))
            || ((25..45).contains(&self.age) && r.chance(0.003))
            || forced(Topic::Std);
        let sex =
            (!self.male && (18..46).contains(&self.age) && r.chance(0.02)) || forced(Topic::Sex);
        let eth = (adult && (25..71).contains(&self.age) && r.chance(0.012)) || forced(Topic::Eth);
        let anxiety = (adult && r.chance(0.04)) || forced(Topic::Psy);
        let sdv_rate = if self.male { 0.0015 } else { 0.005 };
        let sdv = ((18..61).contains(&self.age) && r.chance(sdv_rate)) || forced(Topic::Sdv);
        let safeguarding = (self.age < 16 && r.chance(0.01)) || forced(Topic::Safeguarding);
        let restricted = (adult && r.chance(0.002)) || forced(Topic::Restricted);
        if hiv {
            let onset = days_ago(r, now, 12 * 365).max(self.birth.plus_years(16));
            self.problem(
                r,
                ("86406008", "Human immunodeficiency virus infection"),
                onset,
                None,
            );
        }
        if std {
            let onset = days_ago(r, now, 365);
            self.problem(
                r,
                ("240589008", "Chlamydia trachomatis infection"),
                onset,
                Some(onset.plus_days(14).min(now)),
            );
        }
        if sex {
            let day = days_ago(r, now, 3 * 365).max(self.birth.plus_years(16));
            let gp = self.gp_ref(r);
            let id = self.id();
            let v = json!({
                "resourceType": "Procedure",
                "id": id,
                "status": "completed",
                "code": snomed("65200003", "Insertion of intrauterine contraceptive device"),
                "subject": self.subject(),
                "performedDateTime": day.at(working_minutes(r)),
                "performer": [{"actor": gp, "onBehalfOf": ods_ref(self.ics.ods(self.practice))}]
            });
            self.push(v);
        }
        if eth {
            let onset = days_ago(r, now, 10 * 365).max(self.birth.plus_years(18));
            self.problem(r, ("66590003", "Alcohol dependence"), onset, None);
        }
        if anxiety {
            let onset = days_ago(r, now, 10 * 365).max(self.birth.plus_years(16));
            self.problem(r, ("197480006", "Anxiety disorder"), onset, None);
            if r.chance(0.3) || forced(Topic::Psy) {
                let authored = onset.plus_days(7).min(now.plus_days(-1));
                let condition = self
                    .out
                    .last()
                    .and_then(|c| c.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                self.medication_request(r, clinical::DIAZEPAM, authored, condition, false);
            }
        }
        if sdv {
            let onset = days_ago(r, now, 3 * 365).max(self.birth.plus_years(16));
            let id = self.problem(r, ("386702006", "Victim of abuse"), onset, None);
            if let Some(v) = self
                .out
                .iter_mut()
                .rev()
                .find(|v| v.get("id").and_then(Value::as_str) == Some(&id))
            {
                labels::seal(v, Topic::Sdv);
            }
            if !self.sealed.contains(&Topic::Sdv) {
                self.sealed.push(Topic::Sdv);
            }
        }
        if safeguarding {
            let onset = days_ago(r, now, 2 * 365).max(self.birth);
            let code = if r.chance(0.25) {
                ("342191000000101", "Subject to child protection plan")
            } else {
                ("836881000000105", "Child is cause for safeguarding concern")
            };
            self.problem(r, code, onset, None);
        }
        if restricted {
            let day = days_ago(r, now, 2 * 365);
            let id = self.id();
            let practice = self.practice_ods();
            let text = "Confidential correspondence held at the patient's request.";
            let mut v = json!({
                "resourceType": "DocumentReference",
                "id": id,
                "status": "current",
                "type": snomed("371531000", "Report of clinical encounter"),
                "subject": self.subject(),
                "date": day.at(working_minutes(r)),
                "author": [ods_ref(&practice)],
                "custodian": ods_ref(&practice),
                "content": [{"attachment": {
                    "contentType": "text/plain",
                    "language": "en-GB",
                    "title": "Confidential letter",
                    "data": base64(text.as_bytes())
                }}]
            });
            labels::seal(&mut v, Topic::Restricted);
            self.push(v);
        }
    }

    /// A problem recorded by the GP; returns its id.
    fn problem(
        &mut self,
        r: &mut Rng,
        code: (&str, &str),
        onset: Date,
        resolved: Option<Date>,
    ) -> String {
        let id = self.id();
        let recorder = self.gp_ref(r);
        let onset = onset.min(self.now);
        let mut v = json!({
            "resourceType": "Condition",
            "id": id,
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": if resolved.is_some() { "resolved" } else { "active" }
            }]},
            "verificationStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "code": "confirmed"
            }]},
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                "code": "problem-list-item"
            }]}],
            "code": snomed(code.0, code.1),
            "subject": self.subject(),
            "onsetDateTime": onset.to_string(),
            "recordedDate": onset.to_string(),
            "recorder": recorder
        });
        if let Some(end) = resolved {
            insert(
                &mut v,
                "abatementDateTime",
                json!(end.max(onset).to_string()),
            );
        }
        self.push(v);
        id
    }

    /// Consents: proxies, explicit consent to share sealed items, dissent
    /// to share, and the secondary-use opt-outs.
    fn consents(&mut self, k: &mut Rng, show: Option<Showcase>, proxies: &[(ProxyPlan, String)]) {
        let now = self.now;
        let practice = self.practice_ods();
        for (plan, rp) in proxies {
            let id = self.id();
            let performer = if plan.by_patient {
                self.subject()
            } else {
                ods_ref(&practice)
            };
            let v = consent::proxy(
                &id,
                &self.pid,
                rp,
                plan.basis,
                &plan.levels,
                &practice,
                &plan.start.at(10 * 60),
                performer,
            );
            self.push(v);
        }
        // Draws made for everyone.
        let share = k.chance(0.15);
        let dissent = k.chance(0.005);
        let dissent_kind = k.unit();
        let ndoo = k.chance(0.054);
        let type1 = k.chance(0.025);
        let date = days_ago(k, now, 5 * 365).max(self.birth).at(11 * 60);
        let me = self.subject();
        // Explicit consent to share sealed items with one organisation.
        let sealed: Vec<Topic> = self.sealed.clone();
        if !sealed.is_empty() && (share || show == Some(Showcase::SensitiveShare)) {
            let topic = sealed.first().copied().unwrap_or(Topic::Restricted);
            let org = match topic {
                Topic::Psy => self.ics.mental_health,
                Topic::Sdv | Topic::Safeguarding => self.ics.local_authority,
                Topic::Restricted => self.ics.community_trust,
                _ => self.ics.acute,
            };
            let label: (&str, &str) = topic.label().unwrap_or((labels::CONFIDENTIALITY, "R"));
            let id = self.id();
            let v = consent::sensitive_share(
                &id,
                &self.pid,
                self.ics.ods(org),
                &[label],
                &date,
                me.clone(),
            );
            self.push(v);
        }
        let forced_dissent = matches!(
            show,
            Some(Showcase::DissentWhole | Showcase::DissentOrgs | Showcase::DissentKinds)
        );
        if dissent || forced_dissent {
            let what = match show {
                Some(Showcase::DissentWhole) => Dissent::Whole,
                Some(Showcase::DissentOrgs) => Dissent::Orgs(vec![
                    self.ics.ods(self.ics.acute).to_owned(),
                    self.ics.ods(self.ics.mental_health).to_owned(),
                ]),
                Some(Showcase::DissentKinds) => Dissent::Kinds(vec!["care-home", "home-care"]),
                _ if dissent_kind < 0.5 => Dissent::Whole,
                _ if dissent_kind < 0.8 => {
                    Dissent::Orgs(vec![self.ics.ods(self.ics.acute).to_owned()])
                }
                _ => Dissent::Kinds(vec!["local-authority"]),
            };
            let id = self.id();
            let v = consent::dissent(&id, &self.pid, &what, &date, me.clone());
            self.push(v);
        }
        if (self.age >= 18 && ndoo) || show == Some(Showcase::NationalOptOut) {
            let id = self.id();
            let v = consent::opt_out(&id, &self.pid, "national-data-opt-out", &date, me.clone());
            self.push(v);
        }
        if type1 || show == Some(Showcase::Type1OptOut) {
            let id = self.id();
            let v = consent::opt_out(&id, &self.pid, "type-1-opt-out", &date, ods_ref(&practice));
            self.push(v);
        }
    }

    fn sample_users(&mut self, show: Option<Showcase>, proxies: &[(ProxyPlan, String)]) {
        let sampled_patient = self.index % 200 == 7
            || matches!(
                show,
                Some(
                    Showcase::Sealed(Topic::Hiv)
                        | Showcase::DissentWhole
                        | Showcase::SensitiveShare
                        | Showcase::NationalOptOut
                )
            );
        if self.age >= 16 && sampled_patient {
            self.users.push(User {
                sub: format!("patient-{}", self.pid),
                name: format!("{} {}", self.given, self.family),
                role: "patient".into(),
                org: None,
                registration: None,
                patient: Some(self.pid.clone()),
                related_person: None,
            });
        }
        let sampled_proxy = self.index % 50 == 3
            || matches!(
                show,
                Some(
                    Showcase::Attorney
                        | Showcase::Deputy
                        | Showcase::BestInterest
                        | Showcase::ConsentProxy
                )
            );
        if sampled_proxy && let Some((_, rp)) = proxies.first() {
            let name = self
                .out
                .iter()
                .find(|v| v.get("id").and_then(Value::as_str) == Some(rp.as_str()))
                .and_then(|v| v.pointer("/name/0"))
                .map(|n| {
                    let given = n.pointer("/given/0").and_then(Value::as_str).unwrap_or("");
                    let family = n.get("family").and_then(Value::as_str).unwrap_or("");
                    format!("{given} {family}")
                })
                .unwrap_or_default();
            self.users.push(User {
                sub: format!("proxy-{rp}"),
                name,
                role: "proxy".into(),
                org: None,
                registration: None,
                patient: Some(self.pid.clone()),
                related_person: Some(rp.clone()),
            });
        }
    }
}

/// A referral to be written.
struct Referral {
    code: (&'static str, &'static str),
    from: usize,
    from_role: Role,
    to: usize,
    authored: Date,
    /// The Task's status; `None` draws one.
    status: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
