//! The line's tests: places derived from tickets, leaving from the middle, and tickets that arrive out of order.

use super::*;

#[test]
fn positions_are_derived_from_tickets() {
    let mut line = Line::default();
    let tickets: Vec<Ticket> = ["a", "b", "c", "d"].map(|s| line.push(s)).to_vec();
    assert_eq!(tickets, [0, 1, 2, 3]);
    assert_eq!(line.position(tickets[3]), Some(4));

    // One leaves from the middle: those behind move up, those ahead not.
    assert_eq!(line.remove(tickets[1]), Some("b"));
    assert_eq!(line.remove(tickets[1]), None, "already gone");
    assert_eq!(line.position(tickets[0]), Some(1));
    assert_eq!(line.position(tickets[1]), None);
    assert_eq!(line.position(tickets[2]), Some(2));
    assert_eq!(line.position(tickets[3]), Some(3));

    // The first is served.
    assert_eq!(line.pop_front(), Some((0, "a")));
    assert_eq!(line.position(tickets[2]), Some(1));
    assert_eq!(line.position(tickets[3]), Some(2));
    assert_eq!(line.len(), 2);
    assert_eq!(line.iter().copied().collect::<Vec<_>>(), ["c", "d"]);
}

#[test]
fn a_front_that_stays_while_many_come_and_go_behind_it() {
    // The first order is not taken for a long while; behind it, orders
    // join and cancel by the thousand. The window grows past many
    // rebuilds, and positions stay right.
    let mut line = Line::default();
    let stuck = line.push(0u64);
    let mut kept = Vec::new();
    for i in 1..=10_000u64 {
        let ticket = line.push(i);
        if i % 100 == 0 {
            kept.push(ticket);
        } else {
            assert_eq!(line.remove(ticket), Some(i));
        }
    }
    assert_eq!(line.len(), 101);
    assert_eq!(line.position(stuck), Some(1));
    for (place, &ticket) in kept.iter().enumerate() {
        assert_eq!(line.position(ticket), Some(place as u32 + 2));
    }
    // Once the front is served, the holes behind it are dropped with it.
    assert_eq!(line.pop_front(), Some((stuck, 0)));
    assert_eq!(line.slots.len() as u64, kept.last().unwrap() - kept[0] + 1);
    assert_eq!(line.position(kept[0]), Some(1));
}

#[test]
fn tickets_that_arrive_out_of_order_take_their_place() {
    let mut line = Line::default();
    // Another café's 11 has not arrived yet when ours, 12, joins.
    line.insert(10, "a").unwrap();
    line.insert(12, "c").unwrap();
    assert_eq!(line.position(12), Some(2));
    line.insert(11, "b").unwrap();
    assert_eq!(line.position(11), Some(2));
    assert_eq!(line.position(12), Some(3));
    assert_eq!(line.insert(11, "again"), Err("again"), "11 already waits");

    // 10 is served; 9 comes back (handed back by a café that stopped)
    // and is first again, ahead of everyone who came after it.
    assert_eq!(line.pop_front(), Some((10, "a")));
    line.insert(9, "z").unwrap();
    assert_eq!(line.iter().copied().collect::<Vec<_>>(), ["z", "b", "c"]);
    assert_eq!(line.position(12), Some(3));
    assert_eq!(line.pop_front(), Some((9, "z")));
    assert_eq!(line.pop_front(), Some((11, "b")));

    // A ticket far ahead leaves a gap; `push` carries on after it.
    line.insert(1_000, "far").unwrap();
    assert_eq!(line.position(1_000), Some(2));
    assert_eq!(line.push("next"), 1_001);
    assert_eq!(line.len(), 3);
    assert_eq!(line.remove(12), Some("c"));
    assert_eq!(line.pop_front(), Some((1_000, "far")));
    assert_eq!(line.position(1_001), Some(1));
}

#[test]
fn an_empty_line_starts_again_at_any_ticket() {
    let mut line = Line::default();
    assert_eq!(line.push("a"), 0);
    assert_eq!(line.pop_front(), Some((0, "a")));
    // A restart, or a shared line: the first ticket is whatever the
    // store says, before or after the window the tree covers.
    line.insert(5_000_000, "b").unwrap();
    assert_eq!(line.position(5_000_000), Some(1));
    assert_eq!(line.pop_front(), Some((5_000_000, "b")));
    line.insert(3, "c").unwrap();
    assert_eq!(line.position(3), Some(1));
    assert_eq!(line.push("d"), 5_000_001);
    assert_eq!(line.position(5_000_001), Some(2));
}

#[test]
fn late_arrivals_before_the_front_rebuild_the_tree_rarely() {
    // Orders handed back in reverse ticket order, each before the
    // front: the window makes room before it, so most need no rebuild.
    let mut line = Line::default();
    for ticket in 10_000..10_100 {
        line.insert(ticket, ticket).unwrap();
    }
    let mut rebuilds = 0;
    for ticket in (9_000..10_000).rev() {
        let origin = line.origin;
        line.insert(ticket, ticket).unwrap();
        rebuilds += usize::from(line.origin != origin);
    }
    assert!(rebuilds <= 5, "{rebuilds} rebuilds for 1,000 late arrivals");
    for (place, ticket) in (9_000..10_100).enumerate() {
        assert_eq!(line.position(ticket), Some(place as u32 + 1));
    }
}

#[test]
fn a_restarted_line_starts_where_it_stopped_and_keeps_its_gaps() {
    // Tickets 5, 7 and 10 were waiting when the café stopped; 6, 8 and
    // 9 had finished, and 11 was the last ticket given.
    let mut line = Line::starting_at(5);
    for ticket in [5, 7, 10] {
        line.push_at(ticket, ticket);
    }
    line.skip_to(12);
    assert_eq!(line.len(), 3);
    assert_eq!(line.position(10), Some(3));
    assert_eq!(line.position(6), None);
    assert_eq!(line.push("new".len() as u64), 12, "no ticket given twice");
    assert_eq!(line.position(12), Some(4));
    assert_eq!(line.pop_front(), Some((5, 5)));
    assert_eq!(line.position(10), Some(2));
    assert_eq!(line.remove(7), Some(7));
    assert_eq!(line.pop_front(), Some((10, 10)));
    assert_eq!(line.pop_front(), Some((12, 3)));
    assert_eq!(line.pop_front(), None);

    // An empty line restarted far on: the window follows.
    let mut line: Line<u8> = Line::starting_at(1_000_000);
    line.skip_to(2_000_000);
    assert_eq!(line.push(1), 2_000_000);
    assert_eq!(line.position(2_000_000), Some(1));
}

/// A tiny deterministic generator (xorshift64*), so the random walk
/// below is the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The line against the obvious model (a `Vec` of waiting tickets,
/// position = index + 1) over many random joins, services and cancels,
/// in long and short lines, with every position checked after each step.
#[test]
fn matches_a_naive_model_over_random_operations() {
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut line = Line::default();
        let mut model: Vec<Ticket> = Vec::new();
        let mut issued: Vec<Ticket> = Vec::new();
        // Some runs grow long lines, others stay short.
        let join_weight = 4 + seed % 4;
        for _ in 0..2_000 {
            match rng.below(join_weight + 4) {
                n if n < join_weight => {
                    let ticket = line.push(line.next_ticket());
                    model.push(ticket);
                    issued.push(ticket);
                }
                n if n < join_weight + 2 => {
                    let served = line.pop_front().map(|(ticket, item)| {
                        assert_eq!(ticket, item);
                        ticket
                    });
                    let expected = (!model.is_empty()).then(|| model.remove(0));
                    assert_eq!(served, expected);
                }
                _ if !issued.is_empty() => {
                    // Cancel any ticket ever issued: waiting or not.
                    let ticket = issued[rng.below(issued.len() as u64) as usize];
                    let removed = line.remove(ticket);
                    let expected = model.binary_search(&ticket).ok().map(|i| model.remove(i));
                    assert_eq!(removed, expected);
                }
                _ => {}
            }
            assert_eq!(line.len(), model.len());
            // The newest tickets (the back of the line) and a random
            // sample of all of them.
            let mut sample: Vec<Ticket> = issued.iter().rev().take(60).copied().collect();
            if !issued.is_empty() {
                for _ in 0..60 {
                    sample.push(issued[rng.below(issued.len() as u64) as usize]);
                }
            }
            for ticket in sample {
                // The model stays sorted: tickets only join at the end.
                let expected = model.binary_search(&ticket).ok().map(|i| i as u32 + 1);
                assert_eq!(
                    line.position(ticket),
                    expected,
                    "seed {seed}, ticket {ticket}"
                );
            }
        }
        assert_eq!(line.iter().copied().collect::<Vec<_>>(), model);
    }
}

/// The same, for a shared line: tickets come from a sequence but arrive
/// late and out of order, some never (a sequence skips numbers), and
/// served ones come back (a café handing back what it did not brew).
#[test]
fn matches_a_naive_model_when_tickets_arrive_out_of_order() {
    use std::collections::BTreeSet;
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut line = Line::default();
        let mut model = BTreeSet::new();
        let mut sequence: Ticket = rng.below(1_000);
        // Given out by the sequence, not arrived yet.
        let mut on_the_way: Vec<Ticket> = Vec::new();
        let mut served: Vec<Ticket> = Vec::new();
        for _ in 0..3_000 {
            match rng.below(12) {
                0..=3 => {
                    sequence += 1 + rng.below(2); // sometimes skips one
                    on_the_way.push(sequence);
                }
                4..=6 if !on_the_way.is_empty() => {
                    let i = rng.below(on_the_way.len() as u64) as usize;
                    let ticket = on_the_way.swap_remove(i);
                    assert_eq!(line.insert(ticket, ticket), Ok(()));
                    model.insert(ticket);
                }
                7 | 8 => {
                    let got = line.pop_front().map(|(ticket, item)| {
                        assert_eq!(ticket, item);
                        ticket
                    });
                    assert_eq!(got, model.pop_first());
                    served.extend(got);
                }
                9 if !served.is_empty() => {
                    let i = rng.below(served.len() as u64) as usize;
                    let ticket = served.swap_remove(i);
                    assert_eq!(line.insert(ticket, ticket), Ok(()));
                    model.insert(ticket);
                }
                10 | 11 if !model.is_empty() => {
                    let nth = rng.below(model.len() as u64) as usize;
                    let ticket = *model.iter().nth(nth).unwrap();
                    assert_eq!(line.remove(ticket), Some(ticket));
                    model.remove(&ticket);
                }
                _ => {}
            }
            assert_eq!(line.len(), model.len());
            for _ in 0..20 {
                let ticket = line.first + rng.below(line.slots.len() as u64 + 2);
                let expected = model
                    .contains(&ticket)
                    .then(|| model.range(..=ticket).count() as u32);
                assert_eq!(line.position(ticket), expected, "seed {seed}");
            }
        }
        let model: Vec<Ticket> = model.into_iter().collect();
        assert_eq!(line.iter().copied().collect::<Vec<_>>(), model);
    }
}
