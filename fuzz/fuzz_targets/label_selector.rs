//! Label selectors (freezes) and label lists (the freeze gate's `labels=`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(selector) = burnguard::domain::selector::LabelSelector::parse(text) {
            // What parses prints back to something that parses the same.
            let again = burnguard::domain::selector::LabelSelector::parse(&selector.to_string())
                .expect("a printed selector parses");
            assert_eq!(again.to_string(), selector.to_string());
        }
        let _ = burnguard::domain::selector::parse_labels(text);
    }
});
