//! The station: a fixed number of named baristas, and drinks waiting their
//! turn for one of them.
//!
//! A [`Semaphore`] with one permit per barista is the queue: `acquire` waits
//! in FIFO order, without polling and without a thread, until a permit is
//! free. The permit travels inside an [`OnShift`] with the barista's name;
//! dropping it (the drink is done, or its caller went away and the brew was
//! stopped) hands the name back and frees the permit, so the next drink in
//! the queue starts at once.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use cafe_core::brewing;

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

/// The replica is closing: no barista will pick the drink up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

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

    /// Waits for a free barista, first come first served. Cancel-safe:
    /// dropping the future leaves the queue without taking anyone.
    pub async fn next_free(self: &Arc<Self>) -> Result<OnShift, Closed> {
        let permit = Arc::clone(&self.free)
            .acquire_owned()
            .await
            .map_err(|_| Closed)?;
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

    /// Stops taking drinks: everyone still waiting gets [`Closed`]; drinks
    /// already being brewed keep their barista until they are done.
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

    #[tokio::test]
    async fn a_freed_barista_goes_to_the_next_drink_in_line() {
        let station = Station::new(1);
        let ana = station.next_free().await.unwrap();
        assert_eq!(ana.name(), "Ana");
        assert_eq!(station.busy(), 1);

        let waiting = tokio::spawn({
            let station = Arc::clone(&station);
            async move { station.next_free().await.map(|b| b.name().to_owned()) }
        });
        drop(ana);
        assert_eq!(waiting.await.unwrap(), Ok("Ana".to_owned()));
        assert_eq!(station.busy(), 0);
    }

    #[tokio::test]
    async fn closing_turns_waiting_drinks_away_but_not_the_ones_in_hand() {
        let station = Station::new(1);
        let in_hand = station.next_free().await.unwrap();
        station.close();
        assert_eq!(station.next_free().await.unwrap_err(), Closed);
        assert_eq!(station.busy(), 1);
        drop(in_hand);
        assert_eq!(station.busy(), 0);
    }
}
