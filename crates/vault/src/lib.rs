//! Everything discreet persists.
