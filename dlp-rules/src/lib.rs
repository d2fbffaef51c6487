//! DLP rule packs and engine.
