//! Parser: ENTSO-E Transparency Platform day-ahead prices (A44 XML).
