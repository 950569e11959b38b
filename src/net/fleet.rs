//! What the targets of one run share. Fifty contexts naming one server need one DNS lookup of
//! its name and one verified connection, not fifty: a [`Shared`] map hands the first asker's
//! work to every later asker with the same key. The key says exactly what the work depended
//! on ([`Key`]: a digest of every input, so no secret is kept in it), so nothing is shared
//! between targets whose answer could differ: a connection verified under one CA, server name
//! or client identity is never reused by a target with another.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Targets with questions of their own that share one verified connection at most. An HTTP/2
/// server takes a bounded number of streams at once (nginx 128, kube-apiserver 250; a run asks
/// about 20 questions): more targets on one connection would queue in waves, so a sixth opens
/// its own. Targets that ask the very questions another sharer asks (one user, one namespace:
/// answered once, see `net::http::AnswerMemo`) add no stream and join without counting.
pub const MAX_SHARERS: usize = 5;

/// The first asker's answer per key, handed to every later asker; a new one after
/// `group` askers (see [`MAX_SHARERS`]).
pub struct Shared<K, V> {
    group: usize,
    cells: Mutex<HashMap<K, Group<V>>>,
}

/// Who asked for the current answer of a key, and the answer (once made).
struct Group<V> {
    /// Askers counted against the group's size.
    counted: usize,
    /// The [`Shared::get_as`] questioners among them.
    questioners: Vec<Key>,
    cell: Arc<OnceCell<V>>,
}

impl<V> Group<V> {
    fn new() -> Self {
        Group {
            counted: 0,
            questioners: Vec::new(),
            cell: Arc::new(OnceCell::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Shared<K, V> {
    /// `group`: how many askers share one answer (at least one).
    pub fn new(group: usize) -> Self {
        Shared {
            group: group.max(1),
            cells: Mutex::default(),
        }
    }

    /// The answer for `key`, made by `make` when nobody made it yet (or the asker who began
    /// making it was cancelled: then this one makes it), and whether this call made it.
    pub async fn get<F: Future<Output = V>>(&self, key: K, make: impl FnOnce() -> F) -> (V, bool) {
        self.get_as(key, None, make).await
    }

    /// Like [`Shared::get`], where an asker whose `questioner` is already in the key's current
    /// group joins it without counting against its size.
    pub async fn get_as<F: Future<Output = V>>(
        &self,
        key: K,
        questioner: Option<Key>,
        make: impl FnOnce() -> F,
    ) -> (V, bool) {
        let cell = self.cell(key, questioner);
        let mut made = false;
        let value = cell
            .get_or_init(|| {
                made = true;
                make()
            })
            .await
            .clone();
        (value, made)
    }

    /// The cell of `key`'s current group, a new group when the current one is full (and
    /// `questioner` is not in it).
    fn cell(&self, key: K, questioner: Option<Key>) -> Arc<OnceCell<V>> {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        let group = cells.entry(key).or_insert_with(Group::new);
        let known = (questioner.as_ref()).is_some_and(|q| group.questioners.contains(q));
        if !known {
            if group.counted >= self.group {
                *group = Group::new();
            }
            group.counted += 1;
            group.questioners.extend(questioner);
        }
        group.cell.clone()
    }
}

/// A digest of everything a shared answer depended on, each part length-prefixed so no two
/// different lists of parts give the same input. SHA-256: the key holds no secret, yet two
/// targets with different CAs, identities or proxy credentials never meet under one key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    /// The digest, to build another key on this one.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Builds a [`Key`] part by part.
pub struct KeyBuilder(ring::digest::Context);

impl Default for KeyBuilder {
    fn default() -> Self {
        KeyBuilder(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl KeyBuilder {
    pub fn part(mut self, bytes: impl AsRef<[u8]>) -> Self {
        let bytes = bytes.as_ref();
        self.0.update(&(bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    /// An optional part: absent and present-but-empty differ.
    pub fn optional(self, bytes: Option<impl AsRef<[u8]>>) -> Self {
        match bytes {
            None => self.part([0]),
            Some(b) => self.part([1]).part(b),
        }
    }

    pub fn finish(self) -> Key {
        let mut key = [0; 32];
        key.copy_from_slice(self.0.finish().as_ref());
        Key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn one_answer_per_key_and_group() {
        let shared = Shared::new(2);
        let made = AtomicUsize::new(0);
        let make = || async {
            made.fetch_add(1, Ordering::SeqCst);
            made.load(Ordering::SeqCst)
        };
        let first = shared.get("a", make).await;
        let second = shared.get("a", make).await;
        let third = shared.get("a", make).await;
        let other = shared.get("b", make).await;
        assert_eq!((first, second), ((1, true), (1, false)));
        assert_eq!(
            third,
            (2, true),
            "a group of two: the third asker starts anew"
        );
        assert_eq!(other, (3, true));
    }

    #[tokio::test]
    async fn a_questioner_already_in_the_group_joins_without_counting() {
        let shared = Shared::new(2);
        let made = AtomicUsize::new(0);
        let make = || async { made.fetch_add(1, Ordering::SeqCst) + 1 };
        let who = |name: &str| Some(KeyBuilder::default().part(name).finish());
        let mut answers = Vec::new();
        for asker in [
            "alice", "alice", "alice", "bob", "alice", "carol", "bob", "alice",
        ] {
            answers.push(shared.get_as("a", who(asker), make).await.0);
        }
        // Alice and Bob fill the first group; Carol starts the second, where Bob and Alice are
        // new again.
        assert_eq!(answers, [1, 1, 1, 1, 1, 2, 2, 3]);
    }

    #[tokio::test]
    async fn a_cancelled_maker_leaves_the_work_to_the_next_asker() {
        let shared = Arc::new(Shared::new(5));
        let stuck = shared.clone();
        let first = tokio::spawn(async move {
            stuck.get("a", std::future::pending::<u8>).await;
        });
        tokio::task::yield_now().await;
        first.abort();
        let _ = first.await;
        assert_eq!(shared.get("a", || async { 7 }).await, (7, true));
    }

    #[test]
    fn parts_are_delimited() {
        let ab = KeyBuilder::default().part("ab").part("c").finish();
        let a_bc = KeyBuilder::default().part("a").part("bc").finish();
        assert!(ab != a_bc);
        let none = KeyBuilder::default().optional(None::<&str>).finish();
        let empty = KeyBuilder::default().optional(Some("")).finish();
        assert!(none != empty);
    }
}
