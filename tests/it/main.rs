//! Every integration test in one binary (one link instead of five): the storage and pipeline
//! suites, the trust tests, the reference model of SPEC §4, and the drills against the real server.
//! Each runs on SQLite, and the ones that use `common::env` run on PostgreSQL too when
//! `REELSMITH_TEST_DATABASE_URL` is set (`make test-postgres`).
#![allow(dead_code)]

mod accounts;
mod common;
mod drills;
mod live;
mod model;
mod pages;
mod pipeline;
mod providers;
mod queries;
mod scaleout;
mod storage;
mod trust;
mod web;
