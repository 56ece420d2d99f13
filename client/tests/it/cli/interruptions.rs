//! An order interrupted: Ctrl-C leaves a buzzer cleanly, a buzzer cut by a
//! crash or told the café is restarting follows its order again once the
//! café is back, and a deadline leaves (buzzer) or cancels (counter) the
//! order.

use std::{
    process::{Child, Stdio},
    time::Duration,
};

use cafe_client::error::exit;
use cafe_server::Config;
use cafe_testkit::{
    config_at_scale,
    process::{clean_command, send_signal},
    spawn_cafe, until_brewing,
};

use super::{assert_one_line_error, cafe, json_lines, stdout, unused_port_zero};

/// `cafe --server URL order DRINK --buzzer` as a child process, with none
/// of this process's `CAFE_*`/`OTEL_*` settings, whose output the test
/// reads as it comes.
fn buzzer_child(url: &str, drink: &str) -> Child {
    clean_command(assert_cmd::cargo::cargo_bin("cafe"))
        .args(["--server", url, "order", drink, "--buzzer"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cafe")
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_leaves_a_buzzer_cleanly_and_the_order_carries_on() {
    use std::io::{BufRead, BufReader};

    let mut test_cafe = spawn_cafe(Config {
        baristas: 1,
        ..config_at_scale(0.05) // a pot of tea takes 9 s
    })
    .await;
    let url = test_cafe.url();
    let (code, stderr, id) = tokio::task::spawn_blocking(move || {
        let mut child = buzzer_child(&url, "tea");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ticket = lines.next().unwrap().unwrap();
        let id = ticket
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_end_matches(':')
            .to_owned();
        // Wait until the buzzer has shown brewing, then press "Ctrl-C".
        for line in lines.by_ref() {
            if line.unwrap().contains("brewing") {
                break;
            }
        }
        send_signal(&child, "INT");
        let output = child.wait_with_output().unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stderr).unwrap(),
            id,
        )
    })
    .await
    .unwrap();

    assert_eq!(code, Some(i32::from(exit::INTERRUPTED)), "{stderr}");
    assert!(
        stderr.contains(&format!("left: order {id} is still brewing and carries on")),
        "{stderr}"
    );
    // Leaving the buzzer does not cancel the order: it is still brewing.
    let order = test_cafe
        .client
        .get_order(cafe_domain::proto::v1::GetOrderRequest { order_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        order.status,
        cafe_domain::proto::v1::OrderStatus::Brewing as i32
    );
    test_cafe.begin_shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_buzzer_cut_by_a_crash_follows_its_order_again_once_the_cafe_is_back() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/cafe.db", dir.path().display());
    let config = move || Config {
        baristas: 1,
        database_url: Some(store.clone()),
        ..config_at_scale(0.05) // a latte takes 2 s
    };
    let cafe = cafe_testkit::spawn_killable_cafe(config(), unused_port_zero());
    let url = cafe.url();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let mut child = buzzer_child(&url, "latte");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        // Once the drink is brewing, the café crashes, and comes back on
        // the same address and the same order store.
        for line in lines.by_ref() {
            let line = line.unwrap();
            let brewing = line.contains("brewing");
            seen.push(line);
            if brewing {
                break;
            }
        }
        let addr = cafe.addr;
        cafe.kill();
        let back = cafe_testkit::spawn_killable_cafe(config(), addr);
        seen.extend(lines.map(Result::unwrap));
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        drop(back);
        (status.code(), seen.join("\n"), stderr)
    })
    .await
    .unwrap();

    // One line says what happened; the order is then seen through.
    assert_followed_again(code, &stdout, &stderr);
    assert!(stdout.lines().last().unwrap().contains("ready"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_buzzer_told_the_cafe_is_restarting_follows_its_order_again_once_it_is_back() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/cafe.db", dir.path().display());
    let config = move || {
        let mut config = Config {
            baristas: 1,
            database_url: Some(store.clone()),
            ..config_at_scale(0.05) // a latte takes 2 s
        };
        config.server.shutdown_grace = Duration::from_millis(300);
        config
    };
    // One latte brewing, so the CLI's order waits in line.
    let mut cafe = spawn_cafe(config()).await;
    let mut first = cafe.buzzer("Ada", "latte").await;
    until_brewing(&mut first).await;
    let (addr, url) = (cafe.addr, cafe.url());
    let mut child = buzzer_child(&url, "latte");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut seen, lines) = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let queued = line.contains("queued");
            seen.push(line);
            if queued {
                break;
            }
        }
        (seen, lines)
    })
    .await
    .unwrap();

    // A polite restart: SIGTERM (the order is kept, its buzzer told
    // UNAVAILABLE), then the café back on the same address and store.
    cafe.shutdown_within(Duration::from_secs(30)).await;
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let back = cafe_testkit::spawn_killable_cafe(config(), addr);
        seen.extend(lines.map(Result::unwrap));
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        back.kill();
        (status.code(), seen.join("\n"), stderr)
    })
    .await
    .unwrap();

    assert_followed_again(code, &stdout, &stderr);
    assert!(!stdout.contains("cancelled"), "{stdout}");
    assert!(stdout.lines().last().unwrap().contains("ready"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_buzzer_deadline_leaves_the_order_brewing() {
    let test_cafe = spawn_cafe(Config {
        baristas: 1,
        ..config_at_scale(0.05) // a latte takes 2 s
    })
    .await;

    let late = cafe(
        &test_cafe,
        &["order", "latte", "--buzzer", "--deadline", "300ms"],
    )
    .await;

    let err = assert_one_line_error(&late, exit::DEADLINE);
    assert!(
        err.starts_with("error: deadline of 300ms exceeded before order ord-"),
        "{err}"
    );
    let id = err.split_whitespace().nth(7).unwrap();
    assert!(err.contains(&format!("watch {id}`")), "{err}");
    // The ticket was printed before the deadline passed.
    assert!(
        stdout(&late).starts_with(&format!("ticket {id}: latte (medium) for guest")),
        "{}",
        stdout(&late)
    );
    let watched = json_lines(&cafe(&test_cafe, &["watch", id, "--json"]).await);
    assert_eq!(watched.last().unwrap()["event"], "ready", "{watched:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_counter_deadline_makes_the_cafe_cancel_the_order() {
    let mut test_cafe = spawn_cafe(Config {
        baristas: 1,
        ..config_at_scale(0.05) // a latte takes 2 s
    })
    .await;
    let mut board = test_cafe
        .client
        .watch_board(cafe_domain::proto::v1::WatchBoardRequest {})
        .await
        .unwrap()
        .into_inner();

    let late = cafe(&test_cafe, &["order", "latte", "--deadline", "300ms"]).await;
    assert_one_line_error(&late, exit::DEADLINE);

    // The board sees the order placed, and then cancelled, long before the
    // 2 s it would have taken to brew.
    let cancelled = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = board.message().await.unwrap() {
            let order = event.order.unwrap();
            if order.status == cafe_domain::proto::v1::OrderStatus::Cancelled as i32 {
                return order;
            }
        }
        panic!("the board ended without a cancelled order");
    })
    .await
    .expect("the order was not cancelled");
    assert_eq!(cancelled.customer, "guest");
    assert!(cancelled.ready_at.is_none());
}

/// What a `cafe order --buzzer` whose café went away and came back must
/// show: exit 0, and one line on stderr saying it follows the ticket's
/// order again with WatchOrder.
fn assert_followed_again(code: Option<i32>, stdout: &str, stderr: &str) {
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let id = stdout
        .lines()
        .next()
        .and_then(|ticket| ticket.split_whitespace().nth(1))
        .unwrap()
        .trim_end_matches(':');
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("following order {id} again with WatchOrder")),
        "{stderr}"
    );
}
