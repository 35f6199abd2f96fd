//! One module per page.
pub mod account;
pub mod not_found;
pub mod settings;
pub mod status;
pub mod videos;
