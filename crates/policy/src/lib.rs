//! The discreet policy: what personal data is kept, for which purpose, for how long, and
//! who may use it. Pure parsing and validation; no I/O beyond reading the file it is given.
