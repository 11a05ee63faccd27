//! Parser: aWATTar market data (JSON, EUR/MWh, epoch milliseconds).
