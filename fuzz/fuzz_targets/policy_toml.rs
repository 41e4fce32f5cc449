//! The policy parser: any text → `Policy::from_toml_str`. Properties: nothing panics; a
//! policy that validates also yields its records of processing and its fingerprint, and
//! parsing it again gives the same fingerprint.

#![no_main]

use discreet_policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::from_toml_str(text, "fuzz") else {
        return;
    };
    let records = policy.records_of_processing();
    let _ = serde_json::to_string(&records);
    let again = Policy::from_toml_str(text, "fuzz").expect("the same text validates again");
    assert_eq!(again.fingerprint(), policy.fingerprint());
    for role in policy.roles() {
        assert!(policy.role(&role.name).is_some());
    }
});
