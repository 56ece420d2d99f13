//! Everything that can go wrong in the barista backend, and the one place
//! where it becomes a gRPC status.

use cafe_core::order::FieldViolation;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Why a brew could not be done.
#[derive(Debug, thiserror::Error)]
pub enum BaristaError {
    // What the caller caused.
    /// One or more fields of the `BrewRequest` are wrong.
    #[error("{}", .0.iter().map(|v| v.description.as_str()).collect::<Vec<_>>().join("; "))]
    InvalidRequest(Vec<FieldViolation>),

    // What the replica's situation caused.
    /// The replica is shutting down: the caller should use another one.
    #[error("barista {0} is closing and takes no more drinks: use another barista")]
    Closing(String),
}

impl From<BaristaError> for Status {
    fn from(error: BaristaError) -> Self {
        let message = error.to_string();
        match error {
            BaristaError::InvalidRequest(violations) => {
                let mut details = ErrorDetails::new();
                for violation in &violations {
                    details.add_bad_request_violation(violation.field, &violation.description);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            BaristaError::Closing(_) => Status::unavailable(message),
        }
    }
}
