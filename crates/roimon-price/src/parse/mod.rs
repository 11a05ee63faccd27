//! One module per publisher. Every parser takes the response body (and the
//! few request facts it needs to choose among what the body holds) and returns
//! [`Parsed`](crate::Parsed): raw slots in the publisher's own unit. Unit
//! conversion, validation and adders happen once, in
//! [`normalise`](crate::normalise).

pub mod awattar;
pub mod carbon;
pub mod csv;
pub mod energidataservice;
pub mod entsoe;
pub mod generic;
pub mod nordpool;
pub mod octopus;
pub mod tibber;
pub mod util;
