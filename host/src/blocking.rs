//! Blocking work (an fsync, encoding a million-key batch) called from async
//! code: the runtime moves its other tasks to another thread meanwhile, so
//! they keep running.

/// Runs `work` in place, telling a multi-threaded runtime first; a plain
/// call elsewhere (a single-threaded runtime in tests and tools, or no
/// runtime).
pub fn off_the_runtime<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_without_a_runtime() {
        assert_eq!(off_the_runtime(|| 7), 7);
    }

    #[tokio::test]
    async fn runs_on_a_single_threaded_runtime() {
        assert_eq!(off_the_runtime(|| 7), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_on_a_multi_threaded_runtime() {
        assert_eq!(off_the_runtime(|| 7), 7);
    }
}
