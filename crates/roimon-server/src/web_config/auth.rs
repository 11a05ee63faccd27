//! Basic auth for the listener: bcrypt users, compared so that timing tells
//! nothing about which names exist, and a bounded cache of verdicts so that
//! a flood of passwords cannot burn the CPU (one bcrypt check at a time, a
//! bounded queue, 429 beyond it).

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use base64::Engine as _;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// bcrypt checks run at once (each takes one core for ~70 ms at cost 10).
pub(super) const BCRYPT_AT_ONCE: usize = 1;

/// Requests waiting for a bcrypt check beyond which a new uncached password
/// gets 429 at once: a flood of different wrong passwords is served at the
/// speed of one core, never more.
pub(super) const BCRYPT_QUEUE: usize = 32;

/// Verdicts kept (good and bad passwords alike), oldest out first.
pub(super) const CACHE_ENTRIES: usize = 4096;

/// The realm sent with 401.
pub(super) const REALM: &str = "Basic realm=\"roimon\"";

/// One basic-auth user.
pub(super) struct User {
    /// SHA-256 of the name, compared in constant time.
    name_digest: [u8; 32],
    /// The bcrypt hash.
    hash: String,
}

impl User {
    /// A user named `name` with the bcrypt `hash`.
    pub(super) fn new(name: &str, hash: String) -> Self {
        Self {
            name_digest: sha256(&[name.as_bytes()]),
            hash,
        }
    }
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let d = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Bounded memory of bcrypt verdicts, oldest out first.
#[derive(Debug, Default)]
struct Cache {
    map: HashMap<[u8; 32], bool>,
    order: VecDeque<[u8; 32]>,
}

impl Cache {
    fn get(&self, k: &[u8; 32]) -> Option<bool> {
        self.map.get(k).copied()
    }
    fn put(&mut self, k: [u8; 32], v: bool) {
        if self.map.insert(k, v).is_none() {
            self.order.push_back(k);
            while self.order.len() > CACHE_ENTRIES {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
    fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

/// The bcrypt checks and their cache, for the life of the process (a reload
/// empties the cache).
#[derive(Debug)]
pub(super) struct Auth {
    /// Per-process salt of the cache's keys.
    salt: [u8; 32],
    cache: Mutex<Cache>,
    bcrypt: tokio::sync::Semaphore,
    waiting: AtomicUsize,
}

impl Auth {
    /// `None` when the system has no random numbers for the salt.
    pub(super) fn new() -> Option<Self> {
        let mut salt = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt).ok()?;
        Some(Self {
            salt,
            cache: Mutex::new(Cache::default()),
            bcrypt: tokio::sync::Semaphore::new(BCRYPT_AT_ONCE),
            waiting: AtomicUsize::new(0),
        })
    }

    /// Forget every verdict (the users changed).
    pub(super) fn forget(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Whether `user` and `pass` match a configured user. The name is
    /// compared in constant time against every user; an unknown name is
    /// checked against a real hash, so its timing tells nothing. Verdicts are
    /// cached by (user, hash, password) digested with a per-process salt.
    pub(super) async fn verify(
        &self,
        users: &[User],
        user: &str,
        pass: &[u8],
    ) -> Result<bool, Busy> {
        let d = sha256(&[user.as_bytes()]);
        let mut which = 0u64;
        let mut found = subtle::Choice::from(0);
        for (i, u) in users.iter().enumerate() {
            let eq = u.name_digest.ct_eq(&d);
            which = u64::conditional_select(&which, &(i as u64), eq);
            found |= eq;
        }
        let found = bool::from(found);
        let hash = &users[which as usize].hash;
        let key = sha256(&[&self.salt, user.as_bytes(), hash.as_bytes(), pass]);
        if let Some(ok) = self.cached(&key) {
            return Ok(ok && found);
        }
        // Not cached: one bcrypt at a time; a bounded queue waits for it.
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= BCRYPT_QUEUE {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let permit = self.bcrypt.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|_| Busy)?;
        // The same password may have been checked while this one waited.
        if let Some(ok) = self.cached(&key) {
            return Ok(ok && found);
        }
        let (h, p) = (hash.clone(), pass.to_vec());
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(p, &h).unwrap_or(false))
            .await
            .unwrap_or(false);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(key, ok);
        Ok(ok && found)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<bool> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
    }
}

/// Too many password checks waiting.
#[derive(Debug)]
pub(super) struct Busy;

pub(super) fn refusal(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::from(format!(
        "{}\n",
        code.canonical_reason().unwrap_or("refused")
    )));
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if code == StatusCode::UNAUTHORIZED {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    } else {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// `Authorization: Basic base64(user:password)`.
pub(super) fn basic_credentials(v: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let v = v.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn basic_credentials_parse() {
        let v = HeaderValue::from_static("Basic YWxpY2U6cDpx"); // alice:p:q
        assert_eq!(
            basic_credentials(&v),
            Some(("alice".into(), b"p:q".to_vec()))
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer x")),
            None
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Basic !!")),
            None
        );
    }

    #[test]
    fn the_cache_is_bounded_and_forgets_the_oldest() {
        let mut c = Cache::default();
        for i in 0..(CACHE_ENTRIES + 10) {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_be_bytes());
            c.put(k, i % 2 == 0);
        }
        assert_eq!(c.map.len(), CACHE_ENTRIES);
        assert_eq!(c.get(&[0u8; 32]), None);
    }

    #[tokio::test]
    async fn beyond_the_queue_new_passwords_get_busy_at_once() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let users = Arc::new(vec![User::new("alice", hash)]);
        let w = Arc::new(Auth::new().unwrap());
        // The one bcrypt slot is taken: every new password has to wait.
        let held = w.bcrypt.acquire().await.unwrap();
        let extra = 5;
        let tasks: Vec<_> = (0..BCRYPT_QUEUE + extra)
            .map(|i| {
                let w = w.clone();
                let users = users.clone();
                tokio::spawn(async move {
                    w.verify(&users, "alice", format!("guess{i}").as_bytes())
                        .await
                        .is_err()
                })
            })
            .collect();
        for _ in 0..10_000 {
            if w.waiting.load(Ordering::Acquire) == BCRYPT_QUEUE
                && tasks.iter().filter(|t| t.is_finished()).count() == extra
            {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            w.waiting.load(Ordering::Acquire),
            BCRYPT_QUEUE,
            "the queue is bounded"
        );
        drop(held);
        let mut busy = 0;
        for t in tasks {
            busy += usize::from(t.await.unwrap());
        }
        assert_eq!(busy, extra, "only those beyond the queue are refused");
        assert_eq!(w.cache.lock().unwrap().map.len(), BCRYPT_QUEUE);
    }

    #[tokio::test]
    async fn a_repeated_wrong_password_costs_one_bcrypt() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let users = Arc::new(vec![User::new("alice", hash)]);
        let w = Arc::new(Auth::new().unwrap());
        let a = &users;
        assert!(w.verify(a, "alice", b"right").await.unwrap());
        assert!(!w.verify(a, "alice", b"wrong").await.unwrap());
        assert!(!w.verify(a, "bob", b"right").await.unwrap(), "unknown user");
        assert_eq!(w.cache.lock().unwrap().map.len(), 3);
        for _ in 0..50 {
            assert!(!w.verify(a, "alice", b"wrong").await.unwrap());
        }
        assert_eq!(
            w.cache.lock().unwrap().map.len(),
            3,
            "answered from the cache"
        );
        // The same hash under another name does not let the other name in.
        assert!(!w.verify(a, "mallory", b"right").await.unwrap());
    }
}
