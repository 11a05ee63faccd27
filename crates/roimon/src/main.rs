//! The roimon binary (placeholder while the crates are wired).
fn main() {}
