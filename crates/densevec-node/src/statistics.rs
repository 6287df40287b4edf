//! Bindings of chapter `statistics`.
