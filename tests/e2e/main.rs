//! End-to-end tests: real `wasm32-wasip2` components run by the real `flowhost` binary against
//! real PostgreSQL (127.0.0.1:5432, a fresh database per test) and real SQLite files.

mod support;

mod authoring;
mod batch;
mod cli;
mod components;
mod config_files;
mod db_stats;
mod fast_paths;
mod first_contact;
mod grants;
mod health;
mod hostile_deadlines;
mod hostile_grants;
mod hostile_pg;
mod hostile_sessions;
mod hostile_sqlite;
mod json_contract;
mod limits;
mod migrate_concurrency;
mod migration_corpus;
mod migrations;
mod operations;
mod pool_hygiene;
mod resilience;
mod rpa1;
mod sandbox;
mod secrets;
mod serve_support;
mod sqlserver;
mod sqlserver_support;
mod values;
