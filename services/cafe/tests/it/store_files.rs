//! The SQLite store's file, mistreated under the real `cafe-server`: left
//! empty or damaged before a start, deleted under a running café. Whatever
//! happens to the file, an order the café confirmed is never forgotten
//! without a word: it is kept, or the café refuses to start and says why.

#![cfg(unix)]

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::Path,
    process::{ExitStatus, Stdio},
    str::FromStr,
    time::{Duration, Instant},
};

use cafe_domain::proto::v1::Order;
use cafe_testkit::{
    LIMIT, order,
    process::{ServerProcess, clean_command},
};
use grpc_serving::retry_hint::PUSHBACK;
use sqlx::{
    ConnectOptions, Connection,
    sqlite::{SqliteConnectOptions, SqliteConnection},
};
use tonic::Code;

use super::store_faults::{all_kept, counter, serving, start};

/// How a start on `dir` went: it exited by itself (how, and its log), or
/// it opened (`None`, and it is killed).
fn try_start(dir: &Path) -> Option<(ExitStatus, String)> {
    try_start_as(dir, None)
}

/// [`try_start`], as the user `uid` if given.
fn try_start_as(dir: &Path, uid: Option<u32>) -> Option<(ExitStatus, String)> {
    use std::os::unix::process::CommandExt;
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("stderr");
    let mut command = clean_command(env!("CARGO_BIN_EXE_cafe-server"));
    if let Some(uid) = uid {
        command.uid(uid).gid(uid);
    }
    let mut child = command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(File::create(&log_path).unwrap())
        .spawn()
        .expect("run cafe-server");
    let until = Instant::now() + LIMIT;
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(status) = child.try_wait().expect("wait") {
            return Some((status, std::fs::read_to_string(&log_path).unwrap()));
        }
        if log.contains("café open") {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        assert!(Instant::now() < until, "the café neither opened nor exited");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `count` lattes at the counter, each READY; their request ids and orders.
async fn confirmed(cafe: &ServerProcess, prefix: &str, count: usize) -> Vec<(String, Order)> {
    let mut client = cafe.client().await;
    let mut confirmed = Vec::new();
    for i in 0..count {
        let request_id = format!("{prefix}-{i}");
        let order = counter(&mut client, &request_id)
            .await
            .unwrap_or_else(|status| panic!("{request_id}: {status:?}"));
        confirmed.push((request_id, order));
    }
    confirmed
}

#[test]
fn an_empty_store_file_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    File::create(dir.path().join("cafe.db")).unwrap();
    let (status, log) = try_start(dir.path()).expect("a café started on a 0-byte cafe.db");
    assert!(!status.success());
    assert!(
        log.contains("is empty (0 bytes)") && log.contains("cafe.db"),
        "the error names the file and what is wrong:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_file_is_refused_at_start_and_says_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    // A café that took orders, with one still open when it stopped: a
    // one-barista café whose latte takes 40 s.
    let cafe = ServerProcess::start(
        env!("CARGO_BIN_EXE_cafe-server"),
        &[
            "--data-dir",
            &dir.path().display().to_string(),
            "--shutdown-grace",
            "1s",
        ],
        "café open",
    );
    let mut client = cafe.client().await;
    for i in 0..3 {
        let mut request = order("Ada", "latte");
        request.request_id = format!("open-{i}");
        let mut buzzer = client
            .order_with_buzzer(request)
            .await
            .unwrap()
            .into_inner();
        buzzer.message().await.unwrap().expect("a ticket");
    }
    cafe.terminate();
    assert!(cafe.wait_exit(), "the café exits cleanly");

    // Its indexes damaged, its table intact: a plain read of every row
    // works, the first write would not.
    damage_indexes(&dir.path().join("cafe.db")).await;
    let (status, log) = try_start(dir.path()).expect("a café started on a damaged cafe.db");
    assert!(!status.success());
    assert!(
        log.contains("is damaged") && log.contains("3 open orders can still be read"),
        "the error says what is wrong and which orders it holds:\n{log}"
    );
}

/// Overwrites the first bytes of every index page of `orders` in `file`.
async fn damage_indexes(file: &Path) {
    let pages = index_pages(file).await;
    damage_pages(file, &pages);
}

/// Where the index pages of `orders` start in `file`, in bytes (read while
/// no café holds it).
async fn index_pages(file: &Path) -> Vec<u64> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))
        .unwrap()
        .read_only(true);
    let mut connection: SqliteConnection = options.connect().await.unwrap();
    let pages: Vec<i64> = sqlx::query_scalar(
        "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders'",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    assert!(!pages.is_empty());
    pages
        .into_iter()
        .map(|page| ((page - 1) * page_size) as u64)
        .collect()
}

/// Overwrites the first bytes of each page at `offsets` in `file`, leaving
/// its header whole (still a database file).
fn damage_pages(file: &Path, offsets: &[u64]) {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    for &offset in offsets {
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(&[0xA5; 64]).unwrap();
    }
    file.sync_all().unwrap();
    let mut header = [0u8; 16];
    file.seek(SeekFrom::Start(0)).unwrap();
    file.read_exact(&mut header).unwrap();
    assert_eq!(&header, b"SQLite format 3\0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_file_deleted_under_the_cafe_is_written_again_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cafe = start(dir.path());
    let mut kept = confirmed(&cafe, "before", 10).await;

    // Someone cleans up the data directory while the café runs.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    kept.extend(confirmed(&cafe, "after", 10).await);

    // A restart finds every order it confirmed, before and after.
    cafe.terminate();
    assert!(cafe.wait_exit(), "the café exits cleanly");
    let cafe = start(dir.path());
    all_kept(&cafe, &kept).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_file_replaced_under_the_cafe_is_not_written_over_and_the_cafe_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cafe.db");
    let cafe = start(dir.path());
    let mut kept = confirmed(&cafe, "before", 5).await;

    // Another file is put where the café's was (a backup restored by
    // mistake): the café must not write over it, and says it cannot keep
    // orders rather than confirm them into nowhere.
    let other = dir.path().join("other");
    std::fs::write(&other, b"someone else's file").unwrap();
    std::fs::rename(&other, &file).unwrap();
    let mut client = cafe.client().await;
    let mut refused = Vec::new();
    let until = Instant::now() + LIMIT;
    while refused.len() < 3 {
        assert!(
            Instant::now() < until,
            "the café never said its store was failing"
        );
        let id = format!("replaced-{}", refused.len() + kept.len());
        match tokio::time::timeout(LIMIT, counter(&mut client, &id)).await {
            Ok(Ok(order)) => kept.push((id, order)),
            Ok(Err(status)) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(status.metadata().contains_key(PUSHBACK), "a retry hint");
                refused.push(id);
            }
            Err(_) => panic!("order {id} was left hanging"),
        }
    }
    assert!(!serving(&cafe).await, "health says SERVING");
    assert_eq!(std::fs::read(&file).unwrap(), b"someone else's file");

    // The other file is moved away: the café writes its own again and
    // serves by itself; each refused request id is one order.
    std::fs::remove_file(&file).unwrap();
    let until = Instant::now() + LIMIT;
    while !serving(&cafe).await {
        assert!(Instant::now() < until, "the café did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in refused {
        let order = counter(&mut client, &id).await.expect("a retry");
        kept.push((id, order));
    }
    cafe.terminate();
    assert!(cafe.wait_exit(), "the café exits cleanly");
    let cafe = start(dir.path());
    all_kept(&cafe, &kept).await;
}

/// The unprivileged user the read-only test runs the café as (root may
/// write whatever the permissions say).
const NOBODY: u32 = 65534;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_file_is_refused_at_start_and_kept_for_when_it_is_writable() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cafe = start(dir.path());
    let kept = confirmed(&cafe, "before", 5).await;
    cafe.terminate();
    assert!(cafe.wait_exit(), "the café exits cleanly");

    // The café's user may read its files but not write them.
    change_all("chown", &["-R", &NOBODY.to_string()], dir.path());
    change_all("chmod", &["-R", "a-w"], dir.path());
    let (status, log) =
        try_start_as(dir.path(), Some(NOBODY)).expect("a café started on a file it cannot write");
    assert!(!status.success());
    assert!(
        log.contains("cannot be written") && log.contains("cafe.db"),
        "the error names the file and what is wrong:\n{log}"
    );

    // Writable again: every order is there.
    change_all("chmod", &["-R", "u+w"], dir.path());
    let cafe = start(dir.path());
    all_kept(&cafe, &kept).await;
}

/// Whether this test process is root (needed to run the café as another
/// user); under CI it must be.
fn root_or_skip() -> bool {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must run this test"
        );
        eprintln!("skipped: running the café as another user needs root");
    }
    root
}

/// `chmod`/`chown` `args` on `dir` and everything in it.
fn change_all(program: &str, args: &[&str], dir: &Path) {
    let done = std::process::Command::new(program)
        .args(args)
        .arg(dir)
        .status()
        .unwrap();
    assert!(done.success(), "{program} {args:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_file_made_read_only_under_the_cafe_loses_nothing() {
    if !root_or_skip() {
        return;
    }
    // The café runs as an unprivileged user (root writes whatever the
    // permissions say), on files of its own.
    let dir = tempfile::tempdir().unwrap();
    change_all("chown", &["-R", &NOBODY.to_string()], dir.path());
    let data_dir = dir.path().display().to_string();
    let args = [
        "--data-dir",
        data_dir.as_str(),
        "--baristas",
        "4",
        "--time-scale",
        "0.0005",
    ];
    let cafe = ServerProcess::start_as(
        env!("CARGO_BIN_EXE_cafe-server"),
        &args,
        NOBODY,
        "café open",
    );
    let mut kept = confirmed(&cafe, "before", 5).await;

    // Read-only under it: permissions are checked when a file is opened,
    // so the café goes on writing through the file it holds, and every
    // order it confirms meanwhile is in the file.
    change_all("chmod", &["-R", "a-w"], dir.path());
    kept.extend(confirmed(&cafe, "read-only", 5).await);
    assert!(serving(&cafe).await, "the café still serves");
    cafe.terminate();
    assert!(cafe.wait_exit(), "the café exits cleanly");

    // Writable again: a restart has every order, and a retry of each
    // request id gets its order, not a second drink.
    change_all("chmod", &["-R", "u+w"], dir.path());
    let cafe = ServerProcess::start_as(
        env!("CARGO_BIN_EXE_cafe-server"),
        &args,
        NOBODY,
        "café open",
    );
    all_kept(&cafe, &kept).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_file_damaged_under_the_cafe_loses_no_confirmed_order_without_a_word() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cafe.db");
    let cafe = start(dir.path());
    let mut kept = confirmed(&cafe, "first", 5).await;
    cafe.terminate();
    assert!(cafe.wait_exit(), "the café exits cleanly");
    // Where the indexes are, read while no café holds the file.
    let pages = index_pages(&file).await;

    let cafe = start(dir.path());
    kept.extend(confirmed(&cafe, "before", 5).await);
    damage_pages(&file, &pages);
    // Every order is answered: READY (the café still reads the pages it
    // holds) or UNAVAILABLE, never left to its deadline.
    let mut client = cafe.client().await;
    for i in 0..10 {
        let id = format!("damaged-{i}");
        match tokio::time::timeout(LIMIT, counter(&mut client, &id)).await {
            Ok(Ok(order)) => kept.push((id, order)),
            Ok(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
            Err(_) => panic!("order {id} was left hanging on a damaged file"),
        }
    }
    cafe.terminate();
    let _ = cafe.wait_exit();

    // A restart has every confirmed order, or refuses the file and says
    // so: never an empty or partial café without a word.
    match try_start(dir.path()) {
        Some((status, log)) => {
            assert!(!status.success());
            assert!(log.contains("is damaged"), "{log}");
            eprintln!("the restart refused the damaged file");
        }
        None => {
            eprintln!("the café wrote over the damage; the restart has every order");
            let cafe = start(dir.path());
            all_kept(&cafe, &kept).await;
        }
    }
}
