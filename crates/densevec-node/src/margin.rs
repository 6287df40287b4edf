//! Bindings of chapter `margin`.
