//! Handing the heap memory a cycle has freed back to the operating system.
//!
//! A cycle over 10,000 SLOs allocates tens of megabytes for a moment (Prometheus answers, the
//! evaluations, the store's statements) and frees them again. glibc keeps what a thread frees
//! in that thread's arena for reuse and gives memory back on its own only from the top of a
//! heap, so `serve`'s resident set stayed near the high-water mark of every worker thread's
//! arena (docs/benchmarks.md, "serve's memory"). `malloc_trim(0)` after each cycle returns the
//! free pages of every arena.
//!
//! glibc also gives each thread that allocates at the same moment as another an arena of its
//! own, up to eight per core; each keeps its own free pages and fragments. burnguard's
//! allocation-heavy work is one cycle at a time, so two arenas are enough: 12 MiB less
//! resident at 10,000 SLOs (docs/benchmarks.md). `MALLOC_ARENA_MAX`, when set, still decides.
//!
//! Owns: those calls. With another C library they do nothing.

/// Returns the allocator's free pages to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: `malloc_trim` takes no pointer and works only on glibc's own allocator state,
    // under that allocator's locks: it may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How many arenas glibc may make, unless `MALLOC_ARENA_MAX` says otherwise.
pub const ARENAS: i32 = 2;

/// Limits glibc to [`ARENAS`] arenas (before the threads that would make more start).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: `mallopt` takes no pointer and sets a parameter of glibc's own allocator under
    // its lock; M_ARENA_MAX is a documented parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Limits the allocator's arenas (nothing to do here).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}

/// Returns the allocator's free pages to the operating system (nothing to do here).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}
