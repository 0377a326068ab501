//! Export-clock arithmetic shared by the NetFlow versions and the
//! template engine.

/// Unix milliseconds of a router-uptime timestamp (`switched`), given the
/// export header's uptime and wall clock. Wrapping arithmetic: uptime is a
/// 32-bit millisecond counter that wraps every 49.7 days, and a flow that
/// started just before the wrap has `switched` > `sys_uptime`.
pub fn uptime_to_unix_ms(export_unix_ms: u64, sys_uptime: u32, switched: u32) -> u64 {
    let age_ms = sys_uptime.wrapping_sub(switched);
    export_unix_ms.saturating_sub(u64::from(age_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_conversion_survives_wrap() {
        // Export at uptime 1000 ms; the flow began 3000 ms earlier, before the wrap.
        let switched = 1000u32.wrapping_sub(3000);
        assert_eq!(uptime_to_unix_ms(1_000_000, 1000, switched), 997_000);
        assert_eq!(uptime_to_unix_ms(1_000_000, 5000, 4000), 999_000);
    }
}
