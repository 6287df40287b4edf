//! Bindings of chapter `regularizers`.
