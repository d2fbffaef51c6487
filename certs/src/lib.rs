//! Per-bottle CA and leaf issuance.
