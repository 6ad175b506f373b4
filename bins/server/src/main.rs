//! The mediajobs server binary.
fn main() {}
