//! Keeps a pooled memory's dirty pages in few enough runs for wasmtime to restore them all.
//!
//! After a request, wasmtime's pooling allocator resets a linear memory by finding its private
//! pages with one `PAGEMAP_SCAN` and copying the image back over them. It takes at most 32
//! runs of such pages (`MAX_REGIONS` in wasmtime 48); everything past the 32nd run is
//! decommitted, and the next request copy-on-write faults those pages in again: a fault each,
//! plus a TLB-shootdown IPI while both CPUs serve. A JS request can write pages all over the
//! snapshot's heap: before the engine's request arena (`engines/js/src/arena.rs`), a hello
//! wrote about 100 pages in 48 runs; it now writes 12, but a request that allocates a lot
//! still writes hundreds. Making the pages in the narrowest gaps between runs private too
//! joins runs until wasmtime keeps them all, so the pages stay resident, the memory is
//! restored by copying them back, and no request faults.
//!
//! Private pages stay private across resets (wasmtime copies over them), so after the first
//! request on a slot there is usually nothing to join. Once a worker's requests have needed
//! nothing for a while, its [`Coalescer`] reads the page map after one request in eight only,
//! and after one in 64 once those looks found nothing either (a read is ~10 % of a JS
//! request: one in eight still cost 1.5 % of a JS hello's CPU). As soon as one needed joining,
//! it looks after every request again: a slot that was missed faults a few pages per request
//! until it is looked at.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

const PAGE: usize = 4096;

/// Runs wasmtime's reset keeps resident (32), less a margin for runs this view might not
/// count the way the kernel's scan does.
const MAX_RUNS: usize = 30;

/// Memories larger than this are left alone: reading their page map on every request would
/// cost more than it saves, and wasmtime keeps at most 8 MiB resident (`KEEP_RESIDENT`).
const MAX_MEMORY: usize = 16 << 20;

/// One `/proc/self/pagemap` entry bit each (`Documentation/admin-guide/mm/pagemap.rst`).
const PRESENT: u64 = 1 << 63;
const FILE_OR_SHARED: u64 = 1 << 61;
const EXCLUSIVE: u64 = 1 << 56;

/// This process's page map, opened once; `None` where the kernel has none (then nothing is
/// done and wasmtime's reset works as before).
fn pagemap() -> Option<&'static File> {
    static PAGEMAP: OnceLock<Option<File>> = OnceLock::new();
    PAGEMAP
        .get_or_init(|| File::open("/proc/self/pagemap").ok())
        .as_ref()
}

/// Looks in a row that found nothing to join before a worker's memories are looked at less
/// often, and as many again before they are looked at rarely.
const SETTLED: u32 = 64;

/// Once settled, the page map is read after one request in this many.
const SETTLED_EVERY: u32 = 8;

/// Settled for long, after one request in this many.
const RARELY_EVERY: u32 = 64;

/// Decides, per worker, after which requests [`coalesce`] runs.
#[derive(Debug, Default)]
pub(crate) struct Coalescer {
    /// Looks in a row that found nothing to join (saturates at twice [`SETTLED`]).
    quiet: AtomicU32,
    /// Requests seen while settled.
    seen: AtomicU32,
}

impl Coalescer {
    /// Called after a request ran in `memory`, before wasmtime resets it.
    pub(crate) fn after_run(&self, memory: &mut [u8]) {
        let every = match self.quiet.load(Relaxed) {
            q if q < SETTLED => 1,
            q if q < 2 * SETTLED => SETTLED_EVERY,
            _ => RARELY_EVERY,
        };
        if every > 1 && !self.seen.fetch_add(1, Relaxed).is_multiple_of(every) {
            return;
        }
        if coalesce(memory) {
            self.quiet.store(0, Relaxed);
        } else {
            let _ = self
                .quiet
                .fetch_update(Relaxed, Relaxed, |q| (q < 2 * SETTLED).then_some(q + 1));
        }
    }
}

/// Joins the runs of private pages in `memory` (a page-aligned linear memory) until there are
/// at most [`MAX_RUNS`], by writing back one byte of each page in the narrowest gaps. The
/// guest's view of memory does not change. Returns whether any page was written.
pub(crate) fn coalesce(memory: &mut [u8]) -> bool {
    if memory.len() > MAX_MEMORY || !(memory.as_ptr() as usize).is_multiple_of(PAGE) {
        return false;
    }
    let Some(runs) = private_runs(memory) else {
        return false;
    };
    let gaps = gaps_to_fill(&runs);
    for &(start, end) in &gaps {
        for page in start..end {
            let at = page * PAGE;
            // `black_box` keeps the compiler from dropping a store of the value just read.
            memory[at] = std::hint::black_box(memory[at]);
        }
    }
    !gaps.is_empty()
}

/// The runs of present, private (anonymous, not shared) pages of `memory`, as page ranges.
fn private_runs(memory: &[u8]) -> Option<Vec<(usize, usize)>> {
    let pages = memory.len() / PAGE;
    let mut entries = vec![0u8; pages * 8];
    let first = (memory.as_ptr() as usize / PAGE) as u64;
    pagemap()?.read_exact_at(&mut entries, first * 8).ok()?;
    let mut runs = Vec::new();
    let mut start = None;
    for (page, entry) in entries.chunks_exact(8).enumerate() {
        let entry = u64::from_le_bytes(entry.try_into().ok()?);
        let private = entry & (PRESENT | FILE_OR_SHARED | EXCLUSIVE) == PRESENT | EXCLUSIVE;
        match (private, start) {
            (true, None) => start = Some(page),
            (false, Some(s)) => {
                runs.push((s, page));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, pages));
    }
    Some(runs)
}

/// The narrowest gaps between `runs` whose filling leaves at most [`MAX_RUNS`] runs.
fn gaps_to_fill(runs: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let Some(excess) = runs.len().checked_sub(MAX_RUNS).filter(|&n| n > 0) else {
        return Vec::new();
    };
    let mut gaps: Vec<(usize, usize)> = runs.windows(2).map(|w| (w[0].1, w[1].0)).collect();
    gaps.sort_by_key(|&(start, end)| end - start);
    gaps.truncate(excess);
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settled_worker_looks_at_one_request_in_eight_then_in_64() {
        let c = Coalescer::default();
        // An unaligned, too small "memory": `coalesce` finds nothing to do.
        let mut memory = [0u8; 8];
        for _ in 0..SETTLED {
            c.after_run(&mut memory);
        }
        assert_eq!(c.quiet.load(Relaxed), SETTLED);
        // Settled: one look in eight requests.
        for _ in 0..SETTLED_EVERY * 3 {
            c.after_run(&mut memory);
        }
        assert_eq!(c.quiet.load(Relaxed), SETTLED + 3);
        for _ in 0..SETTLED_EVERY * (SETTLED - 3) {
            c.after_run(&mut memory);
        }
        assert_eq!(c.quiet.load(Relaxed), 2 * SETTLED);
        // Settled for long: one look in 64.
        for _ in 0..RARELY_EVERY * 2 {
            c.after_run(&mut memory);
        }
        assert_eq!(c.quiet.load(Relaxed), 2 * SETTLED, "saturates");
        assert_eq!(
            c.seen.load(Relaxed),
            SETTLED_EVERY * SETTLED + RARELY_EVERY * 2
        );
    }

    #[test]
    fn few_runs_are_left_alone() {
        let runs: Vec<_> = (0..MAX_RUNS).map(|i| (i * 10, i * 10 + 1)).collect();
        assert!(gaps_to_fill(&runs).is_empty());
        assert!(gaps_to_fill(&[]).is_empty());
    }

    #[test]
    fn the_narrowest_gaps_are_filled_until_few_enough_runs_remain() {
        // Runs one page wide; gaps alternate 1 and 5 pages, then two wide ones.
        let mut runs = Vec::new();
        let mut at = 0;
        for i in 0..MAX_RUNS + 3 {
            runs.push((at, at + 1));
            at += 1 + if i % 2 == 0 { 1 } else { 5 };
        }
        let filled = gaps_to_fill(&runs);
        assert_eq!(filled.len(), 3);
        assert!(filled.iter().all(|&(s, e)| e - s == 1), "{filled:?}");
    }

    #[test]
    fn written_pages_are_found_and_their_gaps_joined() {
        if pagemap().is_none() {
            return; // no page map here: nothing to check, `coalesce` does nothing
        }
        // A linear memory as wasmtime maps it: nothing present until touched.
        let pages = 2 * (MAX_RUNS + 5);
        let mut store = wasmtime::Store::<()>::default();
        let ty = wasmtime::MemoryType::new(u32::try_from(pages * PAGE / 65536 + 1).unwrap(), None);
        let memory = wasmtime::Memory::new(&mut store, ty).unwrap();
        let memory = &mut memory.data_mut(&mut store)[..pages * PAGE];
        for page in (0..pages).step_by(2) {
            memory[page * PAGE] = 1;
        }
        let before = private_runs(memory).unwrap();
        assert_eq!(before.len(), MAX_RUNS + 5, "{before:?}");
        assert!(coalesce(memory));
        assert!(!coalesce(memory), "joined runs must stay joined");
        let after = private_runs(memory).unwrap();
        assert_eq!(after.len(), MAX_RUNS, "{after:?}");
        // Contents unchanged.
        assert!(memory.chunks(PAGE).step_by(2).all(|p| p[0] == 1));
        assert!(memory.iter().filter(|&&b| b != 0).count() == pages / 2);
    }
}
