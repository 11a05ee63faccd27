//! Parser: CSV price sheet (a contract's prices).
