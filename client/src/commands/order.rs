//! `cafe order`: the two ways to wait for one drink.
//!
//! - At the counter ([`counter`]): one unary call that returns only when the
//!   drink is ready. The CLI can do nothing else meanwhile but spin.
//! - With a buzzer ([`buzzer`]): a server stream whose first message is the
//!   ticket, sent before any brewing; every change follows as it happens.
//!
//! A buzzer whose stream is cut (the café crashed or restarted) follows
//! its order again with `WatchOrder` by itself (see [`events`]).
//!
//! A `--deadline` travels to the café as the `grpc-timeout` header, so the
//! café cancels the order when it passes. tonic's client only *sends* that
//! header; it does not stop waiting by itself, so the CLI also bounds the
//! call locally with `tokio::time::timeout`.

use std::time::Duration;

use cafe_domain::proto::v1::{self as pb, OrderRequest};
use grpc_telemetry::propagation;
use serde::Serialize;
use tokio::time::Instant;
use tonic::Request;

use super::{
    Finished, ctrl_c,
    events::{self, Followed},
};
use crate::{
    cli::OrderArgs,
    connection::Connection,
    error::ClientError,
    output::{Output, human, millis},
    view::{OrderView, stage_times, what},
};

/// The request for `args`.
pub fn request(args: &OrderArgs) -> OrderRequest {
    OrderRequest {
        customer: args.customer.clone(),
        drink: args.drink.clone(),
        size: pb::Size::from(args.size) as i32,
        request_id: String::new(),
    }
}

/// A counter order's result, for `--json`: a `served` event.
#[derive(Debug, Serialize)]
struct Served {
    /// How long the customer stood at the counter, by their own clock.
    waited_ms: f64,
    claim_token: String,
    order: OrderView,
    /// The order's trace in Jaeger, when traces are exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_url: Option<String>,
}

/// The buzzer's trace, for `--json`, after its events: a `trace` event.
#[derive(Debug, Serialize)]
struct TraceLine {
    trace_url: String,
}

/// Runs `cafe order` (either way).
pub async fn run(
    connection: &mut Connection,
    out: &Output,
    args: &OrderArgs,
) -> Result<Finished, ClientError> {
    if args.buzzer {
        buzzer(connection, out, args).await
    } else {
        Ok(match counter(connection, out, args).await? {
            Some(_) => Finished::Done,
            None => Finished::Interrupted,
        })
    }
}

/// Waits at the counter: places the order and waits for the drink, with a
/// spinner on a terminal. Returns the finished order and how long it took,
/// or `None` if the customer left (Ctrl-C).
pub async fn counter(
    connection: &mut Connection,
    out: &Output,
    args: &OrderArgs,
) -> Result<Option<(pb::OrderCoffeeResponse, Duration)>, ClientError> {
    let mut request = Request::new(request(args));
    if let Some(deadline) = args.deadline {
        // Becomes the `grpc-timeout` header: the café gives up (and cancels
        // the order) when it passes.
        request.set_timeout(deadline);
    }
    let spinner = out.spinner(format!(
        "waiting at the counter for a {} {}…",
        args.size, args.drink
    ));
    let started = Instant::now();
    let call = connection.cafe.order_coffee(request);
    let bounded = async {
        match args.deadline {
            // The local bound: tonic's client does not enforce the deadline.
            Some(deadline) => match tokio::time::timeout(deadline, call).await {
                Ok(result) => {
                    result.map_err(|s| ClientError::from_status(s, &connection.url, args.deadline))
                }
                Err(_elapsed) => Err(ClientError::DeadlineExceeded(deadline)),
            },
            None => call
                .await
                .map_err(|s| ClientError::from_status(s, &connection.url, None)),
        }
    };
    // Either the drink comes, or the customer leaves. Leaving drops the call
    // future, which resets the HTTP/2 stream; the café sees its request
    // future dropped and cancels the order.
    let result = tokio::select! {
        result = bounded => result,
        () = ctrl_c() => {
            out.clear_spinner(&spinner);
            eprintln!("left the counter after {}: the café cancels the order", human(started.elapsed()));
            return Ok(None);
        }
    };
    let waited = started.elapsed();
    out.clear_spinner(&spinner);
    let response = result?;
    // The café's trace layer answers with the call's trace id.
    let trace_url = out.trace_url(propagation::trace_id_from(response.metadata()).as_deref());
    let response = response.into_inner();
    let order = response.order.clone().unwrap_or_default();
    let (in_line, brewing) = stage_times(&order);
    out.line(format!(
        "ready ☕ {} (order {}, brewed by {})",
        what(&order),
        order.id,
        order.barista
    ))?;
    out.line(format!(
        "waited {} at the counter: {} in line, {} brewing (by the café's clock)",
        human(waited),
        human(in_line.unwrap_or_default()),
        human(brewing.unwrap_or_default()),
    ))?;
    out.trace_line(trace_url.as_deref())?;
    out.json(
        "served",
        &Served {
            waited_ms: millis(waited),
            claim_token: response.claim_token.clone(),
            order: OrderView::from(&order),
            trace_url,
        },
    )?;
    Ok(Some((response, waited)))
}

/// Takes a buzzer: prints the ticket at once, then each change, timed from
/// the moment the order was sent.
pub async fn buzzer(
    connection: &mut Connection,
    out: &Output,
    args: &OrderArgs,
) -> Result<Finished, ClientError> {
    let mut request = Request::new(request(args));
    if let Some(deadline) = args.deadline {
        request.set_timeout(deadline);
    }
    let started = Instant::now();
    let response = tokio::select! {
        response = connection.cafe.order_with_buzzer(request) => response
            .map_err(|s| ClientError::from_status(s, &connection.url, args.deadline))?,
        () = ctrl_c() => {
            eprintln!("left before the ticket came back");
            return Ok(Finished::Interrupted);
        }
    };
    // A stream's metadata comes with its first headers, before any event.
    let trace_url = out.trace_url(propagation::trace_id_from(response.metadata()).as_deref());
    let Followed { finished, .. } = events::follow(
        response.into_inner(),
        connection.cafe.clone(),
        started,
        out,
        &connection.url,
        args.deadline,
        ctrl_c(),
    )
    .await?;
    out.trace_line(trace_url.as_deref())?;
    if let Some(trace_url) = trace_url {
        out.json("trace", &TraceLine { trace_url })?;
    }
    Ok(finished)
}
