//! Reads kept in flight on object stores, with the memory they hold bounded.
//!
//! A store answers each request after a round trip (10-50 ms), so reading one pack per core
//! leaves the line idle most of the time. These helpers fetch on threads of their own (plain
//! threads, not rayon workers: a worker blocked on the network would take a core from the
//! decrypting and verifying, and a worker blocked on a full buffer pool inside a nested rayon
//! join can deadlock) and hand what they fetched to the caller, never holding more than
//! `width` results at once: fetching, waiting to be consumed and being consumed all count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Condvar, Mutex};

/// A counting semaphore: `width` results alive at once.
struct Gate {
    free: Mutex<usize>,
    cv: Condvar,
}

/// One result's place in the gate, given back when dropped (after its consumer is done).
struct Permit<'a>(&'a Gate);

impl Gate {
    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap();
        while *free == 0 {
            free = self.cv.wait(free).unwrap();
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap() += 1;
        self.0.cv.notify_one();
    }
}

fn fetcher<'s, 'e>(
    s: &'s std::thread::Scope<'s, 'e>,
    f: impl FnOnce() + Send + 's,
) -> std::thread::ScopedJoinHandle<'s, ()> {
    std::thread::Builder::new()
        .name("cista-fetch".into())
        .spawn_scoped(s, f)
        .expect("spawning a fetch thread")
}

/// Fetches every item on `width` threads and consumes each result on the rayon pool as soon
/// as it arrives, in no particular order. At most `width` results exist at any time, so memory
/// stays at `width` times the largest result; consumers never wait on the fetchers, so the
/// cores decrypt while the next items are on the wire.
pub(crate) fn fetch_unordered<T, R, F, C>(items: &[T], width: usize, fetch: F, consume: C)
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
    C: Fn(&T, R) + Sync,
{
    let width = width.clamp(1, items.len().max(1));
    let gate = Gate {
        free: Mutex::new(width),
        cv: Condvar::new(),
    };
    let next = AtomicUsize::new(0);
    let (gate, next, fetch, consume) = (&gate, &next, &fetch, &consume);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, R, Permit<'_>)>();
        for _ in 0..width {
            let tx = tx.clone();
            fetcher(s, move || loop {
                // The permit first: an item is only taken when there is room for its result.
                let permit = gate.acquire();
                let i = next.fetch_add(1, Relaxed);
                let Some(item) = items.get(i) else { break };
                if tx.send((i, fetch(item), permit)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Called from inside a rayon worker, spawned consumers could wait behind this loop
        // (which blocks on the channel) on a one-thread pool: consume inline there instead.
        let inline = rayon::current_thread_index().is_some();
        rayon::in_place_scope(|sc| {
            for (i, r, permit) in rx {
                if inline {
                    consume(&items[i], r);
                    drop(permit);
                } else {
                    sc.spawn(move |_| {
                        consume(&items[i], r);
                        drop(permit);
                    });
                }
            }
        });
    });
}

struct Ordered<R> {
    /// Items handed to fetchers so far (they are taken in order).
    started: usize,
    /// Items the consumer is done with.
    consumed: usize,
    ready: HashMap<usize, R>,
    /// Fetch threads still running: when none is and an item is missing, one panicked.
    alive: usize,
    stop: bool,
}

/// Fetches `items` on `width` threads and consumes the results on the calling thread in the
/// items' order; an error from `consume` stops the fetching and is returned. At most `width`
/// results exist at once (the one being consumed included), fetched at most `width - 1`
/// items ahead of the consumer.
pub(crate) fn fetch_in_order<T, R, E, F, C>(
    items: &[T],
    width: usize,
    fetch: F,
    mut consume: C,
) -> std::result::Result<(), E>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
    C: FnMut(&T, R) -> std::result::Result<(), E>,
{
    let width = width.clamp(1, items.len().max(1));
    let state = Mutex::new(Ordered {
        started: 0,
        consumed: 0,
        ready: HashMap::new(),
        alive: width,
        stop: false,
    });
    let cv = Condvar::new();
    let (state, cv, fetch) = (&state, &cv, &fetch);
    // Marks a fetch thread gone even when `fetch` panics, so the consumer stops waiting.
    struct Alive<'a, R>(&'a Mutex<Ordered<R>>, &'a Condvar);
    impl<R> Drop for Alive<'_, R> {
        fn drop(&mut self) {
            if let Ok(mut st) = self.0.lock() {
                st.alive -= 1;
            }
            self.1.notify_all();
        }
    }
    std::thread::scope(|s| {
        for _ in 0..width {
            fetcher(s, move || {
                let _alive = Alive(state, cv);
                loop {
                    let i = {
                        let mut st = state.lock().unwrap();
                        while !st.stop
                            && st.started < items.len()
                            && st.started >= st.consumed + width
                        {
                            st = cv.wait(st).unwrap();
                        }
                        if st.stop || st.started >= items.len() {
                            return;
                        }
                        st.started += 1;
                        st.started - 1
                    };
                    let r = fetch(&items[i]);
                    state.lock().unwrap().ready.insert(i, r);
                    cv.notify_all();
                }
            });
        }
        let stop = || {
            state.lock().unwrap().stop = true;
            cv.notify_all();
        };
        for (i, item) in items.iter().enumerate() {
            let r = {
                let mut st = state.lock().unwrap();
                loop {
                    if let Some(r) = st.ready.remove(&i) {
                        break r;
                    }
                    if st.alive == 0 {
                        // A fetch panicked; the scope re-raises it when it joins.
                        drop(st);
                        stop();
                        return Ok(());
                    }
                    st = cv.wait(st).unwrap();
                }
            };
            let out = consume(item, r);
            if out.is_err() {
                stop();
                return out;
            }
            state.lock().unwrap().consumed = i + 1;
            cv.notify_all();
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicIsize;

    /// Counts results alive (fetched, not yet dropped by their consumer) and the most at once.
    #[derive(Default)]
    struct Live {
        now: AtomicIsize,
        peak: AtomicIsize,
    }
    struct Tracked<'a>(&'a Live);
    impl Live {
        fn make(&self) -> Tracked<'_> {
            let n = self.now.fetch_add(1, Relaxed) + 1;
            self.peak.fetch_max(n, Relaxed);
            Tracked(self)
        }
    }
    impl Drop for Tracked<'_> {
        fn drop(&mut self) {
            self.0.now.fetch_sub(1, Relaxed);
        }
    }

    #[test]
    fn unordered_consumes_everything_once_with_bounded_results() {
        let live = Live::default();
        let items: Vec<usize> = (0..200).collect();
        let seen = Mutex::new(vec![0u32; items.len()]);
        fetch_unordered(
            &items,
            4,
            |&i| {
                std::thread::sleep(std::time::Duration::from_micros(200));
                (i, live.make())
            },
            |&i, (j, t)| {
                assert_eq!(i, j);
                // Slow consumers: results pile up unless the gate holds the fetchers back.
                std::thread::sleep(std::time::Duration::from_micros(500));
                seen.lock().unwrap()[i] += 1;
                drop(t);
            },
        );
        assert!(seen.into_inner().unwrap().iter().all(|&n| n == 1));
        assert!(live.peak.load(Relaxed) <= 4, "{}", live.peak.load(Relaxed));
        assert_eq!(live.now.load(Relaxed), 0);
    }

    #[test]
    fn in_order_keeps_order_and_bound_and_stops_on_error() {
        let live = Live::default();
        let items: Vec<usize> = (0..100).collect();
        let mut got = Vec::new();
        let r: std::result::Result<(), usize> = fetch_in_order(
            &items,
            3,
            |&i| {
                // Later items finish first sometimes: order must come from the consumer side.
                std::thread::sleep(std::time::Duration::from_micros(((i * 7) % 5) as u64 * 100));
                (i, live.make())
            },
            |&i, (j, _t)| {
                assert_eq!(i, j);
                got.push(i);
                Ok(())
            },
        );
        assert!(r.is_ok());
        assert_eq!(got, items);
        assert!(live.peak.load(Relaxed) <= 3, "{}", live.peak.load(Relaxed));

        let fetched = AtomicUsize::new(0);
        let r = fetch_in_order(
            &items,
            3,
            |_| fetched.fetch_add(1, Relaxed),
            |&i, _| if i == 10 { Err(i) } else { Ok(()) },
        );
        assert_eq!(r, Err(10));
        // Nothing past the window is fetched once the consumer gave up.
        assert!(fetched.load(Relaxed) <= 10 + 3, "{}", fetched.load(Relaxed));
    }

    #[test]
    fn empty_and_width_zero() {
        fetch_unordered(&[] as &[u8], 0, |_| (), |_, _| panic!("nothing to consume"));
        let r: std::result::Result<(), ()> = fetch_in_order(&[1u8, 2], 0, |&x| x, |_, _| Ok(()));
        assert!(r.is_ok());
    }
}
