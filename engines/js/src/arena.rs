//! The request arena: in a fresh instance, what a request allocates is laid out in one zeroed
//! region, one block after the other.
//!
//! A fresh instance serves one request from the snapshot and is thrown away, and what a
//! request costs is mostly the memory pages it writes: the host copies each one in and resets
//! it afterwards. Through malloc (and QuickJS' 4 KiB small-block arenas), a request's blocks
//! land all over the snapshot's heap, and every malloc and free rewrites the free lists around
//! them: a hello request wrote 55 pages, most of them for a few bytes. From the request arena
//! it writes 12.
//!
//! So, once a request begins ([`begin`]), blocks come from the arena, which loading reserved
//! last ([`reserve`]). A freed block is taken back when it is the latest (a growing string
//! buffer stays in place), else kept on the free list of its size for the next block of that
//! size. Blocks from the snapshot's heap are never handed back to malloc, whose bookkeeping
//! would write its pages again. A request that fills the arena goes on with malloc, as loading does, and as reuse
//! mode does throughout: there, one instance serves many requests and must free what they
//! leave, so no arena is reserved. The trade: a request that fills the arena (one that keeps
//! more than ~1 MiB alive) writes some 20 % more pages than it would through malloc alone,
//! which is little next to its run time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::c_void;

use rquickjs::qjs;
use std::ptr;

/// The arena's size: some 150 times what a hello request takes from it (~7 KiB), so that
/// only requests that allocate a lot go on to malloc. Not larger: pages never touched cost
/// no copy, but every reset scans the page tables of the whole memory (1 MiB served 3.5 %
/// more hello requests than 4 MiB).
pub const SIZE: usize = 1 << 20;

/// Blocks larger than this that do not fit in what is left of the arena go to malloc, and
/// the arena goes on serving smaller ones.
const LARGE: usize = SIZE / 16;

/// A wasm page of the host's memory reset (4 KiB): what a request writes is copied back a page at
/// a time.
const PAGE: usize = 4096;

/// Alignment of every arena allocation: QuickJS' largest scalar is 8 bytes (a JSValue, a
/// double), as are Rust's on wasm32; larger alignments go to malloc.
const ALIGN: usize = 8;

/// Each allocation is preceded by its size (for `realloc` and `malloc_usable_size`).
const HEADER: usize = 8;

/// Blocks up to this size are sized to the byte (in multiples of ALIGN); larger ones are
/// rounded up to one of four sizes per doubling (at most 25 % more than asked), so that a
/// freed block fits the next request of about its size.
const EXACT: usize = 1024;

/// Sizes with a free list: the EXACT ones, then four per doubling from EXACT to SIZE.
const CLASSES: usize = EXACT / ALIGN + 4 * (SIZE.ilog2() - EXACT.ilog2()) as usize;

/// The size a block of `size` bytes is given, and the index of its free list (none for blocks
/// larger than the arena).
fn class_of(size: usize) -> (usize, Option<usize>) {
    if size <= EXACT {
        let rounded = size.max(1).next_multiple_of(ALIGN);
        return (rounded, Some(rounded / ALIGN - 1));
    }
    // size lies in (2^b, 2^(b+1)]: steps of 2^b / 4.
    let b = (size - 1).ilog2();
    let step = 1usize << (b - 2);
    let rounded = size.next_multiple_of(step);
    let index = EXACT / ALIGN + 4 * (b - EXACT.ilog2()) as usize + rounded / step - 5;
    (rounded, (index < CLASSES).then_some(index))
}

unsafe extern "C" {
    fn malloc(size: usize) -> *mut u8;
    fn free(ptr: *mut u8);
    fn realloc(ptr: *mut u8, size: usize) -> *mut u8;
    fn malloc_usable_size(ptr: *mut u8) -> usize;
}

/// The arena's bounds and cursor; all zero until [`reserve`], and inactive until [`begin`].
struct Arena {
    start: Cell<usize>,
    end: Cell<usize>,
    /// Where the next allocation goes.
    next: Cell<usize>,
    /// Everything from here to `end` has never been handed out, so it is still zero.
    untouched: Cell<usize>,
    /// The latest allocation, which a free or a realloc may take back or grow in place.
    last: Cell<usize>,
    /// Zero while loading; once a request began, the end of the memory the snapshot holds:
    /// malloc's blocks below it are never freed.
    heap_end: Cell<usize>,
    /// Told when the arena fills up (see [`begin`]).
    on_full: Cell<Option<fn()>>,
    /// The heads of the free lists; a free block holds the address of the next one.
    free: [Cell<usize>; CLASSES],
}

// SAFETY: the engine is a wasm32-wasip1 command, which has exactly one thread.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena {
    start: Cell::new(0),
    end: Cell::new(0),
    next: Cell::new(0),
    untouched: Cell::new(0),
    last: Cell::new(0),
    heap_end: Cell::new(0),
    on_full: Cell::new(None),
    free: [const { Cell::new(0) }; CLASSES],
};

/// Sets the arena aside, last thing while loading a fresh-instance engine (in reuse mode there
/// is none). Its pages stay zero, so the snapshot does not hold them.
pub fn reserve() {
    let a = &ARENA;
    if a.start.get() != 0 {
        return;
    }
    // SAFETY: plain malloc; the block is never freed.
    let start = unsafe { malloc(SIZE + PAGE) } as usize;
    if start == 0 {
        return;
    }
    // On a page boundary: a small request's blocks then fill one page, not the ends of two.
    let start = start.next_multiple_of(PAGE);
    // malloc may have reused memory loading wrote (a freed parse buffer): `untouched` needs
    // zeros. Zero pages cost the snapshot nothing.
    // SAFETY: [start, start + SIZE) lies in the block.
    unsafe { ptr::write_bytes(start as *mut u8, 0, SIZE) };
    a.start.set(start);
    a.end.set(start + SIZE);
    a.next.set(start);
    a.untouched.set(start);
}

/// Starts serving a request from the arena (false, and a no-op, when none was reserved);
/// `on_full` runs if the arena fills up, after which everything is allocated and freed by
/// malloc again.
pub fn begin(on_full: fn()) -> bool {
    let a = &ARENA;
    if a.start.get() == 0 {
        return false;
    }
    a.on_full.set(Some(on_full));
    a.heap_end
        .set(core::arch::wasm32::memory_size::<0>() * 65536);
    true
}

/// Stops serving from the arena until the next [`begin`] (loading used it for the first
/// blocks a request fills in); what it handed out stays valid.
pub fn pause() {
    ARENA.heap_end.set(0);
    ARENA.on_full.set(None);
}

/// Ends arena allocation for the rest of the request: a request that allocates this much is
/// better served by malloc, which reuses any freed block (the arena reuses only small ones).
/// The blocks the arena handed out stay valid.
fn exhausted() {
    let a = &ARENA;
    a.heap_end.set(0);
    if let Some(on_full) = a.on_full.take() {
        on_full();
    }
}

/// A block malloc (or System) handed out while the arena is active. If it lies below
/// `heap_end`, [`from_snapshot`] would take it for one of the snapshot's blocks and never free
/// it (nor realloc it in place): the request would go on taking fresh pages of the snapshot's
/// free space. So the arena ends there, and from then on every malloc block is freed.
fn from_malloc(block: *mut u8) -> *mut u8 {
    if !block.is_null() && from_snapshot(block) {
        exhausted();
    }
    block
}

fn active() -> bool {
    ARENA.heap_end.get() != 0
}

fn in_arena(ptr: *mut u8) -> bool {
    let p = ptr as usize;
    p >= ARENA.start.get() && p < ARENA.end.get()
}

/// A block of `size` bytes from the arena, or null when it is inactive or full.
fn bump(size: usize) -> *mut u8 {
    let a = &ARENA;
    if !active() {
        return ptr::null_mut();
    }
    if size > SIZE {
        return ptr::null_mut();
    }
    let (rounded, class) = class_of(size);
    if let Some(list) = class.map(|i| &a.free[i]) {
        let block = list.get();
        if block != 0 {
            // SAFETY: a freed arena block of this size, which holds the next one's address.
            list.set(unsafe { (block as *const usize).read() });
            return block as *mut u8;
        }
    }
    let need = rounded + HEADER;
    let at = a.next.get();
    if a.end.get() - at < need {
        // One large block goes to malloc; the arena is done when it cannot hold a small one.
        if need <= LARGE {
            exhausted();
        }
        return ptr::null_mut();
    }
    let block = at + HEADER;
    // SAFETY: [at, at + need) lies inside the arena, which nothing else uses; `at` is aligned.
    unsafe { (at as *mut usize).write(need - HEADER) };
    a.next.set(at + need);
    a.untouched.set(a.untouched.get().max(at + need));
    a.last.set(block);
    block as *mut u8
}

/// The size recorded for an arena block.
///
/// # Safety
/// `ptr` is a block [`bump`] returned.
unsafe fn block_size(ptr: *mut u8) -> usize {
    // SAFETY: the header precedes every block.
    unsafe { (ptr.sub(HEADER) as *const usize).read() }
}

/// Gives an arena block back: the latest one to the arena, any other to its free list.
fn take_back(ptr: *mut u8) {
    let a = &ARENA;
    if ptr as usize == a.last.get() {
        a.next.set(ptr as usize - HEADER);
        a.last.set(0);
        return;
    }
    // SAFETY: an arena block.
    let size = unsafe { block_size(ptr) };
    if let (_, Some(class)) = class_of(size) {
        let list = &a.free[class];
        // SAFETY: the block is free from now on and holds at least ALIGN bytes.
        unsafe { (ptr as *mut usize).write(list.get()) };
        list.set(ptr as usize);
    }
}

/// Resizes an arena block: in place when it is the latest one (or shrinks), else by copying
/// into a new block, from the arena or from malloc.
///
/// # Safety
/// `ptr` is a block [`bump`] returned.
unsafe fn resize(ptr: *mut u8, size: usize) -> *mut u8 {
    let a = &ARENA;
    // SAFETY: the caller's contract.
    let old = unsafe { block_size(ptr) };
    if size <= old {
        return ptr;
    }
    if ptr as usize == a.last.get() {
        let (grown, _) = class_of(size);
        if size <= SIZE && grown <= a.end.get() - ptr as usize {
            let end = ptr as usize + grown;
            // SAFETY: the header precedes the block; the new end lies inside the arena.
            unsafe { (ptr.sub(HEADER) as *mut usize).write(grown) };
            a.next.set(end);
            a.untouched.set(a.untouched.get().max(end));
            return ptr;
        }
    }
    let moved = allocate(size);
    if !moved.is_null() {
        // SAFETY: both blocks hold at least `old` bytes (size > old) and do not overlap.
        unsafe { ptr::copy_nonoverlapping(ptr, moved, old) };
        take_back(ptr);
    }
    moved
}

/// `size` bytes: from the arena during a request, else (or when it is full) from malloc.
pub fn allocate(size: usize) -> *mut u8 {
    let block = bump(size);
    if !block.is_null() {
        return block;
    }
    // SAFETY: plain malloc.
    from_malloc(unsafe { malloc(size) })
}

/// Zeroed `count * size` bytes.
pub fn allocate_zeroed(count: usize, size: usize) -> *mut u8 {
    let Some(total) = count.checked_mul(size) else {
        return ptr::null_mut();
    };
    let untouched = ARENA.untouched.get();
    let block = bump(total);
    if block.is_null() {
        // SAFETY: plain calloc, through malloc and a fill (wasi-libc's calloc does the same).
        let block = from_malloc(unsafe { malloc(total) });
        if !block.is_null() {
            // SAFETY: the block holds `total` bytes.
            unsafe { ptr::write_bytes(block, 0, total) };
        }
        return block;
    }
    // Past `untouched` the arena is still zero: writing zeros there would only dirty pages.
    let used = untouched.min(block as usize + total);
    if (block as usize) < used {
        // SAFETY: [block, used) lies inside the block.
        unsafe { ptr::write_bytes(block, 0, used - block as usize) };
    }
    block
}

/// Frees what [`allocate`] returned.
///
/// # Safety
/// `ptr` came from [`allocate`], [`allocate_zeroed`] or [`reallocate`], or is null.
pub unsafe fn release(ptr: *mut u8) {
    if ptr.is_null() {
        return;
    }
    if in_arena(ptr) {
        take_back(ptr);
    } else if !from_snapshot(ptr) {
        // SAFETY: a malloc block allocated since the request began (or before any request).
        unsafe { free(ptr) }
    }
}

/// Resizes what [`allocate`] returned, like `realloc`.
///
/// # Safety
/// As for [`release`].
pub unsafe fn reallocate(ptr: *mut u8, size: usize) -> *mut u8 {
    if ptr.is_null() {
        return allocate(size);
    }
    if in_arena(ptr) {
        // SAFETY: an arena block.
        return unsafe { resize(ptr, size) };
    }
    if from_snapshot(ptr) {
        // A block of the snapshot's heap: copied, and left where it is.
        // SAFETY: a malloc block.
        let old = unsafe { malloc_usable_size(ptr) };
        let moved = allocate(size);
        if !moved.is_null() {
            // SAFETY: both blocks hold at least min(old, size) bytes and do not overlap.
            unsafe { ptr::copy_nonoverlapping(ptr, moved, old.min(size)) };
        }
        return moved;
    }
    // SAFETY: a malloc block.
    from_malloc(unsafe { realloc(ptr, size) })
}

/// The usable size of what [`allocate`] returned, like `malloc_usable_size`.
///
/// # Safety
/// As for [`release`].
pub unsafe fn usable_size(ptr: *mut u8) -> usize {
    if ptr.is_null() {
        return 0;
    }
    if in_arena(ptr) {
        // SAFETY: an arena block.
        return unsafe { block_size(ptr) };
    }
    // SAFETY: a malloc block.
    unsafe { malloc_usable_size(ptr) }
}

/// A malloc block of the snapshot's heap, while a request is served: it is left alone.
fn from_snapshot(ptr: *mut u8) -> bool {
    (ptr as usize) < ARENA.heap_end.get()
}

/// QuickJS' allocator, installed with `JS_SetMallocFunctions` (patches/): C functions QuickJS
/// calls directly, without rquickjs' boxed allocator in between. It takes the blocks the
/// default allocator handed out before it was installed: outside the arena, it passes them
/// on to malloc, as the default one does.
pub const QUICKJS: qjs::JSMallocFunctions = qjs::JSMallocFunctions {
    js_calloc: Some(js_calloc),
    js_malloc: Some(js_malloc),
    js_free: Some(js_free),
    js_realloc: Some(js_realloc),
    js_malloc_usable_size: Some(js_malloc_usable_size),
};

// `size_t` is u32 on wasm32, as usize is.
unsafe extern "C" fn js_calloc(
    _: *mut c_void,
    count: qjs::size_t,
    size: qjs::size_t,
) -> *mut c_void {
    allocate_zeroed(count as usize, size as usize).cast()
}

unsafe extern "C" fn js_malloc(_: *mut c_void, size: qjs::size_t) -> *mut c_void {
    allocate(size as usize).cast()
}

unsafe extern "C" fn js_free(_: *mut c_void, ptr: *mut c_void) {
    // SAFETY: QuickJS frees only blocks its allocator (this one, or malloc) gave it.
    unsafe { release(ptr.cast()) }
}

unsafe extern "C" fn js_realloc(
    _: *mut c_void,
    ptr: *mut c_void,
    size: qjs::size_t,
) -> *mut c_void {
    // SAFETY: as for js_free.
    unsafe { reallocate(ptr.cast(), size as usize).cast() }
}

unsafe extern "C" fn js_malloc_usable_size(ptr: *const c_void) -> qjs::size_t {
    // SAFETY: as for js_free.
    unsafe { usable_size(ptr.cast_mut().cast()) as qjs::size_t }
}

/// Rust's allocator: the same arena, and `System` (malloc) for what it does not serve.
pub struct Rust;

// SAFETY: arena blocks are 8-byte aligned and only serve layouts aligned to at most 8; every
// other block comes from and returns to `System`, except blocks of the snapshot's heap during
// a request, which are never freed.
unsafe impl GlobalAlloc for Rust {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= ALIGN {
            let block = bump(layout.size());
            if !block.is_null() {
                return block;
            }
        }
        // SAFETY: the caller's layout.
        from_malloc(unsafe { System.alloc(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if in_arena(ptr) {
            take_back(ptr);
        } else if !from_snapshot(ptr) {
            // SAFETY: a System block.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if in_arena(ptr) {
            // SAFETY: an arena block, aligned to at most ALIGN.
            return unsafe { resize(ptr, new_size) };
        }
        if from_snapshot(ptr) {
            // SAFETY: the caller's layout, resized.
            let moved =
                unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
            if !moved.is_null() {
                // SAFETY: both blocks hold min(old, new) bytes and do not overlap.
                unsafe { ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size)) };
            }
            return moved;
        }
        // SAFETY: a System block.
        from_malloc(unsafe { System.realloc(ptr, layout, new_size) })
    }
}
