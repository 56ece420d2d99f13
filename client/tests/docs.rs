//! The docs are held to the code, so none of them rots.
//!
//! - **Flag references** (`docs/cli.md`, `docs/cafe-server.md`,
//!   `docs/baristas.md`) are generated from the three binaries' clap
//!   definitions with `clap-markdown`, between `<!-- BEGIN GENERATED -->`
//!   and `<!-- END GENERATED -->`. The test fails when what is committed
//!   differs; `UPDATE_DOCS=1 cargo test -p cafe-client --test docs`
//!   rewrites the blocks (read the diff before committing it).
//! - **Commands**: every ` ```sh ` block in `README.md` and `docs/*.md` is
//!   run, line by line, offline. `cargo run … --bin cafe -- ARGS` and
//!   `cafe ARGS` run the real `cafe` binary; `cafe-server` and
//!   `cafe-barista` (with or without `cargo run`) start the real
//!   `Application`s in this process, with their command line parsed by
//!   their own clap definitions, and keep running for the rest of their
//!   block (in the docs, each has a terminal of its own, or ends in `&`);
//!   a café is waited for until its health is SERVING. Servers listen on
//!   port 0 instead of
//!   the documented port, and the addresses in later commands are rewritten
//!   to match; `--time-scale` is set to 0.005 (and the demo's to match), so
//!   a block runs in seconds, not minutes. A block that needs what a test
//!   has not got (Docker, grpcurl, a collector, this very test) is marked
//!   ` ```sh no-run ` in the markdown; any other command in a runnable block
//!   fails the test, so a new command is either run or explicitly marked.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use clap::{CommandFactory, Parser};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// The workspace root (this crate is `client/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("client/ has a parent")
        .to_owned()
}

// ---------------------------------------------------------------------------
// Flag references
// ---------------------------------------------------------------------------

const BEGIN: &str = "<!-- BEGIN GENERATED from the clap definitions by client/tests/docs.rs; \
                     UPDATE_DOCS=1 cargo test -p cafe-client --test docs rewrites it -->";
const END: &str = "<!-- END GENERATED -->";

/// The Markdown reference of `command`: clap-markdown's, with each option's
/// environment variable added to its help (clap-markdown leaves it out)
/// and the headings one level down, to sit under the page's own title.
///
/// A default worked out on the machine that runs it (`cafe-barista
/// --name`: the host name) is documented in its help text (`[default:
/// …]`), so clap's value is left out: the page must not depend on where it
/// was generated.
fn reference(command: clap::Command) -> String {
    fn with_env(command: clap::Command) -> clap::Command {
        command
            .mut_args(|arg| {
                let help = arg
                    .get_long_help()
                    .or(arg.get_help())
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let arg = if help.contains("[default:") {
                    arg.default_value(None)
                } else {
                    arg
                };
                match arg.get_env() {
                    Some(env) => {
                        let env = env.to_string_lossy().into_owned();
                        arg.long_help(format!("{help}\n\nEnvironment variable: `{env}`"))
                    }
                    None => arg,
                }
            })
            .mut_subcommands(with_env)
    }
    let name = command.get_name().to_owned();
    let options = clap_markdown::MarkdownOptions::new()
        .title(format!("`{name}` reference"))
        .show_table_of_contents(command.has_subcommands())
        .show_footer(false);
    let markdown = clap_markdown::help_markdown_command_custom(&with_env(command), &options);
    let lines: Vec<String> = markdown
        .lines()
        .map(|line| {
            // Markdown has six levels; clap-markdown's option lists use
            // the sixth already.
            if line.starts_with('#') && !line.starts_with("######") {
                format!("#{line}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    format!("{}\n", lines.join("\n").trim_end())
}

/// Checks (or with `UPDATE_DOCS`, rewrites) the generated block of `file`.
fn check_generated(file: &str, generated: &str) -> Result<(), String> {
    let path = root().join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{file}: {e}"))?;
    let (before, rest) = text
        .split_once(BEGIN)
        .ok_or_else(|| format!("{file} has no `{BEGIN}` line"))?;
    let (committed, after) = rest
        .split_once(END)
        .ok_or_else(|| format!("{file} has no `{END}` line"))?;
    let wanted = format!("\n{generated}");
    if committed == wanted {
        return Ok(());
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{before}{BEGIN}{wanted}{END}{after}"))
            .map_err(|e| format!("{file}: {e}"))?;
        return Ok(());
    }
    Err(format!(
        "{file} no longer matches the code's flags: rerun with UPDATE_DOCS=1 and commit the diff"
    ))
}

#[test]
fn the_flag_references_match_the_clap_definitions() {
    let failures: Vec<String> = [
        ("docs/cli.md", reference(cafe_client::cli::Cli::command())),
        (
            "docs/cafe-server.md",
            reference(cafe_server::Config::command()),
        ),
        (
            "docs/baristas.md",
            reference(cafe_barista::Config::command()),
        ),
    ]
    .iter()
    .filter_map(|(file, generated)| check_generated(file, generated).err())
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_generated_reference_names_every_environment_variable() {
    let cli = reference(cafe_client::cli::Cli::command());
    for env in [
        "CAFE_SERVER",
        "CAFE_DEMO_PART",
        "CAFE_RUSH_SVG",
        "CAFE_STATS_EVERY",
    ] {
        assert!(cli.contains(&format!("`{env}`")), "{env} missing:\n{cli}");
    }
    assert!(cli.starts_with("## `cafe` reference"), "{cli}");
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// A ` ```sh ` block: where it is, and its command lines (continuations
/// joined, comments and blank lines dropped).
#[derive(Debug)]
struct Block {
    file: String,
    line: usize,
    commands: Vec<String>,
}

/// The runnable shell blocks of `text`, and how many were marked no-run.
fn shell_blocks(file: &str, text: &str) -> (Vec<Block>, usize) {
    let mut blocks = Vec::new();
    let mut skipped = 0;
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let mut words = info.split_whitespace();
        let language = words.next().unwrap_or("");
        let runnable = matches!(language, "sh" | "bash" | "shell");
        let no_run = words.any(|word| word == "no-run");
        let mut body = Vec::new();
        for (_, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            body.push(line);
        }
        if !runnable {
            continue;
        }
        if no_run {
            skipped += 1;
            continue;
        }
        let joined = body.join("\n").replace("\\\n", " ");
        let commands = joined
            .lines()
            .map(|line| strip_comment(line).trim().to_owned())
            .filter(|line| !line.is_empty())
            .collect();
        blocks.push(Block {
            file: file.to_owned(),
            line: number + 1,
            commands,
        });
    }
    (blocks, skipped)
}

/// `cmd # comment` → `cmd` (a `#` outside quotes, after a space).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return &line[..i],
            _ => {}
        }
        previous = c;
    }
    line
}

/// Splits a command line into words, honouring '…' and "…" quotes.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// What a command line runs.
#[derive(Debug, PartialEq)]
enum Program {
    Cafe,
    CafeServer,
    CafeBarista,
}

/// `cargo run --release --bin cafe -- demo` → (`cafe`, `["demo"]`).
fn program(words: &[String]) -> Option<(Program, Vec<String>)> {
    let (name, args): (&str, &[String]) = match words.first()?.as_str() {
        "cargo" if words.get(1).map(String::as_str) == Some("run") => {
            let bin = words.iter().position(|w| w == "--bin")?;
            let dashes = words.iter().position(|w| w == "--");
            let args = dashes.map_or(&[][..], |d| &words[d + 1..]);
            (words.get(bin + 1)?.as_str(), args)
        }
        other => (other, &words[1..]),
    };
    let program = match name {
        "cafe" => Program::Cafe,
        "cafe-server" => Program::CafeServer,
        "cafe-barista" => Program::CafeBarista,
        _ => return None,
    };
    Some((program, args.to_vec()))
}

/// Brew times are fast-forwarded: every `--time-scale` value becomes this.
const TIME_SCALE: &str = "0.005";

/// A server started by a line ending in `&`.
struct Background {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Runs one block: its servers in this process, its `cafe` lines as the
/// real binary. Returns the first failure.
async fn run_block(block: &Block, scratch: &Path) -> Result<(), String> {
    let at = format!("{}:{}", block.file, block.line);
    // The documented address of each server started → where it really is.
    let mut addresses: BTreeMap<String, String> = BTreeMap::new();
    let mut servers: Vec<Background> = Vec::new();
    let result = async {
        for line in &block.commands {
            let line = line.strip_suffix('&').map_or(line.as_str(), str::trim);
            let mut words = words(line);
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
                    let output = run_cafe(&args, server, scratch).await;
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
                    servers.push(Background { stop, task });
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
                    servers.push(Background { stop, task });
                }
            }
        }
        Ok(())
    }
    .await;
    for server in servers {
        let _ = server.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), server.task).await;
    }
    result
}

/// Waits (within a generous limit) until the café at `addr` reports
/// SERVING, by watching its health rather than polling it.
async fn serving(addr: SocketAddr) -> Result<(), String> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
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
            if update.status == ServingStatus::Serving as i32 {
                return Ok(());
            }
        }
        Err("the health stream ended before SERVING".to_owned())
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .map_err(|_| "the café was not SERVING within 20 s".to_owned())?
}

/// Notes that the server documented at `documented` (`127.0.0.1:50051`)
/// really listens at `real`, also when a later command says `localhost`.
fn remember(addresses: &mut BTreeMap<String, String>, documented: &str, real: SocketAddr) {
    addresses.insert(documented.to_owned(), real.to_string());
    if let Some(port) = documented.strip_prefix("127.0.0.1:") {
        addresses.insert(format!("localhost:{port}"), real.to_string());
    }
}

/// Runs the real `cafe` with `args`, in `scratch`, against `server` when a
/// block started one; fast-forwarded, and untouched by the developer's own
/// `CAFE_*`/`OTEL_*` variables.
async fn run_cafe(args: &[String], server: Option<String>, scratch: &Path) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cafe"));
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
    tokio::task::spawn_blocking(move || command.output().expect("cafe runs"))
        .await
        .unwrap()
}

/// README.md and every page in docs/.
fn markdown_files() -> Vec<String> {
    let mut files = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
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
    assert!(program(&words("docker compose up")).is_none());
    assert!(program(&words("cargo test --workspace")).is_none());
}

// ---------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown file's headings (outside code blocks).
fn anchors(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut anchors = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            anchors.push(slug(line.trim_start_matches('#')));
        }
    }
    anchors
}

/// The relative links of a markdown file: `(target)` after `](`, and the
/// targets of reference definitions, outside code blocks, without web
/// addresses.
fn relative_links(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut links = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // A reference definition, `[name]: target`, as lesson.md keeps its
        // links in one list.
        if let Some((_, target)) = line
            .strip_prefix('[')
            .and_then(|rest| rest.split_once("]: "))
        {
            if !target.contains("://") {
                links.push(target.trim().to_owned());
            }
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if !target.contains("://") {
                links.push(target.to_owned());
            }
            rest = &rest[end..];
        }
    }
    links
}

#[test]
fn every_link_between_the_docs_leads_somewhere() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let path = root().join(&file);
        let text = std::fs::read_to_string(&path).unwrap();
        let dir = path.parent().unwrap();
        for link in relative_links(&text) {
            let (target, anchor) = match link.split_once('#') {
                Some((target, anchor)) => (target, Some(anchor)),
                None => (link.as_str(), None),
            };
            let target_path = if target.is_empty() {
                path.clone()
            } else {
                dir.join(target)
            };
            if !target_path.exists() {
                broken.push(format!("{file}: {link} (no such file)"));
                continue;
            }
            if let Some(anchor) = anchor {
                let target_text = std::fs::read_to_string(&target_path).unwrap_or_default();
                if !anchors(&target_text).iter().any(|a| a == anchor) {
                    broken.push(format!("{file}: {link} (no such heading)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    assert_eq!(slug(" One run of `cafe demo`"), "one-run-of-cafe-demo");
    assert_eq!(
        slug("The barista's half: how the barista waits"),
        "the-baristas-half-how-the-barista-waits"
    );
}
