//! Memory allocator settings applied at start-up.
//!
//! radroute holds 10 MB data sets on many threads at once (associations, processing workers,
//! forward workers). glibc gives each thread that allocates concurrently an arena of its own, up
//! to eight per core, and memory freed in one arena is not reused by another: peak RSS rose past
//! 580 MB at 4-8 concurrent associations. Two arenas keep it under 450 MB at the same throughput
//! (docs/performance.md). An operator's own `MALLOC_ARENA_MAX` wins.

/// Limits glibc's malloc to two arenas unless `MALLOC_ARENA_MAX` is set. Call first thing in
/// `main`, before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
