//! `Slab`: the groups of a pool by key, in O(1) with no hashing.
//!
//! A key is the slot's index and a serial that is never reused, so a stale key (a `Group`
//! handle outliving its group) never finds another group that took its slot.

use super::lanes::GroupKey;

pub(crate) struct Slab<V> {
    slots: Vec<Option<(GroupKey, V)>>,
    free: Vec<u32>,
    serial: u32,
}

impl<V> Default for Slab<V> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            serial: 0,
        }
    }
}

fn index(key: GroupKey) -> usize {
    (key.0 & u64::from(u32::MAX)) as usize
}

impl<V> Slab<V> {
    /// Stores `value` under a new key.
    pub(crate) fn insert(&mut self, value: V) -> GroupKey {
        self.serial = self.serial.wrapping_add(1);
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let key = GroupKey((u64::from(self.serial) << 32) | u64::from(idx));
        self.slots[idx as usize] = Some((key, value));
        key
    }

    #[inline]
    pub(crate) fn get(&self, key: GroupKey) -> Option<&V> {
        match self.slots.get(index(key))? {
            Some((k, v)) if *k == key => Some(v),
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, key: GroupKey) -> Option<&mut V> {
        match self.slots.get_mut(index(key))? {
            Some((k, v)) if *k == key => Some(v),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, key: GroupKey) -> Option<V> {
        let slot = self.slots.get_mut(index(key))?;
        if !matches!(slot, Some((k, _)) if *k == key) {
            return None;
        }
        let (_, value) = slot.take()?;
        self.free.push(index(key) as u32);
        // Give memory back once most slots are free (after many groups).
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
            let last = self.slots.len() as u32;
            self.free.retain(|&i| i != last);
        }
        Some(value)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (GroupKey, &V)> {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().map(|(k, v)| (*k, v)))
    }

    pub(crate) fn keys(&self) -> Vec<GroupKey> {
        self.iter().map(|(k, _)| k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn a_stale_key_finds_nothing_in_a_reused_slot() {
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.get(a), Some(&"a"));
        assert_eq!(s.remove(a), Some("a"));
        let c = s.insert("c");
        assert_ne!(a, c);
        assert_eq!(s.get(a), None, "the slot went to c");
        assert_eq!(s.get(c), Some(&"c"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.keys(), [c, b]);
    }
}
