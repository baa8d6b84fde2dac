//! The provider clients, their actors and the usage meter, against
//! 127.0.0.1 wiremock servers serving the providers' real response bodies
//! (`../shared/fixtures/`), and against generated input.

mod actor;
mod errors;
mod fixtures;
mod hardening;
mod keys;
mod properties;
mod resilience;
mod structured;
mod usage;
