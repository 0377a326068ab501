//! The four ways a text record names its fields. Each mode fills a
//! [`Values`](crate::field::Values) array from one line; the shared
//! [`FlowBuilder`](crate::field::FlowBuilder) does the conversions.

pub mod delimited;
pub mod json;
pub mod kv;
pub mod regex;
