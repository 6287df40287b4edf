//! Bindings of chapter `geometry`.
