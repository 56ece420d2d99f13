//! The `cafe` client's library against a real café on port 0: how the two
//! paces of a rush actually wait, and what a missing café looks like.
//! (The binary itself is driven by the `cli` tests.)

use std::time::Duration;

use cafe_client::{
    commands::rush::{Pace, Plan, Report, rush},
    connection,
    error::{ClientError, exit},
};
use cafe_domain::menu::Size;
use cafe_server::Config;
use cafe_testkit::{config_at_scale, spawn_cafe};

/// A café where a medium latte takes 200 ms.
fn config(baristas: u32) -> Config {
    Config {
        baristas,
        ..config_at_scale(0.005)
    }
}

fn plan(customers: usize) -> Plan {
    Plan {
        customers,
        drink: "latte".into(),
        size: Size::Medium,
    }
}

/// The most visits whose [sent, received] intervals overlap at one time.
fn most_in_flight(report: &Report) -> usize {
    let mut edges: Vec<(Duration, i32)> = report
        .visits
        .iter()
        .flat_map(|v| [(v.sent, 1), (v.received, -1)])
        .collect();
    // At equal times, count arrivals before departures are subtracted last:
    // a departure and an arrival at the same instant do not overlap.
    edges.sort_by_key(|&(t, delta)| (t, delta));
    let (mut now, mut most) = (0, 0);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    most as usize
}

async fn run(connection: &connection::Connection, customers: usize, pace: Pace) -> Report {
    rush(
        &connection.cafe,
        &connection.url,
        &plan(customers),
        pace,
        &mut std::future::pending(),
        |_, _| {},
    )
    .await
}

#[tokio::test]
async fn sequential_customers_wait_one_after_another() {
    let cafe = spawn_cafe(config(4)).await;
    let connection = connection::connect(&cafe.url()).await.unwrap();

    let report = run(&connection, 4, Pace::Sequential).await;

    assert_eq!(report.served().count(), 4);
    assert_eq!(most_in_flight(&report), 1, "{report:#?}");
    let mut visits: Vec<_> = report.visits.iter().collect();
    visits.sort_by_key(|v| v.customer);
    for pair in visits.windows(2) {
        assert!(pair[1].sent >= pair[0].received, "{report:#?}");
    }
    // The wall clock is the sum of the waits (plus a little in between).
    assert!(report.wall >= report.latency_sum());
    // Every drink was brewing for real: 200 ms by the café's own clock.
    for (_, served) in report.served() {
        assert!(served.brewing >= Duration::from_millis(190), "{served:?}");
    }
}

#[tokio::test]
async fn concurrent_customers_are_in_flight_together_on_one_connection() {
    let cafe = spawn_cafe(config(4)).await;
    let connection = connection::connect(&cafe.url()).await.unwrap();

    let sequential = run(&connection, 4, Pace::Sequential).await;
    let concurrent = run(&connection, 4, Pace::Concurrent { in_flight: 4 }).await;

    assert_eq!(concurrent.served().count(), 4);
    assert_eq!(most_in_flight(&concurrent), 4, "{concurrent:#?}");
    // Four baristas brew four lattes at once: about one wait instead of
    // four. The margin is generous so a loaded machine cannot flake it.
    assert!(
        concurrent.wall.as_secs_f64() < 0.7 * sequential.wall.as_secs_f64(),
        "concurrent {:?} vs sequential {:?}",
        concurrent.wall,
        sequential.wall
    );
}

#[tokio::test]
async fn concurrency_is_capped_and_the_line_forms_at_the_cafe() {
    let cafe = spawn_cafe(config(1)).await;
    let connection = connection::connect(&cafe.url()).await.unwrap();

    let capped = run(&connection, 4, Pace::Concurrent { in_flight: 2 }).await;
    assert_eq!(capped.served().count(), 4);
    assert_eq!(most_in_flight(&capped), 2, "{capped:#?}");

    // With one barista and everyone in flight, all but the first wait in
    // line at the café: the queue wait is measured by the café's clock.
    let crowd = run(&connection, 3, Pace::Concurrent { in_flight: 3 }).await;
    let waited = crowd
        .served()
        .filter(|(_, s)| s.waiting >= Duration::from_millis(150))
        .count();
    assert!(waited >= 2, "{crowd:#?}");
    // The timeline rows come back sorted by arrival, so the fan reads down.
    let rows = crowd.rows();
    assert!(rows.windows(2).all(|w| w[0].received <= w[1].received));
}

#[tokio::test]
async fn a_bad_drink_fails_every_customer_with_the_cafes_message() {
    let cafe = spawn_cafe(config(2)).await;
    let connection = connection::connect(&cafe.url()).await.unwrap();
    let mut plan = plan(2);
    plan.drink = "frappe".into();

    let report = rush(
        &connection.cafe,
        &connection.url,
        &plan,
        Pace::Sequential,
        &mut std::future::pending(),
        |_, _| {},
    )
    .await;

    assert_eq!(report.served().count(), 0);
    let error = report.visits[0].outcome.as_ref().unwrap_err();
    assert_eq!(error.exit_code(), exit::INVALID);
    assert!(
        error.to_string().contains("\"frappe\" is not on the menu"),
        "{error}"
    );
}

#[tokio::test]
async fn no_cafe_at_the_address_is_one_clear_error() {
    // A port that was free a moment ago: nothing listens there now.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);

    let error = connection::connect(&addr.to_string()).await.unwrap_err();

    assert!(matches!(error, ClientError::NoCafe { .. }), "{error:?}");
    assert_eq!(error.exit_code(), exit::UNAVAILABLE);
    assert!(error.to_string().starts_with(&format!(
        "no café at http://{addr}: is cafe-server running?"
    )));
}

#[tokio::test]
async fn an_interrupted_rush_stops_and_reports_what_was_served() {
    let cafe = spawn_cafe(Config {
        baristas: 1,
        ..config_at_scale(0.05) // a latte takes 2 s
    })
    .await;
    let connection = connection::connect(&cafe.url()).await.unwrap();

    // "Ctrl-C" 300 ms in: nobody is served yet, and the run stops at once
    // instead of waiting the 8 s the four lattes would take.
    let mut interrupt = Box::pin(tokio::time::sleep(Duration::from_millis(300)));
    let report = rush(
        &connection.cafe,
        &connection.url,
        &plan(4),
        Pace::Concurrent { in_flight: 4 },
        &mut interrupt,
        |_, _| {},
    )
    .await;

    assert!(report.interrupted);
    assert_eq!(report.served().count(), 0);
    assert!(report.wall < Duration::from_secs(2), "{:?}", report.wall);
}
