//! `cafe health`: asks the café's standard `grpc.health.v1` service whether
//! it is serving. Exit code 0 means SERVING, so it works as a container
//! health check; everything is bounded by `--timeout`, so a café that hangs
//! fails the check instead of hanging it.

use std::time::Duration;

use serde::Serialize;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::Finished;
use crate::{
    connection::{self, Dial},
    error::ClientError,
    output::Output,
};

/// The answer in `--json` output: a `health` event.
#[derive(Debug, Serialize)]
struct HealthLine<'a> {
    server: &'a str,
    service: &'a str,
    status: &'a str,
}

/// Checks `service` ("" for the whole server) at the café `dial` names.
pub async fn run(
    dial: &Dial,
    service: &str,
    timeout: Duration,
    out: &Output,
) -> Result<Finished, ClientError> {
    let connection = connection::connect_within(dial, timeout).await?;
    let mut health = HealthClient::new(connection.channel);
    let answer = tokio::time::timeout(
        timeout,
        health.check(HealthCheckRequest {
            service: service.into(),
        }),
    )
    .await
    .map_err(|_| ClientError::NotServing {
        url: connection.url.clone(),
        detail: format!("no health answer within {}", crate::output::human(timeout)),
    })?
    .map_err(|status| match status.code() {
        tonic::Code::NotFound => ClientError::NotServing {
            url: connection.url.clone(),
            detail: format!("it reports no health for service {service:?}"),
        },
        _ => ClientError::from_status(status, &connection.url, None),
    })?
    .into_inner();
    let status = ServingStatus::try_from(answer.status).unwrap_or(ServingStatus::Unknown);
    let name = status.as_str_name();
    let shown = if service.is_empty() {
        "the server"
    } else {
        service
    };
    let line = HealthLine {
        server: &connection.url,
        service,
        status: name,
    };
    if status == ServingStatus::Serving {
        out.line(format!("{}: {shown} is {name}", connection.url))?;
        out.json("health", &line)?;
        Ok(Finished::Done)
    } else {
        out.json("health", &line)?;
        Err(ClientError::NotServing {
            url: connection.url,
            detail: format!("{shown} is {name}"),
        })
    }
}
