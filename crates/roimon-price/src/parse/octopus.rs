//! Parser: Octopus Energy Agile unit rates (JSON, pence/kWh, paginated).
