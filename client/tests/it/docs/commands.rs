//! Every ` ```sh ` block in `README.md` and `docs/*.md`, run line by line,
//! offline (how each program is run: see the parent module).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use clap::Parser;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use super::{markdown_files, root};

mod shell;
use shell::{Block, shell_blocks};
pub(super) use shell::{Program, program, words};

/// Brew times are fast-forwarded: every `--time-scale` value becomes this.
const TIME_SCALE: &str = "0.005";

/// A server started by a block: it runs until the block ends (or a
/// `kill %N` names it).
struct Background {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// What a line ending in `&` started, numbered from 1 as a shell numbers
/// its jobs, so a later `kill %N` stops it.
enum Job {
    /// A server, by its index in the block's servers.
    Server(usize),
    /// A `cafe` run in the background: it must end by itself, successfully,
    /// before the block ends, unless a `kill` stopped it.
    Cafe {
        line: String,
        child: std::process::Child,
        killed: bool,
    },
}

/// Runs one block: its servers in this process, its `cafe` lines as the
/// real binary. Returns the first failure.
async fn run_block(block: &Block, scratch: &Path) -> Result<(), String> {
    let at = format!("{}:{}", block.file, block.line);
    // The documented address of each server started → where it really is.
    let mut addresses: BTreeMap<String, String> = BTreeMap::new();
    let mut servers: Vec<Background> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    let result = async {
        for line in &block.commands {
            let background = line.ends_with('&');
            let line = line.strip_suffix('&').map_or(line.as_str(), str::trim);
            let mut words = words(line);
            if let Some(job) = killed_job(&words) {
                match jobs.get_mut(job.wrapping_sub(1)) {
                    Some(Job::Server(index)) => {
                        if let Some(stop) = servers[*index].stop.take() {
                            let _ = stop.send(());
                        }
                    }
                    Some(Job::Cafe { child, killed, .. }) => {
                        cafe_testkit::process::send_signal(child, "TERM");
                        *killed = true;
                    }
                    None => return Err(format!("{at}: `{line}`: there is no job %{job}")),
                }
                continue;
            }
            for (i, word) in words.clone().iter().enumerate() {
                if word == "--time-scale" && i + 1 < words.len() {
                    words[i + 1] = TIME_SCALE.into();
                }
            }
            for word in &mut words {
                for (documented, real) in &addresses {
                    *word = word.replace(documented.as_str(), real);
                }
            }
            let Some((program, args)) = program(&words) else {
                return Err(format!(
                    "{at}: `{line}` cannot run in a test: mark the block ```sh no-run"
                ));
            };
            match program {
                Program::Cafe => {
                    let server = addresses
                        .get("127.0.0.1:50051")
                        .map(|real| format!("http://{real}"));
                    let mut command = cafe_command(&args, server, scratch);
                    if background {
                        // As a shell's `&`: it runs beside the next lines
                        // (a `stats --every` watching a rush), its output
                        // kept for the end of the block.
                        let child = command
                            .stdout(Stdio::piped())
                            .stderr(Stdio::piped())
                            .spawn()
                            .expect("cafe starts");
                        jobs.push(Job::Cafe {
                            line: line.to_owned(),
                            child,
                            killed: false,
                        });
                        continue;
                    }
                    let output =
                        tokio::task::spawn_blocking(move || command.output().expect("cafe runs"))
                            .await
                            .unwrap();
                    if !output.status.success() {
                        return Err(format!(
                            "{at}: `{line}` failed ({}):\n{}{}",
                            output.status,
                            String::from_utf8_lossy(&output.stdout),
                            String::from_utf8_lossy(&output.stderr)
                        ));
                    }
                }
                Program::CafeServer => {
                    let mut argv = vec!["cafe-server".to_owned()];
                    argv.extend(args);
                    let mut config = cafe_server::Config::try_parse_from(&argv)
                        .map_err(|e| format!("{at}: `{line}`: {e}"))?;
                    // As if run in the scratch directory: the café's data
                    // directory (its SQLite orders) goes there too.
                    config.data_dir = scratch.join(&config.data_dir);
                    let documented = config.server.listen.to_string();
                    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let app = cafe_server::Application::with_listener(config, listener);
                    let real = app.local_addr();
                    remember(&mut addresses, &documented, real);
                    let (stop, stopped) = oneshot::channel::<()>();
                    let task = tokio::spawn(async move {
                        let stopped = async {
                            let _ = stopped.await;
                        };
                        app.serve(stopped).await.expect("the café serves");
                    });
                    if background {
                        jobs.push(Job::Server(servers.len()));
                    }
                    servers.push(Background {
                        stop: Some(stop),
                        task,
                    });
                    // With remote baristas the café refuses orders until
                    // it reaches one: the next command must find it ready.
                    serving(real)
                        .await
                        .map_err(|e| format!("{at}: `{line}`: {e}"))?;
                }
                Program::CafeBarista => {
                    let mut argv = vec!["cafe-barista".to_owned()];
                    argv.extend(args);
                    let config = cafe_barista::Config::try_parse_from(&argv)
                        .map_err(|e| format!("{at}: `{line}`: {e}"))?;
                    let documented = config.server.listen.to_string();
                    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let app = cafe_barista::Application::with_listener(config, listener);
                    remember(&mut addresses, &documented, app.local_addr());
                    let (stop, stopped) = oneshot::channel::<()>();
                    let task = tokio::spawn(async move {
                        let stopped = async {
                            let _ = stopped.await;
                        };
                        app.serve(stopped).await.expect("the barista serves");
                    });
                    if background {
                        jobs.push(Job::Server(servers.len()));
                    }
                    servers.push(Background {
                        stop: Some(stop),
                        task,
                    });
                }
            }
        }
        Ok(())
    }
    .await;
    // The background `cafe`s first, while their café still serves.
    let mut result = result;
    for job in jobs {
        let Job::Cafe {
            line,
            child,
            killed,
        } = job
        else {
            continue;
        };
        let pid = child.id();
        let waited = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::task::spawn_blocking(move || child.wait_with_output().expect("cafe ends")),
        )
        .await;
        let failure = match waited {
            Err(_) => {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                Some(format!(
                    "{at}: `{line} &` was still running 60 s after the block's last line: \
                     end it (`kill %N`) or let it finish"
                ))
            }
            Ok(output) => {
                let output = output.unwrap();
                (!killed && !output.status.success()).then(|| {
                    format!(
                        "{at}: `{line} &` failed ({}):\n{}{}",
                        output.status,
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    )
                })
            }
        };
        if let (Some(failure), Ok(())) = (failure, &result) {
            result = Err(failure);
        }
    }
    for server in servers {
        if let Some(stop) = server.stop {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), server.task).await;
    }
    result
}

/// `kill %2` (or `kill -INT %2`) → `Some(2)`: the job a line stops.
fn killed_job(words: &[String]) -> Option<usize> {
    match words {
        [kill, rest @ ..] if kill == "kill" => rest.last()?.strip_prefix('%')?.parse().ok(),
        _ => None,
    }
}

/// Waits (within a generous limit) until the café at `addr` reports
/// SERVING, by watching its health rather than polling it.
async fn serving(addr: SocketAddr) -> Result<(), String> {
    health_is(addr, true).await
}

/// Waits (within a generous limit) until the café at `addr` reports
/// SERVING (or NOT_SERVING, if not `serving`), by watching its health.
pub(super) async fn health_is(addr: SocketAddr, serving: bool) -> Result<(), String> {
    let wanted = if serving {
        tonic_health::pb::health_check_response::ServingStatus::Serving
    } else {
        tonic_health::pb::health_check_response::ServingStatus::NotServing
    };
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let wait = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let mut updates = HealthClient::new(channel)
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        while let Some(update) = updates.message().await.map_err(|e| e.to_string())? {
            if update.status == wanted as i32 {
                return Ok(());
            }
        }
        Err(format!("the health stream ended before {wanted:?}"))
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .map_err(|_| format!("the café was not {wanted:?} within 20 s"))?
}

/// Notes that the server documented at `documented` (`127.0.0.1:50051`)
/// really listens at `real`, also when a later command says `localhost`.
fn remember(addresses: &mut BTreeMap<String, String>, documented: &str, real: SocketAddr) {
    addresses.insert(documented.to_owned(), real.to_string());
    if let Some(port) = documented.strip_prefix("127.0.0.1:") {
        addresses.insert(format!("localhost:{port}"), real.to_string());
    }
}

/// The real `cafe` with `args`, in `scratch`, against `server` when a
/// block started one; fast-forwarded, and untouched by the developer's own
/// `CAFE_*`/`OTEL_*` variables.
fn cafe_command(args: &[String], server: Option<String>, scratch: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cafe"));
    for key in cafe_testkit::leaky_env() {
        command.env_remove(key);
    }
    if let Some(server) = server {
        command.env("CAFE_SERVER", server);
    }
    command
        .env("CAFE_DEMO_TIME_SCALE", TIME_SCALE)
        .env_remove("RUST_LOG")
        .current_dir(scratch)
        .args(args);
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn every_shell_command_in_the_readme_and_docs_runs() {
    let scratch = std::env::temp_dir().join(format!("cafe-docs-{}", std::process::id()));
    // Commands that write pictures write them here, not over docs/img.
    std::fs::create_dir_all(scratch.join("docs/img")).unwrap();
    let mut failures = Vec::new();
    let mut ran = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(root().join(&file)).unwrap();
        let (blocks, _skipped) = shell_blocks(&file, &text);
        for block in blocks {
            ran += block.commands.len();
            if let Err(failure) = run_block(&block, &scratch).await {
                failures.push(failure);
            }
        }
    }
    std::fs::remove_dir_all(&scratch).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The README's own commands at least: a test that ran nothing proves
    // nothing.
    assert!(ran >= 3, "only {ran} commands ran");
}

#[test]
fn shell_blocks_are_found_and_no_run_ones_skipped() {
    let text = "\
intro
```sh
cargo run --release --bin cafe -- demo   # the lesson
cafe rush \\
    --mode compare
```
```sh no-run
docker compose up
```
```console
$ cafe menu
```
";
    let (blocks, skipped) = shell_blocks("x.md", text);
    assert_eq!(skipped, 1);
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        blocks[0].commands,
        [
            "cargo run --release --bin cafe -- demo",
            "cafe rush      --mode compare"
        ]
    );
    let (first, args) = program(&words(&blocks[0].commands[0])).unwrap();
    assert_eq!(first, Program::Cafe);
    assert_eq!(args, ["demo"]);
    assert_eq!(
        words(r#"grpcurl -d '{"customer":"Ada"}' x"#),
        ["grpcurl", "-d", r#"{"customer":"Ada"}"#, "x"]
    );
    assert_eq!(killed_job(&words("kill %1")), Some(1));
    assert_eq!(killed_job(&words("kill -INT %2")), Some(2));
    assert_eq!(killed_job(&words("kill 1234")), None);
    assert!(program(&words("docker compose up")).is_none());
    assert!(program(&words("cargo test --workspace")).is_none());
}

/// `cargo install --path client` in the README or the docs names a package
/// of this workspace that has a binary: how a reader puts `cafe`,
/// `cafe-server` and `cafe-barista` on their PATH must work as written.
#[test]
fn every_cargo_install_path_is_a_package_with_a_binary() {
    let mut found = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(root().join(&file)).unwrap();
        let text = text.replace(['`', '\n'], " ");
        let words: Vec<&str> = text.split_whitespace().collect();
        for window in words.windows(4) {
            if window[..3] != ["cargo", "install", "--path"] {
                continue;
            }
            let path = window[3].trim_end_matches([',', '.', ')']);
            let manifest = std::fs::read_to_string(root().join(path).join("Cargo.toml"))
                .unwrap_or_else(|e| panic!("{file}: cargo install --path {path}: {e}"));
            assert!(
                manifest.contains("[[bin]]") || root().join(path).join("src/main.rs").is_file(),
                "{file}: cargo install --path {path} installs no binary"
            );
            found += 1;
        }
    }
    // The README's three, at least.
    assert!(found >= 3, "only {found} `cargo install --path` found");
}
