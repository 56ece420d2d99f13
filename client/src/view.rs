//! Orders as the CLI shows them: one readable line for people, one
//! serialisable struct for `--json`.
//!
//! The times shown are the café's own timestamps (`placed_at`,
//! `started_at`, `ready_at`): what actually happened, not what the menu
//! says should have.

use std::time::{Duration, SystemTime};

use cafe_domain::{
    convert::{status_from_wire, time_from_wire},
    proto::v1 as pb,
};
use serde::Serialize;

use crate::output::{human, millis, rfc3339};

/// An order, ready to be printed or serialised.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OrderView {
    /// The café's id.
    pub id: String,
    /// Who it is for.
    pub customer: String,
    /// The menu id.
    pub drink: String,
    /// `small`, `medium` or `large`.
    pub size: &'static str,
    /// `queued`, `brewing`, `ready`, `cancelled` or `failed`.
    pub status: &'static str,
    /// Who brewed it, once someone has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub barista: Option<String>,
    /// RFC 3339 times, as the café recorded them.
    pub placed_at: Option<String>,
    /// When brewing started.
    pub started_at: Option<String>,
    /// When it was ready.
    pub ready_at: Option<String>,
    /// Time in line (placed → started), by the café's clock.
    pub waited_in_line_ms: Option<f64>,
    /// Time brewing (started → ready), by the café's clock.
    pub brewing_ms: Option<f64>,
    /// The café's remark on the latest change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An order as it is now, for `--json`: an `order` event (`cafe get`,
/// `cafe cancel`, and each change on `cafe board`).
#[derive(Debug, Clone, Serialize)]
pub struct OrderLine {
    /// The order.
    pub order: OrderView,
}

impl From<&pb::Order> for OrderLine {
    fn from(order: &pb::Order) -> Self {
        OrderLine {
            order: OrderView::from(order),
        }
    }
}

/// The order's stage times by the café's clock: (in line, brewing).
pub fn stage_times(order: &pb::Order) -> (Option<Duration>, Option<Duration>) {
    let placed = time_from_wire(order.placed_at.as_ref());
    let started = time_from_wire(order.started_at.as_ref());
    let ready = time_from_wire(order.ready_at.as_ref());
    let between = |a: Option<SystemTime>, b: Option<SystemTime>| {
        Some(b?.duration_since(a?).unwrap_or_default())
    };
    (between(placed, started), between(started, ready))
}

/// The status's lower-case name.
pub fn status_name(order: &pb::Order) -> &'static str {
    status_from_wire(order.status).map_or("unknown", |s| s.as_str())
}

/// The size's lower-case name.
pub fn size_name(raw: i32) -> &'static str {
    match pb::Size::try_from(raw) {
        Ok(pb::Size::Small) => "small",
        Ok(pb::Size::Large) => "large",
        _ => "medium",
    }
}

impl From<&pb::Order> for OrderView {
    fn from(order: &pb::Order) -> Self {
        let (in_line, brewing) = stage_times(order);
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        OrderView {
            id: order.id.clone(),
            customer: order.customer.clone(),
            drink: order.drink.clone(),
            size: size_name(order.size),
            status: status_name(order),
            barista: non_empty(&order.barista),
            placed_at: time_from_wire(order.placed_at.as_ref()).map(rfc3339),
            started_at: time_from_wire(order.started_at.as_ref()).map(rfc3339),
            ready_at: time_from_wire(order.ready_at.as_ref()).map(rfc3339),
            waited_in_line_ms: in_line.map(millis),
            brewing_ms: brewing.map(millis),
            note: non_empty(&order.note),
        }
    }
}

/// `latte (medium) for Ada`.
pub fn what(order: &pb::Order) -> String {
    format!(
        "{} ({}) for {}",
        order.drink,
        size_name(order.size),
        order.customer
    )
}

/// A few lines describing an order, for `cafe get` and `cafe cancel`.
pub fn describe(order: &pb::Order) -> Vec<String> {
    let mut lines = vec![format!(
        "order {}: {}, {}",
        order.id,
        what(order),
        status_name(order)
    )];
    let (in_line, brewing) = stage_times(order);
    if let Some(in_line) = in_line {
        lines.push(format!("  in line  {}", human(in_line)));
    }
    match (brewing, order.barista.is_empty()) {
        (Some(brewing), false) => lines.push(format!(
            "  brewing  {} by {}",
            human(brewing),
            order.barista
        )),
        (None, false) => lines.push(format!("  brewing  by {} (not ready yet)", order.barista)),
        _ => {}
    }
    if !order.note.is_empty() {
        lines.push(format!("  note     {}", order.note));
    }
    lines
}
