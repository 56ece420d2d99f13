//! The JSON log of a server started as a real process (`--log-format
//! json`), read line by line as it comes: what the tests that kill or
//! signal a real `cafe-server` wait on.

use std::{
    io::{BufRead, BufReader},
    process::ChildStderr,
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Reads the child's JSON log lines as they come, on a thread; lines that
/// are not JSON are skipped.
pub fn json_lines(stderr: ChildStderr) -> mpsc::Receiver<Value> {
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && lines.send(value).is_err()
            {
                return;
            }
        }
    });
    received
}

/// The first line from now on whose message is `message`, within `within`;
/// panics, naming the message, if none comes.
pub fn wait_for(lines: &mpsc::Receiver<Value>, message: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line {message:?} from the café"));
        if line["fields"]["message"] == message {
            return line;
        }
    }
}
