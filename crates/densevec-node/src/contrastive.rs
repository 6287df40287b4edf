//! Bindings of chapter `contrastive`.
