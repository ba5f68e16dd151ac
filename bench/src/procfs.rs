//! What `/proc` says about a process: resident memory, open files, threads (its children are
//! counted by the harness, `mcp_gateway_tests::children`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

fn status(pid: u32) -> anyhow::Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))
}

fn status_field(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = status(pid)?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Resident memory in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_field(pid, "VmRSS")
}

/// Threads of the process.
pub fn threads(pid: u32) -> anyhow::Result<u64> {
    status_field(pid, "Threads")
}

/// Open file descriptors of the process.
pub fn open_fds(pid: u32) -> anyhow::Result<u64> {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    Ok(std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .count() as u64)
}

/// User plus system CPU time the process has used. `/proc` counts it in clock ticks of
/// `USER_HZ`, which Linux fixes at 100 for every architecture's user-space ABI.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace())
        // After the command name: state, ppid, ... utime is the 12th field, stime the 13th.
        .map(|fields| {
            fields
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum()
        })
        .with_context(|| format!("no CPU times in /proc/{pid}/stat"))?;
    Ok(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// Context switches of all the process's threads, voluntary and not: each is a thread going to
/// sleep or being preempted, so per call they count the hand-offs a relay makes.
pub fn context_switches(pid: u32) -> anyhow::Result<u64> {
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    let mut total = 0;
    for task in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        // A thread may end between the listing and the read.
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue;
        };
        total += status
            .lines()
            .filter_map(|line| line.split_once(':'))
            .filter(|(key, _)| key.ends_with("ctxt_switches"))
            .filter_map(|(_, value)| value.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_threads_and_files() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(threads(me).unwrap() >= 1);
        assert!(open_fds(me).unwrap() >= 3);
        // Spin until a clock tick has been charged: on a loaded machine 50 ms of wall time can
        // hold less than one 10 ms tick of CPU.
        let spin = std::time::Instant::now();
        while cpu_time(me).unwrap() == Duration::ZERO && spin.elapsed() < Duration::from_secs(30) {
            std::hint::black_box(0u64);
        }
        assert!(cpu_time(me).unwrap() > Duration::ZERO);
        assert!(context_switches(me).unwrap() > 0);
    }
}
