//! The iptables-save parser on every Docker-written fixture: parse then serialize gives
//! the file back byte for byte.

mod common;

use iptables_docker::ruleset;

#[test]
#[ignore = "needs the fixtures in ../shared (cargo test -- --include-ignored)"]
fn every_fixture_round_trips_byte_exact() {
    let dir = common::fixtures_dir();
    assert!(
        dir.is_dir(),
        "{} is missing (CI has ../shared beside the clone); nothing was proven",
        dir.display()
    );
    let mut files = Vec::new();
    let mut dirs = vec![dir];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rules") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 500, "found only {} fixtures", files.len());
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let parsed = ruleset::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(
            parsed.to_string(),
            text,
            "{} does not round-trip",
            f.display()
        );
    }
    println!("parser: {} fixtures round-trip byte-exact", files.len());
}
