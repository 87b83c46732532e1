//! Readings from `/proc`: a process's memory, and the CPU time of a process or of every process
//! of one name (PostgreSQL's backends, RabbitMQ's VM).

/// A `<field>: <n> kB` line of a `/proc/<pid>/status` text, in KiB.
fn status_kib(status: &str, field: &str) -> Option<f64> {
    status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// `field` (`VmRSS`, `VmHWM`) of process `pid`, in MiB; panics where `/proc` cannot tell, since a
/// server that is gone has no reading worth reporting.
pub fn of(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status_kib(&status, field).unwrap() / 1024.0
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// The command name and user plus system CPU seconds of a `/proc/<pid>/stat` text.
fn name_and_cpu(stat: &str) -> Option<(&str, f64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let name = &stat[open + 1..close];
    // After the name: state is field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((name, ticks / TICKS_PER_S))
}

/// CPU seconds process `pid` has used so far (0 once it is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| name_and_cpu(&stat).map(|(_, cpu)| cpu))
        .unwrap_or(0.0)
}

/// CPU seconds used so far by every live process named `name` (`postgres`, `beam.smp`).
pub fn cpu_seconds_of_all(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
        .filter_map(|stat| name_and_cpu(&stat).filter(|(n, _)| *n == name).map(|(_, cpu)| cpu))
        .sum()
}
