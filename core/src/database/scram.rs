//! The SCRAM-SHA-256 verifier of a tenant password (RFC 5802, RFC 7677), as PostgreSQL stores it:
//! `ALTER ROLE … PASSWORD 'SCRAM-SHA-256$…'` hands the server the verifier, so the password itself
//! never reaches it, nor its statement log or `pg_stat_statements`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Fewer than PostgreSQL's default of 4096, on purpose. Iterations slow down guessing a password
/// people chose; a tenant's is a 256-bit keyed hash, which no number of guesses finds, so each
/// iteration would only cost time: here once per role made, and at every login, where the client
/// repeats them (4096 cost about 1.5 ms each time on the development machine).
const ITERATIONS: u32 = 16;

/// The verifier of `password` with a fresh random salt.
pub(crate) fn verifier(password: &str) -> String {
    let salt: [u8; 16] = *uuid::Uuid::new_v4().as_bytes();
    verifier_with(password, &salt, ITERATIONS)
}

fn verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    // Our passwords are hex digits: SASLprep leaves them as they are.
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!("SCRAM-SHA-256${iterations}:{}${}:{}", STANDARD.encode(salt), STANDARD.encode(stored_key), STANDARD.encode(server_key))
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_has_postgresql_s_form_and_a_fresh_salt() {
        // That the server accepts it, and then the password, is tested by logging in against a
        // cluster that checks passwords (`tests/tests/roles.rs`).
        let made = verifier_with("pencil", &[1u8; 16], 4096);
        assert!(made.starts_with("SCRAM-SHA-256$4096:AQEBAQEBAQEBAQEBAQEBAQ==$"), "{made}");
        let keys = made.split('$').nth(2).unwrap().split(':').map(|key| STANDARD.decode(key).unwrap().len()).collect::<Vec<_>>();
        assert_eq!(keys, [32, 32]);
        assert_ne!(verifier("pencil"), verifier("pencil"), "a fresh salt each time");
    }
}
