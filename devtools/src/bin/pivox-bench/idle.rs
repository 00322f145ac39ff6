//! The idle cost: a connected daemon left alone, its CPU time and wake-ups read from `/proc`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Idle, Memory, Setup};

/// Runs the daemon with a button that is never pressed and, once it is connected (its log says
/// so) and has settled, measures its CPU time and context switches over `idle`.
pub(super) fn measure_idle(setup: &Setup<'_>, idle: Duration) -> Result<Idle, String> {
    let Setup { pivox, dir, name, .. } = *setup;
    let config = setup.config("-idle", "")?;
    let log_path = dir.join(format!("{name}-idle.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    println!("  {name} connected and idle ({:.0} s)...", idle.as_secs_f64());
    let mut child = std::process::Command::new(pivox)
        .args(["run", "--config"])
        .arg(&config)
        .env("PIVOX_LOG", "info")
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", pivox.display()))?;
    let pid = child.id();
    let measured = (|| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !read_bounded(&log_path)?.contains("ready: connected to") {
            if Instant::now() > deadline || child.try_wait().map_err(|e| e.to_string())?.is_some() {
                return Err(format!("{name}: not connected within 10 s: {}", read_bounded(&log_path)?));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The connection's earcon and first pre-roll frames are not idle.
        std::thread::sleep(Duration::from_secs(1));
        let before = ProcSample::take(pid)?;
        std::thread::sleep(idle);
        let after = ProcSample::take(pid)?;
        let mut idle = after.since(&before);
        idle.memory = memory(pid, pivox)?;
        Ok(idle)
    })();
    // SAFETY: kill(2) on our own child, which has not been waited for yet.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().map_err(|e| e.to_string())?;
    let idle = measured?;
    if !status.success() {
        return Err(format!("{name}: pivox run exited with {status} after SIGTERM"));
    }
    Ok(idle)
}

/// A whole small file (a /proc entry, the idle run's log), read at most 64 KiB of.
pub(super) fn read_bounded(path: &Path) -> Result<String, String> {
    pivox::files::read_text_bounded(path, 64 * 1024).map_err(|e| pivox::files::in_words(path, &e))
}

/// A process's CPU time and each thread's context switches at one instant.
pub(super) struct ProcSample {
    at: Instant,
    cpu: Duration,
    /// Thread id → (name, voluntary + involuntary context switches).
    switches: BTreeMap<u32, (String, u64)>,
}

impl ProcSample {
    /// CPU time is the threads' `schedstat` run time (nanoseconds) where the kernel keeps it,
    /// else `/proc/PID/stat`'s utime + stime (clock ticks, 10 ms).
    fn take(pid: u32) -> Result<Self, String> {
        let at = Instant::now();
        let tasks = Path::new("/proc").join(pid.to_string()).join("task");
        let mut switches = BTreeMap::new();
        let mut run_ns: Option<u64> = Some(0);
        for entry in std::fs::read_dir(&tasks).map_err(|e| format!("{}: {e}", tasks.display()))? {
            let dir = entry.map_err(|e| e.to_string())?.path();
            let Some(tid) = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()) else { continue };
            // A thread may end between the listing and the read: it is then left out.
            let Ok(status) = read_bounded(&dir.join("status")) else { continue };
            let field = |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
            let count = |key: &str| field(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let name = field("Name:").unwrap_or("?").to_string();
            switches.insert(tid, (name, count("voluntary_ctxt_switches:") + count("nonvoluntary_ctxt_switches:")));
            let ns: Option<u64> =
                read_bounded(&dir.join("schedstat")).ok().and_then(|s| s.split_whitespace().next()?.parse().ok());
            run_ns = run_ns.zip(ns).map(|(a, b)| a + b);
        }
        let cpu = match run_ns {
            Some(ns) => Duration::from_nanos(ns),
            None => {
                let stat = read_bounded(&Path::new("/proc").join(pid.to_string()).join("stat"))?;
                // Fields after the command name (which may hold spaces): utime and stime are
                // the 12th and 13th.
                let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
                let ticks: u64 = rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<u64>().ok()).sum();
                // SAFETY: sysconf has no preconditions.
                let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
                Duration::from_nanos(ticks * 1_000_000_000 / hz)
            }
        };
        Ok(Self { at, cpu, switches })
    }

    /// The cost between `before` and this sample. A thread started in between counts from zero.
    fn since(&self, before: &ProcSample) -> Idle {
        let seconds = (self.at - before.at).as_secs_f64();
        let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
        for (tid, (name, now)) in &self.switches {
            let then = before.switches.get(tid).map_or(0, |(_, n)| *n);
            *by_name.entry(name).or_default() += now.saturating_sub(then);
        }
        let total: u64 = by_name.values().sum();
        let mut threads: Vec<(String, f64)> =
            by_name.into_iter().map(|(name, n)| (name.to_string(), n as f64 / seconds)).collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        Idle {
            seconds,
            cpu_ms_per_min: self.cpu.saturating_sub(before.cpu).as_secs_f64() * 1000.0 * 60.0 / seconds,
            wakeups_per_s: total as f64 / seconds,
            threads,
            memory: Memory::default(),
        }
    }
}

/// What the resident memory of `pid` (running `binary`) is made of, from `/proc/PID/smaps`.
fn memory(pid: u32, binary: &Path) -> Result<Memory, String> {
    let path = Path::new("/proc").join(pid.to_string()).join("smaps");
    let smaps = pivox::files::read_text_bounded(&path, 4 << 20).map_err(|e| pivox::files::in_words(&path, &e))?;
    let binary = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
    let mut memory = Memory::default();
    let mut mapping = String::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: address range, perms, offset, device, inode, path.
            mapping = words.nth(4).unwrap_or("").to_string();
            continue;
        }
        let kib = || words.clone().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        match first {
            "Rss:" => {
                let kb = kib();
                memory.rss += kb;
                if Path::new(&mapping) == binary {
                    memory.binary += kb;
                } else if mapping.starts_with('/') {
                    memory.libraries += kb;
                }
            }
            "Anonymous:" => memory.anonymous += kib(),
            "Pss:" => memory.pss += kib(),
            _ => {}
        }
    }
    Ok(memory)
}

/// Waits for `pid` and returns its CPU time (user + system) and peak RSS in KiB.
pub(super) fn wait_with_usage(pid: i32) -> Result<(Duration, i64), String> {
    let mut status = 0;
    // SAFETY: rusage is plain data, fully written by wait4 on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; both pointers are valid for the call.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("pivox run exited with status {status}"));
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    Ok((tv(usage.ru_utime) + tv(usage.ru_stime), usage.ru_maxrss))
}
