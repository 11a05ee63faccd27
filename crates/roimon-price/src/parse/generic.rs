//! Parser: Generic HTTP JSON with a small field mapping.
