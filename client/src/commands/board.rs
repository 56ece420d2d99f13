//! `cafe board`: the order board over the counter, fed by `WatchBoard`.
//!
//! On a terminal the board is redrawn in place after every event; piped, it
//! prints one plain line per event, so `cafe board | grep ready` works.
//! The board is rebuilt client-side from the events: the café sends the
//! orders open when watching starts, then every change.

use std::collections::{BTreeMap, VecDeque};

use cafe_domain::{
    convert::status_from_wire,
    order::OrderStatus,
    proto::v1::{self as pb, WatchBoardRequest},
};
use tokio::time::Instant;

use super::{Finished, ctrl_c};
use crate::{
    connection::Connection,
    error::ClientError,
    output::{Output, human},
    view::{OrderLine, what},
};

/// How many finished orders the board keeps on show.
const READY_SHOWN: usize = 5;
/// How many orders each section lists before "… and N more".
const SECTION_ROWS: usize = 8;

/// What the board shows: open orders by id, and the last few finished.
#[derive(Debug, Default)]
pub struct Board {
    open: BTreeMap<String, pb::OrderEvent>,
    done: VecDeque<pb::Order>,
}

impl Board {
    /// Applies one event.
    pub fn apply(&mut self, event: &pb::OrderEvent) {
        let Some(order) = &event.order else { return };
        match status_from_wire(order.status) {
            Some(status) if status.is_final() => {
                self.open.remove(&order.id);
                self.done.push_front(order.clone());
                self.done.truncate(READY_SHOWN);
            }
            _ => {
                self.open.insert(order.id.clone(), event.clone());
            }
        }
    }

    /// The board as lines.
    pub fn lines(&self) -> Vec<String> {
        let mut queued: Vec<&pb::OrderEvent> = self
            .open
            .values()
            .filter(|e| status_of(e) == Some(OrderStatus::Queued))
            .collect();
        queued.sort_by_key(|e| e.queue_position);
        let mut brewing: Vec<&pb::Order> = self
            .open
            .values()
            .filter(|e| status_of(e) == Some(OrderStatus::Brewing))
            .filter_map(|e| e.order.as_ref())
            .collect();
        brewing.sort_by(|a, b| a.barista.cmp(&b.barista));

        let mut lines = vec![format!("IN LINE ({})", queued.len())];
        // The café sends an order's position when that order changes, not
        // every time the line moves up; the line is first come, first
        // served, so the rank among the orders still waiting is the
        // position now.
        for (rank, event) in queued.iter().take(SECTION_ROWS).enumerate() {
            let order = event.order.as_ref().expect("filtered");
            lines.push(format!("  {:>3}. {}  {}", rank + 1, what(order), order.id));
        }
        more(&mut lines, queued.len());
        lines.push(format!("BREWING ({})", brewing.len()));
        for order in brewing.iter().take(SECTION_ROWS) {
            lines.push(format!(
                "  {:<8} {}  {}",
                order.barista,
                what(order),
                order.id
            ));
        }
        more(&mut lines, brewing.len());
        lines.push("DONE (latest first)".into());
        for order in &self.done {
            let status = status_from_wire(order.status).map_or("?", OrderStatus::as_str);
            lines.push(format!("  {status:<9} {}  {}", what(order), order.id));
        }
        lines
    }
}

fn more(lines: &mut Vec<String>, count: usize) {
    if count > SECTION_ROWS {
        lines.push(format!("  … and {} more", count - SECTION_ROWS));
    }
}

fn status_of(event: &pb::OrderEvent) -> Option<OrderStatus> {
    event
        .order
        .as_ref()
        .and_then(|o| status_from_wire(o.status))
}

/// Watches the board until the café closes it or Ctrl-C.
pub async fn run(connection: &mut Connection, out: &Output) -> Result<Finished, ClientError> {
    let mut stream = connection
        .cafe
        .watch_board(WatchBoardRequest {})
        .await
        .map_err(|s| ClientError::from_status(s, &connection.url, None))?
        .into_inner();
    let started = Instant::now();
    let live = out.stdout_tty && !out.json;
    let term = console::Term::stdout();
    let mut board = Board::default();
    let mut drawn = 0;
    if live {
        drawn = draw(&term, &board, 0, &connection.url)?;
    }
    let mut ctrl_c = std::pin::pin!(ctrl_c());
    loop {
        // The board never ends by itself while the café is open: Ctrl-C
        // drops the stream, and the café's producer task sees the channel
        // closed and stops.
        let event = tokio::select! {
            () = &mut ctrl_c => return Ok(Finished::Interrupted),
            message = stream.message() => match message {
                Ok(Some(event)) => event,
                Ok(None) => {
                    out.line("the café closed the board")?;
                    return Ok(Finished::Done);
                }
                Err(status) => return Err(ClientError::from_status(status, &connection.url, None)),
            },
        };
        board.apply(&event);
        if live {
            drawn = draw(&term, &board, drawn, &connection.url)?;
        } else if let Some(order) = &event.order {
            let status = status_from_wire(order.status).map_or("?", OrderStatus::as_str);
            let detail = match status_from_wire(order.status) {
                Some(OrderStatus::Queued) => format!(", position {}", event.queue_position),
                Some(OrderStatus::Brewing) => format!(", by {}", order.barista),
                _ => String::new(),
            };
            out.line(format!(
                "{:>8}  {}  {status}{detail}  {}",
                format!("+{}", human(started.elapsed())),
                order.id,
                what(order)
            ))?;
            out.json("order", &OrderLine::from(order))?;
        }
    }
}

/// Replaces the `drawn` lines printed last time with the board as it is now.
fn draw(term: &console::Term, board: &Board, drawn: usize, url: &str) -> std::io::Result<usize> {
    term.clear_last_lines(drawn)?;
    let mut lines = vec![format!("café board at {url} (Ctrl-C to leave)")];
    lines.extend(board.lines());
    for line in &lines {
        term.write_line(line)?;
    }
    Ok(lines.len())
}

#[cfg(test)]
mod tests {
    use cafe_domain::proto::v1::{Order, OrderStatus as Pb};

    use super::*;

    fn event(id: &str, status: Pb, position: u32, barista: &str) -> pb::OrderEvent {
        pb::OrderEvent {
            order: Some(Order {
                id: id.into(),
                customer: "Ada".into(),
                drink: "latte".into(),
                status: status as i32,
                barista: barista.into(),
                ..Order::default()
            }),
            queue_position: position,
            claim_token: String::new(),
        }
    }

    #[test]
    fn the_board_moves_orders_along_and_renumbers_the_line() {
        let mut board = Board::default();
        board.apply(&event("a", Pb::Brewing, 0, "Ana"));
        board.apply(&event("b", Pb::Queued, 1, ""));
        board.apply(&event("c", Pb::Queued, 2, ""));
        // "b" starts brewing; "c" never got an event saying it moved up.
        board.apply(&event("a", Pb::Ready, 0, "Ana"));
        board.apply(&event("b", Pb::Brewing, 0, "Ana"));

        let lines = board.lines().join("\n");
        assert!(
            lines.contains("IN LINE (1)\n    1. latte (medium) for Ada  c"),
            "{lines}"
        );
        assert!(
            lines.contains("BREWING (1)\n  Ana      latte (medium) for Ada  b"),
            "{lines}"
        );
        assert!(
            lines.contains("DONE (latest first)\n  ready     latte (medium) for Ada  a"),
            "{lines}"
        );
    }
}
