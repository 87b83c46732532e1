//! The binary's memory allocator: mimalloc, built with transparent huge pages off for the
//! process (`.cargo/config.toml`'s `CFLAGS`). Where the kernel's THP setting is `always`, 2 MiB
//! pages would otherwise back mimalloc's large regions and double the idle RSS (BENCHMARKS.md).
//! (libmimalloc-sys's own `no_thp` feature only skips mimalloc's `madvise`; the kernel's
//! `always` still applies. The define turns THP off for the whole process at mimalloc's start.)

use crate::process::Binary;

/// `THP_enabled` of `/proc/<pid>/status`: 0 once the process turned huge pages off.
fn thp_enabled(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("THP_enabled:")).map(|v| v.trim().to_owned())
}

#[tokio::test]
async fn the_binary_runs_with_transparent_huge_pages_off_and_holds_none() {
    // A plain child of this test has them on: the binary's 0 below is its own doing, not
    // inherited.
    let mut plain = std::process::Command::new("sleep").arg("5").spawn().unwrap();
    assert_eq!(thp_enabled(plain.id()).as_deref(), Some("1"), "a plain process should have THP on");
    let _ = plain.kill();
    let _ = plain.wait();

    let binary = Binary::start(&[]).await;

    assert_eq!(thp_enabled(binary.pid()).as_deref(), Some("0"), "THP should be off for the process");
    let memory = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", binary.pid())).unwrap();
    let huge = memory.lines().find_map(|l| l.strip_prefix("AnonHugePages:")).map(str::trim);
    assert_eq!(huge, Some("0 kB"), "no huge page should back the binary's memory, not even from before main");
}
