//! `cafe stats`: how busy the café is, seen from inside (`GetStats`).
//!
//! The line shows the two sides of the lesson at once: the orders (in line,
//! brewing) and the café's async runtime (its worker threads and the tasks
//! alive on them). During a rush of a thousand customers at the counter, a
//! thousand tasks are alive on two workers: each waiting customer is a task
//! parked at an `.await`, costing a little memory and no thread. With
//! `--brew-mode blocking` the line itself is late: the café cannot answer
//! until a worker thread comes free.

use std::time::Duration;

use cafe_domain::proto::v1::{GetStatsRequest, GetStatsResponse};
use serde::Serialize;
use tokio::time::Instant;

use super::{Finished, ctrl_c};
use crate::{
    cli::StatsArgs,
    connection::Connection,
    error::ClientError,
    output::{Output, human, millis},
};

/// One snapshot in `--json` output: a `stats` event.
#[derive(Debug, Serialize)]
struct StatsLine {
    orders_queued: u32,
    orders_brewing: u32,
    runtime_workers: u32,
    runtime_alive_tasks: u64,
    runtime_global_queue_depth: u64,
    /// How long the café took to answer, by the CLI's clock.
    answered_in_ms: f64,
}

/// Asks once, or every `--every` until Ctrl-C.
pub async fn run(
    connection: &mut Connection,
    out: &Output,
    args: &StatsArgs,
) -> Result<Finished, ClientError> {
    let mut ctrl_c = std::pin::pin!(ctrl_c());
    loop {
        let asked = Instant::now();
        let stats = connection
            .cafe
            .get_stats(GetStatsRequest {})
            .await
            .map_err(|s| ClientError::from_status(s, &connection.url, None))?
            .into_inner();
        let took = asked.elapsed();
        out.line(line(&stats, took))?;
        out.json(
            "stats",
            &StatsLine {
                orders_queued: stats.orders_queued,
                orders_brewing: stats.orders_brewing,
                runtime_workers: stats.runtime_workers,
                runtime_alive_tasks: stats.runtime_alive_tasks,
                runtime_global_queue_depth: stats.runtime_global_queue_depth,
                answered_in_ms: millis(took),
            },
        )?;
        let Some(every) = args.every else {
            return Ok(Finished::Done);
        };
        // The next snapshot `every` after this one was asked for, or at once
        // if the answer itself took longer than that.
        tokio::select! {
            () = &mut ctrl_c => return Ok(Finished::Interrupted),
            () = tokio::time::sleep_until(asked + every) => {}
        }
    }
}

/// `in line 997  brewing 3  │  runtime: 2 workers, 1012 tasks alive, 0 queued  (answered in 1.2ms)`
pub fn line(stats: &GetStatsResponse, answered_in: Duration) -> String {
    format!(
        "in line {:>4}  brewing {:>3}  │  runtime: {} worker{}, {} task{} alive, {} in the global queue  (answered in {})",
        stats.orders_queued,
        stats.orders_brewing,
        stats.runtime_workers,
        if stats.runtime_workers == 1 { "" } else { "s" },
        stats.runtime_alive_tasks,
        if stats.runtime_alive_tasks == 1 {
            ""
        } else {
            "s"
        },
        stats.runtime_global_queue_depth,
        human(answered_in)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_orders_and_runtime() {
        let stats = GetStatsResponse {
            orders_queued: 997,
            orders_brewing: 3,
            runtime_workers: 2,
            runtime_alive_tasks: 1012,
            runtime_global_queue_depth: 0,
        };
        assert_eq!(
            line(&stats, Duration::from_micros(1200)),
            "in line  997  brewing   3  │  runtime: 2 workers, 1012 tasks alive, 0 in the global queue  (answered in 1.2ms)"
        );
    }
}
