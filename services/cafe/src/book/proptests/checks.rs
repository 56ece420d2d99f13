//! The book's promises, checked against a story as it is told: what must
//! hold after every step ([`Cafe::check_invariants`]) and once the café has
//! closed ([`Cafe::check_endings`]).

use super::*;

impl Cafe {
    /// What must hold after every step.
    pub(super) fn check_invariants(&self) {
        let mut in_line = Vec::new();
        let mut brewing = 0;
        for tracked in &self.orders {
            let entry = &tracked.entry;
            let history = statuses(&history_of(entry));
            // Nothing changes after a final state.
            if let Some(first_final) = history.iter().position(|status| status.is_final()) {
                assert_eq!(
                    first_final,
                    history.len() - 1,
                    "{} changed after it ended: {history:?}",
                    entry.id()
                );
            }
            let status = entry.status();
            match self.book.position(entry) {
                Some(position) => {
                    assert_eq!(
                        status,
                        OrderStatus::Queued,
                        "only QUEUED orders are in line"
                    );
                    in_line.push((entry.ticket(), position));
                }
                None if status == OrderStatus::Queued => assert!(
                    self.held.iter().any(|held| held.id() == entry.id()),
                    "{} is QUEUED but neither in line nor in a barista's hands",
                    entry.id()
                ),
                None => {}
            }
            brewing += usize::from(status == OrderStatus::Brewing);
            // A buzzer's places only go down while it waits.
            let places: Vec<u32> = tracked
                .buzzer_saw
                .iter()
                .filter(|update| update.order.status == OrderStatus::Queued)
                .map(|update| update.queue_position)
                .collect();
            assert!(
                places.windows(2).all(|pair| pair[0] >= pair[1]) && !places.contains(&0),
                "{} showed places {places:?}",
                entry.id()
            );
        }
        // Places are 1..n in ticket order (so unique).
        in_line.sort();
        let places: Vec<u32> = in_line.iter().map(|(_, position)| *position).collect();
        let expected: Vec<u32> = (1..=places.len() as u32).collect();
        assert_eq!(places, expected, "places in line by ticket");
        let counts = self.book.counts();
        assert_eq!(counts.queued, in_line.len());
        assert_eq!(counts.brewing, brewing);
    }

    /// Once every order has ended: exactly one final event per order,
    /// however it is watched.
    pub(super) fn check_endings(&self) {
        for tracked in &self.orders {
            let id = tracked.entry.id();
            let history = statuses(&history_of(&tracked.entry));
            // Ended once; or, with a journal, kept open for the restart.
            let kept = !tracked.entry.status().is_final();
            assert!(!kept || self.book.left_for_restart(&tracked.entry), "{id}");
            assert_eq!(
                history.iter().filter(|status| status.is_final()).count(),
                usize::from(!kept),
                "{id}: {history:?}"
            );
            for (who, saw, ended) in [
                ("buzzer", &tracked.buzzer_saw, tracked.buzzer_ended),
                ("counter", &tracked.counter_saw, tracked.counter_ended),
            ] {
                assert!(ended, "{id}'s {who} follower has not ended");
                // Ended on its final status; or, with a journal, with the
                // order left open for the restart (what follows, a cancel
                // while closing, is for the restart to tell).
                let left = !saw.last().unwrap().order.status.is_final();
                assert!(!left || self.book.keeps_line(), "{id}'s {who} follower");
                let finals = saw
                    .iter()
                    .filter(|update| update.order.status.is_final())
                    .count();
                assert_eq!(
                    finals,
                    usize::from(!left),
                    "{id}'s {who} saw {finals} final events"
                );
                // Every status change, in order (a buzzer's extra events are
                // places in line, which repeat QUEUED).
                let mut seen: Vec<OrderStatus> =
                    saw.iter().map(|update| update.order.status).collect();
                if who == "buzzer" {
                    seen.dedup_by(|next, previous| {
                        *next == OrderStatus::Queued && *previous == OrderStatus::Queued
                    });
                }
                let mut changes = history.clone();
                changes.dedup_by(|next, previous| {
                    who == "buzzer"
                        && *next == OrderStatus::Queued
                        && *previous == OrderStatus::Queued
                });
                if left {
                    assert!(changes.starts_with(&seen), "{id}'s {who} follower");
                } else {
                    assert_eq!(seen, changes, "{id}'s {who} follower");
                }
            }
            assert_eq!(
                self.board_saw.get(id.as_str()),
                Some(&history),
                "{id} on the board"
            );
        }
    }
}
