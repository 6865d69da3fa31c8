//! A strict walker over Python pickle opcodes, for reading numpy arrays out of
//! `mnist.pkl.gz` without Python.
//!
//! Only the protocol-2 opcodes that file uses are supported (tuples, small
//! integers, byte strings, globals, `REDUCE`/`BUILD` and the memo); anything
//! else is an error naming the opcode and its offset. Nothing is executed:
//! `GLOBAL` and `REDUCE` only record names and calls in a [`Graph`] for the
//! caller to match against what it expects.
//!
//! Allocation is bounded by the input: byte strings are borrowed from it (a
//! length beyond the remaining input is "truncated"), and every opcode adds at
//! most one node, so a hostile header cannot make the walker allocate more
//! than a small multiple of the input's size.

use std::collections::HashMap;
use std::fmt;

/// Index of a node in a [`Graph`].
pub type NodeId = usize;

/// One value built by the opcodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    /// `None`.
    None,
    /// `False` (`NEWFALSE`).
    False,
    /// An integer (`BININT1`, `BININT2`, `BININT`).
    Int(i64),
    /// A byte string (`SHORT_BINSTRING`, `BINSTRING`), borrowed from the input.
    Bytes(&'a [u8]),
    /// A tuple of nodes.
    Tuple(Vec<NodeId>),
    /// `module.name`, as `GLOBAL` names it (never imported).
    Global {
        /// The module path.
        module: &'a str,
        /// The attribute name.
        name: &'a str,
    },
    /// `callable(*args)` as `REDUCE` records it (never called), with the state
    /// a later `BUILD` gave the object.
    Call {
        /// The callable (a [`Node::Global`] in well-formed input).
        callable: NodeId,
        /// The argument tuple.
        args: NodeId,
        /// The `BUILD` state, if any.
        state: Option<NodeId>,
    },
}

/// The values of a whole pickle: an arena of nodes and the one `STOP` returned.
///
/// Nodes refer to each other by index, so the memo shares objects the way
/// Python does (a `BUILD` on a memoized object is seen through every reference).
#[derive(Debug, Clone, PartialEq)]
pub struct Graph<'a> {
    nodes: Vec<Node<'a>>,
    /// The value the pickle returns.
    pub root: NodeId,
}

impl<'a> Graph<'a> {
    /// The node with index `id` (ids come from this graph, so it exists).
    pub fn node(&self, id: NodeId) -> &Node<'a> {
        &self.nodes[id]
    }
}

/// Why a pickle was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    /// Byte offset of the offending opcode.
    pub offset: usize,
    /// What is wrong, in words.
    pub reason: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for PickleError {}

/// The only protocol accepted (what `pickle.dump(..., protocol=2)` writes).
const PROTOCOL: u8 = 2;

/// Walks the opcodes of `input` (a whole pickle, nothing after `STOP`).
pub fn parse(input: &[u8]) -> Result<Graph<'_>, PickleError> {
    Walker {
        input,
        pos: 0,
        op_at: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    }
    .run()
}

struct Walker<'a> {
    input: &'a [u8],
    pos: usize,
    /// Offset of the opcode being executed (for errors).
    op_at: usize,
    nodes: Vec<Node<'a>>,
    stack: Vec<NodeId>,
    /// Stack heights at each open `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u8, NodeId>,
}

impl<'a> Walker<'a> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            offset: self.op_at,
            reason: reason.into(),
        })
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], PickleError> {
        let rest = self.input.len() - self.pos;
        if n > rest {
            return self.fail(format!(
                "truncated: {what} needs {n} bytes, only {rest} remain"
            ));
        }
        let bytes = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn byte(&mut self, what: &str) -> Result<u8, PickleError> {
        Ok(self.take(1, what)?[0])
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], PickleError> {
        let bytes = self.take(N, what)?;
        Ok(std::array::from_fn(|i| bytes[i]))
    }

    /// A `GLOBAL` operand: text up to a newline.
    fn line(&mut self, what: &str) -> Result<&'a str, PickleError> {
        let rest = &self.input[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.fail(format!("truncated: {what} has no terminating newline"));
        };
        let text = std::str::from_utf8(&rest[..end]);
        self.pos += end + 1;
        match text {
            Ok(t) if !t.is_empty() => Ok(t),
            _ => self.fail(format!("{what} is empty or not UTF-8")),
        }
    }

    fn push(&mut self, node: Node<'a>) {
        self.stack.push(self.nodes.len());
        self.nodes.push(node);
    }

    fn pop(&mut self, op: &str) -> Result<NodeId, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.fail(format!("{op} pops an empty stack"));
        }
        Ok(self.stack.pop().expect("the stack is above its floor"))
    }

    fn pop_tuple(&mut self, n: usize, op: &str) -> Result<(), PickleError> {
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.pop(op)?);
        }
        items.reverse();
        self.push(Node::Tuple(items));
        Ok(())
    }

    fn run(mut self) -> Result<Graph<'a>, PickleError> {
        loop {
            self.op_at = self.pos;
            let op = self.byte("an opcode")?;
            if self.op_at == 0 && op != 0x80 {
                return self.fail(format!(
                    "starts with byte 0x{op:02x}, not the PROTO opcode 0x80 (not a protocol-2 pickle)"
                ));
            }
            match op {
                0x80 => {
                    let version = self.byte("PROTO")?;
                    if self.op_at != 0 || version != PROTOCOL {
                        return self.fail(format!(
                            "PROTO {version} (only protocol {PROTOCOL}, at the start, is supported)"
                        ));
                    }
                }
                b'c' => {
                    let module = self.line("GLOBAL's module")?;
                    let name = self.line("GLOBAL's name")?;
                    self.push(Node::Global { module, name });
                }
                b'q' => {
                    let index = self.byte("BINPUT")?;
                    let Some(&top) = self.stack.last() else {
                        return self.fail("BINPUT with an empty stack");
                    };
                    self.memo.insert(index, top);
                }
                b'h' => {
                    let index = self.byte("BINGET")?;
                    let Some(&id) = self.memo.get(&index) else {
                        return self.fail(format!("BINGET {index} of an unset memo entry"));
                    };
                    self.stack.push(id);
                }
                b'K' => {
                    let v = self.byte("BININT1")?;
                    self.push(Node::Int(i64::from(v)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array("BININT2")?);
                    self.push(Node::Int(i64::from(v)));
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.array("BININT")?);
                    self.push(Node::Int(i64::from(v)));
                }
                b'N' => self.push(Node::None),
                0x89 => self.push(Node::False),
                b'U' => {
                    let n = self.byte("SHORT_BINSTRING's length")?;
                    let bytes = self.take(usize::from(n), "SHORT_BINSTRING")?;
                    self.push(Node::Bytes(bytes));
                }
                b'T' => {
                    let n = i32::from_le_bytes(self.array("BINSTRING's length")?);
                    let Ok(n) = usize::try_from(n) else {
                        return self.fail(format!("BINSTRING with negative length {n}"));
                    };
                    let bytes = self.take(n, "BINSTRING")?;
                    self.push(Node::Bytes(bytes));
                }
                b'(' => self.marks.push(self.stack.len()),
                b't' => {
                    let Some(mark) = self.marks.pop() else {
                        return self.fail("TUPLE without a MARK");
                    };
                    let items = self.stack.split_off(mark);
                    self.push(Node::Tuple(items));
                }
                0x85 => self.pop_tuple(1, "TUPLE1")?,
                0x86 => self.pop_tuple(2, "TUPLE2")?,
                0x87 => self.pop_tuple(3, "TUPLE3")?,
                b'R' => {
                    let args = self.pop("REDUCE")?;
                    let callable = self.pop("REDUCE")?;
                    if !matches!(self.nodes[args], Node::Tuple(_)) {
                        return self.fail("REDUCE's arguments are not a tuple");
                    }
                    self.push(Node::Call {
                        callable,
                        args,
                        state: None,
                    });
                }
                b'b' => {
                    let new_state = self.pop("BUILD")?;
                    let Some(&target) = self.stack.last() else {
                        return self.fail("BUILD with no object to build");
                    };
                    match &mut self.nodes[target] {
                        Node::Call { state, .. } if state.is_none() => *state = Some(new_state),
                        _ => {
                            return self.fail("BUILD on something other than a fresh REDUCE result")
                        }
                    }
                }
                b'.' => return self.stop(),
                other => {
                    return self.fail(format!(
                        "unsupported opcode 0x{other:02x} (this reader knows only the opcodes of \
                         a protocol-2 pickle of numpy arrays in tuples)"
                    ))
                }
            }
        }
    }

    fn stop(self) -> Result<Graph<'a>, PickleError> {
        if !self.marks.is_empty() {
            return self.fail("STOP with an unclosed MARK");
        }
        let [root] = self.stack[..] else {
            return self.fail(format!(
                "STOP with {} values on the stack, expected 1",
                self.stack.len()
            ));
        };
        let trailing = self.input.len() - self.pos;
        if trailing != 0 {
            return self.fail(format!("{trailing} bytes after STOP"));
        }
        Ok(Graph {
            nodes: self.nodes,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(1, b"ab", None)` memoized and fetched again: `((1, b"ab", None), <same>)`.
    fn sample() -> Vec<u8> {
        let mut p = vec![0x80, 2, b'(', b'K', 1, b'U', 2, b'a', b'b', b'N', b't'];
        p.extend([b'q', 0, b'h', 0, 0x86, b'.']);
        p
    }

    #[test]
    fn tuples_memo_and_values() {
        let bytes = sample();
        let g = parse(&bytes).unwrap();
        let Node::Tuple(pair) = g.node(g.root) else {
            panic!("root is not a tuple: {:?}", g.node(g.root));
        };
        assert_eq!(pair.len(), 2);
        assert_eq!(pair[0], pair[1], "BINGET shares the memoized node");
        let Node::Tuple(items) = g.node(pair[0]) else {
            panic!("not a tuple");
        };
        let values: Vec<_> = items.iter().map(|&i| g.node(i).clone()).collect();
        assert_eq!(values, [Node::Int(1), Node::Bytes(b"ab"), Node::None]);
    }

    #[test]
    fn build_sets_the_state_of_a_reduce_result_seen_through_the_memo() {
        let mut p = vec![0x80, 2, b'c'];
        p.extend(b"numpy\ndtype\n");
        p.extend([b'U', 2, b'f', b'4', 0x85, b'R', b'q', 1]);
        p.extend([
            b'J', 0xff, 0xff, 0xff, 0xff, 0x85, b'b', b'h', 1, 0x86, b'.',
        ]);
        let g = parse(&p).unwrap();
        let Node::Tuple(pair) = g.node(g.root) else {
            panic!("not a tuple")
        };
        let Node::Call {
            callable, state, ..
        } = g.node(pair[1])
        else {
            panic!("not a call")
        };
        assert_eq!(
            g.node(*callable),
            &Node::Global {
                module: "numpy",
                name: "dtype"
            }
        );
        let Node::Tuple(state) = g.node(state.expect("built")) else {
            panic!("state is not a tuple")
        };
        assert_eq!(g.node(state[0]), &Node::Int(-1));
    }

    #[test]
    fn rejects_what_it_does_not_know_with_the_offset() {
        let good = sample();
        let huge = [0x80, 2, b'T', 0xff, 0xff, 0xff, 0x7f, 0, 0];
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"PK\x03\x04".to_vec(), "not a protocol-2 pickle"),
            (vec![0x80, 4, b'N', b'.'], "PROTO 4"),
            (vec![0x80, 2, b'N', 0x80, 2, b'.'], "PROTO 2"),
            (good[..good.len() - 1].to_vec(), "truncated: an opcode"),
            (
                good[..7].to_vec(),
                "truncated: SHORT_BINSTRING needs 2 bytes",
            ),
            (
                huge.to_vec(),
                "BINSTRING needs 2147483647 bytes, only 2 remain",
            ),
            (
                vec![0x80, 2, b'T', 0xff, 0xff, 0xff, 0xff],
                "negative length",
            ),
            ([good.clone(), vec![0]].concat(), "1 bytes after STOP"),
            (vec![0x80, 2, b'N', b'N', b'.'], "2 values on the stack"),
            (vec![0x80, 2, b'(', b'N', b'.'], "unclosed MARK"),
            (vec![0x80, 2, b't', b'.'], "TUPLE without a MARK"),
            (
                vec![0x80, 2, b'(', 0x85, b'.'],
                "TUPLE1 pops an empty stack",
            ),
            (vec![0x80, 2, b'h', 3, b'.'], "BINGET 3"),
            (vec![0x80, 2, b'q', 3, b'.'], "BINPUT with an empty stack"),
            (vec![0x80, 2, b'N', b'N', b'R', b'.'], "not a tuple"),
            (vec![0x80, 2, b'N', b'N', b'b', b'.'], "BUILD on something"),
            (vec![0x80, 2, b'c', b'a', b'\n'], "no terminating newline"),
            (
                vec![0x80, 2, b'c', b'\n', b'b', b'\n', b'.'],
                "empty or not UTF-8",
            ),
            (vec![0x80, 2, b'X', 0, 0, 0, 0], "unsupported opcode 0x58"),
        ];
        for (bytes, needle) in cases {
            let err = parse(&bytes).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
            assert!(err.starts_with("at byte "), "{err}");
        }
        assert_eq!(parse(&[0x80, 2, b'T', 1]).unwrap_err().offset, 2);
    }
}
