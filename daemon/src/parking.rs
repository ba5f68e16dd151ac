//! The `requestState` the gateway hands a 2026-07-28 client when a legacy server asks something of
//! it mid-call (sampling, elicitation, roots).
//!
//! The server's request is parked in the client's session and the client gets an
//! `input_required` result; its retry carries the answers and the state back. The state names
//! the parked call, the session it belongs to and when it expires, and is sealed with an HMAC
//! under a key made at daemon start: the protocol says to treat it as attacker-controlled, so a
//! state that was altered, made by another daemon run, presented by another session or kept too
//! long is refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a client may take to answer before the parked call is given up.
pub const STATE_TTL: Duration = Duration::from_secs(600);

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
    /// `None` when the kernel's random source could not be read: bridging is then refused rather
    /// than done with a guessable key.
    key: Result<[u8; 32], String>,
}

impl Seal {
    pub fn new() -> Seal {
        use std::io::Read;
        let mut key = [0u8; 32];
        let key = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .map(|()| key)
            .map_err(|err| format!("no random key: {err}"));
        if let Err(err) = &key {
            tracing::error!("{err}; servers' requests cannot reach 2026-07-28 clients");
        }
        Seal { key }
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

    /// A state naming parked call `parked` of session `session`, valid for [`STATE_TTL`].
    pub fn seal(&self, session: u64, parked: u64) -> Result<String, StateError> {
        self.seal_until(session, parked, now() + STATE_TTL.as_secs())
    }

    fn seal_until(&self, session: u64, parked: u64, expires: u64) -> Result<String, StateError> {
        let payload = format!("v1.{session}.{parked}.{expires}");
        let tag = self.mac(payload.as_bytes())?.finalize().into_bytes();
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// The parked call a state names, if it is intact, this session's and not expired.
    pub fn open(&self, state: &str, session: u64) -> Result<u64, StateError> {
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
        let payload = String::from_utf8(payload).map_err(|_| StateError::Invalid)?;
        let fields: Vec<u64> = payload
            .strip_prefix("v1.")
            .ok_or(StateError::Invalid)?
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| StateError::Invalid)?;
        let [owner, parked, expires] = fields[..] else {
            return Err(StateError::Invalid);
        };
        if owner != session {
            return Err(StateError::OtherSession);
        }
        if expires < now() {
            return Err(StateError::Expired);
        }
        Ok(parked)
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
        let seal = Seal::new();
        let state = seal.seal(7, 42).unwrap();
        assert_eq!(seal.open(&state, 7), Ok(42));
        assert_eq!(seal.open(&state, 8), Err(StateError::OtherSession));

        // Change one character of the payload: the tag no longer matches.
        let (payload, tag) = state.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("v1.7.43.99999999999");
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
        assert_eq!(Seal::new().open(&state, 7), Err(StateError::Invalid));

        let stale = seal.seal_until(7, 42, now() - 1).unwrap();
        assert_eq!(seal.open(&stale, 7), Err(StateError::Expired));
    }
}
