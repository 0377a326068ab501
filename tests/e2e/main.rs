//! The end-to-end scenarios, one module per subject, in one test binary:
//! one link instead of one per file (minutes of a fresh build), run by
//! `cargo test` with the threads it gives any test binary.

mod aggregation_bounds;
mod aggregation_direction;
mod bad_input_under_load;
mod cloudwatch_logs;
mod config_errors;
mod config_schema;
mod crash_campaign;
mod daemon_formats;
mod daemon_pipeline;
mod decode_captures;
mod decode_linktypes;
mod decode_netflow_family;
mod decode_sflow;
mod emulator_page;
mod example_parsers;
mod file_tail;
mod flowlink_config;
mod hot_swap;
mod json_logs;
mod kafka;
mod memory_bounds;
mod packaging;
mod pce_tls;
mod plugin_loading;
mod plugin_sandbox;
mod reload;
mod replay;
mod spool_outage;
mod state_survives;
mod stock_pce;
mod syslog_text;
mod text_formats;
mod udp_listener;
