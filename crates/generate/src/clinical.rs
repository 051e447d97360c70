//! Clinical tables: the age pyramid, long-term conditions with their
//! prevalence, and the codes the generator writes.
//!
//! # Age pyramid
//!
//! Shares of the population in five-year bands, England, from the ONS
//! Census 2021 ("Age by single year", TS007), rounded to 0.1%. Inside a band
//! ages are uniform; from 90 each year holds 70% of the one before, which
//! puts about 2.8% of the 90+ band (0.025% of everyone) at 100 or over, close
//! to the ONS estimate of centenarians in England and Wales (13,924 in 2021).
//!
//! # Prevalence of long-term conditions
//!
//! Register prevalence from NHS England's *Quality and Outcomes Framework,
//! 2022-23* (England level, "Prevalence" tables, published 2023-09;
//! <https://digital.nhs.uk/data-and-information/publications/statistical/quality-and-outcomes-framework-achievement-prevalence-and-exceptions-data/2022-23>),
//! rounded to one decimal place; each is the share of people at or above the
//! register's minimum age:
//!
//! | condition                         | register age | prevalence |
//! |-----------------------------------|--------------|-----------:|
//! | hypertension                      | all          | 14.0%      |
//! | depression                        | 18+          | 13.2%      |
//! | diabetes (type 1 and 2)           | 17+          |  7.5%      |
//! | asthma                            | 6+           |  6.5%      |
//! | chronic kidney disease (3–5)      | 18+          |  4.0%      |
//! | coronary heart disease            | all          |  3.0%      |
//! | atrial fibrillation               | all          |  2.1%      |
//! | COPD                              | all          |  1.9%      |
//! | stroke and TIA                    | all          |  1.8%      |
//! | heart failure                     | all          |  1.0%      |
//! | severe mental illness             | all          |  0.9%      |
//! | epilepsy                          | 18+          |  0.8%      |
//! | dementia                          | all          |  0.7%      |
//!
//! QOF publishes prevalence, not its age profile, so each condition also has
//! relative weights by age band and sex (the shape from the published
//! epidemiology: hypertension, AF, CKD and dementia climb steeply with age;
//! asthma, epilepsy and depression are flat; CHD is commoner in men,
//! depression and dementia in women). [`Calibration`] scales the weights so
//! that, over the age pyramid above, the expected prevalence equals the
//! table exactly; the tests check a generated population against it.
//! Conditions are drawn independently given age and sex (no comorbidity
//! model).

use crate::rng::Rng;

pub const SNOMED: &str = "http://snomed.info/sct";
pub const DMD: &str = "https://dmd.nhs.uk";
pub const UCUM: &str = "http://unitsofmeasure.org";

/// Population share (per mille) of each five-year band: 0–4, …, 85–89, 90+.
pub const PYRAMID: [f64; 19] = [
    54.0, 60.0, 60.0, 56.0, 60.0, 66.0, 69.0, 67.0, 63.0, 64.0, 69.0, 67.0, 59.0, 50.0, 50.0, 37.0,
    24.0, 15.0, 9.0,
];

/// The share of men (ONS: 49.0% of England's population in 2021).
pub const MALE_SHARE: f64 = 0.49;

/// The oldest age generated.
pub const MAX_AGE: i64 = 110;

/// Each year past 90 holds this share of the year before.
const OLD_DECAY: f64 = 0.7;

/// The band of an age (18 is 90+).
pub fn band(age: i64) -> usize {
    (age.clamp(0, 90) / 5) as usize
}

/// The population share of one year of age.
pub fn age_share(age: i64) -> f64 {
    let total: f64 = PYRAMID.iter().sum();
    let b = band(age);
    let band_share = PYRAMID.get(b).copied().unwrap_or(0.0) / total;
    if age < 90 {
        band_share / 5.0
    } else if age <= MAX_AGE {
        band_share * (1.0 - OLD_DECAY) * OLD_DECAY.powi((age - 90) as i32)
    } else {
        0.0
    }
}

/// An age drawn from the pyramid.
pub fn draw_age(rng: &mut Rng) -> i64 {
    let b = rng.weighted(&PYRAMID) as i64;
    if b < 18 {
        return b * 5 + rng.range(0, 4);
    }
    let mut age = 90;
    while age < MAX_AGE && rng.chance(OLD_DECAY) {
        age += 1;
    }
    age
}

/// A medicine, coded in dm+d (`https://dmd.nhs.uk`).
///
/// The codes are VMPs (virtual medicinal products), except atorvastatin,
/// which is its VTM (virtual therapeutic moiety) with the strength in the
/// dose text.
/// Every code here was found, with its name, in NHS or SNOMED material while
/// the table was written; antidepressants, antipsychotics, antidementia
/// drugs, antiepileptics and inhaled corticosteroids are left out rather than
/// guessed (see the README).
#[derive(Clone, Copy, Debug)]
pub struct Med {
    pub code: &'static str,
    pub display: &'static str,
    pub dose: &'static str,
    /// Administrations a day (for care-home medication rounds).
    pub times_a_day: u8,
}

pub const AMLODIPINE: Med = Med {
    code: "319283006",
    display: "Amlodipine 5mg tablets",
    dose: "One tablet once a day",
    times_a_day: 1,
};
pub const RAMIPRIL: Med = Med {
    code: "318902004",
    display: "Ramipril 5mg capsules",
    dose: "One capsule once a day",
    times_a_day: 1,
};
pub const LISINOPRIL: Med = Med {
    code: "318859000",
    display: "Lisinopril 10mg tablets",
    dose: "One tablet once a day",
    times_a_day: 1,
};
pub const LOSARTAN: Med = Med {
    code: "318956006",
    display: "Losartan 50mg tablets",
    dose: "One tablet once a day",
    times_a_day: 1,
};
pub const BISOPROLOL: Med = Med {
    code: "318590006",
    display: "Bisoprolol 5mg tablets",
    dose: "One tablet once a day",
    times_a_day: 1,
};
pub const FUROSEMIDE: Med = Med {
    code: "317972000",
    display: "Furosemide 40mg tablets",
    dose: "One tablet each morning",
    times_a_day: 1,
};
pub const SPIRONOLACTONE: Med = Med {
    code: "318056008",
    display: "Spironolactone 25mg tablets",
    dose: "One tablet once a day",
    times_a_day: 1,
};
pub const METFORMIN: Med = Med {
    code: "325278007",
    display: "Metformin 500mg tablets",
    dose: "One tablet twice a day with food",
    times_a_day: 2,
};
pub const SALBUTAMOL: Med = Med {
    code: "39113611000001102",
    display: "Salbutamol 100micrograms/dose inhaler CFC free",
    dose: "Two puffs up to four times a day when required",
    times_a_day: 0,
};
pub const APIXABAN: Med = Med {
    code: "42206511000001102",
    display: "Apixaban 5mg tablets",
    dose: "One tablet twice a day",
    times_a_day: 2,
};
pub const ATORVASTATIN: Med = Med {
    code: "108537001",
    display: "Atorvastatin",
    dose: "20mg once a day at night",
    times_a_day: 1,
};
pub const PARACETAMOL: Med = Med {
    code: "322236009",
    display: "Paracetamol 500mg tablets",
    dose: "Two tablets up to four times a day",
    times_a_day: 3,
};
pub const AMOXICILLIN: Med = Med {
    code: "39732311000001104",
    display: "Amoxicillin 250mg capsules",
    dose: "One capsule three times a day for 5 days",
    times_a_day: 3,
};
pub const DIAZEPAM: Med = Med {
    code: "321196004",
    display: "Diazepam 2mg tablets",
    dose: "One tablet up to three times a day when required",
    times_a_day: 0,
};

/// One long-term condition of the prevalence table.
#[derive(Debug)]
pub struct Ltc {
    pub key: &'static str,
    /// SNOMED CT codes and displays, with the share of the register each has.
    pub codes: &'static [(&'static str, &'static str, f64)],
    pub min_age: i64,
    /// QOF prevalence among people at or above `min_age`.
    pub prevalence: f64,
    /// Relative weights per five-year band (the last is 90+).
    pub weights: [f64; 19],
    pub male: f64,
    pub female: f64,
    /// Medicines, each prescribed with the given probability.
    pub meds: &'static [(Med, f64)],
}

pub const LTCS: &[Ltc] = &[
    Ltc {
        key: "hypertension",
        codes: &[("59621000", "Essential hypertension", 1.0)],
        min_age: 0,
        prevalence: 0.140,
        weights: [
            0.0, 0.0, 0.0, 0.05, 0.2, 0.5, 1.0, 2.0, 4.0, 7.0, 11.0, 16.0, 22.0, 29.0, 36.0, 42.0,
            47.0, 50.0, 52.0,
        ],
        male: 1.1,
        female: 0.9,
        meds: &[
            (AMLODIPINE, 0.5),
            (RAMIPRIL, 0.3),
            (LOSARTAN, 0.15),
            (LISINOPRIL, 0.1),
        ],
    },
    Ltc {
        key: "depression",
        codes: &[("35489007", "Depressive disorder", 1.0)],
        min_age: 18,
        prevalence: 0.132,
        weights: [
            0.0, 0.0, 0.0, 1.0, 1.1, 1.15, 1.15, 1.15, 1.15, 1.1, 1.05, 1.0, 0.95, 0.85, 0.8, 0.8,
            0.8, 0.8, 0.8,
        ],
        male: 0.6,
        female: 1.4,
        meds: &[],
    },
    Ltc {
        key: "diabetes",
        codes: &[
            ("44054006", "Type 2 diabetes mellitus", 0.92),
            ("46635009", "Type 1 diabetes mellitus", 0.08),
        ],
        min_age: 17,
        prevalence: 0.075,
        weights: [
            0.0, 0.0, 0.0, 0.1, 0.3, 0.6, 1.0, 1.8, 3.0, 4.5, 6.5, 8.5, 10.5, 12.5, 14.0, 14.5,
            14.0, 12.0, 10.0,
        ],
        male: 1.2,
        female: 0.8,
        meds: &[(METFORMIN, 0.75), (ATORVASTATIN, 0.6)],
    },
    Ltc {
        key: "asthma",
        codes: &[("195967001", "Asthma", 1.0)],
        min_age: 6,
        prevalence: 0.065,
        weights: [
            0.0, 1.0, 1.1, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.2, 1.2, 1.2, 1.1,
            1.0, 0.9,
        ],
        male: 0.9,
        female: 1.1,
        meds: &[(SALBUTAMOL, 0.9)],
    },
    Ltc {
        key: "ckd",
        codes: &[
            ("433144002", "Chronic kidney disease stage 3", 0.85),
            ("431857002", "Chronic kidney disease stage 4", 0.10),
            ("433146000", "Chronic kidney disease stage 5", 0.05),
        ],
        min_age: 18,
        prevalence: 0.040,
        weights: [
            0.0, 0.0, 0.0, 0.05, 0.05, 0.1, 0.15, 0.25, 0.4, 0.7, 1.1, 1.8, 3.0, 5.0, 8.0, 12.0,
            17.0, 22.0, 26.0,
        ],
        male: 0.8,
        female: 1.2,
        meds: &[(RAMIPRIL, 0.4), (LOSARTAN, 0.2), (ATORVASTATIN, 0.4)],
    },
    Ltc {
        key: "chd",
        codes: &[
            ("414545008", "Ischemic heart disease", 0.7),
            ("22298006", "Myocardial infarction", 0.3),
        ],
        min_age: 0,
        prevalence: 0.030,
        weights: [
            0.0, 0.0, 0.0, 0.0, 0.0, 0.02, 0.06, 0.2, 0.5, 1.0, 2.0, 3.5, 5.5, 8.0, 11.0, 14.0,
            17.0, 19.0, 20.0,
        ],
        male: 1.6,
        female: 0.6,
        meds: &[(ATORVASTATIN, 0.85), (BISOPROLOL, 0.5), (RAMIPRIL, 0.4)],
    },
    Ltc {
        key: "af",
        codes: &[("49436004", "Atrial fibrillation", 1.0)],
        min_age: 0,
        prevalence: 0.021,
        weights: [
            0.0, 0.0, 0.0, 0.0, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.1, 2.0, 3.5, 5.5, 8.0,
            11.0, 13.5, 15.0,
        ],
        male: 1.2,
        female: 0.8,
        meds: &[(APIXABAN, 0.8), (BISOPROLOL, 0.6)],
    },
    Ltc {
        key: "copd",
        codes: &[("13645005", "Chronic obstructive lung disease", 1.0)],
        min_age: 0,
        prevalence: 0.019,
        weights: [
            0.0, 0.0, 0.0, 0.0, 0.0, 0.02, 0.05, 0.15, 0.35, 0.7, 1.3, 2.2, 3.5, 5.0, 6.5, 8.0,
            9.0, 9.0, 8.0,
        ],
        male: 1.1,
        female: 0.9,
        meds: &[(SALBUTAMOL, 0.95)],
    },
    Ltc {
        key: "stroke",
        codes: &[
            ("230690007", "Cerebrovascular accident", 0.7),
            ("266257000", "Transient ischemic attack", 0.3),
        ],
        min_age: 0,
        prevalence: 0.018,
        weights: [
            0.0, 0.0, 0.0, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.1, 2.0, 3.2, 5.0, 7.5, 10.5,
            13.5, 16.0, 17.0,
        ],
        male: 1.05,
        female: 0.95,
        meds: &[(ATORVASTATIN, 0.7), (APIXABAN, 0.2)],
    },
    Ltc {
        key: "heart-failure",
        codes: &[("84114007", "Heart failure", 1.0)],
        min_age: 0,
        prevalence: 0.010,
        weights: [
            0.0, 0.0, 0.0, 0.0, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.1, 2.0, 3.5, 6.0, 9.5,
            14.0, 19.0, 23.0,
        ],
        male: 1.2,
        female: 0.8,
        meds: &[
            (FUROSEMIDE, 0.7),
            (BISOPROLOL, 0.6),
            (RAMIPRIL, 0.5),
            (SPIRONOLACTONE, 0.3),
        ],
    },
    Ltc {
        key: "smi",
        codes: &[
            ("58214004", "Schizophrenia", 0.5),
            ("13746004", "Bipolar disorder", 0.5),
        ],
        min_age: 0,
        prevalence: 0.009,
        weights: [
            0.0, 0.0, 0.0, 0.3, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.8, 0.7,
            0.6, 0.5,
        ],
        male: 1.05,
        female: 0.95,
        meds: &[],
    },
    Ltc {
        key: "epilepsy",
        codes: &[("84757009", "Epilepsy", 1.0)],
        min_age: 18,
        prevalence: 0.008,
        weights: [
            0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
            1.0, 1.0,
        ],
        male: 1.1,
        female: 0.9,
        meds: &[],
    },
    Ltc {
        key: "dementia",
        codes: &[
            ("26929004", "Alzheimer's disease", 0.6),
            ("429998004", "Vascular dementia", 0.2),
            ("52448006", "Dementia", 0.2),
        ],
        min_age: 0,
        prevalence: 0.007,
        weights: [
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.03, 0.07, 0.2, 0.5, 1.2, 3.0, 7.0,
            14.0, 24.0,
        ],
        male: 0.75,
        female: 1.25,
        meds: &[],
    },
];

/// The index of a condition in [`LTCS`].
pub fn ltc_index(key: &str) -> Option<usize> {
    LTCS.iter().position(|c| c.key == key)
}

/// Probabilities are capped here, so no band is certain.
const MAX_P: f64 = 0.95;

/// The scale of each condition's weights that meets its prevalence.
#[derive(Clone, Debug)]
pub struct Calibration {
    scale: Vec<f64>,
}

impl Calibration {
    pub fn new() -> Calibration {
        Calibration {
            scale: LTCS.iter().map(calibrate).collect(),
        }
    }

    /// The probability that a person of this age and sex has condition `i`.
    pub fn probability(&self, i: usize, age: i64, male: bool) -> f64 {
        match (LTCS.get(i), self.scale.get(i)) {
            (Some(c), Some(k)) => raw_probability(c, *k, age, male),
            _ => 0.0,
        }
    }
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration::new()
    }
}

fn raw_probability(c: &Ltc, k: f64, age: i64, male: bool) -> f64 {
    if age < c.min_age {
        return 0.0;
    }
    let w = c.weights.get(band(age)).copied().unwrap_or(0.0);
    let sex = if male { c.male } else { c.female };
    (k * w * sex).min(MAX_P)
}

/// The expected prevalence among eligible ages for a scale `k`.
pub fn expected_prevalence(c: &Ltc, k: f64) -> f64 {
    let mut cases = 0.0;
    let mut eligible = 0.0;
    for age in c.min_age..=MAX_AGE {
        let s = age_share(age);
        eligible += s;
        cases += s
            * (MALE_SHARE * raw_probability(c, k, age, true)
                + (1.0 - MALE_SHARE) * raw_probability(c, k, age, false));
    }
    if eligible > 0.0 {
        cases / eligible
    } else {
        0.0
    }
}

/// Bisection on the scale: the expected prevalence grows with it.
fn calibrate(c: &Ltc) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while expected_prevalence(c, hi) < c.prevalence && hi < 1e6 {
        hi *= 2.0;
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if expected_prevalence(c, mid) < c.prevalence {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyramid_shares_sum_to_one() {
        let total: f64 = (0..=MAX_AGE).map(age_share).sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
    }

    #[test]
    fn calibration_meets_every_prevalence() {
        let cal = Calibration::new();
        for (i, c) in LTCS.iter().enumerate() {
            let k = cal.scale[i];
            let p = expected_prevalence(c, k);
            assert!((p - c.prevalence).abs() < 1e-6, "{}: {p}", c.key);
            let shares: f64 = c.codes.iter().map(|(_, _, s)| s).sum();
            assert!((shares - 1.0).abs() < 1e-9, "{}", c.key);
        }
    }

    #[test]
    fn drawn_ages_follow_the_pyramid() {
        let mut rng = Rng::stream(3, 0, 0);
        let n = 200_000;
        let mut over_90 = 0;
        let mut under_5 = 0;
        let mut centenarians = 0;
        for _ in 0..n {
            let a = draw_age(&mut rng);
            assert!((0..=MAX_AGE).contains(&a));
            over_90 += usize::from(a >= 90);
            under_5 += usize::from(a < 5);
            centenarians += usize::from(a >= 100);
        }
        let share = |k: usize| k as f64 / n as f64;
        assert!((share(over_90) - 0.009).abs() < 0.001);
        assert!((share(under_5) - 0.054).abs() < 0.003);
        assert!(centenarians > 10);
    }
}
