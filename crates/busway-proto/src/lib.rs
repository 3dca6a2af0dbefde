//! The bus protocol.
