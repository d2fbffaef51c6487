//! egress-proxy library.
