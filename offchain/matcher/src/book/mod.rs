//! The order book's storage: preallocated slabs, intrusive lists and indexes.
//!
//! * Orders live in a slab (`Vec<OrderNode>` reserved for `max_orders`, recycled through a free
//!   list). Each node is linked into the FIFO of its price level (`prev`/`next`) and into its
//!   user's list (`user_prev`/`user_next`), and remembers its level and its place in the expiry
//!   heap, so removing any order is O(1) apart from the heap.
//! * Levels live in a second slab. Each side keeps a ladder, a `Vec<(key, level)>` sorted so
//!   that the best level is the last element: best price is O(1), removing the best level is a
//!   `pop`, and adding a level near the top moves only the few entries above it.
//! * An order-id index, a client-order-id index and a user index (hash maps reserved up front).
//!
//! Nothing here allocates after construction as long as at most `max_orders` orders rest and
//! the user index (live users plus up to `max_orders / 8` idle ones, at most 65,536 idle) and
//! the client-order-id index stay within 65,536 entries; beyond that they grow once to the new
//! high-water mark and stay there.
//! Slab indexes are `u32`; `NIL` marks the end of a list. All slab indexing is by indexes the
//! book itself handed out, so it cannot go out of bounds.

mod hash;
mod heap;

use std::collections::HashMap;

use crate::types::{ClientOrderId, Lots, OrderId, OrderType, SelfTradeMode, Side, Ticks, UserId};
use hash::{IdBuild, KeyedBuild};
use heap::ExpiryHeap;

/// Initial room for distinct users and client order ids.
const USER_RESERVE: usize = 1 << 16;

/// Empty levels kept in the ladders beyond half the live ones before they are compacted away.
const EMPTY_SLACK: usize = 8;

/// End-of-list marker.
pub(crate) const NIL: u32 = u32::MAX;

/// One resting order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OrderNode {
    pub(crate) id: OrderId,
    pub(crate) price: Ticks,
    pub(crate) remaining: Lots,
    /// Time priority: lower rested earlier. Unique across the book.
    pub(crate) stamp: u64,
    pub(crate) nonce: u64,
    pub(crate) expiry: u64,
    pub(crate) client_order_id: Option<ClientOrderId>,
    prev: u32,
    pub(crate) next: u32,
    user_prev: u32,
    pub(crate) user_next: u32,
    pub(crate) level: u32,
    pub(crate) user: u32,
    heap_pos: u32,
    pub(crate) side: Side,
    pub(crate) order_type: OrderType,
    pub(crate) self_trade: SelfTradeMode,
}

/// One price level: a FIFO of orders and its aggregate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Level {
    pub(crate) price: Ticks,
    pub(crate) side: Side,
    pub(crate) head: u32,
    tail: u32,
    pub(crate) total: Lots,
    pub(crate) count: u32,
}

#[derive(Debug, Clone, Copy)]
struct UserEntry {
    key: UserId,
    head: u32,
    tail: u32,
    count: u32,
    /// In the user index: live (count > 0) or idle (count 0, kept for reuse).
    mapped: bool,
}

/// What the engine hands to [`Book::insert`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewResting {
    pub(crate) id: OrderId,
    pub(crate) user: UserId,
    pub(crate) client_order_id: Option<ClientOrderId>,
    pub(crate) side: Side,
    pub(crate) price: Ticks,
    pub(crate) size: Lots,
    pub(crate) order_type: OrderType,
    pub(crate) self_trade: SelfTradeMode,
    pub(crate) nonce: u64,
    pub(crate) expiry: u64,
    pub(crate) stamp: u64,
}

/// Ladder key: ascending order puts the best level last on both sides.
fn ladder_key(side: Side, price: Ticks) -> u64 {
    match side {
        Side::Buy => price.0,
        Side::Sell => !price.0,
    }
}

/// Storage of one market's resting orders.
#[derive(Debug, Clone)]
pub(crate) struct Book {
    orders: Vec<OrderNode>,
    free_order: u32,
    levels: Vec<Level>,
    free_level: u32,
    bids: Vec<(u64, u32)>,
    asks: Vec<(u64, u32)>,
    /// Levels with no orders still in a ladder (never the last entry of one).
    empty_levels: usize,
    index: HashMap<OrderId, u32, IdBuild>,
    client_index: HashMap<(u32, ClientOrderId), u32, KeyedBuild>,
    users: HashMap<UserId, u32, KeyedBuild>,
    user_entries: Vec<UserEntry>,
    free_user: u32,
    /// Users with no resting order still in the index, so that a user who comes back does
    /// not cost an index insert and remove per order.
    idle_users: u32,
    /// Idle users beyond this many are swept out of the index.
    idle_limit: u32,
    expiry: ExpiryHeap,
    len: u32,
}

impl Book {
    /// Reserves everything for `capacity` resting orders. Hash maps get twice that, so deletes
    /// (tombstones) are cleaned up by rehashing in place rather than by growing. Fails instead
    /// of aborting if the memory cannot be had.
    pub(crate) fn with_capacity(capacity: u32) -> Result<Book, std::collections::TryReserveError> {
        let n = capacity as usize;
        let maps = n.saturating_mul(2);
        let mut book = Book {
            orders: Vec::new(),
            free_order: NIL,
            levels: Vec::new(),
            free_level: NIL,
            bids: Vec::new(),
            asks: Vec::new(),
            empty_levels: 0,
            index: HashMap::default(),
            client_index: HashMap::default(),
            users: HashMap::default(),
            user_entries: Vec::new(),
            free_user: NIL,
            idle_users: 0,
            idle_limit: (capacity / 8).clamp(8, 1 << 16),
            expiry: ExpiryHeap::with_capacity(0),
            len: 0,
        };
        // Users and client order ids are usually far fewer than orders: they start smaller and
        // grow (only) when a new high-water mark is reached.
        let keyed = maps.min(USER_RESERVE);
        // Live levels <= orders; empty levels kept for reuse <= half the live ones + slack.
        let levels = n
            .saturating_add(n / 2)
            .saturating_add(EMPTY_SLACK.saturating_add(1));
        book.orders.try_reserve_exact(n)?;
        book.levels.try_reserve_exact(levels)?;
        book.bids.try_reserve_exact(levels)?;
        book.asks.try_reserve_exact(levels)?;
        let idle = book.idle_limit as usize;
        book.user_entries
            .try_reserve_exact(n.min(USER_RESERVE).saturating_add(idle).saturating_add(1))?;
        book.index.try_reserve(maps)?;
        book.client_index.try_reserve(keyed)?;
        book.users.try_reserve(keyed.saturating_add(idle))?;
        book.expiry.try_reserve(n)?;
        Ok(book)
    }

    /// Resting orders.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    pub(crate) fn order(&self, slot: u32) -> &OrderNode {
        &self.orders[slot as usize]
    }

    pub(crate) fn level(&self, level: u32) -> &Level {
        &self.levels[level as usize]
    }

    pub(crate) fn user_key(&self, user_slot: u32) -> UserId {
        self.user_entries[user_slot as usize].key
    }

    pub(crate) fn find(&self, id: OrderId) -> Option<u32> {
        self.index.get(&id).copied()
    }

    pub(crate) fn user_slot(&self, user: &UserId) -> Option<u32> {
        self.users.get(user).copied()
    }

    pub(crate) fn find_client(&self, user: &UserId, cid: ClientOrderId) -> Option<u32> {
        let u = self.user_slot(user)?;
        self.client_index.get(&(u, cid)).copied()
    }

    /// First order of a user's list (orders in time-priority order), or `NIL`.
    pub(crate) fn user_head(&self, user_slot: u32) -> u32 {
        self.user_entries[user_slot as usize].head
    }

    fn ladder(&self, side: Side) -> &Vec<(u64, u32)> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn ladder_mut(&mut self, side: Side) -> &mut Vec<(u64, u32)> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// Best level of a side.
    pub(crate) fn best(&self, side: Side) -> Option<u32> {
        self.ladder(side).last().map(|&(_, l)| l)
    }

    /// Levels of a side from best to worst.
    pub(crate) fn levels_from_best(&self, side: Side) -> impl Iterator<Item = u32> + '_ {
        self.ladder(side)
            .iter()
            .rev()
            .map(|&(_, l)| l)
            .filter(|&l| self.levels[l as usize].count > 0)
    }

    /// Slot of the order with the smallest `(expiry, id)` among orders with an expiry.
    pub(crate) fn next_expiring(&self) -> Option<u32> {
        self.expiry.peek()
    }

    /// The level at `price` on `side`, if there is one (it may be empty).
    pub(crate) fn level_at(&self, side: Side, price: Ticks) -> Option<u32> {
        let key = ladder_key(side, price);
        let ladder = self.ladder(side);
        if let Some(&(k, l)) = ladder.last() {
            if k == key {
                return Some(l);
            }
        }
        ladder
            .binary_search_by(|&(k, _)| k.cmp(&key))
            .ok()
            .map(|pos| ladder[pos].1)
    }

    /// The level for `price`, reusing an empty one or creating it; the caller links an order.
    fn level_for(&mut self, side: Side, price: Ticks) -> u32 {
        let key = ladder_key(side, price);
        let ladder = self.ladder(side);
        let found = match ladder.last() {
            Some(&(k, l)) if k == key => Ok(l),
            _ => ladder
                .binary_search_by(|&(k, _)| k.cmp(&key))
                .map(|pos| ladder[pos].1),
        };
        let pos = match found {
            Ok(level) => {
                if self.levels[level as usize].count == 0 {
                    self.empty_levels = self.empty_levels.saturating_sub(1);
                }
                return level;
            }
            Err(pos) => pos,
        };
        let fresh = Level {
            price,
            side,
            head: NIL,
            tail: NIL,
            total: Lots::ZERO,
            count: 0,
        };
        let level = if self.free_level == NIL {
            self.levels.push(fresh);
            self.levels.len().saturating_sub(1) as u32
        } else {
            let l = self.free_level;
            self.free_level = self.levels[l as usize].head;
            self.levels[l as usize] = fresh;
            l
        };
        self.ladder_mut(side).insert(pos, (key, level));
        level
    }

    fn free_level_slot(&mut self, level: u32) {
        self.levels[level as usize].head = self.free_level;
        self.free_level = level;
    }

    /// A level just lost its last order. At the top of its ladder it is dropped, with any
    /// empty levels under it; elsewhere it stays, empty, for reuse (no shifting of the ladder),
    /// until empty levels outnumber half the live ones plus a slack and are compacted away.
    fn level_emptied(&mut self, level: u32) {
        let side = self.levels[level as usize].side;
        if self.best(side) != Some(level) {
            self.empty_levels = self.empty_levels.saturating_add(1);
            let live = self
                .bids
                .len()
                .saturating_add(self.asks.len())
                .saturating_sub(self.empty_levels);
            if self.empty_levels > (live / 2).saturating_add(EMPTY_SLACK) {
                self.compact();
            }
            return;
        }
        self.ladder_mut(side).pop();
        self.free_level_slot(level);
        while let Some(&(_, l)) = self.ladder(side).last() {
            if self.levels[l as usize].count != 0 {
                break;
            }
            self.ladder_mut(side).pop();
            self.free_level_slot(l);
            self.empty_levels = self.empty_levels.saturating_sub(1);
        }
    }

    /// Removes every empty level from both ladders.
    fn compact(&mut self) {
        let levels = &mut self.levels;
        let free = &mut self.free_level;
        for ladder in [&mut self.bids, &mut self.asks] {
            ladder.retain(|&(_, l)| {
                let keep = levels[l as usize].count > 0;
                if !keep {
                    levels[l as usize].head = *free;
                    *free = l;
                }
                keep
            });
        }
        self.empty_levels = 0;
    }

    fn intern_user(&mut self, user: UserId, hint: Option<u32>) -> u32 {
        if let Some(u) = hint {
            if let Some(entry) = self.user_entries.get(u as usize) {
                if entry.count > 0 && entry.key == user {
                    return u;
                }
            }
        }
        if let Some(&u) = self.users.get(&user) {
            if self.user_entries[u as usize].count == 0 {
                self.idle_users = self.idle_users.saturating_sub(1);
            }
            return u;
        }
        let entry = UserEntry {
            key: user,
            head: NIL,
            tail: NIL,
            count: 0,
            mapped: true,
        };
        let u = if self.free_user == NIL {
            self.user_entries.push(entry);
            self.user_entries.len().saturating_sub(1) as u32
        } else {
            let u = self.free_user;
            self.free_user = self.user_entries[u as usize].head;
            self.user_entries[u as usize] = entry;
            u
        };
        self.users.insert(user, u);
        u
    }

    /// Appends an order at the back of its level and of its user's list. The caller has
    /// checked capacity and uniqueness of the id and client order id. `user_hint` may name the
    /// user's slot if the caller knows it.
    pub(crate) fn insert(&mut self, new: NewResting, user_hint: Option<u32>) -> u32 {
        let level = self.level_for(new.side, new.price);
        let user = self.intern_user(new.user, user_hint);
        let node = OrderNode {
            id: new.id,
            price: new.price,
            remaining: new.size,
            stamp: new.stamp,
            nonce: new.nonce,
            expiry: new.expiry,
            client_order_id: new.client_order_id,
            prev: NIL,
            next: NIL,
            user_prev: NIL,
            user_next: NIL,
            level,
            user,
            heap_pos: NIL,
            side: new.side,
            order_type: new.order_type,
            self_trade: new.self_trade,
        };
        let slot = if self.free_order == NIL {
            self.orders.push(node);
            self.orders.len().saturating_sub(1) as u32
        } else {
            let s = self.free_order;
            self.free_order = self.orders[s as usize].next;
            self.orders[s as usize] = node;
            s
        };
        self.link_level(slot, level);
        self.link_user(slot);
        let entry = &mut self.user_entries[user as usize];
        entry.count = entry.count.saturating_add(1);
        self.index.insert(new.id, slot);
        if let Some(cid) = new.client_order_id {
            self.client_index.insert((user, cid), slot);
        }
        if new.expiry != 0 {
            self.expiry.push(&mut self.orders, slot);
        }
        self.len = self.len.saturating_add(1);
        slot
    }

    /// Appends an order at the tail of its user's list (the count is the caller's business).
    fn link_user(&mut self, slot: u32) {
        let user = self.orders[slot as usize].user;
        let entry = &mut self.user_entries[user as usize];
        let old_tail = entry.tail;
        entry.tail = slot;
        if old_tail == NIL {
            entry.head = slot;
        } else {
            self.orders[old_tail as usize].user_next = slot;
        }
        let node = &mut self.orders[slot as usize];
        node.user_prev = old_tail;
        node.user_next = NIL;
    }

    /// Takes an order out of its user's list (the count is the caller's business).
    fn unlink_user(&mut self, slot: u32) {
        let node = self.orders[slot as usize];
        let entry = &mut self.user_entries[node.user as usize];
        if node.user_prev == NIL {
            entry.head = node.user_next;
        } else {
            self.orders[node.user_prev as usize].user_next = node.user_next;
        }
        if node.user_next == NIL {
            entry.tail = node.user_prev;
        } else {
            self.orders[node.user_next as usize].user_prev = node.user_prev;
        }
    }

    /// Takes a resting order out of its level, keeping everything else (index, user list,
    /// expiry). Returns true if that emptied the level. Detached orders must be
    /// re-attached or removed before the command ends.
    pub(crate) fn detach(&mut self, slot: u32) -> bool {
        let dropped = self.unlink_level(slot);
        self.orders[slot as usize].level = NIL;
        dropped
    }

    /// Puts a detached order at the back of the level for `price` and of its user's list,
    /// with `size` open and the new time priority `stamp`.
    pub(crate) fn attach(&mut self, slot: u32, price: Ticks, size: Lots, stamp: u64) {
        let side = self.orders[slot as usize].side;
        let level = self.level_for(side, price);
        let node = &mut self.orders[slot as usize];
        node.price = price;
        node.remaining = size;
        node.stamp = stamp;
        node.level = level;
        self.link_level(slot, level);
        self.unlink_user(slot);
        self.link_user(slot);
    }

    fn link_level(&mut self, slot: u32, level: u32) {
        let size = self.orders[slot as usize].remaining;
        let l = &mut self.levels[level as usize];
        let old_tail = l.tail;
        l.tail = slot;
        l.total = Lots(l.total.0.saturating_add(size.0));
        l.count = l.count.saturating_add(1);
        if old_tail == NIL {
            l.head = slot;
        } else {
            self.orders[old_tail as usize].next = slot;
            self.orders[slot as usize].prev = old_tail;
        }
    }

    /// Removes an order from its level, without freeing it. Returns true if that emptied the
    /// level (which may then be dropped).
    fn unlink_level(&mut self, slot: u32) -> bool {
        let node = self.orders[slot as usize];
        if node.level == NIL {
            return false;
        }
        let level = &mut self.levels[node.level as usize];
        level.total = Lots(level.total.0.saturating_sub(node.remaining.0));
        level.count = level.count.saturating_sub(1);
        if node.prev == NIL {
            level.head = node.next;
        } else {
            self.orders[node.prev as usize].next = node.next;
        }
        if node.next == NIL {
            level.tail = node.prev;
        } else {
            self.orders[node.next as usize].prev = node.prev;
        }
        let dropped = level.count == 0;
        if dropped {
            self.level_emptied(node.level);
        }
        let n = &mut self.orders[slot as usize];
        n.prev = NIL;
        n.next = NIL;
        dropped
    }

    /// Removes an order (resting or detached) completely. Returns a copy of it and whether its
    /// level is now empty.
    pub(crate) fn remove(&mut self, slot: u32) -> (OrderNode, bool) {
        let dropped = self.unlink_level(slot);
        self.expiry.remove(&mut self.orders, slot);
        self.unlink_user(slot);
        let node = self.orders[slot as usize];
        let entry = &mut self.user_entries[node.user as usize];
        entry.count = entry.count.saturating_sub(1);
        if let Some(cid) = node.client_order_id {
            self.client_index.remove(&(node.user, cid));
        }
        if entry.count == 0 {
            self.idle_users = self.idle_users.saturating_add(1);
            if self.idle_users > self.idle_limit {
                self.sweep_idle_users();
            }
        }
        self.index.remove(&node.id);
        self.orders[slot as usize].next = self.free_order;
        self.free_order = slot;
        self.len = self.len.saturating_sub(1);
        (node, dropped)
    }

    /// Drops every idle user from the index and frees their entries.
    fn sweep_idle_users(&mut self) {
        for (u, entry) in self.user_entries.iter_mut().enumerate() {
            if entry.mapped && entry.count == 0 {
                self.users.remove(&entry.key);
                entry.mapped = false;
                entry.head = self.free_user;
                self.free_user = u as u32;
            }
        }
        self.idle_users = 0;
    }

    /// Reduces a resting order's remaining size by `by` (at most its remaining size), keeping
    /// its place. Returns the new remaining size.
    pub(crate) fn reduce(&mut self, slot: u32, by: Lots) -> Lots {
        let node = &mut self.orders[slot as usize];
        let by = by.0.min(node.remaining.0);
        node.remaining = Lots(node.remaining.0.saturating_sub(by));
        let remaining = node.remaining;
        let level = &mut self.levels[node.level as usize];
        level.total = Lots(level.total.0.saturating_sub(by));
        remaining
    }

    /// Changes the signed terms of a resting order in place (expiry may move in the heap).
    pub(crate) fn set_terms(&mut self, slot: u32, nonce: u64, expiry: u64) {
        self.expiry.remove(&mut self.orders, slot);
        let node = &mut self.orders[slot as usize];
        node.nonce = nonce;
        node.expiry = expiry;
        if expiry != 0 {
            self.expiry.push(&mut self.orders, slot);
        }
    }

    /// All resting orders, in slab order (not a priority order).
    pub(crate) fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.index.values().copied()
    }
}
