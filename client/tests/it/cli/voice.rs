//! One voice for the whole CLI: `--customer` as the café and grpcurl say
//! it (and `--name`, as it was documented), drink names in any case with
//! "did you mean" for a near miss, and under `--json` one envelope for
//! every command and every error, as docs/cli.md documents it.

use cafe_client::error::exit;
use cafe_testkit::spawn_cafe;
use serde_json::Value;

use super::{assert_one_line_error, cafe, cafe_at, fast, json_lines, stderr, stdout, unused_port};

#[tokio::test(flavor = "multi_thread")]
async fn the_customers_name_is_customer_and_name_still_works() {
    let test_cafe = spawn_cafe(fast(2)).await;
    for flag in ["--customer", "--name"] {
        let text = cafe(&test_cafe, &["order", "tea", flag, "Bo"]).await;
        assert!(text.status.success(), "{flag}: {}", stderr(&text));
        assert!(
            stdout(&text).starts_with("ready ☕ tea (medium) for Bo"),
            "{flag}: {}",
            stdout(&text)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn drink_names_are_read_in_any_case() {
    let test_cafe = spawn_cafe(fast(2)).await;
    let text = cafe(&test_cafe, &["order", "LaTTe"]).await;
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(
        stdout(&text).starts_with("ready ☕ latte (medium) for guest"),
        "{}",
        stdout(&text)
    );
    let rush = cafe(
        &test_cafe,
        &[
            "--json",
            "rush",
            "--drink",
            "Espresso",
            "--customers",
            "1",
            "--mode",
            "sequential",
        ],
    )
    .await;
    assert!(rush.status.success(), "{}", stderr(&rush));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misspelt_drink_gets_did_you_mean_and_a_stranger_does_not() {
    let test_cafe = spawn_cafe(fast(1)).await;
    let near = cafe(&test_cafe, &["order", "Expresso"]).await;
    let err = assert_one_line_error(&near, exit::INVALID);
    assert!(err.contains("did you mean espresso?"), "{err}");
    // The café still says what it refused and what it has.
    assert!(err.contains("choose one of"), "{err}");

    let far = cafe(&test_cafe, &["order", "frappe"]).await;
    let err = assert_one_line_error(&far, exit::INVALID);
    assert!(!err.contains("did you mean"), "{err}");
}

/// The words in backticks in `text`.
fn quoted(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The event kinds docs/cli.md's "JSON output" table lists for each
/// command: the test holds the CLI to its documentation.
fn documented_kinds() -> Vec<(String, Vec<String>)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md"))
        .expect("docs/cli.md");
    let section = doc
        .split("\n## JSON output\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a JSON output section");
    let mut kinds = Vec::new();
    for row in section.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let events: Vec<String> = quoted(cells[1]).into_iter().map(str::to_owned).collect();
        for command in quoted(cells[0]) {
            kinds.push((command.to_owned(), events.clone()));
        }
    }
    kinds
}

/// Every line of `output` is one event in the envelope, of a kind
/// documented for `command`; returns the events.
fn events(command: &str, output: &std::process::Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "{command}: {}{}",
        stdout(output),
        stderr(output)
    );
    let kinds = documented_kinds()
        .into_iter()
        .find(|(name, _)| name == command)
        .map(|(_, kinds)| kinds)
        .unwrap_or_else(|| panic!("docs/cli.md documents no events for {command}"));
    let lines = json_lines(output);
    assert!(!lines.is_empty(), "{command}: no JSON");
    for line in &lines {
        let kind = line["event"]
            .as_str()
            .unwrap_or_else(|| panic!("{command}: a line without an event kind: {line}"));
        assert!(
            kinds.iter().any(|documented| documented == kind),
            "{command}: {kind} is not in docs/cli.md: {line}"
        );
    }
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_prints_json_lines_in_one_envelope() {
    let test_cafe = spawn_cafe(fast(2)).await;
    let json = async |args: &[&str]| cafe(&test_cafe, &[&["--json"], args].concat()).await;
    events("menu", &json(&["menu"]).await);
    let served = events("order", &json(&["order", "latte"]).await);
    assert_eq!(served[0]["order"]["drink"], "latte");
    let buzzer = events(
        "order --buzzer",
        &json(&["order", "mocha", "--buzzer"]).await,
    );
    assert_eq!(buzzer[0]["event"], "ticket");
    let id = buzzer[0]["order"]["id"].as_str().unwrap().to_owned();
    let token = buzzer[0]["claim_token"].as_str().unwrap().to_owned();
    events("watch", &json(&["watch", &id]).await);
    let got = events("get", &json(&["get", &id]).await);
    assert_eq!(got[0]["order"]["id"], id.as_str());
    // Too late to cancel a ready order: an error, in the envelope too.
    let cancel = json(&["cancel", &id, "--claim-token", &token]).await;
    assert_eq!(cancel.status.code(), Some(i32::from(exit::ORDER_STATE)));
    let error = &json_lines(&cancel)[0];
    assert_eq!(error["event"], "error", "{error}");
    assert_eq!(error["code"], "FAILED_PRECONDITION", "{error}");
    events(
        "rush",
        &json(&["rush", "--customers", "2", "--mode", "compare"]).await,
    );
    events("stats", &json(&["stats"]).await);
    events("health", &json(&["health"]).await);
    events(
        "bench",
        &json(&["bench", "--rpc", "menu", "-c", "2", "-n", "4"]).await,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_under_json_is_one_event_with_its_code_and_exit_code() {
    let test_cafe = spawn_cafe(fast(1)).await;
    let check = |output: std::process::Output, code: Value, exit_code: u8| {
        assert_eq!(
            output.status.code(),
            Some(i32::from(exit_code)),
            "{}",
            stdout(&output)
        );
        assert!(stderr(&output).is_empty(), "{}", stderr(&output));
        let lines = json_lines(&output);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let error = &lines[0];
        assert_eq!(error["event"], "error", "{error}");
        assert_eq!(error["code"], code, "{error}");
        assert_eq!(error["exit_code"], exit_code, "{error}");
        error["message"].as_str().unwrap().to_owned()
    };
    let missing = check(
        cafe(&test_cafe, &["--json", "get", "ord-000000000000"]).await,
        "NOT_FOUND".into(),
        exit::NOT_FOUND,
    );
    assert!(missing.contains("ord-000000000000"), "{missing}");
    let near = check(
        cafe(&test_cafe, &["--json", "order", "latee"]).await,
        "INVALID_ARGUMENT".into(),
        exit::INVALID,
    );
    assert!(near.contains("did you mean latte?"), "{near}");
    check(
        cafe_at(&format!("http://{}", unused_port()), &["--json", "menu"]).await,
        "UNAVAILABLE".into(),
        exit::UNAVAILABLE,
    );
    // A command line clap refuses is not about a call: no code.
    let usage = check(
        cafe(&test_cafe, &["--json", "order", "latte", "--colour", "red"]).await,
        Value::Null,
        exit::USAGE,
    );
    assert!(usage.contains("--colour"), "{usage}");
    let none = check(
        cafe(&test_cafe, &["--json"]).await,
        Value::Null,
        exit::USAGE,
    );
    assert!(none.contains("command"), "{none}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_board_prints_each_order_as_an_order_event() {
    // One barista, a 40 s latte: Ada's order is still open when the board
    // starts, so the board's first line is hers.
    let mut test_cafe = spawn_cafe(cafe_server::Config {
        baristas: 1,
        ..cafe_server::Config::default()
    })
    .await;
    let _open = test_cafe.buzzer("Ada", "latte").await;
    let mut board = cafe_testkit::process::clean_command(env!("CARGO_BIN_EXE_cafe"))
        .args(["--server", &test_cafe.url(), "--json", "board"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = board.stdout.take().unwrap();
    // The board runs until Ctrl-C: read its first line, then stop it.
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        line
    })
    .await
    .unwrap();
    board.kill().unwrap();
    board.wait().unwrap();
    let event: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    let kinds = documented_kinds()
        .into_iter()
        .find(|(name, _)| name == "board")
        .map(|(_, kinds)| kinds)
        .unwrap();
    assert_eq!(kinds, ["order"]);
    assert_eq!(event["event"], "order", "{event}");
    assert_eq!(event["order"]["customer"], "Ada", "{event}");
}
