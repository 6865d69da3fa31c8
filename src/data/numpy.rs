//! numpy arrays as a pickle stores them, read from a [`pickle::Graph`] without numpy.
//!
//! numpy pickles an array as `numpy.core.multiarray._reconstruct(numpy.ndarray,
//! (0,), b'b')` followed by a `BUILD` with the state `(1, shape, dtype,
//! is_fortran, raw_bytes)`; the dtype is itself `numpy.dtype(code, 0, 1)` built
//! with `(3, byte_order, ...)`. [`array`] matches exactly that shape and returns
//! the raw little-endian bytes, borrowed from the pickle. Only the two element
//! types MNIST's pickle uses are known: `f4` (float32) and `i8` (int64).

use super::pickle::{Graph, Node, NodeId};

/// An element type this reader knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// Little-endian float32 (`<f4`).
    F32,
    /// Little-endian int64 (`<i8`).
    I64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::I64 => 8,
        }
    }
}

/// A C-ordered array: its element type, shape and raw little-endian bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Array<'a> {
    /// The element type.
    pub dtype: Dtype,
    /// The dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.product() * dtype.size()` bytes.
    pub data: &'a [u8],
}

impl Array<'_> {
    /// The elements as `f32`, or an error when the array holds another type.
    pub fn f32s(&self) -> Result<impl Iterator<Item = f32> + '_, String> {
        match self.dtype {
            Dtype::F32 => Ok(self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            other => Err(format!("holds {other:?} elements, expected float32")),
        }
    }

    /// The elements as `i64`, or an error when the array holds another type.
    pub fn i64s(&self) -> Result<impl Iterator<Item = i64> + '_, String> {
        match self.dtype {
            Dtype::I64 => Ok(self
                .data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(std::array::from_fn(|i| c[i])))),
            other => Err(format!("holds {other:?} elements, expected int64")),
        }
    }
}

/// The items of a tuple node of exactly `len` items.
pub fn tuple<'g>(graph: &'g Graph, id: NodeId, len: usize) -> Result<&'g [NodeId], String> {
    match graph.node(id) {
        Node::Tuple(items) if items.len() == len => Ok(items),
        Node::Tuple(items) => Err(format!(
            "a tuple of {} items where {len} were expected",
            items.len()
        )),
        other => Err(format!("{} where a tuple was expected", describe(other))),
    }
}

/// Reads the numpy array pickled at `id`.
pub fn array<'a>(graph: &Graph<'a>, id: NodeId) -> Result<Array<'a>, String> {
    let (args, state) = call(graph, id, "numpy.core.multiarray", "_reconstruct")?;
    let args = tuple(graph, args, 3).map_err(|e| format!("_reconstruct's arguments: {e}"))?;
    expect_global(graph, args[0], "numpy", "ndarray")?;
    let base = tuple(graph, args[1], 1)?;
    expect(graph, base[0], &Node::Int(0), "the base shape (0,)")?;
    expect(graph, args[2], &Node::Bytes(b"b"), "the type code b'b'")?;
    let state = tuple(graph, state, 5).map_err(|e| format!("the array state: {e}"))?;
    expect(graph, state[0], &Node::Int(1), "state version 1")?;
    let shape = match graph.node(state[1]) {
        Node::Tuple(dims) => dims
            .iter()
            .map(|&d| match graph.node(d) {
                Node::Int(n) => usize::try_from(*n).map_err(|_| format!("dimension {n}")),
                other => Err(format!("{} as a dimension", describe(other))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => return Err(format!("{} as the shape", describe(other))),
    };
    let dtype = dtype(graph, state[2])?;
    expect(graph, state[3], &Node::False, "C order (is_fortran False)")?;
    let Node::Bytes(data) = *graph.node(state[4]) else {
        return Err(format!(
            "{} as the array data, expected a byte string",
            describe(graph.node(state[4]))
        ));
    };
    let want = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
    if want != Some(data.len()) {
        return Err(format!(
            "shape {shape:?} of {dtype:?} needs {} bytes of data, found {}",
            want.map_or_else(|| "too many".to_owned(), |n| n.to_string()),
            data.len()
        ));
    }
    Ok(Array { dtype, shape, data })
}

/// Reads `numpy.dtype(code, 0, 1)` built with a little-endian state.
fn dtype(graph: &Graph, id: NodeId) -> Result<Dtype, String> {
    let (args, state) = call(graph, id, "numpy", "dtype")?;
    let args = tuple(graph, args, 3).map_err(|e| format!("dtype's arguments: {e}"))?;
    let dtype = match graph.node(args[0]) {
        Node::Bytes(b"f4") => Dtype::F32,
        Node::Bytes(b"i8") => Dtype::I64,
        other => {
            return Err(format!(
                "dtype {} (only f4 and i8 are supported)",
                describe(other)
            ))
        }
    };
    let state = tuple(graph, state, 8).map_err(|e| format!("the dtype state: {e}"))?;
    expect(graph, state[0], &Node::Int(3), "dtype state version 3")?;
    expect(
        graph,
        state[1],
        &Node::Bytes(b"<"),
        "little-endian byte order '<'",
    )?;
    Ok(dtype)
}

/// The arguments and `BUILD` state of a call to `module.name`.
fn call(graph: &Graph, id: NodeId, module: &str, name: &str) -> Result<(NodeId, NodeId), String> {
    match *graph.node(id) {
        Node::Call {
            callable,
            args,
            state: Some(state),
        } => {
            expect_global(graph, callable, module, name)?;
            Ok((args, state))
        }
        Node::Call { state: None, .. } => Err(format!("a call to {module}.{name} without state")),
        ref other => Err(format!(
            "{} where a call to {module}.{name} was expected",
            describe(other)
        )),
    }
}

fn expect_global(graph: &Graph, id: NodeId, module: &str, name: &str) -> Result<(), String> {
    match graph.node(id) {
        Node::Global { module: m, name: n } if *m == module && *n == name => Ok(()),
        other => Err(format!(
            "{} where {module}.{name} was expected",
            describe(other)
        )),
    }
}

fn expect(graph: &Graph, id: NodeId, want: &Node, what: &str) -> Result<(), String> {
    let got = graph.node(id);
    if got == want {
        Ok(())
    } else {
        Err(format!("{} where {what} was expected", describe(got)))
    }
}

/// A short description of a node for error messages (never its full bytes).
fn describe(node: &Node) -> String {
    match node {
        Node::None => "None".into(),
        Node::False => "False".into(),
        Node::Int(n) => format!("the integer {n}"),
        Node::Bytes(b) if b.len() <= 16 => format!("the string {:?}", String::from_utf8_lossy(b)),
        Node::Bytes(b) => format!("a string of {} bytes", b.len()),
        Node::Tuple(items) => format!("a tuple of {} items", items.len()),
        Node::Global { module, name } => format!("the global {module}.{name}"),
        Node::Call { .. } => "a REDUCE call".into(),
    }
}

/// Builds pickles of numpy arrays, byte by byte, with the opcodes numpy 1.x
/// and protocol 2 write (the layout of `mnist.pkl.gz`), for tests.
#[cfg(test)]
pub(crate) mod testing {
    /// A protocol-2 pickle of a tuple of tuples of arrays, memoizing the
    /// globals and dtypes the way numpy's pickler does.
    pub struct Pickler {
        out: Vec<u8>,
        memo: u8,
        reconstruct: Option<u8>,
        dtypes: Vec<(&'static str, u8)>,
    }

    impl Pickler {
        /// Starts a pickle (PROTO 2).
        pub fn new() -> Pickler {
            Pickler {
                out: vec![0x80, 2],
                memo: 0,
                reconstruct: None,
                dtypes: Vec::new(),
            }
        }

        fn put(&mut self) -> u8 {
            self.memo += 1;
            self.out.extend([b'q', self.memo]);
            self.memo
        }

        fn int(&mut self, v: usize) {
            match u8::try_from(v) {
                Ok(b) => self.out.extend([b'K', b]),
                Err(_) => {
                    let v = u16::try_from(v).expect("test dimensions fit in u16");
                    self.out.push(b'M');
                    self.out.extend(v.to_le_bytes());
                }
            }
        }

        fn short(&mut self, s: &[u8]) {
            self.out.extend([b'U', s.len() as u8]);
            self.out.extend(s);
        }

        /// Appends one array: `code` is `f4` or `i8`, `data` its raw bytes.
        pub fn array(&mut self, code: &'static str, shape: &[usize], data: &[u8]) {
            match self.reconstruct {
                Some(q) => self.out.extend([b'h', q, b'h', q + 1]),
                None => {
                    self.out.push(b'c');
                    self.out.extend(b"numpy.core.multiarray\n_reconstruct\n");
                    self.reconstruct = Some(self.put());
                    self.out.push(b'c');
                    self.out.extend(b"numpy\nndarray\n");
                    self.put();
                }
            }
            self.out.extend([b'K', 0, 0x85]);
            self.short(b"b");
            self.out.extend([0x87, b'R']);
            self.put();
            self.out.extend([b'(', b'K', 1]);
            for &d in shape {
                self.int(d);
            }
            self.out.push(match shape.len() {
                1 => 0x85,
                2 => 0x86,
                _ => panic!("test arrays have 1 or 2 dimensions"),
            });
            match self.dtypes.iter().find(|(c, _)| *c == code) {
                Some(&(_, q)) => self.out.extend([b'h', q]),
                None => {
                    self.out.push(b'c');
                    self.out.extend(b"numpy\ndtype\n");
                    self.put();
                    self.short(code.as_bytes());
                    self.out.extend([b'K', 0, b'K', 1, 0x87, b'R']);
                    let q = self.put();
                    self.dtypes.push((code, q));
                    self.out.extend([b'(', b'K', 3]);
                    self.short(b"<");
                    self.out.extend([b'N', b'N', b'N']);
                    self.out.extend([b'J', 0xff, 0xff, 0xff, 0xff]);
                    self.out.extend([b'J', 0xff, 0xff, 0xff, 0xff]);
                    self.out.extend([b'K', 0, b't', b'b']);
                }
            }
            self.out.push(0x89);
            self.out.push(b'T');
            self.out
                .extend(u32::try_from(data.len()).unwrap().to_le_bytes());
            self.out.extend(data);
            self.out.extend([b't', b'b']);
        }

        /// Closes the last `n` values into a tuple (1 to 3), as TUPLE1..TUPLE3.
        pub fn tuple(&mut self, n: usize) {
            self.out.push(0x84 + n as u8);
            self.put();
        }

        /// Ends the pickle (STOP) and returns its bytes.
        pub fn finish(mut self) -> Vec<u8> {
            self.out.push(b'.');
            self.out
        }
    }

    /// Raw bytes of `f32` values.
    pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Raw bytes of `i64` values.
    pub fn i64_bytes(values: &[i64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::data::pickle;

    #[test]
    fn reads_arrays_in_numpys_layout_sharing_memoized_dtypes() {
        let mut p = Pickler::new();
        p.array("f4", &[2, 3], &f32_bytes(&[0.0, 0.5, 1.0, 2.0, 3.0, 4.0]));
        p.array("i8", &[2], &i64_bytes(&[7, -1]));
        p.array("f4", &[1, 300], &f32_bytes(&[0.25; 300]));
        p.tuple(3);
        let bytes = p.finish();
        let g = pickle::parse(&bytes).unwrap();
        let items = tuple(&g, g.root, 3).unwrap();
        let a = array(&g, items[0]).unwrap();
        assert_eq!((a.dtype, a.shape.clone()), (Dtype::F32, vec![2, 3]));
        assert_eq!(a.f32s().unwrap().collect::<Vec<_>>()[5], 4.0);
        assert!(a.i64s().is_err());
        let b = array(&g, items[1]).unwrap();
        assert_eq!(b.i64s().unwrap().collect::<Vec<_>>(), vec![7, -1]);
        // The third array reuses the memoized reconstruct and f4 dtype.
        let c = array(&g, items[2]).unwrap();
        assert_eq!(c.shape, vec![1, 300]);
        assert!(tuple(&g, g.root, 2).unwrap_err().contains("3 items"));
    }

    #[test]
    fn mismatches_are_described() {
        let mut p = Pickler::new();
        // 2x2 float32 needs 16 bytes; give 12.
        p.array("f4", &[2, 2], &f32_bytes(&[1.0, 2.0, 3.0]));
        p.tuple(1);
        let bytes = p.finish();
        let g = pickle::parse(&bytes).unwrap();
        let items = tuple(&g, g.root, 1).unwrap();
        let msg = array(&g, items[0]).unwrap_err();
        assert!(msg.contains("needs 16 bytes of data, found 12"), "{msg}");
        let msg = array(&g, g.root).unwrap_err();
        assert!(msg.contains("a tuple of 1 items where a call"), "{msg}");

        let mut p = Pickler::new();
        p.array("f8", &[1], &[0; 8]);
        let bytes = p.finish();
        let g = pickle::parse(&bytes).unwrap();
        let msg = array(&g, g.root).unwrap_err();
        assert!(msg.contains("dtype the string \"f8\""), "{msg}");
    }
}
