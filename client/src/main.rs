//! `cafe`: the café's command-line client (being built; see the README).

fn main() {}
