//! Minimizing views: how much of a value is revealed, coarse to exact, per field kind.
