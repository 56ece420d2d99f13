//! Following one order's events (a buzzer): printing each change as it
//! comes, timed from when the customer started waiting.
//!
//! Shared by `cafe order --buzzer` and `cafe watch`. The stream is read in a
//! `select!` with Ctrl-C and the deadline, so leaving drops the stream (the
//! café notices and stops sending) without cancelling the order.
//!
//! A stream **cut** by the café going away (a crash), or ended
//! `UNAVAILABLE` by a café closing for a restart ("the café is restarting:
//! order … keeps its place in line"), is not the end of the order: the café
//! keeps its orders (see `docs/durability.md`), so the follower says so in
//! one line and re-attaches with `WatchOrder`, trying again with a growing
//! pause until the café is back, the deadline passes or [`REATTACH_LIMIT`]
//! runs out.

use std::{future::Future, time::Duration};

use cafe_domain::{
    convert::status_from_wire,
    order::OrderStatus,
    proto::v1::{self as pb, WatchOrderRequest},
};
use opentelemetry::KeyValue;
use serde::Serialize;
use tokio::time::Instant;
use tonic::{Code, Status, Streaming};
use tracing::{Instrument, Span, info, info_span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::Finished;
use crate::{
    connection::Cafe,
    error::ClientError,
    output::{Output, human, millis},
    view::{OrderView, what},
};

/// With no `--deadline`, how long a follower keeps trying to re-attach to
/// a café that went away before it gives up (and says how to come back).
pub const REATTACH_LIMIT: Duration = Duration::from_secs(60);

/// The longest pause between two attempts to re-attach.
const REATTACH_MAX_PAUSE: Duration = Duration::from_secs(2);

/// One event, for `--json`: `ticket` for the first event of a buzzer,
/// else the order's new status (`queued`, `brewing`, `ready`, …).
#[derive(Debug, Serialize)]
struct EventLine {
    /// Milliseconds since the customer ordered (or started watching).
    at_ms: f64,
    /// 1 is next in line; 0 once out of the line.
    queue_position: u32,
    /// Only on the ticket.
    #[serde(skip_serializing_if = "Option::is_none")]
    claim_token: Option<String>,
    order: OrderView,
}

/// How following ended.
#[derive(Debug)]
pub struct Followed {
    /// Ran to the end, or interrupted.
    pub finished: Finished,
    /// The last state seen.
    pub last: Option<pb::Order>,
}

/// Prints the events of `stream` until the order ends, `interrupt`
/// resolves, or `deadline` passes.
///
/// Traced as a `buzzer` span that lasts as long as the customer follows,
/// with one span event `buzz` per status change received: in Jaeger the
/// changes are dots along the bar, at the moment the customer saw them. `started` is time zero for the `+1.2s`
/// stamps. The ticket (first event with a claim token) is shown with the
/// commands to cancel and re-watch, which mention `server` unless it is the
/// default. A stream cut by the café going away is followed again through
/// `cafe`, with `WatchOrder` (see the module docs).
pub async fn follow(
    stream: Streaming<pb::OrderEvent>,
    cafe: Cafe,
    started: Instant,
    out: &Output,
    server: &str,
    deadline: Option<Duration>,
    interrupt: impl Future<Output = ()>,
) -> Result<Followed, ClientError> {
    let span = info_span!("buzzer");
    following(stream, cafe, started, out, server, deadline, interrupt)
        .instrument(span)
        .await
}

async fn following(
    mut stream: Streaming<pb::OrderEvent>,
    mut cafe: Cafe,
    started: Instant,
    out: &Output,
    server: &str,
    deadline: Option<Duration>,
    interrupt: impl Future<Output = ()>,
) -> Result<Followed, ClientError> {
    let mut last: Option<pb::Order> = None;
    let mut interrupt = std::pin::pin!(interrupt);
    // With no deadline, this sleep is simply never reached.
    let expiry =
        tokio::time::sleep_until(started + deadline.unwrap_or(Duration::from_secs(86_400 * 365)));
    let mut expiry = std::pin::pin!(expiry);
    loop {
        // Whichever happens first wins. Ctrl-C and the deadline return,
        // which drops `stream`: tonic resets the HTTP/2 stream, the café's
        // forwarding task sees its channel closed and stops. The order
        // itself carries on (a buzzer customer may come back with `watch`).
        let event = tokio::select! {
            () = &mut interrupt => {
                left(last.as_ref(), server);
                return Ok(Followed { finished: Finished::Interrupted, last });
            }
            () = &mut expiry => {
                return Err(walked_away(deadline, last.as_ref(), server));
            }
            message = stream.message() => match message {
                Ok(Some(event)) => event,
                Err(status) if is_cut(&status) && let Some(order) = &last => {
                    // The café went away with the order unfinished: it is
                    // kept, so follow it again once the café is back.
                    eprintln!(
                        "the café went away; following order {} again with WatchOrder…",
                        order.id
                    );
                    let order_id = order.id.clone();
                    let limit = tokio::time::sleep(REATTACH_LIMIT);
                    stream = tokio::select! {
                        () = &mut interrupt => {
                            left(last.as_ref(), server);
                            return Ok(Followed { finished: Finished::Interrupted, last });
                        }
                        () = &mut expiry => {
                            return Err(walked_away(deadline, last.as_ref(), server));
                        }
                        () = limit, if deadline.is_none() => {
                            return Err(ClientError::Unavailable {
                                url: server.into(),
                                detail: format!(
                                    "the café has been gone for {}; order {order_id} is kept: follow it later with `cafe{} watch {order_id}`",
                                    human(REATTACH_LIMIT),
                                    server_flag(server),
                                ),
                            });
                        }
                        stream = reattach(&mut cafe, &order_id, server) => stream?,
                    };
                    continue;
                }
                Ok(None) => break,
                // The café enforces the same deadline (`grpc-timeout`) and
                // may notice first.
                Err(status) => {
                    return Err(match ClientError::from_status(status, server, deadline) {
                        ClientError::DeadlineExceeded(_) => walked_away(deadline, last.as_ref(), server),
                        other => other,
                    });
                }
            },
        };
        let at = started.elapsed();
        let Some(order) = event.order.clone() else {
            continue;
        };
        if !event.claim_token.is_empty() {
            ticket(out, &order, &event, server)?;
        }
        print_event(out, &event, &order, at)?;
        let status = status_from_wire(order.status);
        last = Some(order);
        if status.is_some_and(OrderStatus::is_final) {
            break;
        }
    }
    match last
        .as_ref()
        .and_then(|o| status_from_wire(o.status).map(|s| (o, s)))
    {
        Some((_, OrderStatus::Ready)) => Ok(Followed {
            finished: Finished::Done,
            last,
        }),
        Some((order, status)) => Err(ClientError::OrderState {
            // The code the café answers at the counter for an order that
            // ended so: CANCELLED, or UNAVAILABLE when it could not be made.
            code: match status {
                OrderStatus::Cancelled => Code::Cancelled,
                _ => Code::Unavailable,
            },
            message: format!(
                "order {} {status}{}",
                order.id,
                if order.note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", order.note)
                }
            ),
        }),
        None => Err(ClientError::Unavailable {
            url: server.into(),
            detail: "the café ended the stream before the order was done".into(),
        }),
    }
}

fn ticket(
    out: &Output,
    order: &pb::Order,
    event: &pb::OrderEvent,
    server: &str,
) -> std::io::Result<()> {
    let flag = server_flag(server);
    let place = match event.queue_position {
        0 => String::new(),
        position => format!(", position {position} in line"),
    };
    out.line(format!("ticket {}: {}{place}", order.id, what(order)))?;
    out.line(format!("  claim token  {}", event.claim_token))?;
    out.line(format!(
        "  cancel with  cafe{flag} cancel {} --claim-token {}",
        order.id, event.claim_token
    ))?;
    out.line(format!("  watch with   cafe{flag} watch {}", order.id))
}

fn print_event(
    out: &Output,
    event: &pb::OrderEvent,
    order: &pb::Order,
    at: Duration,
) -> std::io::Result<()> {
    let status = status_from_wire(order.status);
    let status_name = status.map_or("unknown", OrderStatus::as_str);
    // A span event on the `buzzer` span: a dot on its bar where the change
    // was seen. Added on purpose, as the café's buzzer does: log lines at
    // info stay out of traces (see `grpc_telemetry`).
    Span::current().add_event(
        "buzz",
        vec![
            KeyValue::new("order.id", order.id.clone()),
            KeyValue::new("order.status", status_name),
            KeyValue::new("queue.position", i64::from(event.queue_position)),
        ],
    );
    // And a log line, which the console shows only if RUST_LOG asks for
    // info (the CLI logs warnings by default).
    info!(
        order.id = %order.id,
        order.status = status_name,
        queue.position = event.queue_position,
        "buzz"
    );
    // A queued or brewing order's note says why it is (back) in line or
    // brewed again: "brewed again: the café restarted before it was ready".
    let why = if order.note.is_empty() {
        String::new()
    } else {
        format!(" ({})", order.note)
    };
    let text = match status {
        Some(OrderStatus::Queued) if event.queue_position > 0 => {
            format!("queued, position {} in line{why}", event.queue_position)
        }
        Some(OrderStatus::Queued) => format!("queued{why}"),
        Some(OrderStatus::Brewing) => format!("brewing, by {}{why}", order.barista),
        Some(OrderStatus::Ready) => format!("ready ☕ (brewed by {})", order.barista),
        Some(other) if !order.note.is_empty() => format!("{other}: {}", order.note),
        Some(other) => other.to_string(),
        None => "unknown status".into(),
    };
    out.line(format!("{:>8}  {text}", format!("+{}", human(at))))?;
    let kind = if event.claim_token.is_empty() {
        status.map_or("unknown", OrderStatus::as_str)
    } else {
        "ticket"
    };
    out.json(
        kind,
        &EventLine {
            at_ms: millis(at),
            queue_position: event.queue_position,
            claim_token: (!event.claim_token.is_empty()).then(|| event.claim_token.clone()),
            order: OrderView::from(order),
        },
    )
}

/// Whether a stream error means the connection to the café was cut (the
/// café crashed or restarted), rather than an answer from the café.
fn is_cut(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Internal | Code::Aborted
    )
}

/// Asks for the order's changes again until the café answers: a café
/// restarting refuses connections for a moment.
async fn reattach(
    cafe: &mut Cafe,
    order_id: &str,
    server: &str,
) -> Result<Streaming<pb::OrderEvent>, ClientError> {
    let mut pause = Duration::from_millis(100);
    loop {
        let request = WatchOrderRequest {
            order_id: order_id.to_owned(),
        };
        match cafe.watch_order(request).await {
            Ok(response) => return Ok(response.into_inner()),
            // CANCELLED here is the client's own: hyper drops a call it
            // had queued on a connection that closed under it (the old
            // café's, going down). The café never answers WatchOrder so.
            Err(status) if is_cut(&status) || status.code() == Code::Cancelled => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(REATTACH_MAX_PAUSE);
            }
            // NOT_FOUND: the café came back without the order (it keeps its
            // orders in memory only).
            Err(status) => return Err(ClientError::from_status(status, server, None)),
        }
    }
}

/// The error for a buzzer whose `--deadline` passed: the order carries on.
fn walked_away(deadline: Option<Duration>, last: Option<&pb::Order>, server: &str) -> ClientError {
    let deadline = deadline.unwrap_or_default();
    match last {
        Some(order) => ClientError::BuzzerDeadline {
            deadline,
            order_id: order.id.clone(),
            watch: format!("cafe{} watch {}", server_flag(server), order.id),
        },
        None => ClientError::DeadlineExceeded(deadline),
    }
}

/// What to tell a customer who walks away with the buzzer.
fn left(last: Option<&pb::Order>, server: &str) {
    let Some(order) = last else {
        eprintln!("left before the ticket came back");
        return;
    };
    let status = status_from_wire(order.status).map_or("unknown", OrderStatus::as_str);
    eprintln!(
        "left: order {} is still {status} and carries on; follow it again with `cafe{} watch {}`",
        order.id,
        server_flag(server),
        order.id
    );
}

/// ` --server URL`, or nothing for the default address.
pub fn server_flag(server: &str) -> String {
    if server == crate::DEFAULT_SERVER {
        String::new()
    } else {
        format!(" --server {server}")
    }
}
