//! Standard base64 (RFC 4648, `+/`, padding optional on input), the one codec of the binary and
//! its tests: the server decodes HTTP Basic credentials with it, the end-to-end tests include
//! this file to encode them.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The bytes of `s` (with or without padding); `None` for anything that is not base64.
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s
        .strip_suffix("==")
        .or_else(|| s.strip_suffix('='))
        .unwrap_or(s);
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let value = ALPHABET.iter().position(|a| *a == c)?;
        acc = (acc << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `bytes` as padded base64.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_standard_text_and_refuses_the_rest() {
        assert_eq!(decode("MTAwMTpkZW1vLTEwMDE=").unwrap(), b"1001:demo-1001");
        assert_eq!(decode("YQ").unwrap(), b"a");
        assert_eq!(decode("YQ==").unwrap(), b"a");
        assert_eq!(decode("").unwrap(), b"");
        assert!(decode("a*b").is_none());
        assert!(decode("YQ===").is_none());
        assert!(decode("Y").is_none(), "a lone sextet is no byte");
        assert!(
            decode("YWJj-").is_none(),
            "URL-safe alphabet is not standard"
        );
    }

    #[test]
    fn encoding_then_decoding_gives_the_bytes_back() {
        assert_eq!(encode(b"1001:demo-1001"), "MTAwMTpkZW1vLTEwMDE=");
        assert_eq!(encode(b""), "");
        for len in 0..=64usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = encode(&bytes);
            assert_eq!(text.len() % 4, 0);
            assert_eq!(decode(&text).unwrap(), bytes, "{text}");
        }
    }
}
