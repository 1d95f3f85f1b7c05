//! A pool's single flights (`TaskPool::spawn_keyed`): one [`SingleFlight`] per key and
//! output type, made on first use. A leaf, so that the pool's core can hold it; the
//! flights' steps are in `src/flight.rs`.

use crate::policy::SingleFlight;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

/// The registry: a [`SingleFlight<K, V>`] per `(K, V)`.
#[derive(Default)]
pub(crate) struct Flights(Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>);

impl fmt::Debug for Flights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flights").finish_non_exhaustive()
    }
}

impl Flights {
    /// The flights of keys `K` and values `V` (made on first use). The registry's lock is
    /// held only to find or make the entry: no user code runs under it.
    pub(crate) fn of<K, V>(&self) -> SingleFlight<K, V>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let mut by_type = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        by_type
            .entry(TypeId::of::<(K, V)>())
            .or_insert_with(|| Box::new(SingleFlight::<K, V>::new()))
            .downcast_ref::<SingleFlight<K, V>>()
            .expect("stored under its own type")
            .clone()
    }
}
