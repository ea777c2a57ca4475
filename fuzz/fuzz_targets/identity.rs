//! Fuzzes the one Zoom user identity every end-user claim and `userId` becomes: the input
//! bytes are split into two claims (often of a known user with ASCII case flipped, a
//! character that folds to ASCII under Unicode rules such as KELVIN SIGN, or a control
//! character). Asserted: an identity is only ever built from 1–128 characters of
//! `[A-Za-z0-9._+@-]`, never `.` or `..`; and two claims give the same identity (the key of
//! every cached ZAK, grant lookup and audit field) exactly when they are equal with ASCII case
//! folded, whatever Unicode's case mapping says.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run identity -- -max_total_time=60`.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use ztv::zoom_user::ZoomUser;

const KNOWN: [&str; 3] = ["kate@example.com", "uKate0001", "sissi@example.com"];
/// Characters whose Unicode case mapping lands on ASCII, other non-ASCII letters, controls.
const TRAPS: [char; 10] = [
    '\u{212A}', '\u{017F}', '\u{0130}', '\u{0131}', '\u{FB00}', '\u{00DF}', '\0', '\n', '\u{1b}',
    ' ',
];

/// A claim: arbitrary text, or a known identity with edits.
fn claim(u: &mut Unstructured) -> arbitrary::Result<String> {
    if u.arbitrary::<bool>()? {
        return String::arbitrary(u);
    }
    let mut out = String::new();
    for c in u.choose(&KNOWN)?.chars() {
        match u.int_in_range(0..=9u8)? {
            0 => out.push(*u.choose(&TRAPS)?),
            1 => {}
            2..=4 => out.push(c.to_ascii_uppercase()),
            _ => out.push(c),
        }
    }
    Ok(out)
}

fn allowed(text: &str) -> bool {
    (1..=128).contains(&text.len())
        && !matches!(text, "." | "..")
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'@'))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let (Ok(a), Ok(b)) = (claim(&mut u), claim(&mut u)) else {
        return;
    };
    let (ua, ub) = (ZoomUser::parse(&a), ZoomUser::parse(&b));
    assert_eq!(ua.is_ok(), allowed(&a), "{a:?}");
    assert_eq!(ub.is_ok(), allowed(&b), "{b:?}");
    if let (Ok(ua), Ok(ub)) = (ua, ub) {
        assert_eq!(ua.key(), a.to_ascii_lowercase());
        assert_eq!(ua.as_str(), a);
        let same = a.eq_ignore_ascii_case(&b);
        assert_eq!(ua == ub, same, "{a:?} vs {b:?}");
        assert_eq!(ua.key() == ub.key(), same, "{a:?} vs {b:?}");
    }
});
