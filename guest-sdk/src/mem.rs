//! `memcmp` and `bcmp` for flows, eight bytes at a time and without a loop up to 16 bytes.
//!
//! Why: on `wasm32-wasip2` these come from wasi-libc, whose C `memcmp` compares one byte per
//! loop iteration. Every `String` key in a `BTreeMap`, every `==` on strings and every sort of
//! text goes through it; in rpa1 (serde_json objects, five key lookups per row) it was the
//! guest's hottest function, 8% of the whole run. Linked before libc, these definitions are the
//! ones a flow's component uses. Native builds (the SDK's own tests) keep the platform's.
//! A word loop with a byte-wise tail still cost rpa1 about 140 instructions per call (two
//! calls, since the identical `bcmp` was merged into `memcmp`'s body); the loop-free short
//! path and a `bcmp` of its own made it about 57, 12% of the guest's instructions in all.
//!
//! Only plain loads and integer compares: nothing here may be turned back into a call to
//! `memcmp` itself (no slice comparisons, no `copy_from_slice`).

use core::ptr::read_unaligned;

/// The sign of the first differing byte of `a` and `b` over `n` bytes, as C's `memcmp`.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[cfg_attr(target_os = "wasi", unsafe(no_mangle))]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's promise, passed on.
    unsafe { compare(a, b, n, first_difference) }
}

/// Zero when the `n` bytes at `a` and `b` are equal, as C's `bcmp` (what `==` on slices calls).
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[cfg_attr(target_os = "wasi", unsafe(no_mangle))]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // Any non-zero value will do, so the differing words themselves say it: no byte search,
    // and a body of its own (identical bodies get merged into one calling the other).
    // SAFETY: the caller's promise, passed on.
    unsafe { compare(a, b, n, |x, y| i32::from(x != y)) }
}

/// The body of both functions, inlined into each: `differ` turns the first two words that
/// differ into the result.
///
/// Why no loop below 17 bytes: keys, column names and short strings are what flows compare,
/// and in wasm every loop iteration and every call pays the engine's interruption check.
/// Up to 16 bytes, two (possibly overlapping) loads per side decide: bytes covered twice
/// compare equal in the first load before the second one is looked at, so the lowest
/// differing byte of the combined words is still the first differing byte.
#[inline(always)]
unsafe fn compare(a: *const u8, b: *const u8, n: usize, differ: impl Fn(u64, u64) -> i32) -> i32 {
    // SAFETY (every load below): offsets stay within 0..n, readable by the caller's promise.
    unsafe {
        let (x, y) = if n > 16 {
            return compare_long(a, b, n, differ);
        } else if n >= 8 {
            let (x, y) = (word(a, 0), word(b, 0));
            if x != y {
                return differ(x, y);
            }
            (word(a, n - 8), word(b, n - 8))
        } else if n >= 4 {
            (
                half(a, 0) | (half(a, n - 4) << 32),
                half(b, 0) | (half(b, n - 4) << 32),
            )
        } else if n > 0 {
            // Bytes 0, n/2 and n-1: in order, and together every byte of 1 to 3.
            let bytes = |p: *const u8| {
                u64::from(*p) | (u64::from(*p.add(n / 2)) << 8) | (u64::from(*p.add(n - 1)) << 16)
            };
            (bytes(a), bytes(b))
        } else {
            return 0;
        };
        if x != y { differ(x, y) } else { 0 }
    }
}

/// [`compare`] for more than 16 bytes: words in a loop, the last one overlapping the one
/// before. Out of line, so the short path's function needs few registers (a register the
/// loop uses is saved and restored on every call, short or long).
#[inline(never)]
unsafe fn compare_long(
    a: *const u8,
    b: *const u8,
    n: usize,
    differ: impl Fn(u64, u64) -> i32,
) -> i32 {
    let mut i = 0;
    // SAFETY: i + 8 < n inside the loop, and n - 8 >= 0 after it.
    unsafe {
        while i + 8 < n {
            let (x, y) = (word(a, i), word(b, i));
            if x != y {
                return differ(x, y);
            }
            i += 8;
        }
        let (x, y) = (word(a, n - 8), word(b, n - 8));
        if x != y { differ(x, y) } else { 0 }
    }
}

/// Eight bytes at `p + i`, the byte at the lowest address in the lowest bits.
#[inline(always)]
unsafe fn word(p: *const u8, i: usize) -> u64 {
    // SAFETY: the caller's promise; wasm32 and x86 are little-endian, and `from_le` makes it so.
    u64::from_le(unsafe { read_unaligned(p.add(i) as *const u64) })
}

/// Four bytes at `p + i` as [`word`] reads eight.
#[inline(always)]
unsafe fn half(p: *const u8, i: usize) -> u64 {
    // SAFETY: as `word`.
    u64::from(u32::from_le(unsafe {
        read_unaligned(p.add(i) as *const u32)
    }))
}

/// The sign of the lowest differing byte of two words that differ.
#[inline(always)]
fn first_difference(x: u64, y: u64) -> i32 {
    let shift = (x ^ y).trailing_zeros() & !7;
    ((x >> shift) & 0xff) as i32 - ((y >> shift) & 0xff) as i32
}

#[cfg(test)]
mod tests {
    // Natively the functions keep Rust names (no `no_mangle` outside WASI), so the slice
    // comparisons below use the platform's own `memcmp` as the reference.
    use super::{bcmp, memcmp};

    fn sign(x: i32) -> i32 {
        x.signum()
    }

    #[test]
    fn agrees_with_ordering_of_byte_slices_at_every_length_and_offset() {
        let base: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        for n in 0..=base.len() {
            for at in 0..n {
                for delta in [1u8, 128, 255] {
                    let mut other = base.clone();
                    other[at] = other[at].wrapping_add(delta);
                    let want = base[..n].cmp(&other[..n]) as i32;
                    let got = unsafe { memcmp(base.as_ptr(), other.as_ptr(), n) };
                    assert_eq!(sign(got), want, "n={n} at={at} delta={delta}");
                    let back = unsafe { memcmp(other.as_ptr(), base.as_ptr(), n) };
                    assert_eq!(sign(back), -want, "n={n} at={at} delta={delta} reversed");
                }
            }
            assert_eq!(unsafe { memcmp(base.as_ptr(), base.as_ptr(), n) }, 0);
        }
    }

    #[test]
    fn the_first_difference_decides_not_a_later_one() {
        // Within one eight-byte word: byte 1 says less, byte 6 says greater.
        let a = [5u8, 1, 9, 9, 9, 9, 200, 9, 0];
        let b = [5u8, 2, 9, 9, 9, 9, 1, 9, 0];
        assert!(unsafe { memcmp(a.as_ptr(), b.as_ptr(), a.len()) } < 0);
        assert!(unsafe { memcmp(b.as_ptr(), a.as_ptr(), a.len()) } > 0);
    }

    #[test]
    fn bcmp_is_zero_exactly_when_equal_at_every_length_and_offset() {
        let base: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(53)).collect();
        for n in 0..=base.len() {
            assert_eq!(
                unsafe { bcmp(base.as_ptr(), base.clone().as_ptr(), n) },
                0,
                "n={n}"
            );
            for at in 0..n {
                let mut other = base.clone();
                other[at] ^= 0x80;
                assert_ne!(
                    unsafe { bcmp(base.as_ptr(), other.as_ptr(), n) },
                    0,
                    "n={n} at={at}"
                );
            }
        }
    }

    #[test]
    fn bcmp_is_zero_exactly_when_equal() {
        let a = *b"question_1 and more";
        let mut b = a;
        assert_eq!(unsafe { bcmp(a.as_ptr(), b.as_ptr(), a.len()) }, 0);
        b[9] = b'2';
        assert_ne!(unsafe { bcmp(a.as_ptr(), b.as_ptr(), a.len()) }, 0);
        assert_eq!(unsafe { bcmp(a.as_ptr(), b.as_ptr(), 9) }, 0);
    }
}
