//! `memcmp` and `bcmp` for flows, eight bytes at a time.
//!
//! Why: on `wasm32-wasip2` these come from wasi-libc, whose C `memcmp` compares one byte per
//! loop iteration. Every `String` key in a `BTreeMap`, every `==` on strings and every sort of
//! text goes through it; in rpa1 (serde_json objects, five key lookups per row) it was the
//! guest's hottest function, 8% of the whole run. Linked before libc, these definitions are the
//! ones a flow's component uses. Native builds (the SDK's own tests) keep the platform's.
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
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, and the caller promises n readable bytes at each pointer.
        let (x, y) = unsafe {
            (
                read_unaligned(a.add(i) as *const u64),
                read_unaligned(b.add(i) as *const u64),
            )
        };
        if x != y {
            // Little-endian: the lowest differing bit is in the first differing byte.
            let at = i + ((x ^ y).trailing_zeros() / 8) as usize;
            // SAFETY: at < i + 8 <= n.
            return unsafe { i32::from(*a.add(at)) - i32::from(*b.add(at)) };
        }
        i += 8;
    }
    while i < n {
        // SAFETY: i < n.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// Zero when the `n` bytes at `a` and `b` are equal, as C's `bcmp` (what `==` on slices calls).
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[cfg_attr(target_os = "wasi", unsafe(no_mangle))]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's promise is memcmp's.
    unsafe { memcmp(a, b, n) }
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
    fn bcmp_is_zero_exactly_when_equal() {
        let a = *b"question_1 and more";
        let mut b = a;
        assert_eq!(unsafe { bcmp(a.as_ptr(), b.as_ptr(), a.len()) }, 0);
        b[9] = b'2';
        assert_ne!(unsafe { bcmp(a.as_ptr(), b.as_ptr(), a.len()) }, 0);
        assert_eq!(unsafe { bcmp(a.as_ptr(), b.as_ptr(), 9) }, 0);
    }
}
