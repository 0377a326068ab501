//! Typed `parser.properties`: the host hands [`crate::Parser::open`] the
//! consumer's properties as a JSON object; [`properties`] turns it into the
//! plugin's own settings struct, so a misspelt key is refused by name
//! instead of silently ignored.

use serde::de::DeserializeOwned;

/// Reads `config` (the JSON object `open` receives) into `T`.
///
/// Put `#[serde(deny_unknown_fields)]` on `T` and an unknown key is an
/// error naming it and the keys `T` takes; the host shows the message with
/// the consumer's name.
///
/// ```
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Settings {
///     #[serde(default = "default_separator")]
///     separator: char,
/// }
/// fn default_separator() -> char { '|' }
///
/// let ok: Settings = flowlink_plugin_sdk::properties(r#"{"separator": ";"}"#).unwrap();
/// assert_eq!(ok.separator, ';');
/// let err = flowlink_plugin_sdk::properties::<Settings>(r#"{"seperator": ";"}"#).err().unwrap();
/// assert!(err.contains("unknown field `seperator`"), "{err}");
/// ```
pub fn properties<T: DeserializeOwned>(config: &str) -> Result<T, String> {
    serde_json::from_str(config).map_err(|e| format!("parser.properties: {e}"))
}
