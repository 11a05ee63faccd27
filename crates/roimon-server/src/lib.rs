//! roimon's HTTP side: the listener with its limits (`listener.rs`: its own
//! hyper 1 accept loop, connection caps, timeouts, TLS), the router and
//! every endpoint's handler (`router.rs`: `/metrics`, the summary, report,
//! window and plan endpoints, health), the push endpoint (`push.rs`: the door
//! that parses and bounds a batch, then hands it to the sampler's inbox), the
//! web config (`web_config/`: TLS and basic auth, reloaded on change), the
//! status page (`status_page/`) and the planner thread whose plans the
//! router serves (`plan_daemon.rs`). It reads what the daemon publishes and
//! never owns the engine.

pub mod listener;
pub mod plan_daemon;
pub mod push;
pub mod router;
pub mod status_page;
pub mod web_config;
