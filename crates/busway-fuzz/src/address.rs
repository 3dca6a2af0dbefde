//! Arbitrary text as an address of CONTRACT section 2 (`Address::from_str`).
//!
//! Invariants: an address that parses prints in a canonical form that parses back to the same
//! value and prints the same again (so `busway check` output and admin listings can be pasted
//! back into a file); a refusal always says why.

use busway_config::Address;

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let address = match text.parse::<Address>() {
        Ok(a) => a,
        Err(why) => {
            assert!(!why.trim().is_empty(), "refused {text:?} without a reason");
            return;
        }
    };
    let printed = address.to_string();
    match printed.parse::<Address>() {
        Ok(again) => {
            assert_eq!(again, address, "{text:?} printed as {printed:?}");
            assert_eq!(
                again.to_string(),
                printed,
                "{text:?}: printing is not canonical"
            );
        }
        Err(why) => panic!("{text:?} printed as {printed:?}, which does not parse: {why}"),
    }
}
