//! A component of `flowlink:parser@2.0.0`: what a plugin built for a future,
//! incompatible contract looks like to this host. The tests expect it refused
//! with both versions named.

wit_bindgen::generate!({ world: "flow-parser", path: "wit" });

struct FutureParser;

impl exports::flowlink::parser::parser::Guest for FutureParser {
    fn info() -> String {
        "future".to_owned()
    }
}

// Export names hold `:`, which a native link refuses: wasm32 only.
#[cfg(target_arch = "wasm32")]
export!(FutureParser);
