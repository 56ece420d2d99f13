//! Everything that can go wrong in the CLI, each as one line a person can act
//! on, and the exit code it ends the process with.
//!
//! The café answers with gRPC status codes; [`ClientError::from_status`] is
//! the one place that turns them into sentences. The code names the problem
//! (`NOT_FOUND`), the café's message says which field or order it was about,
//! and the CLI adds what to do next.

use std::{process::ExitCode, time::Duration};

use grpc_telemetry::outcome::PLAINTEXT_ON_TLS;
use tonic::{Code, Status};

use crate::output::human;

/// Exit codes, so scripts (and container health checks) can tell failures
/// apart. Listed in `cafe --help`.
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// Something unexpected (the message says what).
    pub const OTHER: u8 = 1;
    /// The command line was wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// No café answered, or it is closing / not serving.
    pub const UNAVAILABLE: u8 = 3;
    /// The deadline passed before the drink was ready.
    pub const DEADLINE: u8 = 4;
    /// The café refused the request: a field was wrong.
    pub const INVALID: u8 = 5;
    /// No such order.
    pub const NOT_FOUND: u8 = 6;
    /// The claim token did not match.
    pub const PERMISSION: u8 = 7;
    /// The café is too busy (its queue is full).
    pub const BUSY: u8 = 8;
    /// The order cannot do that any more (already ready, cancelled or failed).
    pub const ORDER_STATE: u8 = 9;
    /// Interrupted with Ctrl-C (128 + SIGINT, as shells do).
    pub const INTERRUPTED: u8 = 130;
}

/// What went wrong, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    // Before any request reached a café.
    /// `--server` is not a URL tonic can dial.
    #[error("{url:?} is not a café address: use a URL such as http://127.0.0.1:50051")]
    BadAddress {
        /// What was given.
        url: String,
    },

    /// Nothing answered at the address.
    #[error(
        "no café at {url}: is cafe-server running? (start it with `cargo run --release --bin cafe-server`, or try `cafe demo`)"
    )]
    NoCafe {
        /// The `--server` URL.
        url: String,
    },

    /// `--ca` with an `http://` address: TLS was asked for and not used.
    #[error("--ca is for TLS but {url} is plaintext: use https:// in --server, or drop --ca")]
    CaWithoutTls {
        /// The `--server` URL.
        url: String,
    },

    /// A `--ca`, `--client-cert` or `--client-key` file cannot be read or
    /// used.
    #[error("cannot use the TLS file {}: {detail} (--ca, --client-cert and --client-key take PEM files)", path.display())]
    CaFile {
        /// `--ca`.
        path: std::path::PathBuf,
        /// Why.
        detail: String,
    },

    /// The TLS handshake with the café failed; `reason` says how and what
    /// to do.
    #[error("cannot talk TLS to the café at {url}: {reason}")]
    Tls {
        /// The `--server` URL.
        url: String,
        /// What failed, and what to do.
        reason: String,
    },

    /// A plaintext client reached a café that speaks only TLS.
    #[error(
        "the café at {url} speaks TLS only: use https:// in --server, with --ca and its CA certificate"
    )]
    NeedsTls {
        /// The `--server` URL.
        url: String,
    },

    // What the café answered.
    /// The café is up but not serving (health check), or closing.
    #[error("the café at {url} is not serving: {detail}")]
    NotServing {
        /// The `--server` URL.
        url: String,
        /// Why, as the café or the health check said.
        detail: String,
    },

    /// The `--deadline` passed before the drink was ready.
    #[error("deadline of {} exceeded before the drink was ready: the café cancels the order; allow longer with --deadline, or take a buzzer with --buzzer", human(*.0))]
    DeadlineExceeded(Duration),

    /// A buzzer's `--deadline` passed; the order itself carries on.
    #[error("deadline of {} exceeded before order {order_id} was ready; it carries on: follow it with `{watch}`", human(*.deadline))]
    BuzzerDeadline {
        /// The `--deadline`.
        deadline: Duration,
        /// The order, still queued or brewing.
        order_id: String,
        /// The command that follows it again.
        watch: String,
    },

    /// The café rejected a field; its message names the field.
    #[error("the café refused the order: {0}")]
    InvalidArgument(String),

    /// No such order.
    #[error("{0}")]
    NotFound(String),

    /// The claim token was wrong.
    #[error("{0} (use the claim token printed on your ticket)")]
    PermissionDenied(String),

    /// The café's queue is full.
    #[error("the café is too busy: {0}")]
    Busy(String),

    /// The order is past the point where this can be done, or it ended
    /// without a drink (cancelled or failed).
    #[error("{message}")]
    OrderState {
        /// FAILED_PRECONDITION or CANCELLED, as the café answered.
        code: Code,
        /// The café's message.
        message: String,
    },

    /// The connection broke or the café could not answer.
    #[error("the café at {url} is unavailable: {detail}")]
    Unavailable {
        /// The `--server` URL.
        url: String,
        /// What the café or the transport said.
        detail: String,
    },

    /// Any other status: shown with its code.
    #[error("the café answered {code:?}: {message}")]
    Other {
        /// The gRPC code.
        code: Code,
        /// The café's message.
        message: String,
    },

    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),

    /// `cafe bench --server-pid` names no process whose /proc entry can be
    /// read here.
    #[error(
        "cannot read process {pid} in /proc: {detail} (--server-pid takes the café's process id on this machine)"
    )]
    NoSuchProcess {
        /// The `--server-pid`.
        pid: u32,
        /// What reading /proc said.
        detail: String,
    },

    /// The in-process café of `cafe demo` could not start.
    #[error("the demo café could not start: {0}")]
    Demo(String),
}

impl ClientError {
    /// Turns a gRPC status from the café at `url` into a sentence.
    /// `deadline` is the `--deadline` of the call, if any: tonic's server
    /// answers an expired `grpc-timeout` with CANCELLED "Timeout expired",
    /// which means the same as DEADLINE_EXCEEDED here.
    pub fn from_status(status: Status, url: &str, deadline: Option<Duration>) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::DeadlineExceeded => ClientError::DeadlineExceeded(deadline.unwrap_or_default()),
            Code::Cancelled if deadline.is_some() && message.contains("Timeout expired") => {
                ClientError::DeadlineExceeded(deadline.unwrap_or_default())
            }
            Code::InvalidArgument => ClientError::InvalidArgument(message),
            Code::NotFound => ClientError::NotFound(message),
            Code::PermissionDenied => ClientError::PermissionDenied(message),
            Code::ResourceExhausted => ClientError::Busy(message),
            code @ (Code::FailedPrecondition | Code::Cancelled) => {
                ClientError::OrderState { code, message }
            }
            Code::Unavailable if message == PLAINTEXT_ON_TLS => {
                ClientError::NeedsTls { url: url.into() }
            }
            Code::Unavailable if is_connect_failure(&status) => {
                match std::error::Error::source(&status).and_then(crate::connection::tls_failure) {
                    Some(reason) => ClientError::Tls {
                        url: url.into(),
                        reason,
                    },
                    None => ClientError::NoCafe { url: url.into() },
                }
            }
            Code::Unavailable => ClientError::Unavailable {
                url: url.into(),
                detail: message,
            },
            code => ClientError::Other { code, message },
        }
    }

    /// The process exit code for this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::BadAddress { .. }
            | ClientError::NoSuchProcess { .. }
            | ClientError::CaWithoutTls { .. }
            | ClientError::CaFile { .. } => exit::USAGE,
            ClientError::NoCafe { .. }
            | ClientError::Tls { .. }
            | ClientError::NeedsTls { .. }
            | ClientError::NotServing { .. }
            | ClientError::Unavailable { .. }
            | ClientError::Demo(_) => exit::UNAVAILABLE,
            ClientError::DeadlineExceeded(_) | ClientError::BuzzerDeadline { .. } => exit::DEADLINE,
            ClientError::InvalidArgument(_) => exit::INVALID,
            ClientError::NotFound(_) => exit::NOT_FOUND,
            ClientError::PermissionDenied(_) => exit::PERMISSION,
            ClientError::Busy(_) => exit::BUSY,
            ClientError::OrderState { .. } => exit::ORDER_STATE,
            ClientError::Other { .. } | ClientError::Output(_) => exit::OTHER,
        }
    }

    /// The gRPC status code this error stands for: the café's answer, or
    /// for what went wrong on the way, the code gRPC gives it (UNAVAILABLE
    /// when no café answered, DEADLINE_EXCEEDED when the deadline passed
    /// here). `None` for what is not about a call at all: a bad address or
    /// TLS file, the output, the demo's own café.
    pub fn code(&self) -> Option<Code> {
        Some(match self {
            ClientError::BadAddress { .. }
            | ClientError::CaWithoutTls { .. }
            | ClientError::CaFile { .. }
            | ClientError::NoSuchProcess { .. }
            | ClientError::Output(_)
            | ClientError::Demo(_) => return None,
            ClientError::NoCafe { .. }
            | ClientError::Tls { .. }
            | ClientError::NeedsTls { .. }
            | ClientError::NotServing { .. }
            | ClientError::Unavailable { .. } => Code::Unavailable,
            ClientError::DeadlineExceeded(_) | ClientError::BuzzerDeadline { .. } => {
                Code::DeadlineExceeded
            }
            ClientError::InvalidArgument(_) => Code::InvalidArgument,
            ClientError::NotFound(_) => Code::NotFound,
            ClientError::PermissionDenied(_) => Code::PermissionDenied,
            ClientError::Busy(_) => Code::ResourceExhausted,
            ClientError::OrderState { code, .. } | ClientError::Other { code, .. } => *code,
        })
    }

    /// The error as the `error` event of `--json` output (see
    /// [`ErrorLine`]).
    pub fn json(&self) -> ErrorLine {
        ErrorLine {
            code: self.code().map(code_name),
            exit_code: self.exit_code(),
            message: self.to_string(),
        }
    }
}

/// An error under `--json`: an `error` event, the last line the command
/// prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ErrorLine {
    /// The gRPC code's name (`NOT_FOUND`), or `null` when the error is not
    /// about a call ([`ClientError::code`]).
    pub code: Option<&'static str>,
    /// The process's exit code (see [`exit`]).
    pub exit_code: u8,
    /// The one line a person would have read.
    pub message: String,
}

/// A gRPC code's canonical name, as the gRPC spec and grpcurl write it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl From<&ClientError> for ExitCode {
    fn from(error: &ClientError) -> Self {
        ExitCode::from(error.exit_code())
    }
}

/// Whether an UNAVAILABLE status means "nothing listens there" rather than
/// "the café said it is unavailable". tonic reports a failed (lazy) connect
/// as UNAVAILABLE with a transport error as the source.
fn is_connect_failure(status: &Status) -> bool {
    let message = status.message();
    message.contains("tcp connect error")
        || message.contains("Connection refused")
        || message.contains("error trying to connect")
        || (std::error::Error::source(status).is_some() && message.contains("transport error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timeouts_read_as_deadlines() {
        let deadline = Some(Duration::from_secs(3));
        let err = ClientError::from_status(Status::cancelled("Timeout expired"), "u", deadline);
        assert!(matches!(err, ClientError::DeadlineExceeded(d) if d == Duration::from_secs(3)));
        assert_eq!(err.exit_code(), exit::DEADLINE);
        assert_eq!(
            err.to_string().split(':').next().unwrap(),
            "deadline of 3s exceeded before the drink was ready"
        );
        // Without a deadline, CANCELLED is the order being cancelled.
        let err = ClientError::from_status(Status::cancelled("order x was cancelled"), "u", None);
        assert_eq!(err.exit_code(), exit::ORDER_STATE);
    }

    #[test]
    fn invalid_arguments_keep_the_cafes_message() {
        let err = ClientError::from_status(
            Status::invalid_argument("drink \"frappe\" is not on the menu"),
            "u",
            None,
        );
        assert_eq!(
            err.to_string(),
            "the café refused the order: drink \"frappe\" is not on the menu"
        );
        assert_eq!(err.exit_code(), exit::INVALID);
    }
}
