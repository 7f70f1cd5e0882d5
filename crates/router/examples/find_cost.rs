//! Measures `Routes::find` on a large project: `cargo run --release -p wws-router --example find_cost`.
//!
//! Builds 500 routes (300 static, 150 dynamic, 50 catch-alls) and prints the mean time per lookup
//! for a static hit, a dynamic hit, a catch-all hit and a miss.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use wws_router::Routes;

fn main() -> Result<(), wws_router::RouterError> {
    let mut files = Vec::new();
    for i in 0..300 {
        files.push(PathBuf::from(format!("section{}/page{i}.wasm", i % 10)));
    }
    for i in 0..150 {
        files.push(PathBuf::from(format!("api{i}/[id]/show.js")));
    }
    for i in 0..50 {
        files.push(PathBuf::from(format!("files{i}/[...path].js")));
    }
    let routes = Routes::new(files, "")?;
    const ROUNDS: u32 = 200_000;
    for (label, path) in [
        ("static hit (last static)", "/section9/page299"),
        ("dynamic hit (last dynamic)", "/api149/42/show"),
        ("catch-all hit (last tail)", "/files49/a/b/c.txt"),
        ("miss", "/nothing/here/at/all"),
    ] {
        let start = Instant::now();
        let mut hits = 0usize;
        for _ in 0..ROUNDS {
            hits += usize::from(routes.find(black_box(path)).is_some());
        }
        let per_call = start.elapsed() / ROUNDS;
        println!("{label:<28} {path:<24} {per_call:>10.2?} per find ({hits} hits)");
    }
    Ok(())
}
