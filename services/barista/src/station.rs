//! The station: a fixed number of named baristas, and no line.
//!
//! A [`Semaphore`] with one permit per barista counts who is free. A drink
//! takes a permit *now* or not at all ([`Station::take_free`]): a replica
//! keeps no queue of its own, because the café's line is the only line. A
//! queue here would be a second, hidden one: its drinks would look "next in
//! line" on the café's board while they waited behind other replicas'
//! work, and they would be lost with the replica. So a full station says so
//! ([`Taken::Full`], RESOURCE_EXHAUSTED on the wire) and the café keeps the
//! order in its line until it knows of a free barista.
//!
//! The permit travels inside an [`OnShift`] with the barista's name;
//! dropping it (the drink is done, or its caller went away and the brew was
//! stopped) hands the name back and frees the permit.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use cafe_domain::brewing;

/// The baristas of one backend replica.
#[derive(Debug)]
pub struct Station {
    /// One permit per barista; closed when the replica shuts down.
    free: Arc<Semaphore>,
    /// The names of the baristas with nothing to do, longest idle first.
    /// A std mutex: held for one push or pop, never across `.await`.
    idle: Mutex<VecDeque<String>>,
    size: usize,
}

/// Why no barista took the drink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Every barista is brewing: ask again when one is free.
    Full,
    /// The replica is closing: no barista will pick the drink up.
    Closed,
}

/// A barista busy with one drink. Dropping it frees the barista.
#[derive(Debug)]
pub struct OnShift {
    name: String,
    station: Arc<Station>,
    /// Released after `Drop::drop` has put the name back, so whoever gets
    /// the permit next always finds a name.
    _permit: OwnedSemaphorePermit,
}

impl Station {
    /// A station of `baristas` people named `Ana`, `Ben`, ….
    pub fn new(baristas: usize) -> Arc<Self> {
        Arc::new(Station {
            free: Arc::new(Semaphore::new(baristas)),
            idle: Mutex::new((0..baristas).map(brewing::barista_name).collect()),
            size: baristas,
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        // A panic while pushing or popping a name leaves nothing half-done.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A free barista now, or why there is none. Never waits.
    pub fn take_free(self: &Arc<Self>) -> Result<OnShift, Taken> {
        let permit = Arc::clone(&self.free)
            .try_acquire_owned()
            .map_err(|error| match error {
                TryAcquireError::NoPermits => Taken::Full,
                TryAcquireError::Closed => Taken::Closed,
            })?;
        let name = self
            .idle()
            .pop_front()
            .expect("a free permit always has an idle barista");
        Ok(OnShift {
            name,
            station: Arc::clone(self),
            _permit: permit,
        })
    }

    /// Stops taking drinks: from now on [`Station::take_free`] says
    /// [`Taken::Closed`]; drinks already being brewed keep their barista
    /// until they are done.
    pub fn close(&self) {
        self.free.close();
    }

    /// Whether [`Station::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.free.is_closed()
    }

    /// How many baristas the station has.
    pub fn size(&self) -> usize {
        self.size
    }

    /// How many baristas are brewing right now.
    pub fn busy(&self) -> usize {
        self.size - self.idle().len()
    }
}

impl OnShift {
    /// The barista's first name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for OnShift {
    fn drop(&mut self) {
        self.station
            .idle()
            .push_back(std::mem::take(&mut self.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_station_says_so_at_once_and_a_freed_barista_is_taken_again() {
        let station = Station::new(1);
        let ana = station.take_free().unwrap();
        assert_eq!(ana.name(), "Ana");
        assert_eq!(station.busy(), 1);
        // No queue: the second drink is told, not kept waiting.
        assert_eq!(station.take_free().unwrap_err(), Taken::Full);
        drop(ana);
        assert_eq!(station.busy(), 0);
        assert_eq!(station.take_free().unwrap().name(), "Ana");
    }

    #[test]
    fn closing_turns_new_drinks_away_but_not_the_ones_in_hand() {
        let station = Station::new(2);
        let in_hand = station.take_free().unwrap();
        station.close();
        assert_eq!(station.take_free().unwrap_err(), Taken::Closed);
        assert_eq!(station.busy(), 1);
        drop(in_hand);
        assert_eq!(station.busy(), 0);
    }
}
