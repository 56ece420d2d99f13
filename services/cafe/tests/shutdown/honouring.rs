//! Customers that honour the retry hint: the guarantee is that an
//! accepted order reaches a final state (its buzzer shows it, its counter
//! call answers it), and every call that is not accepted ends
//! `UNAVAILABLE`, the code a client retries; never `CANCELLED`,
//! `INTERNAL`, `UNKNOWN` or a bare reset, which a client does not.
//!
//! The customers here behave like gRPC clients with a retry policy: after
//! an answer they order again at once; after an `UNAVAILABLE` that carries
//! a retry hint (`grpc-retry-pushback-ms`) they wait as long as it says;
//! they stop once the café no longer accepts connections. (Customers that
//! ignore the hint are [`super::naive`]'s.)

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use cafe_domain::{
    menu::TimeScale,
    proto::v1::{GetStatsRequest, OrderStatus, cafe_client::CafeClient},
};
use cafe_server::Config;
use cafe_testkit::{LIMIT, connect, order, spawn_cafe};
use grpc_serving::ServerFlags;
use tonic::{Code, Status, transport::Channel};

use super::{ALONE, BARISTAS, CONNECTIONS, IN_FLIGHT};

/// How one call ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ending {
    /// An accepted order reached this final state and the call ended OK.
    Final(OrderStatus),
    /// The café answered `UNAVAILABLE`, with a retry hint or without.
    Unavailable { hint: bool },
    /// The café could not be reached any more: the client's own
    /// `UNAVAILABLE` ("connection refused").
    Unreachable,
    /// Any other status code.
    Code(Code),
}

impl Ending {
    /// How a call that failed with `status` ended.
    fn of(status: &Status) -> Ending {
        match status.code() {
            Code::Unavailable if unreachable(status) => Ending::Unreachable,
            Code::Unavailable => Ending::Unavailable {
                hint: pushback(status).is_some(),
            },
            code => Ending::Code(code),
        }
    }
}

/// What the customers heard, by ending, and one message of each wrong code.
#[derive(Debug, Default)]
struct Tally(Mutex<HashMap<Ending, u64>>, Mutex<HashMap<Ending, String>>);

impl Tally {
    fn record(&self, ending: Ending) {
        *self.0.lock().unwrap().entry(ending).or_default() += 1;
    }

    fn record_wrong(&self, ending: Ending, status: &Status) {
        self.record(ending);
        let mut samples = self.1.lock().unwrap();
        samples
            .entry(ending)
            .or_insert_with(|| format!("{status:?}"));
    }

    fn counts(&self) -> HashMap<Ending, u64> {
        self.0.lock().unwrap().clone()
    }
}

/// The retry hint a status carries, if any.
fn pushback(status: &Status) -> Option<Duration> {
    let millis = status.metadata().get("grpc-retry-pushback-ms")?;
    Some(Duration::from_millis(millis.to_str().ok()?.parse().ok()?))
}

/// Whether a status says the café could not even be reached (it has
/// gone): tonic's client makes it from the refused connection.
fn unreachable(status: &Status) -> bool {
    status.message().contains("tcp connect error")
}

/// One call: a buzzer order read to its end, or an order at the counter.
async fn call(cafe: &mut CafeClient<Channel>, buzzer: bool, n: usize) -> Result<Ending, Status> {
    let request = order(&format!("customer {n}"), "latte");
    if !buzzer {
        let response = cafe.order_coffee(request).await?.into_inner();
        let status = response.order.map_or(0, |order| order.status);
        return Ok(Ending::Final(OrderStatus::try_from(status).unwrap()));
    }
    let mut events = cafe.order_with_buzzer(request).await?.into_inner();
    let mut last = OrderStatus::Unspecified;
    while let Some(event) = events.message().await? {
        last = OrderStatus::try_from(event.order.unwrap().status).unwrap();
    }
    Ok(Ending::Final(last))
}

/// A customer: orders, and orders again, until the café is gone; counts
/// how each call ended.
async fn customer(mut cafe: CafeClient<Channel>, buzzer: bool, n: usize, tally: Arc<Tally>) {
    loop {
        match call(&mut cafe, buzzer, n).await {
            Ok(ending) => tally.record(ending),
            Err(status) => {
                let ending = Ending::of(&status);
                if matches!(ending, Ending::Code(_)) {
                    tally.record_wrong(ending, &status);
                } else {
                    tally.record(ending);
                }
                if !matches!(ending, Ending::Unavailable { .. }) {
                    return;
                }
                // Closing: wait as long as the café asks before trying again.
                if let Some(wait) = pushback(&status) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_with_2000_orders_in_flight_answers_every_call_with_a_final_state_or_unavailable() {
    let _alone = ALONE.lock().await;
    let mut cafe = spawn_cafe(Config {
        baristas: BARISTAS,
        queue_capacity: 10 * IN_FLIGHT as u32,
        time_scale: TimeScale::new(0.05).unwrap(),
        server: ServerFlags {
            // A latte takes 2 s: the drinks being brewed are finished
            // well within the grace.
            shutdown_grace: Duration::from_secs(5),
            ..ServerFlags::default()
        },
        ..Config::default()
    })
    .await;
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(connect(cafe.addr).await);
    }

    // Half the customers use buzzers, half wait at the counter.
    let tally = Arc::new(Tally::default());
    let mut customers = tokio::task::JoinSet::new();
    for n in 0..IN_FLIGHT {
        let client = channels[n % CONNECTIONS].clone();
        customers.spawn(customer(client, n % 2 == 0, n, Arc::clone(&tally)));
    }

    // Close once every order is in and a full shift of baristas is brewing.
    let in_flight = async {
        loop {
            let stats = cafe
                .client
                .get_stats(GetStatsRequest {})
                .await
                .unwrap()
                .into_inner();
            let orders = (stats.orders_queued + stats.orders_brewing) as usize;
            if orders >= IN_FLIGHT && stats.orders_brewing == BARISTAS {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LIMIT, in_flight)
        .await
        .expect("2,000 orders in flight");
    let before_closing = tally.counts();
    cafe.shutdown_within(LIMIT).await;

    let everyone_done = async { while customers.join_next().await.is_some() {} };
    tokio::time::timeout(LIMIT, everyone_done)
        .await
        .expect("every customer's calls ended");

    let counts = tally.counts();
    eprintln!("before closing: {before_closing:?}\nin all: {counts:?}");
    // Every UNAVAILABLE the café answered while closing said when to come
    // back; every other call ended with its order's final state, or found
    // the café gone.
    let wrong: Vec<_> = counts
        .iter()
        .filter(|(ending, _)| {
            !matches!(
                ending,
                Ending::Final(_) | Ending::Unavailable { hint: true } | Ending::Unreachable
            )
        })
        .collect();
    let samples = tally.1.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "wrong endings {wrong:?} among {counts:?}, e.g. {samples:?}"
    );
    // The orders in line when it closed were cancelled and told so; the
    // ones being brewed were finished.
    assert!(
        counts.get(&Ending::Final(OrderStatus::Cancelled)) > Some(&0),
        "{counts:?}"
    );
    assert!(
        counts.get(&Ending::Final(OrderStatus::Ready)) >= Some(&u64::from(BARISTAS)),
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&Ending::Final(OrderStatus::Failed)),
        None,
        "{counts:?}"
    );
}
