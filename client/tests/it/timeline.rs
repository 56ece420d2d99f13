//! The timeline renderer on fixed inputs: a golden text for a small case,
//! and the shape and width rules from 1 to 200 customers.
//!
//! Regenerate the golden file after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p cafe-client --test it timeline`, and read
//! the diff before committing it.

use std::time::Duration;

use cafe_client::timeline::{MAX_ROWS, Row, render, svg};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// `n` customers at a café with `baristas` baristas and a `brew` ms drink,
/// sent one after another (`sequential`) or all at once, with 2 ms on the
/// wire each way.
fn rush(n: usize, baristas: usize, brew: u64, sequential: bool) -> Vec<Row> {
    let wire = 2;
    (0..n)
        .map(|i| {
            let (sent, waiting) = if sequential {
                (i as u64 * (brew + 2 * wire), 0)
            } else {
                (0, (i / baristas) as u64 * brew)
            };
            Row {
                label: format!("#{}", i + 1),
                sent: MS(sent),
                received: MS(sent + wire + waiting + brew + wire),
                waiting: MS(waiting),
                brewing: MS(brew),
                placed: None,
            }
        })
        .collect()
}

fn assert_fits(text: &str, width: usize) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= width,
            "line of {} columns is wider than {width}:\n{line}\n{text}",
            line.chars().count()
        );
    }
}

/// The bar of each row: the part after `│`, without the time at its end.
fn bars(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split_once('│'))
        .map(|(_, rest)| {
            rest.trim_end_matches(|c: char| c != ' ' && !"░█·".contains(c))
                .to_owned()
        })
        .collect()
}

fn first_filled(bar: &str) -> usize {
    bar.chars().take_while(|&c| c == ' ').count()
}

fn last_filled(bar: &str) -> usize {
    let chars: Vec<char> = bar.chars().collect();
    chars.iter().rposition(|&c| c != ' ').unwrap_or(0)
}

#[test]
fn a_small_compare_matches_the_golden_text() {
    let sequential = rush(4, 2, 1000, true);
    let concurrent = rush(4, 2, 1000, false);
    let axis = sequential.iter().map(|r| r.received).max();
    let text = format!(
        "{}\n{}",
        render(&sequential, 60, axis),
        render(&concurrent, 60, axis)
    );
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/golden/timeline_small.txt"
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(path).expect("the golden file");
    assert_eq!(
        text, expected,
        "\n--- got ---\n{text}\n--- expected ---\n{expected}"
    );
}

#[test]
fn one_customer_fits_in_80_columns() {
    let text = render(&rush(1, 3, 1200, true), 80, None);
    assert_fits(&text, 80);
    let bars = bars(&text);
    assert_eq!(bars.len(), 1, "{text}");
    assert_eq!(first_filled(&bars[0]), 0);
    assert!(text.contains("#1 │"), "{text}");
    assert!(text.contains("1.2s"), "{text}");
}

#[test]
fn two_hundred_customers_are_grouped_and_keep_their_shapes() {
    for width in [40, 80, 132] {
        // Sequential: a staircase, each group starting later than the last.
        let text = render(&rush(200, 3, 750, true), width, None);
        assert_fits(&text, width);
        let rows = bars(&text);
        assert!(rows.len() <= MAX_ROWS, "{} rows\n{text}", rows.len());
        assert!(text.contains("up to 9 customers"), "{text}");
        let starts: Vec<usize> = rows.iter().map(|b| first_filled(b)).collect();
        assert!(
            starts.windows(2).all(|w| w[0] <= w[1]),
            "not a staircase: {starts:?}\n{text}"
        );
        assert!(starts.last() > starts.first(), "{text}");
        assert!(
            !rows.concat().contains('░'),
            "nobody waits in line when ordering one by one\n{text}"
        );

        // Concurrent: a fan, everyone starting at once, ending later and later.
        let text = render(&rush(200, 3, 750, false), width, None);
        assert_fits(&text, width);
        let rows = bars(&text);
        assert!(rows.len() <= MAX_ROWS, "{text}");
        assert!(rows.iter().all(|b| first_filled(b) == 0), "{text}");
        let ends: Vec<usize> = rows.iter().map(|b| last_filled(b)).collect();
        assert!(
            ends.windows(2).all(|w| w[0] <= w[1]),
            "not a fan: {ends:?}\n{text}"
        );
        assert!(ends.last() > ends.first(), "{text}");
        assert!(rows.concat().contains('░'), "{text}");
    }
}

#[test]
fn no_width_or_count_overflows() {
    for n in [1, 2, 7, 24, 25, 60, 199, 200] {
        for width in [40, 60, 80, 100] {
            for sequential in [true, false] {
                let text = render(&rush(n, 3, 900, sequential), width, None);
                assert_fits(&text, width);
                assert!(bars(&text).len() <= MAX_ROWS.min(n), "{text}");
            }
        }
    }
}

#[test]
fn a_small_compare_matches_the_golden_svg() {
    let sequential = rush(4, 2, 1000, true);
    let concurrent = rush(4, 2, 1000, false);
    let picture = svg::render(
        &[
            svg::Panel {
                title: "sequential: 4 × medium latte".into(),
                rows: &sequential,
            },
            svg::Panel {
                title: "concurrent: 4 × medium latte".into(),
                rows: &concurrent,
            },
        ],
        None,
    );
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/golden/timeline_small.svg"
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &picture).unwrap();
    }
    let expected = std::fs::read_to_string(path).expect("the golden file");
    assert_eq!(
        picture, expected,
        "\n--- got ---\n{picture}\n--- expected ---\n{expected}"
    );
}

#[test]
fn with_the_cafes_clock_a_stalled_answer_shows_after_the_drink() {
    // Placed at once, brewed for 1 s, but the answer left only at 3 s (a
    // café whose threads were all blocked): brewing first, then `·`.
    let stalled = Row {
        label: "#1".into(),
        sent: MS(0),
        received: MS(3000),
        waiting: MS(0),
        brewing: MS(1000),
        placed: Some(MS(1)),
    };
    let text = render(std::slice::from_ref(&stalled), 60, None);
    let bar = &bars(&text)[0];
    let first_wire = bar.find('·').expect("a stall");
    assert!(bar[..first_wire].chars().all(|c| c == '█'), "{text}");
    // Without the café's placement (clocks that disagree) the drink is
    // placed backwards from the answer, as before.
    let skewed = Row {
        placed: Some(MS(5000)),
        ..stalled
    };
    let text = render(&[skewed], 60, None);
    let bar = &bars(&text)[0];
    assert!(
        bar.trim_end().ends_with('█') && bar.starts_with('·'),
        "{text}"
    );
}
