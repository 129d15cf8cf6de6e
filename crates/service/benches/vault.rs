//! Benchmarks of the vault's hot paths: unseal + view with a warm data-key cache, and ingest
//! into SQLite. Results and anchors: docs/PERFORMANCE.md.

fn main() {}
