//! The `requestState` the gateway hands a 2026-07-28 client with an `input_required` result.
//!
//! Two things travel in it. When a legacy server asks something of a modern client mid-call
//! (sampling, elicitation, roots), the server's request is parked in the client's session and the
//! state names the parked call. When a modern server answers a modern client's call with its own
//! `input_required`, the state wraps the server's `requestState` and names the server, so the
//! retry goes back to that server with its state as it gave it. Either way the state also names
//! the session it belongs to and when it expires, and is sealed with an HMAC under a key made at
//! daemon start: the protocol says to treat it as attacker-controlled, so a state that was
//! altered, made by another daemon run, presented by another session or kept too long is refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// How long a client may take to answer, unless the daemon is told otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

/// What a sealed state stands for.
#[derive(Debug, PartialEq, Eq)]
pub enum Sealed {
    /// A call of this session parked on a legacy server's request, by its key.
    Parked(u64),
    /// A modern server's own `input_required`: the server and the state it gave, if any.
    Server {
        server: String,
        state: Option<String>,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("requestState is not one this gateway issued")]
    Invalid,
    #[error("requestState belongs to another session")]
    OtherSession,
    #[error("requestState has expired; call again")]
    Expired,
    #[error("requests of servers cannot be bridged: {0}")]
    NoKey(String),
}

pub struct Seal {
    /// How long a state stays good.
    ttl: Duration,
    /// `Err` when the kernel's random source could not be read: bridging is then refused rather
    /// than done with a guessable key.
    key: Result<[u8; 32], String>,
}

impl Seal {
    pub fn new(ttl: Duration) -> Seal {
        use std::io::Read;
        let mut key = [0u8; 32];
        let key = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .map(|()| key)
            .map_err(|err| format!("no random key: {err}"));
        if let Err(err) = &key {
            tracing::error!("{err}; servers' requests cannot reach 2026-07-28 clients");
        }
        Seal { ttl, key }
    }

    /// How long a state stays good.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn mac(&self, payload: &[u8]) -> Result<Hmac<Sha256>, StateError> {
        let key = self
            .key
            .as_ref()
            .map_err(|e| StateError::NoKey(e.clone()))?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(key).map_err(|e| StateError::NoKey(e.to_string()))?;
        mac.update(payload);
        Ok(mac)
    }

    /// A state standing for `sealed`, of session `session`, good for the seal's time to live.
    pub fn seal(&self, session: u64, sealed: &Sealed) -> Result<String, StateError> {
        self.seal_until(session, sealed, now() + self.ttl.as_secs())
    }

    fn seal_until(
        &self,
        session: u64,
        sealed: &Sealed,
        expires: u64,
    ) -> Result<String, StateError> {
        let what = match sealed {
            Sealed::Parked(key) => json!({"parked": key}),
            Sealed::Server { server, state } => json!({"server": server, "state": state}),
        };
        let payload =
            json!({"v": 1, "session": session, "expires": expires, "for": what}).to_string();
        let tag = self.mac(payload.as_bytes())?.finalize().into_bytes();
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// What a state stands for, if it is intact, this session's and not expired.
    pub fn open(&self, state: &str, session: u64) -> Result<Sealed, StateError> {
        let (payload, tag) = state.split_once('.').ok_or(StateError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| StateError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| StateError::Invalid)?;
        self.mac(&payload)?
            .verify_slice(&tag)
            .map_err(|_| StateError::Invalid)?;
        // Only the gateway's own key made this payload, so a shape it never writes is a bug
        // rather than an attack; it is refused all the same.
        let payload: Value = serde_json::from_slice(&payload).map_err(|_| StateError::Invalid)?;
        if payload["v"] != 1 {
            return Err(StateError::Invalid);
        }
        let owner = payload["session"].as_u64().ok_or(StateError::Invalid)?;
        let expires = payload["expires"].as_u64().ok_or(StateError::Invalid)?;
        let what = &payload["for"];
        let sealed = match (what.get("parked"), what.get("server")) {
            (Some(key), None) => Sealed::Parked(key.as_u64().ok_or(StateError::Invalid)?),
            (None, Some(server)) => Sealed::Server {
                server: server.as_str().ok_or(StateError::Invalid)?.to_owned(),
                state: what["state"].as_str().map(str::to_owned),
            },
            _ => return Err(StateError::Invalid),
        };
        if owner != session {
            return Err(StateError::OtherSession);
        }
        if expires < now() {
            return Err(StateError::Expired);
        }
        Ok(sealed)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_opens_only_intact_in_its_session_and_in_time() {
        let seal = Seal::new(DEFAULT_TTL);
        let state = seal.seal(7, &Sealed::Parked(42)).unwrap();
        assert_eq!(seal.open(&state, 7), Ok(Sealed::Parked(42)));
        assert_eq!(seal.open(&state, 8), Err(StateError::OtherSession));

        // A payload of the gateway's shape under the old tag: the tag no longer matches.
        let (payload, tag) = state.split_once('.').unwrap();
        let forged =
            json!({"v": 1, "session": 7, "expires": 99999999999u64, "for": {"parked": 43}});
        let forged_payload = URL_SAFE_NO_PAD.encode(forged.to_string());
        assert_eq!(
            seal.open(&format!("{forged_payload}.{tag}"), 7),
            Err(StateError::Invalid)
        );
        let mut bytes = payload.to_owned().into_bytes();
        bytes[0] ^= 1;
        let flipped = format!("{}.{tag}", String::from_utf8(bytes).unwrap());
        assert_eq!(seal.open(&flipped, 7), Err(StateError::Invalid));
        assert_eq!(seal.open("garbage", 7), Err(StateError::Invalid));

        // Another daemon run has another key.
        assert_eq!(
            Seal::new(DEFAULT_TTL).open(&state, 7),
            Err(StateError::Invalid)
        );

        let stale = seal.seal_until(7, &Sealed::Parked(42), now() - 1).unwrap();
        assert_eq!(seal.open(&stale, 7), Err(StateError::Expired));
    }

    #[test]
    fn a_servers_state_comes_back_as_it_was_given() {
        let seal = Seal::new(Duration::from_secs(5));
        for state in [Some("{\"round\":1}.x".to_owned()), None] {
            let sealed = Sealed::Server {
                server: "gamma".into(),
                state,
            };
            let wrapped = seal.seal(3, &sealed).unwrap();
            assert_eq!(seal.open(&wrapped, 3), Ok(sealed));
            assert_eq!(seal.open(&wrapped, 4), Err(StateError::OtherSession));
        }
    }
}
