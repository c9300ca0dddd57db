//! The randomness of the sync's peer choices (which peers are asked first, which get
//! full blocks and transactions): the thread's generator, or, with the `sim` feature,
//! one a deterministic simulation seeded (`seed_rng`).

use rand::seq::SliceRandom;
use rand::RngCore;

use devmux_eth::EthPeer;

/// Calls `f` with the generator to draw from.
pub(crate) fn with_rng<T>(f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
    #[cfg(feature = "sim")]
    if let Some(mut rng) = sim::take() {
        let out = f(&mut rng);
        sim::put(rng);
        return out;
    }
    f(&mut rand::thread_rng())
}

/// Shuffles `peers` (their order came from a hash map). Seeded, they are sorted by id
/// first, so that the draw alone decides the order.
pub(crate) fn shuffle_peers(peers: &mut [EthPeer]) {
    shuffle_with(peers, EthPeer::peer_id);
}

/// Shuffles `items`, whose order came from a hash map; seeded, sorted by `id` first.
pub(crate) fn shuffle_with<T>(items: &mut [T], id: impl Fn(&T) -> devmux_network::PeerId) {
    #[cfg(feature = "sim")]
    if sim::seeded() {
        items.sort_by_key(|item| id(item));
    }
    #[cfg(not(feature = "sim"))]
    let _ = id;
    with_rng(|rng| items.shuffle(rng));
}

#[cfg(feature = "sim")]
mod sim {
    use std::cell::RefCell;

    use rand::rngs::StdRng;

    thread_local! {
        static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
    }

    pub(super) fn seeded() -> bool {
        SEEDED.with(|cell| cell.borrow().is_some())
    }

    /// Takes the generator out while it is drawn from (put back by [`put`]).
    pub(super) fn take() -> Option<StdRng> {
        SEEDED.with(|cell| cell.borrow_mut().take())
    }

    pub(super) fn put(rng: StdRng) {
        SEEDED.with(|cell| *cell.borrow_mut() = Some(rng));
    }

    pub(super) fn set(rng: Option<StdRng>) {
        SEEDED.with(|cell| *cell.borrow_mut() = rng);
    }
}

/// Makes the sync's peer choices on this thread draw from a generator seeded with
/// `seed` (`None`: the thread's own again, the default). For a turmoil simulation, whose
/// hosts all run on the thread that steps it (feature `sim`).
#[cfg(feature = "sim")]
pub fn seed_rng(seed: Option<u64>) {
    use rand::SeedableRng;
    sim::set(seed.map(rand::rngs::StdRng::seed_from_u64));
}
