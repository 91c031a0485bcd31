//! An indexed binary min-heap of resting orders by `(expiry, order id)`.
//!
//! Each order remembers its position, so a cancelled order leaves the heap at once
//! (O(log n)) instead of lingering as a stale entry: the heap never holds more than the
//! resting orders and so never grows past its preallocated size.

use super::{OrderNode, NIL};

/// Heap of order slots; positions are stored in `OrderNode::heap_pos`.
#[derive(Debug, Clone)]
pub(crate) struct ExpiryHeap {
    slots: Vec<u32>,
}

fn key(orders: &[OrderNode], slot: u32) -> (u64, u64) {
    let node = &orders[slot as usize];
    (node.expiry, node.id.0)
}

fn parent(i: usize) -> usize {
    i.saturating_sub(1) / 2
}

fn left(i: usize) -> usize {
    i.saturating_mul(2).saturating_add(1)
}

impl ExpiryHeap {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        ExpiryHeap {
            slots: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn try_reserve(
        &mut self,
        capacity: usize,
    ) -> Result<(), std::collections::TryReserveError> {
        self.slots.try_reserve_exact(capacity)
    }

    /// The slot with the smallest `(expiry, id)`.
    pub(crate) fn peek(&self) -> Option<u32> {
        self.slots.first().copied()
    }

    pub(crate) fn push(&mut self, orders: &mut [OrderNode], slot: u32) {
        let pos = self.slots.len();
        self.slots.push(slot);
        orders[slot as usize].heap_pos = pos as u32;
        self.sift_up(orders, pos);
    }

    pub(crate) fn remove(&mut self, orders: &mut [OrderNode], slot: u32) {
        let pos = orders[slot as usize].heap_pos;
        if pos == NIL {
            return;
        }
        orders[slot as usize].heap_pos = NIL;
        let pos = pos as usize;
        let Some(last) = self.slots.pop() else {
            return;
        };
        if pos < self.slots.len() {
            self.slots[pos] = last;
            orders[last as usize].heap_pos = pos as u32;
            self.sift_down(orders, pos);
            self.sift_up(orders, pos);
        }
    }

    fn swap(&mut self, orders: &mut [OrderNode], a: usize, b: usize) {
        self.slots.swap(a, b);
        orders[self.slots[a] as usize].heap_pos = a as u32;
        orders[self.slots[b] as usize].heap_pos = b as u32;
    }

    fn sift_up(&mut self, orders: &mut [OrderNode], mut pos: usize) {
        while pos > 0 {
            let up = parent(pos);
            if key(orders, self.slots[pos]) < key(orders, self.slots[up]) {
                self.swap(orders, pos, up);
                pos = up;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, orders: &mut [OrderNode], mut pos: usize) {
        let len = self.slots.len();
        loop {
            let l = left(pos);
            if l >= len {
                break;
            }
            let r = l.saturating_add(1);
            let mut best = l;
            if r < len && key(orders, self.slots[r]) < key(orders, self.slots[l]) {
                best = r;
            }
            if key(orders, self.slots[best]) < key(orders, self.slots[pos]) {
                self.swap(orders, pos, best);
                pos = best;
            } else {
                break;
            }
        }
    }
}
