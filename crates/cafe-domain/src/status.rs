//! A bad request on its way to a gRPC status, the same in every server.
//!
//! Each server keeps its own error enum and its one `From<_> for Status`;
//! the variant for "these fields are wrong" (`InvalidRequest(Vec<FieldViolation>)`)
//! uses [`describe`] for its message and [`invalid_argument`] for its
//! status, so a client sees the same shape of error from the café and from
//! a barista.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::order::FieldViolation;

/// The message of a bad request: each violation's sentence, joined by `; `.
pub fn describe(violations: &[FieldViolation]) -> String {
    let sentences: Vec<&str> = violations.iter().map(|v| v.description.as_str()).collect();
    sentences.join("; ")
}

/// `INVALID_ARGUMENT` with the [`describe`] message, and a
/// `google.rpc.BadRequest` detail that lets a program see which field was
/// wrong without parsing the message.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let mut details = ErrorDetails::new();
    for violation in violations {
        details.add_bad_request_violation(violation.field, &violation.description);
    }
    Status::with_error_details(Code::InvalidArgument, describe(violations), details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_is_in_the_message_and_the_details() {
        let violations = [
            FieldViolation {
                field: "customer",
                description: "customer must not be empty".into(),
            },
            FieldViolation {
                field: "size",
                description: "size 9 is not a size".into(),
            },
        ];
        let status = invalid_argument(&violations);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "customer must not be empty; size 9 is not a size"
        );
        let bad_request = status
            .get_details_bad_request()
            .expect("BadRequest details");
        let fields: Vec<(&str, &str)> = bad_request
            .field_violations
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("customer", "customer must not be empty"),
                ("size", "size 9 is not a size")
            ]
        );
    }
}
