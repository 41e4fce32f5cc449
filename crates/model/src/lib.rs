//! Recommenders as pure data structures: learn, unlearn, recommend, explain; evaluation
//! metrics. No I/O, no clock, no crypto.
