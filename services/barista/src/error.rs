//! Everything that can go wrong in the barista backend, and the one place
//! where it becomes a gRPC status.

use cafe_domain::{
    order::FieldViolation,
    status::{describe, invalid_argument},
};
use tonic::Status;

/// Why a brew could not be done.
#[derive(Debug, thiserror::Error)]
pub enum BaristaError {
    // What the caller caused.
    /// One or more fields of the `BrewRequest` are wrong.
    #[error("{}", describe(.0))]
    InvalidRequest(Vec<FieldViolation>),

    // What the replica's situation caused.
    /// The replica is shutting down: the caller should use another one.
    #[error("barista {0} is closing and takes no more drinks: use another barista")]
    Closing(String),

    /// Every barista is brewing. The replica keeps no line: the caller
    /// keeps the drink in its own and asks again when one is free.
    #[error(
        "all {baristas} baristas of {replica} are busy: keep the drink in your line and ask again when one is free"
    )]
    Busy {
        /// The replica's `--name`.
        replica: String,
        /// Its `--baristas`.
        baristas: usize,
    },
}

impl From<BaristaError> for Status {
    fn from(error: BaristaError) -> Self {
        let message = error.to_string();
        match error {
            // With a BadRequest detail naming each wrong field.
            BaristaError::InvalidRequest(violations) => invalid_argument(&violations),
            BaristaError::Closing(_) => Status::unavailable(message),
            BaristaError::Busy { .. } => Status::resource_exhausted(message),
        }
    }
}
