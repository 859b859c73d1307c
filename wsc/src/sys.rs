//! Process limits.

/// Raises the soft limit on open files to the hard limit (so `bench` and
/// `serve` can hold 10,000+ connections); returns the limit in force.
pub fn raise_nofile() -> u64 {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) != 0 {
                return 0;
            }
            if lim.rlim_cur < lim.rlim_max {
                let want = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const want) == 0 {
                    lim = want;
                }
            }
        }
        #[allow(clippy::useless_conversion)]
        u64::from(lim.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        0
    }
}
