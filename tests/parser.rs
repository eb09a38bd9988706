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
    let files = common::fixture_files();
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
