//! The Graph emulator of tests/common/graph.rs as a process, for bench/entra_bench.sh:
//!
//!   graph_emulator --serve USERS SECRET
//!
//! prints its base URL, then serves USERS users of the standard tenant until its standard
//! input closes. Run without arguments (as `cargo test` does), it checks that it answers.

mod common;

use common::graph::Graph;
use std::io::{BufRead, Read, Write};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [serve, users, secret] = args.as_slice() {
        if serve == "--serve" {
            let users: usize = users.parse().expect("USERS is a number");
            let g = Graph::start(secret, users);
            println!("{}", g.base());
            std::io::stdout().flush().unwrap();
            // Serves until the bench closes our standard input.
            for _ in std::io::stdin().lock().lines() {}
            return;
        }
    }
    // Self-check: a request without a token is refused with 401.
    let g = Graph::start("s", 3);
    let addr = g.base().trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "GET /v1.0/users HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    println!("1 passed, 0 failed");
}
