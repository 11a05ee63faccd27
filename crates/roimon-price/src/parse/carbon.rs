//! Parser: Grid carbon intensity: Electricity Maps v3 and the UK Carbon Intensity API.
