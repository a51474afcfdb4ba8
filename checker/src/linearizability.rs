//! A Wing–Gong–Lowe linearizability search over one object's history.
//!
//! The history of one object (linearizability is local, so each object is checked alone) is
//! a list of operations with a call and a return time. The search walks a doubly linked list
//! of call and return entries; at each step it tries to linearize an operation whose call
//! comes before every pending return, lifts it out of the list, and backtracks when it meets
//! the return of an operation it has not linearized. Configurations (set of linearized
//! operations, model state) already explored are memoized, so none is searched twice.
//!
//! One partial-order reduction keeps read-heavy histories linear: a read-only operation that
//! succeeds in the current state is linearized at once and never un-done alone. That is
//! sound: in any linearization from this configuration the read sits somewhere the state
//! equals its value, and moving it to "now" breaks no real-time constraint (every operation
//! that had to precede it is already linearized, since its call precedes every pending
//! return) and changes no state.

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash;
    type Op;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// The state after `op`, or `None` when `op` cannot happen in `state` (say, a read
    /// returning another value).
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
    /// True when `op` never changes the state it succeeds in.
    fn is_read_only(&self, op: &Self::Op) -> bool;
}

/// One operation of the history: `call` and `ret` in any unit; `f64::NEG_INFINITY` and
/// `f64::INFINITY` stand for "at any time before" and "never returned".
#[derive(Clone, Debug, PartialEq)]
pub struct Operation<O> {
    pub call: f64,
    pub ret: f64,
    pub op: O,
}

/// The search's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A valid order: indices into the history, first linearized first.
    Linearizable(Vec<usize>),
    /// No valid order exists. `stuck_at` is the operation whose return blocked the deepest
    /// attempt (the one to look at first).
    NotLinearizable { stuck_at: usize },
}

/// Operations on a [`RegisterModel`] of values `V`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOp<V> {
    Write(V),
    /// Saw `None` (absent) or a value.
    Read(Option<V>),
}

/// A register holding `None` (absent) or a value of type `V`: `Write` sets it, `Read` must
/// see it.
pub struct RegisterModel<V>(std::marker::PhantomData<V>);

impl<V> Default for RegisterModel<V> {
    fn default() -> Self {
        RegisterModel(std::marker::PhantomData)
    }
}

impl<V: Clone + Eq + Hash> Model for RegisterModel<V> {
    type State = Option<V>;
    type Op = RegisterOp<V>;

    fn init(&self) -> Option<V> {
        None
    }

    fn step(&self, state: &Option<V>, op: &RegisterOp<V>) -> Option<Option<V>> {
        match op {
            RegisterOp::Write(value) => Some(Some(value.clone())),
            RegisterOp::Read(seen) => (seen == state).then(|| state.clone()),
        }
    }

    fn is_read_only(&self, op: &RegisterOp<V>) -> bool {
        matches!(op, RegisterOp::Read(_))
    }
}

const HEAD: usize = 0;
const NIL: usize = usize::MAX;

#[derive(Clone, Copy)]
struct Node {
    prev: usize,
    next: usize,
    op: usize,
    is_call: bool,
    /// For a call entry, its return entry.
    ret: usize,
}

struct Frame<S> {
    call: usize,
    state: S,
    /// A read linearized by the reduction: undoing it alone is pointless.
    forced: bool,
}

/// The entries list with dancing-links removal.
struct Entries {
    nodes: Vec<Node>,
}

impl Entries {
    fn new<O>(history: &[Operation<O>]) -> Entries {
        // (time, is_return, op): at equal times calls come first, so touching operations
        // count as concurrent (clocks have millisecond resolution).
        let mut events: Vec<(f64, bool, usize)> = Vec::with_capacity(history.len() * 2);
        for (i, op) in history.iter().enumerate() {
            // NaN means "unknown": call at any time before, return never.
            let call = if op.call.is_nan() {
                f64::NEG_INFINITY
            } else {
                op.call
            };
            let ret = if op.ret.is_nan() {
                f64::INFINITY
            } else {
                op.ret.max(call)
            };
            events.push((call, false, i));
            events.push((ret, true, i));
        }
        events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut nodes = vec![Node {
            prev: NIL,
            next: NIL,
            op: NIL,
            is_call: false,
            ret: NIL,
        }];
        let mut return_node = vec![NIL; history.len()];
        for (position, &(_, is_return, op)) in events.iter().enumerate() {
            let index = position + 1;
            nodes.push(Node {
                prev: index - 1,
                next: if position + 1 < events.len() {
                    index + 1
                } else {
                    NIL
                },
                op,
                is_call: !is_return,
                ret: NIL,
            });
            if is_return {
                return_node[op] = index;
            }
        }
        nodes[HEAD].next = if events.is_empty() { NIL } else { 1 };
        for node in nodes.iter_mut().skip(1) {
            if node.is_call {
                node.ret = return_node[node.op];
            }
        }
        Entries { nodes }
    }

    fn unlink(&mut self, index: usize) {
        let Node { prev, next, .. } = self.nodes[index];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, index: usize) {
        let Node { prev, next, .. } = self.nodes[index];
        self.nodes[prev].next = index;
        if next != NIL {
            self.nodes[next].prev = index;
        }
    }

    /// Removes a call entry and its return entry.
    fn lift(&mut self, call: usize) {
        let ret = self.nodes[call].ret;
        self.unlink(call);
        self.unlink(ret);
    }

    /// Undoes [`Entries::lift`] (in reverse order, as dancing links require).
    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].ret;
        self.relink(ret);
        self.relink(call);
    }
}

/// A fixed-size bit set, the memo key's "which operations are linearized".
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Searches for a linearization of `history` against `model`.
pub fn check<M: Model>(model: &M, history: &[Operation<M::Op>]) -> Verdict {
    let mut entries = Entries::new(history);
    let mut state = model.init();
    let mut linearized = Bits::new(history.len());
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut deepest: Option<(usize, usize)> = None; // (depth, stuck op)
    let mut entry = entries.nodes[HEAD].next;

    while entries.nodes[HEAD].next != NIL {
        // The list always ends with a return entry, so `entry` cannot run off its end.
        let node = entries.nodes[entry];
        let mut backtrack = !node.is_call;
        if node.is_call {
            if let Some(next_state) = model.step(&state, &history[node.op].op) {
                let read_only = model.is_read_only(&history[node.op].op);
                let mut key = linearized.clone();
                key.set(node.op);
                if seen.insert((key, next_state.clone())) {
                    stack.push(Frame {
                        call: entry,
                        state: std::mem::replace(&mut state, next_state),
                        forced: read_only,
                    });
                    linearized.set(node.op);
                    entries.lift(entry);
                    entry = entries.nodes[HEAD].next;
                    continue;
                }
                // Already explored and failed; for a read that dooms this configuration too.
                backtrack = read_only;
            }
            if !backtrack {
                entry = node.next;
                continue;
            }
        }
        if !node.is_call && deepest.is_none_or(|(depth, _)| stack.len() >= depth) {
            deepest = Some((stack.len(), node.op));
        }
        loop {
            let Some(frame) = stack.pop() else {
                let stuck_at = deepest.map_or(node.op, |(_, op)| op);
                return Verdict::NotLinearizable { stuck_at };
            };
            state = frame.state;
            linearized.clear(entries.nodes[frame.call].op);
            entries.unlift(frame.call);
            if !frame.forced {
                entry = entries.nodes[frame.call].next;
                break;
            }
        }
    }
    Verdict::Linearizable(
        stack
            .iter()
            .map(|frame| entries.nodes[frame.call].op)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    type Op = Operation<RegisterOp<u32>>;

    fn w(call: f64, ret: f64, value: u32) -> Op {
        Operation {
            call,
            ret,
            op: RegisterOp::Write(value),
        }
    }

    fn r(call: f64, ret: f64, seen: Option<u32>) -> Op {
        Operation {
            call,
            ret,
            op: RegisterOp::Read(seen),
        }
    }

    fn verdict(history: &[Op]) -> Verdict {
        check(&RegisterModel::<u32>::default(), history)
    }

    /// Replays a claimed linearization: valid steps, and real-time order respected.
    fn assert_valid(history: &[Op], order: &[usize]) {
        assert_eq!(order.len(), history.len());
        let model = RegisterModel::<u32>::default();
        let mut state = model.init();
        for (position, &i) in order.iter().enumerate() {
            state = model.step(&state, &history[i].op).expect("step fails");
            for &later in &order[position + 1..] {
                assert!(
                    history[later].ret >= history[i].call,
                    "{later} returned before {i} was called but comes after it"
                );
            }
        }
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_eq!(verdict(&[]), Verdict::Linearizable(vec![]));
    }

    #[test]
    fn sequential_write_then_reads_is_linearizable() {
        let h = [r(0.0, 1.0, None), w(2.0, 3.0, 7), r(4.0, 5.0, Some(7))];
        let Verdict::Linearizable(order) = verdict(&h) else {
            panic!("not linearizable")
        };
        assert_eq!(order, vec![0, 1, 2]);
    }

    #[test]
    fn reads_racing_the_write_may_see_either() {
        // Both reads overlap the write: one sees the old value, one the new, in either order
        // of return.
        let h = [
            w(0.0, 10.0, 7),
            r(1.0, 9.0, Some(7)),
            r(2.0, 11.0, None),
            r(12.0, 13.0, Some(7)),
        ];
        let Verdict::Linearizable(order) = verdict(&h) else {
            panic!("not linearizable")
        };
        assert_valid(&h, &order);
    }

    #[test]
    fn absent_after_acknowledged_write_is_not_linearizable() {
        let h = [w(0.0, 1.0, 7), r(2.0, 3.0, None)];
        assert_eq!(verdict(&h), Verdict::NotLinearizable { stuck_at: 1 });
    }

    #[test]
    fn found_then_absent_is_not_linearizable_even_without_ack() {
        // The write never returned (unknown outcome), yet one read saw it and a later one did not.
        let h = [
            w(0.0, f64::INFINITY, 7),
            r(5.0, 6.0, Some(7)),
            r(7.0, 8.0, None),
        ];
        assert!(matches!(verdict(&h), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn concurrent_reads_disagreeing_in_order_is_not_linearizable() {
        // Read 1 sees the new value and returns before read 2 starts, which sees the old one.
        let h = [
            w(0.0, 100.0, 7),
            r(10.0, 20.0, Some(7)),
            r(30.0, 40.0, None),
        ];
        assert_eq!(verdict(&h), Verdict::NotLinearizable { stuck_at: 2 });
    }

    #[test]
    fn a_value_nobody_wrote_is_not_linearizable() {
        let h = [w(0.0, 1.0, 7), r(0.5, 3.0, Some(8))];
        assert!(matches!(verdict(&h), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn two_writes_need_backtracking() {
        // w1 and w2 are concurrent; the reads force w2 before w1 although w1 is listed first.
        let h = [
            w(0.0, 10.0, 1),
            w(1.0, 10.0, 2),
            r(11.0, 12.0, Some(1)),
            r(0.5, 5.0, Some(2)),
        ];
        let Verdict::Linearizable(order) = verdict(&h) else {
            panic!("not linearizable")
        };
        assert_valid(&h, &order);
        assert_eq!(order, vec![1, 3, 0, 2]);
    }

    #[test]
    fn two_writes_and_contradicting_reads_are_not_linearizable() {
        // After both writes, one reader sees 1 then another (later) sees 2 then 1 again.
        let h = [
            w(0.0, 10.0, 1),
            w(0.0, 10.0, 2),
            r(11.0, 12.0, Some(1)),
            r(13.0, 14.0, Some(2)),
        ];
        assert!(matches!(verdict(&h), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn thousands_of_racing_reads_and_one_late_stale_read() {
        // Thousands of reads in overlapping waves around one write: the search must finish
        // (memo + reduction), and a single stale read at the end must be found.
        let mut h = vec![w(500.0, 600.0, 7)];
        for i in 0..5000 {
            let call = f64::from(i) * 0.3;
            let seen = if call + 5.0 < 500.0 {
                None
            } else if call > 600.0 {
                Some(7)
            } else if i % 2 == 0 {
                None
            } else {
                Some(7)
            };
            // Racing reads: an early "new" read must not follow a later "old" one.
            let (call, ret) = if (500.0..=600.0).contains(&call) {
                (500.0, 600.0)
            } else {
                (call, call + 5.0)
            };
            h.push(r(call, ret, seen));
        }
        let Verdict::Linearizable(order) = verdict(&h) else {
            panic!("not linearizable")
        };
        assert_eq!(order.len(), h.len());
        h.push(r(2000.0, 2001.0, None));
        assert_eq!(
            verdict(&h),
            Verdict::NotLinearizable {
                stuck_at: h.len() - 1
            }
        );
    }
}
