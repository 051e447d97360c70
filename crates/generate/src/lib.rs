//! A deterministic, streaming synthetic population of an English integrated
//! care system (ICS), as FHIR R4 (UK Core) JSON.
//!
//! ```
//! use generate::{Date, Ics, Settings, person};
//! let settings = Settings::new(1, 1_000, Date::parse("2025-06-01").unwrap());
//! let ics = Ics::new(&settings);
//! let resources = person(&ics, &settings, 0);
//! assert_eq!(resources[0]["resourceType"], "Patient");
//! ```
//!
//! - [`Ics::new`] builds the organisations, their staff and the demo users
//!   from the seed and the population size (see [`ics`] for the code scheme).
//! - [`person`] builds every resource of person `index`: the Patient first,
//!   then RelatedPersons, then the rest. It depends on the seed, the index,
//!   "now" and the organisation set only, so any range of people can be
//!   generated on its own: a run can resume at `start_index`, and disjoint
//!   ranges can run in parallel and be concatenated.
//! - [`output::NdjsonWriter`] appends resources to `<Type>.ndjson` files (bulk
//!   data form); [`output::BundleWriter`] writes transaction Bundles of PUT
//!   entries, so loading twice changes nothing.
//!
//! **Bounded memory, by construction.** Nothing holds more than one person
//! (or one bundle of people) at a time: a person's resources are built,
//! written and dropped before the next person starts. What stays in memory
//! for the whole run is the organisation set (about one organisation per
//! 2,000 people, each with a handful of staff), one buffered file per
//! resource type, and the NHS number table (100,001 `u32`s, whatever the
//! population). Counting uses one integer per resource type.
//!
//! **Determinism.** The only randomness is [`rng::Rng`], a xoshiro256**
//! stream seeded through SplitMix64 from `(seed, domain, index)`; no clock
//! is read ("now" is a setting) and no hash map is iterated into the output,
//! so one seed gives byte-identical output.
//!
//! **NHS numbers.** Everyone gets a valid (Modulus 11) number from the test
//! range 999 000 0000–999 999 9999, unique within the run. That range holds
//! only [`nhs::CAPACITY`] (909,091) valid numbers: people with an index
//! beyond it carry a local identifier
//! (`https://fhir.sharedcare.org.uk/Id/synthetic-person`) instead, and the
//! CLI warns when a run reaches them.
//!
//! See `README.md` for the data shapes, the consent proportions and the
//! sources of every rate.

pub mod clinical;
mod consent;
mod date;
pub mod ics;
pub mod labels;
pub mod nhs;
pub mod output;
mod person;
pub mod rng;
mod tables;

pub use date::Date;
pub use ics::{Ics, User};
pub use person::{RECORDED_BY, SHOWCASE_SLOTS, is_showcase, person, person_and_users};

/// What to generate.
#[derive(Clone, Debug)]
pub struct Settings {
    pub seed: u64,
    /// The population's size: the organisations are sized for it, and
    /// people are numbered `0..people`.
    pub people: u64,
    /// The first person this run writes (to resume, or to split the
    /// population between runs).
    pub start_index: u64,
    /// One past the last person this run writes (`people` if `None`).
    pub end_index: Option<u64>,
    /// Today, for ages and for the dates of recent events. Passed in: the
    /// generator never reads the clock.
    pub now: Date,
}

impl Settings {
    /// The whole population `0..people`.
    pub fn new(seed: u64, people: u64, now: Date) -> Settings {
        Settings {
            seed,
            people,
            start_index: 0,
            end_index: None,
            now,
        }
    }

    /// The indices this run writes.
    pub fn range(&self) -> std::ops::Range<u64> {
        let end = self.end_index.unwrap_or(self.people).min(self.people);
        self.start_index.min(end)..end
    }
}

/// The independent random streams (the `domain` of [`rng::Rng::stream`]).
pub(crate) mod domain {
    pub const NHS_NUMBERS: u64 = 1;
    pub const ORGANISATIONS: u64 = 2;
    pub const DEMOGRAPHICS: u64 = 10;
    pub const CONDITIONS: u64 = 11;
    pub const SOCIAL: u64 = 12;
    pub const CARE: u64 = 13;
    pub const CONSENT: u64 = 14;
    pub const SENSITIVE: u64 = 15;
}
