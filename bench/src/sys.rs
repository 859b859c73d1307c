//! Process-level plumbing: CPU pinning, file-descriptor limits, RSS and a
//! description of the machine.

use std::io;

/// CPU time this process has used so far (user and system, all threads),
/// in seconds: `CLOCK_PROCESS_CPUTIME_ID`.
pub fn cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the kernel to fill in.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// CPU time process `pid` has used so far, all its threads, in seconds:
/// the sum of the first field (ns on a CPU) of
/// `/proc/<pid>/task/*/schedstat`. `None` when it cannot be read.
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bitmask the kernel fills in; the size passed
    // is its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread (and every thread it starts afterwards) to `cpu`.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: as above; `cpu` is checked against the set's size.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::other("cpu index out of range"));
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            let _ = libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        }
        r.rlim_cur
    }
}

/// Resident set size of this process, in bytes (from /proc/self/statm).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// Bytes the allocator has handed out and not taken back (glibc's
/// `mallinfo2`: small chunks in use plus mmapped chunks): live heap,
/// without fragmentation or freed memory not yet returned to the OS.
pub fn heap_in_use() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

/// One line about the CPU, the core count, memory and the kernel.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let mhz = field("cpu MHz")
        .map(|m| format!(", {m} MHz"))
        .unwrap_or_default();
    let logical = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let flags = field("flags").unwrap_or_default();
    let simd: Vec<&str> = ["sse4_2", "avx2", "avx512f", "avx512bw"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!(", {:.1} GiB RAM", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!(", Linux {}", s.trim()))
        .unwrap_or_default();
    format!(
        "{model}{mhz}, {logical} logical CPUs (allowed: {:?}){mem}{kernel}; SIMD: {}",
        allowed_cpus(),
        if simd.is_empty() {
            "none listed".into()
        } else {
            simd.join(" ")
        }
    )
}

/// The 1, 5 and 15 minute load averages (from /proc/loadavg).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// This process's nice value.
pub fn nice() -> i32 {
    // SAFETY: getpriority has no memory preconditions; errno is not
    // consulted (-1 is a valid answer and a failure is unlikely).
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

/// Sets a socket's TCP congestion control (`TCP_CONGESTION`, socket2's
/// `set_tcp_congestion`), e.g. `"cubic"`; the algorithm must be available
/// (see `/proc/sys/net/ipv4/tcp_available_congestion_control`). The error
/// names it.
pub fn set_congestion_control(sock: &impl std::os::fd::AsFd, name: &str) -> io::Result<()> {
    socket2::SockRef::from(sock)
        .set_tcp_congestion(name.as_bytes())
        .map_err(|e| io::Error::new(e.kind(), format!("TCP congestion control {name:?}: {e}")))
}

/// Sets a socket's read low-water mark (`SO_RCVLOWAT`): it reports itself
/// readable once `bytes` are waiting (socket2 has no setter for it).
pub fn set_read_low_water(sock: &impl std::os::fd::AsRawFd, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "low-water mark too large"))?;
    // SAFETY: a descriptor the caller's socket owns, borrowed for the call,
    // and a pointer to a live c_int with its size, as SO_RCVLOWAT takes.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The system's default TCP congestion control (Linux), if readable.
pub fn default_congestion_control() -> Option<String> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The socket's congestion control as the kernel reports it.
    fn congestion_control(sock: &std::net::TcpListener) -> String {
        let name = socket2::SockRef::from(sock).tcp_congestion().unwrap();
        String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap_or(&name)).into_owned()
    }

    #[test]
    fn the_servers_congestion_control_is_set_or_refused() {
        let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // Reno is built into every Linux kernel.
        set_congestion_control(&sock, "reno").unwrap();
        assert_eq!(congestion_control(&sock), "reno");
        let e = set_congestion_control(&sock, "no-such-algorithm").unwrap_err();
        assert!(e.to_string().contains("no-such-algorithm"), "{e}");
        assert_eq!(congestion_control(&sock), "reno");
        assert!(default_congestion_control().is_some_and(|d| !d.is_empty()));
    }

    #[test]
    fn the_read_low_water_mark_is_set() {
        use std::os::fd::AsRawFd;
        let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_read_low_water(&sock, 300_000).unwrap();
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a live descriptor, a c_int and its size.
        let rc = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&raw mut v).cast(),
                &raw mut len,
            )
        };
        assert_eq!((rc, v), (0, 300_000));
        assert!(set_read_low_water(&sock, usize::MAX).is_err());
    }
}
