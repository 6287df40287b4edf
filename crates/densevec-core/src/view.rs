//! Validated views of the inputs every binding receives. A view's constructor is the one shape
//! check of its kind: a [`MatRef`] exists only when its buffer holds exactly `rows · cols`
//! values and neither dimension is zero, so code that takes one needs no check of its own.

use crate::error::{js_num, Result};

/// A row-major `rows × cols` float32 matrix over borrowed memory, shape-checked.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

impl<'a> MatRef<'a> {
    /// Checks `data.len() == rows · cols` (by checked arithmetic) and that the matrix is not
    /// empty; `func` and `name` name the call and the argument in the `E_SHAPE` message.
    pub fn new(func: &str, name: &str, data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        check_shape(func, name, data.len(), rows, cols)?;
        Ok(MatRef { data, rows, cols })
    }

    /// Row `i` (`i < rows`).
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// A row-major float32 operand of `rows` rows whose column count its call takes once for all its
/// operands; unchecked until the call checks it ([`Operand::check`]) in its documented order.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    pub data: &'a [f32],
    pub rows: usize,
}

impl<'a> Operand<'a> {
    pub fn new(data: &'a [f32], rows: usize) -> Self {
        Operand { data, rows }
    }

    /// The operand as a `rows × cols` view ([`MatRef::new`]).
    pub fn check(&self, func: &str, name: &str, cols: usize) -> Result<MatRef<'a>> {
        MatRef::new(func, name, self.data, self.rows, cols)
    }
}

/// The shape check of a matrix of any element type holding `len` values: `len == rows · cols`
/// (by checked arithmetic) and neither dimension zero (see [`MatRef::new`]).
pub fn check_shape(func: &str, name: &str, len: usize, rows: usize, cols: usize) -> Result<()> {
    if rows.checked_mul(cols) != Some(len) {
        let product = (rows as f64) * (cols as f64);
        crate::bail!(
            Shape,
            "{func}: {name}.data has length {len} but rows * cols = {rows} * {cols} = {}",
            js_num(product)
        );
    }
    if rows == 0 || cols == 0 {
        crate::bail!(Shape, "{func}: {name} is empty ({rows} x {cols})");
    }
    Ok(())
}

/// Converts a JavaScript number that must be a non-negative integer (a dimension, a count) into
/// `usize`, or fails with `E_TYPE` naming the argument.
pub fn dim(func: &str, name: &str, v: f64) -> Result<usize> {
    if v.is_nan() || v < 0.0 || v.fract() != 0.0 || v > 9.007_199_254_740_991e15 {
        crate::bail!(
            Type,
            "{func}: {name} must be a non-negative integer, got {v}"
        );
    }
    Ok(v as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[test]
    fn a_view_exists_only_with_its_shape() {
        let d = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let m = MatRef::new("f", "m", &d, 2, 3).unwrap();
        assert_eq!(m.row(1), &[4.0, 5.0, 6.0]);
        let e = MatRef::new("f", "m", &d, 4, 2).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (
                Code::Shape,
                "f: m.data has length 6 but rows * cols = 4 * 2 = 8"
            )
        );
        let e = MatRef::new("f", "m", &[], 0, 3).unwrap_err();
        assert_eq!(e.msg, "f: m is empty (0 x 3)");
        // rows · cols beyond usize is a shape error, never a wrap-around.
        assert!(MatRef::new("f", "m", &d, usize::MAX, 2).is_err());
        assert_eq!(dim("f", "k", 3.0).unwrap(), 3);
        assert_eq!(dim("f", "k", -1.0).unwrap_err().code, Code::Type);
        assert_eq!(dim("f", "k", 1.5).unwrap_err().code, Code::Type);
    }
}
