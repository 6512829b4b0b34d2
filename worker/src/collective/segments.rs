//! How a vector is cut into one segment per rank for the ring.

use std::ops::Range;

/// Segment `index` of `len` values cut into `parts` near-equal segments (sizes differ by at most
/// one; with fewer values than parts some segments are empty).
pub fn segment_bounds(len: usize, parts: usize, index: usize) -> Range<usize> {
    let start = index * len / parts;
    let end = (index + 1) * len / parts;
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_tile_the_vector() {
        for len in [0, 1, 2, 5, 7, 100, 101] {
            for parts in 1..6 {
                let mut next = 0;
                for index in 0..parts {
                    let range = segment_bounds(len, parts, index);
                    assert_eq!(range.start, next);
                    assert!(range.len() <= len / parts + 1);
                    next = range.end;
                }
                assert_eq!(next, len);
            }
        }
    }
}
