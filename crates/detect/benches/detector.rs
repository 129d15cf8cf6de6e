//! Offline replay speed of the detector alone: decoded entries of ordinary work through every
//! default rule.
fn main() {}
