//! Parser: Nord Pool data portal day-ahead prices (JSON).
