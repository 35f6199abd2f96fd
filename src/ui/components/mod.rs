//! Pieces of the status page and the list.
pub mod artifacts;
pub mod attempts;
pub mod badge;
pub mod checkpoint_tree;
pub mod delete;
pub mod editor;
pub mod error_card;
pub mod pager;
pub mod posted;
pub mod timeline;
