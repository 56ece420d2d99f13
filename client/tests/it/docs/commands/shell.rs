//! Reading the docs' shell blocks: each ` ```sh ` block's command lines,
//! split into words as a shell would, and which of the project's programs
//! each runs.

/// A ` ```sh ` block: where it is, and its command lines (continuations
/// joined, comments and blank lines dropped).
#[derive(Debug)]
pub(super) struct Block {
    pub(super) file: String,
    pub(super) line: usize,
    pub(super) commands: Vec<String>,
}

/// The runnable shell blocks of `text`, and how many were marked no-run.
pub(super) fn shell_blocks(file: &str, text: &str) -> (Vec<Block>, usize) {
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
pub(crate) fn words(line: &str) -> Vec<String> {
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
pub(crate) enum Program {
    Cafe,
    CafeServer,
    CafeBarista,
}

/// `cargo run --release --bin cafe -- demo` → (`cafe`, `["demo"]`).
pub(crate) fn program(words: &[String]) -> Option<(Program, Vec<String>)> {
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
