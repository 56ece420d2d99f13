//! The real `cafe` binary against a real café started in this process on
//! port 0: what a person sees (text) and what a program reads (`--json`),
//! the exit codes, and the one-line errors.
//!
//! The café runs on the test's tokio runtime; the binary runs as a child
//! process on a blocking thread, so the runtime keeps serving meanwhile.

use std::{net::SocketAddr, process::Output, time::Duration};

use assert_cmd::Command;
use cafe_client::error::exit;
use cafe_domain::proto::v1::{OrderEvent, Size as PbSize};
use cafe_server::Config;
use cafe_testkit::{TestCafe, config_at_scale, order, spawn_cafe, until_brewing};
use serde_json::Value;

/// A café whose medium latte takes 200 ms.
fn fast(baristas: u32) -> Config {
    Config {
        baristas,
        ..config_at_scale(0.005)
    }
}

/// Runs `cafe --server <cafe> args...` and returns its output. The
/// environment's `CAFE_*`, `OTEL_*` and `RUST_LOG` are cleared so they cannot
/// leak in (a developer's collector endpoint would add trace links).
async fn cafe_at(server: &str, args: &[&str]) -> Output {
    let mut command = Command::cargo_bin("cafe").unwrap();
    for key in cafe_testkit::leaky_env() {
        command.env_remove(key);
    }
    command
        .arg("--server")
        .arg(server)
        .args(args)
        .timeout(Duration::from_secs(60));
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

async fn cafe(test_cafe: &TestCafe, args: &[&str]) -> Output {
    cafe_at(&test_cafe.url(), args).await
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The process failed with `code` and said so in exactly one line on
/// stderr, starting `error: `, with no panic or debug dump.
fn assert_one_line_error(output: &Output, code: u8) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(i32::from(code)), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(err.starts_with("error: "), "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("Status {"),
        "stderr: {err}"
    );
    err
}

/// Port 0 on 127.0.0.1: any free port.
fn unused_port_zero() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A port where nothing listens.
fn unused_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn menu_shows_the_drinks_at_the_cafes_time_scale() {
    let test_cafe = spawn_cafe(fast(2)).await;

    let text = cafe(&test_cafe, &["menu"]).await;
    assert!(text.status.success(), "{}", stderr(&text));
    let table = stdout(&text);
    assert!(
        table.contains("latte") && table.contains("Caffè latte"),
        "{table}"
    );
    assert!(table.contains("at ×0.005"), "{table}");

    let json = json_lines(&cafe(&test_cafe, &["menu", "--json"]).await);
    assert_eq!(json.len(), cafe_domain::menu::MENU.len());
    let latte = json.iter().find(|d| d["id"] == "latte").unwrap();
    assert_eq!(latte["brew_time_ms"], 40_000.0);
    assert_eq!(latte["brew_time_here_ms"], 200.0);
    assert_eq!(
        latte["sizes"],
        serde_json::json!(["small", "medium", "large"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_counter_order_returns_the_ready_drink_and_the_measured_wait() {
    let test_cafe = spawn_cafe(fast(2)).await;

    let text = cafe(&test_cafe, &["order", "latte", "--name", "Ada"]).await;
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(
        stdout(&text).starts_with("ready ☕ latte (medium) for Ada"),
        "{}",
        stdout(&text)
    );

    let json =
        json_lines(&cafe(&test_cafe, &["order", "latte", "--size", "large", "--json"]).await);
    assert_eq!(json.len(), 1, "{json:?}");
    let served = &json[0];
    assert_eq!(served["event"], "ready");
    assert_eq!(served["order"]["status"], "ready");
    assert_eq!(served["order"]["size"], "large");
    // A large latte brews 300 ms here, and the customer waited at least that.
    let brewing = served["order"]["brewing_ms"].as_f64().unwrap();
    let waited = served["waited_ms"].as_f64().unwrap();
    assert!(brewing >= 290.0, "{served}");
    assert!(waited >= brewing, "{served}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_buzzer_shows_the_ticket_first_then_every_change_until_ready() {
    let test_cafe = spawn_cafe(fast(1)).await;

    let events = json_lines(&cafe(&test_cafe, &["order", "latte", "--buzzer", "--json"]).await);
    assert_eq!(events[0]["event"], "ticket", "{events:?}");
    assert!(
        events[0]["claim_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let last = events.last().unwrap();
    assert_eq!(last["event"], "ready", "{events:?}");
    assert!(events.iter().any(|e| e["event"] == "brewing"), "{events:?}");
    // Stages only move forward, and the clock only forward.
    let rank = |e: &Value| match e["order"]["status"].as_str().unwrap() {
        "queued" => 0,
        "brewing" => 1,
        "ready" => 2,
        other => panic!("unexpected status {other}"),
    };
    for pair in events.windows(2) {
        assert!(rank(&pair[0]) <= rank(&pair[1]), "{events:?}");
        assert!(
            pair[0]["at_ms"].as_f64() <= pair[1]["at_ms"].as_f64(),
            "{events:?}"
        );
    }
    assert!(last["at_ms"].as_f64().unwrap() >= 190.0, "{last}");

    // As text, the ticket tells how to cancel, with the exact command.
    let text = cafe(&test_cafe, &["order", "mocha", "--buzzer", "--name", "Bo"]).await;
    let out = stdout(&text);
    let id = out.split_whitespace().nth(1).unwrap().trim_end_matches(':');
    assert!(id.starts_with("ord-"), "{out}");
    let url = test_cafe.url();
    assert!(
        out.contains(&format!(
            "cancel with  cafe --server {url} cancel {id} --claim-token "
        )),
        "{out}"
    );
    assert!(out.contains("ready ☕ (brewed by "), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_get_and_cancel_work_on_an_order_placed_earlier() {
    // One barista busy with a slow pot of tea, so the latte waits in line.
    let mut test_cafe = spawn_cafe(Config {
        baristas: 1,
        ..config_at_scale(0.02) // tea 3.6 s, latte 0.8 s
    })
    .await;
    let mut tea = test_cafe
        .client
        .order_with_buzzer(order("Cy", "tea"))
        .await
        .unwrap()
        .into_inner();
    let tea_ticket: OrderEvent = tea.message().await.unwrap().unwrap();
    let mut latte_request = order("Di", "latte");
    latte_request.size = PbSize::Small as i32;
    let mut latte = test_cafe
        .client
        .order_with_buzzer(latte_request)
        .await
        .unwrap()
        .into_inner();
    let ticket: OrderEvent = latte.message().await.unwrap().unwrap();
    let id = ticket.order.as_ref().unwrap().id.clone();

    let got = json_lines(&cafe(&test_cafe, &["get", &id, "--json"]).await);
    assert_eq!(got[0]["status"], "queued", "{got:?}");

    let wrong = cafe(&test_cafe, &["cancel", &id, "--claim-token", "not-mine"]).await;
    let err = assert_one_line_error(&wrong, exit::PERMISSION);
    assert!(err.contains("claim token"), "{err}");

    let cancelled = cafe(
        &test_cafe,
        &["cancel", &id, "--claim-token", &ticket.claim_token],
    )
    .await;
    assert!(cancelled.status.success(), "{}", stderr(&cancelled));
    assert!(
        stdout(&cancelled).contains("cancelled"),
        "{}",
        stdout(&cancelled)
    );
    let got = json_lines(&cafe(&test_cafe, &["get", &id, "--json"]).await);
    assert_eq!(got[0]["status"], "cancelled", "{got:?}");

    // Watching the tea follows it to the end.
    let tea_id = tea_ticket.order.unwrap().id;
    let watched = json_lines(&cafe(&test_cafe, &["watch", &tea_id, "--json"]).await);
    assert_eq!(watched.last().unwrap()["event"], "ready", "{watched:?}");
    assert!(watched.iter().all(|e| e["order"]["id"] == tea_id.as_str()));

    let missing = cafe(&test_cafe, &["get", "ord-000000000000"]).await;
    let err = assert_one_line_error(&missing, exit::NOT_FOUND);
    assert!(err.contains("ord-000000000000"), "{err}");
    test_cafe.begin_shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_one_line_with_their_own_exit_codes() {
    let test_cafe = spawn_cafe(Config {
        baristas: 1,
        ..config_at_scale(0.05) // a latte takes 2 s
    })
    .await;

    let bad_drink = cafe(&test_cafe, &["order", "frappe"]).await;
    let err = assert_one_line_error(&bad_drink, exit::INVALID);
    assert!(err.contains("drink \"frappe\" is not on the menu"), "{err}");

    let bad_size = cafe(&test_cafe, &["order", "espresso", "--size", "large"]).await;
    let err = assert_one_line_error(&bad_size, exit::INVALID);
    assert!(err.contains("size large is not made for espresso"), "{err}");

    let late = cafe(&test_cafe, &["order", "latte", "--deadline", "300ms"]).await;
    let err = assert_one_line_error(&late, exit::DEADLINE);
    assert!(
        err.starts_with("error: deadline of 300ms exceeded"),
        "{err}"
    );

    let nobody = cafe_at(&format!("http://{}", unused_port()), &["menu"]).await;
    let err = assert_one_line_error(&nobody, exit::UNAVAILABLE);
    assert!(
        err.contains("no café at http://127.0.0.1:") && err.contains("is cafe-server running?"),
        "{err}"
    );

    let nonsense = cafe_at("http://not a url", &["menu"]).await;
    assert_one_line_error(&nonsense, exit::USAGE);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_exits_zero_when_serving_and_non_zero_when_nobody_is_there() {
    let test_cafe = spawn_cafe(fast(1)).await;

    let serving = cafe(&test_cafe, &["health"]).await;
    assert!(serving.status.success(), "{}", stderr(&serving));
    assert!(stdout(&serving).contains("SERVING"));
    let json = json_lines(
        &cafe(
            &test_cafe,
            &["health", "--service", "cafe.v1.Cafe", "--json"],
        )
        .await,
    );
    assert_eq!(json[0]["status"], "SERVING");

    let unknown = cafe(&test_cafe, &["health", "--service", "no.such.Service"]).await;
    assert_one_line_error(&unknown, exit::UNAVAILABLE);

    let nobody = cafe_at(
        &format!("http://{}", unused_port()),
        &["health", "--timeout", "1s"],
    )
    .await;
    assert_one_line_error(&nobody, exit::UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread")]
async fn rush_compare_shows_the_concurrent_run_well_under_the_sequential_one() {
    let test_cafe = spawn_cafe(fast(4)).await;

    let json = json_lines(
        &cafe(
            &test_cafe,
            &["rush", "--customers", "4", "--mode", "compare", "--json"],
        )
        .await,
    );
    let orders: Vec<&Value> = json.iter().filter(|l| l["kind"] == "order").collect();
    assert_eq!(orders.len(), 8, "{json:?}");
    assert!(
        orders
            .iter()
            .all(|o| o["error"].is_null() && o["order_id"].is_string())
    );
    let summaries: Vec<&Value> = json.iter().filter(|l| l["kind"] == "summary").collect();
    assert_eq!(summaries[0]["mode"], "sequential");
    assert_eq!(summaries[1]["mode"], "concurrent");
    assert!(summaries.iter().all(|s| s["served"] == 4));
    let compare = json.iter().find(|l| l["kind"] == "compare").unwrap();
    let sequential = compare["sequential_wall_ms"].as_f64().unwrap();
    let concurrent = compare["concurrent_wall_ms"].as_f64().unwrap();
    assert!(concurrent < 0.7 * sequential, "{compare}");
    // Four 200 ms lattes one after another cannot take less than 800 ms.
    assert!(sequential >= 800.0, "{compare}");

    // As text: two timelines and the totals, within 80 columns.
    let text = cafe(&test_cafe, &["rush", "--customers", "4"]).await;
    assert!(text.status.success(), "{}", stderr(&text));
    let out = stdout(&text);
    assert_eq!(out.matches("░ in line  █ brewing").count(), 2, "{out}");
    assert!(out.contains("speed-up: "), "{out}");
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_its_own_cafe_and_explains_the_timelines() {
    // Nothing is started here: the demo brings its own café.
    let demo = cafe_at(
        "http://127.0.0.1:1",
        &[
            "demo",
            "--customers",
            "4",
            "--baristas",
            "2",
            "--time-scale",
            "0.005",
        ],
    )
    .await;
    assert!(demo.status.success(), "{}", stderr(&demo));
    let out = stdout(&demo);
    assert!(out.contains("sequential: 4 × medium latte"), "{out}");
    assert!(out.contains("What the two timelines show"), "{out}");
    assert!(out.contains("the SUM of the 4 waits"), "{out}");
    // The café in the demo keeps its logs to itself.
    assert!(stderr(&demo).is_empty(), "{}", stderr(&demo));
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
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cafe"))
            .args(["--server", &url, "order", "tea", "--buzzer"])
            .env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
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
        let status = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
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
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cafe"))
            .args(["--server", &url, "order", "latte", "--buzzer"])
            .env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
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
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cafe"))
        .args(["--server", &url, "order", "latte", "--buzzer"])
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn the_demos_barista_half_shows_blocked_threads_limit_the_drinks_and_stall_the_menu() {
    // A latte takes 1 s; 4 baristas on 2 worker threads; 4 customers.
    let demo = cafe_at(
        "http://127.0.0.1:1",
        &[
            "--json",
            "demo",
            "--part",
            "barista",
            "--customers",
            "4",
            "--baristas",
            "4",
            "--workers",
            "2",
            "--time-scale",
            "0.025",
        ],
    )
    .await;
    assert!(demo.status.success(), "{}", stderr(&demo));
    let json = json_lines(&demo);
    let run = |name: &str| {
        json.iter()
            .find(|l| l["kind"] == "run" && l["run"] == name)
            .unwrap_or_else(|| panic!("no {name} run: {json:?}"))
            .clone()
    };
    let (blocking, async_) = (run("blocking"), run("async"));
    for run in [&blocking, &async_] {
        assert_eq!(run["half"], "barista", "{run}");
        assert_eq!(run["served"], 4, "{run}");
        assert_eq!(run["runtime"]["workers"], 2, "{run}");
        assert!(run["menu"]["calls"].as_u64().unwrap() >= 1, "{run}");
    }
    // A blocking brew holds a worker thread: never more drinks at once
    // than threads, however many baristas. Awaiting ones brew side by side.
    assert!(
        blocking["drinks_at_once"].as_u64().unwrap() <= 2,
        "{blocking}"
    );
    assert!(async_["drinks_at_once"].as_u64().unwrap() >= 3, "{async_}");
    // The menu needs no barista, yet at the blocking café some call waits
    // for a thread: the rush lasts two 1 s brews, threads held nearly all
    // of it, and the menu is asked every 100 ms.
    let menu = |run: &Value| run["menu"]["slowest_ms"].as_f64().unwrap();
    assert!(menu(&blocking) >= 300.0, "{blocking}");
    assert!(menu(&async_) < menu(&blocking), "{async_} vs {blocking}");
    // The table, as numbers.
    let table = json
        .iter()
        .find(|l| l["kind"] == "key_differences")
        .unwrap();
    assert_eq!(
        table["drinks_at_once"]["synchronous"],
        blocking["drinks_at_once"]
    );
    assert_eq!(
        table["menu_ms"]["synchronous"],
        blocking["menu"]["slowest_ms"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_draws_its_timelines_as_svg_and_its_table_as_text() {
    let dir = std::env::temp_dir().join(format!("cafe-demo-svg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("customer.svg");
    let demo = cafe_at(
        "http://127.0.0.1:1",
        &[
            "demo",
            "--part",
            "customer",
            "--customers",
            "3",
            "--time-scale",
            "0.005",
            "--svg",
            svg.to_str().unwrap(),
        ],
    )
    .await;
    assert!(demo.status.success(), "{}", stderr(&demo));
    let out = stdout(&demo);
    assert!(
        out.contains("Key differences, as measured just now"),
        "{out}"
    );
    assert!(out.contains("Waiting "), "{out}");
    assert!(!out.contains("THE BARISTA'S HALF"), "{out}");
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg "), "{picture}");
    assert!(
        picture.contains("sequential: 3 × medium latte"),
        "{picture}"
    );
    assert!(
        picture.contains("concurrent: 3 × medium latte"),
        "{picture}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_counts_the_orders_in_line_and_brewing_and_the_runtimes_tasks() {
    // One barista, a latte of 40 s: the first order brews, the others wait.
    let mut test_cafe = spawn_cafe(Config {
        baristas: 1,
        ..Config::default()
    })
    .await;
    let mut first = test_cafe.buzzer("Ada", "latte").await;
    until_brewing(&mut first).await;
    let _second = test_cafe.buzzer("Bo", "latte").await;
    let _third = test_cafe.buzzer("Cy", "latte").await;

    let json = json_lines(&cafe(&test_cafe, &["--json", "stats"]).await);
    assert_eq!(json.len(), 1, "{json:?}");
    let stats = &json[0];
    assert_eq!(stats["kind"], "stats");
    assert_eq!(stats["orders_brewing"], 1, "{stats}");
    assert_eq!(stats["orders_queued"], 2, "{stats}");
    assert!(stats["runtime_workers"].as_u64().unwrap() >= 1, "{stats}");
    // At least the barista and the three buzzers' tasks are alive.
    assert!(
        stats["runtime_alive_tasks"].as_u64().unwrap() >= 4,
        "{stats}"
    );

    let text = stdout(&cafe(&test_cafe, &["stats"]).await);
    assert!(
        text.starts_with("in line    2  brewing   1  │  runtime: "),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_and_the_man_page_come_from_the_clap_definitions() {
    let bash = cafe_at("http://127.0.0.1:1", &["completions", "bash"]).await;
    assert!(bash.status.success(), "{}", stderr(&bash));
    let script = stdout(&bash);
    assert!(script.contains("_cafe()"), "{script}");
    for word in ["demo", "rush", "stats", "--brew-mode", "--svg"] {
        // Every subcommand and flag of the parser (except the server's own
        // flags, which are not the CLI's: `--brew-mode` must be absent).
        assert_eq!(
            script.contains(word),
            word != "--brew-mode",
            "{word} in the bash completions"
        );
    }
    let man = cafe_at("http://127.0.0.1:1", &["man"]).await;
    assert!(man.status.success(), "{}", stderr(&man));
    let page = stdout(&man);
    assert!(page.starts_with(".ie"), "{page}");
    assert!(page.contains(".TH cafe 1"), "{page}");
    assert!(page.contains("CAFE_SERVER"), "{page}");
    assert!(page.contains("cafe\\-demo(1)"), "{page}");
    let demo = stdout(&cafe_at("http://127.0.0.1:1", &["man", "demo"]).await);
    assert!(demo.contains(".TH cafe-demo 1"), "{demo}");
    assert!(demo.contains("CAFE_DEMO_PART"), "{demo}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rush_draws_its_timelines_as_svg() {
    let test_cafe = spawn_cafe(fast(2)).await;
    let dir = std::env::temp_dir().join(format!("cafe-rush-svg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("rush.svg");
    let rush = cafe(
        &test_cafe,
        &["rush", "--customers", "2", "--svg", svg.to_str().unwrap()],
    )
    .await;
    assert!(rush.status.success(), "{}", stderr(&rush));
    assert!(
        stdout(&rush).contains("timelines drawn in"),
        "{}",
        stdout(&rush)
    );
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg "), "{picture}");
    assert_eq!(
        picture.matches("font-weight=\"bold\"").count(),
        2,
        "{picture}"
    );

    // A file that cannot be written is one line on stderr, not a panic.
    let nowhere = dir.join("no-such-dir").join("rush.svg");
    let failed = cafe(
        &test_cafe,
        &[
            "rush",
            "--customers",
            "1",
            "--svg",
            nowhere.to_str().unwrap(),
        ],
    )
    .await;
    let err = assert_one_line_error(&failed, exit::OTHER);
    assert!(err.contains("rush.svg"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
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
