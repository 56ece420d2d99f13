//! `cafe rush` and `cafe demo`: sequential against concurrent customers,
//! the blocking barista's half, and the timelines they draw (text and SVG).

use cafe_client::error::exit;
use cafe_testkit::spawn_cafe;
use serde_json::Value;

use super::{assert_one_line_error, cafe, cafe_at, fast, json_lines, stderr, stdout};

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
    let orders: Vec<&Value> = json.iter().filter(|l| l["event"] == "customer").collect();
    assert_eq!(orders.len(), 8, "{json:?}");
    assert!(
        orders
            .iter()
            .all(|o| o["error"].is_null() && o["order_id"].is_string())
    );
    let summaries: Vec<&Value> = json.iter().filter(|l| l["event"] == "summary").collect();
    assert_eq!(summaries[0]["mode"], "sequential");
    assert_eq!(summaries[1]["mode"], "concurrent");
    assert!(summaries.iter().all(|s| s["served"] == 4));
    let compare = json.iter().find(|l| l["event"] == "compare").unwrap();
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
async fn the_demo_opens_with_its_two_halves_and_ends_with_a_table_that_keeps_them_apart() {
    let demo = cafe_at(
        "http://127.0.0.1:1",
        &[
            "demo",
            "--customers",
            "3",
            "--baristas",
            "2",
            "--time-scale",
            "0.005",
        ],
    )
    .await;
    assert!(demo.status.success(), "{}", stderr(&demo));
    let out = stdout(&demo);
    // The first screen says, before any timeline, how each side waits and
    // what is measured: a few lines, ahead of the first half's heading.
    let opening: Vec<&str> = out.lines().take_while(|l| !l.is_empty()).collect();
    let opening = opening.join("\n");
    assert!(opening.lines().count() <= 6, "{opening}");
    for words in [
        "Synchronous vs asynchronous",
        "at the counter",
        "buzzer",
        "3 one after another",
        "all 3 at once",
        "blocks a worker thread",
        "awaits",
        "Flask-like",
        "FastAPI-like",
        "Measured: how long",
        "Measured: drinks brewing at once",
    ] {
        assert!(opening.contains(words), "{words:?} not in\n{opening}");
    }
    assert!(
        out.find("THE CUSTOMER'S HALF").unwrap() > opening.len(),
        "{out}"
    );
    // The closing table: one part per half, each under its own heading,
    // and no row of one with a word of the other.
    let table = &out[out.find("Key differences").expect("the table")..];
    let parts: Vec<&str> = table.split("\n\n").collect();
    let customer = parts
        .iter()
        .find(|p| p.starts_with("The customer's waiting"))
        .unwrap_or_else(|| panic!("no customer's part in\n{table}"));
    let server = parts
        .iter()
        .find(|p| p.starts_with("The server's threads"))
        .unwrap_or_else(|| panic!("no server's part in\n{table}"));
    assert!(customer.contains("one after another"), "{customer}");
    assert!(server.contains("orders/s"), "{server}");
    for word in ["Flask", "orders/s", "GetMenu"] {
        assert!(!customer.contains(word), "{word}: {customer}");
    }
    for word in ["counter", "buzzer", "one after another"] {
        assert!(!server.contains(word), "{word}: {server}");
    }
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
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
            .find(|l| l["event"] == "run" && l["run"] == name)
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
        .find(|l| l["event"] == "key_differences")
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
