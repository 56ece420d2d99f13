//! The flag references in `docs/cli.md`, `docs/cafe-server.md` and
//! `docs/baristas.md`, generated from the three binaries' clap definitions
//! and compared with what is committed.

use clap::CommandFactory;

use super::root;

const BEGIN: &str = "<!-- BEGIN GENERATED from the clap definitions by client/tests/it/docs/flags.rs; \
                     UPDATE_DOCS=1 cargo test -p cafe-client --test it docs rewrites it -->";
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
