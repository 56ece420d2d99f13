//! The registry's tests: replicas up and down, slots reserved and freed, and orders refused while no replica is up.

use cafe_domain::order::NewOrder;

use super::*;
use crate::{
    book::{OrderBook, Origin},
    error::CafeError,
};
use tonic::transport::Endpoint;

fn latte() -> NewOrder {
    NewOrder::parse("Ada", "latte", Ok(None), "").unwrap()
}

fn station(baristas: u32, busy: u32) -> pb::Station {
    pb::Station {
        name: "b".to_owned(),
        baristas,
        busy,
        time_scale: 1.0,
    }
}

/// A replica at `addr` with `baristas`, up in `registry`.
fn up(registry: &Registry, addr: &str, baristas: u32) -> Arc<ReplicaState> {
    let replica = ReplicaState::new(addr.parse().unwrap());
    registry.station_read(&replica, &station(baristas, 0));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    registry.mark_up(&replica, &channel);
    replica
}

fn registry(availability: &Arc<Availability>) -> Registry {
    let endpoint: BaristaEndpoint = "127.0.0.1:9".parse().unwrap();
    Registry::new(Arc::clone(availability), &[endpoint])
}

#[tokio::test(start_paused = true)]
async fn orders_are_refused_while_no_replica_is_up() {
    let availability = Arc::new(Availability::new());
    let book = OrderBook::new(10, Arc::clone(&availability));
    let place = || book.place(latte(), Origin::default());
    let registry = registry(&availability);
    let wait = Duration::from_secs(5);

    // Nobody up yet: refused, and a waiting order gives up 5 s from now.
    let refused = place().unwrap_err();
    assert!(matches!(&refused, CafeError::NoBarista(why) if why.contains("127.0.0.1:9")));
    assert_eq!(registry.give_up_time(wait), Some(Instant::now() + wait));

    let replica = up(&registry, "127.0.0.1:9", 1);
    assert_eq!(registry.up(), 1);
    assert_eq!(registry.give_up_time(wait), None, "one is up: no giving up");
    assert!(place().is_ok());

    // A brew fails on it an hour later: out of the registry at once, and
    // the wait is counted from this outage, not from the first one.
    tokio::time::advance(Duration::from_secs(3600)).await;
    registry.suspect(&replica, "a brew failed");
    assert_eq!(registry.up(), 0);
    assert!(registry.try_reserve().is_none());
    assert!(matches!(place(), Err(CafeError::NoBarista(_))));
    assert_eq!(registry.give_up_time(wait), Some(Instant::now() + wait));
    // Marking it down twice changes nothing.
    assert!(!registry.mark_down(&replica, "again"));
}

#[tokio::test]
async fn slots_are_the_free_baristas_and_a_full_replica_counts_none() {
    let availability = Arc::new(Availability::new());
    let registry = registry(&availability);
    let one = up(&registry, "127.0.0.1:9", 2);
    let three = up(&registry, "127.0.0.1:10", 3);
    assert_eq!(registry.slots(), (5, 5));

    // The replica with the most free baristas first, then the other.
    let first = registry.try_reserve().unwrap();
    assert_eq!(first.replica().addr, three.addr);
    let mut held: Vec<Slot> = (0..4).map(|_| registry.try_reserve().unwrap()).collect();
    assert_eq!(registry.slots(), (5, 0));
    assert!(
        registry.try_reserve().is_none(),
        "no more than its baristas"
    );

    // A slot given back is free again, and the bell rings for it.
    let freed = registry.freed().notified();
    tokio::pin!(freed);
    freed.as_mut().enable();
    drop(first);
    freed.await;
    assert_eq!(registry.slots(), (5, 1));

    // Turned away (another café keeps it busy): none of its baristas
    // count, until one of our brews there ends...
    let on_one = held
        .iter()
        .position(|slot| slot.replica().addr == one.addr)
        .unwrap();
    let on_one = held.remove(on_one);
    let retry = registry.try_reserve().unwrap();
    assert_eq!(retry.replica().addr, three.addr);
    drop(retry);
    registry.try_reserve().unwrap().turned_away();
    assert!(three.is_full());
    assert_eq!(registry.slots().1, 0, "the full one counts none");
    // ...or its station, read again, shows one free.
    registry.station_read(&three, &station(3, 3));
    assert!(three.is_full());
    registry.station_read(&three, &station(3, 2));
    assert!(!three.is_full());
    assert_eq!(registry.slots().1, 1);
    // Turned away again; then one of our brews there ends: free again.
    registry.try_reserve().unwrap().turned_away();
    assert_eq!(registry.slots().1, 0);
    let on_three = held
        .iter()
        .position(|slot| slot.replica().addr == three.addr)
        .unwrap();
    drop(held.remove(on_three));
    assert!(!three.is_full());
    assert_eq!(registry.slots().1, 2);
    drop(on_one);
    drop(held);
    assert_eq!(registry.slots(), (5, 5));
}

#[test]
fn endpoints_are_read_with_or_without_scheme() {
    let read = |s: &str| s.parse::<BaristaEndpoint>().map(|e| e.to_string());
    assert_eq!(read("http://127.0.0.1:50061").unwrap(), "127.0.0.1:50061");
    assert_eq!(read("barista:50061").unwrap(), "barista:50061");
    assert_eq!(read("http://[::1]:50061/").unwrap(), "[::1]:50061");
    for bad in [
        "barista",
        "http://barista",
        "barista:port",
        ":50061",
        "https://x/y:1",
    ] {
        assert!(read(bad).is_err(), "{bad} was accepted");
    }
}
