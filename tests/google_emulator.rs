//! The Google Workspace emulator of tests/common/google.rs as a process, for
//! bench/google_bench.sh:
//!
//!   google_emulator --serve USERS KEY_FILE
//!
//! writes the service account's key to KEY_FILE, prints its base URL and a token for a plain
//! client (one line each), then serves USERS users of the standard domain until its standard
//! input closes. Run without arguments (as `cargo test` does), it checks that it answers.

mod common;

use common::google::Workspace;
use std::io::{BufRead, Read, Write};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [serve, users, key] = args.as_slice() {
        if serve == "--serve" {
            let users: usize = users.parse().expect("USERS is a number");
            let w = Workspace::start(users);
            w.write_key(std::path::Path::new(key));
            println!("{}\n{}", w.base(), w.mint_token());
            std::io::stdout().flush().unwrap();
            // Serves until the bench closes our standard input.
            for _ in std::io::stdin().lock().lines() {}
            return;
        }
    }
    // Self-check: a request without a token is refused with 401.
    let w = Workspace::start(3);
    let addr = w.base().trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "GET /admin/directory/v1/users?customer=my_customer HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    println!("1 passed, 0 failed");
}
