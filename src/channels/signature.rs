//! Proving that a webhook comes from its provider: Twilio's `X-Twilio-Signature` and Messenger's
//! `X-Hub-Signature-256`. Comparisons are constant-time, so a forger learns nothing from timing.

use base64::Engine;
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<sha1::Sha1>;
type HmacSha256 = Hmac<sha2::Sha256>;

/// Twilio's signature of a form-encoded webhook: base64 of HMAC-SHA1, keyed with the account's
/// auth token, over the public URL Twilio called followed by every form parameter's name and
/// value, sorted by name.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac =
        HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `header` (the `X-Twilio-Signature` value) signs this request.
pub fn twilio_valid(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header: &str,
) -> bool {
    let expected = twilio_signature(auth_token, url, params);
    expected.as_bytes().ct_eq(header.trim().as_bytes()).into()
}

/// Whether `header` (the `X-Hub-Signature-256` value, `sha256=<hex>`) signs `body` with the
/// Messenger app secret.
pub fn messenger_valid(app_secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(given) = decode_hex(hex) else {
        return false;
    };
    let mut mac =
        HmacSha256::new_from_slice(app_secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&given).is_ok()
}

/// The `X-Hub-Signature-256` value for `body` (for tests and for signing test requests).
pub fn messenger_signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(app_secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<(String, String)> {
        [
            ("From", "+12349013030"),
            ("CallSid", "CA1234567890ABCDE"),
            ("To", "+18005551212"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn twilio_signatures_match_an_independent_implementation() {
        // Computed with Python's hmac module over the example in Twilio's documentation.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            twilio_signature("12345", url, &params()),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(twilio_valid(
            "12345",
            url,
            &params(),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }

    #[test]
    fn a_changed_parameter_url_or_token_breaks_the_twilio_signature() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        let mut tampered = params();
        tampered[0].1 = "+19999999999".into();
        assert!(!twilio_valid("12345", url, &tampered, good));
        assert!(!twilio_valid(
            "12345",
            "https://evil.example/myapp.php?foo=1&bar=2",
            &params(),
            good
        ));
        assert!(!twilio_valid("54321", url, &params(), good));
        assert!(!twilio_valid("12345", url, &params(), ""));
    }

    #[test]
    fn messenger_signatures_match_an_independent_implementation() {
        let body = br#"{"object":"page","entry":[]}"#;
        let header = "sha256=e6e9d7a842a48e17f43a34d6125d0d933e2aab92ee37f0993a4d493b50e3d438";
        assert_eq!(messenger_signature("app-secret", body), header);
        assert!(messenger_valid("app-secret", body, header));
        assert!(!messenger_valid("other-secret", body, header));
        assert!(!messenger_valid("app-secret", b"{}", header));
        assert!(!messenger_valid("app-secret", body, "sha1=abc"));
        assert!(!messenger_valid("app-secret", body, "sha256=zz"));
        assert!(!messenger_valid("app-secret", body, "sha256=é"));
    }
}
