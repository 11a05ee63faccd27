//! Parser: Tibber GraphQL price info (consumer prices incl. taxes).
