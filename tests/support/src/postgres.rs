//! A fresh PostgreSQL database for each test that needs one.
//!
//! The tests of cafés sharing one line need a real PostgreSQL server: what
//! they test (`FOR UPDATE SKIP LOCKED`, `LISTEN`/`NOTIFY`, a sequence shared
//! by several processes) is the server's behaviour, not ours to fake. The
//! server is named by `CAFE_TEST_DATABASE_URL`, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres` (`.ci/run` sets it). Each
//! test gets a database of its own, `cafe_test_<pid>_<n>`, created from that
//! URL and dropped when the [`TestDatabase`] is dropped, so tests run in
//! parallel without seeing each other's orders, and a run leaves nothing
//! behind. A run killed before its drops leaves its databases; the next run
//! drops those of processes that are gone.
//!
//! Where the variable is unset (a laptop without PostgreSQL), [`database`]
//! prints that the test was skipped and returns `None`; where `CI` is set
//! too it fails instead: CI never skips these tests silently.

use std::{
    str::FromStr,
    sync::atomic::{AtomicU32, Ordering},
};

use sqlx::{
    Connection, Executor, Row,
    postgres::{PgConnectOptions, PgConnection},
};

/// The variable naming the PostgreSQL server the tests may use.
pub const URL_VARIABLE: &str = "CAFE_TEST_DATABASE_URL";

/// A database made for one test, dropped with this value.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its URL, for `--database-url`.
    pub url: String,
    /// Its name.
    pub name: String,
    /// The URL the test run was given, to drop it from.
    admin_url: String,
}

/// A fresh, empty database for the calling test, or `None` (after saying
/// so on stderr) when [`URL_VARIABLE`] is unset. Panics when it is unset
/// while `CI` is set, or when the server cannot be reached.
///
/// ```ignore
/// let Some(db) = cafe_testkit::postgres::database().await else { return };
/// ```
pub async fn database() -> Option<TestDatabase> {
    let Some(admin_url) = std::env::var(URL_VARIABLE)
        .ok()
        .filter(|url| !url.is_empty())
    else {
        let test = std::thread::current()
            .name()
            .unwrap_or("this test")
            .to_owned();
        assert!(
            std::env::var_os("CI").is_none(),
            "{test} needs PostgreSQL and CI is set: set {URL_VARIABLE} \
             (e.g. postgres://postgres@127.0.0.1:5432/postgres); CI never skips it"
        );
        eprintln!(
            "skipped: set {URL_VARIABLE} (e.g. postgres://postgres@127.0.0.1:5432/postgres) \
             to run {test} against a real PostgreSQL"
        );
        return None;
    };
    Some(TestDatabase::create(admin_url).await)
}

impl TestDatabase {
    async fn create(admin_url: String) -> TestDatabase {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let name = format!("cafe_test_{pid}_{}", COUNT.fetch_add(1, Ordering::Relaxed));
        let mut admin = admin_connection(&admin_url).await;
        drop_leftovers(&mut admin).await;
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .unwrap_or_else(|error| panic!("create the test database {name}: {error}"));
        let _ = admin.close().await;
        TestDatabase {
            url: database_url(&admin_url, &name),
            name,
            admin_url,
        }
    }
}

impl Drop for TestDatabase {
    /// Drops the database, closing whatever connections are still open to
    /// it (a café the test did not stop, a killed process's).
    ///
    /// `Drop` cannot await, and the test's runtime may be the current
    /// thread's (which cannot block on itself), so the drop runs on a thread
    /// of its own with a small runtime, and this waits for it: the database
    /// is gone before the test is over.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let mut admin = admin_connection(&admin_url).await;
                let dropped = admin
                    .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                    .await;
                if let Err(error) = dropped {
                    eprintln!("could not drop the test database {name}: {error}");
                }
                let _ = admin.close().await;
            });
        });
        let _ = dropping.join();
    }
}

async fn admin_connection(admin_url: &str) -> PgConnection {
    let options = PgConnectOptions::from_str(admin_url)
        .unwrap_or_else(|error| panic!("{URL_VARIABLE} is not a PostgreSQL URL: {error}"));
    PgConnection::connect_with(&options)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot reach PostgreSQL at {URL_VARIABLE}={admin_url}: {error} \
             (is it running? `pg_isready -h 127.0.0.1` tells)"
            )
        })
}

/// Drops the test databases of test processes that have gone (killed
/// before they could drop their own).
async fn drop_leftovers(admin: &mut PgConnection) {
    let Ok(rows) = sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'cafe_test_%'")
        .fetch_all(&mut *admin)
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let Some(pid) = name
            .strip_prefix("cafe_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        // A process that is still running may still be using it. (Only
        // Linux has /proc; elsewhere nothing is dropped.)
        if !cfg!(target_os = "linux") || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // Another test may be dropping the same one: errors are fine.
        let _ = admin
            .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
            .await;
    }
}

/// `url` with its database replaced by `name`, keeping its parameters:
/// `postgres://u@h:5432/postgres?sslmode=disable` →
/// `postgres://u@h:5432/<name>?sslmode=disable`.
fn database_url(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_starts = base.find("://").map_or(0, |at| at + 3);
    let server = match base[authority_starts..].find('/') {
        Some(slash) => &base[..authority_starts + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn the_database_is_replaced_and_the_parameters_kept() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url("postgres://u:p@db:5432?sslmode=disable", "t2"),
            "postgres://u:p@db:5432/t2?sslmode=disable"
        );
        assert_eq!(
            database_url("postgresql://localhost/other?a=b", "t3"),
            "postgresql://localhost/t3?a=b"
        );
    }
}
