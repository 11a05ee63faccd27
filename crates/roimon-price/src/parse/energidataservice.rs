//! Parser: Energi Data Service DayAheadPrices (Denmark).
