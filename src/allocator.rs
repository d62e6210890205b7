//! Handing the heap memory a cycle has freed back to the operating system.
//!
//! A cycle over 10,000 SLOs allocates tens of megabytes for a moment (Prometheus answers, the
//! evaluations, the store's statements) and frees them again. glibc keeps what a thread frees
//! in that thread's arena for reuse and gives memory back on its own only from the top of a
//! heap, so `serve`'s resident set stayed near the high-water mark of every worker thread's
//! arena (docs/benchmarks.md, "serve's memory"). `malloc_trim(0)` after each cycle returns the
//! free pages of every arena.
//!
//! Owns: that call. With another C library it does nothing.

/// Returns the allocator's free pages to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: `malloc_trim` takes no pointer and works only on glibc's own allocator state,
    // under that allocator's locks: it may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns the allocator's free pages to the operating system (nothing to do here).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}
