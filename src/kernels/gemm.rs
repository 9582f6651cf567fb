//! A bounds-checked matrix product over slices (the `gemm` crate candle itself uses), for the
//! custom ops that multiply blocks of their inputs without making candle tensors of them.

/// A matrix inside a slice: `rows × cols` with the given strides (a transposed view swaps them).
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Mat<'a> {
    /// Row-major and dense.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat::strided(data, rows, cols, cols)
    }

    /// Row-major, rows `row_stride` apart (a column block of a wider matrix).
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// Rows `range` of the matrix.
    pub fn rows(self, range: std::ops::Range<usize>) -> Self {
        Mat {
            data: &self.data[(range.start * self.row_stride).min(self.data.len())..],
            rows: range.len(),
            ..self
        }
    }

    /// Columns `range` of the matrix.
    pub fn cols(self, range: std::ops::Range<usize>) -> Self {
        Mat {
            data: &self.data[(range.start * self.col_stride).min(self.data.len())..],
            cols: range.len(),
            ..self
        }
    }

    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    fn in_bounds(&self, len: usize) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < len
    }
}

/// Where a product goes: row-major `rows × cols`, rows `row_stride` apart.
pub struct Dst<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

impl<'a> Dst<'a> {
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Dst {
            data,
            rows,
            cols,
            row_stride: cols,
        }
    }

    /// Rows `rows` and columns `cols` of a row-major matrix whose rows are `row_stride` apart.
    pub fn block(
        data: &'a mut [f32],
        row_stride: usize,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
    ) -> Self {
        let start = (rows.start * row_stride + cols.start).min(data.len());
        Dst {
            data: &mut data[start..],
            rows: rows.len(),
            cols: cols.len(),
            row_stride,
        }
    }
}

/// `dst = a · b`, or `dst += a · b` with `accumulate`; `threads` > 1 lets gemm use rayon.
pub fn matmul(dst: Dst, a: Mat, b: Mat, accumulate: bool, threads: usize) {
    assert!(a.cols == b.rows && dst.rows == a.rows && dst.cols == b.cols);
    assert!(dst.cols <= dst.row_stride || dst.rows <= 1);
    let dst_view = Mat::strided(&[], dst.rows, dst.cols, dst.row_stride);
    assert!(a.in_bounds(a.data.len()) && b.in_bounds(b.data.len()));
    assert!(dst_view.in_bounds(dst.data.len()));
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            for r in 0..dst.rows {
                dst.data[r * dst.row_stride..][..dst.cols].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above bound every index gemm reads from `a` and `b` and writes in `dst`,
    // whose rows do not overlap (cols ≤ row stride); `dst` is borrowed mutably, so it aliases
    // neither input.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_of_strided_and_transposed_views() {
        // a = [[1, 2], [3, 4]] inside a 3-wide buffer; b = the transpose of [[5, 6], [7, 8]].
        let a = [1.0, 2.0, 0.0, 3.0, 4.0, 0.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let mut out = [9.0f32; 6];
        let dst = Dst {
            data: &mut out,
            rows: 2,
            cols: 2,
            row_stride: 3,
        };
        matmul(
            dst,
            Mat::strided(&a, 2, 2, 3),
            Mat::new(&b, 2, 2).t(),
            false,
            1,
        );
        // [[1·5+2·6, 1·7+2·8], [3·5+4·6, 3·7+4·8]]; the gap column keeps its value.
        assert_eq!(out, [17.0, 23.0, 9.0, 39.0, 53.0, 9.0]);
        let mut acc = [1.0f32; 4];
        matmul(
            Dst::new(&mut acc, 2, 2),
            Mat::new(&b, 2, 2),
            Mat::new(&b, 2, 2),
            true,
            1,
        );
        assert_eq!(acc, [1.0 + 67.0, 1.0 + 78.0, 1.0 + 91.0, 1.0 + 106.0]);
    }

    #[test]
    #[should_panic]
    fn a_view_past_its_slice_is_refused() {
        let mut out = [0f32; 4];
        matmul(
            Dst::new(&mut out, 2, 2),
            Mat::new(&[1.0; 3], 2, 2),
            Mat::new(&[1.0; 4], 2, 2),
            false,
            1,
        );
    }
}
