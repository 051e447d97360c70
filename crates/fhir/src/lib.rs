//! FHIR R4 (4.0.1) basics for sharedcare: resource types, ids, NHS numbers, and
//! structural validation of resources in FHIR JSON form.
//!
//! Validation uses a compact form of the official R4 StructureDefinitions and
//! required value sets, generated into `data/r4-definitions.json` and embedded
//! in the binary; it is compiled once, on first use. The crate does no IO.
//!
//! ```
//! let patient = serde_json::json!({
//!     "resourceType": "Patient",
//!     "identifier": [{ "system": fhir::nhs_number::SYSTEM, "value": "9990000018" }],
//!     "gender": "female",
//!     "birthDate": "1970-01-01"
//! });
//! assert!(fhir::validate_resource(&patient).is_empty());
//! ```

mod definitions;
pub mod nhs_number;
mod primitive;
mod resource_types;
pub mod summary;
mod validate;

pub use primitive::is_valid_id;
pub use resource_types::{is_known_resource_type, resource_types};
pub use validate::{Issue, IssueCode, Severity, has_errors, validate_resource};
