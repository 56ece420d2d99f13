//! Each command against a real café: what it prints, in text and in
//! `--json`, and how it exits.

use cafe_client::error::exit;
use cafe_domain::proto::v1::{OrderEvent, Size as PbSize};
use cafe_server::Config;
use cafe_testkit::{config_at_scale, order, spawn_cafe, until_brewing};
use serde_json::Value;

use super::{assert_one_line_error, cafe, cafe_at, fast, json_lines, stderr, stdout, unused_port};

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
    assert_eq!(served["event"], "served");
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
    assert_eq!(got[0]["event"], "order", "{got:?}");
    assert_eq!(got[0]["order"]["status"], "queued", "{got:?}");

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
    assert_eq!(got[0]["event"], "order", "{got:?}");
    assert_eq!(got[0]["order"]["status"], "cancelled", "{got:?}");

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
    assert_eq!(stats["event"], "stats");
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
