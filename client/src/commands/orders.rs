//! `cafe watch`, `cafe get` and `cafe cancel`: what a customer can do with
//! an order placed earlier, knowing only its id (and, to cancel, the claim
//! token from its ticket).

use cafe_domain::proto::v1::{CancelOrderRequest, GetOrderRequest, Order, WatchOrderRequest};
use tokio::time::Instant;

use super::{Finished, ctrl_c, events};
use crate::{
    connection::Connection,
    error::ClientError,
    output::Output,
    view::{OrderLine, describe},
};

/// Follows an order placed earlier until it ends (or Ctrl-C).
pub async fn watch(
    connection: &mut Connection,
    out: &Output,
    order_id: &str,
) -> Result<Finished, ClientError> {
    let started = Instant::now();
    let stream = connection
        .cafe
        .watch_order(WatchOrderRequest {
            order_id: order_id.into(),
        })
        .await
        .map_err(|s| ClientError::from_status(s, &connection.url, None))?
        .into_inner();
    let followed = events::follow(
        stream,
        connection.cafe.clone(),
        started,
        out,
        &connection.url,
        None,
        ctrl_c(),
    )
    .await?;
    Ok(followed.finished)
}

/// Shows an order as it is now.
pub async fn get(
    connection: &mut Connection,
    out: &Output,
    order_id: &str,
) -> Result<Finished, ClientError> {
    let order = connection
        .cafe
        .get_order(GetOrderRequest {
            order_id: order_id.into(),
        })
        .await
        .map_err(|s| ClientError::from_status(s, &connection.url, None))?
        .into_inner();
    show(out, &order)
}

/// Cancels an order with its claim token.
pub async fn cancel(
    connection: &mut Connection,
    out: &Output,
    order_id: &str,
    claim_token: &str,
) -> Result<Finished, ClientError> {
    let order = connection
        .cafe
        .cancel_order(CancelOrderRequest {
            order_id: order_id.into(),
            claim_token: claim_token.into(),
        })
        .await
        .map_err(|s| ClientError::from_status(s, &connection.url, None))?
        .into_inner();
    show(out, &order)
}

/// Prints one order: lines for people, or one JSON object.
fn show(out: &Output, order: &Order) -> Result<Finished, ClientError> {
    for line in describe(order) {
        out.line(line)?;
    }
    out.json("order", &OrderLine::from(order))?;
    Ok(Finished::Done)
}
