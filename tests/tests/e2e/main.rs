//! End-to-end tests, one module per feature, linked into one test binary:
//! one link instead of one per file, and the test threads share every
//! module's waits (most tests wait on a daemon, not on the CPU).

mod aggregation_bounds;
mod aggregation_direction;
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
mod json_logs;
mod kafka;
mod packaging;
mod pce_tls;
mod plugin_loading;
mod plugin_sandbox;
mod plugin_sdk;
mod reload;
mod replay;
mod scale_out;
mod spool_outage;
mod state_survives;
mod stock_pce;
mod syslog_text;
mod text_formats;
mod udp_listener;
