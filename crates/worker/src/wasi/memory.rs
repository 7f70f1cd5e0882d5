//! Bounds-checked access to a guest's linear memory: a bad pointer is an errno, never a panic.

/// The iovec array of `count` entries at `at`, checked to lie in memory: read entry by entry
/// with [`Iovecs::get`] (the calls write into the same memory, so nothing borrows it).
#[derive(Clone, Copy)]
pub(super) struct Iovecs {
    at: usize,
    pub(super) count: u32,
}

impl Iovecs {
    pub(super) fn new(memory: &[u8], at: u32, count: u32) -> Option<Self> {
        range_ref(memory, at, count.checked_mul(8)?)?;
        Some(Self {
            at: at as usize,
            count,
        })
    }

    /// The `(pointer, length)` of entry `i` (< `count`).
    pub(super) fn get(self, memory: &[u8], i: u32) -> (u32, u32) {
        let entry = self.at + 8 * i as usize;
        let word = |at: usize| {
            u32::from_le_bytes([memory[at], memory[at + 1], memory[at + 2], memory[at + 3]])
        };
        (word(entry), word(entry + 4))
    }
}

pub(super) fn range_ref(memory: &[u8], at: u32, len: u32) -> Option<&[u8]> {
    let start = at as usize;
    memory.get(start..start.checked_add(len as usize)?)
}

pub(super) fn range(memory: &mut [u8], at: u32, len: u32) -> Option<&mut [u8]> {
    let start = at as usize;
    memory.get_mut(start..start.checked_add(len as usize)?)
}

pub(super) fn put(memory: &mut [u8], at: u32, bytes: &[u8]) -> Option<()> {
    range(memory, at, u32::try_from(bytes.len()).ok()?)?.copy_from_slice(bytes);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasi::{Strings, errno};

    #[test]
    fn pointers_outside_memory_are_faults_not_panics() {
        let args = Strings::new([["arg0", "", ""]].into_iter());
        let mut memory = vec![0u8; 16];
        assert_eq!(args.copy_to(&mut memory, 0, 14), errno::FAULT);
        assert_eq!(args.copy_to(&mut memory, 14, 0), errno::FAULT);
        assert_eq!(args.copy_to(&mut memory, u32::MAX, 0), errno::FAULT);
        assert!(Iovecs::new(&memory, 8, 2).is_none());
        assert!(Iovecs::new(&memory, 0, u32::MAX).is_none());
        memory[8] = 7;
        let two = Iovecs::new(&memory, 0, 2).map(|v| (v.count, v.get(&memory, 1)));
        assert_eq!(two, Some((2, (7, 0))));
        assert!(put(&mut memory, u32::MAX - 1, &[1, 2, 3]).is_none());
    }
}
